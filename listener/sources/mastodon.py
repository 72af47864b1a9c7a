"""Mastodon: a hashtag timeline, or a status search, through an instance's REST API.

Owns the ``mastodon`` kind. Endpoints, documented at
https://docs.joinmastodon.org/methods/timelines/#tag and
https://docs.joinmastodon.org/methods/search/#v2:

- ``GET {instance}/api/v1/timelines/tag/HASHTAG?limit=40[&min_id=ID|&max_id=ID]``: public
  statuses with the hashtag, no authentication (unless the instance disabled public preview);
- ``GET {instance}/api/v2/search?q=Q&type=statuses&limit=40&resolve=false[&min_id=ID]
  [&max_id=ID]`` with ``Authorization: Bearer TOKEN`` when ``query`` is set (it wins over
  ``hashtag``). Only instances with full-text search (Elasticsearch/OpenSearch) find statuses,
  and only those of accounts that opted in to being searchable.

Both answer Status entities (https://docs.joinmastodon.org/entities/Status/): ``id`` (a string,
compared by length then text: Mastodon's snowflakes, Pleroma's flake ids and ULIDs all sort that
way), ``created_at``, ``content`` (HTML), ``spoiler_text``, ``url``/``uri``, ``language``,
``account{acct, url, followers_count}``, ``favourites_count``, ``reblogs_count``,
``replies_count``, ``edited_at``, and ``reblog`` (a boost: its status is used). ``instance`` is a
host ("mastodon.social") or URL; ``base_url`` overrides it. With a ``token`` it is sent on the
timeline too.

Paging and cursor (the cursor is the newest status id seen):

- Hashtag timeline, later polls: ``min_id=CURSOR`` returns the page just after the cursor
  (oldest first), and the poll walks forward through the ``Link`` header's ``rel="prev"``
  (``min_id`` = the newest id of the page) until a page is not full, ``page_cap`` pages were
  read or the rate-limit budget is used up. Walking forward leaves no gap: whatever a capped
  poll did not reach, the next one reads.
- Hashtag timeline, first poll: the newest page, then back in time through ``rel="next"``
  (``max_id``) for ``page_cap`` pages of history.
- Search: Mastodon turns ``min_id`` into "created after" and sorts newest first, so a poll reads
  the newest statuses and walks back (``max_id`` = the oldest id of the page) to the cursor. If a
  later page fails or the budget runs out, the stored cursor stays and the next poll reads the
  gap again (statuses already stored are deduplicated, edited ones updated); more than
  ``page_cap`` pages since the last poll leave the older ones unread (noted).

An id that, read as a Mastodon snowflake, lies more than a day in the future is not trusted as
cursor. Remote statuses that federate late can carry ids older than the cursor and are missed
(an inherent limit of Mastodon's id paging).

Failure modes: a rejected token is "401: mastodon access token rejected by HOST"; an instance that
wants a token for its hashtag timelines says so; a token without the scope is a 403 naming it; an
unknown hashtag (404 "Record not found") is an empty result; 429 carries ``Retry-After`` when
sent (Mastodon's ``X-RateLimit-Reset`` is a date the client does not read; the pipeline backs
off). ``X-RateLimit-Remaining`` below 1 stops paging with a note. A malformed first page is a
ParseError, a malformed later page keeps the statuses so far with a note.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

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

LIMIT = 40
_HASHTAG = re.compile(r"\w+")
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([a-z]+)"?')
_FUTURE = timedelta(days=1)
_MAX_ID_LENGTH = 40


def identity(source: SourceSettings) -> str:
    """The timeline or search URL without paging parameters and without the token."""
    root = _root(source, strict=False)
    if source.query:
        return url(root, "/api/v2/search", {"q": source.query, "type": "statuses"})
    return root + f"/api/v1/timelines/tag/{quote(_tag(source))}"


def _root(source: SourceSettings, *, strict: bool = True) -> str:
    if source.base_url:
        return base(source, "")
    given = (source.instance or "").strip()
    parts = urlsplit(given if "://" in given else f"https://{given}")
    valid = (
        parts.scheme in ("http", "https")
        and parts.hostname
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username or parts.password)
    )
    if strict and not valid:
        raise FetchError(
            f"mastodon instance {source.instance!r} is not a host like 'mastodon.social'; "
            "fix the source's 'instance'"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _tag(source: SourceSettings) -> str:
    return (source.hashtag or "").strip().removeprefix("#")


async def fetch(ctx: ApiContext) -> Fetched:
    source = ctx.source
    root = _root(source)
    if source.query:
        return await _search(ctx, root)
    tag = _tag(source)
    if not _HASHTAG.fullmatch(tag):
        raise FetchError(
            f"mastodon hashtag {source.hashtag!r} is not a tag like '#python'; "
            "fix the source's 'hashtag'"
        )
    return await _timeline(ctx, root, tag)


class _Walk:
    """What one poll collected: items, the newest trusted id, and the paging guard."""

    def __init__(self, ctx: ApiContext) -> None:
        self.items: list[Item] = []
        self.newest: str | None = None
        self.pages = Pages(ctx.source.page_cap)
        self.note: str | None = None
        self.failed = False  # a later page failed
        self._horizon_ms = int((ctx.now + _FUTURE).timestamp() * 1000)

    def add(self, page: list[tuple[Item, str]]) -> None:
        self.pages.fetched()
        for item, ident in page:
            self.items.append(item)
            if self._trusted(ident) and (self.newest is None or _key(ident) > _key(self.newest)):
                self.newest = ident

    def broke(self, exc: ParseError) -> None:
        """A later page failed: the items so far are kept, with a note."""
        self.note = f"page {self.pages.count + 1}: {exc}"
        self.failed = True

    def _trusted(self, ident: str) -> bool:
        return not ident.isdigit() or int(ident) >> 16 <= self._horizon_ms

    def budget_used_up(self, response: Response) -> bool:
        remaining = as_int(response.headers.get("x-ratelimit-remaining"))
        if remaining is None or remaining >= 1:
            return False
        reset = response.headers.get("x-ratelimit-reset", "?")[:40]
        self.note = (
            f"mastodon rate-limit budget used up after page {self.pages.count} "
            f"(resets {reset}); the rest is read next poll"
        )
        return True


async def _timeline(ctx: ApiContext, root: str, tag: str) -> Fetched:
    since = ctx.cursor
    forward = since is not None
    target = root + f"/api/v1/timelines/tag/{quote(tag)}"
    walk = _Walk(ctx)
    params: dict[str, object] = {"limit": LIMIT, "min_id": since}
    while True:
        try:
            document, response = await _get(ctx, url(target, "", params), "hashtag timeline")
            page, ids, full = _timeline_page(document, response)
        except _UnknownTagError:
            return Fetched((), None, None, walk.pages.count + 1)
        except ParseError as exc:
            if walk.pages.count == 0:
                raise
            walk.broke(exc)
            break
        walk.add(page)
        if not full or walk.budget_used_up(response):
            break
        links = _links(response.headers.get("link"))
        if forward:
            step = links.get("prev", {}).get("min_id") or max(ids, key=_key)
            params = {"limit": LIMIT, "min_id": step}
        else:
            step = links.get("next", {}).get("max_id") or min(ids, key=_key)
            params = {"limit": LIMIT, "max_id": step}
        if not walk.pages.next(step):
            break
    # walking forward, the newest id read is complete up to itself (a failed page is read
    # again from there); the first poll's newest is on its first page, and a failed page of
    # its history is a gap
    gap = walk.failed and not forward
    return Fetched(tuple(walk.items), walk.newest, walk.note, walk.pages.count, gap=gap)


async def _search(ctx: ApiContext, root: str) -> Fetched:
    since = ctx.cursor
    query: dict[str, object] = {
        "q": ctx.source.query,
        "type": "statuses",
        "limit": LIMIT,
        "resolve": "false",
        "min_id": since,
    }
    walk = _Walk(ctx)
    params = query
    complete = False
    while True:
        try:
            document, response = await _get(ctx, url(root, "/api/v2/search", params), "search")
            page, ids, full = _search_page(document, response)
        except ParseError as exc:
            if walk.pages.count == 0:
                raise
            walk.broke(exc)
            break
        walk.add(page)
        if not full or (since is not None and any(_key(i) <= _key(since) for i in ids)):
            complete = True
            break
        if walk.budget_used_up(response):
            break
        oldest = min(ids, key=_key)
        if not walk.pages.next(oldest):
            complete = True  # a gap is accepted: the next poll starts from the newest again
            if since is not None and walk.pages.count >= walk.pages.cap:
                walk.note = api.newest_not_reached_note(walk.pages.cap, "status")
            break
        params = {**query, "max_id": oldest}
    if since is not None and not complete and not walk.failed:
        return Fetched(tuple(walk.items), None, walk.note, walk.pages.count)
    newest = walk.newest
    if since is not None and (newest is None or _key(since) > _key(newest)):
        newest = since
    return Fetched(tuple(walk.items), newest, walk.note, walk.pages.count, gap=walk.failed)


class _UnknownTagError(Exception):
    """The instance has never seen the hashtag."""


async def _get(ctx: ApiContext, target: str, what: str) -> tuple[Any, Response]:
    source = ctx.source
    headers = {"Authorization": f"Bearer {source.token}"} if source.token else {}
    try:
        return await get_json(ctx, target, f"mastodon {what}", headers)
    except FetchError as exc:
        host = urlsplit(target).netloc
        error = api.error_text(exc.body, "error", limit=120)
        if exc.status == 404 and error == "Record not found" and not source.query:
            raise _UnknownTagError from None
        if exc.status == 401 and source.token:
            message = f"401: mastodon access token rejected by {host}"
        elif exc.status == 401:
            message = (
                f"401: {host} requires an access token for hashtag timelines "
                f"({error or 'no detail'}); set the source's 'token'"
            )
        elif exc.status == 403 and source.token:
            scope = "read:search" if source.query else "read:statuses"
            message = f"403: mastodon access token refused by {host} ({error}); it needs {scope}"
        else:
            raise
        raise FetchError(message, status=exc.status, body=exc.body) from None


def _links(header: str | None) -> dict[str, dict[str, str]]:
    """rel -> the query parameters of its URL, from a Link header."""
    found: dict[str, dict[str, str]] = {}
    for target, rel in _LINK.findall(header or ""):
        params = parse_qs(urlsplit(target).query)
        found[rel] = {k: v[0] for k, v in params.items() if v and len(v[0]) <= _MAX_ID_LENGTH}
    return found


def _key(ident: str) -> tuple[int, str]:
    """Sort key of status ids: numbers by value, fixed-length flake ids and ULIDs by text."""
    return len(ident), ident


Page = tuple[list[tuple[Item, str]], list[str], bool]


def _timeline_page(document: Any, response: Response) -> Page:
    if not isinstance(document, list):
        raise ParseError(
            f"mastodon: expected a list of statuses from {redact_url(response.url)}, "
            f"got {type(document).__name__}"
        )
    return _statuses(document, response)


def _search_page(document: Any, response: Response) -> Page:
    statuses = document.get("statuses") if isinstance(document, dict) else None
    if not isinstance(statuses, list):
        raise ParseError(
            f"mastodon: no 'statuses' list in the search from {redact_url(response.url)}"
        )
    return _statuses(statuses, response)


def _statuses(entries: list[Any], response: Response) -> Page:
    """Items with the id of their timeline entry, those ids (for paging), and whether the page
    was full (more may follow)."""
    page = [parsed for parsed in (_status(e) for e in entries) if parsed is not None]
    if entries and not page:
        raise ParseError(f"mastodon: no readable status from {redact_url(response.url)}")
    return page, [ident for _, ident in page], len(entries) >= LIMIT


def _ident(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH and value.isalnum():
        return value
    return None


def _status(entry: Any) -> tuple[Item, str] | None:
    if not isinstance(entry, dict):
        return None
    ident = _ident(entry.get("id"))
    reblog = entry.get("reblog")
    status = reblog if isinstance(reblog, dict) else entry
    if ident is None or _ident(status.get("id")) is None:
        return None
    uri, link = _web(status.get("uri")), _web(status.get("url"))
    content = as_text(status.get("content"), html=True)
    spoiler = as_text(status.get("spoiler_text"), limit=1000)
    account = status.get("account")
    if not isinstance(account, dict):
        account = {}
    language = status.get("language")
    return (
        Item(
            guid=f"mastodon:{uri or link or status['id']}",
            url=link or uri,
            title="",
            text=f"{spoiler}\n{content}" if spoiler else content,
            author=_acct(account),
            published_at=as_time(status.get("created_at")),
            language=language if isinstance(language, str) and len(language) <= 10 else None,
            reach=as_int(account.get("followers_count")),
            likes=as_int(status.get("favourites_count")),
            reposts=as_int(status.get("reblogs_count")),
            replies=as_int(status.get("replies_count")),
        ),
        ident,
    )


def _web(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2000:
        return value
    return None


def _acct(account: dict[str, Any]) -> str | None:
    """``user@host`` for every author (local accounts' ``acct`` lacks the host)."""
    acct = account.get("acct")
    if not isinstance(acct, str) or not acct.strip():
        return None
    acct = as_text(acct, limit=200).removeprefix("@")
    profile = account.get("url")
    host = urlsplit(profile).hostname if isinstance(profile, str) else None
    return f"{acct}@{host}" if "@" not in acct and host else acct
