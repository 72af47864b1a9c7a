"""listener.sources.client against real HTTP servers on 127.0.0.1 (no httpx mocking)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpd import serve
from pytest_httpserver import HTTPServer

from listener import __version__
from listener.errors import FetchError
from listener.sources import wire
from listener.sources.client import ACCEPT, Client, HttpSettings, Response, redact_url
from listener.sources.wire import SPOOL_BYTES, remove_orphans

FEED = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


def fetch(url: str, settings: HttpSettings | None = None, **kwargs: Any) -> Response:
    async def go() -> Response:
        async with Client(settings or HttpSettings()) as client:
            return await client.get(url, **kwargs)

    return asyncio.run(go())


def fetch_error(url: str, settings: HttpSettings | None = None, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, settings, **kwargs)
    assert not isinstance(info.value, httpx.HTTPError)
    return info.value


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second origin (same host, different port)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


# --- success, headers, conditional GET, statuses ------------------------------------------------


def test_get_returns_body_and_sends_our_headers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        FEED,
        content_type="application/rss+xml",
        headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 May 2024 10:00:00 GMT"},
    )
    response = fetch(httpserver.url_for("/feed"))
    assert response.status == 200
    assert response.body == FEED
    assert response.url == httpserver.url_for("/feed")
    assert response.content_type == "application/rss+xml"
    assert response.etag == '"v1"'
    assert response.last_modified == "Wed, 01 May 2024 10:00:00 GMT"
    assert response.permanent_url is None
    assert 0 <= response.elapsed < 5
    request = httpserver.log[0][0]
    assert request.headers["User-Agent"] == f"listener/{__version__} (social listening feed reader)"
    assert request.headers["Accept"] == ACCEPT
    assert request.headers["Accept-Encoding"] == "gzip, deflate"
    assert "If-None-Match" not in request.headers
    assert "Cookie" not in request.headers


def test_conditional_get_returns_304_and_sends_validators(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/feed",
        headers={"If-None-Match": '"v1"', "If-Modified-Since": "Wed, 01 May 2024 10:00:00 GMT"},
    ).respond_with_data("", status=304)
    response = fetch(
        httpserver.url_for("/feed"), etag='"v1"', last_modified="Wed, 01 May 2024 10:00:00 GMT"
    )
    assert (response.status, response.body) == (304, b"")
    httpserver.check_assertions()


def test_gone_is_a_return_value(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data("gone for good", status=410)
    response = fetch(httpserver.url_for("/feed"))
    assert (response.status, response.body) == (410, b"")


def test_http_error_names_status_and_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)
    error = fetch_error(httpserver.url_for("/missing"))
    assert str(error) == f"HTTP 404 Not Found from {httpserver.url_for('/missing')}"
    assert (error.status, error.retry_after) == (404, None)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", (120.0, 120.0)),
        (503, "IN-ONE-HOUR", (3500, 3601)),  # an HTTP date an hour ahead, made when the test runs
        (503, "Wed, 01 May 2019 10:00:00 GMT", (0.0, 0.0)),  # in the past: never negative
        (429, "soon-ish", None),
        (429, "ISO-RESET", None),
        (429, None, None),
    ],
)
def test_retry_after(
    httpserver: HTTPServer,
    status: int,
    retry_after: str | None,
    expected: tuple[float, float] | None,
) -> None:
    if retry_after == "ISO-RESET":  # Mastodon: no Retry-After, X-RateLimit-Reset as ISO time
        reset = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        httpserver.expect_request("/feed").respond_with_data(
            "slow down", status=429, headers={"X-RateLimit-Reset": reset}
        )
        error = fetch_error(httpserver.url_for("/feed"))
        assert error.retry_after is not None and 290 <= error.retry_after <= 301
        return
    if retry_after == "IN-ONE-HOUR":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    httpserver.expect_request("/feed").respond_with_data(
        "slow down", status=status, headers=headers
    )
    error = fetch_error(httpserver.url_for("/feed"))
    assert error.status == status
    if expected is None:
        assert error.retry_after is None
    else:
        assert error.retry_after is not None
        assert expected[0] <= error.retry_after <= expected[1]


# --- redirects --------------------------------------------------------------------------------


def test_permanent_redirects_set_permanent_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=301, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=308, headers={"Location": "c"})
    httpserver.expect_request("/c").respond_with_data(FEED)
    response = fetch(httpserver.url_for("/a"))
    assert response.body == FEED
    assert response.url == response.permanent_url == httpserver.url_for("/c")


@pytest.mark.parametrize("second", [302, 307])
def test_any_temporary_hop_means_no_permanent_url(httpserver: HTTPServer, second: int) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=301, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=second, headers={"Location": "/c"})
    httpserver.expect_request("/c").respond_with_data(FEED)
    response = fetch(httpserver.url_for("/a"))
    assert response.url == httpserver.url_for("/c")
    assert response.permanent_url is None


def test_too_many_redirects(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    error = fetch_error(httpserver.url_for("/loop"))
    assert str(error) == f"too many redirects (>5) from {httpserver.url_for('/loop')}"
    assert len(httpserver.log) == 6


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/feed"])
def test_redirect_to_other_scheme_is_refused(httpserver: HTTPServer, location: str) -> None:
    httpserver.expect_request("/a").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    assert "only http and https" in str(fetch_error(httpserver.url_for("/a")))


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed", "file:///etc/passwd", "not a url"])
def test_other_schemes_are_refused(url: str) -> None:
    assert "only http and https" in str(fetch_error(url))


# --- credentials ------------------------------------------------------------------------------

SECRET_HEADERS = {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "Cookie": "session=c00kie"}


def test_userinfo_and_headers_reach_the_original_origin(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data(FEED)
    url = httpserver.url_for("/a").replace("http://", "http://alice:pa%3Ass@")
    fetch(url, headers={"X-Api-Key": "k3y", "Cookie": "session=c00kie"})
    for request, _ in httpserver.log:
        expected = "Basic " + base64.b64encode(b"alice:pa:ss").decode()
        assert request.headers["Authorization"] == expected
        assert request.headers["X-Api-Key"] == "k3y"
        assert request.headers["Cookie"] == "session=c00kie"


@pytest.mark.parametrize("with_userinfo", [True, False])
def test_credentials_are_dropped_after_leaving_the_origin(
    httpserver: HTTPServer, other_server: HTTPServer, with_userinfo: bool
) -> None:
    httpserver.expect_request("/a").respond_with_data(
        "", status=302, headers={"Location": other_server.url_for("/b")}
    )
    # and back again: once the credentials left, they stay dropped
    other_server.expect_request("/b").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/c")}
    )
    httpserver.expect_request("/c").respond_with_data(FEED)
    url = httpserver.url_for("/a")
    headers = dict(SECRET_HEADERS)
    if with_userinfo:
        url = url.replace("http://", "http://alice:secret@")
        del headers["Authorization"]
    response = fetch(url, headers=headers, etag='"v1"')
    assert response.body == FEED
    first = httpserver.log[0][0]
    assert first.headers["Authorization"]
    assert first.headers["X-Api-Key"] == "k3y"
    later = [other_server.log[0][0], httpserver.log[1][0]]
    for request in later:
        for name in SECRET_HEADERS:
            assert name not in request.headers
        assert request.headers["If-None-Match"] == '"v1"'  # validators are not secrets


def test_cookies_set_by_servers_are_not_kept(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data(FEED, headers={"Set-Cookie": "id=tracker"})

    async def go() -> None:
        async with Client() as client:
            await client.get(httpserver.url_for("/a"))
            await client.get(httpserver.url_for("/a"))

    asyncio.run(go())
    assert "Cookie" not in httpserver.log[1][0].headers


# --- timeouts and transport errors ------------------------------------------------------------


def _drip(conn: socket.socket, head: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        conn.sendall(b"x")
        time.sleep(0.2)


def test_total_timeout_stops_a_dripping_server() -> None:
    settings = HttpSettings(total_timeout=1, read_timeout=5)
    with serve(_drip) as base:
        started = time.monotonic()
        error = fetch_error(base + "/feed", settings)
    assert time.monotonic() - started < 2
    assert str(error) == f"timed out after 1s (total_timeout) fetching {base}/feed"


def test_read_timeout() -> None:
    def stall(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        time.sleep(2)

    with serve(stall) as base:
        error = fetch_error(base + "/feed", HttpSettings(read_timeout=0.2))
    assert str(error) == f"read timeout fetching {base}/feed"
    assert isinstance(error.__cause__, httpx.ReadTimeout)


def test_connection_error_is_translated_and_redacted() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = fetch_error(f"http://bob:hunter2@127.0.0.1:{port}/feed?api_key=abc123&q=x")
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert f"fetching http://127.0.0.1:{port}/feed?api_key=***&q=x" in str(error)
    assert "hunter2" not in str(error)
    assert "abc123" not in str(error)
    assert "\n" not in str(error)


# --- body size and content encodings ----------------------------------------------------------

SMALL = HttpSettings(max_body_bytes=1024 * 1024)


def test_content_length_over_the_cap_is_refused_early(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * (1024 * 1024 + 1))
    error = fetch_error(httpserver.url_for("/big"), SMALL)
    assert str(error) == f"body larger than 1.0 MB from {httpserver.url_for('/big')}"


def test_streamed_body_over_the_cap_without_content_length() -> None:
    def endless(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(40):
            conn.sendall(b"x" * 65536)

    with serve(endless) as base:
        error = fetch_error(base + "/feed", SMALL)
    assert "body larger than 1.0 MB" in str(error)


def test_default_cap_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * (10 * 1024 * 1024 + 1))
    assert "body larger than 10.0 MB" in str(fetch_error(httpserver.url_for("/big")))


def test_body_exactly_at_the_cap_is_fine(httpserver: HTTPServer) -> None:
    body = b"y" * (1024 * 1024)
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    assert fetch(httpserver.url_for("/gz"), SMALL).body == body


def test_gzip_bomb_is_refused(httpserver: HTTPServer) -> None:
    bomb = gzip.compress(bytes(50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100 * 1024
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    error = fetch_error(httpserver.url_for("/bomb"), SMALL)
    assert "body larger than 1.0 MB" in str(error)


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary files go here, so a test can see what is left."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    return spool


def test_a_big_body_is_spooled_to_a_file_decompressed_and_a_small_one_kept_in_memory(
    httpserver: HTTPServer, spool_dir: Path
) -> None:
    body = bytes(range(256)) * (SPOOL_BYTES // 256 + 100)
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    httpserver.expect_request("/small").respond_with_data(FEED)
    response = fetch(httpserver.url_for("/gz"), spool=True)
    assert response.body == b"" and response.file is not None
    assert response.file.parent == spool_dir and response.file.read_bytes() == body
    assert response.file.stat().st_mode & 0o077 == 0  # readable by us alone
    response.discard()
    assert list(spool_dir.iterdir()) == []
    small = fetch(httpserver.url_for("/small"), spool=True)
    assert (small.body, small.file) == (FEED, None)
    assert fetch(httpserver.url_for("/gz")).body == body  # not asked to spool: bytes


def test_a_spooled_body_over_the_cap_or_a_bomb_leaves_no_file(
    httpserver: HTTPServer, spool_dir: Path
) -> None:
    def endless(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(40):
            conn.sendall(b"x" * 65536)

    bomb = gzip.compress(bytes(50 * 1024 * 1024), compresslevel=9)
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    assert "body larger than 1.0 MB" in str(
        fetch_error(httpserver.url_for("/bomb"), SMALL, spool=True)
    )
    with serve(endless) as base:
        assert "body larger than 1.0 MB" in str(fetch_error(base + "/feed", SMALL, spool=True))
    assert list(spool_dir.iterdir()) == []


def test_bodies_spooled_by_a_process_that_is_gone_are_removed(spool_dir: Path) -> None:
    """kill -9 leaves a spooled body behind; the next start removes it (and its UTF-8 copy),
    never a live process's file nor anything else."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = [
        f"listener-body-{gone.pid}-abc",
        f"listener-body-{gone.pid}-abc.utf-8",
        f"listener-body-{os.getpid()}-def",
        "listener-body-notapid",
        "other-file",
    ]
    for name in names:
        (spool_dir / name).write_bytes(b"x")
    assert remove_orphans() == 2
    assert sorted(p.name for p in spool_dir.iterdir()) == sorted(names[2:])


def test_bodies_spooled_by_versions_before_the_pid_are_removed_once_old(spool_dir: Path) -> None:
    """Names without a pid (versions before it was added) cannot be told from a running older
    daemon's by name: removed once unmodified for an hour, and only our own regular files with
    exactly mkstemp's names; nothing outside the spool directory."""
    outside = spool_dir.parent / "listener-body-abcd1234"
    outside.write_bytes(b"x")
    old_names = ["listener-body-abcd1234", "listener-body-k9_x0qz7.utf-8"]
    fresh_names = ["listener-body-zyxw9876", "listener-body-zyxw9876.utf-8"]
    other_names = [
        "listener-body-abcd12345",  # not mkstemp's 8 characters
        "listener-body-abc",
        "listener-body-abcd1234.bak",
        "listener-body-ABCD1234",
        "other-abcd1234",
    ]
    for name in old_names + fresh_names + other_names:
        (spool_dir / name).write_bytes(b"x")
    (spool_dir / "listener-body-link0000").symlink_to(outside)
    (spool_dir / "listener-body-dir00000").mkdir()
    now = time.time()
    hour_ago = now - wire.LEGACY_AGE - 1
    for name in old_names + other_names + ["listener-body-dir00000"]:
        os.utime(spool_dir / name, (hour_ago, hour_ago))
    os.utime(outside, (hour_ago, hour_ago))
    os.utime(spool_dir / "listener-body-link0000", (hour_ago, hour_ago), follow_symlinks=False)
    assert remove_orphans(now) == len(old_names)
    left = sorted(p.name for p in spool_dir.iterdir())
    assert left == sorted(
        [*fresh_names, *other_names, "listener-body-link0000", "listener-body-dir00000"]
    )
    assert outside.exists()
    assert remove_orphans(now + wire.LEGACY_AGE) == len(fresh_names)  # an hour later
    assert not any(p.name in fresh_names for p in spool_dir.iterdir())


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
        ("identity", lambda data: data),
    ],
)
def test_content_encodings(httpserver: HTTPServer, encoding: str, encode: Any) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        encode(FEED * 100), headers={"Content-Encoding": encoding}
    )
    assert fetch(httpserver.url_for("/feed")).body == FEED * 100


def test_deflate_dripped_one_byte_at_a_time() -> None:
    body = _raw_deflate(FEED)

    def drip(conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
            % len(body)
        )
        for byte in body:
            conn.sendall(bytes([byte]))

    with serve(drip) as base:
        assert fetch(base + "/feed").body == FEED


def test_unknown_encoding_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(FEED, headers={"Content-Encoding": "br"})
    assert "unsupported Content-Encoding 'br'" in str(fetch_error(httpserver.url_for("/feed")))


def test_corrupt_gzip_is_a_fetch_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        b"not gzip at all", headers={"Content-Encoding": "gzip"}
    )
    assert "could not be decompressed" in str(fetch_error(httpserver.url_for("/feed")))


# --- per-host concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2])
def test_per_host_limit(limit: int) -> None:
    lock, active, peak = threading.Lock(), [0], [0]

    def slow(conn: socket.socket, head: bytes) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    async def go(base: str) -> list[Response]:
        async with Client(HttpSettings(per_host_limit=limit)) as client:
            return await asyncio.gather(*(client.get(f"{base}/{i}") for i in range(3)))

    with serve(slow) as base:
        responses = asyncio.run(go(base))
    assert [r.body for r in responses] == [b"ok"] * 3
    assert peak[0] == limit


# --- redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/feed", "https://example.com/feed"),
        ("https://user:pass@example.com:8443/f", "https://example.com:8443/f"),
        ("https://user@example.com/f", "https://example.com/f"),
        (
            "https://x.io/f?token=a&api_key=b&access_token=c&secret=d&password=e&q=brand",
            "https://x.io/f?token=***&api_key=***&access_token=***&secret=***&password=***&q=brand",
        ),
        (
            "https://x.io/f?apiKey=1&Client_Secret=2&page=3#top",
            "https://x.io/f?apiKey=***&Client_Secret=***&page=3#top",
        ),
        ("https://x.io/f?flag&key=", "https://x.io/f?flag&key=***"),
        ("http://[::1", "<unparseable URL>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_the_http_client_loads_without_httpx_command_line_tool() -> None:
    """httpx's own CLI (rich syntax highlighting, pygments) is never imported by listener."""
    import subprocess
    import sys

    code = (
        "import sys; from listener.sources import client\n"
        "print('LOADED', sorted(m for m in ('pygments', 'httpx._main', 'rich.syntax')"
        " if sys.modules.get(m)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED []" in done.stdout, done.stdout
