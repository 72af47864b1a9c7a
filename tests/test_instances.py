"""Several daemons on one PostgreSQL database: each poll runs on exactly one instance, one
instance leads detection and delivery and another takes over after kill -9; on SQLite a second
daemon is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from feeds import rss

from listener.storage import engine as dbengine
from listener.storage import instances

SOURCES = 6


@pytest.fixture
def feeds() -> Iterator[tuple[str, Counter[str]]]:
    hits: Counter[str] = Counter()
    body = rss([{"title": "Kryptonite news", "guid": "k"}])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def config(tmp_path: Path, database: str, base: str) -> Path:
    sources = "".join(
        f'[[sources]]\nname = "s{i}"\nurl = "{base}/feed{i}.xml"\ninterval = "10s"\n'
        for i in range(SOURCES)
    )
    path = tmp_path / "listener.toml"
    path.write_text(
        f'[database]\nurl = "{database}"\n[log]\nlevel = "warning"\n'
        '[polling]\njitter = "1s"\nworkers = 0\n'
        f'[[brands]]\nname = "Kryptonite"\n{sources}',
        encoding="utf-8",
    )
    return path


def start(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--config", str(path)],
            stdout=sink,
            stderr=sink,
            env={**os.environ, "LISTENER_CONFIG": ""},
        )


def test_three_instances_poll_each_source_once_per_interval(
    tmp_path: Path, pg_database: str, feeds: tuple[str, Counter[str]]
) -> None:
    base, hits = feeds
    path = config(tmp_path, pg_database, base)
    procs = [start(path, tmp_path / f"run{i}.log") for i in range(3)]
    try:
        began = time.monotonic()
        time.sleep(25)
        elapsed = time.monotonic() - began
        engine = dbengine.connect(pg_database)
        rows = instances.instances(engine)
        engine.dispose()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=40)
    assert len(rows) == 3  # three heartbeats
    polls = [hits[f"/feed{i}.xml"] for i in range(SOURCES)]
    print(f"3 instances, {SOURCES} sources, {elapsed:.0f} s at a 10 s interval: polls {polls}")
    # one poll per source per interval (10 s, claims for 9 s): without claims, three times as many
    most = int(elapsed / 9) + 1
    assert all(1 <= n <= most for n in polls), (polls, most)
    assert sum(polls) <= SOURCES * most
    for i in range(3):
        assert "Traceback" not in (tmp_path / f"run{i}.log").read_text()


HOLDER = """
import sys, time
from listener.storage import engine as db
from listener.storage.instances import Leadership
lead = Leadership(db.connect(sys.argv[1]))
print("leader" if lead.try_lead() else "follower", flush=True)
time.sleep(600)
"""


def test_leader_lock_is_taken_over_after_kill_9(pg_database: str, tmp_path: Path) -> None:
    script = tmp_path / "hold.py"
    script.write_text(HOLDER, encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, str(script), pg_database], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "leader"
        engine = dbengine.connect(pg_database)
        other = instances.Leadership(engine)
        assert other.try_lead() is False  # one leader at a time
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not other.try_lead() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert other.leading and other.try_lead()  # taken over once the dead session ended
        took = 10 - (deadline - time.monotonic())
        assert took < 10
        other.release()
        engine.dispose()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_second_daemon_on_one_sqlite_file_is_refused(
    tmp_path: Path, feeds: tuple[str, Counter[str]]
) -> None:
    base, _ = feeds
    database = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(database)
    dbengine.upgrade(engine)
    engine.dispose()
    path = config(tmp_path, database, base)
    first = start(path, tmp_path / "first.log")
    try:
        time.sleep(4)
        second = subprocess.run(
            [sys.executable, "-m", "listener", "run", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LISTENER_CONFIG": ""},
        )
        assert second.returncode == 1
        [line] = second.stderr.splitlines()
        assert "another listener daemon" in line and "PostgreSQL" in line
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=40)
