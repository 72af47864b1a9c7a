"""The reddit adapter against a real HTTP server on 127.0.0.1 serving reddit's documented JSON
(fixtures in tests/data/api/reddit/), and through the whole pipeline into SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
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
from listener.sources import api
from listener.sources.client import Client, HttpSettings
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "api" / "reddit"
SECRET = "s3cr3t-Client-Secret-XYZ"


def fixture(name: str) -> str:
    """A fixture file without its leading ``//`` comment lines."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("//"))


def listing(name: str) -> dict[str, Any]:
    return dict(json.loads(fixture(name)))


def json_response(body: str | dict[str, Any], status: int = 200, **headers: str) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, content_type="application/json", headers=headers)


def source(server: HTTPServer, **extra: Any) -> SourceSettings:
    settings: dict[str, Any] = {"subreddit": "bikes", "base_url": server.url_for("/"), **extra}
    return SourceSettings(name="reddit", kind="reddit", **settings)


def fetch(
    src: SourceSettings,
    cursor: str | None = None,
    *,
    now: datetime = NOW,
    session: dict[str, Any] | None = None,
) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client(HttpSettings(total_timeout=5, read_timeout=2)) as client:
            context = api.ApiContext(client, src, cursor, now, {} if session is None else session)
            return await api.fetch(context)

    return asyncio.run(go())


def requests(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


def pages(request: Request) -> Response:
    """/r/bikes/new.json: page 1, and page 2 after t3_1gx0c30."""
    after = request.args.get("after")
    return json_response(fixture("new_page2.json" if after == "t3_1gx0c30" else "new_page1.json"))


def test_pages_until_the_listing_ends(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_handler(pages)
    fetched = fetch(source(httpserver))
    assert (len(fetched.items), fetched.pages, fetched.note) == (5, 2, None)
    assert fetched.cursor == "1795179000"  # 12:50 UTC, the newest post
    first, second = (dict(r.args) for r in requests(httpserver))
    assert first == {"limit": "100", "raw_json": "1"}
    assert second == {"limit": "100", "raw_json": "1", "after": "t3_1gx0c30"}
    cut, saddle, review = fetched.items[:3]
    assert cut.guid == "reddit:t3_1gx0c50"
    assert cut.url == (
        "https://www.reddit.com/r/bikes/comments/1gx0c50/"
        "kryptonite_evolution_lock_cut_in_broad_daylight/"
    )
    assert cut.title == "Kryptonite Evolution lock cut in broad daylight"
    assert cut.text.startswith("Came back after ten minutes")
    assert cut.author == "cyclist_sam"
    assert cut.published_at == datetime(2026, 11, 20, 12, 50, tzinfo=UTC)
    assert (cut.reach, cut.points, cut.replies, cut.reposts, cut.likes) == (
        1250344,
        57,
        12,
        2,
        None,
    )
    assert saddle.author is None  # "[deleted]"
    assert review.text == "https://locktest.example/kryptonite-folding-review"  # a link post


def test_first_poll_reads_page_cap_pages(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_handler(pages)
    fetched = fetch(source(httpserver, page_cap=1))
    assert (len(fetched.items), fetched.pages, fetched.note) == (3, 1, None)
    assert fetched.cursor == "1795179000"


def test_second_poll_stops_at_the_cursor(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(
        fixture("new_poll2.json"), content_type="application/json"
    )
    fetched = fetch(source(httpserver), cursor="1795179000")
    # the first page already reaches the cursor: one request although the listing goes on
    assert len(requests(httpserver)) == 1
    assert [i.guid for i in fetched.items] == [
        "reddit:t3_1gx0c55",
        "reddit:t3_1gx0c50",  # edited since: returned so that the stored row is updated
        "reddit:t3_1gx0c40",
    ]
    assert fetched.cursor == "1795179300"
    assert fetched.note is None


def test_page_cap_before_the_cursor_is_noted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_handler(pages)
    fetched = fetch(source(httpserver, page_cap=1), cursor="1795170000")
    assert fetched.note is not None and "page_cap (1 pages) reached" in fetched.note
    assert fetched.cursor == "1795179000"  # the gap is accepted; the next poll starts anew


def test_search_urls_and_identity(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/search.json").respond_with_data(
        fixture("empty.json"), content_type="application/json"
    )
    httpserver.expect_request("/search.json").respond_with_data(
        fixture("empty.json"), content_type="application/json"
    )
    in_sub = source(httpserver, query="kryptonite & lock")
    everywhere = source(httpserver, subreddit=None, query="kryptonite")
    assert fetch(in_sub) == api.Fetched((), None, None, 1)
    assert fetch(everywhere).items == ()
    first, second = (dict(r.args) for r in requests(httpserver))
    assert first == {
        "q": "kryptonite & lock",
        "sort": "new",
        "restrict_sr": "1",
        "limit": "100",
        "raw_json": "1",
    }
    assert second == {"q": "kryptonite", "sort": "new", "limit": "100", "raw_json": "1"}
    assert api.identity(in_sub) == httpserver.url_for(
        "/r/bikes/search.json?q=kryptonite+%26+lock&sort=new&restrict_sr=1&limit=100&raw_json=1"
    )
    public = SourceSettings(name="r", kind="reddit", subreddit="r/Python+django")
    assert (
        api.identity(public)
        == "https://www.reddit.com/r/Python+django/new.json?limit=100&raw_json=1"
    )


def test_empty_listing_keeps_the_cursor(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(
        fixture("empty.json"), content_type="application/json"
    )
    fetched = fetch(source(httpserver), cursor="1795179000")
    assert (fetched.items, fetched.cursor, fetched.note) == ((), "1795179000", None)


def test_429_carries_the_retry_delay(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_response(
        json_response({"message": "Too Many Requests", "error": 429}, 429, **{"Retry-After": "120"})
    )
    with pytest.raises(FetchError) as caught:
        fetch(source(httpserver))
    assert (caught.value.status, caught.value.retry_after) == (429, 120)


def test_429_without_retry_after_uses_the_reset_header(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_response(
        json_response("{}", 429, **{"x-ratelimit-remaining": "0.0", "x-ratelimit-reset": "300"})
    )
    with pytest.raises(FetchError) as caught:
        fetch(source(httpserver))
    assert caught.value.retry_after == 300


def test_used_up_budget_stops_paging(httpserver: HTTPServer) -> None:
    budget = {"x-ratelimit-remaining": "0.0", "x-ratelimit-used": "100", "x-ratelimit-reset": "240"}
    httpserver.expect_request("/r/bikes/new.json").respond_with_response(
        json_response(fixture("new_page1.json"), **budget)
    )
    first = fetch(source(httpserver))
    assert len(requests(httpserver)) == 1
    assert first.note is not None and "rate-limit budget used up" in first.note
    assert "240s" in first.note
    assert first.cursor == "1795179000"  # a first poll keeps what it got
    later = fetch(source(httpserver), cursor="1795170000")
    assert len(later.items) == 3
    assert later.cursor is None  # not read back to the cursor: the next poll reads the gap


class Reddit:
    """A reddit double for OAuth: a token endpoint and a listing that wants the bearer token."""

    def __init__(self, server: HTTPServer) -> None:
        self.tokens = 0
        self.reject_listing = 0  # answer the next n listing requests with 401
        self.token_answer: Response | None = None
        server.expect_request("/api/v1/access_token", method="POST").respond_with_handler(
            self.token
        )
        server.expect_request("/r/bikes/new.json").respond_with_handler(self.listing)

    def token(self, request: Request) -> Response:
        self.tokens += 1
        if self.token_answer is not None:
            return self.token_answer
        answer = listing("token.json")
        answer["access_token"] = f"token-{self.tokens}"
        return json_response(answer)

    def listing(self, request: Request) -> Response:
        if self.reject_listing:
            self.reject_listing -= 1
            return json_response({"message": "Unauthorized", "error": 401}, 401)
        if request.headers.get("Authorization") != f"bearer token-{self.tokens}":
            return json_response({"message": "Unauthorized", "error": 401}, 401)
        return json_response(fixture("new_page2.json"))


def app_source(server: HTTPServer, **extra: Any) -> SourceSettings:
    return source(
        server,
        client_id="abcDEF123",
        client_secret=SECRET,
        headers={"User-Agent": "linux:listener-test:1.0 (by /u/listener_bot)"},
        **extra,
    )


def test_app_credentials_get_a_token_once_and_renew_it(httpserver: HTTPServer) -> None:
    reddit = Reddit(httpserver)
    session: dict[str, Any] = {}
    fetched = fetch(app_source(httpserver), session=session)
    assert len(fetched.items) == 2
    token_request, listing_request = requests(httpserver)
    expected = base64.b64encode(f"abcDEF123:{SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert dict(token_request.form) == {"grant_type": "client_credentials"}
    assert token_request.headers["User-Agent"] == "linux:listener-test:1.0 (by /u/listener_bot)"
    assert listing_request.headers["Authorization"] == "bearer token-1"
    assert listing_request.headers["User-Agent"] == "linux:listener-test:1.0 (by /u/listener_bot)"
    # the token is kept for the next poll ...
    fetch(app_source(httpserver), "1795170000", now=NOW + timedelta(hours=23), session=session)
    assert reddit.tokens == 1
    # ... until it expires (86400 s, less a minute of margin)
    fetch(app_source(httpserver), "1795170000", now=NOW + timedelta(hours=24), session=session)
    assert reddit.tokens == 2


def test_a_401_on_a_listing_refreshes_the_token_once(httpserver: HTTPServer) -> None:
    reddit = Reddit(httpserver)
    session: dict[str, Any] = {}
    fetch(app_source(httpserver), session=session)
    reddit.reject_listing = 1  # revoked behind our back
    assert len(fetch(app_source(httpserver), session=session).items) == 2
    assert reddit.tokens == 2
    reddit.reject_listing = 2  # a fresh token is refused as well: give up loudly
    with pytest.raises(FetchError, match=r"^401: reddit rejected a fresh access token") as caught:
        fetch(app_source(httpserver), session=session)
    assert reddit.tokens == 3
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "answer",
    [
        json_response({"message": "Unauthorized", "error": 401}, 401),
        json_response({"error": "invalid_grant"}),  # 200 without a token
    ],
)
def test_rejected_app_credentials_fail_loudly_without_the_secret(
    httpserver: HTTPServer, answer: Response
) -> None:
    reddit = Reddit(httpserver)
    reddit.token_answer = answer
    with pytest.raises(FetchError, match=r"^401: reddit app credentials rejected") as caught:
        fetch(app_source(httpserver))
    assert SECRET not in str(caught.value)
    assert caught.value.status == 401


def test_malformed_first_page_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(
        "<html>we took reddit down</html>", content_type="text/html"
    )
    with pytest.raises(ParseError, match="reddit listing: not JSON"):
        fetch(source(httpserver))


@pytest.mark.parametrize(
    "body", ['{"kind": "t3", "data": {}}', '{"kind": "Listing", "data": {"children": {}}}']
)
def test_json_that_is_no_listing_is_a_parse_error(httpserver: HTTPServer, body: str) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(body)
    with pytest.raises(ParseError, match="reddit: not a Listing"):
        fetch(source(httpserver))


def test_malformed_second_page_keeps_the_first(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if request.args.get("after"):
            return json_response('{"kind": "Listing", "data": {"children": [')
        return json_response(fixture("new_page1.json"))

    httpserver.expect_request("/r/bikes/new.json").respond_with_handler(handler)
    first = fetch(source(httpserver))
    assert len(first.items) == 3
    assert first.note is not None and first.note.startswith("page 2: reddit listing: not JSON")
    assert first.cursor == "1795179000"
    later = fetch(source(httpserver), cursor="1795170000")
    assert (len(later.items), later.gap) == (3, True)  # the gap is read again next poll


def test_deep_nesting_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(
        '{"kind": "Listing", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    with pytest.raises(ParseError, match="nested too deeply"):
        fetch(source(httpserver))


def test_huge_numbers_are_clamped_and_future_times_are_no_cursor(httpserver: HTTPServer) -> None:
    page = listing("new_page1.json")
    posts = [child["data"] for child in page["data"]["children"]]
    posts[0].update(score=10**40, num_comments=True, subreddit_subscribers="9" * 50)
    posts[1]["created_utc"] = 1e300
    posts[2]["created_utc"] = (NOW + timedelta(days=30)).timestamp()
    page["data"]["after"] = None
    httpserver.expect_request("/r/bikes/new.json").respond_with_response(json_response(page))
    fetched = fetch(source(httpserver))
    huge, unreadable, future = fetched.items
    assert (huge.points, huge.replies, huge.reach) == (2**63 - 1, None, None)
    assert unreadable.published_at is None
    assert future.published_at == NOW + timedelta(days=30)
    assert fetched.cursor == "1795179000"


def test_private_subreddit_names_itself(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(
        fixture("private.json"), status=403, content_type="application/json"
    )
    with pytest.raises(FetchError, match=r"^403: reddit refused access to r/bikes \(private\)"):
        fetch(source(httpserver))


def test_unknown_subreddit_is_a_404(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/nosuchsub/new.json").respond_with_response(
        Response(status=302, headers={"Location": "/subreddits/search.json?q=nosuchsub"})
    )
    httpserver.expect_request("/subreddits/search.json").respond_with_data(
        fixture("subreddits_search.json"), content_type="application/json"
    )
    with pytest.raises(FetchError, match=r"^404: subreddit r/nosuchsub does not exist"):
        fetch(source(httpserver, subreddit="nosuchsub"))


def test_bad_subreddit_name_is_explained(httpserver: HTTPServer) -> None:
    with pytest.raises(FetchError, match="is not a name like 'python'"):
        fetch(source(httpserver, subreddit="two words"))
    assert requests(httpserver) == []


# -- through the pipeline ---------------------------------------------------------------------


def settings_for(server: HTTPServer, **extra: Any) -> Settings:
    raw: dict[str, Any] = {
        "brands": [{"name": "Kryptonite", "terms": ["Kryptonite"], "exclude": ["Superman"]}],
        "sources": [
            {
                "name": "r-bikes",
                "kind": "reddit",
                "subreddit": "bikes",
                "base_url": server.url_for("/"),
                **extra,
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


def stored(engine: Engine) -> dict[str, tuple[bool, str, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(MentionRow.guid, MentionRow.backfill, MentionRow.text, MentionRow.points)
        )
        return {row.guid: (row.backfill, row.text, row.points) for row in rows}


def test_pipeline_backfills_then_polls_only_what_is_new(
    httpserver: HTTPServer, engine: Engine
) -> None:
    second_poll = False

    def handler(request: Request) -> Response:
        if second_poll:
            return json_response(fixture("new_poll2.json"))
        return pages(request)

    httpserver.expect_request("/r/bikes/new.json").respond_with_handler(handler)
    settings = settings_for(httpserver)
    first = poll(settings, engine, NOW)
    assert (first.status, first.items, first.new) == ("ok", 5, 3)
    rows = stored(engine)
    assert set(rows) == {"reddit:t3_1gx0c50", "reddit:t3_1gx0c30", "reddit:t3_1gx0c20"}
    assert all(backfill for backfill, _, _ in rows.values())  # a first poll is history
    assert rows["reddit:t3_1gx0c50"][1].startswith("Came back after ten minutes")
    assert rows["reddit:t3_1gx0c50"][2] == 57
    state = store_state(engine)
    assert state.cursor == "1795179000"

    second_poll = True
    httpserver.clear_log()
    second = poll(settings, engine, NOW + timedelta(minutes=15))
    assert (second.status, second.new, second.updated) == ("ok", 1, 1)
    assert len(requests(httpserver)) == 1  # page 1 reached the cursor
    rows = stored(engine)
    assert rows["reddit:t3_1gx0c55"][0] is False  # news, not history
    assert rows["reddit:t3_1gx0c50"][1].startswith("EDIT: it was an angle grinder")
    assert store_state(engine).cursor == "1795179300"


def store_state(engine: Engine) -> Any:
    with store.transaction(engine, "test") as conn:
        return store.load_states(conn)["r-bikes"]


def test_pipeline_records_rejected_credentials(httpserver: HTTPServer, engine: Engine) -> None:
    httpserver.expect_request("/api/v1/access_token", method="POST").respond_with_response(
        json_response({"message": "Unauthorized", "error": 401}, 401)
    )
    settings = settings_for(httpserver, client_id="abcDEF123", client_secret=SECRET)
    outcome = poll(settings, engine, NOW)
    assert outcome.status == "failed"
    state = store_state(engine)
    assert state.last_error is not None
    assert state.last_error.startswith("fetch: 401: reddit app credentials rejected")
    assert SECRET not in state.last_error
    assert state.cursor is None


def test_a_paging_loop_stops(httpserver: HTTPServer) -> None:
    # a broken listing that names the same "after" token on every page
    httpserver.expect_request("/r/bikes/new.json").respond_with_data(
        fixture("new_page1.json"), content_type="application/json"
    )
    fetched = fetch(source(httpserver))
    assert len(requests(httpserver)) == 2
    assert fetched.note == "reddit sent the same page token twice; paging stopped"
    assert fetched.cursor == "1795179000"
