"""Read-only queries behind the CLI and the detectors: mentions with filters, counts per bucket,
stored mentions for re-matching.

Size: over 400 lines on purpose: one function per read, all sharing the same mention filters and
bucket arithmetic; split by caller, those would be copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from listener.storage.sql import chunks, guard
from listener.storage.tables import Brand, MentionBrand, Source, Story
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
    story_id: int | None = None
    copies: int = 1  # mentions stored for the same story (this one included)
    domain: str | None = None  # the URL's host without www. (stored at ingest)


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
    # Applied to (title, text) instead of the SQL substring test of ``search``, for searches SQL
    # cannot express (case and umlaut folding): rows are then read in pages until ``limit``.
    text_filter: Callable[[str, str], bool] | None = None


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
        if where.search and where.text_filter is None:
            pattern = "%" + _escape_like(where.search) + "%"
            stmt = stmt.where(
                MentionRow.title.ilike(pattern, escape="\\")
                | MentionRow.text.ilike(pattern, escape="\\")
            )
        stmt = stmt.order_by(MentionRow.event_at.desc(), MentionRow.id.desc())
        with engine.connect() as conn:
            if where.text_filter is None:
                if where.limit is not None:
                    stmt = stmt.limit(where.limit)
                found = list(conn.execute(stmt).all())
            else:
                found = _filtered(conn, stmt, where.text_filter, where.limit)
            ids = [row.id for row in found]
            brands: dict[int, list[str]] = {}
            copies: dict[int, int] = {}
            for chunk in chunks(ids):
                pairs = conn.execute(
                    select(MentionBrand.mention_id, Brand.name)
                    .join(Brand, Brand.id == MentionBrand.brand_id)
                    .where(MentionBrand.mention_id.in_(chunk))
                    .order_by(Brand.name)
                )
                for mention_id, name in pairs:
                    brands.setdefault(mention_id, []).append(name)
            story_ids = sorted({row.story_id for row in found if row.story_id is not None})
            for story_chunk in chunks(story_ids):
                counted = conn.execute(
                    select(MentionRow.story_id, func.count())
                    .where(MentionRow.story_id.in_(story_chunk))
                    .group_by(MentionRow.story_id)
                )
                for story, count in counted:
                    if story is not None:
                        copies[story] = count
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
                story_id=row.story_id,
                copies=copies.get(row.story_id, 1) if row.story_id is not None else 1,
                domain=row.domain,
            )
            for row in found
        ]

    return guard("cannot query mentions", work)


_PAGE = 2000


def _filtered(
    conn: Any, stmt: Any, keep: Callable[[str, str], bool], limit: int | None
) -> list[Any]:
    """Rows of ``stmt`` (newest first) whose (title, text) ``keep`` accepts, read a page at a
    time until ``limit`` are found."""
    found: list[Any] = []
    offset = 0
    while limit is None or len(found) < limit:
        page = conn.execute(stmt.limit(_PAGE).offset(offset)).all()
        for row in page:
            if keep(row.title, row.text):
                found.append(row)
                if limit is not None and len(found) >= limit:
                    break
        if len(page) < _PAGE:
            break
        offset += _PAGE
    return found


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
    mention_id: int = 0


# what detection reads of a mention, in ``DetectionRow``'s order (sentiment becomes ``negative``)
DETECTION_COLUMNS = (
    MentionRow.event_at,
    MentionRow.fetched_at,
    MentionRow.sentiment,
    MentionRow.story_id,
    MentionRow.author,
    MentionRow.domain,
    MentionRow.id,
)


def detection_row(row: Any) -> DetectionRow:
    """A row of ``DETECTION_COLUMNS`` as detection sees it."""
    return DetectionRow(row[0], row[1], row[2] == "negative", *row[3:])


def detection_rows(
    engine: Engine, brand: str, *, since: datetime, until: datetime | None = None
) -> list[DetectionRow]:
    """The brand's mentions with event time in ``[since, until)``, in arrival order."""

    def work() -> list[DetectionRow]:
        stmt = (
            select(*DETECTION_COLUMNS)
            .where(_of_brand(brand), MentionRow.event_at >= since)
            .order_by(MentionRow.fetched_at, MentionRow.id)
        )
        if until is not None:
            stmt = stmt.where(MentionRow.event_at < until)
        with engine.connect() as conn:
            return [detection_row(row) for row in conn.execute(stmt)]

    return guard("cannot read mentions", work)


@dataclass(frozen=True, slots=True)
class StoredStory:
    """One story as a brand saw it in a time window: its copies there and what they say."""

    story_id: int | None  # None: a mention that joined no story (it stands alone)
    title: str
    url: str | None
    first_seen: datetime  # the story's first copy (any brand, any time)
    last_seen: datetime  # the newest copy in the window
    copies: int  # copies in the window that mention the brand
    sources: tuple[str, ...]  # by number of copies, most first
    domains: int
    negative: int
    neutral: int
    positive: int


def brand_stories(
    engine: Engine, brand: str, since: datetime, until: datetime | None = None
) -> list[StoredStory]:
    """The stories behind a brand's mentions in [since, until), most copies first."""

    def work() -> list[StoredStory]:
        stmt = (
            select(
                MentionRow.id,
                MentionRow.story_id,
                MentionRow.event_at,
                MentionRow.sentiment,
                MentionRow.title,
                MentionRow.text,
                MentionRow.url,
                MentionRow.domain,
                Source.name.label("source_name"),
            )
            .join(Source, Source.id == MentionRow.source_id)
            .where(_of_brand(brand), MentionRow.event_at >= since)
        )
        if until is not None:
            stmt = stmt.where(MentionRow.event_at < until)
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
            ids = sorted({r.story_id for r in rows if r.story_id is not None})
            stories: dict[int, Any] = {}
            for chunk in chunks(ids):
                found = conn.execute(select(Story).where(Story.id.in_(chunk))).all()
                stories.update({story.id: story for story in found})
        groups: dict[int, list[Any]] = {}
        for row in rows:
            groups.setdefault(row.story_id if row.story_id is not None else -row.id, []).append(row)
        out = []
        for key, members in groups.items():
            story = stories.get(key)
            first = min(members, key=lambda r: (r.event_at, r.id))
            per_source: dict[str, int] = {}
            for member in members:
                per_source[member.source_name] = per_source.get(member.source_name, 0) + 1
            mix = [member.sentiment for member in members]
            out.append(
                StoredStory(
                    story_id=key if key > 0 else None,
                    title=(story.title if story is not None else "") or first.title or first.text,
                    url=story.url if story is not None and story.url else first.url,
                    first_seen=min(story.first_seen_at, first.event_at)
                    if story is not None
                    else first.event_at,
                    last_seen=max(member.event_at for member in members),
                    copies=len(members),
                    sources=tuple(sorted(per_source, key=lambda n: (-per_source[n], n))),
                    domains=len({m.domain for m in members if m.domain}),
                    negative=mix.count("negative"),
                    neutral=mix.count("neutral"),
                    positive=mix.count("positive"),
                )
            )
        out.sort(key=lambda s: (-s.copies, -s.last_seen.timestamp(), s.story_id or 0))
        return out

    return guard("cannot read stories", work)
