"""YouTube: a video search through the YouTube Data API v3.

Owns the ``youtube`` kind when it has a ``query`` (a ``youtube`` source with only ``channel_id``
stays a channel feed, see ``urls.py``; with both, the search is limited to that channel).

Endpoints (``{base}`` is ``base_url``, default https://www.googleapis.com):

- ``GET {base}/youtube/v3/search?part=snippet&q=Q&type=video&order=date&maxResults=50
  [&channelId=C][&publishedAfter=RFC3339]&key=KEY[&pageToken=T]``
  (https://developers.google.com/youtube/v3/docs/search/list) answers a searchListResponse:
  ``items[]`` of ``{id: {videoId}, snippet: {publishedAt, channelId, title, description,
  channelTitle}}`` and ``nextPageToken``. Titles and descriptions come HTML-escaped.
- ``GET {base}/youtube/v3/videos?part=statistics&id=ID,...&key=KEY&maxResults=50``
  (https://developers.google.com/youtube/v3/docs/videos/list) for ``statistics{viewCount,
  likeCount, commentCount}`` (decimal strings): one call per 50 videos found. It costs 1 quota
  unit against 100 for each search call, so it is always made; points are views (YouTube has no
  score), likes and replies are likes and comments. The channel's subscriber count (reach) would
  cost another call per page and is not fetched.

Quota: a project has 10,000 units a day by default and every search page costs 100, so a source
polled every 15 minutes with one page a poll uses about 10,000 units: keep ``page_cap`` low and
the interval long.

Paging and cursor: results are newest first; a poll reads ``nextPageToken`` pages until the
results end or ``page_cap`` pages were read. The cursor is the newest ``publishedAt`` seen
(RFC 3339, whole seconds, "Z"), sent as ``publishedAfter`` next poll, which includes that
instant: the newest video of the last poll comes again and is deduplicated (or updated when its
title changed). A first poll reads ``page_cap`` pages of history. A time more than a day in the
future is not trusted as cursor. If a later page fails the stored cursor stays (the next poll
reads the gap again); more than ``page_cap`` pages since the last poll leave the older ones
unread (noted). A failed statistics call keeps the videos without counts, with a note.

Failure modes, from Google's error document ``{"error": {"code", "message", "errors": [{"reason"}],
"details": [{"reason"}]}}`` (https://developers.google.com/youtube/v3/docs/errors): quotaExceeded
is "403: YouTube API quota exceeded" with a retry delay until the quota resets (midnight Pacific
time); keyInvalid / API_KEY_INVALID is "400: YouTube API key rejected"; a key whose project has
not enabled the API, or whose restrictions refuse the request, says so. The key is a query
parameter: ``redact_url`` replaces the value of every parameter whose name contains "key" (and
"token", so also ``pageToken``) with ***, every message here names URLs through it, and text from
Google's answer has the key replaced before it is quoted.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError
from listener.models import Item
from listener.sources import api
from listener.sources.api import (
    ApiContext,
    Fetched,
    Pages,
    as_int,
    as_text,
    as_time,
    base,
    get_json,
    url,
)
from listener.sources.client import Response, redact_url

__all__ = ["fetch", "identity"]

ROOT = "https://www.googleapis.com"
WATCH = "https://www.youtube.com/watch?v="
LIMIT = 50
_FUTURE = timedelta(days=1)
_PACIFIC = ZoneInfo("America/Los_Angeles")
_QUOTA = frozenset({"quotaExceeded", "dailyLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_BAD_KEY = frozenset({"keyInvalid", "keyExpired", "API_KEY_INVALID", "API_KEY_EXPIRED"})
_DISABLED = frozenset({"accessNotConfigured", "SERVICE_DISABLED"})


def identity(source: SourceSettings) -> str:
    """The search URL without the key and without paging."""
    return url(base(source, ROOT), "/youtube/v3/search", _search_params(source))


def _search_params(source: SourceSettings) -> dict[str, object]:
    return {
        "part": "snippet",
        "q": source.query,
        "type": "video",
        "order": "date",
        "channelId": source.channel_id,
    }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def fetch(ctx: ApiContext) -> Fetched:
    source = ctx.source
    root = base(source, ROOT)
    since = as_time(ctx.cursor) if ctx.cursor else None
    horizon = ctx.now + _FUTURE
    params = {
        **_search_params(source),
        "maxResults": LIMIT,
        "publishedAfter": _rfc3339(since) if since else None,
        "key": source.api_key,
    }
    items: list[Item] = []
    seen: set[str | None] = set()
    newest: datetime | None = None
    pages = Pages(source.page_cap)
    note: str | None = None
    complete = failed = False
    token: str | None = None
    while True:
        target = url(root, "/youtube/v3/search", {**params, "pageToken": token})
        try:
            document, response = await _get(ctx, target, "search")
            page, next_token = _page(document, response)
        except ParseError as exc:
            if pages.count == 0:
                raise
            note, failed = f"page {pages.count + 1}: {exc}", True
            break
        pages.fetched()
        for item in page:
            if item.guid in seen:
                continue  # search pages can repeat a video when new ones push the rest down
            seen.add(item.guid)
            items.append(item)
            published = item.published_at
            if published and published <= horizon and (newest is None or published > newest):
                newest = published
        if next_token is None or not page:
            complete = True
            break
        if not pages.next(next_token):
            complete = True  # a gap is accepted: the next poll starts from the newest again
            note = (
                api.token_paging_note(pages, "YouTube", "video", incremental=since is not None)
                or note
            )
            break
        token = next_token
    items, stats_note = await _with_statistics(ctx, root, items)
    note = "; ".join(n for n in (note, stats_note) if n) or None
    cursor: str | None = None
    if since is None or complete or failed:  # failed: the pipeline keeps the stored one (gap)
        best = max((t for t in (since, newest) if t is not None), default=None)
        cursor = _rfc3339(best) if best else None
    return Fetched(tuple(items), cursor, note, pages.count, gap=failed)


async def _get(ctx: ApiContext, target: str, what: str) -> tuple[Any, Response]:
    try:
        return await get_json(ctx, target, f"youtube {what}")
    except FetchError as exc:
        raise _explain(exc, ctx) from None


def _explain(exc: FetchError, ctx: ApiContext) -> FetchError:
    """A person's sentence for Google's error document; the key never appears in it."""
    code, message, reasons = _error(exc.body)
    key = ctx.source.api_key or ""
    detail = message.replace(key, "***") if key else message
    status = exc.status or code
    if reasons & _QUOTA:
        reset = datetime.combine(
            ctx.now.astimezone(_PACIFIC).date() + timedelta(days=1), time(0), _PACIFIC
        )
        return FetchError(
            f"{status}: YouTube API quota exceeded; it resets at midnight Pacific time "
            f"({reset.astimezone(UTC):%H:%M} UTC)",
            status=status,
            retry_after=max(exc.retry_after or 0.0, (reset - ctx.now).total_seconds()),
            body=exc.body,
        )
    if reasons & _BAD_KEY:
        text = f"{status}: YouTube API key rejected ({', '.join(sorted(reasons & _BAD_KEY))})"
    elif reasons & _DISABLED:
        text = (
            f"{status}: the YouTube Data API v3 is not enabled for the API key's Google Cloud "
            "project; enable it in the Cloud console"
        )
    elif status in (400, 403) and (reasons or detail):
        why = ", ".join(sorted(reasons)) or "no reason"
        text = f"{status}: YouTube API refused the request ({why}): {detail}"
    else:
        return exc
    return FetchError(text, status=status, retry_after=exc.retry_after, body=exc.body)


def _error(body: bytes) -> tuple[int | None, str, set[str]]:
    """Code, message and reasons of Google's JSON error document."""
    error = (api.error_document(body) or {}).get("error")
    if not isinstance(error, dict):
        return None, "", set()
    reasons = set()
    for entry in [*_list(error.get("errors")), *_list(error.get("details"))]:
        reason = entry.get("reason") if isinstance(entry, dict) else None
        if isinstance(reason, str) and len(reason) <= 60:
            reasons.add(reason)
    message = as_text(error.get("message"), html=True, limit=300)
    return as_int(error.get("code")), message[:200], reasons


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _page(document: Any, response: Response) -> tuple[list[Item], str | None]:
    entries = document.get("items") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ParseError(f"youtube: no 'items' list in the search from {redact_url(response.url)}")
    page = [item for item in (_item(e) for e in entries) if item is not None]
    if entries and not page:
        raise ParseError(
            f"youtube: no readable video in the search from {redact_url(response.url)}"
        )
    token = document.get("nextPageToken")
    return page, token if isinstance(token, str) and 0 < len(token) <= 500 else None


def _item(entry: Any) -> Item | None:
    if not isinstance(entry, dict):
        return None
    ident = entry.get("id")
    video = ident.get("videoId") if isinstance(ident, dict) else None
    snippet = entry.get("snippet")
    if not isinstance(video, str) or not 0 < len(video) <= 64 or not isinstance(snippet, dict):
        return None
    channel = snippet.get("channelTitle")
    author = as_text(channel, html=True, limit=200) if isinstance(channel, str) else ""
    return Item(
        guid=f"yt:video:{video}",
        url=WATCH + quote(video, safe=""),
        title=as_text(snippet.get("title"), html=True, limit=1000),
        text=as_text(snippet.get("description"), html=True),
        author=author or None,
        published_at=as_time(snippet.get("publishedAt")),
    )


async def _with_statistics(
    ctx: ApiContext, root: str, items: list[Item]
) -> tuple[list[Item], str | None]:
    """Views, likes and comments of the videos, 50 ids a call; a failure is a note."""
    counts: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(item.guid.removeprefix("yt:video:") for item in items if item.guid))
    for start in range(0, len(ids), LIMIT):
        chunk = ids[start : start + LIMIT]
        target = url(
            root,
            "/youtube/v3/videos",
            {"part": "statistics", "id": ",".join(chunk), "key": ctx.source.api_key},
        )
        try:
            document, _ = await _get(ctx, target, "videos")
        except (FetchError, ParseError) as exc:
            return items, f"statistics: {exc}"
        for entry in _list(document.get("items") if isinstance(document, dict) else None):
            if isinstance(entry, dict) and isinstance(entry.get("statistics"), dict):
                counts[str(entry.get("id"))] = entry["statistics"]
    merged = []
    for item in items:
        stats = counts.get((item.guid or "").removeprefix("yt:video:"))
        if stats is not None:
            item = replace(
                item,
                points=as_int(stats.get("viewCount")),
                likes=as_int(stats.get("likeCount")),
                replies=as_int(stats.get("commentCount")),
            )
        merged.append(item)
    return merged, None
