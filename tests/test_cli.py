"""The command line, end to end: real config files, real databases, a real feed server."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from feeds import rss
from pytest_httpserver import HTTPServer

import listener.cli.alerts
import listener.cli.backtest
import listener.cli.commands
import listener.cli.demo
import listener.cli.ops
import listener.cli.queries
import listener.cli.sentiment  # noqa: F401  (registers the commands)
from listener.cli import cli

ITEMS = [
    {
        "title": "Kryptonite lock opened with a pen",
        "link": "https://a.example/1?utm_source=x",
        "guid": "1",
        "description": "Terrible. #kryptonitelock",
        "author": "Ann",
        "date": "Fri, 20 Nov 2026 10:00:00 +0000",
    },
    {
        "title": "Kryptonite praised by reviewers",
        "link": "https://a.example/2",
        "guid": "2",
        "date": "Sat, 21 Nov 2026 10:00:00 +0000",
    },
    {
        "title": "Evil \x1b[31mred\x1b[0m Kryptonite \u202eevil",
        "link": "https://a.example/3",
        "guid": "3",
        "date": "Sun, 22 Nov 2026 10:00:00 +0000",
    },
    {
        "title": "Deutsche Bahn und Kryptonite",
        "link": "https://a.example/4",
        "guid": "4",
        "date": "Mon, 23 Nov 2026 09:00:00 +0000",
    },
]


def config_text(db: Path, url: str, extra: str = "") -> str:
    return f"""
[database]
url = "sqlite:///{db}"
[log]
level = "warning"
[[brands]]
name = "Kryptonite"
terms = ["Kryptonite", "#kryptonitelock"]
[[brands]]
name = "Bahn"
terms = ["Deutsche Bahn"]
[[sources]]
name = "blog"
url = "{url}"
interval = "15m"
{extra}
"""


@pytest.fixture
def setup(tmp_path: Path, httpserver: HTTPServer) -> Path:
    body = rss(ITEMS).replace(b"\x1b", b"&#27;")  # the escape arrives as an XML char reference
    httpserver.expect_request("/feed").respond_with_data(body, content_type="text/xml")
    path = tmp_path / "listener.toml"
    path.write_text(config_text(tmp_path / "l.db", httpserver.url_for("/feed")), encoding="utf-8")
    return path


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env or {})
    return result.exit_code, result.stdout, result.stderr


def test_workflow_upgrade_poll_query(setup: Path) -> None:
    config = str(setup)
    code, out, err = invoke("mentions", "--config", config)
    assert code == 2
    assert err.startswith("Error: ") and "listener db upgrade" in err and err.count("\n") == 1
    assert invoke("db", "upgrade", "--config", config)[0] == 0
    code, out, _ = invoke("db", "current", "--config", config)
    assert (code, "up to date" in out) == (0, True)

    code, out, _ = invoke("--config", config, "poll", "--once")
    assert code == 0
    assert "1 ok" in out and "4 new mentions" in out

    code, out, _ = invoke("mentions", "--config", config, "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["title"][:12] for r in rows] == [
        "Deutsche Bah",
        "Evil red Kry",
        "Kryptonite p",
        "Kryptonite l",
    ]  # newest first; control characters were dropped when the feed was parsed
    assert rows[1]["title"].endswith("\u202eevil")  # bidi overrides stay data inside JSON ...
    assert "\u202e" not in out  # ... but never reach the terminal raw
    assert rows[0]["brand"] is None and rows[0]["brands"] == ["Bahn", "Kryptonite"]
    assert rows[1]["brand"] == "Kryptonite"
    last = rows[-1]
    assert set(last) >= {
        "id",
        "brand",
        "source",
        "url",
        "title",
        "text",
        "author",
        "published_at",
        "fetched_at",
        "language",
        "sentiment",
        "sentiment_score",
    }
    assert last["source"] == "blog" and last["author"] == "Ann"
    assert last["published_at"] == "2026-11-20T10:00:00Z"
    assert last["fetched_at"].endswith("Z")
    assert last["sentiment"] == "negative"  # "... opened with a pen. Terrible."
    assert -1 <= last["sentiment_score"] < 0
    assert last["language"] == "en"

    def titles(*args: str) -> list[str]:
        code, out, err = invoke("mentions", "--config", config, "--format", "json", *args)
        assert code == 0, err
        return [r["title"] for r in json.loads(out)]

    assert titles("--brand", "bahn") == ["Deutsche Bahn und Kryptonite"]
    assert "Kryptonite lock opened with a pen" in titles("--sentiment", "negative")
    assert "Kryptonite lock opened with a pen" not in titles("--sentiment", "positive")
    assert titles("--search", "PEN") == ["Kryptonite lock opened with a pen"]
    assert len(titles("--since", "2026-11-21", "--until", "2026-11-22T12:00")) == 2
    assert len(titles("--limit", "1")) == 1
    assert titles("--source", "nope") == []
    code, _, err = invoke("mentions", "--config", config, "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_table_and_csv_are_terminal_safe(setup: Path) -> None:
    config = str(setup)
    invoke("db", "upgrade", "--config", config)
    invoke("poll", "--config", config)
    code, out, _ = invoke("mentions", "--config", config, "--format", "table")
    assert code == 0
    assert "Evil red Kryptonite evil" in out
    assert "\x1b" not in out and "\u202e" not in out
    code, out, _ = invoke("mentions", "--config", config, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 and "\x1b" not in out


def test_sources_shows_health(setup: Path, tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("", status=410)
    text = setup.read_text(encoding="utf-8") + (
        f'[[sources]]\nname = "dead"\nurl = "{httpserver.url_for("/gone")}"\n'
    )
    setup.write_text(text, encoding="utf-8")
    config = str(setup)
    invoke("db", "upgrade", "--config", config)
    code, out, _ = invoke("poll", "--config", config)
    assert code == 0 and "1 disabled" in out
    code, out, _ = invoke("sources", "--config", config, "--format", "json")
    health = {r["name"]: r for r in json.loads(out)}
    assert health["blog"]["health"] == "ok" and health["blog"]["mentions"] == 4
    assert health["dead"]["health"] == "disabled"
    assert "410" in health["dead"]["disabled_reason"]


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        config_text(tmp_path / "x.db", "https://user:pa55word@example.org/feed?token=tok-999")
        + 'headers = { Authorization = "Bearer ${API_TOKEN}" }\n',
        encoding="utf-8",
    )
    code, out, err = invoke(
        "check-config", "--config", str(path), env={"API_TOKEN": "s3cr3t-value"}
    )
    assert code == 0, err
    assert "Brands (2)" in out and "Sources (1)" in out
    for secret in ("s3cr3t-value", "pa55word", "tok-999"):
        assert secret not in out


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[sources]]\nname = "x"\nurl = "https://e.org/f"\nintervall = "5m"\n', encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "listener", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "sources[0].intervall" in proc.stderr and "did you mean 'interval'" in proc.stderr


def test_listener_config_env_is_honoured(setup: Path) -> None:
    code, out, _ = invoke("check-config", env={"LISTENER_CONFIG": str(setup)})
    assert code == 0 and str(setup) in out


def test_demo_runs_offline(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "listener", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "5/5 sources ok" in proc.stdout
    assert "4 sources answered 304 Not Modified, 0 new mentions" in proc.stdout
    # the replayed crises are caught, alerted, delivered to the demo's receiver, and resolved
    assert "[WARNING] Smoulder: Nordbahn" in proc.stdout  # the slow burn
    assert "Storm: Velora" in proc.stdout and "negative mentions in 60 min" in proc.stdout
    assert "[RESOLVED] Storm: Velora" in proc.stdout
    assert "alerts fired" in proc.stdout
    assert "listener mentions --config" in proc.stdout
    _, out, _ = invoke(
        "mentions",
        "--config",
        str(tmp_path / "demo" / "listener.toml"),
        "--format",
        "json",
        "--limit",
        "0",
    )
    rows = json.loads(out)
    assert {b for r in rows for b in r["brands"]} == {"Velora", "Nordbahn"}
    assert not any("Hollywood" in r["text"] or "Hollywood" in r["title"] for r in rows)
    assert any("Rückruf" in r["title"] for r in rows)  # the ISO-8859-1 feed decoded right
    # every command the demo suggests works as printed
    import shlex

    suggested = [
        line.split(" -m listener ", 1)[1]
        for line in proc.stdout.splitlines()
        if " -m listener " in line
    ]
    assert len(suggested) >= 5
    for command in suggested:
        code, _, err = invoke(*shlex.split(command))
        assert code == 0, f"{command}: {err}"
    config = str(tmp_path / "demo" / "listener.toml")
    _, out, _ = invoke("status", "--config", config, "--format", "json")
    [status] = json.loads(out)
    assert status["sources"] == 5 and status["alerts_firing"] and status["database_bytes"] > 0
    _, out, _ = invoke("stats", "--config", config, "--brand", "Velora", "--since", "24h",
                       "--format", "json")  # fmt: skip
    bars = json.loads(out)
    assert (
        sum(b["negative"] for b in bars) >= 30 and max(b["negative_share"] or 0 for b in bars) > 0.5
    )


def test_run_polls_and_stops_on_sigterm(setup: Path, tmp_path: Path) -> None:
    invoke("db", "upgrade", "--config", str(setup))
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--config", str(setup)],
            stdout=sink,
            stderr=sink,
            env={**os.environ, "LISTENER_CONFIG": ""},
        )
    try:
        deadline = time.monotonic() + 60
        rows: list[object] = []
        while time.monotonic() < deadline and len(rows) < 4:
            time.sleep(0.5)
            _, out, _ = invoke("mentions", "--config", str(setup), "--format", "json")
            rows = json.loads(out) if out.strip() else []
        assert len(rows) == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "Traceback" not in output
