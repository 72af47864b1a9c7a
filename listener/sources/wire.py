"""The bytes on the wire, below ``client``: one small connection pool per origin, bodies read
with a bounded decompressed size, error bodies drained so connections can be kept alive.

A body may be spooled: once it passes ``SPOOL_BYTES`` it is written to a temporary file as it
arrives (decompressed, still within the cap), so a big feed is never held whole in memory; the
file (mode 0600, in the temporary directory: systemd's PrivateTmp) belongs to the caller, who
deletes it. A body that fails (too large, broken, cancelled) leaves no file behind. A file's
name carries the process id (``listener-body-<pid>-...``): files of a process that is gone
(kill -9) are removed by ``remove_orphans``, which the orchestrator calls at start, and so
are files named by versions before the pid was in the name, once they are an hour old.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import stat
import tempfile
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx

from listener.errors import FetchError

if TYPE_CHECKING:  # imported when a transport is made (see PerOriginTransport)
    import httpcore

__all__ = ["SPOOL_BYTES", "PerOriginTransport", "drain", "read_body", "remove_orphans"]

SPOOL_BYTES = 1 << 20  # a body past this size goes to a temporary file (feed_split.SPLIT_BYTES)
SPOOL_PREFIX = "listener-body-"
# <prefix><pid>-<mkstemp's 8 characters>, and the transcoded copy: that name plus ".utf-8"
_ORPHAN = re.compile(re.escape(SPOOL_PREFIX) + r"(\d+)-[a-z0-9_]+(?:\.utf-8)?")
# the names of versions before the pid: <prefix><mkstemp's 8 characters>[.utf-8]
_LEGACY = re.compile(re.escape(SPOOL_PREFIX) + r"[a-z0-9_]{8}(?:\.utf-8)?")
LEGACY_AGE = 3600.0  # seconds unmodified after which a file named without a pid is left over


def remove_orphans(now: float | None = None) -> int:
    """Delete spooled bodies (and their copies) whose process is gone, and those named by
    versions before the pid was in the name once unmodified for LEGACY_AGE (a poll never
    takes that long: an older daemon still running keeps its file); return how many. Only
    regular files of ours, in the temporary directory, with exactly these names."""
    removed = 0
    now = time.time() if now is None else now
    try:
        paths = list(Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"))
    except OSError:
        return 0
    for path in paths:
        found = _ORPHAN.fullmatch(path.name)
        if found is not None:
            if _alive(int(found.group(1))):
                continue
        elif _LEGACY.fullmatch(path.name) is None:
            continue
        with contextlib.suppress(OSError):
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            if found is None and now - info.st_mtime < LEGACY_AGE:
                continue
            path.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class _Decoder:
    """Incremental content decoder whose every call returns at most ``limit`` bytes."""

    def __init__(self, encoding: str) -> None:
        self._pending: bytes | None = b"" if encoding == "deflate" else None
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._pending is not None:  # deflate: zlib-wrapped or raw? Decide from 2 bytes.
            data, self._pending = self._pending + data, None
            if len(data) < 2:
                self._pending = data
                return b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._zlib is None:
            return data
        return self._zlib.decompress(data, limit)

    def flush(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


class _Spool:
    """Where a body is written as it arrives: memory up to ``limit`` bytes, then a file."""

    def __init__(self, limit: int | None) -> None:
        self.size = 0
        self._limit = limit
        self._memory = bytearray()
        self._file: BinaryIO | None = None
        self._path: Path | None = None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._memory += data
        if self._limit is not None and len(self._memory) > self._limit:
            handle, name = tempfile.mkstemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")
            self._path = Path(name)
            self._file = os.fdopen(handle, "wb")
            self._file.write(self._memory)
            self._memory = bytearray()

    def result(self) -> bytes | Path:
        if self._file is None:
            return bytes(self._memory)
        assert self._path is not None
        self._file.close()
        return self._path

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()


async def read_body(
    response: httpx.Response, cap: int, safe: str, *, spool: int | None = None
) -> bytes | Path:
    """A 2xx body, decompressed here with a bounded output: FetchError past ``cap`` bytes
    (raw or decoded), so neither a huge body nor a decompression bomb gets through. With
    ``spool``, a body past that many bytes is written to a temporary file whose Path is
    returned (the caller deletes it); otherwise, and for smaller bodies, the bytes."""
    too_large = FetchError(f"body larger than {cap / 1024 / 1024:.1f} MB from {safe}")
    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > cap:
        raise too_large
    codings = [
        c.strip().lower()
        for c in response.headers.get("content-encoding", "").split(",")
        if c.strip().lower() not in ("", "identity")
    ]
    encoding = {"x-gzip": "gzip"}.get(codings[0], codings[0]) if codings else "identity"
    if len(codings) > 1 or encoding not in ("gzip", "deflate", "identity"):
        codings_text = ", ".join(codings)[:50]
        raise FetchError(f"unsupported Content-Encoding {codings_text!r} from {safe}")
    decoder, raw, body = _Decoder(encoding), 0, _Spool(spool)
    try:
        async for chunk in response.aiter_raw():
            raw += len(chunk)
            body.write(decoder.decode(chunk, cap - body.size + 1))
            if raw > cap or body.size > cap:
                raise too_large
        body.write(decoder.flush())
        if body.size > cap:
            raise too_large
        return body.result()
    except BaseException:
        body.discard()
        raise


class PerOriginTransport(httpx.AsyncBaseTransport):
    """Routes each request to a small connection pool of its own origin.

    httpcore scans every connection of a pool (with a syscall each) whenever a request starts or
    ends, so one pool of a hundred connections costs O(n^2) per cycle; measured on 1,000 feeds
    it took most of a cycle. Pools per origin stay as small as ``per_host_limit``. The one
    httpx.AsyncClient on top still applies headers, timeouts and cookies for all of them.

    Plain http origins talk through ``tcp`` (asyncio's transports, about a third less CPU per
    request than anyio's streams); https origins keep httpcore's default backend. The TLS
    context (CA bundle loaded: ~25 ms and ~3 MB) is made on the first https origin, so an
    http-only client never builds one; all https pools share it. httpcore, h11 and anyio are
    imported here, when the client is made, not inside the first request of a cycle.
    """

    def __init__(self, per_origin: int) -> None:
        import anyio._backends._asyncio  # noqa: F401  # httpcore's locks load it on first use
        import httpcore

        from listener.sources.tcp import AsyncioBackend

        self._httpcore = httpcore
        self._backend = AsyncioBackend()
        self._limits = httpx.Limits(
            max_connections=per_origin, max_keepalive_connections=per_origin, keepalive_expiry=30
        )
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}
        self.ssl_context: ssl.SSLContext | None = None  # made on the first https origin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.url.host, request.url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _OriginTransport(self._pool(request.url.scheme == "https"))
        return await pool.handle_async_request(request)

    def _pool(self, tls: bool) -> httpcore.AsyncConnectionPool:
        """A connection pool as httpx.AsyncHTTPTransport(verify=<the one context>) makes it;
        over asyncio's transports for http."""
        if tls and self.ssl_context is None:
            self.ssl_context = httpx.create_ssl_context()
        return self._httpcore.AsyncConnectionPool(
            ssl_context=self.ssl_context if tls else None,
            max_connections=self._limits.max_connections,
            max_keepalive_connections=self._limits.max_keepalive_connections,
            keepalive_expiry=self._limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=None if tls else self._backend,
        )

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class _OriginTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (request and response mapping, its exceptions) over a pool made by
    ``PerOriginTransport``: its own constructor would build an SSL context for every pool."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:  # no super(): see above
        self._pool = pool


async def drain(response: httpx.Response, limit: int = 64 * 1024) -> bytes:
    """Read a small non-2xx body so that the connection can be kept alive (an unread response
    closes its connection); a larger body is left and the connection closed. Returns its first
    4 KB as sent (possibly compressed: callers only look into it when it is plain)."""
    drained = 0
    start = bytearray()
    async for chunk in response.aiter_raw():
        drained += len(chunk)
        if len(start) < 4096:
            start += chunk[: 4096 - len(start)]
        if drained > limit:
            break
    return bytes(start)
