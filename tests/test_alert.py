"""Alerts end to end on real databases and real receivers: detection -> episode -> outbox ->
apprise -> an HTTP receiver on 127.0.0.1. Idempotent episodes, history not notified, retries and
dead deliveries, acknowledgement, silences, hostile titles, and a crash between write and send."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine
from test_backtest import fill_history, negative_mention
from werkzeug import Request, Response

import listener.cli.alerts  # noqa: F401  (registers the commands)
from listener.cli import cli
from listener.config import Settings, validate_config
from listener.service.alert import evaluate
from listener.service.deliver import deliver
from listener.storage import alerts as db
from listener.storage import engine as dbengine
from listener.storage import outbox, silences, store
from listener.storage.sql import transaction

CLOSED = "json://127.0.0.1:9/hook"  # discard port: nothing listens


def settings_for(routes: str, extra: str = "") -> Settings:
    import tomllib

    text = f'[[brands]]\nname = "Velora"\n[alerts]\nretry_for = "1h"\n{extra}\n{routes}'
    return validate_config(tomllib.loads(text), file=Path("listener.toml"), env={})


def route(name: str, url: str, fmt: str = "markdown") -> str:
    return f'[[routes]]\nname = "{name}"\nurls = ["{url}"]\nformat = "{fmt}"\n'


def storm_now(
    engine: Engine, now: datetime, title: str = "Velora lock opened with a pen", every: bool = False
) -> None:
    """Forty angry posts from many people in the last hour, fetched by one poll 25 minutes ago
    (the first, or with ``every`` each of them, titled ``title``)."""
    rng = random.Random(9)
    with store.transaction(engine, "test") as conn:
        source = store.load_states(conn)["s"].id
    arrival = now - timedelta(minutes=25)
    batch = [
        negative_mention(100_000 + n, now - timedelta(minutes=70 - n), f"new{n}") for n in range(40)
    ]
    batch[0] = negative_mention(100_000, now - timedelta(minutes=70), "new0")
    from dataclasses import replace

    for n in range(len(batch) if every else 1):
        item = replace(batch[n].item, title=f"{title} {n}" if every else title)
        batch[n] = replace(batch[n], item=item)
    rng.shuffle(batch)
    with store.transaction(engine, "test") as conn:
        poll = store.PollSuccess(source, arrival, arrival, None, None, mentions=batch)
        store.record_successes(conn, [poll])


@pytest.fixture
def receiver(httpserver: HTTPServer) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        got.append(
            {**json.loads(request.get_data()), "key": request.headers.get("Idempotency-Key")}
        )
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    return got


def hook(httpserver: HTTPServer) -> str:
    return f"json://127.0.0.1:{httpserver.port}/hook"


NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def test_history_is_recorded_quietly_and_a_new_storm_is_delivered_once(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    settings = settings_for(route("chat", hook(httpserver)))
    fill_history(engine, NOW - timedelta(hours=3))  # an old storm two days ago
    first = evaluate(engine, settings, NOW - timedelta(hours=3))
    assert first.historic >= 1 and first.fired == 0 and first.queued == 0
    assert deliver(engine, settings, NOW).delivered == 0 and receiver == []

    storm_now(engine, NOW)
    second = evaluate(engine, settings, NOW)
    assert second.fired == 1 and second.queued == 1
    report = deliver(engine, settings, NOW)
    assert report.delivered == 1 and len(receiver) == 1
    assert "Velora" in receiver[0]["title"] and "Storm" in receiver[0]["title"]
    assert "listener alerts show" in receiver[0]["message"]

    again = evaluate(engine, settings, NOW)  # the same verdicts: nothing new
    assert (again.fired, again.queued) == (0, 0)
    assert deliver(engine, settings, NOW).delivered == 0 and len(receiver) == 1
    firing = db.list_alerts(engine, state="firing")
    assert [a.detector for a in firing] == ["storm"] and not firing[0].historic


def test_failed_deliveries_retry_then_die(engine: Engine) -> None:
    settings = settings_for(route("down", CLOSED))
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    evaluate(engine, settings, NOW)
    report = deliver(engine, settings, NOW)
    assert report.failed == 1 and report.delivered == 0
    [item] = outbox.outbox(engine)
    assert item.attempts == 1 and item.last_error and item.next_attempt_at > NOW
    assert deliver(engine, settings, NOW).failed == 0  # not due yet
    later = NOW + timedelta(hours=2)  # beyond retry_for
    assert deliver(engine, settings, later).dead == 1
    [dead] = outbox.outbox(engine)
    assert dead.dead_at is not None


def test_ack_stops_repeats_and_silence_drops(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    settings = settings_for(
        route("chat", hook(httpserver)), "[alerts.x]\n".replace("[alerts.x]\n", "")
    )
    settings = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"repeat_interval": 60.0})}
    )
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    evaluate(engine, settings, NOW)
    deliver(engine, settings, NOW)
    assert len(receiver) == 1
    repeat = evaluate(engine, settings, NOW + timedelta(minutes=2))
    assert repeat.repeats == 1
    deliver(engine, settings, NOW + timedelta(minutes=2))
    assert len(receiver) == 2
    [alert] = db.list_alerts(engine, state="firing")
    with transaction(engine, "ack") as conn:
        assert db.acknowledge(conn, alert.id, NOW + timedelta(minutes=3))
    assert evaluate(engine, settings, NOW + timedelta(minutes=5)).repeats == 0
    with transaction(engine, "silence") as conn:
        silences.add_silence(
            conn, brand="Velora", detector=None, severity=None, starts_at=NOW,
            ends_at=NOW + timedelta(hours=6),
        )  # fmt: skip
        db.acknowledge(conn, alert.id, NOW)  # already acknowledged: still fine
    quiet = evaluate(engine, settings, NOW + timedelta(hours=5))
    assert quiet.queued == 0 and any("silenced" in line for line in quiet.held)


def test_a_crash_between_writing_and_sending_loses_nothing(
    tmp_path: Path, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    settings = settings_for(route("chat", hook(httpserver)))
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    evaluate(engine, settings, NOW)  # written, then the process "dies" before delivering
    engine.dispose()
    restarted = dbengine.connect(url)
    assert len(outbox.outbox(restarted)) == 1
    assert deliver(restarted, settings, NOW).delivered == 1
    assert deliver(restarted, settings, NOW).delivered == 0
    assert evaluate(restarted, settings, NOW).queued == 0
    assert len(receiver) == 1
    restarted.dispose()


def test_hostile_titles_are_neutralised_in_the_chat_message(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    settings = settings_for(route("chat", hook(httpserver)))
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW, title="@everyone <!here> [free locks](http://evil.example) \x1b[31m")
    evaluate(engine, settings, NOW)
    deliver(engine, settings, NOW)
    body = receiver[0]["message"]
    assert "@everyone" not in body and "<!here>" not in body
    assert "](http://evil.example)" not in body and "\x1b" not in body


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"LISTENER_CONFIG": ""})
    return result.exit_code, result.stdout, result.stderr


def test_alerts_commands(
    tmp_path: Path, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[log]\nlevel = "error"\n[[brands]]\nname = "Velora"\n'
        + route("chat", hook(httpserver))
        + route("down", CLOSED, "text"),
        encoding="utf-8",
    )
    settings = settings_for(route("chat", hook(httpserver)) + route("down", CLOSED, "text"))
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    evaluate(engine, settings, NOW)
    engine.dispose()
    c = ("--config", str(config))
    code, out, _ = run_cli("alerts", *c, "--state", "firing", "--format", "json")
    assert code == 0
    [alert] = json.loads(out)
    assert alert["detector"] == "storm" and alert["brand"] == "Velora"
    code, out, _ = run_cli("alerts", "show", str(alert["id"]), *c, "--format", "table")
    assert code == 0 and "negative mentions in the window" in out and "why" in out
    code, out, _ = run_cli("alerts", "outbox", *c, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = run_cli("alerts", "ack", str(alert["id"]), *c)
    assert code == 0 and "acknowledged" in out
    code, out, _ = run_cli("alerts", "silence", "--brand", "Velora", "--for", "2h", *c)
    assert code == 0 and "until" in out
    code, out, _ = run_cli("alerts", "test", "--route", "chat", *c)
    assert code == 0 and "delivered" in out and receiver[-1]["title"]
    code, out, _ = run_cli("alerts", "test", *c)
    assert code == 1 and "down" in out and "failed" in out
    code, _, err = run_cli("alerts", "test", "--route", "nope", *c)
    assert code == 2 and "nope" in err


def test_first_run_notifies_only_what_is_still_going_on(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    settings = settings_for(route("chat", hook(httpserver)))
    fill_history(engine, NOW - timedelta(hours=3))  # a storm two days ago: over
    storm_now(engine, NOW)  # and one going on right now
    first = evaluate(engine, settings, NOW)  # detection runs for the first time
    assert first.historic >= 1 and first.fired == 1 and first.queued == 1
    deliver(engine, settings, NOW)
    assert len(receiver) == 1
    alerts = db.list_alerts(engine)
    assert sum(not a.historic for a in alerts) == 1
    assert [a.state for a in alerts if a.historic] == ["resolved"] * (len(alerts) - 1)


def test_a_source_answering_401_opens_one_source_down_alert_and_one_recovery(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    from feeds import rss
    from test_poll import Clock, make_settings, poll_all

    from listener.storage.engine import upgrade  # noqa: F401  (the fixture migrated already)

    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    httpserver.expect_request("/private.xml").respond_with_data("no", status=401)
    settings = make_settings(
        [{"name": "private", "url": httpserver.url_for("/private.xml")}],
        routes=[{"name": "ops", "urls": [hook(httpserver)]}],
        alerts={"source_down_after": "1h"},
    )
    clock = Clock(start)
    poll_all(settings, engine, clock)
    assert evaluate(engine, settings, start + timedelta(minutes=30)).fired == 0
    for minutes in (60, 90):
        clock.now = start + timedelta(minutes=minutes)
        poll_all(settings, engine, clock)
        evaluate(engine, settings, clock.now)
        deliver(engine, settings, clock.now)
    down = [r for r in receiver if "private" in r["title"]]
    assert len(down) == 1 and "401" in down[0]["message"]
    [alert] = db.list_alerts(engine, state="firing")
    assert alert.detector == "source:private" and alert.brand == ""
    httpserver.clear()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(
        lambda request: (receiver.append(json.loads(request.get_data())), Response("ok"))[1]
    )
    httpserver.expect_request("/private.xml").respond_with_data(
        rss([{"title": "Kryptonite news", "guid": "k1"}]), content_type="application/rss+xml"
    )
    clock.now = start + timedelta(minutes=120)
    poll_all(settings, engine, clock)
    evaluate(engine, settings, clock.now)
    deliver(engine, settings, clock.now)
    evaluate(engine, settings, clock.now + timedelta(minutes=5))
    deliver(engine, settings, clock.now + timedelta(minutes=5))
    titles = [r["title"] for r in receiver if "private" in r["title"]]
    assert len(titles) == 2 and titles[1].startswith("[RESOLVED]")
    assert db.list_alerts(engine, state="firing") == []


def test_pending_alerts_fire_only_when_the_condition_held_long_enough(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    settings = settings_for(route("chat", hook(httpserver)), 'pending_for = "30m"')
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    first = evaluate(engine, settings, NOW)
    assert (first.pending, first.fired, first.queued) == (1, 0, 0)
    assert [a.state for a in db.list_alerts(engine, state="pending")] == ["pending"]
    later = evaluate(engine, settings, NOW + timedelta(minutes=35))
    assert (later.fired, later.queued) == (1, 1)
    deliver(engine, settings, NOW + timedelta(minutes=35))
    assert len(receiver) == 1


def test_quiet_hours_hold_delivery_and_a_summary_follows(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    quiet = f"{(NOW - timedelta(hours=1)):%H:%M}-{(NOW + timedelta(hours=1)):%H:%M} UTC"
    settings = settings_for(
        route("chat", hook(httpserver))
        + f'quiet_hours = "{quiet}"\ncritical_ignores_quiet_hours = false\n',
        'repeat_interval = "1m"',
    )
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    evaluate(engine, settings, NOW)
    evaluate(engine, settings, NOW + timedelta(minutes=2))  # a repeat, also held
    assert deliver(engine, settings, NOW + timedelta(minutes=3)).delivered == 0
    assert receiver == []
    after = NOW + timedelta(hours=1, minutes=1)
    assert deliver(engine, settings, after).delivered == 2
    [summary] = receiver
    assert summary["title"].startswith("[SUMMARY] 2 notifications")


KILL = """
import os, signal, sys, tomllib
from datetime import datetime
from pathlib import Path
from listener.service.alert import evaluate
from listener.service.deliver import deliver
from listener.alerting import deliver as channel
from listener.config import load_config
from listener.config import database_url
from listener.storage import engine as db
settings = load_config(sys.argv[1])
engine = db.connect(database_url(settings))
now = datetime.fromisoformat(sys.argv[3])
if sys.argv[2] == "after-write":
    evaluate(engine, settings, now)
    os.kill(os.getpid(), signal.SIGKILL)
def send_then_die(url, **kw):
    outcome = channel.send(url, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
deliver(engine, settings, now, send=send_then_die)
"""


def test_kill_9_at_any_moment_loses_no_notification(
    tmp_path: Path, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[log]\nlevel = "error"\n[[brands]]\nname = "Velora"\n'
        + route("chat", hook(httpserver)),
        encoding="utf-8",
    )
    settings = settings_for(route("chat", hook(httpserver)))
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    script = tmp_path / "kill.py"
    script.write_text(KILL, encoding="utf-8")

    def run(stage: str) -> int:
        cmd = [sys.executable, str(script), str(config), stage, NOW.isoformat()]
        return subprocess.run(cmd, capture_output=True, timeout=120).returncode

    assert run("after-write") == -9  # killed after the outbox row was committed
    assert [i.delivered_at for i in outbox.outbox(engine)] == [None]
    assert receiver == []
    assert run("after-send") == -9  # killed between the channel's OK and the mark
    assert len(receiver) == 1 and outbox.outbox(engine)[0].delivered_at is None
    in_flight = outbox.outbox(engine)[0]
    assert (in_flight.last_error or "").startswith("in flight: attempt 1 started")
    # the row is leased for send_timeout (60 s) plus a margin: no second attempt overlaps
    assert deliver(engine, settings, NOW + timedelta(seconds=80)).delivered == 0
    report = deliver(engine, settings, NOW + timedelta(minutes=2))  # restart
    assert report.delivered == 1
    assert len(receiver) == 2  # the documented duplicate: at least once, never lost ...
    assert receiver[0]["key"] == receiver[1]["key"]  # ... with one key the receiver can drop
    assert deliver(engine, settings, NOW + timedelta(minutes=3)).delivered == 0
    assert len(receiver) == 2
    engine.dispose()


HOSTILE = (
    "<!channel> @everyone [x](http://evil.example) <script>alert(1)</script> \x1b[31m"
    "\r\nBcc: a@evil.example"
)


def test_a_hostile_title_arrives_escaped_in_chat_and_email(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    from aiosmtpd.controller import Controller
    from test_deliver import Inbox, free_port, mailto

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = settings_for(
            route("chat", hook(httpserver)) + route("mail", mailto(port), "html")
        )
        fill_history(engine, NOW - timedelta(hours=3))
        evaluate(engine, settings, NOW - timedelta(hours=3))
        storm_now(engine, NOW, title=HOSTILE, every=True)
        evaluate(engine, settings, NOW)
        report = deliver(engine, settings, NOW)
        assert report.delivered == 2, report
    finally:
        controller.stop()
    chat = receiver[0]["title"] + receiver[0]["message"]
    [mail] = inbox.messages
    html = mail.message.get_body(("html",))
    plain = mail.message.get_body(("plain",))
    assert html is not None and plain is not None
    bodies = {"chat": chat, "html": html.get_content(), "plain": plain.get_content()}
    for name, body in bodies.items():
        for bad in ("<!channel>", "@everyone", "<script", "\x1b[", 'href="http://evil'):
            assert bad not in body, (name, bad)
    # Markdown link syntax is only dangerous where Markdown is rendered: the chat message
    assert "](http://evil.example)" not in bodies["chat"]
    assert "Bcc" not in str(mail.message.get("Bcc", "")) and mail.rcpt_tos == ["pr@example.org"]
    assert "Velora" in bodies["html"] and "Velora" in bodies["chat"]
    for body in bodies.values():  # the title did arrive, defused (Markdown escapes the parens)
        assert re.search(r"\\?\(at\\?\)everyone", body), body[-300:]


def test_digest_routes_get_one_summary_per_period(
    engine: Engine, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> None:
    digests: list[dict[str, str]] = []
    httpserver.expect_request("/digest", method="POST").respond_with_handler(
        lambda request: (digests.append(json.loads(request.get_data())), Response("ok"))[1]
    )
    at = (NOW - timedelta(minutes=10)).strftime("%H:%M")
    digest_url = f"json://127.0.0.1:{httpserver.port}/digest"
    settings = settings_for(
        route("chat", hook(httpserver))
        + route("daily", digest_url, "text")
        + f'digest = "daily"\ndigest_at = "{at} UTC"\n'
    )
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))  # the first digest: the day before
    storm_now(engine, NOW)
    evaluate(engine, settings, NOW)
    deliver(engine, settings, NOW)
    assert len(receiver) == 1  # the single alert went to the chat route only
    assert len(digests) == 2  # yesterday's (written at the first run) and today's
    today = digests[-1]
    assert today["title"].startswith("[DIGEST] daily summary")
    assert "Velora:" in today["message"] and "negative" in today["message"]
    assert "alert: #" in today["message"]  # the storm alert of the period
    evaluate(engine, settings, NOW + timedelta(minutes=30))
    deliver(engine, settings, NOW + timedelta(minutes=30))
    assert len(digests) == 2  # one per period
    evaluate(engine, settings, NOW + timedelta(days=1))
    deliver(engine, settings, NOW + timedelta(days=1))
    assert len(digests) == 3


def test_new_terms_are_words_the_window_uses_and_the_week_before_did_not(engine: Engine) -> None:
    from listener.service.alert import load_contexts

    fill_history(engine, NOW - timedelta(hours=3))
    storm_now(engine, NOW, title="Velora lock picked with a ballpoint", every=True)
    window = (NOW - timedelta(minutes=75), NOW)
    terms = load_contexts(engine, "Velora", frozenset({window}))[window].new_terms
    assert "ballpoint" in terms and "picked" in terms
    assert "post" not in terms and "text" not in terms and "velora" not in terms
