"""The whole pipeline against a real HTTP server on 127.0.0.1 and real databases (SQLite and
PostgreSQL): fetch -> parse -> match -> store, politeness and per-source error boundaries."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feeds import rss
from httpd import serve
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine
from werkzeug import Request, Response

from listener.config import Settings, validate_config
from listener.models import SourceState
from listener.service.poll import Poller, PollOutcome, http_settings
from listener.sources.client import Client
from listener.storage import store

NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def load_states(engine: Engine) -> dict[str, SourceState]:
    with store.transaction(engine, "test") as conn:
        return store.load_states(conn)


def make_settings(sources: list[dict[str, Any]], **extra: Any) -> Settings:
    raw: dict[str, Any] = {
        "brands": [
            {
                "name": "Kryptonite",
                "terms": ["Kryptonite", "#kryptonitelock"],
                "exclude": ["Superman"],
            },
            {"name": "Bahn", "terms": ["Deutsche Bahn"]},
        ],
        "sources": sources,
        "http": {"total_timeout": "5s", "read_timeout": "2s", "connect_timeout": "2s"},
        **extra,
    }
    return validate_config(raw, file=Path("test.toml"), env={})


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def poll_all(
    settings: Settings, engine: Engine, clock: Clock | None = None, force: bool = True
) -> dict[str, PollOutcome]:
    async def go() -> list[PollOutcome]:
        async with Client(http_settings(settings)) as client:
            poller = Poller(settings, engine, client, clock=clock or Clock(), rng=lambda: 0.5)
            try:
                return await poller.poll_all(force=force)
            finally:
                poller.close()

    return {o.source: o for o in asyncio.run(go())}


ITEMS = [
    {
        "title": "My Kryptonite lock opened with a Bic pen",
        "link": "https://blog.example/a?utm_source=rss",
        "guid": "a",
        "description": "<p>Unbelievable.</p>",
        "author": "Sam",
    },
    {"title": "Superman and Kryptonite", "link": "https://comics.example/b", "guid": "b"},
    {
        "title": "Verspätung bei der Deutschen Bahn? Die Deutsche Bahn sagt nein",
        "link": "https://news.example/c",
        "guid": "c",
    },
    {"title": "Nothing to see", "link": "https://blog.example/d", "guid": "d"},
    {
        "title": "Both: Kryptonite on the Deutsche Bahn",
        "link": "https://blog.example/e",
        "guid": "e",
    },
]


def test_poll_stores_matching_items_once(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss(ITEMS), content_type="application/rss+xml", headers={"ETag": '"v1"'}
    )
    settings = make_settings([{"name": "blog", "url": httpserver.url_for("/feed.xml")}])
    outcome = poll_all(settings, engine)["blog"]
    assert (outcome.status, outcome.items, outcome.new) == ("ok", 5, 3)
    found = {m.title: m for m in store.query_mentions(engine, store.MentionFilter(limit=None))}
    assert set(found) == {
        "My Kryptonite lock opened with a Bic pen",
        "Verspätung bei der Deutschen Bahn? Die Deutsche Bahn sagt nein",
        "Both: Kryptonite on the Deutsche Bahn",
    }
    assert found["Both: Kryptonite on the Deutsche Bahn"].brands == ("Bahn", "Kryptonite")
    first = found["My Kryptonite lock opened with a Bic pen"]
    assert first.text == "Unbelievable."
    assert first.author == "Sam"
    assert first.source == "blog"
    assert first.published_at == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert first.fetched_at == NOW

    # the same feed again (server ignores validators): nothing new, nothing duplicated
    again = poll_all(settings, engine)["blog"]
    assert (again.status, again.new, again.updated) == ("ok", 0, 0)
    assert store.count_rows(engine)["mentions"] == 3


def test_second_poll_sends_validators_and_stores_nothing(
    httpserver: HTTPServer, engine: Engine
) -> None:
    seen: list[dict[str, str | None]] = []

    def handler(request: Request) -> Response:
        seen.append(
            {
                "etag": request.headers.get("If-None-Match"),
                "since": request.headers.get("If-Modified-Since"),
            }
        )
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(
            rss(ITEMS),
            content_type="application/rss+xml",
            headers={"ETag": '"v1"', "Last-Modified": "Fri, 20 Nov 2026 12:00:00 GMT"},
        )

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    settings = make_settings([{"name": "blog", "url": httpserver.url_for("/feed.xml")}])
    assert poll_all(settings, engine)["blog"].new == 3
    second = poll_all(settings, engine, Clock(NOW + timedelta(minutes=15)))["blog"]
    assert second.status == "not_modified"
    assert seen == [
        {"etag": None, "since": None},
        {"etag": '"v1"', "since": "Fri, 20 Nov 2026 12:00:00 GMT"},
    ]
    assert store.count_rows(engine)["mentions"] == 3
    state = load_states(engine)["blog"]
    assert state.last_success_at == NOW + timedelta(minutes=15)
    assert state.etag == '"v1"'


def test_changed_item_updates_its_row(httpserver: HTTPServer, engine: Engine) -> None:
    items = [dict(ITEMS[0])]
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda request: Response(rss(items), content_type="application/rss+xml")
    )
    settings = make_settings([{"name": "blog", "url": httpserver.url_for("/feed.xml")}])
    poll_all(settings, engine)
    # same guid; the link lost its tracking parameters and the text changed
    items[0] = {**ITEMS[0], "link": "https://blog.example/a", "description": "Update: fixed."}
    outcome = poll_all(settings, engine)["blog"]
    assert (outcome.new, outcome.updated) == (0, 1)
    [mention] = store.query_mentions(engine, store.MentionFilter())
    assert mention.text == "Update: fixed."


def test_same_story_in_two_sources_is_stored_once(httpserver: HTTPServer, engine: Engine) -> None:
    one = [
        {
            "title": "Kryptonite recall",
            "link": "https://news.example/r?utm_medium=x&id=1",
            "guid": "one-1",
        }
    ]
    two = [
        {
            "title": "Kryptonite recall",
            "link": "https://news.example/r?id=1&fbclid=abc",
            "guid": "two-9",
        }
    ]
    httpserver.expect_request("/one").respond_with_data(rss(one), content_type="text/xml")
    httpserver.expect_request("/two").respond_with_data(rss(two), content_type="text/xml")
    settings = make_settings(
        [
            {"name": "one", "url": httpserver.url_for("/one")},
            {"name": "two", "url": httpserver.url_for("/two")},
        ]
    )
    outcomes = poll_all(settings, engine)
    assert outcomes["one"].new + outcomes["two"].new == 1
    assert store.count_rows(engine)["mentions"] == 1


def test_broken_sources_never_stop_the_others(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/ok").respond_with_data(rss(ITEMS[:1]), content_type="text/xml")
    httpserver.expect_request("/500").respond_with_data("boom", status=500)
    httpserver.expect_request("/html").respond_with_data(
        "<html><body>not a feed</body></html>", content_type="text/html"
    )
    with serve(_stall) as slow_base:
        settings = make_settings(
            [
                {"name": "ok", "url": httpserver.url_for("/ok")},
                {"name": "err", "url": httpserver.url_for("/500")},
                {"name": "html", "url": httpserver.url_for("/html")},
                {"name": "refused", "url": "http://127.0.0.1:9/feed"},
                {"name": "slow", "url": slow_base + "/slow"},
            ],
            # the stalled source times out; 5 s leaves the healthy ones room on a loaded machine
            http={"total_timeout": "5s", "read_timeout": "5s", "connect_timeout": "5s"},
        )
        outcomes = poll_all(settings, engine)
    assert outcomes["ok"].status == "ok"
    assert outcomes["ok"].new == 1
    for name, stage in (
        ("err", "fetch: HTTP 500"),
        ("html", "parse: "),
        ("refused", "fetch: "),
        ("slow", "fetch: "),
    ):
        assert outcomes[name].status == "failed", name
        assert (outcomes[name].error or "").startswith(stage), outcomes[name].error
    states = load_states(engine)
    assert states["err"].consecutive_errors == 1
    assert (states["err"].last_error or "").startswith("fetch: HTTP 500")
    assert states["ok"].consecutive_errors == 0


def _stall(conn: socket.socket, _head: bytes) -> None:
    """Headers, then one byte every 0.3 s: only the total deadline can end this."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(20):
        conn.sendall(b" ")
        time.sleep(0.3)


def test_backoff_grows_and_retry_after_is_honoured(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/busy").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7200"}
    )
    httpserver.expect_request("/down").respond_with_data("down", status=502)
    settings = make_settings(
        [
            {"name": "busy", "url": httpserver.url_for("/busy"), "interval": "15m"},
            {"name": "down", "url": httpserver.url_for("/down"), "interval": "15m"},
        ],
        polling={"max_backoff": "2h"},
    )
    clock = Clock()
    delays = []
    for _ in range(5):
        poll_all(settings, engine, clock)
        state = load_states(engine)["down"]
        assert state.next_poll_at is not None
        delays.append((state.next_poll_at - clock.now).total_seconds())
    # rng fixed at 0.5: 3/4 of min(cap, interval * 2^(n-1))
    assert delays == [675.0, 1350.0, 2700.0, 5400.0, 5400.0]
    busy = load_states(engine)["busy"]
    assert busy.next_poll_at == clock.now + timedelta(seconds=7200)
    assert busy.consecutive_errors == 5
    assert "429" in (busy.last_error or "")


def test_not_due_sources_are_skipped_unless_forced(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/down").respond_with_data("down", status=503)
    settings = make_settings([{"name": "down", "url": httpserver.url_for("/down")}])
    poll_all(settings, engine)
    assert poll_all(settings, engine, force=False)["down"].status == "skipped"
    assert poll_all(settings, engine, force=True)["down"].status == "failed"


def test_gone_disables_until_url_changes(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/gone").respond_with_data("bye", status=410)
    httpserver.expect_request("/new").respond_with_data(rss(ITEMS[:1]), content_type="text/xml")
    settings = make_settings([{"name": "blog", "url": httpserver.url_for("/gone")}])
    assert poll_all(settings, engine)["blog"].status == "gone"
    state = load_states(engine)["blog"]
    assert state.disabled_reason is not None
    assert "410 Gone" in state.disabled_reason
    assert poll_all(settings, engine)["blog"].status == "disabled"
    assert len(httpserver.log) == 1
    moved = make_settings([{"name": "blog", "url": httpserver.url_for("/new")}])
    assert poll_all(moved, engine)["blog"].status == "ok"
    assert load_states(engine)["blog"].disabled_reason is None


def test_permanent_redirect_updates_polled_url(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new")}
    )
    httpserver.expect_request("/new").respond_with_data(rss(ITEMS[:1]), content_type="text/xml")
    settings = make_settings([{"name": "blog", "url": httpserver.url_for("/old")}])
    assert poll_all(settings, engine)["blog"].new == 1
    assert load_states(engine)["blog"].url == httpserver.url_for("/new")
    httpserver.clear_log()
    poll_all(settings, engine)
    assert [entry[0].path for entry in httpserver.log] == ["/new"]


def test_temporary_redirect_keeps_url(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/new")}
    )
    httpserver.expect_request("/new").respond_with_data(rss(ITEMS[:1]), content_type="text/xml")
    settings = make_settings([{"name": "blog", "url": httpserver.url_for("/old")}])
    poll_all(settings, engine)
    assert load_states(engine)["blog"].url == httpserver.url_for("/old")


def test_partly_broken_feed_keeps_what_parses(httpserver: HTTPServer, engine: Engine) -> None:
    body = rss(ITEMS)
    cut = body.index(b"<item>", body.index(b"<item>", body.index(b"<item>") + 1) + 1) + 40
    httpserver.expect_request("/bozo").respond_with_data(body[:cut], content_type="text/xml")
    settings = make_settings([{"name": "bozo", "url": httpserver.url_for("/bozo")}])
    outcome = poll_all(settings, engine)["bozo"]
    assert outcome.status == "ok"
    assert outcome.warnings
    assert outcome.new >= 1


def test_iso_8859_1_german_feed(httpserver: HTTPServer, engine: Engine) -> None:
    items = [
        {
            "title": "Deutsche Bahn: Verspätung wegen Störung in Münster",
            "link": "https://news.example/x",
            "description": "Große Probleme, sagt Müller.",
        }
    ]
    httpserver.expect_request("/de").respond_with_data(
        rss(items, encoding="iso-8859-1"), content_type="application/rss+xml"
    )
    settings = make_settings([{"name": "de", "url": httpserver.url_for("/de")}])
    assert poll_all(settings, engine)["de"].new == 1
    [mention] = store.query_mentions(engine, store.MentionFilter(brand="bahn"))
    assert mention.title == "Deutsche Bahn: Verspätung wegen Störung in Münster"
    assert mention.text == "Große Probleme, sagt Müller."


def test_headers_from_config_reach_the_server(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/auth", headers={"X-Api-Key": "k-123"}).respond_with_data(
        rss(ITEMS[:1]), content_type="text/xml"
    )
    settings = make_settings(
        [{"name": "auth", "url": httpserver.url_for("/auth"), "headers": {"X-Api-Key": "k-123"}}]
    )
    assert poll_all(settings, engine)["auth"].new == 1


def test_in_process_digest_gives_the_same_result(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/feed.xml").respond_with_data(rss(ITEMS), content_type="text/xml")
    url = httpserver.url_for("/feed.xml")
    settings = make_settings([{"name": "blog", "url": url}], polling={"workers": 0})
    outcome = poll_all(settings, engine)["blog"]
    assert (outcome.status, outcome.items, outcome.new) == ("ok", 5, 3)
