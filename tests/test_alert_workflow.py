"""The alert workflow a PR team lives in, on a real SQLite file and a real webhook receiver:
fire (with the brand's runbook), silences listed and expired, acknowledged by a named person,
unacknowledged, and a resolved notice that says who acknowledged it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from test_alert import NOW, hook, receiver, route, run_cli, storm_now
from test_backtest import fill_history

from listener.alerting.render import AlertMessage, render
from listener.config import validate_config
from listener.service.alert import evaluate
from listener.service.deliver import deliver
from listener.storage import alerts as db
from listener.storage import engine as dbengine

__all__ = ["receiver"]  # a fixture, imported for its side effect

RUNBOOK = """
[brands.runbook]
text = "Call the duty PR lead; no statement before legal signs off."
url = "https://wiki.example/pr/velora-crisis"
[brands.runbook.critical]
text = "Wake the head of communications."
"""


def _setup(tmp_path: Path, httpserver: HTTPServer) -> tuple[str, tuple[str, str]]:
    import tomllib

    url = f"sqlite:///{tmp_path / 'l.db'}"
    text = (
        f'[database]\nurl = "{url}"\n[log]\nlevel = "error"\n[[brands]]\nname = "Velora"\n'
        + RUNBOOK
        + route("chat", hook(httpserver))
    )
    config = tmp_path / "listener.toml"
    config.write_text(text, encoding="utf-8")
    validate_config(tomllib.loads(text), file=config, env={})
    return url, ("--config", str(config))


def test_fire_silence_ack_unack_resolve(
    tmp_path: Path, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    import tomllib

    url, c = _setup(tmp_path, httpserver)
    settings = validate_config(
        tomllib.loads(Path(c[1]).read_text(encoding="utf-8")), file=Path(c[1]), env={}
    )
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    assert evaluate(engine, settings, NOW).fired == 1
    assert deliver(engine, settings, NOW).delivered == 1
    fired = receiver[-1]["message"]
    assert receiver[-1]["type"] == "failure"  # apprise's type follows severity: critical
    assert "Runbook" in fired and "https://wiki.example/pr/velora-crisis" in fired
    assert "no statement before legal signs off" in fired or "head of communications" in fired

    code, out, _ = run_cli("alerts", *c, "--state", "firing", "--format", "json")
    [alert] = json.loads(out)
    alert_id = str(alert["id"])

    # silences: created with a creator and comment, listed, expired
    code, out, _ = run_cli("alerts", "silence", "--brand", "Velora", "--for", "2h",
                           "--comment", "press conference", "--by", "Sam", *c)  # fmt: skip
    assert code == 0
    code, out, _ = run_cli("alerts", "silences", *c, "--format", "json")
    [silence] = json.loads(out)
    assert (silence["state"], silence["created_by"], silence["comment"]) == (
        "active",
        "Sam",
        "press conference",
    )
    code, out, _ = run_cli("alerts", "unsilence", str(silence["id"]), *c)
    assert code == 0 and "expired" in out
    code, out, _ = run_cli("alerts", "silences", *c, "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run_cli("alerts", "silences", "--all", *c, "--format", "json")
    assert [s["state"] for s in json.loads(out)] == ["expired"]
    code, _, err = run_cli("alerts", "unsilence", str(silence["id"]), *c)
    assert code == 1 and "no silence" in err

    # acknowledged by a named person, with a note; firing no longer lists it
    code, out, _ = run_cli("alerts", "ack", alert_id, "--by", "Dana Weiss",
                           "--note", "statement drafted", *c)  # fmt: skip
    assert code == 0 and "acknowledged by Dana Weiss" in out
    code, out, _ = run_cli("alerts", *c, "--state", "firing", "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run_cli("alerts", *c, "--state", "acknowledged", "--format", "json")
    [acked] = json.loads(out)
    assert acked["acked_by"] == "Dana Weiss" and acked["ack_note"] == "statement drafted"
    code, out, _ = run_cli("alerts", "show", alert_id, *c, "--format", "table")
    assert "by Dana Weiss: statement drafted" in out

    # unack: firing again; a second ack without --by records the login name
    code, out, _ = run_cli("alerts", "unack", alert_id, *c)
    assert code == 0
    code, out, _ = run_cli("alerts", *c, "--state", "firing", "--format", "json")
    assert [a["id"] for a in json.loads(out)] == [alert["id"]]
    code, _, err = run_cli("alerts", "unack", alert_id, *c)
    assert code == 1
    code, out, _ = run_cli("alerts", "ack", alert_id, "--by", "Dana Weiss", *c)
    assert code == 0

    # the storm ends: the resolved notice names who acknowledged it
    later = NOW + timedelta(hours=8)
    result = evaluate(engine, settings, later)
    assert result.resolved == 1
    deliver(engine, settings, later)
    resolved = receiver[-1]
    assert "resolved" in (resolved["title"] + resolved["message"]).lower()
    assert "Acknowledged by Dana Weiss" in resolved["message"]
    assert resolved["type"] == "success"
    [stored] = db.list_alerts(engine, state="resolved", limit=1)
    assert stored.acked_by == "Dana Weiss"
    engine.dispose()


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_runbook_and_ack_render_in_every_format(fmt: str) -> None:
    message = AlertMessage(
        kind="resolved", alert_id=3, brand="Velora", detector="storm", severity="critical",
        observed=40, expected=2.0, probability=None, score=9.0, window_start=NOW,
        window_end=NOW + timedelta(hours=1), first_seen=NOW, explanation="x", series=(),
        series_label="", acked_by="<b>Eve</b> @everyone", acked_at=NOW, ack_note="on it",
        runbook="Call [the lead](http://evil.example)", runbook_url="https://wiki.example/rb",
    )  # fmt: skip
    body = render(message, fmt, long=True).body
    assert "Acknowledged by" in body and "on it" in body
    assert "<b>Eve</b>" not in body and "@everyone" not in body  # people's names are data too
    if fmt == "markdown":  # elsewhere a Markdown link is just characters
        assert "](http://evil.example)" not in body
    assert 'href="http://evil' not in body
    assert "https://wiki.example/rb" in body


def test_a_runbook_url_must_be_a_web_url(tmp_path: Path) -> None:
    import tomllib

    from listener.errors import ConfigError

    text = '[[brands]]\nname = "V"\n[brands.runbook]\nurl = "javascript:alert(1)"\n'
    with pytest.raises(ConfigError, match=r"brands\[0\]\.runbook\.url"):
        validate_config(tomllib.loads(text), file=tmp_path / "c.toml", env={})
