"""The Lemmy source (search API v3) against a real HTTP server on 127.0.0.1 serving answers in the
documented format (tests/data/api/lemmy/), and through the real pipeline on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
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
from listener.sources import api, lemmy
from listener.sources.client import Client, HttpSettings
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

DATA = Path(__file__).parent / "data" / "api" / "lemmy"
PATH = "/api/v3/search"
NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
NEWEST_PAGE1 = "2026-11-20T12:50:00.123456Z"  # the newest 'published' in page1.json
NEWEST_NEW = "2026-11-20T13:05:00Z"  # ... in new.json
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LWp3dA.s3cr3t"  # a made-up JWT


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return document


def full(document: dict[str, Any], size: int = lemmy.PAGE_SIZE) -> dict[str, Any]:
    """``document`` with its posts padded to a full page by older posts that mention no brand
    (a full list tells the adapter that there may be more)."""
    padded = copy.deepcopy(document)
    last = padded["posts"][-1]
    start = datetime.fromisoformat(last["post"]["published"])
    for n in range(size - len(padded["posts"])):
        view = copy.deepcopy(last)
        ident = 10_000 + n
        published = (start - timedelta(seconds=n + 1)).isoformat().replace("+00:00", "Z")
        view["post"].update(
            id=ident,
            name=f"Bike lanes, thread {n}",
            body="nothing to see",
            ap_id=f"https://lemmy.example/post/{ident}",
            published=published,
        )
        view["post"].pop("url", None)
        padded["posts"].append(view)
    return padded


def json_response(document: Any, status: int = 200, **headers: str) -> Response:
    text = document if isinstance(document, str) else json.dumps(document)
    return Response(text, status=status, content_type="application/json", headers=headers)


def make_source(httpserver: HTTPServer, **extra: Any) -> SourceSettings:
    values: dict[str, Any] = {
        "name": "lemmy",
        "kind": "lemmy",
        "instance": "lemmy.example",
        "query": "kryptonite",
        "base_url": httpserver.url_for("/"),
        **extra,
    }
    return SourceSettings(**values)


def fetch(source: SourceSettings, cursor: str | None = None) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client(HttpSettings(total_timeout=5, read_timeout=2)) as client:
            return await lemmy.fetch(api.ApiContext(client, source, cursor, NOW))

    return asyncio.run(go())


def serve_pages(httpserver: HTTPServer, pages: dict[str, Any]) -> None:
    def handler(request: Request) -> Response:
        return json_response(pages.get(request.args["page"], load("empty.json")))

    httpserver.expect_request(PATH).respond_with_handler(handler)


def requests_seen(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [dict(request.args) for request, _ in httpserver.log]


def test_identity_from_instance_or_base_url() -> None:
    expected = "https://lemmy.world/api/v3/search?q=kryptonite&type_=All&sort=New"
    for instance in ("lemmy.world", "https://Lemmy.World/", " lemmy.world "):
        source = SourceSettings(name="l", kind="lemmy", instance=instance, query="kryptonite")
        assert lemmy.identity(source) == expected
    source = SourceSettings(
        name="l",
        kind="lemmy",
        instance="lemmy.world",
        query="kryptonite",
        base_url="http://127.0.0.1:8080/",
    )
    assert lemmy.identity(source).startswith("http://127.0.0.1:8080/api/v3/search?")


def test_first_poll_pages_until_the_lists_run_short(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": full(load("page1.json")), "2": load("page2.json")})
    fetched = fetch(make_source(httpserver))
    seen = requests_seen(httpserver)
    assert [r["page"] for r in seen] == ["1", "2"]
    assert all(
        (r["q"], r["type_"], r["sort"], r["limit"]) == ("kryptonite", "All", "New", "50")
        for r in seen
    )
    assert fetched.pages == 2 and fetched.note is None
    assert fetched.cursor == NEWEST_PAGE1
    by_url = {i.url: i for i in fetched.items}
    assert len(by_url) == 50 + 2 + 2  # page 1: 50 posts, 2 comments; page 2: 1 and 1
    post = by_url["https://lemmy.example/post/101"]
    assert post.guid == "lemmy:https://lemmy.example/post/101"
    assert post.title == "My Kryptonite lock opened with a Bic pen"
    assert post.text == "Took **ten seconds**. Is the whole line affected?"
    assert post.author == "alice@lemmy.example"
    assert (post.points, post.likes, post.replies, post.reach) == (25, 27, 2, None)
    assert post.published_at == datetime(2026, 11, 20, 12, 50, 0, 123456, tzinfo=UTC)
    comment = by_url["https://feddit.example/comment/501"]
    assert (comment.title, comment.text) == ("", "Same with my Kryptonite U-lock.")
    assert comment.author == "bob@feddit.example"
    assert (comment.points, comment.likes, comment.replies) == (4, 4, 1)


def test_second_poll_keeps_only_new_and_edited_items(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("new.json")})
    fetched = fetch(make_source(httpserver), cursor=NEWEST_PAGE1)
    assert [r["page"] for r in requests_seen(httpserver)] == ["1"]
    # the new post, and post 101 again because it was edited after the cursor; comment 501
    # (older than the cursor) is dropped
    assert [i.url for i in fetched.items] == [
        "https://lemmy.example/post/102",
        "https://lemmy.example/post/101",
    ]
    assert fetched.items[1].text == "Update: Kryptonite replaced it within a day."
    assert fetched.cursor == NEWEST_NEW


def test_reaching_the_cursor_stops_the_paging(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": full(load("page1.json")), "2": load("page2.json")})
    fetched = fetch(make_source(httpserver), cursor="2026-11-20T12:29:30Z")
    assert [r["page"] for r in requests_seen(httpserver)] == ["1"]
    assert {i.url for i in fetched.items} == {
        "https://lemmy.example/post/101",
        "https://lemmy.example/post/100",
        "https://feddit.example/comment/501",
    } | {f"https://lemmy.example/post/{10_000 + n}" for n in range(29)}  # after 12:29:30
    assert fetched.cursor == NEWEST_PAGE1


def test_nothing_found_keeps_the_cursor(httpserver: HTTPServer) -> None:
    serve_pages(httpserver, {"1": load("empty.json")})
    assert fetch(make_source(httpserver), cursor=NEWEST_NEW) == api.Fetched((), NEWEST_NEW, None, 1)
    assert fetch(make_source(httpserver)) == api.Fetched((), None, None, 1)


def test_page_cap_and_loops(httpserver: HTTPServer) -> None:
    endless = full(load("page1.json"))
    httpserver.expect_request(PATH).respond_with_json(endless)
    first = fetch(make_source(httpserver, page_cap=3))
    assert (first.pages, first.note) == (3, None)
    later = fetch(make_source(httpserver, page_cap=2), cursor="2026-11-20T00:00:00Z")
    assert later.pages == 2
    assert later.note is not None and later.note.startswith("page cap (2) reached")
    assert len(httpserver.log) == 5


def test_404_names_the_path(httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_data("Not Found", status=404)
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver))
    message = str(caught.value)
    assert caught.value.status == 404
    assert message.startswith("404: 127.0.0.1:") or message.startswith("404: localhost:")
    assert "has no /api/v3/search" in message
    assert "/api/v4/search" in message


def test_rate_limits(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request(PATH).respond_with_response(
        json_response(load("error_rate_limit.json"), 429, **{"Retry-After": "30"})
    )
    httpserver.expect_ordered_request(PATH).respond_with_response(
        json_response(load("error_rate_limit.json"), 400)
    )
    for retry in (30.0, None):
        with pytest.raises(FetchError) as caught:
            fetch(make_source(httpserver))
        assert (caught.value.status, caught.value.retry_after) == (429, retry)
        assert "rate limited by lemmy instance" in str(caught.value)


def test_token_is_sent_and_its_rejection_is_explained(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request(
        PATH, headers={"Authorization": f"Bearer {TOKEN}"}
    ).respond_with_response(json_response(load("error_incorrect_login.json"), 401))
    httpserver.expect_ordered_request(PATH).respond_with_response(
        json_response(load("error_not_logged_in.json"), 400)
    )
    with pytest.raises(FetchError) as caught:
        fetch(make_source(httpserver, token=TOKEN))
    assert caught.value.status == 401
    assert "token rejected by lemmy instance" in str(caught.value)
    assert "(incorrect_login)" in str(caught.value)
    assert TOKEN not in str(caught.value)
    with pytest.raises(FetchError, match="requires a login to search") as caught:
        fetch(make_source(httpserver))
    assert caught.value.status == 401


def test_bad_instance_fails_loudly() -> None:
    source = SourceSettings(name="l", kind="lemmy", instance="lemmy.world/c/bikes", query="k")
    with pytest.raises(FetchError, match=r"is not a host like 'lemmy\.world'"):
        fetch(source)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("<html>a blog</html>", "not JSON"),
        ('{"search": [], "next_page": null}', "not a Lemmy v3 search answer"),
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
    serve_pages(httpserver, {"1": full(load("page1.json")), "2": '{"posts": [{"post": '})
    first = fetch(make_source(httpserver))
    assert len(first.items) == 52
    assert first.note is not None and first.note.startswith("page 2: lemmy search page 2: not JSON")
    assert first.cursor == NEWEST_PAGE1
    later = fetch(make_source(httpserver), cursor="2026-11-20T00:00:00Z")
    assert len(later.items) == 52 and later.note is not None
    assert later.gap  # newest first: ask again from the stored cursor


def test_odd_views_huge_numbers_and_deep_nesting(httpserver: HTTPServer) -> None:
    document = load("page1.json")
    lock, recall = document["posts"]
    lock["counts"].update(score=10**30, upvotes="12", comments=True)
    lock["post"]["body"] = "Kryptonite takes a List<String>\x1b[31m\x00 here"  # Markdown, not HTML
    deep: Any = {}
    for _ in range(500):
        deep = {"nested": deep}
    lock["community"] = deep
    del recall["post"]["ap_id"]  # no id: skipped
    document["posts"] += ["not a view", {"post": None}, None]
    document["comments"] = {"not": "a list"}  # treated as none
    httpserver.expect_request(PATH).respond_with_json(document)
    fetched = fetch(make_source(httpserver))
    [item] = fetched.items
    assert (item.points, item.likes, item.replies) == (2**63 - 1, 12, None)
    assert item.text == "Kryptonite takes a List<String>[31m here"
    assert fetched.cursor == NEWEST_PAGE1


# -- through the pipeline ---------------------------------------------------------------------


def make_settings(httpserver: HTTPServer) -> Settings:
    raw: dict[str, Any] = {
        "brands": [{"name": "Kryptonite", "terms": ["Kryptonite"], "exclude": ["Superman"]}],
        "sources": [
            {
                "name": "lemmy",
                "kind": "lemmy",
                "instance": "lemmy.example",
                "query": "kryptonite",
                "token": TOKEN,
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
    """url -> (text, backfill, likes) of the stored mentions."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(MentionRow.url, MentionRow.text, MentionRow.backfill, MentionRow.likes)
        )
        return {row.url: (row.text, row.backfill, row.likes) for row in rows}


def test_pipeline_backfill_then_news_then_auth_failure(
    httpserver: HTTPServer, engine: Engine
) -> None:
    phase = {"now": "history"}

    def handler(request: Request) -> Response:
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
        if phase["now"] == "expired":
            return json_response(load("error_incorrect_login.json"), 401)
        if phase["now"] == "news":
            return json_response(load("new.json") if request.args["page"] == "1" else "{}")
        pages = {"1": load("page1.json"), "2": load("page2.json")}
        return json_response(pages[request.args["page"]])

    httpserver.expect_request(PATH).respond_with_handler(handler)
    settings = make_settings(httpserver)

    first = poll(settings, engine, NOW)
    assert (first.status, first.items, first.new) == ("ok", 4, 3)  # the Superman comment is out
    rows = stored(engine)
    assert set(rows) == {
        "https://lemmy.example/post/101",
        "https://lemmy.example/post/100",
        "https://feddit.example/comment/501",
    }
    assert all(backfill for _, backfill, _ in rows.values())
    assert rows["https://lemmy.example/post/101"][2] == 27
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["lemmy"].cursor == NEWEST_PAGE1

    httpserver.clear_log()
    phase["now"] = "news"
    second = poll(settings, engine, NOW + timedelta(minutes=15))
    assert [r["page"] for r in requests_seen(httpserver)] == ["1"]
    assert (second.status, second.items, second.new, second.updated) == ("ok", 2, 1, 1)
    rows = stored(engine)
    assert rows["https://lemmy.example/post/102"][1] is False  # news, not history
    assert rows["https://lemmy.example/post/101"][0] == (
        "Update: Kryptonite replaced it within a day."
    )
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["lemmy"].cursor == NEWEST_NEW

    phase["now"] = "expired"
    third = poll(settings, engine, NOW + timedelta(minutes=30))
    assert third.status == "failed"
    with store.transaction(engine, "test") as conn:
        state = store.load_states(conn)["lemmy"]
    assert state.last_error is not None
    assert state.last_error.startswith("fetch: 401: token rejected by lemmy instance ")
    assert state.last_error.endswith("(incorrect_login); renew 'token'")
    assert TOKEN not in state.last_error
    assert state.cursor == NEWEST_NEW
