"""The fields of one feed entry, as either parser gives them, turned into an :class:`Item`.

Owns :func:`build_item` and the field rules (``feed.py`` owns parsing):

- guid is the entry id, None when empty or equal to the entry link (fastfeedparser invents
  such a guid from the link; dropping it keeps both parsers' Items equal). A guid is never
  a link: an RSS ``guid isPermaLink="false"`` gives no url.
- url is the entry link resolved against the feed URL, kept only if http(s).
- title and text are plain text: HTML fields through
  :func:`~listener.sources.html.html_to_text`, fields declared plain text (Atom
  ``type="text"``) only with whitespace collapsed, so words in angle brackets stay; text is the
  longest of content and summary (for YouTube's Media RSS feeds, feedparser's summary is the
  video description).
- author is the author's name (``email (Name)`` and ``Name (email)`` become ``Name``).
- published_at is published, else updated, in UTC (naive means UTC; unparseable means None,
  and the store then uses the fetch time). fastfeedparser's dates are taken as they are
  (``feed_scan`` sends documents with other date forms to feedparser); feedparser's raw date
  strings are read with feedparser's own date handlers, strict ones first, without its lenient
  ISO 8601 one: that one fills what it cannot read from today's date ("2013-xx-27" became
  2013-12-01 in December), and a wrong instant is worse than none.
- reach is the Media RSS view count (``media:statistics views``) where a feed gives one.
- Entries with neither guid, url, title nor text are dropped (the caller counts and logs
  them): there is nothing in them to match or to link to. C0 control characters other than
  tab and newline never reach a field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from feedparser import datetimes as feed_dates

from listener.models import Item
from listener.sources.html import html_to_text

__all__ = [
    "build_item",
    "detailed_body",
    "entry_language",
    "has_identity",
    "iso_date",
    "language",
    "longest_body",
    "parse_date",
    "plain_text",
    "views",
]

_LANGUAGE_TAG = re.compile(r"\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*\Z")
# "email (Name)" (RSS 2.0 <author>) and "Name (email)" (feedparser's rendering of Atom authors)
_EMAIL_NAME = re.compile(r"\A\s*[^\s@()]+@[^\s()]+\s*\((.+)\)\s*\Z")
_NAME_EMAIL = re.compile(r"\A(.+?)\s*\(\s*[^\s@()]+@[^\s()]+\s*\)\s*\Z")
_WEB_SCHEMES = frozenset({"http", "https"})
_ABSOLUTE_WEB_URL = re.compile(r"https?://[^\s/?#@\\\[\]]+(?:[/?#][^\s]*)?\Z")
_FIELD_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PLAIN_TYPES = frozenset({"text/plain", "text"})


def build_item(
    *,
    guid: object,
    link: object,
    title: str,
    text: str,
    author: object,
    published_at: datetime | None,
    language: str | None,
    base_url: str,
    reach: int | None = None,
) -> Item | None:
    """An Item from an entry's fields (``title`` and ``text`` already plain text), or None
    when the entry has nothing to identify or match it by."""
    clean_guid = _clean_line(guid) if isinstance(guid, str) else ""
    if isinstance(link, str) and clean_guid == link.strip():
        clean_guid = ""
    clean_url = _web_url(base_url, link)
    if not (clean_guid or clean_url or title or text):
        return None
    return Item(
        guid=clean_guid or None,
        url=clean_url,
        title=title,
        text=text,
        author=_author(author),
        published_at=published_at,
        language=language,
        reach=reach,
    )


def has_identity(guid: object, link: object) -> bool:
    """Whether ``build_item`` builds an Item from an entry with this guid and link whatever its
    title and text: its guid is not its link, or its link is an absolute web URL."""
    if isinstance(guid, str):
        clean_guid = _clean_line(guid)
        if clean_guid and not (isinstance(link, str) and clean_guid == link.strip()):
            return True
    return isinstance(link, str) and _ABSOLUTE_WEB_URL.match(_clean_line(link)) is not None


def plain_text(value: object, kind: object = None, *, lines: bool = False) -> str:
    """``value`` as plain text: HTML reduced to its text, or, when ``kind`` (a MIME type from
    feedparser's ``*_detail``) says plain text, only whitespace and control characters
    cleaned."""
    if not isinstance(value, str) or not value:
        return ""
    if kind in _PLAIN_TYPES and ("<" in value or "&" in value):
        # already text: escaped, so that html_to_text decodes no reference a second time
        return html_to_text(value.replace("&", "&amp;").replace("<", "&lt;"), lines=lines)
    return html_to_text(value, lines=lines)


def longest_body(summary: object, content: object) -> str:
    """The longest of an entry's summary and the values of its content list (raw)."""
    longest = summary if isinstance(summary, str) else ""
    if isinstance(content, list):
        for part in content:
            value = part.get("value") if isinstance(part, Mapping) else None
            if isinstance(value, str) and len(value) > len(longest):
                longest = value
    return longest


def detailed_body(entry: Mapping[str, Any]) -> str:
    """The longest plain text of feedparser's summary and content values, each reduced by its
    own type."""
    detail = entry.get("summary_detail")
    best = plain_text(
        entry.get("summary"),
        detail.get("type") if isinstance(detail, Mapping) else None,
        lines=True,
    )
    for part in entry.get("content") or ():
        if isinstance(part, Mapping):
            text = plain_text(part.get("value"), part.get("type"), lines=True)
            if len(text) > len(best):
                best = text
    return best


def views(entry: Mapping[str, Any]) -> int | None:
    """Media RSS ``media:statistics views`` of a feedparser entry, or None."""
    statistics = entry.get("media_statistics")
    if not isinstance(statistics, Mapping):
        return None
    value = statistics.get("views")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _web_url(base_url: str, link: object) -> str | None:
    """``link`` made absolute against ``base_url``; None unless it is an http(s) URL."""
    if not isinstance(link, str):
        return None
    link = _clean_line(link)
    if not link:
        return None
    if _ABSOLUTE_WEB_URL.match(link):
        return link
    try:
        absolute = urljoin(base_url, link)
        parts = urlsplit(absolute)
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme.lower() not in _WEB_SCHEMES or not parts.netloc:
        return None
    return absolute


def _clean_line(value: str) -> str:
    """``value`` stripped, without control characters."""
    value = value.strip()
    return value if value.isprintable() else _FIELD_CONTROL.sub("", value)


def _author(author: object) -> str | None:
    if not isinstance(author, str):
        return None
    named = None
    if "@" in author and len(author) < 400:  # short: the patterns backtrack on long input
        named = _EMAIL_NAME.match(author) or _NAME_EMAIL.match(author)
    name = html_to_text(named.group(1) if named else author)
    return name or None


def language(value: object) -> str | None:
    """The lowercase primary subtag of a language tag ("de-DE" -> "de"), or None."""
    if not isinstance(value, str):
        return None
    tag = _LANGUAGE_TAG.match(value)
    return tag.group(1).lower() if tag else None


def entry_language(entry: Mapping[str, Any]) -> str | None:
    """An entry's own language in feedparser's result (xml:lang of its title or text)."""
    for key in ("title_detail", "summary_detail"):
        detail = entry.get(key)
        if isinstance(detail, Mapping):
            found = language(detail.get("language"))
            if found is not None:
                return found
    return None


def iso_date(value: object) -> datetime | None:
    """fastfeedparser's ISO 8601 date string as an aware UTC datetime (naive means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# feedparser's handlers for the date forms seen in feeds, in the order feedparser tries them,
# without _parse_date_iso8601 (see the module docstring).
_DATE_HANDLERS = (
    feed_dates._parse_date_w3dtf,
    feed_dates._parse_date_rfc822,
    feed_dates._parse_date_asctime,
    feed_dates._parse_date_perforce,
    feed_dates._parse_date_hungarian,
    feed_dates._parse_date_greek,
    feed_dates._parse_date_nate,
    feed_dates._parse_date_onblog,
)


def parse_date(value: object) -> datetime | None:
    """A feed's date string as an aware UTC datetime, or None when no handler reads it."""
    if not isinstance(value, str) or not value.strip():
        return None
    for handler in _DATE_HANDLERS:
        try:
            parsed = handler(value.strip())
        except (KeyError, ValueError, IndexError, OverflowError):  # greek raises KeyError
            continue
        if parsed is not None:
            try:
                return datetime(*parsed[:6]).replace(tzinfo=UTC)
            except (ValueError, OverflowError):
                return None
    return None
