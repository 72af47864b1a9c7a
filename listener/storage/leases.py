"""Detection shared among instances on PostgreSQL: per-brand leases in ``brand_leases``.

Rules:
- Every instance that takes part in detection says until when in ``instances.detecting_until``
  (renewed with its leases); the live instances are those whose time has not passed. An
  instance that dies stops being live when its leases expire, so the survivors' fair share
  grows exactly when its brands become free.
- ``claim`` (one transaction; the daemon's lease job every few seconds, and each detection
  run): renew this instance's leases, release those above its fair share (``ceil(brands /
  live instances)``: an instance joined) at once, then take expired or free brands up to the
  share. Taking is one UPDATE of rows whose lease has expired, picked with ``FOR UPDATE SKIP
  LOCKED`` and checked again by the UPDATE itself, so two instances never hold one brand.
- Once per bucket: the same transaction reserves the brands to evaluate now with one UPDATE
  of ``evaluated_at`` guarded by ``evaluated_at < start of the current bucket`` (buckets are
  aligned to the epoch, as the detectors' are). A brand is evaluated at most once per bucket,
  whoever holds it and however often the holder changes. ``due="all"`` (a detection run)
  reserves every brand held; ``due="taken"`` (the lease job) only those another instance
  evaluated last: brands just taken over are evaluated as soon as their bucket allows, not at
  the next detection run.
- ``release`` (a clean stop) frees this instance's brands at once.
- SQLite has one daemon per database, which evaluates every brand: no leases there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.engine import Connection

from listener.storage.sql import dialect_insert, guard, transaction
from listener.storage.tables import Brand, BrandLease, Instance


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim of one instance holds (names, in brand order), what it reserved to
    evaluate now, what it took and released, and the live instances."""

    held: tuple[str, ...]
    taken: tuple[str, ...]
    released: tuple[str, ...]
    live: int
    share: int
    due: tuple[str, ...] = ()


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
    due: Literal["all", "taken"] = "all",
) -> Claim:
    """Renew, release above the fair share, take free brands up to it, reserve what is due
    (see the module docstring); the leases held and taken last until ``until``."""
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
        if released:  # free at once: the bucket guard keeps their evaluations apart
            conn.execute(
                update(BrandLease)
                .where(BrandLease.brand_id.in_(released), BrandLease.held_by == me)
                .values(held_by=None, held_until=now)
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
        reserved = _reserve(conn, me, set(kept) | set(taken), now, bucket, due)
    names = {brand_id: name for name, brand_id in ids.items()}
    held = set(kept) | set(taken)
    return Claim(
        held=tuple(name for name in brands if ids.get(name) in held),
        taken=tuple(names[i] for i in sorted(taken)),
        released=tuple(names[i] for i in released),
        live=live,
        share=share,
        due=tuple(name for name in brands if ids.get(name) in reserved),
    )


def bucket_start(now: datetime, bucket: timedelta) -> datetime:
    """The start of the bucket ``now`` is in (buckets aligned to the epoch)."""
    seconds = bucket.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=now.tzinfo)


def _reserve(
    conn: Connection,
    me: str,
    held: set[int],
    now: datetime,
    bucket: timedelta,
    due: Literal["all", "taken"],
) -> set[int]:
    """Mark ``held`` brands not yet evaluated in the current bucket as evaluated by ``me`` at
    ``now`` (only those another instance evaluated last, for ``due="taken"``): the guard that
    keeps a brand to one evaluation per bucket. Returns the ids reserved."""
    if not held:
        return set()
    start = bucket_start(now, bucket)
    pending = or_(BrandLease.evaluated_at.is_(None), BrandLease.evaluated_at < start)
    if due == "taken":
        pending = (BrandLease.evaluated_at < start) & (BrandLease.evaluated_by != me)
    return set(
        conn.execute(
            update(BrandLease)
            .where(BrandLease.brand_id.in_(list(held)), BrandLease.held_by == me, pending)
            .values(evaluated_by=me, evaluated_at=now)
            .returning(BrandLease.brand_id)
        ).scalars()
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
