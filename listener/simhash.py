"""SimHash fingerprints as numbers: distance, bands, the signed form databases store, and the
one band index that finds near copies, with the policy production runs.

A leaf module (it imports nothing from listener), so that matching (which computes
fingerprints, ``listener.matching.stories``) and storage (which assigns stories) share one
implementation. Rules:

- Two fingerprints are near when they are at most ``MAX_DISTANCE`` (6) bits apart. Measured
  with bench/stories_bench.py --pairs 4000 (about 8 million pairs of short synthetic news
  texts): 98% of copy pairs lie within 6 bits, and the closest unrelated pair was 9 bits.
- The 64 bits are four 16-bit bands (most significant first). Two fingerprints within 7 bits
  differ in at most one bit in at least one band (pigeonhole), so probing each band's value and
  the 16 values one bit away (``probes``) finds every candidate; candidates are then verified.
- Story assignment (``assign``): a key with a known story URL joins that story; else the
  closest fingerprint within the index's distance (any of equally close ones); else it starts a
  new story, numbered -1, -2, ... in order, which later keys of the same batch can join.
- ``BandIndex`` answers for any fingerprint (17 probes of each band per lookup).
  ``BatchIndex`` answers only for the fingerprints of one batch, known up front: it expands
  their probes once, offers the probe values a database lookup needs, and then takes stored
  candidates and answers lookups with four dictionary reads each (what storage runs: the
  per-lookup probing was most of a big batch's store time). ``WindowIndex`` is a BatchIndex
  that answers exactly as a BandIndex of the same stored fingerprints would, ties included,
  while they are streamed through it: storage's scan of a story window for a big batch, in
  memory bounded by the batch, not the window.
- Databases store BIGINT signed: ``to_signed64`` and ``from_signed64`` convert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = [
    "MAX_DISTANCE",
    "BandIndex",
    "BatchIndex",
    "WindowIndex",
    "assign",
    "bands",
    "distance",
    "from_signed64",
    "probes",
    "to_signed64",
]

MAX_DISTANCE = 6
_MASK16 = 0xFFFF
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_BITS = tuple(1 << bit for bit in range(16))
_PROBED = 7  # one-bit probes into four bands find everything within this many bits


def distance(a: int, b: int) -> int:
    """The Hamming distance of two 64-bit fingerprints."""
    return ((a ^ b) & _MASK64).bit_count()


def bands(fingerprint: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands of a 64-bit fingerprint, most significant first."""
    return (
        fingerprint >> 48 & _MASK16,
        fingerprint >> 32 & _MASK16,
        fingerprint >> 16 & _MASK16,
        fingerprint & _MASK16,
    )


def probes(band: int) -> list[int]:
    """The band value and every value one bit away from it."""
    return [band, *[band ^ bit for bit in _BITS]]


def to_signed64(value: int) -> int:
    """An unsigned 64-bit value as the signed integer a BIGINT column holds."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed64(value: int) -> int:
    """The unsigned 64-bit fingerprint stored as signed BIGINT ``value``."""
    return value & _MASK64


class BandIndex:
    """Fingerprints by band value, for nearest-fingerprint lookups within ``max_distance``."""

    def __init__(self, max_distance: int = MAX_DISTANCE) -> None:
        if not 0 <= max_distance <= _PROBED:
            raise ValueError(f"max_distance must be 0..{_PROBED}, got {max_distance}")
        self.max_distance = max_distance
        self._bands: tuple[dict[int, list[tuple[int, int]]], ...] = ({}, {}, {}, {})
        self._size = 0

    def __len__(self) -> int:
        """The number of fingerprints added."""
        return self._size

    def add(self, key: int, fingerprint: int) -> None:
        """Remember ``fingerprint`` as a way to find ``key`` (a key may have several)."""
        self._size += 1
        for table, value in zip(self._bands, bands(fingerprint), strict=True):
            table.setdefault(value, []).append((key, fingerprint))

    def nearest(self, fingerprint: int) -> int | None:
        """The key of the closest fingerprint within ``max_distance``, or None."""
        best: tuple[int, int] | None = None  # (distance, key)
        for table, value in zip(self._bands, bands(fingerprint), strict=True):
            for probe in probes(value):
                for key, other in table.get(probe, ()):
                    gap = distance(fingerprint, other)
                    if gap <= self.max_distance and (best is None or gap < best[0]):
                        best = (gap, key)
        return None if best is None else best[1]


class Index(Protocol):
    """What ``assign`` needs of an index: the nearest known key, and learning a new one."""

    def nearest(self, fingerprint: int) -> int | None: ...

    def add(self, key: int, fingerprint: int) -> None: ...


class BatchIndex:
    """Nearest-fingerprint lookups for the fingerprints of one batch only.

    Built from the batch's fingerprints; ``probe_values(band)`` are the values of that band
    within one bit of a batch fingerprint's (what to ask a database for); ``offer`` takes a
    stored candidate (kept only when it is within ``max_distance`` of a batch fingerprint);
    ``nearest`` and ``add`` work as BandIndex's for batch fingerprints (``nearest`` of any
    other fingerprint is None)."""

    def __init__(self, prints: Iterable[int], max_distance: int = MAX_DISTANCE) -> None:
        if not 0 <= max_distance <= _PROBED:
            raise ValueError(f"max_distance must be 0..{_PROBED}, got {max_distance}")
        self.max_distance = max_distance
        # per band: probe value -> the batch fingerprints with that band within one bit
        self._probes: tuple[dict[int, list[int]], ...] = ({}, {}, {}, {})
        # batch fingerprint -> (distance, key) of the nearest known key so far
        self._best: dict[int, tuple[int, int]] = {}
        masks = (0, *_BITS)
        for fp in set(prints):
            for table, value in zip(self._probes, bands(fp), strict=True):
                for mask in masks:
                    found = table.get(value ^ mask)
                    if found is None:
                        table[value ^ mask] = [fp]
                    else:
                        found.append(fp)

    def probe_values(self, band: int) -> list[int]:
        """The values of ``band`` (0-3) a stored fingerprint near the batch may have."""
        return list(self._probes[band])

    def offer(self, key: int, fingerprint: int, band_values: Sequence[int | None]) -> None:
        """A known key; kept where it is the nearest yet of a batch fingerprint."""
        p0, p1, p2, p3 = self._probes
        b0, b1, b2, b3 = band_values
        groups = (p0.get(b0), p1.get(b1), p2.get(b2), p3.get(b3))  # type: ignore[arg-type]
        if groups != (None, None, None, None):
            self._learn(key, fingerprint, groups)

    def add(self, key: int, fingerprint: int) -> None:
        self.offer(key, fingerprint, bands(fingerprint))

    def nearest(self, fingerprint: int) -> int | None:
        best = self._best.get(fingerprint)
        return None if best is None else best[1]

    def _learn(self, key: int, fingerprint: int, groups: Iterable[list[int] | None]) -> None:
        best = self._best
        for group in groups:
            for other in group or ():
                gap = distance(fingerprint, other)
                if gap <= self.max_distance and (other not in best or gap < best[other][0]):
                    best[other] = (gap, key)


class WindowIndex(BatchIndex):
    """A BatchIndex that a whole window of stored fingerprints is streamed through (``add``, in
    the order BandIndex would have been filled), answering exactly as that BandIndex would,
    equal distances included: of the keys equally close, the one BandIndex meets first (the
    lowest band within one bit, then its probe's position, then the earliest added). Memory
    holds the batch's probes and one best key per batch fingerprint, not the window."""

    def __init__(self, prints: Iterable[int], max_distance: int = MAX_DISTANCE) -> None:
        super().__init__(prints, max_distance)
        self._added = 0
        # batch fingerprint -> (distance, band, probe position, order added) of its best key
        self._rank: dict[int, tuple[int, int, int, int]] = {}

    def _learn(self, key: int, fingerprint: int, groups: Iterable[list[int] | None]) -> None:
        self._added += 1
        best, rank, seen = self._best, self._rank, set()
        own = bands(fingerprint)
        for band, group in enumerate(groups):
            for other in group or ():
                if other in seen:  # BandIndex meets a key first in its lowest band
                    continue
                seen.add(other)
                gap = distance(fingerprint, other)
                if gap > self.max_distance:
                    continue
                # probes(value) lists the value, then the values one bit away, lowest bit first
                place = (gap, band, (bands(other)[band] ^ own[band]).bit_length(), self._added)
                if other not in rank or place < rank[other]:
                    rank[other] = place
                    best[other] = (gap, key)


def assign(
    keys: Sequence[tuple[str | None, int | None]], by_url: dict[str, int], index: Index
) -> list[int]:
    """The story of each (story URL, fingerprint), by the module's rules. ``by_url`` and
    ``index`` hold the known stories and learn the batch's (a new story gets a negative id:
    the n-th new story is -n)."""
    assigned: list[int] = []
    fresh = 0
    for url, fingerprint in keys:
        story = by_url.get(url) if url else None
        if story is None and fingerprint is not None:
            story = index.nearest(fingerprint)
        if story is None:
            fresh += 1
            story = -fresh
            if fingerprint is not None:
                index.add(story, fingerprint)
        if url:
            by_url.setdefault(url, story)
        assigned.append(story)
    return assigned
