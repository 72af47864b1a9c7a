"""The outbox in the database: rendered notifications waiting for, or done with, delivery.

Rules:
- Rows are delivered at least once: marked delivered only after the channel said so.
- Functions that write take the caller's connection (and so its transaction): an alert's state
  change and the rows it causes are written together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.engine import Connection

from listener.models import Notification, OutboxItem
from listener.storage.sql import guard
from listener.storage.tables import Outbox


def enqueue(
    conn: Connection, alert_id: int | None, notifications: list[Notification], now: datetime
) -> None:
    if not notifications:
        return
    conn.execute(
        insert(Outbox),
        [
            {
                "alert_id": alert_id,
                "route": n.route,
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "body_format": n.body_format,
                "created_at": now,
                "next_attempt_at": n.next_attempt_at,
                "attempts": 0,
            }
            for n in notifications
        ],
    )


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        row.id,
        row.alert_id,
        row.route,
        row.kind,
        row.title,
        row.body,
        row.body_format,
        row.created_at,
        row.next_attempt_at,
        row.attempts,
        row.last_error,
        row.delivered_at,
        row.dead_at,
    )


def due(engine: Engine, now: datetime, limit: int = 100) -> list[OutboxItem]:
    """Undelivered, not dead, due now; oldest first."""

    def work() -> list[OutboxItem]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Outbox.__table__)
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.dead_at.is_(None),
                    Outbox.next_attempt_at <= now,
                )
                .order_by(Outbox.id)
                .limit(limit)
            )
            return [_item(r) for r in rows]

    return guard("cannot read the outbox", work)


def outbox(
    engine: Engine, *, include_delivered: bool = False, limit: int = 100
) -> list[OutboxItem]:
    def work() -> list[OutboxItem]:
        stmt = select(Outbox.__table__).order_by(Outbox.id.desc()).limit(limit)
        if not include_delivered:
            stmt = stmt.where(Outbox.delivered_at.is_(None))
        with engine.connect() as conn:
            return [_item(r) for r in conn.execute(stmt)]

    return guard("cannot read the outbox", work)


def delivered(conn: Connection, item_id: int, now: datetime) -> None:
    conn.execute(
        update(Outbox).where(Outbox.id == item_id).values(delivered_at=now, last_error=None)
    )


def lease(conn: Connection, item_ids: list[int], *, until: datetime, note: str) -> None:
    """An attempt is starting (or was cut short): the rows are due again at ``until`` and
    ``note`` says so in ``last_error``; attempts are counted by ``failed``."""
    conn.execute(
        update(Outbox).where(Outbox.id.in_(item_ids)).values(next_attempt_at=until, last_error=note)
    )


def failed(
    conn: Connection, item_id: int, *, error: str, retry_at: datetime | None, now: datetime
) -> None:
    """Record a failed attempt: retry at ``retry_at``, or dead when it is None."""
    values: dict[str, Any] = {"attempts": Outbox.attempts + 1, "last_error": error}
    if retry_at is None:
        values["dead_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    conn.execute(update(Outbox).where(Outbox.id == item_id).values(**values))


def last_created(engine: Engine, route: str, *, kind: str) -> datetime | None:
    """When the newest outbox row of this route and kind was written."""

    def work() -> datetime | None:
        with engine.connect() as conn:
            value: datetime | None = conn.execute(
                select(func.max(Outbox.created_at)).where(
                    Outbox.route == route, Outbox.kind == kind
                )
            ).scalar()
            return value

    return guard("cannot read the outbox", work)


def sent_since(engine: Engine, route: str, since: datetime) -> int:
    def work() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(Outbox)
                    .where(Outbox.route == route, Outbox.delivered_at >= since)
                ).scalar_one()
            )

    return guard("cannot read the outbox", work)


def backlog(engine: Engine) -> dict[str, int]:
    """Pending and dead deliveries."""

    def work() -> dict[str, int]:
        with engine.connect() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(Outbox)
                .where(and_(Outbox.delivered_at.is_(None), Outbox.dead_at.is_(None)))
            ).scalar_one()
            dead = conn.execute(
                select(func.count()).select_from(Outbox).where(Outbox.dead_at.is_not(None))
            ).scalar_one()
        return {"pending": int(pending), "dead": int(dead)}

    return guard("cannot read the outbox", work)


def first_notifications(engine: Engine, alert_ids: list[int]) -> dict[int, dict[str, datetime]]:
    """Per alert, when its first notification of each kind (fired, escalated, resolved, ...)
    was written: the moments of its response timeline."""

    def work() -> dict[int, dict[str, datetime]]:
        out: dict[int, dict[str, datetime]] = {}
        if not alert_ids:
            return out
        with engine.connect() as conn:
            rows = conn.execute(
                select(Outbox.alert_id, Outbox.kind, func.min(Outbox.created_at))
                .where(Outbox.alert_id.in_(alert_ids))
                .group_by(Outbox.alert_id, Outbox.kind)
            )
            for alert_id, kind, at in rows:
                if alert_id is not None:
                    out.setdefault(alert_id, {})[kind] = at
        return out

    return guard("cannot read the outbox", work)
