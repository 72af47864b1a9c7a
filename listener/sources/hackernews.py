"""Hacker News stories and comments that match a query, through the Algolia HN Search API.

Owns one endpoint, documented at https://hn.algolia.com/api ("Search by date"):

    GET {base}/api/v1/search_by_date?query=Q&tags=(story,comment)&hitsPerPage=100&page=P
        [&numericFilters=created_at_i>CURSOR]

``base`` is ``base_url`` or https://hn.algolia.com. The answer is an Algolia search result,
newest hit first: ``{"hits": [...], "page": 0, "nbPages": 3, "hitsPerPage": 100, "nbHits": 250,
...}``. A hit has ``objectID``, ``created_at`` (ISO) and ``created_at_i`` (epoch seconds),
``author``, ``_tags`` ("story" or "comment", ...); a story has ``title``, ``url``, ``story_text``
(HTML), ``points`` and ``num_comments``; a comment ``comment_text`` (HTML), ``story_id``,
``story_title`` and ``story_url``.

Items: guid ``hn:<objectID>``; url the discussion page https://news.ycombinator.com/item?id=ID
(the linked article is not the post); a story's linked article (``url``) is its
``article_url``, so ``site:`` and ``url:`` queries find a story that links to a domain; a
story's title and text; a comment has no title of its
own (the title of its story is not matched against brands: only what the commenter wrote is);
points from ``points``, replies from ``num_comments``; HN does not give the author's karma.

Cursor: the newest ``created_at_i`` seen, as decimal epoch seconds. A poll with a cursor asks
only for hits created after it; the first poll (no cursor) reads ``page_cap`` pages of the newest
hits. Paging follows ``page`` until ``nbPages``, at most ``page_cap`` pages.

Failure modes:
- HTTP errors are FetchErrors; Algolia's ``{"message": ...}`` answer is quoted in the message, a
  429 keeps its Retry-After (the pipeline backs off). The API needs no key: there is no auth.
- A first page that is not JSON or not a search result is a ParseError. A later page that fails
  keeps the hits so far, says so in ``note`` and keeps the stored cursor: hits come newest first,
  so the gap below the good pages is fetched again by the next poll (the store folds repeats).
- More new hits than ``page_cap`` pages hold: the older ones are skipped and ``note`` says so.
"""

from __future__ import annotations

from typing import Any

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError
from listener.models import Item
from listener.sources import api

DEFAULT_BASE = "https://hn.algolia.com"
PATH = "/api/v1/search_by_date"
TAGS = "(story,comment)"
PAGE_SIZE = 100
ITEM_URL = "https://news.ycombinator.com/item?id="


def identity(source: SourceSettings) -> str:
    return api.url(api.base(source, DEFAULT_BASE), PATH, {"query": source.query, "tags": TAGS})


async def fetch(ctx: api.ApiContext) -> api.Fetched:
    source = ctx.source
    root = api.base(source, DEFAULT_BASE)
    since = _since(ctx.cursor)
    pages = api.Pages(source.page_cap)
    items: list[Item] = []
    newest = since
    page, note, failed, more = 0, None, False, False
    while pages.next(str(page)):
        target = api.url(
            root,
            PATH,
            {
                "query": source.query,
                "tags": TAGS,
                "hitsPerPage": PAGE_SIZE,
                "page": page,
                "numericFilters": None if since is None else f"created_at_i>{since}",
            },
        )
        try:
            hits, last = await _page(ctx, target, page)
        except (ParseError, FetchError) as exc:
            if pages.count == 0:
                raise
            note, failed = f"page {page + 1}: {api.one_line(exc)}", True
            break
        pages.fetched()
        for hit in hits:
            item, created = _item(hit)
            if item is not None:
                items.append(item)
            if created is not None and (newest is None or created > newest):
                newest = created
        more = bool(hits) and page + 1 < last
        if not more:
            break
        page += 1
    if not failed and more and since is not None:
        note = api.more_left_note(source.page_cap, "hits")
    # hits come newest first: after a failed page only the stored cursor leaves no gap (gap)
    cursor = None if newest is None else str(newest)
    return api.Fetched(tuple(items), cursor, note=note, pages=pages.count, gap=failed)


async def _page(ctx: api.ApiContext, target: str, page: int) -> tuple[list[Any], int]:
    """The hits of one page and the number of pages there are."""
    what = f"hacker news search page {page + 1}"
    try:
        document, _ = await api.get_json(ctx, target, what)
    except FetchError as exc:
        raise _explain(exc) from exc
    hits = api.dig(document, "hits")
    if not isinstance(document, dict) or not isinstance(hits, list):
        raise ParseError(f"{what}: not an Algolia search result (no 'hits' list)")
    pages = api.as_int(document.get("nbPages"))
    return hits, pages if pages is not None else page + 1


def _item(hit: Any) -> tuple[Item | None, int | None]:
    """An item of a hit (None without an objectID) and its creation time in epoch seconds."""
    if not isinstance(hit, dict):
        return None, None
    published = api.as_time(hit.get("created_at_i")) or api.as_time(hit.get("created_at"))
    created = int(published.timestamp()) if published is not None else None
    ident = hit.get("objectID")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or not str(ident).strip():
        return None, created
    ident = str(ident).strip()
    tags = hit.get("_tags")
    tags = tags if isinstance(tags, list) else []
    comment = "comment" in tags or (hit.get("comment_text") is not None and not hit.get("title"))
    if comment:
        title, text = "", api.as_text(hit.get("comment_text"), html=True)
    else:
        title = api.as_text(hit.get("title"), html=True)
        text = api.as_text(hit.get("story_text"), html=True)
    author = api.as_text(hit.get("author")) or None
    item = Item(
        guid=f"hn:{ident}",
        url=ITEM_URL + ident,
        title=title,
        text=text,
        author=author,
        published_at=published,
        points=api.as_int(hit.get("points")),
        replies=None if comment else api.as_int(hit.get("num_comments")),
        article_url=None if comment else _web_url(hit.get("url")),
    )
    return item, created


def _web_url(value: Any) -> str | None:
    """A story's link when it is an http(s) URL (Ask HN and the like have none)."""
    url = api.as_text(value, limit=2000)
    return url if url.lower().startswith(("http://", "https://")) and " " not in url else None


def _since(cursor: str | None) -> int | None:
    value = api.as_int(cursor)
    return value if value is not None and value >= 0 else None


def _explain(exc: FetchError) -> FetchError:
    """The FetchError with what Algolia said about it (``{"message": ..., "status": ...}``)."""
    said = api.error_text(exc.body, "message", html=True, limit=300)
    if not said:
        return exc
    return FetchError(
        f"{exc} (hacker news search said: {said})",
        status=exc.status,
        retry_after=exc.retry_after,
        body=exc.body,
    )
