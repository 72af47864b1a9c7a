"""Lemmy posts and comments that match a query, through one instance's search API (v3).

Owns one endpoint of the Lemmy HTTP API v3 (Lemmy 0.19; documented at https://join-lemmy.org/api/
and by the types of lemmy-js-client 0.19: ``SearchResponse``, ``PostView``, ``CommentView``):

    GET {root}/api/v3/search?q=Q&type_=All&sort=New&limit=50&page=P

``root`` is ``base_url``, else the ``instance`` ("lemmy.world" or "https://lemmy.world"). The
answer is ``{"type_": "All", "posts": [PostView], "comments": [CommentView], "communities": [],
"users": []}``, each list newest first. A PostView has ``post`` {id, name, body (Markdown), url
(the linked page), ap_id (the post's own URL), published, updated}, ``creator`` {name, actor_id}
and ``counts`` {score, upvotes, comments}; a CommentView ``comment`` {id, content, ap_id,
published, updated}, ``creator`` and ``counts`` {score, upvotes, child_count}. Lemmy 1.x names
some fields ``published_at`` / ``ap_id``; those are read as well.

Items: guid ``lemmy:<ap_id>`` and url the ap_id, the same on every instance that federates it;
author ``name@host`` of the creator; points ``score``, likes ``upvotes``, replies the comment or
child count. Lemmy gives no author reach.

Cursor: the newest ``published`` time seen, ISO 8601 in UTC. The search has no "since" filter:
pages are read until every list reaches an item at or before the cursor, runs short, or
``page_cap`` pages were read; older items are dropped unless ``updated`` after the cursor (an
edit, which updates the stored mention). The first poll reads ``page_cap`` pages of history.

Failure modes:
- 404 on /api/v3/search: not a Lemmy instance, or one that no longer serves API v3 (Lemmy 1.x
  answers on /api/v4/search): a FetchError naming the path.
- ``token`` (a JWT of an account) is sent as a Bearer token for private instances; an instance
  that refuses it, or asks for a login, is a FetchError saying so (the token is never shown).
- Rate limits: HTTP 429 keeps its Retry-After; Lemmy 0.19 answers ``{"error":
  "rate_limit_error"}`` with 400, reported as "429: rate limited" so the pipeline backs off.
- A first page that is not a Lemmy search answer is a ParseError; a later page that fails keeps
  the items so far, says so in ``note`` and keeps the stored cursor (lists come newest first, so
  only the stored cursor leaves no gap).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError
from listener.models import Item
from listener.sources import api

PATH = "/api/v3/search"
PAGE_SIZE = 50  # the most Lemmy returns per list
_LISTS = ("posts", "comments")
# C0 controls and DEL that str.split() leaves (Markdown is not HTML: html_to_text would eat
# "List<String>", so the text is cleaned here)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_AUTH_ERRORS = frozenset(
    {"not_logged_in", "incorrect_login", "instance_is_private", "not_authorized", "banned"}
)


def identity(source: SourceSettings) -> str:
    root = _root(source) or f"https://{(source.instance or '').strip()}"
    return api.url(root, PATH, {"q": source.query, "type_": "All", "sort": "New"})


async def fetch(ctx: api.ApiContext) -> api.Fetched:
    source = ctx.source
    root = _root(source)
    if root is None:
        raise FetchError(
            f"lemmy instance {source.instance!r} is not a host like 'lemmy.world' or a URL "
            "like 'https://lemmy.world'"
        )
    since = api.as_time(ctx.cursor) if ctx.cursor else None
    headers = {"Authorization": f"Bearer {source.token}"} if source.token else {}
    pages = api.Pages(source.page_cap)
    items: list[Item] = []
    newest = since
    page, note, failed, more = 1, None, False, False
    while pages.next(str(page)):
        target = api.url(
            root,
            PATH,
            {"q": source.query, "type_": "All", "sort": "New", "limit": PAGE_SIZE, "page": page},
        )
        try:
            lists = await _page(ctx, target, page, headers)
        except (ParseError, FetchError) as exc:
            if pages.count == 0:
                raise
            note, failed = f"page {page}: {api.one_line(exc)}", True
            break
        pages.fetched()
        more = False
        for kind, views in lists.items():
            oldest: datetime | None = None
            for view in views:
                item, published, updated = _item(kind, view)
                if published is not None:
                    oldest = published if oldest is None else min(oldest, published)
                    if newest is None or published > newest:
                        newest = published
                fresh = since is None or (published is not None and published > since)
                edited = since is not None and updated is not None and updated > since
                if item is not None and (fresh or edited):
                    items.append(item)
            full = len(views) >= PAGE_SIZE
            more = more or (full and (since is None or oldest is None or oldest > since))
        if not more:
            break
        page += 1
    if not failed and more and since is not None:
        note = api.more_left_note(source.page_cap, "posts or comments")
    # newest first: after a failed page only the stored cursor leaves no gap (gap)
    cursor = None if newest is None else newest.isoformat().replace("+00:00", "Z")
    return api.Fetched(tuple(items), cursor, note=note, pages=pages.count, gap=failed)


def _root(source: SourceSettings) -> str | None:
    """The instance's root URL, or None when ``instance`` is not a host or a root URL."""
    if source.base_url:
        return api.base(source, "")
    given = (source.instance or "").strip()
    parts = urlsplit(given if "://" in given else f"https://{given}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


async def _page(
    ctx: api.ApiContext, target: str, page: int, headers: dict[str, str]
) -> dict[str, list[Any]]:
    """The posts and comments lists of one search page."""
    what = f"lemmy search page {page}"
    try:
        document, _ = await api.get_json(ctx, target, what, headers)
    except FetchError as exc:
        raise _explain(exc, target, ctx.source) from exc
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        raise _refusal(
            FetchError(f"HTTP 200 from {_host(target)}", status=400),
            target,
            ctx.source,
            api.as_text(document["error"], html=True, limit=100),
        )
    if not isinstance(document, dict) or not any(
        isinstance(document.get(key), list) for key in _LISTS
    ):
        raise ParseError(f"{what}: not a Lemmy v3 search answer (no 'posts' or 'comments' list)")
    return {key: document[key] if isinstance(document.get(key), list) else [] for key in _LISTS}


def _item(kind: str, view: Any) -> tuple[Item | None, datetime | None, datetime | None]:
    """The item of a PostView or CommentView, its published and its updated time."""
    if not isinstance(view, dict):
        return None, None, None
    inner = view.get("post" if kind == "posts" else "comment")
    if not isinstance(inner, dict):
        return None, None, None
    published = api.as_time(inner.get("published") or inner.get("published_at"))
    updated = api.as_time(inner.get("updated") or inner.get("updated_at"))
    ap_id = inner.get("ap_id")
    if not isinstance(ap_id, str) or not ap_id.startswith(("https://", "http://")):
        return None, published, updated
    counts = view.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    if kind == "posts":
        title = _plain(inner.get("name"))
        text = _plain(inner.get("body"))
        replies = api.as_int(counts.get("comments"))
    else:
        title, text = "", _plain(inner.get("content"))
        replies = api.as_int(counts.get("child_count"))
    item = Item(
        guid=f"lemmy:{ap_id}",
        url=ap_id,
        title=title,
        text=text,
        author=_author(view.get("creator")),
        published_at=published,
        points=api.as_int(counts.get("score")),
        likes=api.as_int(counts.get("upvotes")),
        replies=replies,
    )
    return item, published, updated


def _author(creator: Any) -> str | None:
    if not isinstance(creator, dict):
        return None
    name = _plain(creator.get("name"))
    actor = creator.get("actor_id") or creator.get("ap_id")
    host = urlsplit(actor).hostname if isinstance(actor, str) else None
    if name and host:
        return f"{name}@{host}"
    return name or None


def _plain(value: Any) -> str:
    """Markdown or a name as one line of text without control characters."""
    return _CONTROL.sub("", api.as_text(value))


def _host(target: str) -> str:
    return urlsplit(target).netloc or target


def _explain(exc: FetchError, target: str, source: SourceSettings) -> FetchError:
    """A FetchError a person understands, from the status and Lemmy's ``{"error": ...}``."""
    host = _host(target)
    if exc.status == 404:
        return FetchError(
            f"404: {host} has no {PATH} (not a Lemmy instance, or one without API v3: "
            "Lemmy 1.x serves /api/v4/search, which this source does not read yet); check "
            "'instance'",
            status=404,
            body=exc.body,
        )
    error = api.error_text(exc.body, "error", html=True, limit=100)
    if error:
        return _refusal(exc, target, source, error)
    if exc.status in (401, 403):
        return _auth(exc, host, source, "")
    return exc


def _refusal(exc: FetchError, target: str, source: SourceSettings, error: str) -> FetchError:
    host = _host(target)
    if error == "rate_limit_error":
        return FetchError(
            f"429: rate limited by lemmy instance {host} (rate_limit_error)",
            status=429,
            retry_after=exc.retry_after,
            body=exc.body,
        )
    if error in _AUTH_ERRORS or exc.status in (401, 403):
        return _auth(exc, host, source, error)
    return FetchError(
        f"{exc.status or 400}: lemmy instance {host} refused the search ({error})",
        status=exc.status,
        retry_after=exc.retry_after,
        body=exc.body,
    )


def _auth(exc: FetchError, host: str, source: SourceSettings, error: str) -> FetchError:
    reason = f" ({error})" if error else ""
    if source.token:
        message = f"401: token rejected by lemmy instance {host}{reason}; renew 'token'"
    else:
        message = (
            f"401: lemmy instance {host} requires a login to search{reason}; set 'token' "
            "(a JWT of an account on the instance) or use a public instance"
        )
    return FetchError(message, status=401, body=exc.body)
