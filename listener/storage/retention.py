"""Retention: old mentions go, their daily counts stay.

Rules:
- A brand's mentions older than its retention age are pruned; a mention linked to several
  brands goes once no brand keeps it. Before a link is removed, its day's counts (mentions,
  negative) are added to ``daily_counts``, so long-range charts and baselines survive.
- Small batches (``BATCH`` rows a transaction): the daemon keeps polling meanwhile, and an
  interrupted prune loses nothing (each batch counts and deletes in one transaction).
- SQLite gives the space back with VACUUM only when at least a quarter of the file is free;
  PostgreSQL's autovacuum reuses it by itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, delete, exists, func, select, text

from listener.storage.sql import dialect_insert, transaction
from listener.storage.tables import Brand, DailyCount, MentionBrand, Story
from listener.storage.tables import Mention as MentionRow

BATCH = 1000


@dataclass
class Pruned:
    links: int = 0
    mentions: int = 0
    stories: int = 0
    vacuumed: bool = False


def prune(engine: Engine, cutoffs: dict[str, datetime], *, batch: int = BATCH) -> Pruned:
    """Prune each brand's mentions with event time before its cutoff."""
    result = Pruned()
    for brand, cutoff in cutoffs.items():
        while True:
            with transaction(engine, "cannot prune mentions") as conn:
                brand_id = conn.execute(select(Brand.id).where(Brand.name == brand)).scalar()
                if brand_id is None:
                    break
                rows = conn.execute(
                    select(MentionRow.id, MentionRow.event_at, MentionRow.sentiment)
                    .join(MentionBrand, MentionBrand.mention_id == MentionRow.id)
                    .where(MentionBrand.brand_id == brand_id, MentionRow.event_at < cutoff)
                    .order_by(MentionRow.id)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                counts: Counter[date] = Counter()
                negative: Counter[date] = Counter()
                for row in rows:
                    day = row.event_at.date()
                    counts[day] += 1
                    negative[day] += row.sentiment == "negative"
                for day, n in counts.items():
                    conn.execute(
                        dialect_insert(conn, DailyCount)
                        .values(brand_id=brand_id, day=day, mentions=n, negative=negative[day])
                        .on_conflict_do_update(
                            index_elements=["brand_id", "day"],
                            set_={
                                "mentions": DailyCount.mentions + n,
                                "negative": DailyCount.negative + negative[day],
                            },
                        )
                    )
                ids = [row.id for row in rows]
                conn.execute(
                    delete(MentionBrand).where(
                        MentionBrand.brand_id == brand_id, MentionBrand.mention_id.in_(ids)
                    )
                )
                result.links += len(ids)
                orphans = conn.execute(
                    delete(MentionRow).where(
                        MentionRow.id.in_(ids),
                        ~exists().where(MentionBrand.mention_id == MentionRow.id),
                    )
                )
                result.mentions += orphans.rowcount or 0
    with transaction(engine, "cannot prune stories") as conn:
        gone = conn.execute(delete(Story).where(~exists().where(MentionRow.story_id == Story.id)))
        result.stories = gone.rowcount or 0
    result.vacuumed = _reclaim(engine)
    return result


def _reclaim(engine: Engine) -> bool:
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as conn:
        free = conn.execute(text("PRAGMA freelist_count")).scalar() or 0
        pages = conn.execute(text("PRAGMA page_count")).scalar() or 1
    if free * 4 < pages:
        return False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM"))
    return True


def daily_counts(engine: Engine, brand: str) -> dict[date, tuple[int, int]]:
    """The kept counts of pruned days: day -> (mentions, negative)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(DailyCount.day, DailyCount.mentions, DailyCount.negative)
            .join(Brand, Brand.id == DailyCount.brand_id)
            .where(func.lower(Brand.name) == brand.lower())
        )
        return {row.day: (row.mentions, row.negative) for row in rows}


__all__ = ["Pruned", "daily_counts", "prune"]
