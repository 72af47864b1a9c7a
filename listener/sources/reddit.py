"""Reddit: a subreddit's new posts, or a search, through Reddit's JSON listings.

Owns the ``reddit`` kind. Endpoints, documented at https://www.reddit.com/dev/api/ under
"listings" and "search" (the Listing and t3 formats at
https://github.com/reddit-archive/reddit/wiki/JSON):

- ``GET {root}/r/SUB/new.json?limit=100&raw_json=1[&after=FULLNAME]``: a subreddit's new posts
  (``SUB`` may join several names with ``+``);
- ``GET {root}/search.json?q=Q&sort=new&limit=100&raw_json=1[&after=...]``: a search, and with a
  subreddit ``/r/SUB/search.json?...&restrict_sr=1``.

Both answer ``{"kind": "Listing", "data": {"after", "before", "children": [{"kind": "t3",
"data": {name, title, selftext, url, permalink, author, score, num_comments, num_crossposts,
created_utc, subreddit_subscribers, ...}}]}}``; ``raw_json=1`` asks for text without HTML
entities. ``root`` is ``base_url`` when configured, else https://www.reddit.com, or with app
credentials https://oauth.reddit.com.

Authentication: with ``client_id`` and ``client_secret`` (a reddit "script" or "web" app) the
adapter obtains an application-only token (OAuth2 client-credentials grant, documented at
https://github.com/reddit-archive/reddit/wiki/OAuth2 "Application Only OAuth"):
``POST https://www.reddit.com/api/v1/access_token`` (``{base_url}/api/v1/access_token`` when
configured) with HTTP basic auth and ``grant_type=client_credentials`` answers
``{"access_token", "token_type": "bearer", "expires_in", "scope"}``. The token is kept in the
source's session until a minute before it expires; a 401 on a listing refreshes it once. Reddit
asks for a User-Agent like ``<platform>:<app ID>:<version> (by /u/<username>)``: set
``headers = {"User-Agent" = "..."}`` on the source to send one (it overrides the client's).

Paging and cursor: listings are newest first. A poll reads page after page (``after``) until a
page reaches a post not newer than the cursor, the listing ends, ``page_cap`` pages were read, or
the rate-limit budget (``x-ratelimit-remaining``) is used up. Reddit's ``before`` parameter is
not used: anchored on a post that was since deleted it returns nothing, forever. All posts of the
pages read are returned, also the older ones on the page that reached the cursor, so that edits
and posts the search index delivered late are picked up (the store deduplicates them). The cursor
is the newest ``created_utc`` seen, in whole seconds as a decimal string; a time more than a day
in the future is not trusted as cursor.

Failure modes: bad app credentials are "401: reddit app credentials rejected"; a private or
quarantined subreddit is a 403 naming it; a banned or unknown one a 404 (Reddit answers an
unknown name with a redirect to its subreddit search, recognised here); 429 carries the retry
delay (``Retry-After`` or ``x-ratelimit-reset``, read by the client). A malformed first page is
a ParseError; a malformed later page keeps the posts so far with a note, and unless it is the
source's first poll the stored cursor stays so that the next poll reads the gap again. More
than ``page_cap`` pages of new posts since the last poll leave the older ones unread (noted).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

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
    decode,
    get_json,
    url,
)
from listener.sources.client import Response, redact_url

__all__ = ["fetch", "identity"]

ROOT = "https://www.reddit.com"
OAUTH_ROOT = "https://oauth.reddit.com"
WEB = "https://www.reddit.com"
LIMIT = 100
_SESSION_KEY = "reddit_token"
_NAME = re.compile(r"[A-Za-z0-9_]{2,21}")
_FUTURE = timedelta(days=1)


def identity(source: SourceSettings) -> str:
    """The public listing URL (never the OAuth host, so that adding credentials keeps state)."""
    path, params = _listing(source, _subreddit_text(source))
    return url(base(source, ROOT), path, params)


def _subreddit_text(source: SourceSettings) -> str | None:
    if source.subreddit is None:
        return None
    return source.subreddit.strip().removeprefix("/").removeprefix("r/").strip("/")


def _checked_subreddit(source: SourceSettings) -> str | None:
    name = _subreddit_text(source)
    if name is not None and not all(_NAME.fullmatch(part) for part in name.split("+")):
        raise FetchError(
            f"reddit subreddit {source.subreddit!r} is not a name like 'python' "
            "(several: 'python+django'); fix the source's 'subreddit'"
        )
    return name


def _listing(source: SourceSettings, subreddit: str | None) -> tuple[str, dict[str, object]]:
    prefix = f"/r/{quote(subreddit, safe='+')}" if subreddit else ""
    if source.query:
        params: dict[str, object] = {"q": source.query, "sort": "new"}
        if subreddit:
            params["restrict_sr"] = 1
        return f"{prefix}/search.json", {**params, "limit": LIMIT, "raw_json": 1}
    return f"{prefix}/new.json", {"limit": LIMIT, "raw_json": 1}


def _has_app(source: SourceSettings) -> bool:
    return bool(source.client_id and source.client_secret)


async def fetch(ctx: ApiContext) -> Fetched:
    source = ctx.source
    subreddit = _checked_subreddit(source)
    app = _has_app(source)
    root = base(source, OAUTH_ROOT if app else ROOT)
    path, params = _listing(source, subreddit)
    since = _cursor_seconds(ctx.cursor)
    horizon = int((ctx.now + _FUTURE).timestamp())
    items: list[Item] = []
    newest: int | None = None
    pages = Pages(source.page_cap)
    after: str | None = None
    note: str | None = None
    complete = False  # read back to the cursor, or to the end of the listing
    failed = False
    while True:
        target = url(root, path, {**params, "after": after})
        try:
            document, response = await _get(ctx, target, app, subreddit)
            page, next_after = _page(document, response)
        except ParseError as exc:
            if pages.count == 0:
                raise
            note, failed = f"page {pages.count + 1}: {exc}", True
            break
        pages.fetched()
        for item, created in page:
            items.append(item)
            if created is not None and created <= horizon:
                newest = created if newest is None else max(newest, created)
        if since is not None and any(c is not None and c <= since for _, c in page):
            complete = True
            break
        if next_after is None or not page:
            complete = True
            break
        remaining = _remaining(response)
        if remaining is not None and remaining < 1:
            reset = response.headers.get("x-ratelimit-reset", "?").split(".")[0][:12]
            note = (
                f"reddit rate-limit budget used up after page {pages.count} "
                f"(resets in {reset}s); the rest is read next poll"
            )
            break
        if not pages.next(next_after):
            complete = True  # a gap is accepted: the next poll starts from the newest again
            note = (
                api.token_paging_note(pages, "reddit", "post", incremental=since is not None)
                or note
            )
            break
        after = next_after
    cursor: str | None
    if since is None or complete or failed:  # failed: the pipeline keeps the stored one (gap)
        best = newest if since is None else max(since, newest or since)
        cursor = str(best) if best is not None else None
    else:
        cursor = None  # keep the stored cursor: the next poll reads the gap again
    return Fetched(tuple(items), cursor, note, pages.count, gap=failed)


def _cursor_seconds(cursor: str | None) -> int | None:
    return as_int(cursor) if cursor else None


def _remaining(response: Response) -> float | None:
    value = response.headers.get("x-ratelimit-remaining")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def _get(
    ctx: ApiContext, target: str, app: bool, subreddit: str | None
) -> tuple[Any, Response]:
    """One listing page; with app credentials a bearer token, refreshed once on a 401."""
    for attempt in (1, 2):
        headers = {"Authorization": f"bearer {await _token(ctx)}"} if app else {}
        try:
            document, response = await get_json(ctx, target, "reddit listing", headers)
        except FetchError as exc:
            if app and exc.status == 401 and attempt == 1:
                ctx.session.pop(_SESSION_KEY, None)
                continue
            raise _explain(exc, app, subreddit, target) from None
        if urlsplit(response.url).path.startswith("/subreddits/search"):
            raise FetchError(
                f"404: subreddit r/{subreddit} does not exist (reddit redirected "
                f"{redact_url(target)} to its subreddit search)",
                status=404,
            )
        return document, response
    raise AssertionError("unreachable")  # pragma: no cover


def _explain(exc: FetchError, app: bool, subreddit: str | None, target: str) -> FetchError:
    """A person's sentence for the statuses reddit uses to say no."""
    where = redact_url(target)
    reason = api.error_text(exc.body, "reason", limit=60)
    because = f" ({reason})" if reason else ""
    if exc.status == 401 and app:
        message = f"401: reddit rejected a fresh access token for {where}"
    elif exc.status == 401:
        message = f"401: reddit wants authentication for {where}: set client_id and client_secret"
    elif exc.status == 403 and subreddit:
        message = f"403: reddit refused access to r/{subreddit}{because}: {where}"
    elif exc.status == 403:
        message = f"403: reddit refused the request{because}: {where}"
    elif exc.status == 404 and subreddit:
        message = f"404: subreddit r/{subreddit} not found on reddit{because}: {where}"
    else:
        return exc
    if exc.status == 403 and not app:
        message += "; unauthenticated requests are often refused: set client_id and client_secret"
    return FetchError(message, status=exc.status, retry_after=exc.retry_after, body=exc.body)


async def _token(ctx: ApiContext) -> str:
    """A cached application-only access token; a new one when missing or expiring."""
    source = ctx.source
    assert source.client_id is not None and source.client_secret is not None
    token_url = base(source, ROOT) + "/api/v1/access_token"  # www, not the OAuth host
    owner = (source.client_id, token_url)
    cached = ctx.session.get(_SESSION_KEY)
    if isinstance(cached, tuple) and cached[0] == owner and cached[2] > ctx.now:
        return str(cached[1])
    try:
        response = await ctx.client.post(
            token_url,
            form={"grant_type": "client_credentials"},
            headers=source.headers,
            auth=(source.client_id, source.client_secret),
        )
    except FetchError as exc:
        if exc.status in (400, 401, 403):
            raise FetchError(
                f"{exc.status}: reddit app credentials rejected ({redact_url(token_url)}); "
                "check client_id and client_secret",
                status=exc.status,
                body=exc.body,
            ) from None
        raise
    document = decode(response, "reddit access token")
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        error = document.get("error") if isinstance(document, dict) else None
        raise FetchError(
            f"401: reddit app credentials rejected ({as_text(error, limit=60) or 'no token'} "
            f"from {redact_url(token_url)}); check client_id and client_secret",
            status=401,
        )
    lifetime = as_int(document.get("expires_in")) or 3600
    expires = ctx.now + timedelta(seconds=max(0, min(lifetime, 86400 * 30) - 60))
    ctx.session[_SESSION_KEY] = (owner, token, expires)
    return token


def _page(document: Any, response: Response) -> tuple[list[tuple[Item, int | None]], str | None]:
    """The posts of one Listing with their creation second, and the ``after`` token."""
    children = _dig_children(document)
    if children is None:
        raise ParseError(f"reddit: not a Listing from {redact_url(response.url)}")
    posts = [c.get("data") for c in children if isinstance(c, dict) and c.get("kind") == "t3"]
    page = [parsed for parsed in (_item(p) for p in posts if isinstance(p, dict)) if parsed]
    if children and not page:
        raise ParseError(f"reddit: no readable post in a Listing from {redact_url(response.url)}")
    after = document["data"].get("after")
    return page, after if isinstance(after, str) and 0 < len(after) <= 100 else None


def _dig_children(document: Any) -> list[Any] | None:
    if not isinstance(document, dict) or document.get("kind") != "Listing":
        return None
    data = document.get("data")
    children = data.get("children") if isinstance(data, dict) else None
    return children if isinstance(children, list) else None


def _item(post: dict[str, Any]) -> tuple[Item, int | None] | None:
    name = post.get("name")
    if not isinstance(name, str) or not name.startswith("t3_") or len(name) > 40:
        return None
    permalink = post.get("permalink")
    link = (
        WEB + permalink
        if isinstance(permalink, str) and permalink.startswith("/")
        else f"{WEB}/comments/{quote(name.removeprefix('t3_'))}/"
    )
    text = as_text(post.get("selftext"))
    target = post.get("url")
    if (
        not text
        and not post.get("is_self")
        and isinstance(target, str)
        and target.startswith(("http://", "https://"))
        and target.rstrip("/") != link.rstrip("/")
    ):
        text = as_text(target, limit=2000)  # a link post: its target is all it says
    author = post.get("author")
    created = as_int(post.get("created_utc"))
    published: datetime | None = as_time(post.get("created_utc"))
    return (
        Item(
            guid=f"reddit:{name}",
            url=link,
            title=as_text(post.get("title"), limit=1000),
            text=text,
            author=author if isinstance(author, str) and author != "[deleted]" else None,
            published_at=published,
            reach=as_int(post.get("subreddit_subscribers")),
            points=as_int(post.get("score")),
            reposts=as_int(post.get("num_crossposts")),
            replies=as_int(post.get("num_comments")),
        ),
        created if published is not None else None,
    )
