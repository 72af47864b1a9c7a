"""Which charset a feed body is in, and its text: whole (``decode``) or streamed from one file
into another as UTF-8 (``transcode``), so a big body in another charset can be cut into batches
without being held in memory.

Owns the one order of charset rules (both functions apply it): a BOM wins; otherwise the body
is UTF-8 if it decodes as UTF-8 (mislabelled UTF-8 is the common case), else the HTTP
``charset``, else the XML declaration's encoding, else windows-1252 (ISO-8859-1 labels are
read as windows-1252, as browsers do); a label that does not decode the body strictly gives
way to the next, and the last resort replaces the undecodable bytes, with a warning. UTF-16 and
UTF-32 without a BOM are recognised by the NUL bytes around the first ``<``. No I/O but the two
files ``transcode`` is given.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

__all__ = ["decode", "transcode"]

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECL_ENCODING = re.compile(rb"""\A\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([\w.:-]{1,40})["']""")
_CHARSET_PARAM = re.compile(r"""\bcharset\s*=\s*["']?([\w.:-]{1,40})""", re.IGNORECASE)
_HEAD_BYTES = 4096  # where BOMs, NUL patterns and the XML declaration are looked for
_CHUNK = 1 << 20  # bytes read at a time by transcode


def _fixed(head: bytes) -> tuple[str, int] | None:
    """(codec, bytes to skip) when a BOM or a NUL pattern decides the charset, else None."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom)
    if head[:2] == b"<\x00":  # UTF-16 without BOM; UTF-32 would start "<\x00\x00\x00"
        return ("utf-32-le" if head[:4] == b"<\x00\x00\x00" else "utf-16-le"), 0
    if head[:2] == b"\x00<" or head[:4] == b"\x00\x00\x00<":
        return ("utf-32-be" if head[:4] == b"\x00\x00\x00<" else "utf-16-be"), 0
    return None


def _candidates(head: bytes, content_type: str | None) -> list[str]:
    """The codecs the labels name (HTTP charset first, then the XML declaration)."""
    labels: list[str] = []
    if content_type:
        found = _CHARSET_PARAM.search(content_type)
        if found:
            labels.append(found.group(1))
    declared = _DECL_ENCODING.match(head)
    if declared:
        labels.append(declared.group(1).decode("ascii"))
    return [name for name in (_codec(label) for label in labels) if name is not None]


def _warning(name: str) -> str:
    return f"body is not valid {name}; undecodable bytes replaced"


def decode(body: bytes, content_type: str | None) -> tuple[str, list[str]]:
    """Decode ``body`` (see the module docstring for the order); also return warnings."""
    fixed = _fixed(body[:4])
    if fixed is not None:
        encoding, skip = fixed
        return body[skip:].decode(encoding, "replace"), []
    try:
        return body.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    candidates = _candidates(body[:_HEAD_BYTES], content_type)
    for name in candidates:
        try:
            return body.decode(name), []
        except UnicodeDecodeError:
            continue
    name = candidates[0] if candidates else "cp1252"
    return body.decode(name, "replace"), [_warning(name)]


def transcode(source: Path, target: Path, content_type: str | None) -> list[str] | None:
    """Write the text of the body in ``source`` to ``target`` as UTF-8, chunk by chunk (the
    same rules as ``decode``); return its warnings, or None when ``source`` is UTF-8 already
    (nothing is written then). Memory: a chunk or two, whatever the body's size."""
    with source.open("rb") as body:
        head = body.read(_HEAD_BYTES)
    fixed = _fixed(head[:4])
    if fixed is not None:
        encoding, skip = fixed
        if encoding == "utf-8" and _decodes(source, "utf-8", skip):
            return None  # a UTF-8 BOM on valid UTF-8: expat skips it, as decode does
        _copy(source, target, encoding, skip, "replace")
        return []
    if _decodes(source, "utf-8", 0):
        return None
    candidates = _candidates(head, content_type)
    for name in candidates:
        if _decodes(source, name, 0):
            _copy(source, target, name, 0, "strict")
            return []
    name = candidates[0] if candidates else "cp1252"
    _copy(source, target, name, 0, "replace")
    return [_warning(name)]


def _decodes(source: Path, encoding: str, skip: int) -> bool:
    """Whether the whole of ``source`` (after ``skip`` bytes) decodes strictly."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        with source.open("rb") as body:
            body.seek(skip)
            while chunk := body.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _copy(source: Path, target: Path, encoding: str, skip: int, errors: str) -> None:
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    with source.open("rb") as body, target.open("wb") as out:
        body.seek(skip)
        while chunk := body.read(_CHUNK):
            out.write(decoder.decode(chunk).encode("utf-8", "surrogatepass"))
        out.write(decoder.decode(b"", final=True).encode("utf-8", "surrogatepass"))


def _codec(label: str) -> str | None:
    """The Python codec name for a charset label, or None if unknown or not ASCII-compatible."""
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    if name in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"
    if name.startswith(("utf-16", "utf-32")):
        return None  # without a BOM or NUL pattern this label is wrong
    return name
