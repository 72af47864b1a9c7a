"""Silences in the database: what they match and when they are in force.

Rules:
- A silence is in force from ``starts_at`` until ``ends_at``; expiring one moves ``ends_at`` to
  now, so its history stays.
- Functions that write take the caller's connection (and so its transaction).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from listener.models import StoredSilence
from listener.storage.sql import guard
from listener.storage.tables import Silence


def add_silence(
    conn: Connection,
    *,
    brand: str | None,
    detector: str | None,
    severity: str | None,
    starts_at: datetime,
    ends_at: datetime,
    comment: str | None = None,
    created_by: str | None = None,
) -> int:
    return int(
        conn.execute(
            insert(Silence)
            .values(
                brand=brand,
                detector=detector,
                severity=severity,
                starts_at=starts_at,
                ends_at=ends_at,
                comment=comment,
                created_by=created_by,
            )
            .returning(Silence.id)
        ).scalar_one()
    )


def list_silences(engine: Engine, now: datetime, *, expired: bool = False) -> list[StoredSilence]:
    """Silences that are active or still to come, newest first (``expired``: all of them)."""

    def work() -> list[StoredSilence]:
        stmt = select(Silence.__table__).order_by(Silence.id.desc())
        if not expired:
            stmt = stmt.where(Silence.ends_at > now)
        with engine.connect() as conn:
            return [StoredSilence(**row._asdict()) for row in conn.execute(stmt)]

    return guard("cannot read silences", work)


def expire_silence(conn: Connection, silence_id: int, now: datetime) -> bool:
    """End a silence now; False when there is no such silence still in force or to come."""
    done = conn.execute(
        update(Silence).where(Silence.id == silence_id, Silence.ends_at > now).values(ends_at=now)
    )
    return bool(done.rowcount)


def active_silences(conn: Connection, now: datetime) -> list[StoredSilence]:
    rows = conn.execute(
        select(Silence.__table__).where(Silence.starts_at <= now, Silence.ends_at > now)
    )
    return [StoredSilence(**r._asdict()) for r in rows]
