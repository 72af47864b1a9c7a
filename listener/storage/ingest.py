"""Batched ingest of one poll's mentions, and story assignment.

Rules:
- A handful of set-based statements per poll, never an ORM add per row. Dedup is the database's
  own: ``INSERT .. ON CONFLICT (dedup_key) DO NOTHING``; an item seen before under the same guid
  (stored, or earlier in the same batch) keeps its row even when its URL changed; an item
  whose content hash changed updates its row.
- Copies of one article are one story: the same story URL, or a fingerprint within
  STORY_MAX_DISTANCE bits of a story first seen within STORY_WINDOW (``listener.simhash``: the
  band index and the assignment rules, shared with matching's tests and bench).
- Stored titles are at most TITLE_MAX (1,000) characters and texts at most TEXT_MAX (100,000);
  a longer one is cut and ends in CUT_MARK (" [...]"), inside the limit. Matching, scoring and
  dedup saw the whole text before.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Executable, bindparam, insert, select, text, update
from sqlalchemy.engine import Connection

from listener import simhash
from listener.models import Mention, StoreResult
from listener.storage import story_window
from listener.storage.sql import chunks, insert_for
from listener.storage.tables import Brand, MentionBrand, Story, UTCDateTime
from listener.storage.tables import Mention as MentionRow

_FUTURE_SKEW = timedelta(minutes=10)
TITLE_MAX = 1_000
TEXT_MAX = 100_000
CUT_MARK = " [...]"


def capped(text: str, limit: int) -> str:
    """``text``, or its first characters and CUT_MARK, at most ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    return text[: limit - len(CUT_MARK)].rstrip() + CUT_MARK


@dataclass(frozen=True, slots=True)
class Batch:
    """The mentions one poll of one source delivered."""

    source_id: int
    mentions: Sequence[Mention]
    now: datetime


def ingest(conn: Connection, batches: Sequence[Batch]) -> list[StoreResult]:
    """Store the mentions of several polls with one set of statements; a result per batch.

    A mention whose dedup key (or whose guid, within its source) is already stored belongs to
    that row; when two batches carry the same key, the first one owns the row."""
    entries = [
        (b, batch.source_id, m, batch.now)
        for b, batch in enumerate(batches)
        for m in batch.mentions
    ]
    existing, key_of_guid = _lookup(conn, entries)
    rows: dict[str, dict[str, Any]] = {}
    owner: dict[str, int] = {}
    brands_of: dict[str, set[str]] = {}
    story_keys: dict[str, tuple[str | None, int | None, str]] = {}
    for index, source_id, mention, now in entries:
        item = mention.item
        key = key_of_guid.get((source_id, item.guid or ""), mention.dedup_key)
        if item.guid:  # one guid is one mention in this batch too, whatever its link
            key_of_guid.setdefault((source_id, item.guid), key)
        brands_of.setdefault(key, set()).update(mention.brands)
        if key in rows and owner[key] != index:
            continue  # another poll of this batch brought the same item first
        published = item.published_at
        event_at = published if published and published <= now + _FUTURE_SKEW else now
        owner[key] = index
        rows[key] = {
            "source_id": source_id,
            "dedup_key": key,
            "content_hash": mention.content_hash,
            "url": item.url,
            "canonical_url": mention.canonical_url,
            "guid": item.guid,
            "title": capped(item.title, TITLE_MAX),
            "text": capped(item.text, TEXT_MAX),
            "author": item.author,
            "published_at": published,
            "fetched_at": now,
            "updated_at": now,
            "event_at": event_at,
            "language": item.language,
            "domain": mention.domain,
            "author_reach": item.reach,
            "points": item.points,
            "likes": item.likes,
            "reposts": item.reposts,
            "replies": item.replies,
            "backfill": mention.backfill,
            **_score_columns(mention),
        }
        story_keys[key] = (mention.story_url, mention.fingerprint, item.title)
    ids: dict[str, int] = {k: v[0] for k, v in existing.items()}
    fresh = [row for key, row in rows.items() if key not in existing]
    if fresh:
        newest = max(batch.now for batch in batches)
        stories = _assign_stories(conn, [story_keys[row["dedup_key"]] for row in fresh], newest)
        for row, story_id in zip(fresh, stories, strict=True):
            row["story_id"] = story_id
        inserting = _statements(conn.dialect.name).insert_mentions
        ids.update({row.dedup_key: row.id for row in conn.execute(inserting, fresh)})
    changed = {
        key: ident
        for key, (ident, digest) in existing.items()
        if key in rows and rows[key]["content_hash"] != digest
    }
    if changed:
        names = _UPDATED_COLUMNS
        conn.execute(
            _statements(conn.dialect.name).update_mentions,
            [{**{n: rows[key][n] for n in names}, "_id": ident} for key, ident in changed.items()],
        )
    _link(conn, ids, brands_of)

    results = []
    for index in range(len(batches)):
        owned = [key for key, who in owner.items() if who == index]
        new_ids = tuple(ids[k] for k in owned if k not in existing and k in ids)
        updated = sum(1 for k in owned if k in changed)
        results.append(
            StoreResult(
                new=len(new_ids),
                updated=updated,
                unchanged=len(owned) - len(new_ids) - updated,
                new_ids=new_ids,
            )
        )
    return results


_SCORE_COLUMNS = ("sentiment", "sentiment_score", "sentiment_confidence", "sentiment_version")
# what a changed mention's update writes
_UPDATED_COLUMNS = (
    "content_hash",
    "url",
    "canonical_url",
    "title",
    "text",
    "author",
    "language",
    "author_reach",
    "points",
    "likes",
    "reposts",
    "replies",
    *_SCORE_COLUMNS,
    "published_at",
    "updated_at",
)


class _Statements(NamedTuple):
    """The statements of an ingest, built once per dialect (building one cost about as much
    as executing it for a small batch); lists go in as expanding parameters."""

    insert_mentions: Executable
    update_mentions: Executable
    by_key: Executable  # keys
    by_guid: Executable  # guids, sources
    brands: Executable  # names
    insert_links: Executable
    stories_by_url: Executable  # urls
    insert_stories: Executable


@functools.cache
def _statements(dialect: str) -> _Statements:
    columns = (
        MentionRow.source_id,
        MentionRow.guid,
        MentionRow.dedup_key,
        MentionRow.id,
        MentionRow.content_hash,
    )
    return _Statements(
        insert_mentions=insert_for(dialect, MentionRow)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(MentionRow.id, MentionRow.dedup_key),
        update_mentions=update(MentionRow)
        .where(MentionRow.id == bindparam("_id"))
        .values({name: bindparam(name) for name in _UPDATED_COLUMNS}),
        by_key=select(*columns).where(MentionRow.dedup_key.in_(bindparam("keys", expanding=True))),
        by_guid=select(*columns).where(
            MentionRow.guid.in_(bindparam("guids", expanding=True)),
            MentionRow.source_id.in_(bindparam("sources", expanding=True)),
        ),
        brands=select(Brand.name, Brand.id).where(
            Brand.name.in_(bindparam("names", expanding=True))
        ),
        insert_links=insert_for(dialect, MentionBrand).on_conflict_do_nothing(
            index_elements=["mention_id", "brand_id"]
        ),
        stories_by_url=select(Story.url, Story.id).where(
            Story.url.in_(bindparam("urls", expanding=True))
        ),
        insert_stories=insert(Story).returning(Story.id, sort_by_parameter_order=True),
    )


def _score_columns(mention: Mention) -> dict[str, Any]:
    score = mention.sentiment
    if score is None:
        return dict.fromkeys(_SCORE_COLUMNS)
    return {
        "sentiment": score.label,
        "sentiment_score": score.score,
        "sentiment_confidence": score.confidence,
        "sentiment_version": score.version,
    }


def _lookup(
    conn: Connection, entries: Sequence[tuple[int, int, Mention, datetime]]
) -> tuple[dict[str, tuple[int, str]], dict[tuple[int, str], str]]:
    """Stored rows by dedup key: (id, content hash); and the key of each (source, guid) seen."""
    keys = sorted({m.dedup_key for _, _, m, _ in entries})
    pairs = {(source, m.item.guid) for _, source, m, _ in entries if m.item.guid}
    guids = sorted({guid for _, guid in pairs})
    sources = sorted({source for source, _ in pairs})
    existing: dict[str, tuple[int, str]] = {}
    key_of_guid: dict[tuple[int, str], str] = {}
    statements = _statements(conn.dialect.name)
    for chunk in chunks(keys):
        for found in conn.execute(statements.by_key, {"keys": list(chunk)}):
            existing[found.dedup_key] = (found.id, found.content_hash)
            if found.guid and (found.source_id, found.guid) in pairs:
                key_of_guid.setdefault((found.source_id, found.guid), found.dedup_key)
    for chunk in chunks(guids):
        found_rows = conn.execute(statements.by_guid, {"guids": list(chunk), "sources": sources})
        for found in found_rows:
            if (found.source_id, found.guid) in pairs:
                key_of_guid.setdefault((found.source_id, found.guid or ""), found.dedup_key)
                existing[found.dedup_key] = (found.id, found.content_hash)
    return existing, key_of_guid


def _link(conn: Connection, ids: dict[str, int], brands_of: dict[str, set[str]]) -> None:
    names = sorted({b for bs in brands_of.values() for b in bs})
    statements = _statements(conn.dialect.name)
    brand_ids = {row.name: row.id for row in conn.execute(statements.brands, {"names": names})}
    links = [
        {"mention_id": ids[key], "brand_id": brand_ids[name]}
        for key, names_of in brands_of.items()
        if key in ids
        for name in sorted(names_of)
        if name in brand_ids
    ]
    if links:
        conn.execute(statements.insert_links, links)


STORY_WINDOW = timedelta(days=7)
STORY_MAX_DISTANCE = simhash.MAX_DISTANCE  # see listener.simhash for the measurement
# Probes per band above which a batch reads every story of the window instead: 1/8 of the
# 65,536 band values (about 480 fingerprints, 17 probes each), where the probes would find
# about 40% of the window's stories anyway and an index search per probe costs more than a scan
_MAX_PROBES = 8192
_PROBES_EACH = 17  # a band value and the 16 values one bit away
_WINDOW_ROWS = 2000  # rows of a streamed story window fetched at a time
# One statement text per dialect and shape (so SQLAlchemy compiles each once): the probes of
# each band go in as one parameter, a JSON array (SQLite) or an integer array (PostgreSQL)
_NEAR_COLUMNS = "SELECT id, fingerprint, band0, band1, band2, band3 FROM stories"
_NEAR_WINDOW = text("SELECT id, fingerprint FROM stories WHERE first_seen_at >= :since").bindparams(
    bindparam("since", type_=UTCDateTime())
)
_PROBE_SQL = {
    "sqlite": "band{0} IN (SELECT value FROM json_each(:p{0}))",
    "postgresql": "band{0} = ANY(CAST(:p{0} AS INTEGER[]))",
}
_NEAR_PROBES = {
    dialect: text(
        f"{_NEAR_COLUMNS} WHERE first_seen_at >= :since AND ("
        + " OR ".join(probe.format(band) for band in range(4))
        + ")"
    ).bindparams(bindparam("since", type_=UTCDateTime()))
    for dialect, probe in _PROBE_SQL.items()
}


def _near_stories(conn: Connection, prints: Sequence[int], since: datetime) -> simhash.Index:
    """An index of the batch's fingerprints ``prints`` and of the stories first seen since
    ``since`` that may be near them; one statement, whatever the batch size.

    A batch with few distinct probes asks for the stories whose band is within one bit of one
    of its own (the pigeonhole rule of ``listener.simhash``; each probe band is one parameter)
    and keeps only the rows within STORY_MAX_DISTANCE bits of a batch fingerprint. A big batch,
    whose probes would find most stories anyway, streams the window through a WindowIndex
    instead (the answers of a BandIndex of the whole window, without holding it: a window
    read whole made each batch of a big feed's poll hold every story of the window, and the
    process kept the growing high-water mark, ~0.7 MB per batch of 1,000)."""
    dialect = conn.dialect.name
    if len(set(prints)) * _PROBES_EACH > _MAX_PROBES or dialect not in _PROBE_SQL:
        window = simhash.WindowIndex(prints, STORY_MAX_DISTANCE)
        add, unsigned = window.add, simhash.from_signed64
        streamed = {"yield_per": _WINDOW_ROWS}
        for ident, stored in conn.execute(
            _NEAR_WINDOW, {"since": since}, execution_options=streamed
        ):
            if stored is not None:
                add(ident, unsigned(stored))
        return window
    index = simhash.BatchIndex(prints, STORY_MAX_DISTANCE)
    encode = json.dumps if dialect == "sqlite" else list
    params = {f"p{band}": encode(index.probe_values(band)) for band in range(4)}
    offer, unsigned = index.offer, simhash.from_signed64
    for ident, stored, *band_values in conn.execute(
        _NEAR_PROBES[dialect], {"since": since, **params}
    ):
        if stored is not None:
            offer(ident, unsigned(stored), band_values)
    return index


def _assign_stories(
    conn: Connection, keys: Sequence[tuple[str | None, int | None, str]], now: datetime
) -> list[int]:
    """Story id for each (story_url, fingerprint, title): the story with the same URL, else a
    recent story whose fingerprint is within STORY_MAX_DISTANCE bits, else a new story. Two
    set-based lookups and one bulk insert per batch, whatever its size (on SQLite the window's
    fingerprints come from ``story_window``'s copy, checked against the table, instead)."""
    urls = sorted({url for url, _, _ in keys if url})
    by_url: dict[str, int] = {}
    for chunk in chunks(urls):
        found = conn.execute(_statements(conn.dialect.name).stories_by_url, {"urls": list(chunk)})
        by_url.update({row.url: row.id for row in found if row.url})
    prints = [fp for url, fp, _ in keys if fp is not None and not (url and url in by_url)]
    since = now - STORY_WINDOW
    # Another thread's batch holding the window (it may be waiting for our transaction's
    # write lock) is never waited for: this batch then reads the window as before.
    owned = story_window.lock.acquire(blocking=False)
    try:
        window = story_window.current(conn, since, read=bool(prints)) if owned else None
        index: simhash.Index
        if window is not None:
            index = window.view(since)
        elif prints:
            index = _near_stories(conn, prints, since)
        else:
            index = simhash.BatchIndex(())
        try:
            # story ids; negative: the n-th new story of this batch
            assigned = simhash.assign([(url, fp) for url, fp, _ in keys], by_url, index)
            firsts = _first_keys(keys, assigned)
            new_ids = _insert_stories(conn, firsts, now)
        except BaseException:
            if isinstance(index, story_window.Window):  # it holds the batch's keys
                story_window.forget(conn.engine)
            raise
        if isinstance(index, story_window.Window):
            index.stored(new_ids, [fingerprint for _, fingerprint, _ in firsts], now)
    finally:
        if owned:
            story_window.lock.release()
    return [new_ids[-story - 1] if story < 0 else story for story in assigned]


def _first_keys(
    keys: Sequence[tuple[str | None, int | None, str]], assigned: Sequence[int]
) -> list[tuple[str | None, int | None, str]]:
    """The key that starts each new story of the batch (story -1, -2, ... in order)."""
    firsts: list[tuple[str | None, int | None, str]] = []
    for key, story in zip(keys, assigned, strict=True):
        if story < 0 and -story > len(firsts):
            firsts.append(key)
    return firsts


def _insert_stories(
    conn: Connection, firsts: Sequence[tuple[str | None, int | None, str]], now: datetime
) -> list[int]:
    """Insert the new stories (url, unsigned fingerprint or None, title); their ids, in order."""
    if not firsts:
        return []
    fresh: list[dict[str, Any]] = []
    for url, fingerprint, title in firsts:
        bands = simhash.bands(fingerprint) if fingerprint is not None else (None,) * 4
        fresh.append(
            {
                "url": url,
                "fingerprint": simhash.to_signed64(fingerprint)
                if fingerprint is not None
                else None,
                "band0": bands[0],
                "band1": bands[1],
                "band2": bands[2],
                "band3": bands[3],
                "title": title[:500],
                "first_seen_at": now,
            }
        )
    stmt = _statements(conn.dialect.name).insert_stories
    return [row.id for row in conn.execute(stmt, fresh)]
