"""Host slots, fair queueing and cross-origin credentials of listener.sources.client, against
real servers on 127.0.0.1 (raw sockets where a server must hang)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from httpd import serve
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from listener.errors import FetchError
from listener.sources.client import Client, HttpSettings
from listener.sources.slots import HostSlots

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Host:
    """A server on which paths starting with /dead never answer; every request path is logged
    in arrival order."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, conn: socket.socket, head: bytes) -> None:
        path = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "?"
        with self._lock:
            self.paths.append(path)
        if path.startswith("/dead"):
            self.release.wait(60)  # hangs until the test ends
            return
        conn.sendall(OK)


@pytest.fixture
def host() -> Iterator[tuple[Host, str]]:
    handler = Host()
    with serve(handler) as base:
        yield handler, base
        handler.release.set()


def test_waiting_for_a_slot_is_not_part_of_the_deadline(host: tuple[Host, str]) -> None:
    handler, base = host

    async def go() -> tuple[BaseException | None, bytes]:
        async with Client(HttpSettings(per_host_limit=1, total_timeout=1.0)) as client:
            dead = asyncio.create_task(client.get(f"{base}/dead"))
            while not handler.paths:  # the dead request holds the only slot
                await asyncio.sleep(0.01)
            healthy = await client.get(f"{base}/ok")  # waits ~1 s for the slot, then 1 s budget
            try:
                await dead
            except FetchError as exc:
                return exc, healthy.body
            return None, healthy.body

    error, body = asyncio.run(go())
    assert body == b"ok"
    assert error is not None and "timed out after 1s (total_timeout)" in str(error)


def test_failing_urls_queue_behind_healthy_ones(host: tuple[Host, str]) -> None:
    handler, base = host

    async def go() -> bytes:
        async with Client(HttpSettings(per_host_limit=1, total_timeout=2.0)) as client:
            for i in range(4):  # each dead URL has failed before
                client.mark_failing(f"{base}/dead{i}")
            dead = [asyncio.create_task(client.get(f"{base}/dead{i}")) for i in range(4)]
            await asyncio.sleep(0)  # the dead requests queue first
            healthy = await client.get(f"{base}/ok")
            for task in dead:
                task.cancel()
            await asyncio.gather(*dead, return_exceptions=True)
            return healthy.body

    assert asyncio.run(go()) == b"ok"
    # one dead request held the slot; the healthy one came next, not after all four
    assert [p for p in handler.paths if p != "?"][:2] == ["/dead0", "/ok"]


def test_a_timeout_marks_a_url_as_failing(host: tuple[Host, str]) -> None:
    handler, base = host

    async def go() -> None:
        async with Client(HttpSettings(per_host_limit=1, total_timeout=1.0)) as client:
            with pytest.raises(FetchError):
                await client.get(f"{base}/dead0")  # fails: queued behind others from now on
            blocker = asyncio.create_task(client.get(f"{base}/dead1"))
            await asyncio.sleep(0)
            later = [asyncio.create_task(client.get(f"{base}/{p}")) for p in ("dead0", "ok")]
            await asyncio.gather(blocker, *later, return_exceptions=True)

    asyncio.run(go())
    order = [p for p in handler.paths if p != "?"]
    assert order.index("/ok") < len(order) - 1 and order[-1] == "/dead0"


def test_new_urls_are_first_come_first_served(host: tuple[Host, str]) -> None:
    handler, base = host

    async def go() -> None:
        async with Client(HttpSettings(per_host_limit=1, total_timeout=0.5)) as client:
            tasks = [asyncio.create_task(client.get(f"{base}/dead{i}")) for i in range(3)]
            tasks.append(asyncio.create_task(client.get(f"{base}/ok")))
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())
    # (a request timed out before its head arrived under load shows as "?")
    assert [p for p in handler.paths if p != "?"][-1] == "/ok"


def test_cancelled_requests_return_their_slots(host: tuple[Host, str]) -> None:
    handler, base = host

    async def go() -> bytes:
        async with Client(HttpSettings(per_host_limit=2, total_timeout=60)) as client:
            tasks = [asyncio.create_task(client.get(f"{base}/dead{i}")) for i in range(10)]
            while len(handler.paths) < 2:  # two in flight, eight waiting
                await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return (await client.get(f"{base}/ok")).body

    assert asyncio.run(go()) == b"ok"


def test_a_slot_handed_to_a_waiter_cancelled_at_once_is_passed_on() -> None:
    async def go() -> int:
        slots = HostSlots(1)
        await slots.acquire()
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)  # queued
        slots.release()  # handed to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return slots.busy

    assert asyncio.run(go()) == 0


# --- credentials on redirects to another origin ------------------------------------------------


def _echo_redirect(target: str) -> object:
    def handler(request: Request) -> Response:
        query = request.query_string.decode()
        return Response("", status=302, headers={"Location": f"{target}?{query}"})

    return handler


def test_secret_query_parameters_never_reach_another_origin(
    httpserver: HTTPServer, other_server: HTTPServer
) -> None:
    httpserver.expect_request("/feed").respond_with_handler(
        _echo_redirect(other_server.url_for("/feed"))  # type: ignore[arg-type]
    )
    other_server.expect_request("/feed").respond_with_data("<rss/>")
    url = httpserver.url_for(
        "/feed?q=brand&api_key=K3Y1&access_token=T0K2&sig=S1G3&region=from-env-v4l"
    )
    settings = HttpSettings(secrets=frozenset({"from-env-v4l"}))

    async def go() -> bytes:
        async with Client(settings) as client:
            return (await client.get(url)).body

    assert asyncio.run(go()) == b"<rss/>"
    sent = unquote(other_server.log[0][0].query_string.decode())
    assert sent == "q=brand"


def test_a_secret_in_the_path_of_another_origin_is_refused(
    httpserver: HTTPServer, other_server: HTTPServer
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        "", status=302, headers={"Location": other_server.url_for("/K3Y1-secret/feed")}
    )

    async def go() -> None:
        async with Client() as client:
            await client.get(httpserver.url_for("/feed?key=K3Y1-secret"))

    with pytest.raises(FetchError) as info:
        asyncio.run(go())
    assert "would carry a credential" in str(info.value)
    assert "K3Y1" not in str(info.value)
    assert not other_server.log


def test_callers_can_refuse_other_origins(httpserver: HTTPServer, other_server: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_data(
        "", status=302, headers={"Location": other_server.url_for("/api")}
    )

    async def go() -> None:
        async with Client() as client:
            await client.get(httpserver.url_for("/api"), cross_origin=False)

    with pytest.raises(FetchError) as info:
        asyncio.run(go())
    assert "another origin" in str(info.value) and "cross_origin_redirects" in str(info.value)
    assert not other_server.log


def test_304_to_an_unconditional_request_is_a_server_fault(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data("", status=304)

    async def go() -> None:
        async with Client() as client:
            await client.get(httpserver.url_for("/feed"))

    with pytest.raises(FetchError) as info:
        asyncio.run(go())
    assert "304" in str(info.value) and "unconditional" in str(info.value)


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_first_tries_on_a_busy_host_are_short_probes(host: tuple[Host, str]) -> None:
    _, base = host

    async def go() -> list[BaseException | object]:
        async with Client(HttpSettings(per_host_limit=1, total_timeout=5)) as client:
            tasks = [asyncio.create_task(client.get(f"{base}/dead{i}")) for i in range(4)]
            tasks.append(asyncio.create_task(client.get(f"{base}/ok")))
            return await asyncio.gather(*tasks, return_exceptions=True)

    first, *probed, healthy = asyncio.run(go())
    # the first request had the host to itself: the full deadline
    assert isinstance(first, FetchError) and "total_timeout" in str(first)
    for error in probed:  # first tries while others waited: a 1 s probe each, not 5 s
        assert isinstance(error, FetchError) and "first try" in str(error)
    assert getattr(healthy, "body", None) == b"ok"


def test_urls_that_answered_go_before_new_ones(host: tuple[Host, str]) -> None:
    handler, base = host

    async def go() -> bytes:
        async with Client(HttpSettings(per_host_limit=1, total_timeout=2.0)) as client:
            await client.get(f"{base}/ok")  # answered before
            handler.paths.clear()
            new = [asyncio.create_task(client.get(f"{base}/dead{i}")) for i in range(4)]
            await asyncio.sleep(0)  # queued first, never tried
            healthy = await client.get(f"{base}/ok")
            for task in new:
                task.cancel()
            await asyncio.gather(*new, return_exceptions=True)
            return healthy.body

    assert asyncio.run(go()) == b"ok"
    assert [p for p in handler.paths if p != "?"][:2] == ["/dead0", "/ok"]
