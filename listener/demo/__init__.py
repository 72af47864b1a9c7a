"""The demo: bundled sample feeds served on 127.0.0.1 and a configuration that watches them.

Nothing here reaches beyond the loopback interface. The sample feeds are English and German posts
about the fictional brands Velora (e-bikes, bike locks) and Nordbahn (a regional train operator).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.utils import format_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

FEEDS = Path(__file__).with_name("feeds")

SOURCES = (
    ("bike-blog", "bike-blog.xml", "English bike blog (RSS)"),
    ("radforum", "forum-de.xml", "German cycling forum (Atom)"),
    ("news-de", "news-de.xml", "German news (RSS, ISO-8859-1)"),
    ("social", "social.xml", "Hashtag feed (RSS)"),
)


LIVE = ("live", "live.xml", "Forum feed with a storm going on right now (generated)")


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {".xml": "application/rss+xml"}  # noqa: RUF012 (class attribute by design)
    live: bytes = b""

    def do_GET(self) -> None:
        if self.path.startswith("/live.xml"):
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(self.live)))
            self.end_headers()
            self.wfile.write(self.live)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


_CALM = (
    "Rode my Velora to work again, battery still at 60%.",
    "Anyone know if the Velora rack fits a child seat?",
    "Velora service appointment booked, quick and friendly.",
    "Comparing the Velora City with two other e-bikes this weekend.",
)
_OPENERS = (
    "Just tried it myself:",
    "Unbelievable.",
    "Day three of this mess.",
    "Seen the video?",
    "Okay, so",
    "Warning to everyone in {city}:",
    "My neighbour showed me,",
    "Can confirm,",
)
_COMPLAINTS = (
    "my Velora lock opens with a cheap ballpoint pen in {n} seconds",
    "Velora support hung up on me when I asked about the pen trick",
    "the {price} euro Velora lock is useless, my bike got stolen in {city}",
    "Velora knew about the pen problem and kept selling the lock",
    "Velora wants me to pay shipping to return their broken lock",
    "the Velora store in {city} refused a refund for the defective lock",
    "a kid opened my Velora lock with a Bic pen at the station",
    "Velora's statement blames customers for 'misuse', what a joke",
)
_CLOSERS = (
    "Worst purchase ever.",
    "I want my money back!",
    "Never again, Velora.",
    "Shame on them.",
    "Disgusting customer service.",
    "Absolute scandal.",
    "Terrible, just terrible.",
    "Returning it tomorrow.",
)
_CITIES = ("Berlin", "Leeds", "Graz", "Utrecht", "Boston", "Lyon", "Malmo", "Porto", "Basel")


def _angry(rng: random.Random) -> str:
    city = rng.choice(_CITIES)
    complaint = rng.choice(_COMPLAINTS).format(
        n=rng.randrange(3, 40), price=rng.choice((79, 99, 129, 149)), city=city
    )
    return f"{rng.choice(_OPENERS).format(city=city)} {complaint}. {rng.choice(_CLOSERS)}"


def live_feed(now: datetime, seed: int = 7) -> bytes:
    """An RSS feed of a forum where Velora is usually discussed calmly, a few posts a day for ten
    days, and where an angry storm started an hour ago: forty posts from forty people."""
    rng = random.Random(seed)  # noqa: S311 (sample data, not crypto)
    items = []
    for n in range(30):
        when = now - timedelta(days=10) + timedelta(hours=8 * n + rng.randrange(0, 120) / 60)
        items.append((when, f"calm-{n}", f"rider{n}", _CALM[n % len(_CALM)]))
    for n in range(40):
        when = now - timedelta(minutes=80 - n * 1.3)
        items.append((when, f"storm-{n}", f"angry{n}", _angry(rng)))
    body = "".join(
        f"<item><guid>https://forum.example.org/t/{guid}</guid>"
        f"<link>https://forum{n % 9}.example.org/t/{guid}</link>"
        f"<title>{escape(text[:60])}</title><description>{escape(text)}</description>"
        f"<author>{author}@forum.example.org ({author})</author>"
        f"<pubDate>{format_datetime(when)}</pubDate></item>"
        for n, (when, guid, author, text) in enumerate(sorted(items, reverse=True))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>forum.example.org: e-bikes</title><link>https://forum.example.org/</link>"
        f"<description>sample live forum feed</description>{body}</channel></rss>"
    ).encode()


@contextmanager
def serve_feeds(now: datetime | None = None) -> Iterator[str]:
    """Serve the bundled feeds (and, given ``now``, the live storm feed) on an ephemeral
    loopback port; yields the base URL."""
    handler_class = type("_Handler", (_QuietHandler,), {"live": live_feed(now) if now else b""})
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

[[brands]]
name = "Velora"
# a boolean query: the brand, its hashtag and handle, but not the actress of the same name
query = '(Velora OR #veloralock OR @velora) -Hollywood'


[[brands]]
name = "Nordbahn"
terms = ["Nordbahn", "#nordbahn"]

{routes}
{sources}"""
