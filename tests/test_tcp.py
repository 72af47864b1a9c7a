"""listener.sources.tcp (plain-http streams on asyncio transports) and wire's lazy TLS context,
against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpcore
import httpx
import pytest
from httpd import read_head, serve

from listener.errors import FetchError
from listener.sources.client import Client, HttpSettings
from listener.sources.tcp import HIGH_WATER, AsyncioBackend, AsyncioStream
from listener.sources.wire import PerOriginTransport


def _ok(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@contextmanager
def keep_alive(answers: int, *, close_after: bool = False) -> Iterator[tuple[str, list[int]]]:
    """A server answering up to ``answers`` requests per connection (then closing it, or
    closing after each answer with ``close_after``); yields its base URL and a list with one
    entry (the number of requests answered) per accepted connection."""
    connections: list[int] = []
    lock = threading.Lock()

    def handler(conn: socket.socket, head: bytes) -> None:
        with lock:
            index = len(connections)
            connections.append(0)
        while head:
            connections[index] += 1
            path = head.split(b" ")[1]
            conn.sendall(_ok(b"body of " + path))
            if close_after or connections[index] >= answers:
                conn.shutdown(socket.SHUT_WR)
                return
            head = read_head(conn)

    with serve(handler) as base:
        yield base, connections


def _get_all(base: str, paths: list[str], settings: HttpSettings) -> list[bytes]:
    async def go() -> list[bytes]:
        async with Client(settings) as client:
            bodies = []
            for path in paths:  # one after another: each may reuse the last one's connection
                bodies.append((await client.get(base + path)).body)
                await asyncio.sleep(0.05)  # the loop sees a server's close while idle
            return bodies

    return asyncio.run(go())


def test_keep_alive_connections_are_reused() -> None:
    with keep_alive(100) as (base, connections):
        bodies = _get_all(base, [f"/{n}" for n in range(5)], HttpSettings(per_host_limit=1))
    assert bodies == [f"body of /{n}".encode() for n in range(5)]
    assert connections == [5]


def test_a_connection_the_server_closed_is_not_reused() -> None:
    with keep_alive(2) as (base, connections):
        bodies = _get_all(base, [f"/{n}" for n in range(5)], HttpSettings(per_host_limit=1))
    assert bodies == [f"body of /{n}".encode() for n in range(5)]
    assert connections == [2, 2, 1]


def test_a_server_closing_after_every_answer_costs_a_connection_each() -> None:
    with keep_alive(100, close_after=True) as (base, connections):
        bodies = _get_all(base, ["/a", "/b", "/c"], HttpSettings(per_host_limit=1))
    assert bodies == [b"body of /a", b"body of /b", b"body of /c"]
    assert connections == [1, 1, 1]


def test_a_server_closing_without_an_answer_is_a_fetch_error() -> None:
    def hang_up(conn: socket.socket, head: bytes) -> None:
        conn.shutdown(socket.SHUT_RDWR)

    with serve(hang_up) as base, pytest.raises(FetchError) as info:
        _get_all(base, ["/feed"], HttpSettings())
    assert str(info.value) == (
        f"RemoteProtocolError (Server disconnected without sending a response.) "
        f"fetching {base}/feed"
    )


def test_http_origins_use_asyncio_streams() -> None:
    async def go(base: str) -> object:
        transport = PerOriginTransport(2)
        try:
            response = await transport.handle_async_request(httpx.Request("GET", base + "/x"))
            await response.aread()
            return response.extensions["network_stream"]
        finally:
            await transport.aclose()

    with keep_alive(1) as (base, _):
        stream = asyncio.run(go(base))
    assert isinstance(stream, AsyncioStream)


# --- the stream itself ------------------------------------------------------------------------


async def _connect(port: int, timeout: float | None = 5.0) -> httpcore.AsyncNetworkStream:
    return await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=timeout)


@contextmanager
def raw_server(handler: Callable[[socket.socket], None], connections: int = 1) -> Iterator[int]:
    """A TCP server running ``handler(conn)`` in a thread for its first ``connections``
    connections, one after another; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        for _ in range(connections):
            conn, _ = listener.accept()
            with conn:
                handler(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(10)


def test_reads_return_at_most_max_bytes_and_the_whole_stream_in_order() -> None:
    data = bytes(range(256)) * (3 * HIGH_WATER // 256)  # past the read-ahead: pauses reading

    def send(conn: socket.socket) -> None:
        for start in range(0, len(data), 10_000):  # in pieces, as a network delivers them
            conn.sendall(data[start : start + 10_000])
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # until the client closes

    async def go(port: int) -> tuple[bytes, list[int]]:
        stream = await _connect(port)
        received, sizes = bytearray(), []
        await asyncio.sleep(0.2)  # let the server fill the read-ahead buffer and more
        while chunk := await stream.read(4096, timeout=5):
            received += chunk
            sizes.append(len(chunk))
        assert await stream.read(4096, timeout=5) == b""  # end of stream stays so
        await stream.aclose()
        return bytes(received), sizes

    with raw_server(send) as port:
        received, sizes = asyncio.run(go(port))
    assert received == data
    assert max(sizes) <= 4096


def test_a_read_times_out() -> None:
    def stall(conn: socket.socket) -> None:
        conn.recv(1)  # until the client closes

    async def go(port: int) -> None:
        stream = await _connect(port)
        try:
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(4096, timeout=0.1)
        finally:
            await stream.aclose()

    with raw_server(stall) as port:
        asyncio.run(go(port))


def test_a_write_times_out_when_the_server_reads_nothing() -> None:
    done = threading.Event()

    def deaf(conn: socket.socket) -> None:
        done.wait(10)

    async def go(port: int) -> None:
        stream = await _connect(port)
        try:
            with pytest.raises(httpcore.WriteTimeout):
                for _ in range(1000):  # the socket buffers fill, then a write must wait
                    await stream.write(b"x" * 1024 * 1024, timeout=0.1)
        finally:
            await stream.aclose()
            done.set()

    with raw_server(deaf) as port:
        asyncio.run(go(port))


def test_a_connection_reset_is_a_read_error_and_the_stream_says_so() -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    async def go(port: int) -> None:
        stream = await _connect(port)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        with pytest.raises(httpcore.ReadError) as info:
            while await stream.read(4096, timeout=5):
                pass
        assert str(info.value) == ""  # as anyio's backend: the OS error is the cause
        assert isinstance(info.value.__cause__, ConnectionResetError)
        assert stream.get_extra_info("is_readable") is True
        await stream.aclose()

    with raw_server(reset) as port:
        asyncio.run(go(port))


def test_an_idle_stream_is_readable_once_data_or_the_end_arrives() -> None:
    go_on = threading.Event()

    def talk(conn: socket.socket) -> None:
        go_on.wait(10)
        conn.sendall(b"late")
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)

    async def go(port: int) -> tuple[bool, bool, bytes]:
        stream = await _connect(port)
        quiet = stream.get_extra_info("is_readable")
        go_on.set()
        deadline = time.monotonic() + 5
        while not stream.get_extra_info("is_readable") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        readable = stream.get_extra_info("is_readable")
        data = await stream.read(4096, timeout=5)
        await stream.aclose()
        return quiet, readable, data

    with raw_server(talk) as port:
        quiet, readable, data = asyncio.run(go(port))
    assert (quiet, readable, data) == (False, True, b"late")


def test_refused_connections_keep_anyio_backends_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpcore.ConnectError) as info:
        asyncio.run(_connect(port))
    assert str(info.value) == "All connection attempts failed"
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


# --- the TLS context: made on the first https origin ------------------------------------------


def test_an_http_only_client_builds_no_tls_context() -> None:
    async def go(base: str) -> PerOriginTransport:
        async with Client(HttpSettings()) as client:
            await client.get(base + "/a")
            await client.get(base.replace("127.0.0.1", "localhost") + "/b")
            transport = client._transport  # what the client made
            assert isinstance(transport, PerOriginTransport)
            assert [pool._pool._ssl_context for pool in transport._pools.values()] == [None, None]
            return transport

    with keep_alive(100) as (base, _):
        transport = asyncio.run(go(base))
    assert transport.ssl_context is None


def test_the_tls_context_is_made_on_the_first_https_origin_and_shared() -> None:
    def no_tls(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 400 Not TLS\r\n\r\n")  # to a ClientHello

    async def go(
        plain: str, base: str
    ) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None, list[str]]:
        errors = []
        async with Client(HttpSettings()) as client:
            transport = client._transport  # what the client made
            assert isinstance(transport, PerOriginTransport)
            await client.get(plain + "/plain")
            before = transport.ssl_context
            for host in ("127.0.0.1", "localhost"):
                secure = base.replace("http://127.0.0.1", f"https://{host}")
                with pytest.raises(FetchError) as info:
                    await client.get(secure + "/feed")
                errors.append(str(info.value))
            contexts = {id(pool._pool._ssl_context) for pool in transport._pools.values()}
            assert len(contexts) == 2  # None for http, the one context for both https
            return before, transport.ssl_context, errors

    with keep_alive(100) as (plain, _), raw_server(no_tls, 2) as port:
        before, after, errors = asyncio.run(go(plain, f"http://127.0.0.1:{port}"))
    assert before is None
    assert isinstance(after, ssl.SSLContext)
    assert after.verify_mode == ssl.CERT_REQUIRED and after.check_hostname
    assert all(error.startswith("ConnectError (") for error in errors)
