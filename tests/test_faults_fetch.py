"""Faults on the fetching side, end to end: a real `listener run` daemon (or the pipeline) against
real servers on 127.0.0.1, real SQLite files, real signals, and libfaketime for wall-clock jumps.

Cases: a host full of sources that never answer beside a healthy one (and a reload away from
them), secrets on cross-origin redirects, a broken API page, a 304 to an unconditional request,
the wall clock stepped back and forward by a day (intervals, Retry-After, the daily retention
job), and kill -9 of a daemon with worker processes. Each case adds a row to a table (case,
outcome, duplicates, data lost) that is printed at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpd import serve
from sqlalchemy import Engine, func, select

from listener.config import Settings, load_config
from listener.service.poll import Poller, PollOutcome, http_settings
from listener.sources import api
from listener.sources.client import Client
from listener.storage import engine as db
from listener.storage import store
from listener.storage.tables import Mention

ROWS: list[tuple[str, str, str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def fault_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not ROWS:
        return
    widths = [max(len(r[i]) for r in [("case", "outcome", "duplicates", "data lost"), *ROWS])
              for i in range(4)]  # fmt: skip
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        for line in [("case", "outcome", "duplicates", "data lost"), *ROWS]:
            cells = zip(line, widths, strict=True)
            reporter.write_line(" | ".join(cell.ljust(w) for cell, w in cells))


def row(case: str, outcome: str, duplicates: str, lost: str) -> None:
    ROWS.append((case, outcome, duplicates, lost))


# --- servers ---------------------------------------------------------------------------------


def rss(*items: tuple[str, str], published: datetime | None = None) -> bytes:
    when = (published or datetime.now(UTC)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>http://example.org/{guid}</link>"
        f"<pubDate>{when}</pubDate></item>"
        for guid, title in items
    )
    return f"<rss version='2.0'><channel><title>t</title>{entries}</channel></rss>".encode()


def answer(status: str, body: bytes = b"", headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{headers}\r\n"
    ).encode() + body


class Server:
    """A raw server: ``route(path)`` gives the answer (None: never answer); every request's
    path and monotonic arrival time is logged."""

    def __init__(self, route: Callable[[str], bytes | None]) -> None:
        self.route = route
        self.log: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __call__(self, conn: socket.socket, head: bytes) -> None:
        parts = head.split(b" ", 2)
        path = parts[1].decode() if len(parts) > 2 else "?"
        with self._lock:
            self.log.append((time.monotonic(), path))
        reply = self.route(path)
        if reply is None:
            while conn.recv(4096):  # never answer; end when the client gives up
                pass
            return
        conn.sendall(reply)

    def times(self, prefix: str) -> list[float]:
        with self._lock:
            return [t for t, p in self.log if p.startswith(prefix)]


# --- the daemon ------------------------------------------------------------------------------


def write_config(
    path: Path, db_path: Path, body: str, extra: str = "", level: str = "warning"
) -> Path:
    path.write_text(
        f'[database]\nurl = "sqlite:///{db_path}"\n[log]\nlevel = "{level}"\n{extra}\n'
        '[[brands]]\nname = "Kryptonite"\nterms = ["Kryptonite"]\n' + body,
        encoding="utf-8",
    )
    return path


def upgrade(config: Path) -> None:
    env = {**os.environ, "LISTENER_CONFIG": ""}
    command = [sys.executable, "-m", "listener", "db", "upgrade", "--config", str(config)]
    subprocess.run(command, env=env, check=True, capture_output=True)


def start(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--config", str(config)],
            stdout=sink,
            stderr=sink,
            env={**os.environ, "LISTENER_CONFIG": "", **(env or {})},
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(0.1)


def seed_failures(config: Path, prefix: str) -> None:
    """The sources named ``prefix...`` failed before (what a previous daemon run stored)."""
    settings = load_config(str(config), env={})
    engine = db.connect(settings.database.url or "")
    now = datetime.now(UTC)
    catalog = [store.CatalogSource(s.name, s.kind, s.url or "") for s in settings.sources]
    with engine.begin() as conn:
        store.sync_catalog(conn, [b.name for b in settings.brands], catalog, now)
        for name, state in store.load_states(conn).items():
            if name.startswith(prefix):
                error = "fetch: timed out after 2s (total_timeout)"
                store.record_failure(conn, state.id, now=now, error=error, next_poll_at=now)
    engine.dispose()


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- 1. one host, 200 sources that never answer, one healthy feed ------------------------------


def test_dead_sources_do_not_starve_a_healthy_one_on_their_host(tmp_path: Path) -> None:
    feed = answer("200 OK", rss(("1", "Kryptonite lock review")), "Content-Type: text/xml\r\n")
    server = Server(lambda path: None if path.startswith("/dead") else feed)
    with serve(server) as base:
        sources = "".join(
            f'[[sources]]\nname = "dead-{i}"\nurl = "{base}/dead{i}"\n' for i in range(200)
        )
        healthy = f'[[sources]]\nname = "healthy"\nurl = "{base}/ok"\n'
        settings = (
            '[http]\nper_host_limit = 2\ntotal_timeout = "2s"\n'
            '[polling]\ninterval = "10s"\njitter = "1s"\nworkers = 0\n'
        )
        config = write_config(
            tmp_path / "l.toml", tmp_path / "l.db", sources + healthy, settings, level="info"
        )
        upgrade(config)
        seed_failures(config, "dead-")  # a restart: they timed out before
        proc = start(config, tmp_path / "run.log")
        try:
            wait_until(lambda: len(server.times("/ok")) >= 1, 60, "the healthy feed is polled")
            first = server.times("/ok")[0]
            fd_start = fds(proc.pid)
            time.sleep(45)
            polls = [t for t in server.times("/ok") if t <= first + 45]
            fd_end = fds(proc.pid)
            dead_before = len(server.times("/dead"))
            # reload to the healthy feed alone: the dead ones' queued polls go, slots come back
            config.write_text(config.read_text().replace(sources, ""), encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            reloaded = time.monotonic()
            wait_until(
                lambda: "configuration reloaded" in (tmp_path / "run.log").read_text(),
                90,
                "the reload",
            )
            after_reload = time.monotonic()
            time.sleep(25)
            late_dead = [t for t in server.times("/dead") if t > after_reload + 3]
            healthy_after = [t for t in server.times("/ok") if t > after_reload]
        finally:
            stop(proc)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    row(
        "200 never-answering feeds + 1 healthy on one host (restart), 45 s",
        f"healthy polled {len(polls)}x, max gap {max(gaps):.0f}s (interval 10s, deadline 2s); "
        f"{dead_before} dead requests; fds {fd_start}->{fd_end}",
        "0",
        "0",
    )
    row(
        "  ... then SIGHUP to a config with only the healthy feed",
        f"reload done in {after_reload - reloaded:.0f}s (20 s grace); {len(late_dead)} dead "
        f"requests after it, healthy polled {len(healthy_after)}x in 25 s",
        "0",
        "0",
    )
    assert len(polls) >= 4  # every ~10 s, not once
    assert max(gaps) < 10 + 1 + 2 + 10  # interval + jitter + one deadline (+ slack for load)
    assert fd_end <= fd_start + 10
    assert not late_dead
    assert len(healthy_after) >= 2
    assert "Traceback" not in (tmp_path / "run.log").read_text()


# --- 2. credentials and redirects ------------------------------------------------------------


def poll(settings: Settings, engine: Engine, clock: Callable[[], datetime] | None = None) -> Any:
    async def go() -> list[PollOutcome]:
        async with Client(http_settings(settings)) as client:
            extra = {"clock": clock} if clock else {}
            poller = Poller(settings, engine, client, **extra)  # type: ignore[arg-type]
            try:
                return await poller.poll_all()
            finally:
                poller.close()

    return {o.source: o for o in asyncio.run(go())}


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = db.connect(f"sqlite:///{tmp_path / 'faults.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


def test_secrets_in_the_query_do_not_follow_a_redirect_to_another_origin(
    tmp_path: Path, sqlite: Engine
) -> None:
    feed = answer("200 OK", rss(("1", "Kryptonite")), "Content-Type: text/xml\r\n")
    elsewhere = Server(lambda path: feed)
    with serve(elsewhere) as other:

        def bounce(path: str) -> bytes:  # echoes the query into the new location, as many do
            query = path.partition("?")[2]
            return answer("302 Found", headers=f"Location: {other}/feed?{query}\r\n")

        with serve(Server(bounce)) as base:
            config = write_config(
                tmp_path / "l.toml",
                tmp_path / "faults.db",
                f'[[sources]]\nname = "feed"\n'
                f'url = "{base}/feed?q=lock&api_key=K3Y-0001&region=${{REGION_SECRET}}"\n'
                f'[[sources]]\nname = "api"\nkind = "json"\nurl = "{base}/api?token=T0K-0002"\n'
                'items_path = "items"\nfields = { id = "id", title = "title" }\n',
            )
            settings = load_config(str(config), env={"REGION_SECRET": "eu-s3cret-9"})
            outcomes = poll(settings, sqlite)
    sent = [p for _, p in elsewhere.log]
    leaked = [p for p in sent if any(s in p for s in ("K3Y-0001", "eu-s3cret-9", "T0K-0002"))]
    assert outcomes["feed"].status == "ok" and sent == ["/feed?q=lock"]
    assert outcomes["api"].status == "failed"
    assert "another origin" in (outcomes["api"].error or "")
    assert "T0K" not in (outcomes["api"].error or "")
    assert not leaked
    row(
        "feed ?api_key=...&region=${SECRET} redirected to another origin",
        f"followed; other origin got {sent[0]!r}",
        "0",
        "0",
    )
    row("json API source redirected to another origin", "refused, 1 error line", "0", "0")


def test_a_304_to_an_unconditional_request_is_a_server_fault(
    tmp_path: Path, sqlite: Engine
) -> None:
    server = Server(lambda path: answer("304 Not Modified"))
    with serve(server) as base:
        config = write_config(
            tmp_path / "l.toml",
            tmp_path / "faults.db",
            f'[[sources]]\nname = "f"\nurl = "{base}/f"\n',
        )
        outcome = poll(load_config(str(config), env={}), sqlite)["f"]
    assert outcome.status == "failed"
    assert "unconditional" in (outcome.error or "") and "server fault" in (outcome.error or "")
    row("304 to a request without validators", "failed: logged as server fault, backoff", "0", "0")


# --- 3. paging --------------------------------------------------------------------------------


def json_api(broken: Callable[[int], bool]) -> Callable[[str], bytes]:
    """Four pages of ten items, newest first, linked by ``next``; page N is broken while
    ``broken(N)``."""
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def route(path: str) -> bytes:
        page = int(path.partition("page=")[2] or 1)
        if broken(page):
            return answer("200 OK", b'{"items": [', "Content-Type: application/json\r\n")
        items = [
            {
                "id": f"{n}",
                "title": f"Kryptonite item {n}",
                "published": (start - timedelta(minutes=n)).isoformat(),
            }
            for n in range((page - 1) * 10, page * 10)
        ]
        document = {"items": items, "next": f"/api?page={page + 1}" if page < 4 else None}
        return answer("200 OK", json.dumps(document).encode(), "Content-Type: application/json\r\n")

    return route


def api_config(tmp_path: Path, base: str) -> Settings:
    config = write_config(
        tmp_path / "l.toml",
        tmp_path / "faults.db",
        f'[[sources]]\nname = "api"\nkind = "json"\nurl = "{base}/api"\nitems_path = "items"\n'
        'fields = { id = "id", title = "title", published = "published", next = "next" }\n',
    )
    return load_config(str(config), env={})


def mention_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Mention)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(Mention.guid)))).scalar_one()
    return int(total), int(distinct)


def test_a_broken_later_page_is_read_again_next_poll(tmp_path: Path, sqlite: Engine) -> None:
    fixed = threading.Event()
    server = Server(json_api(lambda page: page == 3 and not fixed.is_set()))
    with serve(server) as base:
        settings = api_config(tmp_path, base)
        first = poll(settings, sqlite)["api"]
        after_first = mention_counts(sqlite)
        state = store_state(sqlite)
        fixed.set()
        second = poll(settings, sqlite)["api"]
    assert first.status == "ok" and first.warnings and "attempt 1 of" in first.warnings[0]
    assert after_first == (20, 20)
    assert api.read_cursor(state.cursor) == (None, 1)
    assert state.next_poll_at is not None
    assert second.status == "ok" and not second.warnings
    total, distinct = mention_counts(sqlite)
    assert (total, distinct) == (40, 40)
    assert api.read_cursor(store_state(sqlite).cursor)[1] == 0
    row(
        "json API: page 3 of 4 malformed, fixed by the next poll",
        f"poll 1 stored {after_first[0]}, cursor kept; poll 2 read all pages: {total} stored",
        f"{total - distinct}",
        f"{40 - distinct}",
    )


def test_a_gap_that_stays_broken_is_given_up_after_bounded_retries(
    tmp_path: Path, sqlite: Engine
) -> None:
    server = Server(json_api(lambda page: page == 3))
    waits = []
    with serve(server) as base:
        settings = api_config(tmp_path, base)
        clock = [datetime(2026, 11, 20, 13, 0, tzinfo=UTC)]
        for _ in range(api.GAP_RETRIES + 1):
            outcome = poll(settings, sqlite, clock=lambda: clock[0])["api"]
            due = store_state(sqlite).next_poll_at
            assert due is not None
            waits.append((due.replace(tzinfo=UTC) - clock[0]).total_seconds())
            clock[0] = due.replace(tzinfo=UTC)
    state = store_state(sqlite)
    assert "given up after 5 attempts" in (outcome.warnings[0] if outcome.warnings else "")
    assert api.read_cursor(state.cursor) == ("2026-11-20T12:00:00.000Z", 0)
    assert waits[3] > waits[0]  # backing off
    assert mention_counts(sqlite) == (20, 20)
    row(
        "json API: page 3 of 4 broken for good",
        f"retried {api.GAP_RETRIES}x with backoff ({', '.join(f'{w:.0f}s' for w in waits[:-1])}),"
        " then given up with a warning",
        "0",
        "20 (pages 3-4, said in the warning)",
    )


def store_state(engine: Engine) -> Any:
    with engine.connect() as conn:
        return store.load_states(conn)["api"]


# --- 4. wall-clock jumps (libfaketime) --------------------------------------------------------


def faketime_library() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        if os.environ.get("LISTENER_REQUIRE_FAKETIME"):
            pytest.fail("libfaketime is required here (apt-get install faketime)")
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    return found[0]


class FakeClock:
    """The daemon's wall clock: real time plus an offset we write; its monotonic clock stays
    real (as when NTP or an operator steps the clock)."""

    def __init__(self, tmp_path: Path) -> None:
        self.file = tmp_path / "faketime"
        self.file.write_text("+0\n")
        self.env = {
            "LD_PRELOAD": faketime_library(),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_DONT_RESET": "1",
        }

    def jump(self, offset: str) -> None:
        self.file.write_text(f"{offset}\n")


@pytest.mark.parametrize("offset", ["-1d", "+1d"])
def test_a_wall_clock_jump_keeps_intervals_retry_after_and_the_daily_job(
    tmp_path: Path, offset: str
) -> None:
    clock = FakeClock(tmp_path)
    requests: list[float] = []
    old = datetime.now(UTC) - timedelta(days=34, hours=12)  # pruned at "35d" once it says +1d
    feed = answer("200 OK", rss(("1", "Kryptonite"), published=old), "Content-Type: text/xml\r\n")
    limited = answer("429 Too Many Requests", headers="Retry-After: 15\r\n")

    def route(path: str) -> bytes:
        requests.append(time.monotonic())
        return limited if len(requests) == 2 else feed

    with serve(Server(route)) as base:
        config = write_config(
            tmp_path / "l.toml",
            tmp_path / "l.db",
            f'[[sources]]\nname = "f"\nurl = "{base}/f"\ninterval = "10s"\n',
            '[polling]\njitter = "1s"\nworkers = 0\n[retention]\nkeep_mentions = "35d"\n',
        )
        upgrade(config)
        proc = start(config, tmp_path / "run.log", clock.env)
        try:
            wait_until(lambda: len(requests) >= 2, 60, "the second poll (answered 429)")
            limited_at = requests[1]
            clock.jump(offset)
            wait_until(lambda: len(requests) >= 5, 90, "three more polls after the jump")
        finally:
            stop(proc)
    engine = db.connect(f"sqlite:///{tmp_path / 'l.db'}")
    kept = mention_counts(engine)[0]
    engine.dispose()
    retry_wait = requests[2] - limited_at
    later = [b - a for a, b in itertools.pairwise(requests[2:])]
    log = (tmp_path / "run.log").read_text()
    row(
        f"wall clock {offset} after a 429 with Retry-After: 15 (interval 10s)",
        f"next poll after {retry_wait:.1f}s, then every {min(later):.0f}-{max(later):.0f}s; "
        f"retention not run early ({kept} old mention kept)",
        "0",
        "0",
    )
    assert retry_wait >= 15  # never before Retry-After ends, whatever the wall clock says
    assert max(later) < 10 + 1 + 15  # polling goes on at the interval (slack for load)
    assert kept == 1  # the daily retention job did not run at the jump
    assert "the wall clock jumped" in log and "Traceback" not in log


# --- 5. worker processes when the daemon dies --------------------------------------------------


def children(pid: int) -> set[int]:
    """All descendants of ``pid``."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in glob.glob(f"/proc/{current}/task/*/children"):
            try:
                with open(task) as handle:
                    kids = {int(c) for c in handle.read().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_workers_exit_when_the_daemon_is_killed(tmp_path: Path) -> None:
    # a feed big enough to keep a worker parsing for a while (the issue saw 110 s for 60,000)
    entries = [(str(n), f"Kryptonite lock {n} " + "text " * 40) for n in range(15_000)]
    feed = answer("200 OK", rss(*entries), "Content-Type: text/xml\r\n")
    server = Server(lambda path: feed)
    with serve(server) as base:
        config = write_config(
            tmp_path / "l.toml",
            tmp_path / "l.db",
            f'[[sources]]\nname = "f"\nurl = "{base}/f"\n',
            '[polling]\nworkers = 2\njitter = "1s"\n',
        )
        upgrade(config)
        proc = start(config, tmp_path / "run.log")
        try:
            wait_until(lambda: bool(server.log), 60, "the big feed is fetched")
            time.sleep(2)  # handed to a worker, which is parsing it now
            workers = children(proc.pid)
            proc.kill()  # kill -9: no clean-up code runs in the daemon
            proc.wait()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(alive(p) for p in workers):
                time.sleep(0.2)
            left = [p for p in workers if alive(p)]
        finally:
            for pid in children(proc.pid) | workers:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    row(
        "kill -9 of a daemon while a worker parses a 15,000-entry feed",
        f"{len(workers)} child processes, {len(left)} alive 10 s after it died",
        "0",
        "0",
    )
    assert not left
