"""Bench: one host with N sources that never answer and one healthy feed, polled by a real
`listener run` daemon; is the healthy feed polled on schedule, and do file descriptors and
memory stay flat?

    python bench/hanging_host.py [--dead 200] [--seconds 300] [--interval 60] [--restarted]

``--restarted`` starts from a database in which every dead source has failed before (as after
a restart of a daemon that saw them time out); without it the database is new, and the first
round of the host's sources is sorted out by first-try probes (nothing is known about them yet).

Figures (2-core shared machine, 300 s, interval 60 s): new database: healthy feed polled at
89, 157, 217, 287 s (first round of 200 probes took ~2 min), 13 host requests a minute after
it; restarted: 13, 73, 143, 203, 273 s. File descriptors 23-26, daemon tree RSS flat at
~246 MB once the worker process runs. The code before issue 18 (new database) polled the
healthy feed at 79, 139, 203, 269 s here, but logged 612 "timed out after 10s (total_timeout)"
in 300 s, most for requests that waited for a slot and were never sent (183 a minute).

The server (in this process, 127.0.0.1) accepts every connection; requests for /dead* never get
an answer (the handler waits until the client gives up), /ok gets a small RSS feed. The daemon
runs with `per_host_limit = 2` and `total_timeout = "10s"` (the issue's setting). Prints the
healthy feed's request times and gaps, host requests per minute, and the daemon's open file
descriptors and RSS (process tree) over time.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from poll_cycle import tree_rss_mb

from listener.config import load_config
from listener.storage import engine as db
from listener.storage import store

FEED = (
    b"<?xml version='1.0'?><rss version='2.0'><channel><title>ok</title>"
    b"<item><guid>1</guid><title>Kryptonite lock review</title><link>http://x/1</link>"
    b"</item></channel></rss>"
)


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str]] = []

    def add(self, path: str) -> None:
        with self.lock:
            self.requests.append((time.monotonic(), path))


def serve(log: Log) -> tuple[socketserver.ThreadingTCPServer, int]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                path = data.split(b" ", 2)[1].decode()
                log.add(path)
                if path.startswith("/dead"):
                    while conn.recv(4096):  # never answer; return when the client gives up
                        pass
                    return
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                    f"Content-Length: {len(FEED)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + FEED)
            except OSError:
                return

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, server.server_address[1]


def config(db: Path, port: int, dead: int, interval: int) -> str:
    sources = [
        f'[[sources]]\nname = "dead-{i}"\nurl = "http://127.0.0.1:{port}/dead{i}"\n'
        for i in range(dead)
    ]
    sources.append(f'[[sources]]\nname = "healthy"\nurl = "http://127.0.0.1:{port}/ok"\n')
    return (
        f'[database]\nurl = "sqlite:///{db}"\n[log]\nlevel = "warning"\n'
        f'[http]\nper_host_limit = 2\ntotal_timeout = "10s"\n'
        f'[polling]\ninterval = "{interval}s"\njitter = "10s"\nworkers = 1\n'
        f'[[brands]]\nname = "Kryptonite"\nterms = ["Kryptonite"]\n' + "\n".join(sources)
    )


def seed_failures(path: Path) -> None:
    """Every dead source failed once before (what a previous run of the daemon stored)."""
    settings = load_config(str(path))
    engine = db.connect(settings.database.url or "")
    now = datetime.now(UTC)
    catalog = [store.CatalogSource(s.name, s.kind, s.url or "") for s in settings.sources]
    with engine.begin() as conn:
        store.sync_catalog(conn, [b.name for b in settings.brands], catalog, now)
        for name, state in store.load_states(conn).items():
            if name.startswith("dead-"):
                error = "fetch: timed out after 10s (total_timeout)"
                store.record_failure(conn, state.id, now=now, error=error, next_poll_at=now)
    engine.dispose()


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dead", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--restarted", action="store_true")
    args = parser.parse_args()
    log = Log()
    server, port = serve(log)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "listener.toml"
        path.write_text(config(Path(tmp) / "l.db", port, args.dead, args.interval))
        env = {**os.environ, "LISTENER_CONFIG": ""}
        run = [sys.executable, "-m", "listener"]
        subprocess.run([*run, "db", "upgrade", "--config", str(path)], env=env, check=True)
        if args.restarted:
            seed_failures(path)
        with (Path(tmp) / "run.log").open("w") as sink:
            proc = subprocess.Popen(
                [*run, "run", "--config", str(path)], stdout=sink, stderr=sink, env=env
            )
        started = time.monotonic()
        samples = []
        try:
            while time.monotonic() - started < args.seconds:
                samples.append((time.monotonic() - started, fds(proc.pid), tree_rss_mb(proc.pid)))
                time.sleep(15)
            samples.append((time.monotonic() - started, fds(proc.pid), tree_rss_mb(proc.pid)))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            server.shutdown()
        output = (Path(tmp) / "run.log").read_text()
    healthy = [t - started for t, p in log.requests if p == "/ok"]
    gaps = [b - a for a, b in itertools.pairwise(healthy)]
    state = "restarted (dead sources failed before)" if args.restarted else "new database"
    print(f"{args.dead} never answering sources + 1 healthy on one host, interval", end=" ")
    print(f"{args.interval}s, per_host_limit 2, total_timeout 10s; {state}")
    print("healthy requests at (s):", " ".join(f"{t:.0f}" for t in healthy))
    longest = max(gaps, default=0)
    print(f"healthy requests: {len(healthy)} in {args.seconds}s; max gap {longest:.0f}s")
    minutes = args.seconds // 60 + 1
    per_minute = [0] * minutes
    for t, _ in log.requests:
        per_minute[min(minutes - 1, int((t - started) // 60))] += 1
    print("host requests per minute:", per_minute)
    for at, fd, rss in samples:
        print(f"t={at:4.0f}s fds={fd} rss_tree={rss:.0f}MB")
    timeouts = output.count("(total_timeout)")
    print(f"daemon log: {timeouts} timeouts, {output.count('Traceback')} tracebacks")


if __name__ == "__main__":
    main()
