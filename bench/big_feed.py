"""Bench: one feed with 60,000 entries (RSS 2.0, and an Atom 1.0 variant) served from a real
HTTP server on 127.0.0.1, polled by `listener poll --once` into a fresh SQLite file.

    python bench/big_feed.py [--entries 60000] [--format rss|atom|both] [--workers N]

Prints, per format: wall time of the whole command (start-up, poll, detection), the poll's own
time, the entries stored (rows in the mentions table), and the peak memory of the command's
process tree (the CLI process and its parser workers; older versions also had a forkserver
and multiprocessing's resource tracker), sampled from /proc every
20 ms: RSS summed over the processes (pages shared between them counted once per process),
and PSS (shared pages divided among the processes that share them, so the sum is what the
tree really holds). A second poll follows (the server answers 304 to the stored ETag).

Every entry mentions one of the bench brands, so every entry becomes a mention: the worst case
for storage. The body is about 45 MB for 60,000 entries; the configuration raises
``http.max_body_size`` to 200MB for it (the default, 10MB, would refuse it).

Figures (RSS feed, 60,000 entries, 53 MB; 2-core machine shared by several people, load ~11,
so wall times are mostly waiting for a core; one worker): before batches, peak RSS of the tree
939 MB (PSS 878; command 591, worker 516), CPU 92 s; in batches of 1,000, peak RSS 381 MB
(PSS 319; command 214: ~110 of imports plus the 53 MB body held while its batches run; worker
187: ~130 of imports and models), CPU 122 s (each batch reads the story window again). Idle,
the same tree is ~260 MB RSS, so the 200 MB of issue 18 is below the daemon's own baseline.
On a quiet moment (load ~1): 129 s wall, CPU 109 s, peak RSS 381 MB (before: 183 s wall at a
moderate load).

Body spooled to a file (not held by the command; the split pass and each batch read from the
file by the worker), load ~4-7: before 368 MB peak RSS (PSS 334; command 205: the body and
its bytes() copy, worker 136), CPU 90 s; after 310 MB (PSS 265; command 148, worker 136,
forkserver 14, resource tracker 13), CPU 86-102 s. With ``--workers 0`` (one process): 249 MB.
The command grew ~0.7 MB per stored batch of 1,000: each batch read the whole story window
(1,000 stories more each time) and the process kept the high-water mark in Python's
small-object arenas. With the window streamed through the batch's index, malloc_trim after
each piece and stored batch, and 100-row inserts, back to back at load 3-7: 241.4 -> 201.6-202 MB
peak RSS (command 146 -> 113, flat from the fifth batch; worker 82 -> 81, its models; resource
tracker 13). With listener.workers.Pool (no resource tracker) and the compact story window
kept in memory between batches: 181.4 MB (PSS 160.3; command 103, worker 83), CPU 65 s.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from feedserver import DE, EN, vocabulary

BRANDS = ["Velora", "Nordbahn", "Kryptonite", "Brightwave", "Kestrel Bikes"]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def make_body(entries: int, kind: str, seed: int = 7) -> bytes:
    """A feed of ``entries`` entries, each ~80 words of English or German with one brand."""
    rng = random.Random(seed)
    vocabs = {"en": vocabulary(EN, 3000, random.Random(1)), "de": vocabulary(DE, 3000, rng)}
    parts = []
    if kind == "rss":
        parts.append(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Big feed</title><link>https://big.example/</link><language>en</language>\n"
        )
    else:
        parts.append(
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>Big feed</title><id>urn:big</id><updated>2026-11-23T12:00:00Z</updated>\n"
        )
    for n in range(entries):
        words, weights = vocabs["en"] if rng.random() < 0.6 else vocabs["de"]
        title = " ".join(rng.choices(words, weights, k=10))
        body = " ".join(rng.choices(words, weights, k=80))
        body = body.replace(" ", f" {rng.choice(BRANDS)} ", 1)
        date = NOW - timedelta(minutes=n)
        link = f"https://site{n % 97}.example/post/{n}"
        if kind == "rss":
            parts.append(
                f"<item><title>{escape(title)}</title><link>{link}</link>"
                f'<guid isPermaLink="false">big-{n}</guid>'
                f"<pubDate>{format_datetime(date)}</pubDate>"
                f"<description>{escape('<p>' + body + '</p>')}</description></item>\n"
            )
        else:
            parts.append(
                f'<entry><title>{escape(title)}</title><link rel="alternate" href="{link}"/>'
                f"<id>urn:big:{n}</id><updated>{date.isoformat().replace('+00:00', 'Z')}"
                f'</updated><content type="html">{escape("<p>" + body + "</p>")}</content>'
                "</entry>\n"
            )
    parts.append("</channel></rss>" if kind == "rss" else "</feed>")
    return "".join(parts).encode()


def serve(bodies: dict[str, bytes]) -> ThreadingHTTPServer:
    etags = {path: '"' + hashlib.sha1(body).hexdigest()[:16] + '"' for path, body in bodies.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = bodies.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == etags[self.path]:
                self.send_response(304)
                self.send_header("ETag", etags[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            kind = "rss" if self.path.endswith("rss.xml") else "atom"
            self.send_header("Content-Type", f"application/{kind}+xml; charset=utf-8")
            self.send_header("ETag", etags[self.path])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return found


def role(pid: int, root: int) -> str:
    """What a process of the tree is: the command, the forkserver, a worker, the tracker."""
    if pid == root:
        return "command"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read()
        with open(f"/proc/{pid}/stat") as stat:
            parent = int(stat.read().rpartition(")")[2].split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return "gone"
    if b"resource_tracker" in argv:
        return "tracker"
    if b"listener.workers" in argv:  # listener.workers.Pool's workers (issue 16 part 4)
        return "worker"
    if b"forkserver" in argv:
        return "forkserver" if parent == root else "worker"
    return "other"


def memory_mb(pids: list[int]) -> dict[int, tuple[float, float]]:
    """(RSS, PSS) of each of these processes, in MB."""
    found = {}
    for pid in pids:
        rss = pss = 0
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found[pid] = (rss / 1024, pss / 1024)
    return found


class Measured:
    """What one measured command did."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.rss = 0.0  # peak of the tree's summed RSS, MB
        self.pss = 0.0  # peak of the tree's summed PSS, MB
        self.processes = 0
        self.roles: dict[str, float] = {}  # peak RSS per role (the largest process of it)
        self.cpu: dict[int, float] = {}  # CPU seconds (user + system) last seen per process
        self.out = ""

    def roles_text(self) -> str:
        return ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(self.roles.items()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(argv: list[str], env: dict[str, str]) -> Measured:
    """Run argv, sampling its process tree's memory every 20 ms."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    result = Measured()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            pids = tree(proc.pid)
            found = memory_mb(pids)
            result.rss = max(result.rss, sum(rss for rss, _ in found.values()))
            result.pss = max(result.pss, sum(pss for _, pss in found.values()))
            result.processes = max(result.processes, len(found))
            for pid, (rss, _) in found.items():
                name = role(pid, proc.pid)  # again each time: a fork execs after a while
                result.roles[name] = max(result.roles.get(name, 0.0), rss)
                result.cpu[pid] = max(result.cpu.get(pid, 0.0), cpu_seconds(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    result.wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[3:])} failed ({proc.returncode}): {err.decode()[-800:]}")
    result.out = out.decode() + err.decode()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=60_000)
    parser.add_argument("--format", choices=["rss", "atom", "both"], default="both")
    parser.add_argument("--workers", type=int, default=None, help="polling.workers (default)")
    args = parser.parse_args()
    kinds = ["rss", "atom"] if args.format == "both" else [args.format]
    bodies = {f"/{kind}.xml": make_body(args.entries, kind) for kind in kinds}
    server = serve(bodies)
    port = server.server_address[1]
    print(
        f"bench: {args.entries} entries, "
        + ", ".join(f"{k} {len(bodies[f'/{k}.xml']) / 1e6:.1f} MB" for k in kinds)
        + f", {os.cpu_count()} cores, workers "
        + (str(args.workers) if args.workers is not None else "default")
    )
    env = {**os.environ, "LISTENER_CONFIG": ""}
    with contextlib.ExitStack() as stack:
        stack.callback(server.shutdown)
        for kind in kinds:
            # removed at exit, failed runs included
            work = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="listener-bigfeed-"))
            )
            database = work / "bench.db"
            lines = [
                f'[database]\nurl = "sqlite:///{database}"\n[log]\nlevel = "warning"\n',
                '[http]\nmax_body_size = "200MB"\ntotal_timeout = "120s"\n',
            ]
            if args.workers is not None:
                lines.append(f"[polling]\nworkers = {args.workers}\n")
            for brand in BRANDS:
                lines.append(f'[[brands]]\nname = "{brand}"\nterms = ["{brand}"]\n')
            lines.append(f'[[sources]]\nname = "big"\nurl = "http://127.0.0.1:{port}/{kind}.xml"\n')
            config = work / "listener.toml"
            config.write_text("".join(lines))
            listener = [sys.executable, "-m", "listener", "--config", str(config)]
            subprocess.run([*listener, "db", "upgrade"], check=True, capture_output=True, env=env)
            for label in ("first poll", "304 poll"):
                run = run_measured([*listener, "poll", "--once"], env=env)
                polled = re.search(r"Polled .*? in ([\d.]+) s", run.out)
                with sqlite3.connect(database) as conn:
                    stored = conn.execute("SELECT count(*) FROM mentions").fetchone()[0]
                lines_out = run.out.splitlines()
                summary = " ".join(line.strip() for line in lines_out if line.startswith("Polled"))
                poll_s = polled.group(1) if polled else "?"
                print(
                    f"{kind:4s} {label:10s}: wall {run.wall:6.1f} s (poll {poll_s} s), "
                    f"CPU {sum(run.cpu.values()):6.1f} s (process tree), "
                    f"stored {stored}, peak RSS {run.rss:6.1f} MB, peak PSS {run.pss:6.1f} MB "
                    f"({run.processes} processes; peak RSS MB by process: {run.roles_text()})"
                    f"\n    {summary}"
                )
                warnings = [
                    line
                    for line in lines_out
                    if not line.startswith(("Polled", "Detection:")) and line.strip()
                ]
                for line in warnings[:5]:
                    print(f"    {line[:200]}")


if __name__ == "__main__":
    main()
