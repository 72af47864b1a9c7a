"""Store functions: brands and sources from the config, fetch state, brand links; and the one
import point for callers (ingest, queries and transactions are re-exported here).

Every SQLAlchemy error leaves as StorageError (one line, no credentials).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, Update, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from listener.models import Mention, Score, SourceState, StoreResult
from listener.storage.ingest import Batch, ingest
from listener.storage.queries import (
    BucketCounts,
    DetectionRow,
    MatchInput,
    MentionFilter,
    StoredMention,
    StoredStory,
    brand_stories,
    count_buckets,
    count_mentions,
    count_rows,
    detection_rows,
    iter_match_inputs,
    mention_counts,
    mentions_by_id,
    query_mentions,
)
from listener.storage.sql import chunks, describe, dialect_insert, transaction
from listener.storage.tables import Brand, MentionBrand, Source
from listener.storage.tables import Mention as MentionRow


@dataclass(frozen=True, slots=True)
class CatalogSource:
    """A configured source as storage needs it."""

    name: str
    kind: str
    url: str


def sync_catalog(
    conn: Connection, brands: Sequence[str], sources: Sequence[CatalogSource], now: datetime
) -> None:
    """Make sure every configured brand and source has a row. A source whose configured URL
    changed starts afresh (its redirect, validators, errors and disabled state are reset)."""
    if brands:
        conn.execute(
            dialect_insert(conn, Brand).on_conflict_do_nothing(index_elements=["name"]),
            [{"name": name, "created_at": now} for name in brands],
        )
    known = {row.name: row for row in conn.execute(select(Source))}
    for source in sources:
        row = known.get(source.name)
        if row is None:
            conn.execute(
                dialect_insert(conn, Source).on_conflict_do_nothing(index_elements=["name"]),
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


def source_created(conn: Connection) -> dict[str, datetime]:
    """When each source was first configured."""
    return {
        row.name: row.created_at for row in conn.execute(select(Source.name, Source.created_at))
    }


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
        cursor=row.cursor,
    )


@dataclass(frozen=True, slots=True)
class PollSuccess:
    """A successful poll (200 or 304) to store: its mentions and the source's new state."""

    source_id: int
    now: datetime
    next_poll_at: datetime
    etag: str | None
    last_modified: str | None
    permanent_url: str | None = None
    mentions: Sequence[Mention] = ()
    cursor: str | None = None  # API sources: the new cursor (None keeps the stored one)
    note: str | None = None  # a partial success (kept items, then an error), shown as last_error


def record_successes(
    conn: Connection, polls: Sequence[PollSuccess]
) -> list[tuple[StoreResult, SourceState]]:
    """Store several successful polls with one set of statements (the writer groups them)."""
    with_mentions = [i for i, poll in enumerate(polls) if poll.mentions]
    results = [StoreResult()] * len(polls)
    batches = [Batch(polls[i].source_id, polls[i].mentions, polls[i].now) for i in with_mentions]
    for index, result in zip(with_mentions, ingest(conn, batches), strict=True):
        results[index] = result
    success, states_of = _success_statements()
    conn.execute(
        success,
        [
            {
                "_id": poll.source_id,
                "etag": poll.etag,
                "last_modified": poll.last_modified,
                "now": poll.now,
                "next_poll_at": poll.next_poll_at,
                "new_url": poll.permanent_url,
                "cursor": poll.cursor,
                "note": poll.note,
            }
            for poll in polls
        ],
    )
    ids = sorted({poll.source_id for poll in polls})
    states = {row.id: _state(row) for row in conn.execute(states_of, {"ids": ids})}
    return [(result, states[poll.source_id]) for result, poll in zip(results, polls, strict=True)]


@functools.cache
def _success_statements() -> tuple[Update, Select[Any]]:
    """record_successes' statements, built once (each build cost more than its rows): the
    update of every poll's fetch state, and the select of the sources' states after it."""
    success = (
        update(Source)
        .where(Source.id == bindparam("_id"))
        .values(
            etag=bindparam("etag"),
            last_modified=bindparam("last_modified"),
            last_attempt_at=bindparam("now"),
            last_success_at=bindparam("now"),
            consecutive_errors=0,
            last_error=bindparam("note", type_=Text()),
            next_poll_at=bindparam("next_poll_at"),
            url=func.coalesce(bindparam("new_url", type_=Text()), Source.url),
            cursor=func.coalesce(bindparam("cursor", type_=Text()), Source.cursor),
        )
    )
    states_of = select(Source).where(Source.id.in_(bindparam("ids", expanding=True)))
    return success, states_of


def record_mentions(
    conn: Connection, *, mentions: Sequence[Mention], source_id: int, now: datetime
) -> StoreResult:
    """Store one batch of a poll's mentions without touching the source's fetch state (a big
    feed's batches before its last one)."""
    return ingest(conn, [Batch(source_id, mentions, now)])[0]


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


def brand_ids(conn: Connection) -> dict[str, int]:
    return {row.name: row.id for row in conn.execute(select(Brand.name, Brand.id))}


def relink(
    conn: Connection, brands: Sequence[int], matches: dict[int, set[int]]
) -> tuple[int, int]:
    """Make the links of the given mentions to the given brands exactly ``matches``
    (mention id -> brand ids). Returns (links added, links removed)."""
    ids = list(matches)
    current: dict[int, set[int]] = {i: set() for i in ids}
    for chunk in chunks(ids):
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
            dialect_insert(conn, MentionBrand).on_conflict_do_nothing(
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


def update_sentiments(conn: Connection, scores: Sequence[tuple[int, Score]]) -> None:
    """Store new sentiment verdicts for mentions (by id)."""
    if not scores:
        return
    conn.execute(
        update(MentionRow)
        .where(MentionRow.id == bindparam("_id"))
        .values(
            sentiment=bindparam("label"),
            sentiment_score=bindparam("value"),
            sentiment_confidence=bindparam("confidence"),
            sentiment_version=bindparam("version"),
        ),
        [
            {
                "_id": ident,
                "label": score.label,
                "value": score.score,
                "confidence": score.confidence,
                "version": score.version,
            }
            for ident, score in scores
        ],
    )


def count_unlinked(conn: Connection, ids: Sequence[int]) -> int:
    """How many of these mentions are linked to no brand at all."""
    linked: set[int] = set()
    for chunk in chunks(ids):
        rows = conn.execute(
            select(MentionBrand.mention_id).where(MentionBrand.mention_id.in_(chunk)).distinct()
        )
        linked.update(row.mention_id for row in rows)
    return len(set(ids) - linked)


__all__ = [
    "BucketCounts",
    "CatalogSource",
    "DetectionRow",
    "MatchInput",
    "MentionFilter",
    "PollSuccess",
    "StoredMention",
    "StoredStory",
    "brand_ids",
    "brand_stories",
    "count_buckets",
    "count_mentions",
    "count_rows",
    "count_unlinked",
    "describe",
    "detection_rows",
    "iter_match_inputs",
    "load_states",
    "mention_counts",
    "mentions_by_id",
    "query_mentions",
    "record_failure",
    "record_gone",
    "record_mentions",
    "record_successes",
    "relink",
    "source_created",
    "sync_catalog",
    "transaction",
    "update_sentiments",
]
