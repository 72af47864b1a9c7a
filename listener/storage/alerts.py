"""Alert episodes, silences and the outbox in the database.

Rules:
- An episode is keyed by (brand, detector, started_at): opening it twice is a no-op, so a replay
  of the same history, a restart or a second instance never opens the same episode again.
- A state change and the notifications it causes are written in one transaction (the caller's):
  a crash loses neither, and nothing is sent that was not first written.
- Outbox rows are delivered at least once: marked delivered only after the channel said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.engine import Connection

from listener.storage.sql import dialect_insert, guard, transaction
from listener.storage.tables import Alert, Brand, Outbox, Silence


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a detector said when an alert changed, as stored."""

    severity: str
    observed: int
    expected: float
    score: float
    probability: float | None
    window_start: datetime
    window_end: datetime
    explanation: str


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: int
    brand: str
    detector: str
    started_at: datetime
    state: str
    severity: str
    fired_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    last_notified_at: datetime | None
    historic: bool
    observed: int
    expected: float
    score: float
    probability: float | None
    window_start: datetime
    window_end: datetime
    explanation: str
    acked_by: str | None = None
    ack_note: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one route, rendered, to be written to the outbox."""

    route: str
    kind: str
    title: str
    body: str
    body_format: str
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert_id: int | None
    route: str
    kind: str
    title: str
    body: str
    body_format: str
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None


def _alert(row: Any) -> StoredAlert:
    return StoredAlert(**row._asdict())


_ALERT_COLUMNS = (
    Alert.id,
    func.coalesce(Brand.name, "").label("brand"),
    Alert.detector,
    Alert.started_at,
    Alert.state,
    Alert.severity,
    Alert.fired_at,
    Alert.resolved_at,
    Alert.acked_at,
    Alert.last_notified_at,
    Alert.historic,
    Alert.observed,
    Alert.expected,
    Alert.score,
    Alert.probability,
    Alert.window_start,
    Alert.window_end,
    Alert.explanation,
    Alert.acked_by,
    Alert.ack_note,
)


def _evidence(evidence: Evidence) -> dict[str, Any]:
    return {
        "severity": evidence.severity,
        "observed": evidence.observed,
        "expected": evidence.expected,
        "score": evidence.score,
        "probability": evidence.probability,
        "window_start": evidence.window_start,
        "window_end": evidence.window_end,
        "explanation": evidence.explanation,
    }


def detection_started(conn: Connection, brand: str, now: datetime) -> datetime:
    """When detection first ran for the brand (set to ``now`` on the first call)."""
    row = conn.execute(
        select(Brand.id, Brand.detection_started_at).where(Brand.name == brand)
    ).one()
    if row.detection_started_at is None:
        conn.execute(update(Brand).where(Brand.id == row.id).values(detection_started_at=now))
        return now
    started: datetime = row.detection_started_at
    return started


def find_alert(
    conn: Connection, brand: str, detector: str, started_at: datetime
) -> StoredAlert | None:
    row = conn.execute(
        select(*_ALERT_COLUMNS)
        .outerjoin(Brand, Brand.id == Alert.brand_id)
        .where(Brand.name == brand, Alert.detector == detector, Alert.started_at == started_at)
    ).one_or_none()
    return _alert(row) if row is not None else None


def open_alert(
    conn: Connection,
    *,
    brand: str,
    detector: str,
    started_at: datetime,
    fired_at: datetime,
    evidence: Evidence,
    historic: bool,
    pending: bool = False,
) -> int | None:
    """Open the episode (pending: not yet long enough to notify); None when it is open (or
    was) already."""
    brand_id = conn.execute(select(Brand.id).where(Brand.name == brand)).scalar_one()
    stmt = (
        dialect_insert(conn, Alert)
        .values(
            brand_id=brand_id,
            detector=detector,
            started_at=started_at,
            state="pending" if pending else "firing",
            fired_at=fired_at,
            historic=historic,
            **_evidence(evidence),
        )
        .on_conflict_do_nothing(index_elements=["brand_id", "detector", "started_at"])
        .returning(Alert.id)
    )
    return conn.execute(stmt).scalar_one_or_none()


def open_source_alert(
    conn: Connection, *, detector: str, started_at: datetime, fired_at: datetime, evidence: Evidence
) -> int | None:
    """Open an alert about a source (no brand); None when one is firing already."""
    firing_now = conn.execute(
        select(Alert.id).where(
            Alert.brand_id.is_(None), Alert.detector == detector, Alert.state == "firing"
        )
    ).first()
    if firing_now is not None:
        return None
    return int(
        conn.execute(
            insert(Alert)
            .values(
                brand_id=None,
                detector=detector,
                started_at=started_at,
                state="firing",
                fired_at=fired_at,
                historic=False,
                **_evidence(evidence),
            )
            .returning(Alert.id)
        ).scalar_one()
    )


def firing_source_alert(conn: Connection, detector: str) -> StoredAlert | None:
    row = conn.execute(
        select(*_ALERT_COLUMNS)
        .outerjoin(Brand, Brand.id == Alert.brand_id)
        .where(Alert.brand_id.is_(None), Alert.detector == detector, Alert.state == "firing")
    ).first()
    return _alert(row) if row is not None else None


def escalate(conn: Connection, alert_id: int, evidence: Evidence) -> None:
    conn.execute(update(Alert).where(Alert.id == alert_id).values(**_evidence(evidence)))


def resolve(conn: Connection, alert_id: int, at: datetime) -> None:
    conn.execute(update(Alert).where(Alert.id == alert_id).values(state="resolved", resolved_at=at))


def unhide(conn: Connection, alert_id: int) -> None:
    """A historic episode that turned out to be ongoing becomes news."""
    conn.execute(update(Alert).where(Alert.id == alert_id).values(historic=False))


def notified(conn: Connection, alert_id: int, at: datetime) -> None:
    conn.execute(update(Alert).where(Alert.id == alert_id).values(last_notified_at=at))


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


def pending(conn: Connection, brand: str) -> list[StoredAlert]:
    rows = conn.execute(
        select(*_ALERT_COLUMNS)
        .outerjoin(Brand, Brand.id == Alert.brand_id)
        .where(Alert.state == "pending", Brand.name == brand)
        .order_by(Alert.id)
    )
    return [_alert(row) for row in rows]


def promote(conn: Connection, alert_id: int) -> None:
    """A pending alert whose condition held long enough fires."""
    conn.execute(
        update(Alert).where(Alert.id == alert_id, Alert.state == "pending").values(state="firing")
    )


def firing(conn: Connection) -> list[StoredAlert]:
    rows = conn.execute(
        select(*_ALERT_COLUMNS)
        .outerjoin(Brand, Brand.id == Alert.brand_id)
        .where(Alert.state == "firing")
        .order_by(Alert.id)
    )
    return [_alert(row) for row in rows]


def list_alerts(
    engine: Engine,
    *,
    state: str | None = None,
    brand: str | None = None,
    limit: int | None = 50,
    acked: bool | None = None,
) -> list[StoredAlert]:
    """Alerts, newest first. ``state`` "acknowledged" means firing and acknowledged; ``acked``
    False keeps only alerts nobody acknowledged (True: only acknowledged ones)."""

    def work() -> list[StoredAlert]:
        stmt = select(*_ALERT_COLUMNS).outerjoin(Brand, Brand.id == Alert.brand_id)
        if state == "acknowledged":
            stmt = stmt.where(Alert.state == "firing", Alert.acked_at.is_not(None))
        elif state is not None:
            stmt = stmt.where(Alert.state == state)
        if acked is not None:
            stmt = stmt.where(Alert.acked_at.is_not(None) if acked else Alert.acked_at.is_(None))
        if brand is not None:
            stmt = stmt.where(func.lower(Brand.name) == brand.lower())
        stmt = stmt.order_by(Alert.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with engine.connect() as conn:
            return [_alert(r) for r in conn.execute(stmt)]

    return guard("cannot read alerts", work)


def get_alert(engine: Engine, alert_id: int) -> StoredAlert | None:
    def work() -> StoredAlert | None:
        with engine.connect() as conn:
            row = conn.execute(
                select(*_ALERT_COLUMNS)
                .outerjoin(Brand, Brand.id == Alert.brand_id)
                .where(Alert.id == alert_id)
            ).one_or_none()
        return _alert(row) if row is not None else None

    return guard("cannot read alerts", work)


def acknowledge(
    engine: Engine, alert_id: int, now: datetime, *, by: str | None = None, note: str | None = None
) -> bool:
    """Stop repeats of a firing alert, recording who and why; False when there is no such
    firing alert. Acknowledging again keeps the first time and records the latest person."""
    with transaction(engine, "cannot acknowledge") as conn:
        done = conn.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.state == "firing")
            .values(acked_at=func.coalesce(Alert.acked_at, now), acked_by=by, ack_note=note)
        )
        return bool(done.rowcount)


def unacknowledge(engine: Engine, alert_id: int) -> bool:
    """Undo an acknowledgement (repeats resume); False when the alert is not firing and
    acknowledged."""
    with transaction(engine, "cannot unacknowledge") as conn:
        done = conn.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.state == "firing", Alert.acked_at.is_not(None))
            .values(acked_at=None, acked_by=None, ack_note=None)
        )
        return bool(done.rowcount)


def add_silence(
    engine: Engine,
    *,
    brand: str | None,
    detector: str | None,
    severity: str | None,
    starts_at: datetime,
    ends_at: datetime,
    comment: str | None = None,
    created_by: str | None = None,
) -> int:
    with transaction(engine, "cannot add the silence") as conn:
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


@dataclass(frozen=True, slots=True)
class StoredSilence:
    id: int
    brand: str | None
    detector: str | None
    severity: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str | None
    created_by: str | None = None


def list_silences(engine: Engine, now: datetime, *, expired: bool = False) -> list[StoredSilence]:
    """Silences that are active or still to come, newest first (``expired``: all of them)."""

    def work() -> list[StoredSilence]:
        stmt = select(Silence.__table__).order_by(Silence.id.desc())
        if not expired:
            stmt = stmt.where(Silence.ends_at > now)
        with engine.connect() as conn:
            return [StoredSilence(**row._asdict()) for row in conn.execute(stmt)]

    return guard("cannot read silences", work)


def expire_silence(engine: Engine, silence_id: int, now: datetime) -> bool:
    """End a silence now; False when there is no such silence still in force or to come."""
    with transaction(engine, "cannot expire the silence") as conn:
        done = conn.execute(
            update(Silence)
            .where(Silence.id == silence_id, Silence.ends_at > now)
            .values(ends_at=now)
        )
        return bool(done.rowcount)


def active_silences(conn: Connection, now: datetime) -> list[StoredSilence]:
    rows = conn.execute(
        select(Silence.__table__).where(Silence.starts_at <= now, Silence.ends_at > now)
    )
    return [StoredSilence(**r._asdict()) for r in rows]


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


def delivered(engine: Engine, item_id: int, now: datetime) -> None:
    with transaction(engine, "cannot mark a delivery") as conn:
        conn.execute(
            update(Outbox).where(Outbox.id == item_id).values(delivered_at=now, last_error=None)
        )


def lease(engine: Engine, item_ids: list[int], *, until: datetime, note: str) -> None:
    """An attempt is starting (or was cut short): the rows are due again at ``until`` and
    ``note`` says so in ``last_error``; attempts are counted by ``failed``."""
    with transaction(engine, "cannot record a delivery attempt") as conn:
        conn.execute(
            update(Outbox)
            .where(Outbox.id.in_(item_ids))
            .values(next_attempt_at=until, last_error=note)
        )


def failed(
    engine: Engine, item_id: int, *, error: str, retry_at: datetime | None, now: datetime
) -> None:
    """Record a failed attempt: retry at ``retry_at``, or dead when it is None."""
    values: dict[str, Any] = {"attempts": Outbox.attempts + 1, "last_error": error}
    if retry_at is None:
        values["dead_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    with transaction(engine, "cannot record a failed delivery") as conn:
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
