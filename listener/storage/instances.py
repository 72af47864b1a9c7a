"""Several daemons on one database: poll claims, the leader lock, heartbeats.

Rules:
- A poll is claimed before it runs: one UPDATE takes a source whose claim has expired (or is
  ours), so of several instances exactly one polls it; the claim lasts until just before the
  source's next poll, so a dead instance's sources are taken over within one interval.
- One instance leads detection and delivery: it holds a PostgreSQL session advisory lock on a
  connection of its own; when it dies its session ends, the lock is free, and the next
  instance to try takes over. SQLite allows one daemon per database: a second one is refused
  (an exclusive lock on a file next to the database).
- Heartbeats: every instance writes its row regularly; ``listener status`` shows them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, delete, false, or_, select, text, update
from sqlalchemy.engine import Connection

from listener import __version__
from listener.errors import ListenerError
from listener.storage.sql import dialect_insert, guard, transaction
from listener.storage.tables import Instance, Source

LEADER_KEY = 0x6C697374  # "list": the advisory lock key of the leader


def instance_id(started: datetime) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{started:%Y%m%dT%H%M%S}"


def claim(
    engine: Engine,
    source_id: int,
    me: str,
    now: datetime,
    until: datetime,
    due_by: datetime | None = None,
    *,
    own_schedule: bool = False,
) -> bool:
    """Take the poll of this source until ``until``; False when another instance holds it, or
    when the source is not due by ``due_by`` (backing off after errors, whoever polled it).
    ``own_schedule``: the caller keeps the wait of its own last poll itself (on a monotonic
    clock), so a stored time written by this instance does not hold it back."""
    with transaction(engine, "cannot claim a source") as conn:
        done = conn.execute(
            update(Source)
            .where(
                Source.id == source_id,
                or_(
                    Source.claimed_until.is_(None),
                    Source.claimed_until <= now,
                    Source.claimed_by == me,
                ),
                or_(
                    Source.next_poll_at.is_(None),
                    Source.next_poll_at <= (due_by or now),
                    Source.claimed_by == me if own_schedule else false(),
                ),
            )
            .values(claimed_by=me, claimed_until=until)
        )
        return bool(done.rowcount)


def due_at(engine: Engine, source_id: int) -> datetime | None:
    """When the source may be polled next (backoff, Retry-After); None: now."""
    with engine.connect() as conn:
        value = conn.execute(select(Source.next_poll_at).where(Source.id == source_id)).scalar()
    return value if isinstance(value, datetime) else None


def shift_times(engine: Engine, me: str, seconds: float) -> int:
    """The wall clock jumped by ``seconds``: move the poll times this instance wrote (its
    claims and the next polls of the sources it polled) with it. Returns the rows moved."""
    shift = timedelta(seconds=seconds)
    with transaction(engine, "cannot move poll times after a clock jump") as conn:
        rows = conn.execute(
            select(Source.id, Source.next_poll_at, Source.claimed_until).where(
                Source.claimed_by == me
            )
        ).all()
        for row in rows:
            conn.execute(
                update(Source)
                .where(Source.id == row.id)
                .values(
                    next_poll_at=row.next_poll_at + shift if row.next_poll_at else None,
                    claimed_until=row.claimed_until + shift if row.claimed_until else None,
                )
            )
        return len(rows)


def release_all(engine: Engine, me: str) -> None:
    """On a clean stop: hand every claim back at once."""
    with transaction(engine, "cannot release claims") as conn:
        conn.execute(
            update(Source)
            .where(Source.claimed_by == me)
            .values(claimed_by=None, claimed_until=None)
        )


def heartbeat(
    engine: Engine,
    me: str,
    *,
    started: datetime,
    now: datetime,
    leader: bool,
    last_cycle_at: datetime | None = None,
) -> None:
    host, pid = socket.gethostname(), os.getpid()
    values: dict[str, Any] = {"seen_at": now, "leader": leader}
    if last_cycle_at is not None:
        values["last_cycle_at"] = last_cycle_at
    with transaction(engine, "cannot write the heartbeat") as conn:
        conn.execute(
            dialect_insert(conn, Instance)
            .values(id=me, host=host, pid=pid, started_at=started, version=__version__, **values)
            .on_conflict_do_update(index_elements=["id"], set_=values)
        )
        # instances not seen for a day are gone
        conn.execute(delete(Instance).where(Instance.seen_at < now - timedelta(days=1)))


def forget(engine: Engine, me: str) -> None:
    with transaction(engine, "cannot remove the heartbeat") as conn:
        conn.execute(delete(Instance).where(Instance.id == me))


def instances(engine: Engine) -> list[Any]:
    def work() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(select(Instance).order_by(Instance.started_at)).all())

    return guard("cannot read instances", work)


class Leadership:
    """The leader lock: PostgreSQL advisory lock on a dedicated connection; on SQLite the one
    daemon allowed is always the leader."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self.postgres = engine.dialect.name == "postgresql"

    @property
    def leading(self) -> bool:
        return not self.postgres or self._conn is not None

    def try_lead(self) -> bool:
        """Whether this instance leads now (takes the lock when it is free)."""
        if not self.postgres:
            return True
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1"))  # still our session, still our lock
                return True
        except Exception:
            self._drop()
        try:
            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_KEY}).scalar()
            conn.commit()
        except Exception:
            return False
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken connection cannot close cleanly
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_KEY})
                self._conn.commit()
            except Exception:  # noqa: S110 (closing the session releases it anyway)
                pass
        self._drop()


class SingleInstance:
    """SQLite: one daemon per database file (an exclusive lock on ``<db>.daemon.lock``)."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".daemon.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ListenerError(
                f"another listener daemon ({holder}) is running on {self.path.with_suffix('')}; "
                "SQLite allows one; use PostgreSQL (database.url) for several instances"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
