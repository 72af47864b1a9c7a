"""Stored detection state: one row per brand, and the brand's mentions newer than its cursor.

Rules:
- Storage never looks inside: the state is bytes and the cursor JSON text that the service
  (``service.state``) writes and reads; ``fingerprint`` says what they are valid for.
- A state is a cache of what the stored mentions say: deleting it (``forget``) loses nothing,
  the next detection run rebuilds it from the mentions. Commands that change history
  (``rematch``, ``rescore``) forget the states of the brands they touch; retention leaves the
  table alone (a state holds what its detectors need by itself).
- New mentions are read by link id (``mention_brands(brand_id, mention_id)`` is indexed), in
  arrival order (``fetched_at``, id), and only those fetched by the run's time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.engine import Connection

from listener.storage.queries import DETECTION_COLUMNS, DetectionRow, detection_row
from listener.storage.sql import dialect_insert, guard, transaction
from listener.storage.tables import Brand, DetectionState, MentionBrand, UTCDateTime
from listener.storage.tables import Mention as MentionRow


@dataclass(frozen=True, slots=True)
class StoredState:
    fingerprint: str
    cursor: str
    judged_until: datetime
    state: bytes
    updated_at: datetime


def load(engine: Engine, brand: str) -> StoredState | None:
    """The brand's stored state, if any."""

    def work() -> StoredState | None:
        stmt = (
            select(
                DetectionState.fingerprint,
                DetectionState.cursor,
                DetectionState.judged_until,
                DetectionState.state,
                DetectionState.updated_at,
            )
            .join(Brand, Brand.id == DetectionState.brand_id)
            .where(Brand.name == brand)
        )
        with engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return StoredState(*row) if row is not None else None

    return guard("cannot read the detection state", work)


_MARKER = (
    select(DetectionState.fingerprint, DetectionState.judged_until, DetectionState.updated_at)
    .join(Brand, Brand.id == DetectionState.brand_id)
    .where(Brand.name == bindparam("brand"))
)  # built once: a run asks it of every brand


def marker(engine: Engine, brand: str) -> tuple[str, datetime, datetime] | None:
    """The brand's stored (fingerprint, judged_until, updated_at), without the state itself."""

    def work() -> tuple[str, datetime, datetime] | None:
        with engine.connect() as conn:
            row = conn.execute(_MARKER, {"brand": brand}).one_or_none()
        return (row[0], row[1], row[2]) if row is not None else None

    return guard("cannot read the detection state", work)


def save(
    conn: Connection,
    brand: str,
    *,
    fingerprint: str,
    cursor: str,
    judged_until: datetime,
    state: bytes,
    now: datetime,
) -> None:
    """Store (replace) the brand's state in the caller's transaction."""
    brand_id = conn.execute(select(Brand.id).where(Brand.name == brand)).scalar_one_or_none()
    if brand_id is None:
        return
    values = {
        "fingerprint": fingerprint,
        "cursor": cursor,
        "judged_until": judged_until,
        "state": state,
        "updated_at": now,
    }
    stmt = dialect_insert(conn, DetectionState).values(brand_id=brand_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["brand_id"], set_=values))


def forget(engine: Engine, brands: Iterable[str] | None = None) -> int:
    """Delete the states of ``brands`` (None: every brand); they are rebuilt on the next run."""
    with transaction(engine, "cannot reset the detection state") as conn:
        stmt = delete(DetectionState)
        if brands is not None:
            names = [b.lower() for b in brands]
            ids = [
                row.id
                for row in conn.execute(select(Brand.id, Brand.name))
                if row.name.lower() in names
            ]
            stmt = stmt.where(DetectionState.brand_id.in_(ids))
        return conn.execute(stmt).rowcount or 0


_NEW_ROWS = (
    select(*DETECTION_COLUMNS)
    .join(MentionBrand, MentionBrand.mention_id == MentionRow.id)
    .join(Brand, Brand.id == MentionBrand.brand_id)
    .where(
        Brand.name == bindparam("brand"),
        MentionBrand.mention_id > bindparam("after"),
        MentionRow.fetched_at <= bindparam("until", type_=UTCDateTime),
    )
    .order_by(MentionRow.fetched_at, MentionRow.id)
)


def new_rows(engine: Engine, brand: str, *, after: int, until: datetime) -> list[DetectionRow]:
    """The brand's mentions with id above ``after`` fetched at or before ``until``, in arrival
    order."""

    def work() -> list[DetectionRow]:
        params = {"brand": brand, "after": after, "until": until}
        with engine.connect() as conn:
            return [detection_row(row) for row in conn.execute(_NEW_ROWS, params)]

    return guard("cannot read mentions", work)
