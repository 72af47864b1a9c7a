"""Big feed bodies cut into small feed documents of at most ``BATCH`` entries each, so that
parsing, matching and storing one of them holds one batch in memory, not the whole feed.

Owns :func:`split` (no I/O but reading the body's file and writing its UTF-8 copy). Rules:

- A body is bytes, or a file it was spooled to while downloading (``wire``); a file is read
  in chunks of ``CHUNK`` bytes and pieces are read from it one at a time, so neither the
  split nor a piece holds the body in memory.
- Only a body of at least ``SPLIT_BYTES`` is looked at, and it is cut only when it is
  well-formed XML read as UTF-8 (one expat pass, which also finds the entries), carries no DTD
  (``<!DOCTYPE``/``<!ENTITY``: those bodies go the one-shot way of ``feed.parse_feed``, which
  cuts the DTD out first) and has more than one batch of entries.
- A spooled body in another charset (by the rules of ``charset``: BOM, UTF-8 if valid, HTTP
  charset, XML declaration, windows-1252) is first transcoded, chunk by chunk, into a UTF-8
  copy beside it, which the pieces are cut from (``Split.transcoded``; the charset's warning,
  if any, in ``Split.warnings``).
- Anything else (ill-formed, truncated, a DTD, a small feed, a body in memory that is not
  UTF-8) returns None: the caller parses the body whole, as before, within the body-size cap
  (``http.max_body_size``): its memory then grows with the body (the lenient parser holds the
  text several times over), which is the one unbounded case left.
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

import contextlib
import io
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat

from listener.sources import charset

__all__ = ["BATCH", "SPLIT_BYTES", "Body", "Split", "merge_warnings", "size_of", "split"]

SPLIT_BYTES = 1 << 20  # smaller bodies are parsed whole: a batch's worth of memory anyway
BATCH = 1_000  # entries per piece
CHUNK = 1 << 20  # bytes of a file read (and given to expat) at a time
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DTD_OVERLAP = 8  # a DTD token cut by a chunk boundary is found in the next chunk
_ENTRY_NAMES = frozenset({"item", "entry"})
_DROPPED = re.compile(r"(\d+) (?:entry|entries) without title, text, link or guid dropped")
UTF8_SUFFIX = ".utf-8"  # the transcoded copy of a spooled body: its path plus this

# a body: in memory, or spooled to a file (``wire``)
Body = bytes | Path


def size_of(body: Body) -> int:
    return len(body) if isinstance(body, bytes) else body.stat().st_size


def _open(body: Body) -> BinaryIO:
    return io.BytesIO(body) if isinstance(body, bytes) else body.open("rb")


@dataclass(frozen=True, slots=True)
class Split:
    """Where a body's entries are: its head ends at ``head_end``, its tail starts at
    ``tail_start``, and ``batches`` are the byte ranges of consecutive runs of entries.
    ``transcoded``: the UTF-8 copy of a spooled body in another charset, which the ranges
    refer to (``discard`` deletes it), with the charset's ``warnings``."""

    head_end: int
    tail_start: int
    batches: tuple[tuple[int, int], ...]
    entries: int
    transcoded: Path | None = None
    warnings: tuple[str, ...] = ()

    def document(self, body: Body, index: int) -> bytes:
        """The ``index``-th piece of ``body`` as a feed document of its own (read from its
        file when it is spooled: the piece, not the body, is in memory)."""
        start, end = self.batches[index]
        if isinstance(body, bytes):
            return b"".join((body[: self.head_end], body[start:end], body[self.tail_start :]))
        with (self.transcoded or body).open("rb") as file:
            head = file.read(self.head_end)
            file.seek(start)
            entries = file.read(end - start)
            file.seek(self.tail_start)
            return b"".join((head, entries, file.read()))

    def discard(self) -> None:
        """Delete the transcoded copy, if any."""
        if self.transcoded is not None:
            with contextlib.suppress(OSError):
                self.transcoded.unlink()


def split(
    body: Body,
    batch: int | None = None,
    content_type: str | None = None,
    smallest: int | None = None,
) -> Split | None:
    """Cut ``body`` into pieces of ``batch`` (default ``BATCH``) entries; None when it is not to
    be cut (see the module docstring), or smaller than ``smallest`` (default ``SPLIT_BYTES``)
    bytes. A spooled body in another charset than UTF-8 is first transcoded into a file beside
    it (``content_type`` gives its HTTP charset)."""
    batch = batch or BATCH
    if size_of(body) < (SPLIT_BYTES if smallest is None else smallest):
        return None
    transcoded: Path | None = None
    warnings: tuple[str, ...] = ()
    if isinstance(body, Path):
        target = body.with_name(body.name + UTF8_SUFFIX)
        found = charset.transcode(body, target, content_type)
        if found is not None:
            transcoded, warnings = target, tuple(found)
    plan = None
    try:
        with _open(transcoded or body) as file:
            ranges = _entries(file)
        if ranges is not None and batch < len(ranges[0]) == len(ranges[1]):
            starts, ends = ranges
            batches = tuple(
                (starts[i], ends[min(i + batch, len(starts)) - 1])
                for i in range(0, len(starts), batch)
            )
            plan = Split(starts[0], ends[-1], batches, len(starts), transcoded, warnings)
    finally:
        if plan is None and transcoded is not None:
            transcoded.unlink(missing_ok=True)
    return plan


def _entries(file: BinaryIO) -> tuple[array[int], array[int]] | None:
    """The byte offsets where entries start and end (after their end tag's ``>``), read in
    chunks by one expat pass; None when the body holds a DTD or is not well-formed UTF-8."""
    parser = expat.ParserCreate(encoding="utf-8")  # the declaration's encoding is not read
    parser.ordered_attributes = True  # a list per element: cheaper than a dict
    starts = array("q")  # 8 bytes an entry, not a list's 40 (60,000 entries: 1 MB, not 5)
    ends = array("q")
    depth = 0
    inside = 0  # the depth of the entry we are in, 0 outside entries
    window, window_start = b"", 0  # the last two chunks read: expat's current token is there

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
            ends.append(_tag_end(parser.CurrentByteIndex))
        depth -= 1

    def _tag_end(at: int) -> int:
        found = window.find(b">", at - window_start) if at >= window_start else -1
        if found >= 0:
            return window_start + found + 1
        position = file.tell()  # an end tag longer than a chunk: read it from the file
        file.seek(at)
        rest = file.read(CHUNK)
        file.seek(position)
        return at + rest.index(b">") + 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    offset, previous = 0, b""
    try:
        while chunk := file.read(CHUNK):
            if _DTD.search(previous[-_DTD_OVERLAP:] + chunk):
                return None  # a DTD is cut out first, by parse_feed
            window, window_start = previous + chunk, offset - len(previous)
            parser.Parse(chunk, False)
            offset += len(chunk)
            previous = chunk
        parser.Parse(b"", True)
    except (expat.ExpatError, ValueError):
        return None  # ill-formed, truncated or not UTF-8: parsed whole, leniently
    return starts, ends


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
