"""Public JSON API sources: the shared rules and helpers; one module per platform.

Rules:
- An adapter module (``hackernews``, ``reddit``, ``bluesky``, ``mastodon``, ``lemmy``,
  ``stackexchange``, ``youtube_api``, ``jsonapi``) has two functions: ``identity(source) -> str``,
  the URL naming what is polled (no secrets: a change of it resets the source's state), and
  ``async fetch(ctx) -> Fetched``.
- Every request goes through the shared ``Client`` (limits, timeouts, size caps, redirects);
  adapters never import httpx. A redirect to another origin is refused unless the source sets
  ``cross_origin_redirects`` (an API answer from elsewhere is not the API's).
- Incremental: ``ctx.cursor`` is what the last poll stored (newest id, time or token; the
  adapter's own format); an adapter fetches only what is newer, at most ``source.page_cap``
  pages, and returns the new cursor. A cursor seen twice in one poll stops the paging (loops).
- A malformed page after the first keeps the items already fetched: ``Fetched.note`` says what
  went wrong and ``Fetched.gap`` is set when items between it and the stored cursor are unread
  (pages newest first); the pipeline then keeps the stored cursor and retries (bounded, with
  backoff), so a cursor advances only over what was stored contiguously. A malformed first
  page is a ParseError.
- Platforms change under us: an adapter fails loudly (FetchError/ParseError with a sentence a
  person understands: "401: app password rejected"), never silently returns nothing.
- Numbers from the web are clamped to 64 bits; nesting deeper than Python's parser allows is a
  ParseError, not a crash.
"""

from __future__ import annotations

import importlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from listener.config import SourceSettings
from listener.errors import ParseError
from listener.models import Item
from listener.sources.client import Client, Response, redact_url
from listener.sources.html import html_to_text

INT64 = 2**63 - 1

# kind -> adapter module (imported when first used)
ADAPTERS = {
    "hackernews": "listener.sources.hackernews",
    "reddit": "listener.sources.reddit",
    "bluesky": "listener.sources.bluesky",
    "mastodon": "listener.sources.mastodon",
    "lemmy": "listener.sources.lemmy",
    "stackexchange": "listener.sources.stackexchange",
    "youtube": "listener.sources.youtube_api",
    "json": "listener.sources.jsonapi",
}


def is_api(source: SourceSettings) -> bool:
    """Whether the source is polled through a JSON API (YouTube channels without a query stay
    a feed)."""
    if source.kind == "youtube":
        return source.query is not None
    return source.kind in ADAPTERS


@dataclass(frozen=True, slots=True)
class Fetched:
    items: tuple[Item, ...]
    cursor: str | None  # to store for the next poll; None keeps the stored one
    note: str | None = None  # a later page failed: what went wrong (items so far are kept)
    pages: int = 0
    # a later page failed, so items between it and the stored cursor are unread: the pipeline
    # keeps the stored cursor and retries; ``cursor`` (the newest seen) is used only when the
    # retries are given up
    gap: bool = False


@dataclass
class ApiContext:
    """What an adapter gets for one poll."""

    client: Client
    source: SourceSettings
    cursor: str | None
    now: datetime
    # per-process state of the source (sessions, tokens), kept between polls
    session: dict[str, Any] = field(default_factory=dict)


# A stored cursor while a gap is retried: the marker, the attempts so far, the cursor before
# the gap (empty: none). Adapters never see it: the pipeline unwraps it.
_GAP = "gap-retry/"
GAP_RETRIES = 5  # polls that retry a broken later page before its gap is given up


def stored_cursor(cursor: str | None, gap_attempts: int = 0) -> str | None:
    """What to store: ``cursor`` itself, or wrapped with the attempts at a gap."""
    if gap_attempts == 0 and cursor is not None and not cursor.startswith(_GAP):
        return cursor
    return f"{_GAP}{gap_attempts}/{cursor or ''}"


def read_cursor(stored: str | None) -> tuple[str | None, int]:
    """The adapter's cursor and the attempts at a gap so far from a stored cursor."""
    if stored is None or not stored.startswith(_GAP):
        return stored, 0
    count, _, cursor = stored.removeprefix(_GAP).partition("/")
    return cursor or None, int(count) if count.isdigit() else 0


class Adapter(Protocol):
    """What an adapter module offers (see the module rules); every module in ``ADAPTERS`` is
    one (mypy checks that at the end of this module)."""

    def identity(self, source: SourceSettings) -> str: ...

    async def fetch(self, ctx: ApiContext) -> Fetched: ...


def adapter(source: SourceSettings) -> Adapter:
    """The adapter module of an API source (imported when first used)."""
    return cast(Adapter, importlib.import_module(ADAPTERS[source.kind]))


def identity(source: SourceSettings) -> str:
    return adapter(source).identity(source)


async def fetch(ctx: ApiContext) -> Fetched:
    return await adapter(ctx.source).fetch(ctx)


# -- helpers for adapters ---------------------------------------------------------------------


def base(source: SourceSettings, default: str) -> str:
    """The API root: ``base_url`` when configured (mirror, proxy, test server), else the
    platform's public endpoint; no trailing slash."""
    return (source.base_url or default).rstrip("/")


def url(root: str, path: str, params: Mapping[str, object] | None = None) -> str:
    parts = urlsplit(root + path)
    query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
    if parts.query:
        query = f"{parts.query}&{query}" if query else parts.query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def decode(response: Response, what: str) -> Any:
    """The JSON document of a response; ParseError naming ``what`` and the URL otherwise."""
    try:
        return json.loads(response.body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"{what}: not JSON from {redact_url(response.url)} ({exc})") from None
    except RecursionError:
        raise ParseError(
            f"{what}: JSON nested too deeply from {redact_url(response.url)}"
        ) from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


async def get_json(
    ctx: ApiContext, target: str, what: str, headers: Mapping[str, str] | None = None
) -> tuple[Any, Response]:
    response = await ctx.client.get(
        target,
        headers={**ctx.source.headers, **(headers or {})},
        cross_origin=ctx.source.cross_origin_redirects,
    )
    return decode(response, what), response


def dig(document: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts and lists; None when any step is missing."""
    node = document
    for step in [p for p in path.split(".") if p]:
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.lstrip("-").isdigit():
            index = int(step)
            node = node[index] if -len(node) <= index < len(node) else None
        else:
            return None
    return node


def as_int(value: Any) -> int | None:
    """A count from the web: ints, integral floats and digit strings, clamped to 64 bits."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 30:
            return None
        value = int(text)
    if not isinstance(value, int):
        return None
    return max(-INT64, min(INT64, value))


_CONTROL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 127], None)


def as_text(value: Any, *, html: bool = False, limit: int = 100_000) -> str:
    """Text from the web for storage: no NUL or other C0 controls (PostgreSQL refuses NUL),
    no lone surrogates (from ``\ud800`` escapes), HTML reduced to text when ``html``."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text[:limit].translate(_CONTROL)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return html_to_text(text) if html else " ".join(text.split())


def as_time(value: Any) -> datetime | None:
    """ISO-8601 (with Z), or seconds/milliseconds since the epoch; UTC; None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = float(value) / (1000.0 if value > 1e11 else 1.0)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return as_time(float(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


class Pages:
    """Guards a paging loop: at most ``cap`` pages, and no cursor twice."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self._seen: set[str] = set()

    def next(self, cursor: str | None) -> bool:
        """Whether to fetch the page at ``cursor`` (None: there is none)."""
        if cursor is None or self.count >= self.cap or cursor in self._seen:
            return False
        self._seen.add(cursor)
        return True

    def first(self) -> None:
        self.count += 1

    def fetched(self) -> None:
        self.count += 1


# -- error answers and notes, the same for every adapter ---------------------------------------


def error_document(body: bytes) -> dict[str, Any] | None:
    """The JSON object of an error answer's body (gzip-compressed too: some APIs compress even
    their errors), or None when it has none. Reads at most 8 KiB of a compressed body."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, 8192)
        except zlib.error:
            return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def error_text(body: bytes, key: str, *, limit: int, html: bool = False) -> str:
    """The string ``key`` of an error answer's JSON body as text on one line, at most ``limit``
    characters read; "" when there is none."""
    value = (error_document(body) or {}).get(key)
    return as_text(value, html=html, limit=limit) if isinstance(value, str) else ""


def one_line(exc: Exception) -> str:
    """An error as one line (for ``Fetched.note``), its type name when it says nothing."""
    return " ".join(str(exc).split()) or type(exc).__name__


def more_left_note(cap: int, left: str) -> str:
    """The note when ``page_cap`` pages were read and more new ``left`` remained."""
    return (
        f"page cap ({cap}) reached with more new {left} left; the older ones were skipped: "
        "raise page_cap or poll more often"
    )


def newest_not_reached_note(cap: int, noun: str) -> str:
    """The note when ``page_cap`` pages ended before the last poll's newest ``noun``."""
    return (
        f"page_cap ({cap} pages) reached before the last poll's newest {noun}; older new "
        f"{noun}s were skipped"
    )


def token_paging_note(pages: Pages, platform: str, noun: str, *, incremental: bool) -> str | None:
    """Why paging by page tokens stopped when ``pages.next`` said no, if worth a note: the
    platform repeated a token, or (on a later poll) page_cap ended it before the last poll's
    newest ``noun``."""
    if pages.count < pages.cap:
        return f"{platform} sent the same page token twice; paging stopped"
    return newest_not_reached_note(pages.cap, noun) if incremental else None


if TYPE_CHECKING:  # every module in ADAPTERS is an Adapter: mypy checks this mapping
    from listener.sources import (
        bluesky,
        hackernews,
        jsonapi,
        lemmy,
        mastodon,
        reddit,
        stackexchange,
        youtube_api,
    )

    _CHECKED: dict[str, Adapter] = {
        "hackernews": hackernews,
        "reddit": reddit,
        "bluesky": bluesky,
        "mastodon": mastodon,
        "lemmy": lemmy,
        "stackexchange": stackexchange,
        "youtube": youtube_api,
        "json": jsonapi,
    }
