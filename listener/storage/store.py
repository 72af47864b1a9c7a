"""Store functions: brands and sources from the config, fetch state, batched mention ingest, and
the queries behind the CLI.

Rules:
- Ingest is one short transaction per poll: a handful of set-based statements, never an ORM add
  per row. Dedup is the database's own: ``INSERT .. ON CONFLICT (dedup_key) DO NOTHING``; an item
  seen before under the same guid keeps its row even when its URL changed; an item whose content
  hash changed updates its row.
- Every SQLAlchemy error leaves as StorageError (one line, no credentials).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from listener.errors import StorageError
from listener.models import Mention, SourceState, StoreResult
from listener.storage.tables import Brand, MentionBrand, Source, Story, UTCDateTime
from listener.storage.tables import Mention as MentionRow

T = TypeVar("T")
_CHUNK = 500
_FUTURE_SKEW = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class CatalogSource:
    """A configured source as storage needs it."""

    name: str
    kind: str
    url: str


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


@dataclass(frozen=True, slots=True)
class MentionFilter:
    brand: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    limit: int | None = 50
    ids: tuple[int, ...] | None = None


def _guard(action: str, work: Callable[[], T]) -> T:
    try:
        return work()
    except SQLAlchemyError as exc:
        raise StorageError(f"{action}: {describe(exc)}") from exc


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _insert(connection: Connection, table: Any) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


@contextmanager
def transaction(engine: Engine, action: str) -> Iterator[Connection]:
    """One transaction; SQLAlchemy errors leave as StorageError("<action>: ...")."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StorageError(f"{action}: {describe(exc)}") from exc


def describe(exc: SQLAlchemyError) -> str:
    """The first line of the database's own message, without SQL or parameters."""
    first = str(getattr(exc, "orig", None) or exc).splitlines()
    return first[0] if first else type(exc).__name__


def sync_catalog(
    conn: Connection, brands: Sequence[str], sources: Sequence[CatalogSource], now: datetime
) -> None:
    """Make sure every configured brand and source has a row. A source whose configured URL
    changed starts afresh (its redirect, validators, errors and disabled state are reset)."""
    if brands:
        conn.execute(
            _insert(conn, Brand).on_conflict_do_nothing(index_elements=["name"]),
            [{"name": name, "created_at": now} for name in brands],
        )
    known = {row.name: row for row in conn.execute(select(Source))}
    for source in sources:
        row = known.get(source.name)
        if row is None:
            conn.execute(
                _insert(conn, Source).on_conflict_do_nothing(index_elements=["name"]),
                {
                    "name": source.name,
                    "kind": source.kind,
                    "config_url": source.url,
                    "url": source.url,
                    "consecutive_errors": 0,
                    "created_at": now,
                },
            )
        elif row.config_url != source.url or row.kind != source.kind:
            conn.execute(
                update(Source)
                .where(Source.id == row.id)
                .values(
                    kind=source.kind,
                    config_url=source.url,
                    url=source.url,
                    etag=None,
                    last_modified=None,
                    consecutive_errors=0,
                    last_error=None,
                    next_poll_at=None,
                    disabled_reason=None,
                )
            )


def load_states(conn: Connection) -> dict[str, SourceState]:
    return {row.name: _state(row) for row in conn.execute(select(Source))}


def _state(row: Any) -> SourceState:
    return SourceState(
        id=row.id,
        name=row.name,
        url=row.url,
        etag=row.etag,
        last_modified=row.last_modified,
        consecutive_errors=row.consecutive_errors,
        last_error=row.last_error,
        last_attempt_at=row.last_attempt_at,
        last_success_at=row.last_success_at,
        next_poll_at=row.next_poll_at,
        disabled_reason=row.disabled_reason,
    )


def record_success(
    conn: Connection,
    source_id: int,
    *,
    now: datetime,
    next_poll_at: datetime,
    etag: str | None,
    last_modified: str | None,
    permanent_url: str | None = None,
    mentions: Sequence[Mention] = (),
) -> tuple[StoreResult, SourceState]:
    """Store a successful poll (200 or 304): its mentions and the source's new fetch state."""
    result = _ingest(conn, source_id, mentions, now) if mentions else StoreResult()
    values: dict[str, Any] = {
        "etag": etag,
        "last_modified": last_modified,
        "last_attempt_at": now,
        "last_success_at": now,
        "consecutive_errors": 0,
        "last_error": None,
        "next_poll_at": next_poll_at,
    }
    if permanent_url:
        values["url"] = permanent_url
    return result, _update_state(conn, source_id, values)


def record_failure(
    conn: Connection, source_id: int, *, now: datetime, error: str, next_poll_at: datetime
) -> SourceState:
    values = {
        "last_attempt_at": now,
        "consecutive_errors": Source.consecutive_errors + 1,
        "last_error": error[:1000],
        "next_poll_at": next_poll_at,
    }
    return _update_state(conn, source_id, values)


def record_gone(conn: Connection, source_id: int, *, now: datetime, reason: str) -> SourceState:
    values = {"last_attempt_at": now, "disabled_reason": reason, "next_poll_at": None}
    return _update_state(conn, source_id, values)


def _update_state(conn: Connection, source_id: int, values: dict[str, Any]) -> SourceState:
    """Update a source's fetch state and return it as it is now (one statement)."""
    stmt = (
        update(Source)
        .where(Source.id == source_id)
        .values(**values)
        .returning(*Source.__table__.columns)
    )
    return _state(conn.execute(stmt).one())


def _ingest(
    conn: Connection, source_id: int, mentions: Sequence[Mention], now: datetime
) -> StoreResult:
    # An item seen before under the same guid keeps its row, whatever its URL is now.
    guids = sorted({m.item.guid for m in mentions if m.item.guid})
    key_of_guid: dict[str, str] = {}
    existing: dict[str, tuple[int, str]] = {}
    keys = sorted({m.dedup_key for m in mentions})
    looked_up = len(guids) <= _CHUNK and len(keys) <= _CHUNK
    if looked_up:  # the usual case: one query finds rows by dedup key and by guid
        wanted = set(guids)
        known = conn.execute(
            select(
                MentionRow.guid, MentionRow.dedup_key, MentionRow.id, MentionRow.content_hash
            ).where(
                or_(
                    MentionRow.dedup_key.in_(keys),
                    and_(MentionRow.source_id == source_id, MentionRow.guid.in_(guids)),
                )
            )
        )
        for found in known:
            existing[found.dedup_key] = (found.id, found.content_hash)
            if found.guid and found.guid in wanted:
                key_of_guid.setdefault(found.guid, found.dedup_key)
    else:
        for chunk in _chunks(guids):
            by_guid = select(MentionRow.guid, MentionRow.dedup_key).where(
                MentionRow.source_id == source_id, MentionRow.guid.in_(chunk)
            )
            key_of_guid.update({r.guid or "": r.dedup_key for r in conn.execute(by_guid)})
    rows: dict[str, dict[str, Any]] = {}
    brands_of: dict[str, set[str]] = {}
    story_keys: dict[str, tuple[str | None, int | None, str]] = {}
    for mention in mentions:
        item = mention.item
        key = key_of_guid.get(item.guid or "", mention.dedup_key)
        published = item.published_at
        event_at = published if published and published <= now + _FUTURE_SKEW else now
        rows[key] = {
            "source_id": source_id,
            "dedup_key": key,
            "content_hash": mention.content_hash,
            "url": item.url,
            "canonical_url": mention.canonical_url,
            "guid": item.guid,
            "title": item.title,
            "text": item.text,
            "author": item.author,
            "published_at": published,
            "fetched_at": now,
            "updated_at": now,
            "event_at": event_at,
            "language": item.language,
            "domain": mention.domain,
        }
        story_keys[key] = (mention.story_url, mention.fingerprint, item.title)
        brands_of.setdefault(key, set()).update(mention.brands)

    # keys not looked up yet (big batches, or a guid that led to another row's key)
    missing = [key for key in rows if key not in existing and not (looked_up and key in keys)]
    for chunk in _chunks(missing):
        by_key = select(MentionRow.dedup_key, MentionRow.id, MentionRow.content_hash).where(
            MentionRow.dedup_key.in_(chunk)
        )
        existing.update({r.dedup_key: (r.id, r.content_hash) for r in conn.execute(by_key)})

    ids: dict[str, int] = {k: v[0] for k, v in existing.items()}
    fresh = [row for key, row in rows.items() if key not in existing]
    if fresh:
        stories = _assign_stories(conn, [story_keys[row["dedup_key"]] for row in fresh], now)
        for row, story_id in zip(fresh, stories, strict=True):
            row["story_id"] = story_id
        inserting = (
            _insert(conn, MentionRow)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(MentionRow.id, MentionRow.dedup_key)
        )
        ids.update({row.dedup_key: row.id for row in conn.execute(inserting, fresh)})
    new_ids = tuple(ids[row["dedup_key"]] for row in fresh if row["dedup_key"] in ids)

    changed = [
        {**rows[key], "_id": ident}
        for key, (ident, digest) in existing.items()
        if rows[key]["content_hash"] != digest
    ]
    if changed:
        keep = ("content_hash", "url", "canonical_url", "title", "text", "author")
        updating = (
            update(MentionRow)
            .where(MentionRow.id == bindparam("_id"))
            .values({name: bindparam(name) for name in (*keep, "published_at", "updated_at")})
        )
        conn.execute(
            updating,
            [
                {name: row[name] for name in (*keep, "published_at", "updated_at", "_id")}
                for row in changed
            ],
        )

    names = sorted({b for bs in brands_of.values() for b in bs})
    by_name = select(Brand.name, Brand.id).where(Brand.name.in_(names))
    brand_ids = {row.name: row.id for row in conn.execute(by_name)}
    links = [
        {"mention_id": ids[key], "brand_id": brand_ids[name]}
        for key, names_of in brands_of.items()
        if key in ids
        for name in sorted(names_of)
        if name in brand_ids
    ]
    if links:
        conn.execute(
            _insert(conn, MentionBrand).on_conflict_do_nothing(
                index_elements=["mention_id", "brand_id"]
            ),
            links,
        )
    return StoreResult(
        new=len(new_ids),
        updated=len(changed),
        unchanged=len(rows) - len(new_ids) - len(changed),
        new_ids=new_ids,
    )


STORY_WINDOW = timedelta(days=7)
# Copies of one short news text (a dateline, a site name, a dropped sentence) measured 2 to 7
# bits apart; unrelated texts were never closer than 17.
STORY_MAX_DISTANCE = 7
_MASK16 = 0xFFFF


def story_bands(fingerprint: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands of a 64-bit fingerprint, most significant first."""
    return tuple((fingerprint >> shift) & _MASK16 for shift in (48, 32, 16, 0))  # type: ignore[return-value]


def _probes(band: int) -> list[int]:
    """The band and every value one bit away: two fingerprints within 7 bits differ in at most
    one bit in at least one of their four bands (pigeonhole), so these probes find them."""
    return [band, *(band ^ (1 << bit) for bit in range(16))]


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _assign_stories(
    conn: Connection, keys: Sequence[tuple[str | None, int | None, str]], now: datetime
) -> list[int]:
    """Story id for each (story_url, fingerprint, title): the story with the same URL, else a
    recent story whose fingerprint is within STORY_MAX_DISTANCE bits, else a new story. Three
    set-based lookups and one bulk insert per batch, whatever its size."""
    urls = sorted({url for url, _, _ in keys if url})
    by_url: dict[str, int] = {}
    for chunk in _chunks(urls):
        found = conn.execute(select(Story.url, Story.id).where(Story.url.in_(chunk)))
        by_url.update({row.url: row.id for row in found if row.url})
    index = _BandIndex()
    prints = [fp for url, fp, _ in keys if fp is not None and not (url and url in by_url)]
    if prints:  # recent stories that come within one bit of a band of the batch
        probes = [
            sorted({p for fp in prints for p in _probes(story_bands(fp)[band])})
            for band in range(4)
        ]
        # Hundreds of integer probes: written into the SQL as literals (they are ints we made,
        # so this is safe), which saves SQLAlchemy coercing each one as a bound parameter.
        bands_sql = " OR ".join(
            f"band{band} IN ({','.join(map(str, values))})" for band, values in enumerate(probes)
        )
        near = text(
            "SELECT id, fingerprint FROM stories"  # noqa: S608 (only our own integers inside)
            f" WHERE first_seen_at >= :since AND ({bands_sql})"
        ).bindparams(bindparam("since", type_=UTCDateTime()))
        for row in conn.execute(near, {"since": now - STORY_WINDOW}):
            if row.fingerprint is not None:
                index.add(row.id, _unsigned64(row.fingerprint))
    assigned: list[int] = []  # story ids; negative: the n-th new story of this batch
    fresh: list[dict[str, Any]] = []
    for url, fingerprint, title in keys:
        story = by_url.get(url) if url else None
        if story is None and fingerprint is not None:
            story = index.nearest(fingerprint)
        if story is None:
            bands = story_bands(fingerprint) if fingerprint is not None else (None,) * 4
            fresh.append(
                {
                    "url": url,
                    "fingerprint": _signed64(fingerprint) if fingerprint is not None else None,
                    "band0": bands[0],
                    "band1": bands[1],
                    "band2": bands[2],
                    "band3": bands[3],
                    "title": title[:500],
                    "first_seen_at": now,
                }
            )
            story = -len(fresh)
            if fingerprint is not None:
                index.add(story, fingerprint)
        if url:
            by_url.setdefault(url, story)
        assigned.append(story)
    if not fresh:
        return assigned
    stmt = insert(Story).returning(Story.id, sort_by_parameter_order=True)
    new_ids = [row.id for row in conn.execute(stmt, fresh)]
    return [new_ids[-story - 1] if story < 0 else story for story in assigned]


class _BandIndex:
    """Fingerprints by band value, for nearest-story lookups within STORY_MAX_DISTANCE."""

    def __init__(self) -> None:
        self._bands: list[dict[int, list[tuple[int, int]]]] = [{}, {}, {}, {}]

    def add(self, story: int, fingerprint: int) -> None:
        for band, value in enumerate(story_bands(fingerprint)):
            self._bands[band].setdefault(value, []).append((story, fingerprint))

    def nearest(self, fingerprint: int) -> int | None:
        best: tuple[int, int] | None = None
        for band, value in enumerate(story_bands(fingerprint)):
            for probe in _probes(value):
                for story, other in self._bands[band].get(probe, ()):
                    gap = (fingerprint ^ other).bit_count()
                    if gap <= STORY_MAX_DISTANCE and (best is None or gap < best[0]):
                        best = (gap, story)
        return None if best is None else best[1]


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

    return _guard("cannot count mentions", work)


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
            for chunk in _chunks(ids):
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
            )
            for row in found
        ]

    return _guard("cannot query mentions", work)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mention_counts(engine: Engine) -> dict[int, int]:
    """Number of stored mentions per source id."""

    def work() -> dict[int, int]:
        with engine.connect() as conn:
            stmt = select(MentionRow.source_id, func.count()).group_by(MentionRow.source_id)
            return {row[0]: row[1] for row in conn.execute(stmt)}

    return _guard("cannot count mentions", work)


def count_rows(engine: Engine) -> dict[str, int]:
    def work() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                table.__tablename__: conn.execute(
                    select(func.count()).select_from(table)
                ).scalar_one()
                for table in (Brand, Source, MentionRow, MentionBrand)
            }

    return _guard("cannot count rows", work)


__all__ = [
    "CatalogSource",
    "MentionFilter",
    "StoredMention",
    "count_rows",
    "load_states",
    "mention_counts",
    "query_mentions",
    "record_failure",
    "record_gone",
    "record_success",
    "sync_catalog",
    "transaction",
]


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


def iter_match_inputs(
    engine: Engine, *, since: datetime | None = None, batch: int = 2000
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
            with engine.connect() as conn:
                return [MatchInput(**row._asdict()) for row in conn.execute(stmt)]

        rows = _guard("cannot read mentions", work)
        if not rows:
            return
        yield rows
        last = rows[-1].id


def count_mentions(engine: Engine, *, since: datetime | None = None) -> int:
    def work() -> int:
        stmt = select(func.count()).select_from(MentionRow)
        if since is not None:
            stmt = stmt.where(MentionRow.event_at >= since)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    return _guard("cannot count mentions", work)


def brand_ids(conn: Connection) -> dict[str, int]:
    return {row.name: row.id for row in conn.execute(select(Brand.name, Brand.id))}


def relink(
    conn: Connection, brands: Sequence[int], matches: dict[int, set[int]]
) -> tuple[int, int]:
    """Make the links of the given mentions to the given brands exactly ``matches``
    (mention id -> brand ids). Returns (links added, links removed)."""
    ids = list(matches)
    current: dict[int, set[int]] = {i: set() for i in ids}
    for chunk in _chunks(ids):
        rows = conn.execute(
            select(MentionBrand.mention_id, MentionBrand.brand_id).where(
                MentionBrand.mention_id.in_(chunk), MentionBrand.brand_id.in_(brands)
            )
        )
        for row in rows:
            current[row.mention_id].add(row.brand_id)
    add = [{"mention_id": m, "brand_id": b} for m in ids for b in sorted(matches[m] - current[m])]
    remove = [(m, b) for m in ids for b in sorted(current[m] - matches[m])]
    if add:
        conn.execute(
            _insert(conn, MentionBrand).on_conflict_do_nothing(
                index_elements=["mention_id", "brand_id"]
            ),
            add,
        )
    for mention_id, brand_id in remove:
        conn.execute(
            delete(MentionBrand).where(
                MentionBrand.mention_id == mention_id, MentionBrand.brand_id == brand_id
            )
        )
    return len(add), len(remove)


def count_unlinked(conn: Connection, ids: Sequence[int]) -> int:
    """How many of these mentions are linked to no brand at all."""
    linked: set[int] = set()
    for chunk in _chunks(ids):
        rows = conn.execute(
            select(MentionBrand.mention_id).where(MentionBrand.mention_id.in_(chunk)).distinct()
        )
        linked.update(row.mention_id for row in rows)
    return len(set(ids) - linked)


def mentions_by_id(engine: Engine, ids: Sequence[int]) -> list[StoredMention]:
    """These mentions, in the order given."""
    found = {m.id: m for m in query_mentions(engine, MentionFilter(ids=tuple(ids), limit=None))}
    return [found[i] for i in ids if i in found]
