"""Faults, end to end (issue 18): hostile receivers, a database that fails, and signals, against
real servers on 127.0.0.1 (raw-socket webhooks, aiosmtpd), real SQLite files, a real PostgreSQL
server (tests/pgserver.py, restarted here) and real ``listener run`` processes.

Every case adds a row to one table: case, outcome, and per channel how many messages were sent,
how many distinct notifications the receiver got (by idempotency key / Message-ID), how many
copies were duplicates of one it had, and whether anything was lost; SIGTERM cases add the time
from the signal to the exit. The table is printed at the end of the module (and written to
``$LISTENER_FAULT_TABLE`` when set).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpd
import pgserver
import pytest
from aiosmtpd.controller import Controller
from feeds import rss
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, create_engine, make_url, text
from test_daemon import free_port, get

from listener.config import load_config
from listener.models import Notification, OutboxItem
from listener.service.deliver import PERMANENT_ATTEMPTS, deliver
from listener.storage import engine as dbengine
from listener.storage import outbox
from listener.storage.sql import transaction

ROWS: list[dict[str, str]] = []
COLUMNS = ("case", "channel", "outcome", "sent", "delivered", "duplicated", "lost", "sigterm")


def row(case: str, channel: str, outcome: str, **counts: object) -> None:
    ROWS.append(
        {"case": case, "channel": channel, "outcome": outcome}
        | {k: str(counts.get(k, "-")) for k in COLUMNS[3:]}
    )


@pytest.fixture(scope="module", autouse=True)
def table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not ROWS:
        return
    widths = {c: max(len(c), *(len(r[c]) for r in ROWS)) for c in COLUMNS}
    lines = [" | ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines.append("-+-".join("-" * widths[c] for c in COLUMNS))
    lines += [" | ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in ROWS]
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
    target = os.environ.get("LISTENER_FAULT_TABLE")
    if target:
        Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- receivers -----------------------------------------------------------------------------------


@dataclass
class Webhook:
    """A raw-socket webhook: answers ``status`` after ``delay`` seconds; records every request's
    Idempotency-Key when it arrives (the receiver has the message from then on)."""

    delay: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    def handle(self, conn: socket.socket, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < int(fields.get("content-length", "0")):
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.keys.append(fields.get("idempotency-key", ""))
        time.sleep(self.delay)
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        head_out = f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\n{extra}Connection: close"
        conn.sendall(f"{head_out}\r\n\r\nok".encode())

    def counts(self) -> dict[str, int]:
        return {
            "delivered": len(set(self.keys)),
            "duplicated": len(self.keys) - len(set(self.keys)),
        }


@dataclass
class Mailbox:
    """aiosmtpd handler: takes every message, answers DATA after ``delay`` (or with ``code``)."""

    delay: float = 0.0
    code: str = "250 OK"
    ids: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.code.startswith("250"):
            self.ids.append(str(message_from_bytes(envelope.content)["Message-ID"]))
        await asyncio.sleep(self.delay)
        return self.code

    def counts(self) -> dict[str, int]:
        return {"delivered": len(set(self.ids)), "duplicated": len(self.ids) - len(set(self.ids))}


def smtp_server(box: Mailbox) -> Controller:
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


def mailto(controller: Controller) -> str:
    return (
        f"mailto://127.0.0.1:{controller.port}?from=listener@example.org&to=pr@example.org"
        "&mode=insecure"
    )


# -- in-process delivery -------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def sqlite_engine(tmp_path: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    return url, engine


def config_file(
    tmp_path: Path, db_url: str, route_url: str, extra: str = "", route: str = ""
) -> Path:
    path = tmp_path / "listener.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n[log]\nlevel = "info"\nformat = "json"\n'
        f'[alerts]\nretry_for = "1h"\n{extra}\n'
        f'[[brands]]\nname = "Kryptonite"\n'
        f'[[routes]]\nname = "chat"\nurls = ["{route_url}"]\n{route}\n',
        encoding="utf-8",
    )
    return path


def enqueue(engine: Engine, when: datetime = NOW) -> None:
    note = Notification("chat#0", "fired", "Storm: Kryptonite", "body", "text", when)
    with transaction(engine, "test") as conn:
        outbox.enqueue(conn, None, [note], when)


def only_row(engine: Engine) -> OutboxItem:
    [item] = outbox.outbox(engine, include_delivered=True)
    return item


def attempts(engine: Engine, config: Path, times: int) -> int:
    """Deliver up to ``times`` attempts, each at the row's next due time; the attempts made."""
    settings = load_config(str(config))
    made = 0
    moment = NOW
    for _ in range(times):
        item = only_row(engine)
        if item.delivered_at or item.dead_at:
            break
        deliver(engine, settings, max(moment, item.next_attempt_at))
        moment = item.next_attempt_at
        made += 1
    return made


def test_a_webhook_answering_after_30s_gets_one_notification(tmp_path: Path) -> None:
    hook = Webhook(delay=30.0)
    with httpd.serve(hook.handle) as base:
        url, engine = sqlite_engine(tmp_path)
        config = config_file(tmp_path, url, base.replace("http://", "json://") + "/hook")
        enqueue(engine)
        made = attempts(engine, config, 4)
    item = only_row(engine)
    assert item.delivered_at is not None and hook.keys == [hook.keys[0]]
    row("webhook answers after 30 s (send_timeout 60 s)", "webhook", "delivered once",
        sent=made, lost=0, **hook.counts())  # fmt: skip


def test_sends_cut_short_repeat_with_one_key(tmp_path: Path) -> None:
    """The old failure (timeout shorter than the receiver): every copy carries one key."""
    hook = Webhook(delay=3.0)
    with httpd.serve(hook.handle) as base:
        url, engine = sqlite_engine(tmp_path)
        config = config_file(tmp_path, url, base.replace("http://", "json://") + "/hook",
                             route='send_timeout = "1s"')  # fmt: skip
        enqueue(engine)
        made = attempts(engine, config, 3)
        time.sleep(hook.delay + 1)
    assert made == 3 and len(hook.keys) == 3 and len(set(hook.keys)) == 1
    assert "uncertain" in (only_row(engine).last_error or "")
    row("webhook answers after 3 s, send_timeout 1 s", "webhook",
        "uncertain x3, one Idempotency-Key", sent=made, lost=0, **hook.counts())  # fmt: skip


def test_smtp_silent_after_data_copies_share_one_message_id(tmp_path: Path) -> None:
    box = Mailbox(delay=3.0)
    controller = smtp_server(box)
    try:
        url, engine = sqlite_engine(tmp_path)
        config = config_file(tmp_path, url, mailto(controller), route='send_timeout = "1s"')
        enqueue(engine)
        made = attempts(engine, config, 3)
        time.sleep(box.delay + 1)
    finally:
        controller.stop()
    assert made == 3 and len(box.ids) == 3 and len(set(box.ids)) == 1
    row("SMTP silent 3 s after DATA, send_timeout 1 s", "email",
        "uncertain x3, one Message-ID", sent=made, lost=0, **box.counts())  # fmt: skip


KILL = """
import os, signal, sys
from datetime import datetime
from listener.alerting import deliver as channel
from listener.config import database_url, load_config
from listener.service.deliver import deliver
from listener.storage import engine as db
settings = load_config(sys.argv[1])
engine = db.connect(database_url(settings))
def send_then_die(url, **kw):
    channel.send(url, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
deliver(engine, settings, datetime.fromisoformat(sys.argv[2]), send=send_then_die)
"""


@pytest.mark.parametrize("channel", ["webhook", "email"])
def test_kill_9_between_send_and_mark_repeats_with_the_same_key(
    tmp_path: Path, channel: str
) -> None:
    hook, box = Webhook(), Mailbox()
    controller = smtp_server(box)
    try:
        with httpd.serve(hook.handle) as base:
            url, engine = sqlite_engine(tmp_path)
            target = base.replace("http://", "json://") + "/hook"
            config = config_file(
                tmp_path, url, target if channel == "webhook" else mailto(controller)
            )
            enqueue(engine)
            script = tmp_path / "kill.py"
            script.write_text(KILL, encoding="utf-8")
            killed = subprocess.run(
                [sys.executable, str(script), str(config), NOW.isoformat()], timeout=120,
                capture_output=True,
            ).returncode  # fmt: skip
            assert killed == -signal.SIGKILL
            assert (only_row(engine).last_error or "").startswith("in flight:")
            made = 1 + attempts(engine, config, 2)
    finally:
        controller.stop()
    counts = hook.counts() if channel == "webhook" else box.counts()
    assert only_row(engine).delivered_at is not None
    assert counts == {"delivered": 1, "duplicated": 1}
    row("kill -9 between send and mark", channel, "resent once, same key", sent=made, lost=0,
        **counts)  # fmt: skip


def test_permanent_refusals_go_dead_with_the_reason(tmp_path: Path) -> None:
    from test_cli import invoke

    for channel in ("webhook", "email"):
        hook, box = Webhook(status=404), Mailbox(code="554 5.7.1 rejected")
        controller = smtp_server(box)
        try:
            with httpd.serve(hook.handle) as base:
                where = tmp_path / channel
                where.mkdir()
                url, engine = sqlite_engine(where)
                target = base.replace("http://", "json://") + "/hook"
                config = config_file(
                    where, url, target if channel == "webhook" else mailto(controller)
                )
                enqueue(engine)
                made = attempts(engine, config, 10)
        finally:
            controller.stop()
        item = only_row(engine)
        assert made == PERMANENT_ATTEMPTS and item.dead_at is not None
        _, out, _ = invoke("alerts", "outbox", "--config", str(config), "--format", "json")
        [shown] = json.loads(out)
        assert shown["state"] == "dead" and shown["last_error"].startswith("permanent: ")
        code = "404" if channel == "webhook" else "554"
        assert code in shown["last_error"]
        row(f"{'HTTP 404' if channel == 'webhook' else 'SMTP 554'} (permanent)", channel,
            f"dead after {made} attempts, reason shown", sent=made, delivered=0, duplicated=0,
            lost="0 (dead, in outbox)")  # fmt: skip


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    hook = Webhook(status=429, headers={"Retry-After": "120"})
    with httpd.serve(hook.handle) as base:
        url, engine = sqlite_engine(tmp_path)
        config = config_file(tmp_path, url, base.replace("http://", "json://") + "/hook")
        enqueue(engine)
        settings = load_config(str(config))
        deliver(engine, settings, NOW)
        assert only_row(engine).next_attempt_at == NOW + timedelta(seconds=120)
        deliver(engine, settings, NOW + timedelta(seconds=119))  # not yet
        assert len(hook.keys) == 1
        hook.status = 200
        deliver(engine, settings, NOW + timedelta(seconds=120))
    assert only_row(engine).delivered_at is not None and len(set(hook.keys)) == 1
    row("webhook 429 Retry-After: 120", "webhook", "next attempt after 120 s, then delivered",
        sent=len(hook.keys), delivered=1, duplicated=0, lost=0)  # fmt: skip


# -- the daemon ----------------------------------------------------------------------------------


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path
    health: str

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line, "level": "raw"})
        return out

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in str(x.get("message", "")) for x in self.lines()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {needle!r} in the log: {self.log.read_text()[-3000:]}")

    def healthz(self) -> tuple[int, str]:
        try:
            return get(self.health)
        except OSError as exc:
            return 0, str(exc)

    def sigterm(self) -> float:
        """Seconds from SIGTERM to the exit (at most 60)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - started

    def clean(self) -> bool:
        text_ = self.log.read_text(encoding="utf-8", errors="replace")
        return "Traceback" not in text_ and "CancelledError" not in text_


def run(config: Path, log: Path) -> Daemon:
    port = free_port()
    with config.open("a", encoding="utf-8") as sink:
        sink.write(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    env = {**os.environ, "LISTENER_CONFIG": "", "NOTIFY_SOCKET": ""}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--config", str(config)],
            stdout=sink, stderr=sink, env=env,
        )  # fmt: skip
    return Daemon(proc, log, f"http://127.0.0.1:{port}/healthz")


def feeds_config(tmp_path: Path, db_url: str, httpserver: HTTPServer, route: str) -> Path:
    items = [{"title": "Kryptonite news", "link": "https://a.example/1", "guid": "1"}]
    httpserver.expect_request("/healthy").respond_with_data(rss(items), content_type="text/xml")
    extra = '[polling]\ninterval = "10s"\njitter = "1s"\n'
    config = config_file(tmp_path, db_url, route, extra=extra)
    with config.open("a", encoding="utf-8") as sink:
        sink.write(f'[[sources]]\nname = "healthy"\nurl = "{httpserver.url_for("/healthy")}"\n')
    return config


def stall(conn: socket.socket, head: bytes) -> None:
    while conn.recv(4096):
        pass


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another process takes SQLite's write lock (BEGIN IMMEDIATE) and keeps it."""
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    return proc


def stop_locker(locker: subprocess.Popen[bytes]) -> None:
    if locker.poll() is None:
        locker.kill()
    locker.wait()
    if locker.stdout is not None:
        locker.stdout.close()


def polls_of(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == path)


@pytest.mark.parametrize("state", ["idle", "poll hanging", "delivery hanging", "sqlite locked"])
def test_sigterm_in_every_state(tmp_path: Path, httpserver: HTTPServer, state: str) -> None:
    hook = Webhook()
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(
            httpd.serve(stall if state == "delivery hanging" else hook.handle)
        )
        url, engine = sqlite_engine(tmp_path)
        config = feeds_config(tmp_path, url, httpserver,
                              base.replace("http://", "json://") + "/hook")  # fmt: skip
        if state == "poll hanging":
            slow = stack.enter_context(httpd.serve(stall))
            with config.open("a", encoding="utf-8") as sink:
                sink.write(f'[[sources]]\nname = "slow"\nurl = "{slow}/feed"\n')
        if state == "delivery hanging":
            enqueue(engine, datetime.now(UTC))
        locker = None
        daemon = run(config, tmp_path / "run.log")
        try:
            daemon.wait_for("listener running")
            if state == "poll hanging":
                daemon.wait_for("polled healthy")
                time.sleep(2)  # the slow source's request is out and hangs
            elif state == "delivery hanging":
                deadline = time.monotonic() + 30
                while not (only_row(engine).last_error or "").startswith("in flight:"):
                    assert time.monotonic() < deadline, "the delivery never started"
                    time.sleep(0.2)
            elif state == "sqlite locked":
                locker = hold_lock(tmp_path / "l.db", 60)
                daemon.wait_for("database locked", timeout=60)
            took = daemon.sigterm()
        finally:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
            if locker is not None:
                stop_locker(locker)
    assert daemon.clean(), daemon.log.read_text()[-3000:]
    assert daemon.proc.returncode == 0
    outcome = f"exit 0 in {took:.1f} s, no traceback"
    if state == "delivery hanging":
        item = only_row(engine)
        assert item.delivered_at is None and (item.last_error or "").startswith("in flight:")
        outcome += "; row kept in flight"
        # restart: the cut-short delivery goes out again, with its key
        hook2 = Webhook()
        with httpd.serve(hook2.handle) as base2:
            text_ = config.read_text().split("[metrics]")[0]
            config.write_text(text_.replace(base.split("//")[1], base2.split("//")[1]), "utf-8")
            again = run(config, tmp_path / "run2.log")
            try:
                deadline = time.monotonic() + 60
                while only_row(engine).delivered_at is None:
                    assert time.monotonic() < deadline, again.log.read_text()[-3000:]
                    time.sleep(0.2)
            finally:
                again.sigterm()
        assert len(hook2.keys) == 1 and hook2.keys[0].startswith("listener-")
        outcome += "; delivered after restart"
        row("SIGTERM: delivery hanging, then restart", "webhook", outcome, sent=2,
            delivered=1, duplicated="0-1 (same key)", lost=0, sigterm=f"{took:.1f} s")  # fmt: skip
    else:
        row(f"SIGTERM: {state}", "-", outcome, lost=0, sigterm=f"{took:.1f} s")
    assert took < 10


def test_sqlite_locked_warns_once_per_kind_and_resumes(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    from test_cli import invoke

    url, _ = sqlite_engine(tmp_path)
    with httpd.serve(Webhook().handle) as base:
        config = feeds_config(tmp_path, url, httpserver,
                              base.replace("http://", "json://") + "/hook")  # fmt: skip
        # a second source: while one job tries the locked database, the other's polls are put off
        httpserver.expect_request("/second").respond_with_data(rss([]), content_type="text/xml")
        with config.open("a", encoding="utf-8") as sink:
            sink.write(f'[[sources]]\nname = "second"\nurl = "{httpserver.url_for("/second")}"\n')
        daemon = run(config, tmp_path / "run.log")
        locker = None
        try:
            daemon.wait_for("polled healthy")
            locker = hold_lock(tmp_path / "l.db", 75)
            daemon.wait_for("database locked", timeout=90)
            during, why = daemon.healthz()
            status = subprocess.run(
                [sys.executable, "-m", "listener", "status", "--config", str(config)],
                capture_output=True, timeout=60,
            )  # fmt: skip
            before = polls_of(httpserver, "/healthy")
            locker.wait(timeout=120)  # the lock ends
            released = time.monotonic()
            daemon.wait_for("database answering again", timeout=90)
            deadline = time.monotonic() + 60
            while polls_of(httpserver, "/healthy") == before:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            resumed = time.monotonic() - released
            after, _ = daemon.healthz()
            took = daemon.sigterm()
        finally:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
            if locker is not None:
                stop_locker(locker)
    warnings = [x for x in daemon.lines() if x.get("level") == "warning"]
    database_lines = [x for x in warnings if "database" in str(x.get("message"))]
    assert daemon.clean()
    assert during == 503 and "database failing (locked)" in why
    assert status.returncode == 1 and b'"database_problem": "failing (locked)' in status.stdout
    assert after == 200
    # polls that fell into the outage were put off, and made as soon as the database answered
    # (by the probe, or by the one job trying it), not an interval later
    messages = [str(x.get("message")) for x in daemon.lines()]
    recovered = next(i for i, m in enumerate(messages) if "database answering again" in m)
    resumes = [m for m in messages[recovered + 1 :] if "put off while the database failed" in m]
    assert resumes and resumes[0] in (f"polling {n} sources put off while the database failed"
                                      for n in (1, 2))  # fmt: skip
    assert len(database_lines) <= 6  # one per kind, repeats with backoff, plus the recovery
    _, out, _ = invoke("mentions", "--config", str(config), "--format", "json")
    assert len(json.loads(out)) == 1
    row("SQLite locked 75 s", "-",
        f"{len(database_lines)} database warnings (+{len(warnings) - len(database_lines)} "
        f"APScheduler 'skipped'), 0 tracebacks, /healthz 503 then 200, status exit 1; polled "
        f"again {resumed:.0f} s after release", lost=0, sigterm=f"{took:.1f} s")  # fmt: skip


def test_postgresql_restart(tmp_path: Path, httpserver: HTTPServer) -> None:
    reason = pgserver.available()
    if reason is not None or os.environ.get("LISTENER_TEST_POSTGRES_URL"):
        pytest.skip(reason or "needs a server of its own to restart")
    with pgserver.server() as admin_url:
        stop, start = pgserver.CONTROLS[admin_url]
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "faults"'))
        admin.dispose()
        url = make_url(admin_url).set(database="faults").render_as_string(False)
        engine = dbengine.connect(url)
        dbengine.upgrade(engine)
        engine.dispose()
        with httpd.serve(Webhook().handle) as base:
            config = feeds_config(tmp_path, url, httpserver,
                                  base.replace("http://", "json://") + "/hook")  # fmt: skip
            daemon = run(config, tmp_path / "run.log")
            try:
                daemon.wait_for("polled healthy")
                stop()
                daemon.wait_for("database unavailable", timeout=60)
                during, why = daemon.healthz()
                time.sleep(15)  # down for a while: several poll intervals
                start()
                restarted = time.monotonic()
                before = polls_of(httpserver, "/healthy")
                daemon.wait_for("database answering again", timeout=90)
                deadline = time.monotonic() + 60
                while polls_of(httpserver, "/healthy") == before:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                resumed = time.monotonic() - restarted
                stop()  # and SIGTERM while it is down
                daemon.wait_for("database unavailable", timeout=60)
                took = daemon.sigterm()
            finally:
                if daemon.proc.poll() is None:
                    daemon.proc.kill()
    lines = [x for x in daemon.lines() if "database" in str(x.get("message"))]
    assert daemon.clean(), daemon.log.read_text()[-3000:]
    assert during == 503 and "database failing (unavailable)" in why
    assert len(lines) <= 8
    row("PostgreSQL stopped 15 s, restarted", "-",
        f"{len(lines)} database lines, 0 tracebacks, /healthz 503; polled again "
        f"{resumed:.0f} s after restart", lost=0,
        sigterm=f"{took:.1f} s (server down)")  # fmt: skip
    assert took < 10


def test_one_job_at_a_time_tries_a_failing_database_and_recovery_resumes() -> None:
    from listener.daemon.dbhealth import FIRST_BACKOFF, TRY_SECONDS, DatabaseHealth

    now = [100.0]
    resumed: list[bool] = []
    health = DatabaseHealth(clock=lambda: now[0], on_recovery=lambda: resumed.append(True))
    assert health.may_try()  # healthy: every job runs
    health.failed("locked", "database is locked")
    assert not health.may_try()  # within the backoff: nobody queues behind the lock
    now[0] += FIRST_BACKOFF / 2
    assert health.may_try()  # one job tries ...
    assert not health.may_try()  # ... the others keep waiting while it does
    health.failed("locked", "database is locked")  # its try failed: the next backoff
    assert not health.may_try()
    now[0] += TRY_SECONDS
    assert health.may_try()
    health.recovered()
    assert resumed == [True] and health.may_try() and not health.failing
    health.recovered()  # a success while healthy resumes nothing
    assert resumed == [True]


def test_the_health_probe_names_read_only_and_locked(tmp_path: Path) -> None:
    """A read-only file (as root, chmod cannot make one: SQLite's own read-only mode instead)
    and a locked one are failing databases although both still answer reads."""
    url, engine = sqlite_engine(tmp_path)
    assert dbengine.probe(engine) is None
    read_only = create_engine(f"sqlite:///file:{tmp_path / 'l.db'}?mode=ro&uri=true")
    assert dbengine.probe(read_only) == ("read-only", "attempt to write a readonly database")
    locker = hold_lock(tmp_path / "l.db", 30)
    try:
        assert dbengine.probe(engine, timeout=0.5) == ("locked", "database is locked")
    finally:
        stop_locker(locker)
    assert dbengine.probe(engine) is None
    read_only.dispose()
    engine.dispose()
    del url
