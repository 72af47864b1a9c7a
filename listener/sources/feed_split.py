"""Big feed bodies cut into small feed documents of at most ``BATCH`` entries each, so that
parsing, matching and storing one of them holds one batch in memory, not the whole feed.

Owns :func:`split` (no I/O). Rules:

- Only a body of at least ``SPLIT_BYTES`` is looked at, and it is cut only when it is
  well-formed XML read as UTF-8 (one expat pass, which also finds the entries), carries no DTD
  (``<!DOCTYPE``/``<!ENTITY``: those bodies go the one-shot way of ``feed.parse_feed``, which
  cuts the DTD out first) and has more than one batch of entries. Anything else (ill-formed,
  truncated, another charset, a small feed) returns None: the caller parses the body whole, as
  before, within the body-size cap.
- An entry is an ``item`` or ``entry`` element (any prefix) at depth 2 or 3 (``rdf:RDF/item``,
  ``feed/entry``, ``rss/channel/item``), not inside another entry.
- Each piece is a complete document: the head (everything before the first entry: the XML
  declaration, the root and channel start tags with their namespaces, the feed's title and
  language), the batch's entries with whatever stands between them, and the tail (everything
  after the last entry: closing tags, feed elements placed after the items). So each piece is
  parsed by ``parse_feed`` like any feed of its size: the same decoding, the parser chosen by
  the same rules (for the piece: a piece without what sends a document to feedparser is read
  by fastfeedparser, which reads such entries alike), the same per-entry fidelity.
- Known difference from parsing the body whole: two entries with one dedup key in different
  batches are stored as one row that the later one updates (``updated`` counts it), where one
  batch would insert the later one's row at once; the title and text stored are the later
  entry's either way, the guid the first one's in batches.
- :func:`merge_warnings` folds the pieces' warnings into the whole body's: entries dropped as
  empty are summed, repeated warnings kept once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from xml.parsers import expat

__all__ = ["BATCH", "SPLIT_BYTES", "Split", "merge_warnings", "split"]

SPLIT_BYTES = 1 << 20  # smaller bodies are parsed whole: a batch's worth of memory anyway
BATCH = 1_000  # entries per piece
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ENTRY_NAMES = frozenset({"item", "entry"})
_DROPPED = re.compile(r"(\d+) (?:entry|entries) without title, text, link or guid dropped")


@dataclass(frozen=True, slots=True)
class Split:
    """Where a body's entries are: its head ends at ``head_end``, its tail starts at
    ``tail_start``, and ``batches`` are the byte ranges of consecutive runs of entries."""

    head_end: int
    tail_start: int
    batches: tuple[tuple[int, int], ...]
    entries: int

    def document(self, body: bytes, index: int) -> bytes:
        """The ``index``-th piece of ``body`` as a feed document of its own."""
        start, end = self.batches[index]
        return b"".join((body[: self.head_end], body[start:end], body[self.tail_start :]))


def split(body: bytes, batch: int | None = None) -> Split | None:
    """Cut ``body`` into pieces of ``batch`` (default ``BATCH``) entries; None when it is not to
    be cut (see the module docstring)."""
    batch = batch or BATCH
    if len(body) < SPLIT_BYTES or _DTD.search(body):
        return None
    parser = expat.ParserCreate(encoding="utf-8")  # the declaration's encoding is not read
    parser.ordered_attributes = True  # a list per element: cheaper than a dict
    starts: list[int] = []
    ends: list[int] = []
    depth = 0
    inside = 0  # the depth of the entry we are in, 0 outside entries

    def start(name: str, _attributes: object) -> None:
        nonlocal depth, inside
        depth += 1
        if not inside and depth <= 3 and name.rpartition(":")[2] in _ENTRY_NAMES:
            inside = depth
            starts.append(parser.CurrentByteIndex)

    def end(_name: str) -> None:
        nonlocal depth, inside
        if inside == depth:
            inside = 0
            ends.append(body.index(b">", parser.CurrentByteIndex) + 1)
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        return None  # ill-formed, truncated or not UTF-8: parsed whole, leniently
    if len(starts) <= batch or len(starts) != len(ends):
        return None
    batches = tuple(
        (starts[i], ends[min(i + batch, len(starts)) - 1]) for i in range(0, len(starts), batch)
    )
    return Split(starts[0], ends[-1], batches, len(starts))


def merge_warnings(warnings: Iterable[str]) -> tuple[str, ...]:
    """The pieces' parser warnings as the whole body's (see the module docstring)."""
    dropped = 0
    kept: list[str] = []
    for warning in warnings:
        found = _DROPPED.fullmatch(warning)
        if found:
            dropped += int(found.group(1))
        elif warning not in kept:
            kept.append(warning)
    if dropped:
        noun = "entry" if dropped == 1 else "entries"
        kept.append(f"{dropped} {noun} without title, text, link or guid dropped")
    return tuple(kept)
