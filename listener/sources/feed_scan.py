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
    """Why fastfeedparser would read the well-formed ``data`` wrongly, or None."""
    if b"xml:" in data:
        if b"xml:base" in data:
            return "xml:base"
        if b"xml:lang" in data and _ENTRY_XML_LANG.search(data):
            return "xml:lang on entries"
    if b"purl.org/atom/ns#" in data[:4096]:  # on the root element
        return "Atom 0.3"
    if b"xhtml" in data and _XHTML.search(data):
        return "xhtml content"
    if b"base64" in data and _BASE64.search(data):
        return "base64 content"
    if b"type=" in data and _BINARY_TYPE.search(data):
        return "base64 content"
    entries = text.count("<entry")
    if entries and "rel=" in text:
        rels = _REL.findall(text)
        alternates = rels.count("alternate")
        if alternates < len(rels) and alternates < entries:
            # fastfeedparser takes the first link when an entry has no rel="alternate" one
            return "entry links of other relations"
    media = _MEDIA.search(data) if b"media:" in data else None
    if media:
        return f"Media RSS <{media.group(1).decode()}>"
    if ('type="text' in text or "type='text" in text) and _PLAIN.search(text):
        return "escaped markup in a plain-text field"
    for clash in _NAMESPACED_FIELD.finditer(text):
        start = text.rfind("<", 0, clash.start())
        if start >= 0 and _PREFIX.fullmatch(text, start + 1, clash.start()):
            return f"an extension element named {clash.group(1)}"
    markup = _MARKUP.search(text)
    if markup:
        return f"markup inside <{markup.group(1)}>"
    loose = "ermaLink" in text and _LOOSE_GUID.search(text)
    if loose and text.count("<link") <= text.count("<item"):
        return 'a guid isPermaLink="false" on an item without a link'
    for pattern in (_ATE_ELEMENT, _PUBLISHED_ELEMENT):
        for found in pattern.finditer(text):
            value = found.group(1).strip()
            if not value:
                continue
            if pattern is _ATE_ELEMENT and not text.endswith(_ATE_NAMES, 0, found.start() + 3):
                continue  # not a date element ("<rate>")
            return f"a date fastfeedparser may misread ({value[:40]!r})"
    return None


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
