"""HTTP fetching: with ``wire`` below it, the only module that uses httpx.

``Client.get`` fetches one URL through one shared transport (connection pools per origin,
``wire``), with httpx's requests and responses, and applies the rules every source needs, so no
source has to remember them:

- Timeouts: connect, read (between bytes) and a total deadline around the whole exchange,
  redirects and body included, so a server dripping bytes cannot hold a poll open. The
  deadline runs only while a host slot is held: waiting for a slot is not part of it.
- Size cap: the body is streamed raw and decompressed here (gzip, deflate, identity) with a
  bounded output, so neither a huge body nor a decompression bomb can exceed ``max_body_bytes``.
  ``get(spool=True)`` (feeds) writes a body past ``wire.SPOOL_BYTES`` to a temporary file as it
  arrives (``Response.file``; ``Response.discard`` deletes it), so it is never held in memory.
- Redirects are followed by hand, at most ``max_redirects``, http and https only. URL userinfo
  becomes basic auth; it and all caller-supplied headers go only to the original origin (scheme,
  host, port) and are dropped for good once a redirect leaves it. Conditional-GET validators are
  not secrets and are sent on every hop. A redirect to another origin carries no query
  parameter with a secret-looking name (``key``, ``api_key``, ``token``, ``access_token``,
  ``sig``...) and no value that is a secret (``HttpSettings.secrets``: what the configuration
  read from ``${...}``, and the original URL's password and secret parameters); a target that
  would still carry one is refused. Callers can refuse other origins altogether
  (``cross_origin=False``: API sources unless configured).
- At most ``per_host_limit`` requests per host run at once, queued fairly (``slots``): URLs
  whose last request failed wait behind the others, and a URL's first try on a busy host is a
  short probe. Cookies are never stored, so no state leaks from one source to another.
- Status: 2xx, 304 (not modified, only to a conditional request: to an unconditional one it
  is a server fault) and 410 (gone) are returned; everything else raises
  ``FetchError`` (with ``retry_after`` for 429/503). Every httpx and OS exception becomes a
  one-line ``FetchError`` naming the URL through ``redact_url``, so messages carry no secrets.

Size: about 530 lines on purpose: one request loop whose rules (deadline, caps, redirects,
origins, secrets) depend on each other; the wire level (``wire``) and host slots (``slots``)
are already apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
import zlib
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from listener import __version__
from listener.errors import FetchError
from listener.sources.slots import HostSlots, Suspects, probe_timeout
from listener.sources.wire import SPOOL_BYTES, PerOriginTransport, drain, read_body

__all__ = ["Client", "HttpSettings", "Response", "redact_url"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_SECRET_PARAM = re.compile(r"token|key|secret|passw|auth|sig|session|credential", re.IGNORECASE)
# names of query parameters that carry credentials (whole name, or its last _-. part)
_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:api[_-]?key|apikey|key|token|secret|sig|signature|password|passwd|pass"
    r"|auth|session|sessionid|credentials?)$",
    re.IGNORECASE,
)


class _DeadlineError(Exception):
    """The total deadline of a request expired while it was in flight."""


class _ProbeError(Exception):
    """A first try on a busy host brought no response headers within the probe time."""

    def __init__(self, seconds: float, waiting: int) -> None:
        super().__init__()
        self.seconds = seconds
        self.waiting = waiting


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How the client behaves. Durations are seconds; sizes are bytes."""

    user_agent: str = f"listener/{__version__} (social listening feed reader)"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host_limit: int = 2
    max_connections: int = 100
    secrets: frozenset[str] = frozenset()  # values that never go to another origin


@dataclass(frozen=True, slots=True)
class Response:
    """A fetched resource. ``status`` is 2xx, 304 or 410; ``body`` is decompressed, or empty
    when it was spooled to ``file`` (``get(spool=True)``), which the caller deletes with
    ``discard``."""

    status: int
    url: str
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    permanent_url: str | None
    elapsed: float
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    file: Path | None = None

    def discard(self) -> None:
        """Delete the spooled body's file, if any."""
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.unlink()


def redact_url(url: str) -> str:
    """Return ``url`` without userinfo and with secret-looking query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=***" if sep and _SECRET_PARAM.search(unquote(name)) else f"{name}{sep}{value}"
        for name, sep, value in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _queue_key(url: httpx.URL) -> str:
    """What the fair queue remembers failures by: the URL without userinfo and query."""
    return f"{url.scheme}://{url.host}:{url.port}{url.path}"


class Client:
    """Fetches URLs for all sources; use as ``async with Client(settings) as client``."""

    def __init__(
        self,
        settings: HttpSettings = HttpSettings(),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = s = settings
        self._slots: dict[str, HostSlots] = {}
        self._suspects = Suspects()
        # Requests go straight to the transport: httpx.AsyncClient's layers (auth flow, event
        # hooks, cookie extraction into a jar that must stay empty) cost ~20% of a request's
        # CPU and do nothing here. The headers are an AsyncClient's (its defaults, ours over
        # them; a caller's over both), so is the timeout extension.
        self._headers = httpx.Headers(
            {
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
                "Connection": "keep-alive",
                "User-Agent": s.user_agent,
            }
        )
        self._timeout = httpx.Timeout(
            connect=s.connect_timeout,
            read=s.read_timeout,
            write=s.read_timeout,
            pool=s.total_timeout,
        ).as_dict()
        self._transport = transport or PerOriginTransport(s.per_host_limit)
        self._connections = asyncio.Semaphore(s.max_connections)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: Mapping[str, str] | None = None,
        cross_origin: bool = True,
        spool: bool = False,
    ) -> Response:
        """GET ``url``; see the module docstring for the rules. Raises FetchError. With
        ``spool``, a big body is in ``Response.file``; the caller must ``discard`` it."""
        started = time.monotonic()
        original, safe = _parse_url(url)
        key = _queue_key(original)
        try:
            response = await self._get(
                original, safe, etag, last_modified, headers or {}, cross_origin, key, spool
            )
        except FetchError:
            self._suspects.failed(key)
            raise
        self._suspects.succeeded(key)
        return replace(response, elapsed=time.monotonic() - started)

    def mark_failing(self, url: str) -> None:
        """Queue requests to ``url`` behind healthy ones (its source failed last time)."""
        with contextlib.suppress(httpx.InvalidURL, TypeError, ValueError):
            self._suspects.failed(_queue_key(httpx.URL(url)))

    async def _get(
        self,
        original: httpx.URL,
        safe: str,
        etag: str | None,
        last_modified: str | None,
        headers: Mapping[str, str],
        cross_origin: bool,
        key: str,
        spool: bool,
    ) -> Response:
        auth = httpx.BasicAuth(original.username, original.password) if original.userinfo else None
        conditional = {"If-None-Match": etag} if etag else {}
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        current = (
            original.copy_with(username=None, password=None) if original.userinfo else original
        )
        trusted, permanent, hops = True, True, 0
        rank = self._suspects.rank(key)
        probe = not self._suspects.known(key)

        def where() -> str:
            return f"{redact_url(str(current))} (redirected from {safe})" if hops else safe

        total = remaining = self._settings.total_timeout
        try:
            while True:
                sent = {**headers, **conditional} if trusted else conditional
                status, resp_headers, body, used = await self._hop(
                    current,
                    sent,
                    auth if trusted else None,
                    budget=remaining,
                    rank=rank,
                    probe=probe and hops == 0,
                    spool=spool,
                )
                remaining -= used
                if status not in _REDIRECTS or "location" not in resp_headers:
                    break
                hops += 1
                if hops > self._settings.max_redirects:
                    limit = self._settings.max_redirects
                    raise FetchError(f"too many redirects (>{limit}) from {safe}")
                permanent = permanent and status in _PERMANENT
                target = current.join(resp_headers["location"])
                _check_scheme(target, f"{redact_url(str(target))} (redirected from {safe})")
                if _origin(target) != _origin(original):
                    target = self._leave_origin(target, original, cross_origin, safe)
                trusted = trusted and _origin(target) == _origin(original)
                current = target.copy_with(username=None, password=None)
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(exc, "fetching", where(), total) from exc
        if status == 304 and not conditional:
            raise FetchError(
                f"HTTP 304 Not Modified to an unconditional request from {where()} "
                "(a server fault; nothing is taken as unchanged)",
                status=304,
            )
        # only a 2xx body is spooled (a Path); an error's is bytes
        if isinstance(body, bytes) and not (200 <= status < 300 or status in (304, 410)):
            raise _status_error(status, resp_headers, body, where())
        return Response(
            status=status,
            url=str(current),
            body=body if isinstance(body, bytes) and 200 <= status < 300 else b"",
            content_type=resp_headers.get("content-type"),
            etag=resp_headers.get("etag"),
            last_modified=resp_headers.get("last-modified"),
            permanent_url=str(current) if hops and permanent else None,
            elapsed=0.0,
            headers={k.lower(): v for k, v in resp_headers.items()},
            file=body if isinstance(body, Path) else None,
        )

    def _leave_origin(
        self, target: httpx.URL, original: httpx.URL, allowed: bool, safe: str
    ) -> httpx.URL:
        """The redirect ``target`` on another origin without credentials; FetchError when
        other origins are refused or it would still carry a secret."""
        elsewhere = f"{target.scheme}://{target.host}" + (f":{target.port}" if target.port else "")
        if not allowed:
            raise FetchError(
                f"redirect from {safe} to another origin ({elsewhere}) refused; "
                "hint: set cross_origin_redirects = true on the source to follow it"
            )
        values = set(self._settings.secrets)
        values.update(v for n, v in original.params.multi_items() if _SECRET_NAME.search(n))
        if original.password:
            values.add(original.password)
        values = {v for v in values if len(v) >= 4}
        items = target.params.multi_items()
        kept = [(n, v) for n, v in items if not _SECRET_NAME.search(n) and v not in values]
        if len(kept) < len(items):
            target = target.copy_with(params=kept)
        text = unquote(str(target.copy_with(username=None, password=None)))
        if any(v in text for v in values):
            raise FetchError(
                f"redirect from {safe} to another origin ({elsewhere}) would carry a "
                "credential; refused"
            )
        return target

    async def post(
        self,
        url: str,
        *,
        json: object = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Response:
        """POST a JSON document or a form (API logins, token requests). No redirects are
        followed; the same limits, timeouts and error rules as ``get``. Raises FetchError."""
        started = time.monotonic()
        target, safe = _parse_url(url)
        basic = httpx.BasicAuth(*auth) if auth else None
        total = self._settings.total_timeout
        try:
            status, resp_headers, body, _ = await self._hop(
                target, headers or {}, basic, budget=total, method="POST", json=json, form=form
            )
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(exc, "posting to", safe, total) from exc
        assert isinstance(body, bytes)  # not spooled
        if not 200 <= status < 300:
            raise _status_error(status, resp_headers, body, safe)
        return Response(
            status=status,
            url=str(target),
            body=body,
            content_type=resp_headers.get("content-type"),
            etag=None,
            last_modified=None,
            permanent_url=None,
            elapsed=time.monotonic() - started,
            headers={k.lower(): v for k, v in resp_headers.items()},
        )

    async def _hop(
        self,
        url: httpx.URL,
        headers: Mapping[str, str],
        auth: httpx.BasicAuth | None,
        *,
        budget: float,
        rank: int = 0,
        probe: bool = False,
        method: str = "GET",
        json: object = None,
        form: Mapping[str, str] | None = None,
        spool: bool = False,
    ) -> tuple[int, httpx.Headers, bytes | Path, float]:
        """One request, holding a slot of the host; the body is read for 2xx answers (a big
        one to a file with ``spool``), and its first 4 KB for errors (APIs explain themselves
        there). ``budget`` seconds of deadline start once the slot is held; returns the
        seconds used of it too. ``probe``: a first try, which must get response headers
        within the probe time if others wait."""
        if budget <= 0:
            raise _DeadlineError
        slots = self._slots.get(url.host)
        if slots is None:
            slots = self._slots[url.host] = HostSlots(self._settings.per_host_limit)
        await slots.acquire(rank)
        waiting = slots.waiting
        first_byte = probe_timeout(budget) if probe and waiting else None
        try:
            async with self._connections:
                started = time.monotonic()
                try:
                    async with asyncio.timeout(budget) as deadline:
                        request = self._request(method, url, headers, auth, json, form)
                        sending = self._transport.handle_async_request(request)
                        if first_byte is None:
                            response = await sending
                        else:
                            response = await _within(first_byte, waiting, sending)
                        response.request = request
                        body: bytes | Path = b""
                        try:
                            if 200 <= response.status_code < 300:
                                body = await read_body(
                                    response,
                                    self._settings.max_body_bytes,
                                    redact_url(str(url)),
                                    spool=SPOOL_BYTES if spool else None,
                                )
                            else:
                                body = await drain(response)
                        finally:
                            try:
                                await response.aclose()
                            except BaseException:
                                if isinstance(body, Path):  # nobody else will delete it
                                    body.unlink(missing_ok=True)
                                raise
                except TimeoutError:
                    if deadline.expired():
                        raise _DeadlineError from None
                    raise
                return response.status_code, response.headers, body, time.monotonic() - started
        finally:
            slots.release()

    def _request(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        auth: httpx.BasicAuth | None,
        json: object,
        form: Mapping[str, str] | None,
    ) -> httpx.Request:
        """The request as ``httpx.AsyncClient.build_request`` and its auth would make it."""
        merged = httpx.Headers(self._headers)
        merged.update(headers)
        request = httpx.Request(
            method,
            url,
            headers=merged,
            json=json,
            data=dict(form) if form else None,
            extensions={"timeout": self._timeout},
        )
        if auth is not None:
            request = next(auth.auth_flow(request))  # sets Authorization, as send(auth=) does
        return request


async def _within(
    seconds: float, waiting: int, sending: Coroutine[object, object, httpx.Response]
) -> httpx.Response:
    """The response headers within ``seconds``, else _ProbeError."""
    try:
        async with asyncio.timeout(seconds) as probe:
            return await sending
    except TimeoutError:
        if probe.expired():
            raise _ProbeError(seconds, waiting) from None
        raise


@functools.lru_cache(maxsize=8192)  # a source's URL is parsed once, not on every poll
def _parse_url(url: str) -> tuple[httpx.URL, str]:
    """``url`` parsed, and as it may be shown (secrets redacted); FetchError when it is not a
    valid http(s) URL."""
    safe = redact_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"invalid URL {safe}") from exc
    _check_scheme(parsed, safe)
    return parsed, safe


# what a request can fail with before it has a status: each becomes one FetchError line
_TRANSPORT_ERRORS = (
    _DeadlineError,
    _ProbeError,
    TimeoutError,
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    OSError,
    zlib.error,
)


def _transport_error(exc: BaseException, doing: str, where: str, total: float) -> FetchError:
    """The one line for a request to ``where`` that failed without a status (``doing``:
    "fetching" or "posting to"); the one mapping of transport errors for GET and POST."""
    if isinstance(exc, _DeadlineError):
        return FetchError(f"timed out after {total:g}s (total_timeout) {doing} {where}")
    if isinstance(exc, _ProbeError):
        return FetchError(
            f"no answer within {exc.seconds:g}s to a first try while {exc.waiting} more "
            f"requests waited for its host, {doing} {where}; the next try gets the "
            f"full {total:g}s"
        )
    if isinstance(exc, TimeoutError):
        return FetchError(f"timed out {doing} {where}")
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.removesuffix("Timeout").lower()
        return FetchError(f"{kind} timeout {doing} {where}")
    if isinstance(exc, zlib.error):
        return FetchError(f"body could not be decompressed from {where}")
    detail = " ".join(str(exc).split())[:200] or "no detail"
    return FetchError(f"{type(exc).__name__} ({detail}) {doing} {where}")


def _status_error(status: int, headers: httpx.Headers, body: bytes, where: str) -> FetchError:
    reason = httpx.codes.get_reason_phrase(status)
    retry = _retry_after(headers.get("retry-after")) if status in (429, 503) else None
    if retry is None and status == 429:  # rate-limit headers without Retry-After
        reset = (headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset") or "").strip()
        if reset.replace(".", "", 1).isdigit():  # epoch seconds, or seconds from now
            value = float(reset)
            retry = max(0.0, value - time.time()) if value > 1e9 else value
        elif reset:  # an ISO date (Mastodon)
            try:
                when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
            except ValueError:
                when = None
            if when is not None:
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                retry = max(0.0, (when - datetime.now(UTC)).total_seconds())
    message = f"HTTP {status} {reason}".rstrip() + f" from {where}"
    return FetchError(message, status=status, retry_after=retry, body=body)


def _check_scheme(url: httpx.URL, safe: str) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchError(f"only http and https URLs can be fetched, not {safe}")
