"""RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 bodies parsed into Items (the URL builders for the
feed-based source kinds are in ``urls.py``).

Owns: turning a fetched feed body into a :class:`~listener.models.ParsedFeed` (no I/O).

Rules of :func:`parse_feed`:

- No DTD ever reaches a parser. Every ``<!DOCTYPE ...>`` (with its internal subset) is cut out of
  the text first, and stray ``<!DOCTYPE``/``<!ENTITY`` tokens of a broken one are removed, so
  internal entities are never expanded (billion laughs) and external ones never read (XXE).
  References to entities left undefined make the document ill-formed; it is read as far as it
  goes, like any other ill-formed document.
- Charset: the rules of :mod:`~listener.sources.charset` (a BOM wins; UTF-8 if the body
  decodes as UTF-8; else the HTTP ``charset``, the XML declaration's, windows-1252). The text is
  re-encoded as UTF-8 with a matching declaration, so both parsers read exactly the same text.
- Two parsers. fastfeedparser (lxml plus a native extractor, about 50x faster) reads
  well-formed bodies that use nothing it misreads; feedparser, the reference, reads the rest
  ("leniently"): :mod:`~listener.sources.feed_scan` decides, in one expat pass and a few
  literal-led searches, and names the reason in a debug line. feedparser also reads what
  fastfeedparser raises on or finds no entries in although the body has ``<item>``/``<entry>``
  elements. ``ParsedFeed.parser`` names the parser whose entries were kept. fastfeedparser is
  only ever given bytes: given a ``str`` starting with ``http`` it would fetch it.
- Ill-formed XML is read by feedparser as far as it gets; a warning names the first error (from
  expat; line numbers are the body's), what needed repair (undefined entities decoded, bare
  ampersands kept as text, counted) and how many items were kept. A body that ends early is cut
  after its last complete entry, so the entry the break fell into is not kept half.
  A body that is not RSS/Atom at all (HTML, JSON, empty, garbage) raises :class:`ParseError`.
- Items: see :mod:`~listener.sources.feed_fields` (guid, url, plain-text title and text,
  author, date, reach). Language is the entry's, else the feed's, as a lowercase primary subtag
  ("de-DE" -> "de"). Entries with neither guid, url, title nor text are dropped, and a warning
  counts them. C0 control characters other than tab and newline never reach a field.
- Screening (fastfeedparser's entries only, when the caller passes ``screen``): an entry whose
  raw title and text, reduced by ``html.text_pieces``, the screen rules out (no brand can match
  it) and that is sure to become an Item (a guid that is not its link, or an absolute web link)
  is counted in ``ParsedFeed.screened`` instead of being built: most entries of a feed mention
  no brand, and building them (``html_to_text``, the Item) was most of a parse. A feed whose
  entries mostly may match (a search feed) stops being screened after a few entries.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import fastfeedparser
import feedparser

from listener.errors import ParseError
from listener.models import Item, ParsedFeed
from listener.sources.charset import decode
from listener.sources.feed_fields import (
    build_item,
    detailed_body,
    entry_language,
    has_identity,
    iso_date,
    language,
    longest_body,
    parse_date,
    plain_text,
    views,
)
from listener.sources.feed_scan import scan
from listener.sources.html import drop_escapes, html_to_text, text_pieces

__all__ = ["parse_feed"]

_LOG = logging.getLogger(__name__)

_XML_DECL = re.compile(r"\A\s*<\?xml\b[^>]*?\?>")
_UTF8_DECL = '<?xml version="1.0" encoding="utf-8"?>'

# --- sanitising -----------------------------------------------------------------------------

# A DOCTYPE with its external id and internal subset; quoted strings and comments may hold
# ">" and "]". Possessive loops keep it linear on hostile input.
_DOCTYPE = re.compile(
    r"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*+"""
    r"""(?:\[(?:<!--.*?-->|"[^"]*"|'[^']*'|[^\]"'])*+\])?\s*>""",
    re.IGNORECASE | re.DOTALL,
)
_DTD_LEFTOVER = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_FIELD_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# --- sniffing -------------------------------------------------------------------------------

_SNIFF_CHARS = 65536
_FEED_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?(?:rss|feed|RDF)\b")
_HTML_START = re.compile(r"<(?:!doctype\s+html|html)\b", re.IGNORECASE)
_ENTRY_TAG = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_WEB_URL = re.compile(r"\s*https?://", re.IGNORECASE)
# Screening stops in a feed when fewer than one in four of its first entries (at least this
# many) were ruled out: where most entries may mention a brand, it only costs.
_SCREEN_TRIAL = 8
_LANGUAGE_ELEMENT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?language\b[^>]*>\s*([^<]{1,64}?)\s*</")


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    screen: Callable[[str], bool] | None = None,
) -> ParsedFeed:
    """Parse an RSS/Atom/RDF ``body`` fetched from ``url``.

    ``content_type`` is the HTTP Content-Type header, if any; its charset is honoured.
    ``screen`` (``Matcher.screen``), given the ``text_pieces`` of an entry's title and text,
    says whether it may mention a brand; entries it rules out are counted in
    ``ParsedFeed.screened`` instead of being built (fastfeedparser's entries only).
    Raises ParseError when the body is not a feed at all; a partly broken feed is kept as far
    as it goes, with a warning.
    """
    text, warnings = decode(body, content_type)
    _sniff(text)
    # Removed parts leave their line breaks behind, so warnings give the body's line numbers.
    if _DTD_LEFTOVER.search(text):
        text = _DOCTYPE.sub(_line_breaks, text)
        text = _DTD_LEFTOVER.sub("", text)
    declaration = _XML_DECL.match(text)
    if declaration:
        text = _UTF8_DECL + _line_breaks(declaration) + text[declaration.end() :]
    else:
        text = _UTF8_DECL + text
    data = text.encode("utf-8", "surrogatepass")

    found = scan(data, text)
    if found.error is not None and _CONTROL.search(text):
        # Control characters are not allowed in XML; drop them (escape sequences whole, a
        # space where one stood between two words) and look again.
        text = _CONTROL.sub("", drop_escapes(text) if "\x1b" in text else text)
        data = text.encode("utf-8", "surrogatepass")
        found = scan(data, text)
    if found.truncated:
        # Keep only the entries before the break: the last one is cut off somewhere inside.
        end = max(text.rfind("</item>"), text.rfind("</entry>"))
        if end >= 0:
            text = text[: text.index(">", end) + 1]
            data = text.encode("utf-8", "surrogatepass")
    entry_match = _ENTRY_TAG.search(text)
    head_end = entry_match.start() if entry_match else min(len(text), _SNIFF_CHARS)

    parsed: ParsedFeed | None = None
    if found.lenient is None:
        parsed = _parse_fast(
            data, url, text, head_end, has_entries=entry_match is not None, screen=screen
        )
    else:
        _LOG.debug("feed %s: %s, parsing leniently with feedparser", url, found.lenient)
    if parsed is None:
        parsed = _parse_slow(data, url, found.error)

    kept = len(parsed.items)
    if found.error is not None:
        repairs = f"{found.repairs}; " if found.repairs else ""
        warnings.append(
            f"feed is not well-formed XML ({found.error}): {repairs}parsed leniently, kept {kept} "
            + ("entry" if kept == 1 else "entries")
        )
    warnings.extend(parsed.warnings)  # entries dropped as empty
    if not warnings:
        return parsed
    return ParsedFeed(
        items=parsed.items,
        warnings=tuple(warnings),
        parser=parsed.parser,
        language=parsed.language,
        screened=parsed.screened,
    )


def _sniff(text: str) -> None:
    """Raise ParseError unless ``text`` looks like an RSS/Atom/RDF document."""
    head = text[:_SNIFF_CHARS].lstrip()
    if not head:
        raise ParseError("not an RSS/Atom feed: the body is empty")
    if _FEED_ROOT.search(head):
        return
    if head[0] in "{[":
        raise ParseError("not an RSS/Atom feed: the body looks like JSON")
    if _HTML_START.search(head):
        raise ParseError("not an RSS/Atom feed: the body is an HTML page")
    if head[0] != "<":
        raise ParseError("not an RSS/Atom feed: the body is not XML")
    raise ParseError("not an RSS/Atom feed: no <rss>, <feed> or <rdf:RDF> element")


def _line_breaks(match: re.Match[str]) -> str:
    return "\n" * match.group().count("\n")


# --- the two parsers ------------------------------------------------------------------------


def _parse_fast(
    data: bytes,
    url: str,
    text: str,
    head_end: int,
    *,
    has_entries: bool,
    screen: Callable[[str], bool] | None = None,
) -> ParsedFeed | None:
    """Parse with fastfeedparser; None means "let feedparser try"."""
    try:
        result = fastfeedparser.parse(
            data, include_tags=False, include_media=False, include_enclosures=False
        )
    except Exception as exc:  # it raises ValueError, lxml errors, ...: all mean "try feedparser"
        _LOG.debug("fastfeedparser rejected feed %s: %s", url, exc)
        return None
    feed: Mapping[str, Any] = result.get("feed") or {}
    entries: list[Mapping[str, Any]] = result.get("entries") or []
    if not entries and has_entries:
        _LOG.debug("fastfeedparser found no entries in feed %s", url)
        return None
    feed_language = language(feed.get("language"))
    if feed_language is None:
        element = _LANGUAGE_ELEMENT.search(text, 0, head_end)
        feed_language = language(element.group(1)) if element else None
    items = []
    screened = screens = 0
    for entry in entries:
        title = entry.get("title")
        body = longest_body(entry.get("description"), entry.get("content"))
        if screen is not None and has_identity(entry.get("id"), entry.get("link")):
            pieces = _pieces(title, body)
            if pieces is not None:
                screens += 1
                if not screen(pieces):
                    screened += 1
                    continue
                if screens >= _SCREEN_TRIAL and screened * 4 < screens:
                    screen = None  # most entries of this feed may match: screening costs
        item = build_item(
            guid=entry.get("id"),
            link=entry.get("link"),
            title=html_to_text(title) if isinstance(title, str) and title else "",
            text=html_to_text(body, lines=True) if body else "",
            author=entry.get("author"),
            published_at=iso_date(entry.get("published")) or iso_date(entry.get("updated")),
            language=feed_language,
            base_url=url,
        )
        if item is not None:
            items.append(item)
    return _parsed(items, len(entries), "fastfeedparser", feed_language, screened)


def _pieces(title: object, body: str) -> str | None:
    """The ``text_pieces`` of an entry's raw title and body, or None."""
    title_pieces = text_pieces(title) if isinstance(title, str) and title else ""
    if title_pieces is None:
        return None
    body_pieces = text_pieces(body) if body else ""
    return None if body_pieces is None else f"{title_pieces}\n{body_pieces}"


def _parse_slow(data: bytes, url: str, xml_error: str | None) -> ParsedFeed:
    """Parse with feedparser, which reads (almost) anything; raise ParseError if it is no feed."""
    try:
        result = feedparser.parse(
            io.BytesIO(data),
            # No content-location: feedparser would resolve guids against it as if they were
            # links. Links are resolved against the feed URL here, after xml:base.
            response_headers={"content-type": "application/xml; charset=utf-8"},
            resolve_relative_uris=False,  # links inside HTML are dropped with the HTML
            sanitize_html=False,  # html_to_text drops scripts and styles itself
        )
    except Exception as exc:  # feedparser should not raise, but it is the last line
        raise ParseError(f"not an RSS/Atom feed: feedparser failed ({type(exc).__name__})") from exc
    entries: list[Mapping[str, Any]] = result.get("entries") or []
    if not entries and not result.get("version"):
        detail = f" ({xml_error})" if xml_error else ""
        raise ParseError(f"not an RSS/Atom feed: no feed structure found{detail}")
    feed: Mapping[str, Any] = result.get("feed") or {}
    feed_language = language(feed.get("language"))
    items = []
    for entry in entries:
        title_detail = entry.get("title_detail")
        item = build_item(
            guid=entry.get("id"),
            link=_slow_link(entry),
            title=plain_text(
                entry.get("title"),
                title_detail.get("type") if isinstance(title_detail, Mapping) else None,
            ),
            text=detailed_body(entry),
            author=entry.get("author"),
            published_at=parse_date(entry.get("published")) or parse_date(entry.get("updated")),
            language=entry_language(entry) or feed_language,
            base_url=url,
            reach=views(entry),
        )
        if item is not None:
            items.append(item)
    return _parsed(items, len(entries), "feedparser", feed_language)


def _slow_link(entry: Mapping[str, Any]) -> object:
    """feedparser's entry link; a guid it took for the link only if it is an absolute web URL
    (an RSS guid is a permalink unless it says otherwise, but "g1" is not one)."""
    link = entry.get("link")
    if (
        entry.get("guidislink")
        and isinstance(link, str)
        and link == entry.get("id")
        and not _WEB_URL.match(link)
    ):
        return None
    return link


def _parsed(
    items: list[Item], entries: int, parser: str, feed_language: str | None, screened: int = 0
) -> ParsedFeed:
    """The ParsedFeed of ``items``; a warning says how many ``entries`` were empty."""
    dropped = entries - len(items) - screened
    warnings = (
        (
            f"{dropped} {'entry' if dropped == 1 else 'entries'} without title, text, link or "
            "guid dropped",
        )
        if dropped
        else ()
    )
    return ParsedFeed(
        items=tuple(items),
        warnings=warnings,
        parser=parser,
        language=feed_language,
        screened=screened,
    )
