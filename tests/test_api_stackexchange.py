"""The Stack Exchange source (API 2.3 advanced search) against a real HTTP server on 127.0.0.1
serving gzip-compressed answers in the documented format (tests/data/api/stackexchange/), and
through the real pipeline on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
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
from listener.sources import api, stackexchange
from listener.sources.client import Client, HttpSettings
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

DATA = Path(__file__).parent / "data" / "api" / "stackexchange"
PATH = "/2.3/search/advanced"
NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
NEWEST_PAGE1 = "1795179000"  # creation_date of the newest question in page1.json (12:50 UTC)
NEWEST_NEW = "1795179900"  # ... in new.json (13:05 UTC)
KEY = "U4DMV*8nvpm3EOpvf69Rxw(("  # made up, in the shape of a Stack Apps key


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return document


def answer(document: Any, status: int = 200, **headers: str) -> Response:
    """A gzip-compressed JSON answer, as the API sends every answer (errors too)."""
    text = document if isinstance(document, str) else json.dumps(document)
    return Response(
        gzip.compress(text.encode()),
        status=status,
        content_type="application/json; charset=utf-8",
        headers={"Content-Encoding": "gzip", **headers},
    )


def make_source(httpserver: HTTPServer, **extra: Any) -> SourceSettings:
    values: dict[str, Any] = {
        "name": "se",
        "kind": "stackexchange",
        "query": "kryptonite",
        "site": "bicycles",
        "base_url": httpserver.url_for("/"),
        **extra,
    }
    return SourceSettings(**values)


def fetch(
    source: SourceSettings,
    cursor: str | None = None,
    session: dict[str, Any] | None = None,
    now: datetime = NOW,
) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client(HttpSettings(total_timeout=5, read_timeout=2)) as client:
            context = api.ApiContext(
                client, source, cursor, now, {} if session is None else session
            )
            return await stackexchange.fetch(context)

    return asyncio.run(go())


def serve_pages(httpserver: HTTPServer, pages: dict[str, Any]) -> None:
    def handler(request: Request) -> Response:
        return answer(pages[request.args["page"]])

    httpserver.expect_request(PATH).respond_with_handler(handler)


def requests_seen(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [dict(request.args) for request, _ in httpserver.log]


def test_identity_has_no_key() -> None:
    source = SourceSettings(
        name="se", kind="stackexchange", query="kryptonite", site="bicycles", api_key=KEY
    )
    assert stackexchange.identity(source) == (
        "https://api.stackexchange.com/2.3/search/advanced?q=kryptonite&site=bicycles&sort=creation"
    )


def test_first_poll_follows_has_more(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("page1.json"), "2": load("page2.json")})
    fetched = fetch(make_source(httpserver, api_key=KEY))
    seen = requests_seen(httpserver)
    assert [r["page"] for r in seen] == ["1", "2"]
    for request in seen:
        assert request["q"] == "kryptonite" and request["site"] == "bicycles"
        assert (request["sort"], request["order"], request["pagesize"]) == (
            "creation",
            "desc",
            "100",
        )
        assert (request["filter"], request["key"]) == ("withbody", KEY)
        assert "fromdate" not in request
    assert (fetched.pages, fetched.note, fetched.cursor) == (2, None, NEWEST_PAGE1)
    assert [i.guid for i in fetched.items] == [
        "se:bicycles:90003",
        "se:bicycles:90002",
        "se:bicycles:90001",
        "se:bicycles:90000",
    ]
    first = fetched.items[0]
    assert first.title == 'Is my Kryptonite lock "pickable" with a Bic pen?'
    assert first.text == "My Kryptonite U-lock opened with a pen. Is that normal?"
    assert first.url == (
        "https://bicycles.stackexchange.com/questions/90003/"
        "is-my-kryptonite-lock-pickable-with-a-bic-pen"
    )
    assert first.author == "Sam & Co"
    assert (first.reach, first.points, first.replies, first.likes) == (1520, 3, 1, None)
    assert first.published_at == datetime(2026, 11, 20, 12, 50, tzinfo=UTC)


def test_second_poll_sends_fromdate(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("new.json")})
    fetched = fetch(make_source(httpserver), cursor=NEWEST_PAGE1)
    [request] = requests_seen(httpserver)
    assert request["fromdate"] == NEWEST_PAGE1
    assert "key" not in request
    # fromdate is inclusive: the question at the cursor comes again (here edited)
    assert [i.guid for i in fetched.items] == ["se:bicycles:90004", "se:bicycles:90003"]
    assert fetched.items[1].text == "Update: Kryptonite sent me a new lock."
    assert fetched.cursor == NEWEST_NEW


def test_nothing_new_keeps_the_cursor(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("empty.json")})
    assert fetch(make_source(httpserver), cursor=NEWEST_NEW) == api.Fetched((), NEWEST_NEW, None, 1)
    assert fetch(make_source(httpserver)) == api.Fetched((), None, None, 1)


def test_backoff_stops_paging_and_is_waited_out(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("backoff.json"), "2": load("page2.json")})
    session: dict[str, Any] = {}
    fetched = fetch(make_source(httpserver), session=session)
    assert [r["page"] for r in requests_seen(httpserver)] == ["1"]
    assert len(fetched.items) == 2
    assert fetched.note == "stackexchange asked to back off 10s (backoff): paging stopped"
    assert fetched.cursor == NEWEST_PAGE1
    # within the backoff the method is not called at all, and the poll says why
    waiting = fetch(make_source(httpserver), NEWEST_PAGE1, session, NOW + timedelta(seconds=5))
    assert waiting.items == () and waiting.cursor is None
    assert waiting.note == (
        "stackexchange asked to back off until 13:00:10 UTC (backoff): nothing fetched this poll"
    )
    assert len(httpserver.log) == 1
    # afterwards it is
    fetch(make_source(httpserver), NEWEST_PAGE1, session, NOW + timedelta(seconds=11))
    assert len(httpserver.log) == 2


def test_used_up_quota_stops_paging(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("quota_used_up.json"), "2": load("page2.json")})
    fetched = fetch(make_source(httpserver))
    assert len(httpserver.log) == 1 and len(fetched.items) == 2
    assert fetched.note == (
        "stackexchange daily quota used up (0 of 300 requests left): paging stopped; "
        "an api_key raises it"
    )


def test_page_cap_stops_endless_paging(httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_response(answer(load("page1.json")))
    assert fetch(make_source(httpserver, page_cap=3)).pages == 3
    later = fetch(make_source(httpserver, page_cap=2), cursor="1795170000")
    assert later.pages == 2
    assert later.note is not None and later.note.startswith("page cap (2) reached")
    assert later.cursor == NEWEST_PAGE1


def test_throttle_violation_is_a_rate_limit(httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_response(answer(load("error_throttle.json"), 400))
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver))
    assert (caught.value.status, caught.value.retry_after) == (429, 72.0)
    assert str(caught.value) == (
        "429: stackexchange throttled requests from this IP (throttle_violation: too many "
        "requests from this IP, more requests available in 72 seconds)"
    )


@pytest.mark.parametrize(("status", "retry"), [(429, 90.0), (503, 90.0)])
def test_http_rate_limits_keep_retry_after(
    httpserver: HTTPServer, status: int, retry: float
) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        "slow down", status=status, headers={"Retry-After": "90"}
    )
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver))
    assert (caught.value.status, caught.value.retry_after) == (status, retry)


def test_rejected_key_and_unknown_site(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request(PATH).respond_with_response(
        answer(load("error_key.json"), 400)
    )
    httpserver.expect_ordered_request(PATH).respond_with_response(
        answer(load("error_site.json"), 400)
    )
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver, api_key=KEY))
    assert str(caught.value) == (
        "400: api_key rejected by stackexchange (bad_parameter: key); check the key at "
        "https://stackapps.com/apps/oauth"
    )
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver, site="bicycels"))
    assert str(caught.value).startswith("400: stackexchange does not know site 'bicycels'")


def test_error_in_a_200_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_response(answer(load("error_key.json")))
    with pytest.raises(FetchError, match="api_key rejected"):
        fetch(make_source(httpserver, api_key=KEY))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<html>down for maintenance</html>", "not JSON"),
        ('{"quota_max": 300}', "not a Stack Exchange wrapper object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_first_page_is_a_parse_error(
    httpserver: HTTPServer, document: str, message: str
) -> None:
    httpserver.expect_request(PATH).respond_with_response(answer(document))
    with pytest.raises(ParseError, match=message):
        fetch(make_source(httpserver))


def test_malformed_second_page_keeps_the_first(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("page1.json"), "2": '{"items": [{"question_id": 1'})
    first = fetch(make_source(httpserver))
    assert [i.guid for i in first.items] == ["se:bicycles:90003", "se:bicycles:90002"]
    assert first.note is not None
    assert first.note.startswith("page 2: stackexchange search page 2: not JSON")
    assert first.cursor == NEWEST_PAGE1
    later = fetch(make_source(httpserver), cursor="1795170000")
    assert later.note is not None and later.gap  # ask again from the stored cursor


def test_odd_questions_huge_numbers_and_deep_nesting(httpserver: HTTPServer) -> None:
    document = load("page1.json")
    first, second = document["items"]
    first["owner"]["reputation"] = 10**40
    first["score"] = "-3"
    first["answer_count"] = 2.0
    deep: Any = []
    for _ in range(500):
        deep = [deep]
    first["tags"] = deep
    second["owner"] = "deleted user"
    second["link"] = "javascript:alert(1)"
    document["items"] += [{"title": "no id"}, "not a question", None]
    document["has_more"] = False
    httpserver.expect_request(PATH).respond_with_response(answer(document))
    big, odd = fetch(make_source(httpserver)).items
    assert (big.reach, big.points, big.replies) == (2**63 - 1, -3, 2)
    assert (odd.author, odd.reach, odd.url) == (None, None, None)


# -- through the pipeline ---------------------------------------------------------------------


def make_settings(httpserver: HTTPServer) -> Settings:
    raw: dict[str, Any] = {
        "brands": [{"name": "Kryptonite", "terms": ["Kryptonite"], "exclude": ["Superman"]}],
        "sources": [
            {
                "name": "se",
                "kind": "stackexchange",
                "query": "kryptonite",
                "site": "bicycles",
                "api_key": KEY,
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
    """guid -> (text, backfill, author reach) of the stored mentions."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(MentionRow.guid, MentionRow.text, MentionRow.backfill, MentionRow.author_reach)
        )
        return {row.guid: (row.text, row.backfill, row.author_reach) for row in rows}


def test_pipeline_backfill_then_news_then_rejected_key(
    httpserver: HTTPServer, engine: Engine
) -> None:
    phase = {"now": "history"}

    def handler(request: Request) -> Response:
        if phase["now"] == "key revoked":
            return answer(load("error_key.json"), 400)
        if "fromdate" in request.args:
            return answer(load("new.json"))
        return answer(load({"1": "page1.json", "2": "page2.json"}[request.args["page"]]))

    httpserver.expect_request(PATH).respond_with_handler(handler)
    settings = make_settings(httpserver)

    first = poll(settings, engine, NOW)
    assert (first.status, first.items, first.new) == ("ok", 4, 3)  # the Superman one is out
    rows = stored(engine)
    assert set(rows) == {"se:bicycles:90003", "se:bicycles:90002", "se:bicycles:90001"}
    assert all(backfill for _, backfill, _ in rows.values())
    assert rows["se:bicycles:90003"][2] == 1520
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["se"].cursor == NEWEST_PAGE1

    httpserver.clear_log()
    second = poll(settings, engine, NOW + timedelta(minutes=15))
    assert [r.get("fromdate") for r in requests_seen(httpserver)] == [NEWEST_PAGE1]
    assert (second.status, second.items, second.new, second.updated) == ("ok", 2, 1, 1)
    rows = stored(engine)
    assert rows["se:bicycles:90004"][1] is False  # news, not history
    assert rows["se:bicycles:90003"][0] == "Update: Kryptonite sent me a new lock."
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["se"].cursor == NEWEST_NEW

    phase["now"] = "key revoked"
    third = poll(settings, engine, NOW + timedelta(minutes=30))
    assert third.status == "failed"
    with store.transaction(engine, "test") as conn:
        state = store.load_states(conn)["se"]
    assert state.last_error == (
        "fetch: 400: api_key rejected by stackexchange (bad_parameter: key); check the key at "
        "https://stackapps.com/apps/oauth"
    )
    assert state.cursor == NEWEST_NEW
