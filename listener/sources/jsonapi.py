"""Any JSON API, read through a declared mapping: the generic kind ``json``.

Owns turning one configured JSON document (and the pages after it) into Items. There is no
platform documentation to follow: the source's settings are the format.

- ``url``: the document, fetched with GET (it may carry a query string; ``base_url`` is not
  used) and the source's ``headers``.
- ``items_path``: dotted path (``data.items``, ``results.0.hits``) into the document to the list
  of items; ``""`` or ``"."`` for a top-level list.
- ``fields``: our names -> dotted paths inside one item: ``id`` (required), ``title`` and/or
  ``text``, ``url``, ``author``, ``published``, ``reach``, ``points``, ``likes``, ``reposts``,
  ``replies``, ``language``; ``html = "true"`` reads ``text`` (and ``title``) as HTML. Optional
  paging: ``next`` is a dotted path in the DOCUMENT (not the item) to the next page's URL,
  absolute or relative to the page.

Rules:
- Item: guid ``json:<id>``; url made absolute against the page URL, kept when http(s); numbers
  through ``api.as_int`` (clamped to 64 bits; "many", booleans, NaN and 1e400 are unknown);
  times through ``api.as_time`` (ISO-8601 or epoch seconds/milliseconds). A field of the wrong
  type is empty, never an error: a title that is a number becomes its digits, an object none.
- Items without a usable id are skipped and counted in ``Fetched.note``.
- Cursor: the newest ``published`` seen (ISO-8601 UTC) when ``published`` is mapped, else none
  (storage dedups by id). Items older than the cursor are skipped (ties are kept: two items can
  share a timestamp), and a page with nothing new ends the paging.
- Paging follows ``next`` while it stays on the origin (scheme, host, port) of ``url``, so the
  source's headers (often an API key) never go to another host; at most ``page_cap`` pages, a
  URL seen twice stops it.

Failure modes: a first page that is not JSON, nested deeper than Python's parser allows, or
whose ``items_path`` does not lead to a list is a ParseError ("json: items_path 'data.items'
leads to a dict, not a list"); a broken later page keeps the earlier pages' items and sets
``note``; HTTP errors are FetchErrors (429/503 with ``retry_after``; 401/403 say to check the
key or token).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError, SourceError
from listener.models import Item
from listener.sources import api
from listener.sources.client import Response, redact_url

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_TRUE = frozenset({"true", "yes", "1"})


def identity(source: SourceSettings) -> str:
    return redact_url(source.url or "")


async def fetch(ctx: api.ApiContext) -> api.Fetched:
    source = ctx.source
    fields = source.fields
    if not source.url or "id" not in fields:
        raise ParseError("json: the source needs 'url' and fields.id (the path of an item's id)")
    since = api.as_time(ctx.cursor) if ctx.cursor else None
    pages = api.Pages(source.page_cap)
    items: list[Item] = []
    newest = since
    notes: list[str] = []
    failed = False  # a later page failed: the pipeline keeps the stored cursor (gap)
    missing_id = 0
    target = source.url
    pages.first()
    while True:
        number = pages.count
        try:
            document, response = await _get(ctx, target)
            rows = _rows(document, source.items_path or "", response)
        except SourceError as exc:
            if number == 1 or not _keeps_earlier_pages(exc):
                raise
            notes.append(f"page {number}: {exc}")
            failed = True
            break
        fresh = 0
        for row in rows:
            item = _item(row, fields, response.url)
            if item is None:
                missing_id += 1
                continue
            published = item.published_at
            if since is not None and published is not None and published < since:
                continue
            items.append(item)
            fresh += 1
            if published is not None and (newest is None or published > newest):
                newest = published
        if since is not None and fresh == 0:
            break
        following = _next_url(document, fields.get("next"), response.url)
        if following is None:
            break
        if not _same_origin(following, source.url):
            notes.append(
                f"page {number}: the next page is on another host ({redact_url(following)}); "
                "not followed"
            )
            break
        if not pages.next(following):
            if pages.count < pages.cap:
                notes.append(f"page {number}: the next page URL repeats; paging stopped")
            elif since is not None:
                notes.append(
                    f"page_cap ({pages.cap}) reached while pages still had new items: items "
                    "in between may be missing; raise page_cap or poll more often"
                )
            break
        pages.fetched()
        target = following
    if missing_id:
        noun = "item" if missing_id == 1 else "items"
        notes.append(f"{missing_id} {noun} without an id at {fields['id']!r} skipped")
    return api.Fetched(
        tuple(items),
        _iso(newest) if newest is not None else None,
        note="; ".join(notes) or None,
        pages=pages.count,
        gap=failed,
    )


async def _get(ctx: api.ApiContext, target: str) -> tuple[Any, Response]:
    try:
        return await api.get_json(ctx, target, "json")
    except FetchError as exc:
        if exc.status not in (401, 403):
            raise
        refused = "unauthorized" if exc.status == 401 else "forbidden"
        raise FetchError(
            f"{exc.status}: the API refused the request ({refused}) at {redact_url(target)}: "
            "check the key or token in the source's url or headers",
            status=exc.status,
            body=exc.body,
        ) from exc


def _rows(document: Any, path: str, response: Response) -> list[Any]:
    node = api.dig(document, path)
    if isinstance(node, list):
        return node
    shown = "." if path.strip(".") == "" else path
    raise ParseError(
        f"json: items_path {shown!r} leads to {_kind(node)}, not a list "
        f"(from {redact_url(response.url)})"
    )


def _kind(node: Any) -> str:
    if node is None:
        return "nothing (missing or null)"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float):
        return "a number"
    if isinstance(node, str):
        return "a string"
    return "a dict"


def _item(row: Any, fields: dict[str, str], page_url: str) -> Item | None:
    """The Item of one row; None when it has no usable id."""

    def value(name: str) -> Any:
        path = fields.get(name)
        return api.dig(row, path) if path else None

    guid = _id(value("id"))
    if guid is None:
        return None
    html = fields.get("html", "").strip().lower() in _TRUE
    language = value("language")
    return Item(
        guid=f"json:{guid}",
        url=_web_url(value("url"), page_url),
        title=_text(value("title"), html=html, limit=1000),
        text=_text(value("text"), html=html),
        author=_text(value("author"), limit=300) or None,
        published_at=api.as_time(value("published")),
        language=language if isinstance(language, str) and 0 < len(language) <= 35 else None,
        reach=api.as_int(value("reach")),
        points=api.as_int(value("points")),
        likes=api.as_int(value("likes")),
        reposts=api.as_int(value("reposts")),
        replies=api.as_int(value("replies")),
    )


def _id(value: Any) -> str | None:
    """A string or an integer (an integral float too); anything else is no id."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return _text(value, limit=500) or None
    return None


def _text(value: Any, *, html: bool = False, limit: int = 100_000) -> str:
    """Text of a field: strings, and numbers as their digits; one line, no control characters,
    valid UTF-8. Objects, lists and booleans are no text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    if not isinstance(value, str):
        value = repr(value) if isinstance(value, float) else str(value)
    text = _CONTROL.sub("", api.as_text(value, html=html, limit=limit))
    return text.encode("utf-8", "replace").decode("utf-8")


def _web_url(value: Any, page_url: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        absolute = urljoin(page_url, _text(value, limit=4000))
        parts = urlsplit(absolute)
    except ValueError:
        return None
    return absolute if parts.scheme in ("http", "https") and parts.hostname else None


def _next_url(document: Any, path: str | None, page_url: str) -> str | None:
    if not path:
        return None
    return _web_url(api.dig(document, path), page_url)


def _same_origin(one: str, other: str) -> bool:
    try:
        a, b = urlsplit(one), urlsplit(other)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:
        return False


def _keeps_earlier_pages(exc: SourceError) -> bool:
    """A broken later page keeps the earlier ones; auth trouble and rate limits stay loud."""
    return not (isinstance(exc, FetchError) and exc.status in (401, 403, 429, 503))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
