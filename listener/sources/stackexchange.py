"""Stack Exchange questions that match a query on one site, through the Stack Exchange API 2.3.

Owns one method, documented at https://api.stackexchange.com/docs/advanced-search (answer
format: https://api.stackexchange.com/docs/wrapper and /docs/types/question; limits:
/docs/throttle; errors: /docs/error-handling):

    GET {base}/2.3/search/advanced?q=Q&site=SITE&sort=creation&order=desc&pagesize=100&page=P
        &filter=withbody[&fromdate=CURSOR][&key=KEY]

``base`` is ``base_url`` or https://api.stackexchange.com; ``key`` is ``api_key`` (optional: it
raises the daily quota from 300 to 10,000 requests per IP). The answer is the common wrapper
``{"items": [question], "has_more": true, "quota_max": 300, "quota_remaining": 297, "backoff"?:
10, "error_id"?, "error_name"?, "error_message"?}``; the API compresses answers (the client
decompresses them). A question has question_id, title and body (HTML), link, owner
{display_name, reputation}, score, answer_count, view_count, creation_date, last_edit_date.

Items: guid ``se:<site>:<question_id>``, url the question's ``link``; title and text from HTML;
reach the owner's reputation, points the score, replies the answer count.

Cursor: the newest ``creation_date`` seen, as decimal epoch seconds, sent as ``fromdate`` (which
is inclusive: the question at the cursor comes again and is folded by the store, or updated when
edited). The first poll (no cursor) reads ``page_cap`` pages of the newest questions.

Budgets, honoured: a ``backoff`` in any answer stops the paging and no request is sent to the
method before it has passed (the poll returns nothing and says why in ``note``); a
``quota_remaining`` of 0 stops the paging. Both are said in ``note``.

Failure modes (errors come as HTTP 400 with error_id/error_name/error_message):
- ``throttle_violation`` (502): "429: ... throttled" with the wait the API names as retry_after.
- ``bad_parameter`` naming ``key``: "400: api_key rejected by stackexchange"; naming ``site``:
  the site is unknown. Access-token and key errors (401-406) are auth failures.
- HTTP 429/503 keep their Retry-After. A first page that is not a wrapper object is a
  ParseError; a later page that fails keeps the items so far, says so in ``note`` and keeps the
  stored cursor (questions come newest first, so only the stored cursor leaves no gap).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError
from listener.models import Item
from listener.sources import api

DEFAULT_BASE = "https://api.stackexchange.com"
PATH = "/2.3/search/advanced"
PAGE_SIZE = 100
_NOT_BEFORE = "stackexchange_not_before"  # session key: when the method may be called again
_WAIT = re.compile(r"available in (\d{1,9}) seconds?")
_AUTH = {
    401: "an access token is required",
    402: "the access token is invalid",
    403: "the access token lacks permission",
    405: "an application key is required",
    406: "the access token is compromised",
}


def identity(source: SourceSettings) -> str:
    root = api.base(source, DEFAULT_BASE)
    return api.url(root, PATH, {"q": source.query, "site": source.site, "sort": "creation"})


async def fetch(ctx: api.ApiContext) -> api.Fetched:
    source = ctx.source
    not_before = ctx.session.get(_NOT_BEFORE)
    if not_before is not None and ctx.now < not_before:
        return api.Fetched(
            (),
            None,
            note=f"stackexchange asked to back off until {not_before:%H:%M:%S} UTC (backoff): "
            "nothing fetched this poll",
        )
    root = api.base(source, DEFAULT_BASE)
    since = _since(ctx.cursor)
    pages = api.Pages(source.page_cap)
    items: list[Item] = []
    newest = since
    page, note, failed, more = 1, None, False, False
    while pages.next(str(page)):
        target = api.url(
            root,
            PATH,
            {
                "q": source.query,
                "site": source.site,
                "sort": "creation",
                "order": "desc",
                "pagesize": PAGE_SIZE,
                "page": page,
                "fromdate": since,
                "filter": "withbody",
                "key": source.api_key,
            },
        )
        try:
            document = await _page(ctx, target, page)
        except (ParseError, FetchError) as exc:
            if pages.count == 0:
                raise
            note, failed = f"page {page}: {_one_line(exc, source)}", True
            break
        pages.fetched()
        for question in document["items"]:
            item, created = _item(question, source.site or "")
            if item is not None:
                items.append(item)
            if created is not None and (newest is None or created > newest):
                newest = created
        more = document.get("has_more") is True and bool(document["items"])
        backoff = api.as_int(document.get("backoff"))
        quota = api.as_int(document.get("quota_remaining"))
        if backoff is not None and backoff > 0:
            ctx.session[_NOT_BEFORE] = ctx.now + timedelta(seconds=backoff)
            if more:
                note = f"stackexchange asked to back off {backoff}s (backoff): paging stopped"
            break
        if quota is not None and quota <= 0:
            if more:
                quota_max = api.as_int(document.get("quota_max"))
                note = (
                    f"stackexchange daily quota used up (0 of {quota_max} requests left): "
                    "paging stopped" + ("" if source.api_key else "; an api_key raises it")
                )
            break
        if not more:
            break
        page += 1
    else:
        if more and since is not None:
            note = api.more_left_note(source.page_cap, "questions")
    # newest first: after a failed page only the stored cursor leaves no gap (gap)
    cursor = None if newest is None else str(newest)
    return api.Fetched(tuple(items), cursor, note=note, pages=pages.count, gap=failed)


async def _page(ctx: api.ApiContext, target: str, page: int) -> dict[str, Any]:
    """The wrapper object of one page, with an ``items`` list."""
    what = f"stackexchange search page {page}"
    try:
        document, _ = await api.get_json(ctx, target, what)
    except FetchError as exc:
        raise _explain(exc, ctx.source) from exc
    if isinstance(document, dict) and document.get("error_id") is not None:
        # JSONP-style answers report errors with 200
        raise _refusal(document, FetchError(what, status=400), ctx.source)
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise ParseError(f"{what}: not a Stack Exchange wrapper object (no 'items' list)")
    return document


def _item(question: Any, site: str) -> tuple[Item | None, int | None]:
    """The item of a question (None without an id) and its creation time in epoch seconds."""
    if not isinstance(question, dict):
        return None, None
    published = api.as_time(question.get("creation_date"))
    created = int(published.timestamp()) if published is not None else None
    ident = api.as_int(question.get("question_id"))
    if ident is None:
        return None, created
    owner = question.get("owner")
    owner = owner if isinstance(owner, dict) else {}
    link = question.get("link")
    item = Item(
        guid=f"se:{site}:{ident}",
        url=link if isinstance(link, str) and link.startswith(("https://", "http://")) else None,
        title=api.as_text(question.get("title"), html=True),
        text=api.as_text(question.get("body"), html=True),
        author=api.as_text(owner.get("display_name"), html=True) or None,
        published_at=published,
        reach=api.as_int(owner.get("reputation")),
        points=api.as_int(question.get("score")),
        replies=api.as_int(question.get("answer_count")),
    )
    return item, created


def _since(cursor: str | None) -> int | None:
    value = api.as_int(cursor)
    return value if value is not None and value >= 0 else None


def _explain(exc: FetchError, source: SourceSettings) -> FetchError:
    """A FetchError a person understands, from the wrapper's error fields in the answer."""
    document = api.error_document(exc.body)
    if document is None or document.get("error_id") is None:
        return exc
    return _refusal(document, exc, source)


def _refusal(document: dict[str, Any], exc: FetchError, source: SourceSettings) -> FetchError:
    error_id = api.as_int(document.get("error_id"))
    name = _scrub(api.as_text(document.get("error_name"), limit=60), source)
    said = _scrub(api.as_text(document.get("error_message"), html=True, limit=300), source)
    detail = f"{name}: {said}" if said else name
    if error_id == 502 or name == "throttle_violation":
        wait = _WAIT.search(said)
        retry = float(wait.group(1)) if wait else exc.retry_after
        return FetchError(
            f"429: stackexchange throttled requests from this IP ({detail})",
            status=429,
            retry_after=retry,
            body=exc.body,
        )
    if error_id == 400 and re.search(r"\bkey\b", said.lower()):
        return FetchError(
            f"400: api_key rejected by stackexchange ({detail}); check the key at "
            "https://stackapps.com/apps/oauth",
            status=400,
            body=exc.body,
        )
    if error_id == 400 and re.search(r"\bsite\b", said.lower()):
        return FetchError(
            f"400: stackexchange does not know site {source.site!r} ({detail}); use an API "
            "site name like 'stackoverflow' or 'superuser'",
            status=400,
            body=exc.body,
        )
    if error_id in _AUTH:
        return FetchError(
            f"401: stackexchange refused the request: {_AUTH[error_id]} ({detail})",
            status=401,
            body=exc.body,
        )
    if error_id == 503:
        return FetchError(
            f"503: stackexchange is temporarily unavailable ({detail})",
            status=503,
            retry_after=exc.retry_after,
            body=exc.body,
        )
    return FetchError(
        f"{error_id}: stackexchange refused the search ({detail})",
        status=exc.status,
        retry_after=exc.retry_after,
        body=exc.body,
    )


def _scrub(text: str, source: SourceSettings) -> str:
    """``text`` without the API key, should an answer ever echo it."""
    return text.replace(source.api_key, "***") if source.api_key else text


def _one_line(exc: Exception, source: SourceSettings) -> str:
    return _scrub(api.one_line(exc), source)
