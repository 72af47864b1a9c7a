"""Feed URL builders: the source kinds that are plain feeds underneath (Google News search,
Reddit, YouTube channels, Mastodon hashtags). Pure functions; bad input raises ValueError with a
one-line message (the config layer reports it with the key path)."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, urlsplit

_WEB_SCHEMES = frozenset({"http", "https"})

_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")
_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")
_SUBREDDIT = re.compile(r"[A-Za-z0-9_]{2,21}")
_YOUTUBE_CHANNEL = re.compile(r"UC[A-Za-z0-9_-]{22}")
_HASHTAG = re.compile(r"\w+")


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


def reddit_url(*, subreddit: str | None = None, query: str | None = None) -> str:
    """The Reddit RSS URL of a subreddit's new posts, a search, or a search in a subreddit."""
    if subreddit is not None:
        subreddit = subreddit.strip().removeprefix("/").removeprefix("r/")
        if not _SUBREDDIT.fullmatch(subreddit):
            raise ValueError(f"subreddit {subreddit!r} is not a name like 'python'")
    if query is not None and not query.strip():
        raise ValueError("reddit query must not be empty")
    if subreddit is not None and query is not None:
        return (
            f"https://www.reddit.com/r/{subreddit}/search.rss"
            f"?q={quote_plus(query)}&restrict_sr=on&sort=new"
        )
    if subreddit is not None:
        return f"https://www.reddit.com/r/{subreddit}/new/.rss"
    if query is not None:
        return f"https://www.reddit.com/search.rss?q={quote_plus(query)}&sort=new"
    raise ValueError("reddit source needs a subreddit, a query, or both")


def youtube_url(channel_id: str) -> str:
    """The RSS URL of a YouTube channel's uploads."""
    channel_id = channel_id.strip()
    if not _YOUTUBE_CHANNEL.fullmatch(channel_id):
        raise ValueError(
            f"youtube channel id {channel_id!r} is not an id like 'UC' + 22 characters "
            "(a @handle is not a channel id)"
        )
    return f"https://www.youtube.com/feeds/videos.xml?channel_id={channel_id}"


def mastodon_url(instance: str, hashtag: str) -> str:
    """The RSS URL of ``hashtag`` on a Mastodon ``instance`` ("mastodon.social" or a URL)."""
    given = instance.strip()
    parts = urlsplit(given if "://" in given else f"https://{given}")
    if parts.scheme not in _WEB_SCHEMES or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"mastodon instance {instance!r} is not a host like 'mastodon.social'")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"mastodon instance {instance!r} is not a host like 'mastodon.social'")
    tag = hashtag.strip().removeprefix("#")
    if not _HASHTAG.fullmatch(tag):
        raise ValueError(f"mastodon hashtag {hashtag!r} is not a tag like '#python'")
    return f"{parts.scheme}://{parts.netloc.lower()}/tags/{quote(tag)}.rss"


# --- decoding and checks --------------------------------------------------------------------
