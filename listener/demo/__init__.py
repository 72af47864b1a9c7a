"""The demo: bundled sample feeds served on 127.0.0.1 and a configuration that watches them.

Nothing here reaches beyond the loopback interface. The sample feeds are English and German posts
about the fictional brands Velora (e-bikes, bike locks) and Nordbahn (a regional train operator).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FEEDS = Path(__file__).with_name("feeds")

SOURCES = (
    ("bike-blog", "bike-blog.xml", "English bike blog (RSS)"),
    ("radforum", "forum-de.xml", "German cycling forum (Atom)"),
    ("news-de", "news-de.xml", "German news (RSS, ISO-8859-1)"),
    ("social", "social.xml", "Hashtag feed (RSS)"),
)


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {".xml": "application/rss+xml"}  # noqa: RUF012 (class attribute by design)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serve_feeds() -> Iterator[str]:
    """Serve the bundled feeds on an ephemeral loopback port; yields the base URL."""
    handler = partial(_QuietHandler, directory=str(FEEDS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="listener-demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def demo_config(base_url: str, database: Path) -> str:
    """A configuration (TOML text) that watches the demo feeds."""
    sources = "\n".join(
        f'[[sources]]\nname = "{name}"\nkind = "feed"\nurl = "{base_url}/{file}"\n'
        f'interval = "5m"   # {what}\n'
        for name, file, what in SOURCES
    )
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

{sources}"""
