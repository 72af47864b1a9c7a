"""The demo: bundled sample feeds served on 127.0.0.1 and a configuration that watches them.

Nothing here reaches beyond the loopback interface. The sample feeds are English and German posts
about the fictional brands Velora (e-bikes, bike locks) and Nordbahn (a regional train operator).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from listener.demo.crisis import Timeline

FEEDS = Path(__file__).with_name("feeds")

SOURCES = (
    ("bike-blog", "bike-blog.xml", "English bike blog (RSS)"),
    ("radforum", "forum-de.xml", "German cycling forum (Atom)"),
    ("news-de", "news-de.xml", "German news (RSS, ISO-8859-1)"),
    ("social", "social.xml", "Hashtag feed (RSS)"),
)


LIVE = ("forum", "forum.xml", "Forum feed replaying ten days of a crisis (generated)")


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {".xml": "application/rss+xml"}  # noqa: RUF012 (class attribute by design)
    clock: list[datetime]  # [simulated now]; the forum feed is served as it was then
    timeline: Timeline | None = None

    def do_GET(self) -> None:
        if self.path.startswith("/forum.xml") and self.timeline is not None:
            body = self.timeline.feed(self.clock[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serve_feeds(
    timeline: Timeline | None = None, clock: list[datetime] | None = None
) -> Iterator[str]:
    """Serve the bundled feeds (and, with a timeline, the forum feed as it was at ``clock[0]``)
    on an ephemeral loopback port; yields the base URL."""
    handler_class = type(
        "_Handler", (_QuietHandler,), {"timeline": timeline, "clock": clock or [datetime.now()]}
    )
    handler = partial(handler_class, directory=str(FEEDS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="listener-demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Sink(BaseHTTPRequestHandler):
    """Collects JSON notifications (apprise ``json://``) posted to it."""

    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            self.received.append(json.loads(self.rfile.read(length)))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def alert_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: yields its apprise URL and the list it fills."""
    received: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("_S", (_Sink,), {"received": received}))
    thread = threading.Thread(target=server.serve_forever, name="listener-demo-sink", daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def demo_config(base_url: str, database: Path, sink: str | None = None) -> str:
    """A configuration (TOML text) that watches the demo feeds (and alerts ``sink``)."""
    feeds = (*SOURCES, LIVE) if sink else SOURCES
    sources = "\n".join(
        f'[[sources]]\nname = "{name}"\nkind = "feed"\nurl = "{base_url}/{file}"\n'
        f'interval = "5m"   # {what}\n'
        for name, file, what in feeds
    )
    routes = f'[[routes]]\nname = "demo-sink"\nurls = ["{sink}"]\nformat = "text"\n' if sink else ""
    return f"""# listener demo configuration (written by `listener demo`)
[database]
url = "sqlite:///{database}"

[log]
level = "warning"

[alerts]
# the demo's clock runs fast: remind of firing alerts every 12 hours of feed time
repeat_interval = "12h"

[[brands]]
name = "Velora"
# a boolean query: the brand, its hashtag and handle, but not the actress of the same name
query = '(Velora OR #veloralock OR @velora) -Hollywood'


[[brands]]
name = "Nordbahn"
terms = ["Nordbahn", "#nordbahn"]

{routes}
{sources}"""
