"""A live storm through the real poll path: a feed on 127.0.0.1 with a quiet history, then one
angry post every 90 seconds from different people; `listener poll --once` every 5 minutes (the
clock moved with `--now`). The alert is written, and its notification delivered, at the first
poll whose mentions make the case, long before the bucket's `[detection] lateness` has passed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner

import listener.cli.alerts
import listener.cli.commands  # noqa: F401  (registers the commands)
from listener.cli import cli
from listener.storage import alerts as db
from listener.storage import engine as dbengine

FIRST = datetime(2026, 11, 20, 14, 2, tzinfo=UTC)  # the first angry post
ANGRY = (
    "Velora lock opened with a pen, I want a refund",
    "Disgusting: my Velora lock is useless, bike stolen",
    "Velora support hung up on me, worst service ever",
    "Never buying Velora again, the lock is a scam",
    "Velora charged me twice and nobody answers",
)


def posts() -> list[tuple[datetime, str, str, str]]:
    out = []
    for n in range(60):  # ten quiet days
        when = FIRST - timedelta(days=10) + timedelta(hours=4 * n)
        out.append((when, f"c{n}", f"rider{n}", "Rode my Velora to work again, lovely morning"))
    for n in range(40):  # then one angry post every 90 seconds, each from someone else
        text = f"{ANGRY[n % 5]} (#{n} from {['Leeds', 'Graz', 'Lyon', 'Turku'][n % 4]})"
        out.append((FIRST + timedelta(seconds=90 * n), f"s{n}", f"angry{n}", text))
    return out


@pytest.fixture
def world() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"now": FIRST, "hook": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            visible = [p for p in posts() if p[0] <= state["now"]][-200:]
            items = "".join(
                f"<item><guid>{guid}</guid><link>https://forum{i % 7}.example.org/{guid}</link>"
                f"<title>{escape(text)}</title><author>{who}@x.example ({who})</author>"
                f"<pubDate>{format_datetime(when)}</pubDate></item>"
                for i, (when, guid, who, text) in enumerate(visible)
            )
            body = f'<rss version="2.0"><channel><title>f</title>{items}</channel></rss>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["hook"].append((state["now"], data))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def test_a_live_storm_is_alerted_within_15_minutes_at_5_minute_polls(
    tmp_path: Path, world: tuple[str, dict[str, Any]]
) -> None:
    host, state = world
    database = tmp_path / "l.db"
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{database}"\n[log]\nlevel = "error"\n'
        '[polling]\nworkers = 0\n[detection]\nlateness = "20m"\n'
        '[[brands]]\nname = "Velora"\n'
        f'[[sources]]\nname = "forum"\nurl = "http://{host}/feed.xml"\n'
        f'[[routes]]\nname = "chat"\nurls = ["json://{host}/hook"]\nformat = "markdown"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    # polls every 5 minutes from an hour before, at an awkward phase (3 min after the hour)
    moments = [FIRST - timedelta(minutes=59) + timedelta(minutes=5 * k) for k in range(19)]
    for moment in moments:
        state["now"] = moment
        result = runner.invoke(
            cli, ["poll", "--once", "--now", moment.isoformat(), "--config", str(config)]
        )
        assert result.exit_code == 0, result.output
    engine = dbengine.connect(f"sqlite:///{database}")
    [alert] = db.list_alerts(engine)
    engine.dispose()
    assert alert.detector == "storm" and not alert.historic
    assert alert.fired_at - FIRST <= timedelta(minutes=15)
    # fired at a poll, before the bucket's final judgement (bucket end + 20 minutes) was due
    assert alert.fired_at in moments
    assert alert.fired_at < alert.window_end + timedelta(minutes=20)
    # written and delivered by the poll run at that moment, not found later in hindsight
    delivered = [at for at, data in state["hook"] if "Storm: Velora" in data["title"]]
    assert delivered == [alert.fired_at]
