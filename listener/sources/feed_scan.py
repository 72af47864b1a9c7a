"""One expat pass over a feed body before it is parsed: is it well-formed, and does it use
anything the fast parser (fastfeedparser) reads wrongly?

Owns :func:`scan`. The body reaching it holds no DTD (``feed.py`` cut it out), so expat has no
entities to expand or fetch. The pass costs a fraction of a parse; it reports:

- the first well-formedness error as "line N: message", and whether it is that the body ends
  early (truncated);
- a reason the body must be read leniently (by feedparser), or None. Reasons, each something
  fastfeedparser was seen to misread:
  - not well-formed (undefined entities, bare ampersands, broken markup): its recovering
    parser cuts the field, or the link, there;
  - markup inside a title, description, summary or content element (raw inline HTML): the
    text is cut at the first tag;
  - ``type="xhtml"``, base64 content (``mode="base64"``, or an Atom 1.0 type that is neither
    text nor XML), ``xml:base``, ``xml:lang`` on entries, Atom 0.3: ignored;
  - Media RSS (``media:group``, ``media:description``, ``media:title``, ``media:community``):
    YouTube's video description and views are not read;
  - an extension element named like a core one (``itunes:title``): taken for the title when it
    comes first;
  - Atom entry links of other relations where entries lack an explicit ``rel="alternate"``:
    the first link is taken, whatever it is;
  - a ``guid isPermaLink="false"`` on an item without a link: the guid becomes the link;
  - a plain-text (``type="text"``) field holding escaped angle brackets or ampersands (read
    as HTML, their references would be decoded twice: ``AT&amp;amp;T`` must stay ``AT&amp;T``)
    or CDATA;
  - a date in any form but full RFC 822 with a numeric or universal zone, or an ISO 8601 /
    W3C-DTF full date or date-time: named zones are read as UTC, partial dates get today's day.
- for a body that is not well-formed, what needed repair: undefined entities and bare
  ampersands, counted, so the log says what was wrong, not just how much was kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.parsers import expat

import ahocorasick_rs

__all__ = ["Scan", "scan"]

_TRUNCATION_ERRORS = frozenset(
    {
        expat.errors.XML_ERROR_NO_ELEMENTS,
        expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        expat.errors.XML_ERROR_PARTIAL_CHAR,
        expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    }
)
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_BARE_AMPERSAND = re.compile(r"&(?!#[0-9]+;|#[xX][0-9A-Fa-f]+;|[A-Za-z][A-Za-z0-9]*;)")
# An extension element named like a core one (itunes:title, szf:description): fastfeedparser
# takes it for the core element when it comes first. Led by a literal; the tag is checked after.
_NAMESPACED_FIELD = re.compile(r":(title|description|summary)[\s>/]")
_PREFIX = re.compile(r"/?[A-Za-z_][\w.-]*")
_REL = re.compile(r"""\srel\s*=\s*["']([^"']*)["']""")
# Atom 1.0 content in a MIME type that is neither text nor XML is base64 (RFC 4287, 4.1.3.3).
_BINARY_TYPE = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?(?:content|summary|title)\b[^>]*\stype\s*=\s*[\"']"
    rb"(?!text/|[^\"']*xml)[\w.+-]+/[\w.+-]+[\"']"
)
# Date elements: pubDate, dc:date, updated, created (all end in "ate") and published, each
# searched for by a literal (fast); the content must be followed by a closing tag, so a
# closing tag never matches. What precedes "ate" is checked after the match.
_ATE_NAMES = (
    "<pubDate",
    ":pubDate",
    "<date",
    ":date",
    "<updated",
    ":updated",
    "<created",
    ":created",
)
_SAFE_DATE = (
    # RFC 822 / 1123 with a 4-digit year, seconds optional, a numeric or universal zone
    r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{4}"
    r"\s+\d{2}:\d{2}(?::\d{2})?\s+(?:[+-]\d{4}|GMT|UTC|UT|Z)"
    # W3C-DTF / ISO 8601 full date or date-time, zone optional (naive means UTC for both)
    r"|\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)
# A date element whose content is not in a safe form (one search, led by a literal).
_ATE_ELEMENT = re.compile(r"ate>(?!\s*(?:" + _SAFE_DATE + r")\s*</)([^<]*)</")
_PUBLISHED_ELEMENT = re.compile(r"published>(?!\s*(?:" + _SAFE_DATE + r")\s*</)([^<]*)</")


@dataclass(frozen=True, slots=True)
class Scan:
    """What :func:`scan` found."""

    error: str | None  # the first well-formedness error, "line N: message"
    truncated: bool  # the error is that the body ends early
    lenient: str | None  # why fastfeedparser would read this body wrongly, or None
    repairs: str  # for an ill-formed body: what was wrong in it ("2 undefined entities ...")


_ENTRY_XML_LANG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:entry|item)\b[^>]*\sxml:lang\s*=")
_XHTML = re.compile(rb"\stype\s*=\s*[\"']xhtml[\"']")
_BASE64 = re.compile(rb"\smode\s*=\s*[\"']base64[\"']")
_MEDIA = re.compile(rb"<(media:(?:group|description|title|community|text))\b")
# A plain-text element (type="text") holding escaped angle brackets or ampersands (which the
# fast path would decode a second time) or a CDATA section.
_PLAIN = re.compile(
    r"""type\s*=\s*["']text(?:/plain)?["'][^<>]*>(?:[^<]*&(?:lt|amp);|\s*<!\[CDATA\[)"""
)
# A text field whose content (before any CDATA) holds a start tag: raw inline HTML.
_MARKUP = re.compile(
    r"<((?:[A-Za-z_][\w.-]*:)?(?:title|description|summary|content|encoded))(?:\s[^>]*)?(?<!/)>"
    r"[^<]*<(?![/!])"
)
_LOOSE_GUID = re.compile(r"isPermaLink\s*=\s*[\"']\s*false", re.IGNORECASE)

# The literals the checks of _lenient_reason are led by, found in one pass.
_NAMESPACED_NAMES = (":title", ":description", ":summary")
_MARKUP_FIELDS = ("title", "description", "summary", "content", "encoded")
_MARKUP_NAMES = tuple(f"<{name}" for name in _MARKUP_FIELDS)
_NAMESPACED_MARKUP_NAMES = tuple(f":{name}" for name in _MARKUP_FIELDS)
_LITERAL_NAMES = tuple(
    dict.fromkeys(
        [
            *("xml:", "xml:base", "xml:lang", "xhtml", "base64", "type=", "<entry", "rel="),
            *("media:", 'type="text', "type='text", "ermaLink", "<link", "<item", "ate>"),
            *("published>", *_NAMESPACED_NAMES, *_MARKUP_NAMES, *_NAMESPACED_MARKUP_NAMES),
        ]
    )
)
_LITERALS = ahocorasick_rs.AhoCorasick(
    _LITERAL_NAMES, implementation=ahocorasick_rs.Implementation.DFA
)


def scan(data: bytes, text: str) -> Scan:
    """Scan ``data`` (UTF-8, no DTD; ``text`` is the same document decoded)."""
    try:
        expat.ParserCreate().Parse(data, True)
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code]
        return Scan(
            error=f"line {exc.lineno}: {message}",
            truncated=message in _TRUNCATION_ERRORS,
            lenient="it is not well-formed XML",
            repairs=_repairs(text),
        )
    return Scan(error=None, truncated=False, lenient=_lenient_reason(data, text), repairs="")


def _lenient_reason(data: bytes, text: str) -> str | None:
    """Why fastfeedparser would read the well-formed ``data`` wrongly, or None.

    One Aho-Corasick pass over ``text`` finds every literal the checks below are led by (each
    check in its order, as if it searched the text itself); the patterns run only where their
    literal is."""
    found: dict[str, list[int]] = {}
    for index, start, _ in _LITERALS.find_matches_as_indexes(text, overlapping=True):
        found.setdefault(_LITERAL_NAMES[index], []).append(start)
    if "xml:" in found:
        if "xml:base" in found:
            return "xml:base"
        if "xml:lang" in found and _ENTRY_XML_LANG.search(data):
            return "xml:lang on entries"
    if b"purl.org/atom/ns#" in data[:4096]:  # on the root element
        return "Atom 0.3"
    if "xhtml" in found and _XHTML.search(data):
        return "xhtml content"
    if "base64" in found and _BASE64.search(data):
        return "base64 content"
    if "type=" in found and _BINARY_TYPE.search(data):
        return "base64 content"
    entries = len(found.get("<entry", ()))
    if entries and "rel=" in found:
        rels = _REL.findall(text)
        alternates = rels.count("alternate")
        if alternates < len(rels) and alternates < entries:
            # fastfeedparser takes the first link when an entry has no rel="alternate" one
            return "entry links of other relations"
    media = _MEDIA.search(data) if "media:" in found else None
    if media:
        return f"Media RSS <{media.group(1).decode()}>"
    if ('type="text' in found or "type='text" in found) and _PLAIN.search(text):
        return "escaped markup in a plain-text field"
    for position in _positions(found, _NAMESPACED_NAMES):
        clash = _NAMESPACED_FIELD.match(text, position)
        if clash is None:
            continue
        start = text.rfind("<", 0, position)
        if start >= 0 and _PREFIX.fullmatch(text, start + 1, position):
            return f"an extension element named {clash.group(1)}"
    for position in _markup_starts(text, found):
        markup = _MARKUP.match(text, position)
        if markup:
            return f"markup inside <{markup.group(1)}>"
    loose = "ermaLink" in found and _LOOSE_GUID.search(text)
    if loose and len(found.get("<link", ())) <= len(found.get("<item", ())):
        return 'a guid isPermaLink="false" on an item without a link'
    for pattern, literal in ((_ATE_ELEMENT, "ate>"), (_PUBLISHED_ELEMENT, "published>")):
        end = 0  # as finditer: a match starts after the end of the one before
        for position in found.get(literal, ()):
            if position < end:
                continue
            element = pattern.match(text, position)
            if element is None:
                continue
            end = element.end()
            value = element.group(1).strip()
            if not value:
                continue
            if pattern is _ATE_ELEMENT and not text.endswith(_ATE_NAMES, 0, position + 3):
                continue  # not a date element ("<rate>")
            return f"a date fastfeedparser may misread ({value[:40]!r})"
    return None


def _positions(found: dict[str, list[int]], names: tuple[str, ...]) -> list[int]:
    """Where the literals ``names`` start, in text order."""
    return sorted(position for name in names for position in found.get(name, ()))


def _markup_starts(text: str, found: dict[str, list[int]]) -> list[int]:
    """Where a match of _MARKUP may start, in text order: at a "<name" of its names, or at the
    "<" before "prefix:name"."""
    starts = _positions(found, _MARKUP_NAMES)
    for position in _positions(found, _NAMESPACED_MARKUP_NAMES):
        start = text.rfind("<", 0, position)
        if start >= 0:
            starts.append(start)
    return sorted(set(starts))


def _repairs(text: str) -> str:
    """What is wrong with an ill-formed ``text``, for the log: undefined entities and bare
    ampersands, counted."""
    undefined = sum(1 for m in _ENTITY.finditer(text) if m.group(1) not in _XML_ENTITIES)
    bare = sum(1 for _ in _BARE_AMPERSAND.finditer(text))
    parts = []
    if undefined:
        parts.append(f"{undefined} undefined {'entity' if undefined == 1 else 'entities'} decoded")
    if bare:
        parts.append(f"{bare} bare {'ampersand' if bare == 1 else 'ampersands'} kept as text")
    return ", ".join(parts)
