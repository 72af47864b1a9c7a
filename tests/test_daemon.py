"""The daemon as systemd runs it: a real `listener run` process with a NOTIFY_SOCKET we listen
on. READY, WATCHDOG (only while healthy), SIGHUP reload with a valid and a broken config,
STOPPING, graceful exit codes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from feeds import rss
from pytest_httpserver import HTTPServer
from test_cli import config_text, invoke


class Notifications:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.seen: list[str] = []

    def wait_for(self, field: str, timeout: float = 30.0) -> list[str]:
        """Collect messages until one contains ``field``; returns everything seen so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            if field in self.seen[-1].splitlines():
                return self.seen
        raise AssertionError(f"no {field} within {timeout}s; seen {self.seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notifications(tmp_path: Path) -> Iterator[Notifications]:
    listener = Notifications(tmp_path / "notify.sock")
    yield listener
    listener.close()


def start(
    config: Path, notify: Path, log: Path, watchdog_usec: int = 1_000_000
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LISTENER_CONFIG": "",
        "NOTIFY_SOCKET": str(notify),
        "WATCHDOG_USEC": str(watchdog_usec),
    }
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--config", str(config)],
            stdout=sink,
            stderr=sink,
            env=env,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with direct.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_watchdog_reload_and_stop(
    tmp_path: Path, httpserver: HTTPServer, notifications: Notifications
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        rss([{"title": "Kryptonite news", "guid": "1"}]), content_type="text/xml"
    )
    httpserver.expect_request("/other").respond_with_data(
        rss([{"title": "Deutsche Bahn news", "guid": "2"}]), content_type="text/xml"
    )
    config = tmp_path / "listener.toml"
    port = free_port()
    metrics = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    config.write_text(config_text(tmp_path / "l.db", httpserver.url_for("/feed"), metrics))
    assert invoke("db", "upgrade", "--config", str(config))[0] == 0
    log = tmp_path / "run.log"
    proc = start(config, notifications.path, log)
    try:
        notifications.wait_for("READY=1")
        notifications.wait_for("WATCHDOG=1", timeout=10)
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        deadline = time.monotonic() + 45  # the first poll comes within the 30 s jitter
        body = ""
        while time.monotonic() < deadline and 'status="ok"' not in body:
            time.sleep(0.3)
            body = get(f"http://127.0.0.1:{port}/metrics")[1]
        assert 'listener_polls_total{source="blog",status="ok"} 1.0' in body
        assert "listener_mentions_ingested_total 1.0" in body
        assert 'listener_poll_seconds_bucket{le="60.0",source="blog"}' in body
        assert get(f"http://127.0.0.1:{port}/nope")[0] == 404

        # a valid new configuration: one more source
        extra = f'[[sources]]\nname = "other"\nurl = "{httpserver.url_for("/other")}"\n'
        config.write_text(config_text(tmp_path / "l.db", httpserver.url_for("/feed"), extra))
        _drain(notifications)  # systemd reads its socket all the time; the test catches up here
        notifications.seen.clear()
        proc.send_signal(signal.SIGHUP)
        seen = notifications.wait_for("READY=1")
        assert any("RELOADING=1" in m and "MONOTONIC_USEC=" in m for m in seen)
        assert "STATUS=polling 2 sources" in seen[-1]

        # a broken one: logged once, the old configuration keeps running
        config.write_text("[[sources]]\nname = 'broken'\nintervall = '5m'\n")
        _drain(notifications)
        notifications.seen.clear()
        proc.send_signal(signal.SIGHUP)
        seen = notifications.wait_for("READY=1")
        assert "reload failed" in seen[-1]
        assert proc.poll() is None
        notifications.seen.clear()
        notifications.wait_for("WATCHDOG=1", timeout=10)  # still healthy, still pinging
        text = log.read_text()
        assert text.count("reload failed") == 1 and "intervall" in text

        proc.send_signal(signal.SIGTERM)
        notifications.wait_for("STOPPING=1")
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()


def test_no_watchdog_ping_while_the_database_is_gone(
    tmp_path: Path,
    httpserver: HTTPServer,
    notifications: Notifications,
    pg_admin_url: str,
    pg_template: str,
) -> None:
    from sqlalchemy import create_engine, make_url, text

    httpserver.expect_request("/feed").respond_with_data(rss([]), content_type="text/xml")
    name = f"listener_watchdog_{os.getpid()}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(False)
    config = tmp_path / "listener.toml"
    text_ = config_text(tmp_path / "unused.db", httpserver.url_for("/feed"))
    config.write_text(
        text_.replace(f'url = "sqlite:///{tmp_path / "unused.db"}"', f'url = "{url}"')
    )
    proc = start(config, notifications.path, tmp_path / "run.log")
    try:
        notifications.wait_for("WATCHDOG=1", timeout=30)
        with admin.connect() as conn:  # the database goes away under the daemon
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        time.sleep(1.5)  # a ping already on its way may still arrive
        _drain(notifications)
        time.sleep(3)
        assert [m for m in _drain(notifications) if "WATCHDOG=1" in m] == []
        assert proc.poll() is None  # systemd, not listener, decides what happens now
        with admin.connect() as conn:  # it comes back: pings resume
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        notifications.wait_for("WATCHDOG=1", timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    log = (tmp_path / "run.log").read_text()
    assert "database unavailable: " in log and "database answering again" in log
    assert "Traceback" not in log


def _drain(notifications: Notifications) -> list[str]:
    out = []
    while True:
        try:
            out.append(notifications.sock.recv(4096).decode())
        except TimeoutError:
            return out


def test_configuration_error_at_start_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "listener.toml"
    config.write_text("[[sources]]\nname = 'x'\nkind = 'bluesky'\nquery = 'x'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "listener", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LISTENER_CONFIG": ""},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "app_password" in proc.stderr
