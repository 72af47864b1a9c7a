"""Builders of small RSS documents for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

BASE_TIME = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def rss(items: list[dict[str, str]], *, encoding: str = "utf-8", title: str = "Feed") -> bytes:
    """An RSS 2.0 document; each item may give title, link, guid, description, author, date."""
    parts = []
    for index, item in enumerate(items):
        date = item.get("date") or format_datetime(BASE_TIME - timedelta(minutes=index))
        fields = [
            f"<title>{escape(item.get('title', ''))}</title>",
            f"<link>{escape(item['link'])}</link>" if "link" in item else "",
            f"<guid>{escape(item['guid'])}</guid>" if "guid" in item else "",
            f"<description>{escape(item.get('description', ''))}</description>",
            f"<author>{escape(item['author'])}</author>" if "author" in item else "",
            f"<pubDate>{date}</pubDate>",
        ]
        parts.append("<item>" + "".join(fields) + "</item>")
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.org/</link>"
        + "".join(parts)
        + "</channel></rss>"
    )
    return document.encode(encoding)
