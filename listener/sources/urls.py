"""Feed URL builders: the source kinds that are plain feeds underneath (Google News search,
YouTube channels; reddit and mastodon sources are read through their APIs). Pure functions; bad
input raises ValueError with a one-line message (the config layer reports it with the key
path)."""

from __future__ import annotations

import re
from urllib.parse import quote_plus

_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")
_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")
_YOUTUBE_CHANNEL = re.compile(r"UC[A-Za-z0-9_-]{22}")


def google_news_url(query: str, language: str = "en", country: str = "US") -> str:
    """The Google News RSS search URL for ``query`` in ``language`` and ``country``."""
    if not query.strip():
        raise ValueError("google news query must not be empty")
    if not _LANGUAGE_CODE.fullmatch(language):
        raise ValueError(f"google news language {language!r} is not a code like 'en' or 'de'")
    if not _COUNTRY_CODE.fullmatch(country):
        raise ValueError(f"google news country {country!r} is not a code like 'US' or 'DE'")
    country = country.upper()
    return (
        f"https://news.google.com/rss/search?q={quote_plus(query)}"
        f"&hl={language}-{country}&gl={country}&ceid={country}:{language}"
    )


def youtube_url(channel_id: str) -> str:
    """The RSS URL of a YouTube channel's uploads."""
    channel_id = channel_id.strip()
    if not _YOUTUBE_CHANNEL.fullmatch(channel_id):
        raise ValueError(
            f"youtube channel id {channel_id!r} is not an id like 'UC' + 22 characters "
            "(a @handle is not a channel id)"
        )
    return f"https://www.youtube.com/feeds/videos.xml?channel_id={channel_id}"
