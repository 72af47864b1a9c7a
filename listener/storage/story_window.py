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
- Compact layout: a story is a position (in id order) in three arrays (id, fingerprint, first
  seen in whole microseconds since the epoch: comparisons as exact as the datetimes'), and each
  band is a CSR index (65,537 offsets by band value, then the positions sorted by value,
  stable). Stories added since the last rebuild sit in a small overlay (per band: value ->
  positions), searched after the CSR part (new ids are higher, so id order holds); past
  ``_REBUILD`` of them the CSR is built again (a counting sort: 70-100 ms for 50,000 stories,
  ~0.25 s for 150,000).
- Memory (tracemalloc, bench-style random fingerprints): ~48 bytes a story plus 1 MB of
  offsets, 3.2 MB for 50,000 stories, 7.3 MB for 150,000, 9.5 MB for 200,000 (was ~0.75 KB a
  story: 41 MB for 50,000), plus up to ~2.2 MB while the overlay is full.
- At most ``MAX_STORIES`` stories are kept (~7.3 MB, ~9.5 MB with a full overlay); a bigger
  table is read per batch as before.
"""

from __future__ import annotations

import sys
import threading
import weakref
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import Connection

from listener import simhash
from listener.storage.tables import Story

MAX_STORIES = 150_000  # ~48 bytes each plus 1 MB of offsets: ~7.3 MB (see above)
# a copy whose oldest stories lie this far before a batch's window start is read again (the
# stories that left the window are skipped by lookups until then, and cost memory)
_SLACK = timedelta(days=1)
Token = tuple[int, int, int, int, int, int]  # count, max id, sums of band0..band3
_PROBE_MASKS = (0, *(1 << bit for bit in range(16)))
_VALUES = 1 << 16  # the values of a 16-bit band
# where simhash.bands' band (most significant first) lies among a fingerprint's 16-bit words
_WORD = (3, 2, 1, 0) if sys.byteorder == "little" else (0, 1, 2, 3)
_REBUILD = 4096  # overlay stories past which the CSR is built again
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_TOKEN = text(
    "SELECT count(*), coalesce(max(id), 0), coalesce(sum(band0), 0), coalesce(sum(band1), 0),"
    " coalesce(sum(band2), 0), coalesce(sum(band3), 0) FROM stories"
)


def _micros(when: datetime) -> int:
    """``when`` (timezone-aware) as whole microseconds since the epoch: exact, unlike a float."""
    return (when - _EPOCH) // _MICROSECOND


class StoryWindow:
    """Stories first seen since ``since`` with a fingerprint, by band value (in id order), and
    when each was first seen (lookups skip those older than a batch's window start)."""

    def __init__(self, since: datetime, token: Token) -> None:
        self.since = since
        self.token = token
        # per story, at its position (id order; a batch's new stories hold their key until
        # ``Window.stored`` names them)
        self.ids = array("q")
        self.prints = array("Q")
        self.seen = array("q")  # first seen, microseconds since the epoch
        # per band: CSR of the positions below ``built`` (candidates for value v are
        # members[start[v]:start[v + 1]]), and the overlay of later positions
        empty = bytes(4 * (_VALUES + 1))
        self.starts = [array("I", empty) for _ in range(4)]
        self.members = [array("I") for _ in range(4)]
        self.built = 0
        self.overlay: tuple[dict[int, list[int]], ...] = ({}, {}, {}, {})

    def load(self, rows: Iterable[tuple[int, int, datetime]]) -> None:
        """Add (id, unsigned fingerprint, first seen) rows in id order, then build the CSR."""
        ids, prints, seen = self.ids, self.prints, self.seen
        for ident, fingerprint, first_seen in rows:
            ids.append(ident)
            prints.append(fingerprint)
            seen.append(_micros(first_seen))
        self.rebuild()

    def add(self, ident: int, fingerprint: int, first_seen: datetime) -> int:
        """Add a story after all others; its position."""
        position = len(self.ids)
        self.ids.append(ident)
        self.prints.append(fingerprint)
        self.seen.append(_micros(first_seen))
        for table, value in zip(self.overlay, simhash.bands(fingerprint), strict=True):
            group = table.get(value)
            if group is None:
                table[value] = [position]
            else:
                group.append(position)
        if position + 1 - self.built > _REBUILD:
            self.rebuild()
        return position

    def rebuild(self) -> None:
        """Build every band's CSR over all positions (counting sort by value, stable), and
        empty the overlay."""
        size = len(self.prints)
        words = array("H", self.prints.tobytes())  # a fingerprint's four 16-bit words
        for band in range(4):
            values = words[_WORD[band] :: 4]
            counts = [0] * (_VALUES + 1)
            for value in values:
                counts[value + 1] += 1
            counts = list(accumulate(counts))
            self.starts[band] = array("I", counts)
            members = array("I", bytes(4 * size))
            for position, value in enumerate(values):
                members[counts[value]] = position
                counts[value] += 1
            self.members[band] = members
            self.overlay[band].clear()
        self.built = size

    def view(self, since: datetime) -> Window:
        """The index as of a batch whose window starts at ``since``."""
        return Window(self, since)


class Window:
    """``simhash.Index`` over a StoryWindow for one batch: the stories first seen since its
    window start, then the batch's own new stories (negative keys, added to the overlay until
    ``stored`` names them), as a BandIndex of the window read fresh would answer (same
    candidates in the same order, so the same ties)."""

    def __init__(self, window: StoryWindow, since: datetime) -> None:
        self._window = window
        self._since = since
        self._since_us = _micros(since)
        self._added: list[tuple[int, int]] = []  # (negative key, position)

    def nearest(self, fingerprint: int) -> int | None:
        window = self._window
        best = -1  # the position of the nearest so far, and its distance
        best_gap = simhash.MAX_DISTANCE + 1
        prints, seen, since = window.prints, window.seen, self._since_us
        for start, members, table, value in zip(
            window.starts, window.members, window.overlay, simhash.bands(fingerprint), strict=True
        ):
            get = table.get
            for mask in _PROBE_MASKS:  # simhash.probes(value), in its order
                probe = value ^ mask
                for position in members[start[probe] : start[probe + 1]]:
                    gap = (fingerprint ^ prints[position]).bit_count()  # both unsigned 64-bit
                    if gap < best_gap and seen[position] >= since:
                        best_gap, best = gap, position
                for position in get(probe, ()):
                    gap = (fingerprint ^ prints[position]).bit_count()
                    if gap < best_gap and seen[position] >= since:
                        best_gap, best = gap, position
        return None if best < 0 else window.ids[best]

    def add(self, key: int, fingerprint: int) -> None:
        self._added.append((key, self._window.add(key, fingerprint, self._since)))

    def stored(self, ids: Sequence[int], prints: Sequence[int | None], now: datetime) -> None:
        """The batch's new stories were inserted as ``ids`` (the n-th new story, key -n, is
        ``ids[n - 1]``; ``prints`` their unsigned fingerprints or None): their keys become
        those ids, and the token counts them, so the copy stays trusted once the transaction
        commits."""
        window = self._window
        now_us = _micros(now)
        for key, position in self._added:
            window.ids[position] = ids[-key - 1]
            window.seen[position] = now_us
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
    _windows.pop(conn.engine, None)  # its memory is free before the new copy is read
    if now_token[0] > MAX_STORIES:
        return None
    window = StoryWindow(since, now_token)
    rows = select(Story.id, Story.fingerprint, Story.first_seen_at).where(
        Story.first_seen_at >= since, Story.fingerprint.is_not(None)
    )
    unsigned = simhash.from_signed64
    window.load(
        (ident, unsigned(stored), first_seen)
        for ident, stored, first_seen in conn.execute(rows.order_by(Story.id))
        if stored is not None  # the query leaves those out; mypy cannot know
    )
    _windows[conn.engine] = window
    return window


def forget(engine: Engine) -> None:
    """Drop the engine's copy (after a failed batch, whose keys it may hold). The caller
    holds ``lock``."""
    _windows.pop(engine, None)
