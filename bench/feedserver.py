"""A fast loopback HTTP/1.1 server (asyncio, keep-alive) serving N synthetic feeds, for benches.

    python bench/feedserver.py --feeds 1000 --entries 50 --port-file PATH

Each feed is /feeds/<i>.xml: RSS 2.0, mixed English and German entries, a share of which
(--match-share, default 0.1) mention the bench brands. Answers 304 to a matching If-None-Match.
Prints nothing; writes its port to --port-file once it listens. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

BRANDS = ["Velora", "Nordbahn", "Kryptonite", "Brightwave", "Kestrel Bikes"]
EN = (
    "the new model arrived late and the support team did not answer my emails for a week so I "
    "am thinking about a refund but the ride itself is smooth and quiet"
).split(" ")
DE = (
    "der Zug kam wieder zu spät und der Kundenservice hat sich nicht gemeldet obwohl ich "
    "dreimal angerufen habe aber das Rad selbst fährt wirklich gut und leise"
).split(" ")


def vocabulary(words: list[str], size: int, rng: random.Random) -> tuple[list[str], list[float]]:
    """A realistic vocabulary: the base words plus made-up ones, with Zipf weights, so that
    unrelated synthetic texts differ as much as real ones do."""
    syllables = ["ka", "ri", "to", "len", "mar", "sch", "ung", "ber", "an", "ex", "pro", "tion"]
    extra = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size)}
    vocab = words + sorted(extra)
    return vocab, [1 / (rank + 1) for rank in range(len(vocab))]


_VOCAB: dict[str, tuple[list[str], list[float]]] = {}


def make_feed(index: int, entries: int, rng: random.Random, share: float = 0.1) -> bytes:
    if not _VOCAB:
        _VOCAB["en"] = vocabulary(EN, 3000, random.Random(1))
        _VOCAB["de"] = vocabulary(DE, 3000, random.Random(2))
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    items = []
    for n in range(entries):
        words, weights = _VOCAB["en"] if rng.random() < 0.6 else _VOCAB["de"]
        title = " ".join(rng.choices(words, weights, k=10))
        body = " ".join(rng.choices(words, weights, k=80))
        if rng.random() < share:  # by default about one entry in ten mentions a brand
            brand = rng.choice(BRANDS)
            body = body.replace(" ", f" {brand} ", 1)
        date = format_datetime(now - timedelta(minutes=index + n * 7))
        items.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://site{index % 97}.example/{index}/{n}?utm_source=rss</link>"
            f'<guid isPermaLink="false">feed{index}-entry{n}</guid><pubDate>{date}</pubDate>'
            f"<description>{escape('<p>' + body + '</p>')}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Synthetic feed {index}</title><link>https://site{index}.example/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


class Server:
    def __init__(self, feeds: int, entries: int, share: float = 0.1) -> None:
        rng = random.Random(42)
        self.bodies = {f"/feeds/{i}.xml": make_feed(i, entries, rng, share) for i in range(feeds)}
        self.etags = {
            p: '"' + hashlib.sha1(b).hexdigest()[:16] + '"' for p, b in self.bodies.items()
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = self.bodies.get(path)
                if body is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                elif headers.get("if-none-match") == self.etags[path]:
                    etag = self.etags[path]
                    writer.write(
                        f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n"
                        "Content-Length: 0\r\n\r\n".encode()
                    )
                else:
                    writer.write(
                        f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                        f"ETag: {self.etags[path]}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="listen on 127.0.0.1 .. 127.0.0.N (all loopback) as N hosts",
    )
    parser.add_argument(
        "--match-share",
        type=float,
        default=0.1,
        help="share of entries that mention a brand (1 = every entry, like a search feed)",
    )
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    server = Server(args.feeds, args.entries, args.match_share)
    hosts = [f"127.0.0.{i}" for i in range(1, args.hosts + 1)]
    with socket.socket() as probe:  # one port for every host
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listening = await asyncio.start_server(server.handle, hosts, port, backlog=1024)
    Path(args.port_file).write_text(str(listening.sockets[0].getsockname()[1]))
    async with listening:
        await listening.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
