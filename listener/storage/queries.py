"""Read-only queries behind the CLI and the detectors: mentions with filters, counts per bucket,
stored mentions for re-matching."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from listener.storage.sql import chunks, guard
from listener.storage.tables import Brand, MentionBrand, Source
from listener.storage.tables import Mention as MentionRow


@dataclass(frozen=True, slots=True)
class StoredMention:
    id: int
    brands: tuple[str, ...]
    source: str
    url: str | None
    title: str
    text: str
    author: str | None
    published_at: datetime | None
    fetched_at: datetime
    language: str | None
    sentiment: str | None
    sentiment_score: float | None
    reach: int | None = None
    points: int | None = None
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    backfill: bool = False


@dataclass(frozen=True, slots=True)
class MentionFilter:
    brand: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    limit: int | None = 50
    ids: tuple[int, ...] | None = None
    sentiment: str | None = None


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """Counts of one brand in one time bucket."""

    start: datetime
    mentions: int
    stories: int
    authors: int
    domains: int


def count_buckets(
    engine: Engine, brand: str, since: datetime, until: datetime, bucket: timedelta
) -> list[BucketCounts]:
    """Per bucket of event time: mentions, distinct stories, distinct authors, distinct domains
    (a mention without a story counts as a story of its own)."""

    def work() -> list[BucketCounts]:
        stmt = (
            select(
                MentionRow.id,
                MentionRow.event_at,
                MentionRow.story_id,
                MentionRow.author,
                MentionRow.domain,
            )
            .join(MentionBrand, MentionBrand.mention_id == MentionRow.id)
            .join(Brand, Brand.id == MentionBrand.brand_id)
            .where(func.lower(Brand.name) == brand.lower())
            .where(MentionRow.event_at >= since, MentionRow.event_at < until)
        )
        size = bucket.total_seconds()
        groups: dict[int, list[Any]] = {}
        with engine.connect() as conn:
            for row in conn.execute(stmt):
                index = int((row.event_at - since).total_seconds() // size)
                groups.setdefault(index, []).append(row)
        return [
            BucketCounts(
                start=since + index * bucket,
                mentions=len(rows),
                stories=len({r.story_id or -r.id for r in rows}),
                authors=len({r.author.casefold() for r in rows if r.author}),
                domains=len({r.domain for r in rows if r.domain}),
            )
            for index, rows in sorted(groups.items())
        ]

    return guard("cannot count mentions", work)


def query_mentions(engine: Engine, where: MentionFilter) -> list[StoredMention]:
    """Mentions matching the filter, newest first (event time, then id)."""

    def work() -> list[StoredMention]:
        stmt = select(MentionRow, Source.name.label("source_name")).join(
            Source, Source.id == MentionRow.source_id
        )
        if where.brand is not None:
            stmt = stmt.where(
                MentionRow.id.in_(
                    select(MentionBrand.mention_id)
                    .join(Brand, Brand.id == MentionBrand.brand_id)
                    .where(func.lower(Brand.name) == where.brand.lower())
                )
            )
        if where.source is not None:
            stmt = stmt.where(func.lower(Source.name) == where.source.lower())
        if where.since is not None:
            stmt = stmt.where(MentionRow.event_at >= where.since)
        if where.until is not None:
            stmt = stmt.where(MentionRow.event_at < where.until)
        if where.sentiment is not None:
            stmt = stmt.where(MentionRow.sentiment == where.sentiment)
        if where.ids is not None:
            stmt = stmt.where(MentionRow.id.in_(where.ids))
        if where.search:
            pattern = "%" + _escape_like(where.search) + "%"
            stmt = stmt.where(
                MentionRow.title.ilike(pattern, escape="\\")
                | MentionRow.text.ilike(pattern, escape="\\")
            )
        stmt = stmt.order_by(MentionRow.event_at.desc(), MentionRow.id.desc())
        if where.limit is not None:
            stmt = stmt.limit(where.limit)
        with engine.connect() as conn:
            found = conn.execute(stmt).all()
            ids = [row.id for row in found]
            brands: dict[int, list[str]] = {}
            for chunk in chunks(ids):
                pairs = conn.execute(
                    select(MentionBrand.mention_id, Brand.name)
                    .join(Brand, Brand.id == MentionBrand.brand_id)
                    .where(MentionBrand.mention_id.in_(chunk))
                    .order_by(Brand.name)
                )
                for mention_id, name in pairs:
                    brands.setdefault(mention_id, []).append(name)
        return [
            StoredMention(
                id=row.id,
                brands=tuple(brands.get(row.id, ())),
                source=row.source_name,
                url=row.url,
                title=row.title,
                text=row.text,
                author=row.author,
                published_at=row.published_at,
                fetched_at=row.fetched_at,
                language=row.language,
                sentiment=row.sentiment,
                sentiment_score=row.sentiment_score,
                reach=row.author_reach,
                points=row.points,
                likes=row.likes,
                reposts=row.reposts,
                replies=row.replies,
                backfill=bool(row.backfill),
            )
            for row in found
        ]

    return guard("cannot query mentions", work)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mention_counts(engine: Engine) -> dict[int, int]:
    """Number of stored mentions per source id."""

    def work() -> dict[int, int]:
        with engine.connect() as conn:
            stmt = select(MentionRow.source_id, func.count()).group_by(MentionRow.source_id)
            return {row[0]: row[1] for row in conn.execute(stmt)}

    return guard("cannot count mentions", work)


def count_rows(engine: Engine) -> dict[str, int]:
    def work() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                table.__tablename__: conn.execute(
                    select(func.count()).select_from(table)
                ).scalar_one()
                for table in (Brand, Source, MentionRow, MentionBrand)
            }

    return guard("cannot count rows", work)


@dataclass(frozen=True, slots=True)
class MatchInput:
    """What matching needs of a stored mention."""

    id: int
    title: str
    text: str
    author: str | None
    url: str | None
    language: str | None
    source: str
    event_at: datetime


def _of_brand(brand: str) -> Any:
    return MentionRow.id.in_(
        select(MentionBrand.mention_id)
        .join(Brand, Brand.id == MentionBrand.brand_id)
        .where(func.lower(Brand.name) == brand.lower())
    )


def iter_match_inputs(
    engine: Engine,
    *,
    since: datetime | None = None,
    brand: str | None = None,
    batch: int = 2000,
) -> Iterator[list[MatchInput]]:
    """Stored mentions in id order, in batches (keyset paging: memory stays flat)."""
    last = 0
    while True:

        def work(after: int = last) -> list[MatchInput]:
            stmt = (
                select(
                    MentionRow.id,
                    MentionRow.title,
                    MentionRow.text,
                    MentionRow.author,
                    MentionRow.url,
                    MentionRow.language,
                    MentionRow.event_at,
                    Source.name.label("source"),
                )
                .join(Source, Source.id == MentionRow.source_id)
                .where(MentionRow.id > after)
                .order_by(MentionRow.id)
                .limit(batch)
            )
            if since is not None:
                stmt = stmt.where(MentionRow.event_at >= since)
            if brand is not None:
                stmt = stmt.where(_of_brand(brand))
            with engine.connect() as conn:
                return [MatchInput(**row._asdict()) for row in conn.execute(stmt)]

        rows = guard("cannot read mentions", work)
        if not rows:
            return
        yield rows
        last = rows[-1].id


def count_mentions(
    engine: Engine, *, since: datetime | None = None, brand: str | None = None
) -> int:
    def work() -> int:
        stmt = select(func.count()).select_from(MentionRow)
        if since is not None:
            stmt = stmt.where(MentionRow.event_at >= since)
        if brand is not None:
            stmt = stmt.where(_of_brand(brand))
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    return guard("cannot count mentions", work)


def mentions_by_id(engine: Engine, ids: Sequence[int]) -> list[StoredMention]:
    """These mentions, in the order given."""
    found = {m.id: m for m in query_mentions(engine, MentionFilter(ids=tuple(ids), limit=None))}
    return [found[i] for i in ids if i in found]


@dataclass(frozen=True, slots=True)
class DetectionRow:
    """What detection needs of one mention of a brand."""

    event_at: datetime
    fetched_at: datetime
    negative: bool
    story_id: int | None
    author: str | None
    domain: str | None


def detection_rows(
    engine: Engine, brand: str, *, since: datetime, until: datetime | None = None
) -> list[DetectionRow]:
    """The brand's mentions with event time in ``[since, until)``, in arrival order."""

    def work() -> list[DetectionRow]:
        stmt = (
            select(
                MentionRow.event_at,
                MentionRow.fetched_at,
                MentionRow.sentiment,
                MentionRow.story_id,
                MentionRow.author,
                MentionRow.domain,
            )
            .where(_of_brand(brand), MentionRow.event_at >= since)
            .order_by(MentionRow.fetched_at, MentionRow.id)
        )
        if until is not None:
            stmt = stmt.where(MentionRow.event_at < until)
        with engine.connect() as conn:
            return [
                DetectionRow(row[0], row[1], row[2] == "negative", row[3], row[4], row[5])
                for row in conn.execute(stmt)
            ]

    return guard("cannot read mentions", work)
