"""Detection shared among instances on PostgreSQL: per-brand leases in ``brand_leases``.

Rules:
- Every instance that takes part in detection says until when in ``instances.detecting_until``
  (each detection run renews it to the end of its leases); the live instances are those whose
  time has not passed. An instance that dies stops being live when its leases expire, so the
  survivors' fair share grows exactly when its brands become free.
- ``claim`` (one transaction, at the start of each detection run): renew this instance's
  leases, release those above its fair share (``ceil(brands / live instances)``: an instance
  joined), then take expired or free brands up to the share. Taking is one UPDATE of rows
  whose lease has expired, picked with ``FOR UPDATE SKIP LOCKED`` and checked again by the
  UPDATE itself, so two instances never hold one brand at once.
- A released brand becomes free one bucket after its last evaluation, and an expired one
  only after its lease (longer than a bucket) has run out: the next instance's first run of it
  is never within a bucket of the previous instance's last.
- ``evaluated`` records who evaluated a brand last, and the moment of that run, and renews
  the leases from the end of the run (a run longer than a bucket makes the next one wait).
- ``release`` (a clean stop) frees this instance's brands at once.
- SQLite has one daemon per database, which evaluates every brand: no leases there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Engine, func, or_, select, type_coerce, update
from sqlalchemy.engine import Connection

from listener.storage.sql import dialect_insert, guard, transaction
from listener.storage.tables import Brand, BrandLease, Instance


@dataclass(frozen=True, slots=True)
class Claim:
    """What one detection run of one instance holds: the brands to evaluate (names, in
    brand order), what it took and released in this claim, and the live instances."""

    held: tuple[str, ...]
    taken: tuple[str, ...]
    released: tuple[str, ...]
    live: int
    share: int


def enlist(engine: Engine, me: str, until: datetime) -> None:
    """Count this instance among the live ones until ``until`` (at start: its first run's
    leases), so that the others leave it its share from their next run on."""
    with transaction(engine, "cannot enlist for detection") as conn:
        conn.execute(update(Instance).where(Instance.id == me).values(detecting_until=until))


def claim(
    engine: Engine,
    me: str,
    brands: Sequence[str],
    now: datetime,
    until: datetime,
    bucket: timedelta,
) -> Claim:
    """Renew, release above the fair share, take free brands up to it (see the module
    docstring); the leases held and taken last until ``until``."""
    with transaction(engine, "cannot claim brands for detection") as conn:
        ids = _brand_ids(conn, brands)
        conn.execute(update(Instance).where(Instance.id == me).values(detecting_until=until))
        live = conn.execute(
            select(func.count()).select_from(Instance).where(Instance.detecting_until > now)
        ).scalar_one()
        live = max(1, int(live))
        share = -(-len(ids) // live)
        wanted = list(ids.values())
        mine = list(
            conn.execute(
                select(BrandLease.brand_id)
                .where(BrandLease.held_by == me, BrandLease.brand_id.in_(wanted))
                .order_by(BrandLease.brand_id)
            ).scalars()
        )
        kept, released = mine[:share], mine[share:]
        if released:  # free one bucket after our last evaluation of it
            conn.execute(
                update(BrandLease)
                .where(BrandLease.brand_id.in_(released), BrandLease.held_by == me)
                .values(
                    held_by=None,
                    held_until=func.coalesce(
                        type_coerce(BrandLease.evaluated_at, DateTime(timezone=True)) + bucket, now
                    ),
                )
            )
        if kept:  # what we still hold (an expired lease of ours may have been taken)
            kept = list(
                conn.execute(
                    update(BrandLease)
                    .where(BrandLease.brand_id.in_(kept), BrandLease.held_by == me)
                    .values(held_until=until)
                    .returning(BrandLease.brand_id)
                ).scalars()
            )
        taken: list[int] = []
        if len(kept) < share:
            free = or_(BrandLease.held_until.is_(None), BrandLease.held_until <= now)
            pick = (
                select(BrandLease.brand_id)
                .where(BrandLease.brand_id.in_(wanted), free)
                .order_by(BrandLease.brand_id)
                .limit(share - len(kept))
                .with_for_update(skip_locked=True)
            )
            taken = list(
                conn.execute(
                    update(BrandLease)
                    .where(BrandLease.brand_id.in_(pick.scalar_subquery()), free)
                    .values(held_by=me, held_until=until)
                    .returning(BrandLease.brand_id)
                ).scalars()
            )
    names = {brand_id: name for name, brand_id in ids.items()}
    held = set(kept) | set(taken)
    return Claim(
        held=tuple(name for name in brands if ids.get(name) in held),
        taken=tuple(names[i] for i in sorted(taken)),
        released=tuple(names[i] for i in released),
        live=live,
        share=share,
    )


def _brand_ids(conn: Connection, brands: Sequence[str]) -> dict[str, int]:
    """The configured brands' ids; every one gets a lease row (free) the first time."""
    ids = {
        str(name): int(brand_id)
        for name, brand_id in conn.execute(
            select(Brand.name, Brand.id).where(Brand.name.in_(list(brands)))
        )
    }
    if ids:
        conn.execute(
            dialect_insert(conn, BrandLease)
            .values([{"brand_id": brand_id} for brand_id in ids.values()])
            .on_conflict_do_nothing(index_elements=["brand_id"])
        )
    return ids


def evaluated(
    engine: Engine, me: str, brands: Sequence[str], at: datetime, until: datetime
) -> None:
    """This instance's run at ``at`` evaluated ``brands``: mark those it still holds, and renew
    them and its detection heartbeat until ``until`` (a run longer than a bucket makes the
    scheduler skip the next one: its leases must outlast the wait for the one after)."""
    with transaction(engine, "cannot record evaluated brands") as conn:
        if brands:
            ids = select(Brand.id).where(Brand.name.in_(list(brands))).scalar_subquery()
            conn.execute(
                update(BrandLease)
                .where(BrandLease.brand_id.in_(ids), BrandLease.held_by == me)
                .values(evaluated_by=me, evaluated_at=at, held_until=until)
            )
        conn.execute(update(Instance).where(Instance.id == me).values(detecting_until=until))


def release(engine: Engine, me: str) -> None:
    """A clean stop: free every brand of this instance now, and stop counting it as live."""
    with transaction(engine, "cannot release brands") as conn:
        conn.execute(
            update(BrandLease).where(BrandLease.held_by == me).values(held_by=None, held_until=None)
        )
        conn.execute(update(Instance).where(Instance.id == me).values(detecting_until=None))


def held(engine: Engine, now: datetime) -> dict[str, int]:
    """How many brands each instance holds a lease of now, by instance id."""

    def work() -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(BrandLease.held_by, func.count())
                .where(BrandLease.held_by.is_not(None), BrandLease.held_until > now)
                .group_by(BrandLease.held_by)
            )
            return {str(who): int(count) for who, count in rows}

    return guard("cannot read brand leases", work)


def leases(engine: Engine) -> list[Any]:
    """Every lease (brand, held_by, held_until, evaluated_by, evaluated_at), by brand name."""

    def work() -> list[Any]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    Brand.name,
                    BrandLease.held_by,
                    BrandLease.held_until,
                    BrandLease.evaluated_by,
                    BrandLease.evaluated_at,
                )
                .join(Brand, Brand.id == BrandLease.brand_id)
                .order_by(Brand.name)
            )
            return list(rows)

    return guard("cannot read brand leases", work)
