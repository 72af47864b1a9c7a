"""The story window's fingerprints kept in memory between ingests (SQLite), so that a batch's
near-copy lookup reads what changed, not every story of the last STORY_WINDOW days.

Owns ``StoryWindow``. Why: reading the window into a band index on every transaction cost
about 0.6 ms per stored mention once 50,000 stories were in the window (bench/ingest_stages.py
--feeds 1000): the cost of a batch grew with the window, not with the batch.

Rules:

- SQLite only (one writer at a time; PostgreSQL instances share the table and keep reading it).
- The copy is trusted only while the database still holds exactly what it was read from plus
  what this process inserted since: every use first reads a token of the whole table (row
  count, highest id and the sums of the four band columns, one C-speed pass, ~1 ms for 50,000
  stories). Any other change (a story deleted by retention, another process's ingest, a
  rolled-back transaction of ours, a replaced file) changes the token, and the window is read
  again from the database, exactly as before this cache existed.
- Lookups answer exactly what a band index of the window read fresh would: the stories first
  seen since the batch's window start, in id order (the order a read returns them), so ties
  between equally near stories go the same way.
- At most ``MAX_STORIES`` stories are kept (~0.75 KB each, measured: 76 MB for 100,000); a
  bigger table is read per batch as before (a compact layout is left to do).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import Connection

from listener import simhash
from listener.storage.tables import Story

MAX_STORIES = 50_000  # ~0.75 KB each in memory: at most ~38 MB
# a copy whose oldest stories lie this far before a batch's window start is read again (the
# stories that left the window are skipped by lookups until then, and cost memory)
_SLACK = timedelta(days=1)
Token = tuple[int, int, int, int, int, int]  # count, max id, sums of band0..band3
_PROBE_MASKS = (0, *(1 << bit for bit in range(16)))
Bands = tuple[dict[int, list[tuple[int, int]]], ...]  # per band: value -> [(id, fingerprint)]

_TOKEN = text(
    "SELECT count(*), coalesce(max(id), 0), coalesce(sum(band0), 0), coalesce(sum(band1), 0),"
    " coalesce(sum(band2), 0), coalesce(sum(band3), 0) FROM stories"
)


class StoryWindow:
    """Stories first seen since ``since`` with a fingerprint, by band value (in id order), and
    when each was first seen (lookups skip those older than a batch's window start)."""

    def __init__(self, since: datetime, token: Token) -> None:
        self.since = since
        self.token = token
        self.bands: Bands = ({}, {}, {}, {})
        self.first_seen: dict[int, datetime] = {}

    def add(self, ident: int, fingerprint: int, first_seen: datetime) -> None:
        for table, value in zip(self.bands, simhash.bands(fingerprint), strict=True):
            table.setdefault(value, []).append((ident, fingerprint))
        self.first_seen[ident] = first_seen

    def view(self, since: datetime) -> Window:
        """The index as of a batch whose window starts at ``since``."""
        return Window(self, since)


class Window:
    """``simhash.Index`` over a StoryWindow for one batch: the stories first seen since its
    window start, then the batch's own new stories (negative keys, added to the same lists
    until ``stored`` names them), as a BandIndex of the window read fresh would answer (same
    candidates in the same order, so the same ties)."""

    def __init__(self, window: StoryWindow, since: datetime) -> None:
        self._window = window
        self._since = since
        self._added: list[tuple[int, int]] = []  # (negative key, fingerprint)

    def nearest(self, fingerprint: int) -> int | None:
        best: int | None = None  # the key of the nearest so far, and its distance
        best_gap = simhash.MAX_DISTANCE + 1
        first_seen, since = self._window.first_seen, self._since
        for table, value in zip(self._window.bands, simhash.bands(fingerprint), strict=True):
            get = table.get
            for mask in _PROBE_MASKS:  # simhash.probes(value), in its order
                for key, other in get(value ^ mask, ()):
                    gap = (fingerprint ^ other).bit_count()  # both unsigned 64-bit
                    if gap < best_gap and first_seen[key] >= since:
                        best_gap, best = gap, key
        return best

    def add(self, key: int, fingerprint: int) -> None:
        self._window.add(key, fingerprint, self._since)
        self._added.append((key, fingerprint))

    def stored(self, ids: Sequence[int], prints: Sequence[int | None], now: datetime) -> None:
        """The batch's new stories were inserted as ``ids`` (the n-th new story, key -n, is
        ``ids[n - 1]``; ``prints`` their unsigned fingerprints or None): their keys become
        those ids, and the token counts them, so the copy stays trusted once the transaction
        commits."""
        window = self._window
        first_seen, tables = window.first_seen, window.bands
        for key, fingerprint in self._added:
            ident = ids[-key - 1]
            for table, value in zip(tables, simhash.bands(fingerprint), strict=True):
                group = table[value]
                group[group.index((key, fingerprint))] = (ident, fingerprint)
            del first_seen[key]
            first_seen[ident] = now
        self._added.clear()
        count, high, s0, s1, s2, s3 = window.token
        for ident, printed in zip(ids, prints, strict=True):
            count += 1
            high = max(high, ident)
            if printed is not None:
                b0, b1, b2, b3 = simhash.bands(printed)
                s0, s1, s2, s3 = s0 + b0, s1 + b1, s2 + b2, s3 + b3
        window.token = (count, high, s0, s1, s2, s3)


lock = threading.Lock()
_windows: weakref.WeakKeyDictionary[Engine, StoryWindow] = weakref.WeakKeyDictionary()


def token(conn: Connection) -> Token:
    """What the stories table holds, in brief: count, highest id, the sums of the bands."""
    c, high, s0, s1, s2, s3 = conn.execute(_TOKEN).one()
    return (int(c), int(high), int(s0), int(s1), int(s2), int(s3))


def current(conn: Connection, since: datetime, *, read: bool = True) -> StoryWindow | None:
    """The engine's story window, checked against the database (read again when it changed;
    with ``read`` False, None then: a batch without fingerprints to look up only keeps a
    window it would not make stale); None when the database is not SQLite or holds more than
    MAX_STORIES stories. The caller holds ``lock`` from here until it has told the window
    what it inserted."""
    if conn.dialect.name != "sqlite" or (not read and conn.engine not in _windows):
        return None
    now_token = token(conn)
    window = _windows.get(conn.engine)
    if (
        window is not None
        and window.token == now_token
        and window.since <= since <= window.since + _SLACK
    ):
        return window
    if not read:
        return None
    if now_token[0] > MAX_STORIES:
        _windows.pop(conn.engine, None)
        return None
    window = StoryWindow(since, now_token)
    rows = select(Story.id, Story.fingerprint, Story.first_seen_at).where(
        Story.first_seen_at >= since, Story.fingerprint.is_not(None)
    )
    for ident, stored, first_seen in conn.execute(rows.order_by(Story.id)):
        if stored is not None:  # the query leaves those out; mypy cannot know
            window.add(ident, simhash.from_signed64(stored), first_seen)
    _windows[conn.engine] = window
    return window


def forget(engine: Engine) -> None:
    """Drop the engine's copy (after a failed batch, whose keys it may hold). The caller
    holds ``lock``."""
    _windows.pop(engine, None)
