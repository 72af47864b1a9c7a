"""Bluesky: posts matching ``query``, through the search of the Bluesky AppView.

Owns the app-password session and ``app.bsky.feed.searchPosts``. Unauthenticated search was
closed in 2025, so a source needs ``identifier`` (handle or e-mail) and ``app_password``.

Endpoints (``base_url``, default ``https://bsky.social``: the PDS proxies ``app.bsky.*`` calls
to the AppView), documented at https://docs.bsky.app/docs/api/ and in the lexicons of
github.com/bluesky-social/atproto:

- ``POST /xrpc/com.atproto.server.createSession`` with ``{identifier, password}`` ->
  ``{accessJwt, refreshJwt, did, handle, ...}`` (docs: com-atproto-server-create-session).
- ``POST /xrpc/com.atproto.server.refreshSession`` with ``Authorization: Bearer <refreshJwt>``
  -> new tokens (docs: com-atproto-server-refresh-session).
- ``GET /xrpc/app.bsky.feed.searchPosts?q=&sort=latest&limit=100[&since=][&cursor=]`` with
  ``Authorization: Bearer <accessJwt>`` -> ``{cursor?, hitsTotal?, posts: [postView]}``; a
  postView is ``{uri, cid, author: {did, handle, displayName}, record: {text, createdAt,
  langs}, indexedAt, likeCount, repostCount, replyCount, quoteCount}`` (docs:
  app-bsky-feed-search-posts; lexicon app/bsky/feed/defs.json#postView).

Rules:
- The session lives in ``ctx.session`` between polls (createSession is rate limited hard). An
  expired access token (400 ``ExpiredToken``/``InvalidToken``, or 401) is refreshed and the
  request retried once; a failed refresh logs in again once. A rejected login is
  ``FetchError("401: app password rejected by bluesky (createSession)")``. Tokens and the
  password never appear in a message.
- Cursor: the newest ``sortAt`` seen, ISO-8601 UTC with milliseconds. ``sortAt`` is the
  earlier of ``record.createdAt`` and ``indexedAt``: what the documented ``since`` parameter
  (inclusive) filters on. The next poll sends it as ``since`` and pages (``cursor``, newest
  first) until a post is older than it, the page cap or a repeated cursor. Posts that tie with
  the cursor come back and are kept (storage dedups them). A post the search index receives
  later than a newer one was polled is missed: the API has no "indexed since" filter.
- Item: guid ``bsky:<at:// uri>``, url ``https://bsky.app/profile/<handle>/post/<rkey>`` (the
  DID when the handle is ``handle.invalid``), author the handle, no title (posts have none),
  text ``record.text`` and, a line each, what the post embeds: a link card's title and
  description, image and video alt texts and a quoted post's text (so a brand named only in
  the card or the quote is found), language ``record.langs[0]``, likes ``likeCount``, reposts
  ``repostCount + quoteCount`` (quotes amplify like reposts), replies ``replyCount``. Reach
  stays None: searchPosts carries no follower counts (a profile lookup per author would cost a
  request each).
- Rate limits: a 429 becomes ``FetchError.retry_after`` (Retry-After, else ``ratelimit-reset``);
  when ``ratelimit-remaining`` reaches 0, paging stops and ``Fetched.note`` says so.

Failure modes: login rejected (401), account taken down or needing an e-mail code (400), the
session unusable even after logging in again (401), a refused query (400 ``BadQueryString``),
a first page that is not ``{"posts": [...]}`` (ParseError); a broken later page keeps the
earlier pages' posts and sets ``note``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError, SourceError
from listener.models import Item
from listener.sources import api
from listener.sources.client import Response, redact_url

DEFAULT_BASE = "https://bsky.social"
SEARCH = "/xrpc/app.bsky.feed.searchPosts"
LOGIN = "/xrpc/com.atproto.server.createSession"
REFRESH = "/xrpc/com.atproto.server.refreshSession"
PAGE_SIZE = 100  # the documented maximum of ``limit``
_TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def identity(source: SourceSettings) -> str:
    return api.url(api.base(source, DEFAULT_BASE), SEARCH, {"q": source.query})


async def fetch(ctx: api.ApiContext) -> api.Fetched:
    root = api.base(ctx.source, DEFAULT_BASE)
    since = api.as_time(ctx.cursor) if ctx.cursor else None
    params = {
        "q": ctx.source.query,
        "sort": "latest",
        "limit": PAGE_SIZE,
        "since": _iso(since) if since else None,
    }
    pages = api.Pages(ctx.source.page_cap)
    items: list[Item] = []
    newest = since
    notes: list[str] = []
    failed = False  # a later page failed: the pipeline keeps the stored cursor (gap)
    page_cursor: str | None = None
    pages.first()
    while True:
        number = pages.count
        target = api.url(root, SEARCH, {**params, "cursor": page_cursor})
        try:
            document, response = await _search(ctx, root, target)
            posts = _posts(document, response)
        except SourceError as exc:
            if number == 1 or not _keeps_earlier_pages(exc):
                raise
            notes.append(f"page {number}: {exc}")
            failed = True
            break
        reached_old = False
        for post in posts:
            parsed = _item(post)
            if parsed is None:
                continue
            item, sort_at = parsed
            if since is not None and sort_at is not None and sort_at < since:
                reached_old = True
                continue
            items.append(item)
            if sort_at is not None and (newest is None or sort_at > newest):
                newest = sort_at
        next_cursor = document.get("cursor")
        next_cursor = next_cursor if isinstance(next_cursor, str) and next_cursor else None
        if reached_old or not posts or next_cursor is None:
            break
        if _budget_spent(response):
            notes.append(_budget_note(response, number, since is not None))
            break
        if not pages.next(next_cursor):
            if pages.count >= pages.cap:
                if since is not None:  # history on a first poll; a gap on later ones
                    notes.append(
                        f"page_cap ({pages.cap}) reached before the posts of the last poll: "
                        "posts in between may be missing; raise page_cap or poll more often"
                    )
            else:
                notes.append(f"page {number}: the server repeated a cursor; paging stopped")
            break
        pages.fetched()
        page_cursor = next_cursor
    return api.Fetched(
        tuple(items),
        _iso(newest) if newest is not None else None,
        note="; ".join(notes) or None,
        pages=pages.count,
        gap=failed,
    )


# -- session ----------------------------------------------------------------------------------


async def _search(ctx: api.ApiContext, root: str, target: str) -> tuple[Any, Response]:
    """One search request with a valid session: refresh (or log in again) once when the access
    token is expired or rejected."""
    renewed = False
    while True:
        token = await _access_token(ctx, root)
        try:
            return await api.get_json(
                ctx, target, "bluesky searchPosts", headers={"Authorization": f"Bearer {token}"}
            )
        except FetchError as exc:
            error, message = _xrpc_error(exc)
            if not _is_token_problem(exc, error):
                if exc.status in (400, 403) and error:
                    raise FetchError(
                        f"{exc.status}: bluesky refused the search "
                        f"({_short(error)}: {_short(message)})",
                        status=exc.status,
                        body=exc.body,
                    ) from exc
                raise
            if renewed:
                raise FetchError(
                    "401: bluesky rejected the session for searchPosts even after logging in "
                    "again (check that the app password is still valid and the account active)",
                    status=401,
                    body=exc.body,
                ) from exc
            await _renew(ctx, root)
            renewed = True


async def _access_token(ctx: api.ApiContext, root: str) -> str:
    session = ctx.session
    if session.get("for") != _owner(ctx.source, root) or not session.get("access"):
        await _login(ctx, root)
    return str(session["access"])


def _owner(source: SourceSettings, root: str) -> str:
    """Which account and server a stored session belongs to (a reload may change them)."""
    return f"{root} {source.identifier}"


async def _login(ctx: api.ApiContext, root: str) -> None:
    ctx.session.clear()
    body = {"identifier": ctx.source.identifier, "password": ctx.source.app_password}
    try:
        response = await ctx.client.post(
            api.url(root, LOGIN), json=body, headers=ctx.source.headers
        )
    except FetchError as exc:
        error, _message = _xrpc_error(exc)
        if exc.status == 401:
            raise FetchError(
                "401: app password rejected by bluesky (createSession): check the source's "
                "'identifier' and 'app_password'",
                status=401,
                body=exc.body,
            ) from exc
        if error == "AccountTakedown":
            raise FetchError(
                "400: the bluesky account is taken down or suspended (createSession)",
                status=exc.status,
                body=exc.body,
            ) from exc
        if error == "AuthFactorTokenRequired":
            raise FetchError(
                "401: bluesky asks for an e-mail sign-in code (createSession): use an app "
                "password (Settings > App passwords), which needs none",
                status=exc.status,
                body=exc.body,
            ) from exc
        raise
    _keep(ctx, root, response, "createSession")


async def _renew(ctx: api.ApiContext, root: str) -> None:
    """New tokens through refreshSession; when that is refused, log in again."""
    refresh = ctx.session.get("refresh")
    if refresh:
        try:
            response = await ctx.client.post(
                api.url(root, REFRESH),
                headers={**ctx.source.headers, "Authorization": f"Bearer {refresh}"},
            )
        except FetchError as exc:
            if exc.status not in (400, 401):
                raise
        else:
            try:
                _keep(ctx, root, response, "refreshSession")
                return
            except ParseError:
                pass
    await _login(ctx, root)


def _keep(ctx: api.ApiContext, root: str, response: Response, what: str) -> None:
    document = api.decode(response, f"bluesky {what}")
    access = document.get("accessJwt") if isinstance(document, dict) else None
    refresh = document.get("refreshJwt") if isinstance(document, dict) else None
    if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
        raise ParseError(
            f"bluesky {what}: no accessJwt/refreshJwt in the answer from {redact_url(response.url)}"
        )
    ctx.session.clear()
    ctx.session.update({"for": _owner(ctx.source, root), "access": access, "refresh": refresh})


def _xrpc_error(exc: FetchError) -> tuple[str, str]:
    """``error`` and ``message`` of an XRPC error answer (empty when it has none)."""
    document = api.error_document(exc.body) or {}
    error, message = document.get("error"), document.get("message")
    return (error if isinstance(error, str) else ""), (message if isinstance(message, str) else "")


def _is_token_problem(exc: FetchError, error: str) -> bool:
    return exc.status == 401 or (exc.status == 400 and error in _TOKEN_ERRORS)


def _keeps_earlier_pages(exc: SourceError) -> bool:
    """A broken later page keeps the earlier ones; auth trouble and rate limits stay loud."""
    return not (isinstance(exc, FetchError) and exc.status in (401, 403, 429, 503))


# -- rate limit -------------------------------------------------------------------------------


def _budget_spent(response: Response) -> bool:
    remaining = api.as_int(response.headers.get("ratelimit-remaining"))
    return remaining is not None and remaining <= 0


def _budget_note(response: Response, number: int, incremental: bool) -> str:
    reset = api.as_int(response.headers.get("ratelimit-reset"))
    when = api.as_time(reset) if reset is not None and reset > 10**9 else None
    until = f" until {when:%H:%M} UTC" if when else ""
    gap = "; posts in between may be missing" if incremental else ""
    return f"page {number}: bluesky rate limit used up (ratelimit-remaining 0){until}{gap}"


# -- parsing ----------------------------------------------------------------------------------


def _posts(document: Any, response: Response) -> list[Any]:
    posts = document.get("posts") if isinstance(document, dict) else None
    if not isinstance(posts, list):
        raise ParseError(
            f"bluesky searchPosts: no 'posts' list in the answer from {redact_url(response.url)}"
        )
    return posts


def _item(post: Any) -> tuple[Item, datetime | None] | None:
    """An Item and its ``sortAt`` time; None for anything that is not a readable post."""
    if not isinstance(post, dict):
        return None
    uri = post.get("uri")
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or not all(parts):
        return None
    repo, _collection, rkey = parts
    author, record = post.get("author"), post.get("record")
    author = author if isinstance(author, dict) else {}
    record = record if isinstance(record, dict) else {}
    handle = author.get("handle")
    handle = handle if isinstance(handle, str) and handle != "handle.invalid" else None
    profile = handle or repo
    created, indexed = api.as_time(record.get("createdAt")), api.as_time(post.get("indexedAt"))
    times = [t for t in (created, indexed) if t is not None]
    langs = record.get("langs")
    language = langs[0] if isinstance(langs, list) and langs else None
    reposts, quotes = api.as_int(post.get("repostCount")), api.as_int(post.get("quoteCount"))
    item = Item(
        guid=f"bsky:{uri}",
        url=f"https://bsky.app/profile/{quote(profile, safe=':')}/post/{quote(rkey, safe='')}",
        title="",
        text=_post_text(post, record),
        author=_text(handle or author.get("did") or repo, limit=300) or None,
        published_at=created or indexed,
        language=language if isinstance(language, str) and 0 < len(language) <= 35 else None,
        likes=api.as_int(post.get("likeCount")),
        reposts=None if reposts is None else api.as_int(reposts + (quotes or 0)),
        replies=api.as_int(post.get("replyCount")),
    )
    return item, min(times) if times else None


def _post_text(post: dict[str, Any], record: dict[str, Any]) -> str:
    """The post's text, then one line each for what it embeds: a link card's title and
    description, image and video alt texts, a quoted post's text (the view in ``post.embed``
    has it; the record's own ``embed`` only for cards and images)."""
    lines = [_text(record.get("text"))]
    for embed in (post.get("embed"), record.get("embed")):
        _embed_lines(embed, lines, depth=0)
    return "\n".join(dict.fromkeys(line for line in lines if line))  # once each, in order


def _embed_lines(embed: Any, lines: list[str], *, depth: int) -> None:
    """Append the words of an embed (or embed view) to ``lines``; quotes nest once."""
    if not isinstance(embed, dict) or depth > 2:
        return
    external = embed.get("external")
    if isinstance(external, dict):
        lines.extend(_text(external.get(key), limit=5000) for key in ("title", "description"))
    images = embed.get("images")
    if isinstance(images, list):
        lines.extend(
            _text(image.get("alt"), limit=5000) for image in images[:10] if isinstance(image, dict)
        )
    lines.append(_text(embed.get("alt"), limit=5000))  # a video
    quoted = embed.get("record")
    if isinstance(quoted, dict):
        value = quoted.get("value")
        if isinstance(value, dict):  # app.bsky.embed.record#viewRecord: the quoted post
            lines.append(_text(value.get("text")))
        else:  # recordWithMedia: {record: {record: viewRecord}, media}
            _embed_lines(quoted, lines, depth=depth + 1)
    _embed_lines(embed.get("media"), lines, depth=depth + 1)


def _text(value: Any, *, limit: int = 100_000) -> str:
    """Plain text from the web: strings only, one line, no control characters, valid UTF-8."""
    if not isinstance(value, str):
        return ""
    text = _CONTROL.sub("", api.as_text(value, limit=limit))
    return text.encode("utf-8", "replace").decode("utf-8")


def _short(text: str) -> str:
    return _text(text, limit=200)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
