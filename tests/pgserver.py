"""A throw-away PostgreSQL server for the test session.

Uses LISTENER_TEST_POSTGRES_URL when set (an admin URL of a server someone else runs). Otherwise
it looks for initdb/pg_ctl (PATH, then /usr/lib/postgresql/*/bin), creates a cluster in a
temporary directory, listens on a Unix socket there plus a free loopback port, and stops it at the
end. As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# (stop, start) of the servers started here, by admin URL: for tests that restart one
CONTROLS: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _runuser() -> str | None:
    """runuser lives in /usr/sbin, which a root shell's PATH does not always hold."""
    return shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> str | None:
    """None when a server can be had, else the reason why not."""
    if os.environ.get("LISTENER_TEST_POSTGRES_URL"):
        return None
    if not (_binary("initdb") and _binary("pg_ctl")):
        return "PostgreSQL server binaries (initdb, pg_ctl) not found"
    if os.geteuid() == 0 and not _runuser():
        return "running as root without runuser"
    return None


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Yield an admin SQLAlchemy URL (database 'postgres') of a running server."""
    given = os.environ.get("LISTENER_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl
    base = Path(tempfile.mkdtemp(prefix="listener-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = [_runuser() or "runuser", "-u", "postgres", "--"]
    port = _free_port()
    log = base / "server.log"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    run(pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    CONTROLS[url] = (
        lambda: run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"),
        lambda: run(
            pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        ),
    )
    try:
        yield url
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
