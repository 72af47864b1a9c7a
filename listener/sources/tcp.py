"""Plain-http connections for httpcore straight on asyncio's transports and protocols.

httpcore's default network backend (anyio) costs about a third of a request's CPU on a
keep-alive connection: every read resumes and pauses reading (two epoll syscalls), waits under a
cancel scope, and the pool's idle check ("is the server gone?") builds anyio's whole attribute
table, peer address lookup included, for every idle connection on every request. Here one
object is the protocol and the stream: the transport reads all the time into a bounded buffer
(reading pauses past ``HIGH_WATER`` bytes and resumes once the reader drained most of it), a
read takes from the buffer without waiting when there is data, and timeouts are one timer.

Rules, as anyio's backend keeps them (so that what a fetch reports does not change):
- Errors are httpcore's: ConnectTimeout/ConnectError while connecting (a name that does not
  resolve keeps the resolver's message; a refused or unreachable address says "All connection
  attempts failed"), ReadTimeout/ReadError and WriteTimeout/WriteError afterwards, with no
  message (the OS error is the cause). End of stream is ``b""``.
- A write returns once the kernel took the bytes (write buffer limit 0), within its timeout.
- ``is_readable`` (the pool's idle check) is true when data, end of stream or an error came in
  while idle, and otherwise asks the socket, as httpcore does.
- TLS is not done here (``start_tls`` is not implemented): https origins keep anyio's backend.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
from httpcore._backends.base import SOCKET_OPTION  # the interface's own alias
from httpcore._utils import is_socket_readable  # the idle check httpcore's backends use

__all__ = ["HIGH_WATER", "AsyncioBackend", "AsyncioStream"]

HIGH_WATER = 256 * 1024  # bytes read ahead before reading pauses (one selector read at most)
_CONNECT_FAILED = "All connection attempts failed"  # anyio's words: messages stay the same


class AsyncioStream(asyncio.Protocol, httpcore.AsyncNetworkStream):
    """One TCP connection: an asyncio protocol that is also httpcore's network stream."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._lost = False
        self._error: Exception | None = None  # what the connection was lost with
        self._closed = False  # closed by us
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None  # a read waiting for data
        self._drained: asyncio.Future[None] | None = None  # a write waiting for the kernel

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(0)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(bytes(data))
        self._size += len(data)
        if self._size >= HIGH_WATER and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # half-closed: a request being written may still go out, as with anyio

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        self._wake()
        self._resume()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._resume()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resume(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httpcore.AsyncNetworkStream -------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._chunks and not (self._eof or self._lost or self._closed):
            await self._wait(timeout)
        if self._chunks:
            chunk = self._chunks.popleft()
            if len(chunk) > max_bytes:
                chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
                self._chunks.appendleft(rest)
            self._size -= len(chunk)
            if self._reading_paused and self._size < HIGH_WATER // 4 and not self._lost:
                self._reading_paused = False
                assert self._transport is not None
                self._transport.resume_reading()
            return chunk
        if self._closed or self._error is not None:
            raise httpcore.ReadError() from self._error
        return b""  # end of stream

    async def _wait(self, timeout: float | None) -> None:
        """Until data, end of stream or loss arrives; ReadTimeout after ``timeout`` s."""
        waiter = self._waiter = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            raise httpcore.ReadTimeout() from None
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._closed:
            raise httpcore.WriteError()
        if self._writing_paused:
            await self._drain(timeout)
        if self._error is not None:
            raise httpcore.WriteError() from self._error
        assert self._transport is not None
        try:
            self._transport.write(buffer)
        except RuntimeError as exc:  # written after the transport closed
            if self._transport.is_closing():
                raise httpcore.WriteError() from exc
            raise
        if self._writing_paused:
            await self._drain(timeout)
            if self._closed:
                raise httpcore.WriteError()
            if self._error is not None:
                raise httpcore.WriteError() from self._error

    async def _drain(self, timeout: float | None) -> None:
        """Until the kernel took what is buffered (or the connection is lost); WriteTimeout
        after ``timeout`` s."""
        if self._lost:
            return
        drained = self._drained = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, drained)
        try:
            await drained
        except TimeoutError:
            raise httpcore.WriteTimeout() from None
        finally:
            self._drained = None
            if timer is not None:
                timer.cancel()

    async def aclose(self) -> None:
        self._closed = True
        self._wake()
        self._resume()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size():
                transport.abort()  # nothing waits for a server that does not read
            else:
                transport.close()

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":
            if self._chunks or self._eof or self._lost or self._closed or transport is None:
                return True
            return is_socket_readable(transport.get_extra_info("socket"))
        if transport is None:
            return None
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None  # "ssl_object" included: never TLS


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens plain TCP connections as ``AsyncioStream``s (http origins only)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout) as deadline:
                transport, stream = await loop.create_connection(
                    AsyncioStream,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=0.25,  # anyio's: IPv6 first, IPv4 250 ms later
                )
        except TimeoutError as exc:
            if deadline.expired():
                raise httpcore.ConnectTimeout() from None
            raise httpcore.ConnectError(_CONNECT_FAILED) from exc  # the OS's ETIMEDOUT
        except socket.gaierror as exc:  # the name did not resolve: the resolver's words
            raise httpcore.ConnectError(exc) from exc
        except OSError as exc:
            raise httpcore.ConnectError(_CONNECT_FAILED) from exc
        sock = transport.get_extra_info("socket")
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
        except OSError as exc:
            transport.abort()
            raise httpcore.ConnectError(exc) from exc
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
