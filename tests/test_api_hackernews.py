"""The Hacker News source (Algolia HN Search API) against a real HTTP server on 127.0.0.1 serving
answers in the documented format (tests/data/api/hackernews/), and through the real pipeline on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select
from werkzeug import Request, Response

from listener.config import Settings, SourceSettings, validate_config
from listener.errors import FetchError, ParseError
from listener.service.poll import Poller, PollOutcome, http_settings
from listener.sources import api, hackernews
from listener.sources.client import Client, HttpSettings
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

DATA = Path(__file__).parent / "data" / "api" / "hackernews"
PATH = "/api/v1/search_by_date"
NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
NEWEST_PAGE0 = "1795179000"  # created_at_i of the newest hit in page0.json (12:50 UTC)
NEWEST_NEW = "1795179900"  # ... in new.json (13:05 UTC)


def body(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def json_response(text: str, status: int = 200, **headers: str) -> Response:
    return Response(text, status=status, content_type="application/json", headers=headers)


def make_source(httpserver: HTTPServer, **extra: Any) -> SourceSettings:
    return SourceSettings(
        name="hn",
        kind="hackernews",
        query="kryptonite",
        base_url=httpserver.url_for("/"),
        **extra,
    )


def fetch(source: SourceSettings, cursor: str | None = None) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client(HttpSettings(total_timeout=5, read_timeout=2)) as client:
            return await hackernews.fetch(api.ApiContext(client, source, cursor, NOW))

    return asyncio.run(go())


def serve(httpserver: HTTPServer, pages: dict[str, str], new: str = "new.json") -> None:
    """Answer by page number; a request with a numericFilters cursor gets ``new``."""

    def handler(request: Request) -> Response:
        if "numericFilters" in request.args:
            return json_response(body(new))
        return json_response(body(pages[request.args["page"]]))

    httpserver.expect_request(PATH).respond_with_handler(handler)


def requests_seen(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [dict(request.args) for request, _ in httpserver.log]


def test_identity_names_query_and_endpoint() -> None:
    source = SourceSettings(name="hn", kind="hackernews", query="kryptonite lock")
    assert hackernews.identity(source) == (
        "https://hn.algolia.com/api/v1/search_by_date?query=kryptonite+lock&tags=%28story%2Ccomment%29"
    )


def test_first_poll_reads_every_page(httpserver: HTTPServer) -> None:
    serve(httpserver, {"0": "page0.json", "1": "page1.json"})
    fetched = fetch(make_source(httpserver))
    assert [i.guid for i in fetched.items] == [
        "hn:41000002",
        "hn:41000003",
        "hn:41000001",
        "hn:41000000",
    ]
    assert fetched.cursor == NEWEST_PAGE0
    assert (fetched.note, fetched.pages) == (None, 2)
    seen = requests_seen(httpserver)
    assert [r["page"] for r in seen] == ["0", "1"]
    assert all(r["tags"] == "(story,comment)" and r["query"] == "kryptonite" for r in seen)
    assert all(r["hitsPerPage"] == "100" and "numericFilters" not in r for r in seen)

    story, comment, link_story = fetched.items[:3]
    assert story.title == "Ask HN: Is my Kryptonite lock useless?"
    assert (
        story.text
        == "My Kryptonite lock opened with a Bic pen & a twist. Is the whole line affected?"
    )
    assert story.url == "https://news.ycombinator.com/item?id=41000002"
    assert (story.author, story.points, story.replies) == ("lockpicker", 12, 1)
    assert story.published_at == datetime(2026, 11, 20, 12, 50, tzinfo=UTC)
    assert story.reach is None
    # a comment: HTML reduced to text, no title of its own (its story's title is not matched)
    assert comment.title == ""
    assert comment.text == "Same here, my Kryptonite U-lock gave way in seconds. Don't trust it."
    assert (comment.author, comment.points, comment.replies) == ("cyclist", None, None)
    assert link_story.url == "https://news.ycombinator.com/item?id=41000001"
    assert (link_story.points, link_story.replies) == (230, 48)
    # the discussion is the url; the article it links to is kept for site: and url: queries
    assert link_story.article_url == "https://news.example/recall"
    assert story.article_url is None  # Ask HN links nowhere
    assert comment.article_url is None  # a comment is not its story


def test_site_and_url_queries_find_a_story_by_the_article_it_links_to(
    httpserver: HTTPServer, engine: Engine
) -> None:
    serve(httpserver, {"0": "page0.json", "1": "page1.json"})
    raw: dict[str, Any] = {
        "brands": [
            {"name": "News", "query": "site:news.example"},
            {"name": "Recall", "query": 'url:"example/recall"'},
        ],
        "sources": [
            {
                "name": "hn",
                "kind": "hackernews",
                "query": "kryptonite",
                "base_url": httpserver.url_for("/"),
            }
        ],
        "http": {"total_timeout": "5s", "read_timeout": "2s", "connect_timeout": "2s"},
    }
    poll(validate_config(raw, file=Path("test.toml"), env={}), engine, NOW)
    found = store.query_mentions(engine, store.MentionFilter(limit=None))
    assert [(m.brands, m.url) for m in found] == [
        (("News", "Recall"), "https://news.ycombinator.com/item?id=41000001")
    ]


def test_second_poll_sends_the_cursor_and_gets_only_new_hits(httpserver: HTTPServer) -> None:
    serve(httpserver, {"0": "page0.json", "1": "page1.json"})
    fetched = fetch(make_source(httpserver), cursor=NEWEST_PAGE0)
    [request] = requests_seen(httpserver)
    assert request["numericFilters"] == f"created_at_i>{NEWEST_PAGE0}"
    assert request["page"] == "0"
    assert [i.guid for i in fetched.items] == ["hn:41000009", "hn:41000003"]
    assert fetched.items[1].text == "Edit: Kryptonite replaced my lock for free."
    assert fetched.cursor == NEWEST_NEW


def test_nothing_new_keeps_the_cursor(httpserver: HTTPServer) -> None:
    serve(httpserver, {"0": "empty.json"}, new="empty.json")
    assert fetch(make_source(httpserver), cursor=NEWEST_NEW) == api.Fetched((), NEWEST_NEW, None, 1)
    assert fetch(make_source(httpserver)) == api.Fetched((), None, None, 1)


def test_page_cap_stops_endless_paging_and_says_so(httpserver: HTTPServer) -> None:
    endless = json.loads(body("page0.json"))
    endless["nbPages"] = 1_000_000
    httpserver.expect_request(PATH).respond_with_json(endless)
    # history: page_cap pages, no complaint
    first = fetch(make_source(httpserver, page_cap=3))
    assert (first.pages, first.note, first.cursor) == (3, None, NEWEST_PAGE0)
    # news: more new hits than page_cap pages hold is worth a note
    later = fetch(make_source(httpserver, page_cap=2), cursor="1795170000")
    assert later.pages == 2
    assert later.note is not None and later.note.startswith("page cap (2) reached")
    assert later.cursor == NEWEST_PAGE0
    assert len(httpserver.log) == 5


def test_rate_limit_keeps_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_response(
        json_response(
            '{"message": "Too many requests", "status": 429}', 429, **{"Retry-After": "120"}
        )
    )
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver), cursor=NEWEST_PAGE0)
    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)
    assert "hacker news search said: Too many requests" in str(caught.value)


def test_refusals_quote_algolia(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request(PATH).respond_with_response(
        json_response(body("error_400.json"), 400)
    )
    httpserver.expect_ordered_request(PATH).respond_with_response(
        json_response(body("error_403.json"), 403)
    )
    with pytest.raises(FetchError, match=r"HTTP 400 .*invalid numericFilters parameter"):
        fetch(make_source(httpserver))
    with pytest.raises(FetchError, match=r"HTTP 403 .*Invalid Application-ID or API key") as caught:
        fetch(make_source(httpserver))
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("<html>maintenance</html>", "not JSON"),
        ('{"results": []}', "no 'hits' list"),
        ('{"hits": {"0": {}}}', "no 'hits' list"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_first_page_is_a_parse_error(
    httpserver: HTTPServer, answer: str, message: str
) -> None:
    httpserver.expect_request(PATH).respond_with_response(json_response(answer))
    with pytest.raises(ParseError, match=message):
        fetch(make_source(httpserver))


def test_malformed_second_page_keeps_the_first(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if request.args["page"] == "0":
            return json_response(body("page0.json"))
        return json_response('{"hits": [{"objectID": "1"')  # cut off

    httpserver.expect_request(PATH).respond_with_handler(handler)
    first = fetch(make_source(httpserver))
    assert [i.guid for i in first.items] == ["hn:41000002", "hn:41000003"]
    assert first.note is not None and first.note.startswith(
        "page 2: hacker news search page 2: not JSON"
    )
    assert first.cursor == NEWEST_PAGE0
    # with a stored cursor the gap below page 1 must be asked for again: keep the stored one
    later = fetch(make_source(httpserver), cursor="1795170000")
    assert later.note is not None and later.note.startswith("page 2:")
    assert len(later.items) == 2
    assert later.gap  # the pipeline keeps the stored cursor and reads the gap again


def test_odd_hits_huge_numbers_and_deep_nesting(httpserver: HTTPServer) -> None:
    deep: Any = "Kryptonite"
    for _ in range(500):
        deep = {"value": deep}
    hits: list[Any] = [
        {
            "objectID": "7",
            "created_at_i": 1795179000,
            "_tags": ["story"],
            "title": "Kryptonite at scale",
            "points": 10**30,
            "num_comments": True,
            "_highlightResult": deep,
        },
        {
            "objectID": 8,
            "created_at": "2026-11-20T12:00:00.000Z",
            "title": "float",
            "points": 1e300,
        },
        {"created_at_i": 1795179500, "title": "no id: skipped, but its time counts"},
        "not a hit",
        None,
    ]
    text = json.dumps({"hits": hits, "nbPages": 1, "page": 0}).replace("1e+300", "1e999")
    httpserver.expect_request(PATH).respond_with_response(json_response(text))
    fetched = fetch(make_source(httpserver))
    big, small = fetched.items
    assert (big.guid, big.points, big.replies) == ("hn:7", 2**63 - 1, None)
    assert (small.guid, small.points) == ("hn:8", None)  # 1e999 is infinity: not a count
    assert small.published_at == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert fetched.cursor == "1795179500"


# -- through the pipeline ---------------------------------------------------------------------


def make_settings(httpserver: HTTPServer) -> Settings:
    raw: dict[str, Any] = {
        "brands": [{"name": "Kryptonite", "terms": ["Kryptonite"], "exclude": ["Superman"]}],
        "sources": [
            {
                "name": "hn",
                "kind": "hackernews",
                "query": "kryptonite",
                "base_url": httpserver.url_for("/"),
            }
        ],
        "http": {"total_timeout": "5s", "read_timeout": "2s", "connect_timeout": "2s"},
    }
    return validate_config(raw, file=Path("test.toml"), env={})


def poll(settings: Settings, engine: Engine, now: datetime) -> PollOutcome:
    async def go() -> list[PollOutcome]:
        async with Client(http_settings(settings)) as client:
            poller = Poller(settings, engine, client, clock=lambda: now, rng=lambda: 0.5)
            try:
                return await poller.poll_all()
            finally:
                poller.close()

    [outcome] = asyncio.run(go())
    return outcome


def stored(engine: Engine) -> dict[str, tuple[str, bool, int | None]]:
    """guid -> (text, backfill, points) of the stored mentions."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(MentionRow.guid, MentionRow.text, MentionRow.backfill, MentionRow.points)
        )
        return {row.guid: (row.text, row.backfill, row.points) for row in rows}


def test_pipeline_backfill_then_news_then_refusal(httpserver: HTTPServer, engine: Engine) -> None:
    answers = {"mode": "ok"}

    def handler(request: Request) -> Response:
        if answers["mode"] == "refused":
            return json_response(body("error_403.json"), 403)
        if "numericFilters" in request.args:
            return json_response(body("new.json"))
        return json_response(body({"0": "page0.json", "1": "page1.json"}[request.args["page"]]))

    httpserver.expect_request(PATH).respond_with_handler(handler)
    settings = make_settings(httpserver)

    first = poll(settings, engine, NOW)
    assert (first.status, first.items, first.new) == ("ok", 4, 3)  # the Superman comment is out
    rows = stored(engine)
    assert set(rows) == {"hn:41000002", "hn:41000003", "hn:41000001"}
    assert all(backfill for _, backfill, _ in rows.values())
    assert rows["hn:41000001"][2] == 230
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["hn"].cursor == NEWEST_PAGE0

    httpserver.clear_log()
    second = poll(settings, engine, NOW + timedelta(minutes=15))
    assert [r.get("numericFilters") for r in requests_seen(httpserver)] == [
        f"created_at_i>{NEWEST_PAGE0}"
    ]
    assert (second.status, second.new, second.updated) == ("ok", 1, 1)
    rows = stored(engine)
    assert rows["hn:41000009"][1] is False  # news, not history
    assert rows["hn:41000003"][0] == "Edit: Kryptonite replaced my lock for free."
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["hn"].cursor == NEWEST_NEW

    answers["mode"] = "refused"
    third = poll(settings, engine, NOW + timedelta(minutes=30))
    assert third.status == "failed"
    with store.transaction(engine, "test") as conn:
        state = store.load_states(conn)["hn"]
    assert state.last_error is not None
    assert state.last_error.startswith("fetch: HTTP 403 Forbidden from ")
    assert state.last_error.endswith("(hacker news search said: Invalid Application-ID or API key)")
    assert state.cursor == NEWEST_NEW  # a failure never loses the cursor
