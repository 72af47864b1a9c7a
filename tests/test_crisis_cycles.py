"""A crisis played through `listener poll --once` cycles, as cron or an operator would run them:
one alert per route, repeats only per repeat_interval, one resolved notice per route. The feed
is served on 127.0.0.1 as it looked at each moment (`--now` moves the clock)."""

from __future__ import annotations

import itertools
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

STORM = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
ANGRY = (
    "Velora lock opened with a pen, I want a refund",
    "Disgusting: my Velora lock is useless, bike stolen",
    "Velora support hung up on me, worst service ever",
    "Never buying Velora again, the lock is a scam",
)


def posts() -> list[tuple[datetime, str, str, str]]:
    out = []
    for n in range(48):  # eight calm days
        out.append((STORM - timedelta(days=8) + timedelta(hours=4 * n), f"c{n}", f"rider{n}",
                    "Rode my Velora to work again, lovely morning"))  # fmt: skip
    for n in range(60):  # then two hours of anger from sixty people
        text = f"{ANGRY[n % 4]} (#{n} from {['Leeds', 'Graz', 'Lyon'][n % 3]})"
        out.append((STORM + timedelta(minutes=2 * n), f"s{n}", f"angry{n}", text))
    return out


@pytest.fixture
def world() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"now": STORM, "hooks": {"/a": [], "/b": []}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            visible = [p for p in posts() if p[0] <= state["now"]][-300:]
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
            state["hooks"][self.path].append((state["now"], data))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def test_crisis_through_poll_once_cycles(tmp_path: Path, world: tuple[str, dict[str, Any]]) -> None:
    host, state = world
    database = tmp_path / "l.db"
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{database}"\n[log]\nlevel = "error"\n'
        '[polling]\nworkers = 0\n[alerts]\nrepeat_interval = "1h"\n'
        '[[brands]]\nname = "Velora"\n'
        f'[[sources]]\nname = "forum"\nurl = "http://{host}/feed.xml"\n'
        f'[[routes]]\nname = "chat"\nurls = ["json://{host}/a"]\nformat = "markdown"\n'
        f'[[routes]]\nname = "mail"\nurls = ["json://{host}/b"]\nformat = "html"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    moments = [STORM - timedelta(hours=1)] + [
        STORM + timedelta(minutes=20 * k) for k in range(1, 22)
    ]  # the storm, then seven quiet hours
    for moment in moments:
        state["now"] = moment
        result = runner.invoke(
            cli, ["poll", "--once", "--now", moment.isoformat(), "--config", str(config)]
        )
        assert result.exit_code == 0, result.output
    engine = dbengine.connect(f"sqlite:///{database}")
    [alert] = db.list_alerts(engine)
    engine.dispose()
    assert alert.detector == "storm" and alert.state == "resolved"
    for hook in ("/a", "/b"):
        titles = [(at, data["title"]) for at, data in state["hooks"][hook]]
        fired = [t for at, t in titles if "Storm: Velora" in t and "still" not in t
                 and "escalated" not in t and not t.startswith("[RESOLVED]")]  # fmt: skip
        repeats = [at for at, t in titles if "still firing" in t]
        resolved = [t for at, t in titles if t.startswith("[RESOLVED]")]
        assert len(fired) == 1, titles
        assert len(resolved) == 1, titles
        assert all(b - a >= timedelta(hours=1) for a, b in itertools.pairwise(repeats))
        first = min(at for at, _ in titles)
        assert all(at - first >= timedelta(hours=1) for at in repeats)  # never before an hour
