"""The youtube (Data API search) adapter against a real HTTP server on 127.0.0.1 serving Google's
documented JSON (tests/data/api/youtube/), and through the whole pipeline into SQLite and
PostgreSQL."""

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
from listener.sources import api
from listener.sources.client import Client, HttpSettings
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "api" / "youtube"
KEY = "AIzaSyD-fake-key-0123456789abcdefghijk"
SEARCH = "/youtube/v3/search"
VIDEOS = "/youtube/v3/videos"


def fixture(name: str) -> Any:
    """A fixture file's JSON, without its leading ``//`` comment lines."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.startswith("//")))


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, content_type="application/json", headers=headers)


class YouTube:
    """The Data API double: search pages by pageToken, video statistics by id, the key checked."""

    def __init__(self, server: HTTPServer) -> None:
        self.pages: dict[str | None, Any] = {
            None: fixture("search_page1.json"),
            "CAMQAA": fixture("search_page2.json"),
        }
        self.videos_answer: Response | None = None
        server.expect_request(SEARCH).respond_with_handler(self.search)
        server.expect_request(VIDEOS).respond_with_handler(self.videos)

    def search(self, request: Request) -> Response:
        if request.args.get("key") != KEY:
            return json_response(fixture("error_key.json"), 400)
        page = self.pages.get(request.args.get("pageToken"))
        return json_response(page) if isinstance(page, dict | list) else page

    def videos(self, request: Request) -> Response:
        if self.videos_answer is not None:
            return self.videos_answer
        wanted = request.args["id"].split(",")
        answer = fixture("videos.json")
        answer["items"] = [v for v in answer["items"] if v["id"] in wanted]
        return json_response(answer)


def source(server: HTTPServer, **extra: Any) -> SourceSettings:
    settings: dict[str, Any] = {
        "query": "kryptonite",
        "api_key": KEY,
        "base_url": server.url_for("/"),
        **extra,
    }
    return SourceSettings(name="yt", kind="youtube", **settings)


def fetch(src: SourceSettings, cursor: str | None = None, *, now: datetime = NOW) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client(HttpSettings(total_timeout=5, read_timeout=2)) as client:
            return await api.fetch(api.ApiContext(client, src, cursor, now, {}))

    return asyncio.run(go())


def requests(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


def test_first_poll_pages_and_adds_statistics(httpserver: HTTPServer) -> None:
    YouTube(httpserver)
    fetched = fetch(source(httpserver))
    assert (len(fetched.items), fetched.pages, fetched.note) == (5, 2, None)
    assert fetched.cursor == "2026-11-20T12:50:00Z"
    one, two, stats = requests(httpserver)
    assert dict(one.args) == {
        "part": "snippet",
        "q": "kryptonite",
        "type": "video",
        "order": "date",
        "maxResults": "50",
        "key": KEY,
    }
    assert dict(two.args) == {**one.args, "pageToken": "CAMQAA"}
    assert stats.path == VIDEOS
    assert dict(stats.args) == {
        "part": "statistics",
        "id": "kX3mP9qLr2A,Zq81bVwNn0c,Hn4tR7yUu8i,Pp0oIi9UuY7,Ss5dF6gH7jK",
        "key": KEY,
    }
    cut, _, chain = fetched.items[:3]
    assert cut.guid == "yt:video:kX3mP9qLr2A"
    assert cut.url == "https://www.youtube.com/watch?v=kX3mP9qLr2A"
    assert cut.title == "Kryptonite lock cut in 10 seconds 'sold secure'?"  # unescaped
    assert cut.text == "We test the Kryptonite Evolution & three other locks with an angle grinder."
    assert cut.author == "Lock Lab & Friends"
    assert cut.published_at == datetime(2026, 11, 20, 12, 50, tzinfo=UTC)
    assert (cut.points, cut.likes, cut.replies, cut.reposts, cut.reach) == (
        184223,
        5120,
        874,
        None,
        None,
    )
    assert (chain.points, chain.replies) == (40210, None)  # comments turned off


def test_later_polls_send_published_after(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    youtube.pages[None] = fixture("search_poll2.json")
    fetched = fetch(source(httpserver), cursor="2026-11-20T12:50:00Z")
    search, _ = requests(httpserver)
    assert search.args["publishedAfter"] == "2026-11-20T12:50:00Z"
    assert [i.guid for i in fetched.items] == ["yt:video:Nn2bV5cX8zL", "yt:video:kX3mP9qLr2A"]
    assert fetched.cursor == "2026-11-20T12:55:00Z"


def test_first_poll_reads_page_cap_pages(httpserver: HTTPServer) -> None:
    YouTube(httpserver)
    fetched = fetch(source(httpserver, page_cap=1))
    assert (len(fetched.items), fetched.pages, fetched.note) == (3, 1, None)
    assert [r.path for r in requests(httpserver)] == [SEARCH, VIDEOS]


def test_page_cap_before_the_cursor_is_noted(httpserver: HTTPServer) -> None:
    YouTube(httpserver)
    fetched = fetch(source(httpserver, page_cap=1), cursor="2026-11-20T11:00:00Z")
    assert fetched.note is not None and "page_cap (1 pages) reached" in fetched.note
    assert fetched.cursor == "2026-11-20T12:50:00Z"


def test_no_results_keep_the_cursor_and_cost_no_statistics(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    youtube.pages[None] = {**fixture("search_page2.json"), "items": []}
    fetched = fetch(source(httpserver), cursor="2026-11-20T12:50:00Z")
    assert (fetched.items, fetched.cursor, fetched.note) == ((), "2026-11-20T12:50:00Z", None)
    assert [r.path for r in requests(httpserver)] == [SEARCH]


def test_search_in_a_channel_and_identity(httpserver: HTTPServer) -> None:
    YouTube(httpserver)
    channel = source(httpserver, channel_id="UCxLockTestChannel0000001", page_cap=1)
    fetch(channel)
    assert requests(httpserver)[0].args["channelId"] == "UCxLockTestChannel0000001"
    public = SourceSettings(name="y", kind="youtube", query="kryptonite lock", api_key=KEY)
    assert api.identity(public) == (
        "https://www.googleapis.com/youtube/v3/search?part=snippet&q=kryptonite+lock"
        "&type=video&order=date"
    )
    assert KEY not in api.identity(channel)


def test_quota_exceeded_waits_for_the_reset(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEARCH).respond_with_response(
        json_response(fixture("error_quota.json"), 403)
    )
    with pytest.raises(FetchError, match=r"^403: YouTube API quota exceeded") as caught:
        fetch(source(httpserver))
    # 13:00 UTC is 05:00 in Los Angeles (PST): the quota resets in 19 hours, at 08:00 UTC
    assert caught.value.retry_after == 19 * 3600
    assert "08:00 UTC" in str(caught.value)
    assert caught.value.status == 403


def test_rejected_key_is_named_but_never_shown(httpserver: HTTPServer) -> None:
    YouTube(httpserver)
    with pytest.raises(FetchError, match=r"^400: YouTube API key rejected \(API_KEY_INVALID\)$"):
        fetch(source(httpserver, api_key="AIzaWrongKey000000000000000000000000"))


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("error_disabled.json", 403, "the YouTube Data API v3 is not enabled"),
        (None, 400, r"refused the request \(invalidPageToken\): The page token is \*\*\*"),
    ],
)
def test_other_refusals_are_explained(
    httpserver: HTTPServer, name: str | None, status: int, message: str
) -> None:
    body = (
        fixture(name)
        if name
        else {
            "error": {
                "code": 400,
                "message": f"The page token is {KEY}",  # an answer that quotes the key
                "errors": [{"domain": "youtube.parameter", "reason": "invalidPageToken"}],
            }
        }
    )
    httpserver.expect_request(SEARCH).respond_with_response(json_response(body, status))
    with pytest.raises(FetchError, match=message) as caught:
        fetch(source(httpserver))
    assert KEY not in str(caught.value)


def test_server_errors_name_the_url_without_the_key(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEARCH).respond_with_data("backend error", status=500)
    with pytest.raises(FetchError, match="HTTP 500") as caught:
        fetch(source(httpserver))
    assert "key=***" in str(caught.value)
    assert KEY not in str(caught.value)


def test_429_carries_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEARCH).respond_with_response(
        json_response(
            {"error": {"code": 429, "message": "slow down"}}, 429, **{"Retry-After": "60"}
        )
    )
    with pytest.raises(FetchError) as caught:
        fetch(source(httpserver))
    assert (caught.value.status, caught.value.retry_after) == (429, 60)


def test_malformed_first_page_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEARCH).respond_with_data("<html>captcha</html>")
    with pytest.raises(ParseError, match="youtube search: not JSON") as caught:
        fetch(source(httpserver))
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("body", ['{"kind": "youtube#searchListResponse"}', '{"items": [1, {}]}'])
def test_json_that_is_no_search_is_a_parse_error(httpserver: HTTPServer, body: str) -> None:
    httpserver.expect_request(SEARCH).respond_with_data(body)
    with pytest.raises(ParseError, match="youtube: no"):
        fetch(source(httpserver))


def test_malformed_second_page_keeps_the_first(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    youtube.pages["CAMQAA"] = json_response('{"items": [')
    first = fetch(source(httpserver))
    assert len(first.items) == 3
    assert first.note is not None and first.note.startswith("page 2: youtube search: not JSON")
    assert first.cursor == "2026-11-20T12:50:00Z"
    assert first.items[0].points == 184223  # the videos found still get their statistics
    later = fetch(source(httpserver), cursor="2026-11-20T11:00:00Z")
    assert (len(later.items), later.gap) == (3, True)  # the next poll reads the gap again


def test_deep_nesting_is_a_parse_error(httpserver: HTTPServer) -> None:
    nested = '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}"
    httpserver.expect_request(SEARCH).respond_with_data(nested)
    with pytest.raises(ParseError, match="nested too deeply"):
        fetch(source(httpserver))


def test_huge_numbers_and_future_times(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    page = fixture("search_page2.json")
    page["items"][0]["snippet"]["publishedAt"] = "2027-01-01T00:00:00Z"  # a clock gone wrong
    youtube.pages[None] = page
    stats = fixture("videos.json")
    stats["items"][3]["statistics"].update(viewCount="9" * 25, likeCount=-5, commentCount=1e400)
    youtube.videos_answer = json_response(json.dumps(stats).replace("Infinity", "1e400"))
    fetched = fetch(source(httpserver))
    future, _ = fetched.items
    assert (future.points, future.likes, future.replies) == (2**63 - 1, -5, None)
    assert fetched.cursor == "2026-11-20T12:10:00Z"  # 2027 is not trusted as cursor


def test_failed_statistics_keep_the_videos(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    youtube.videos_answer = json_response(fixture("error_quota.json"), 403)
    fetched = fetch(source(httpserver))
    assert len(fetched.items) == 5
    assert all(item.points is None for item in fetched.items)
    assert fetched.note is not None
    assert fetched.note.startswith("statistics: 403: YouTube API quota exceeded")
    assert fetched.cursor == "2026-11-20T12:50:00Z"


# -- through the pipeline -----------------------------------------------------------------------


def settings_for(server: HTTPServer, **extra: Any) -> Settings:
    raw: dict[str, Any] = {
        "brands": [{"name": "Kryptonite", "terms": ["Kryptonite"], "exclude": ["Superman"]}],
        "sources": [
            {
                "name": "yt",
                "kind": "youtube",
                "query": "kryptonite",
                "api_key": KEY,
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
            select(MentionRow.guid, MentionRow.backfill, MentionRow.title, MentionRow.points)
        )
        return {row.guid: (row.backfill, row.title, row.points) for row in rows}


def state_of(engine: Engine) -> Any:
    with store.transaction(engine, "test") as conn:
        return store.load_states(conn)["yt"]


def test_pipeline_backfills_then_polls_only_what_is_new(
    httpserver: HTTPServer, engine: Engine
) -> None:
    youtube = YouTube(httpserver)
    settings = settings_for(httpserver)
    first = poll(settings, engine, NOW)
    assert (first.status, first.items, first.new) == ("ok", 5, 3)
    rows = stored(engine)
    assert set(rows) == {"yt:video:kX3mP9qLr2A", "yt:video:Hn4tR7yUu8i", "yt:video:Pp0oIi9UuY7"}
    assert all(backfill for backfill, _, _ in rows.values())
    assert rows["yt:video:Pp0oIi9UuY7"][2] == 2900311
    assert state_of(engine).cursor == "2026-11-20T12:50:00Z"

    youtube.pages[None] = fixture("search_poll2.json")
    httpserver.clear_log()
    second = poll(settings, engine, NOW + timedelta(minutes=15))
    assert (second.status, second.items, second.new, second.updated) == ("ok", 2, 1, 1)
    search = requests(httpserver)[0]
    assert search.args["publishedAfter"] == "2026-11-20T12:50:00Z"
    rows = stored(engine)
    assert rows["yt:video:Nn2bV5cX8zL"][0] is False  # news, not history
    assert rows["yt:video:kX3mP9qLr2A"][1] == (
        "Kryptonite lock cut in 10 seconds (UPDATE: it was a fake lock)"
    )
    assert state_of(engine).cursor == "2026-11-20T12:55:00Z"


def test_pipeline_records_a_rejected_key(httpserver: HTTPServer, engine: Engine) -> None:
    YouTube(httpserver)
    wrong = "AIzaWrongKey000000000000000000000000"
    outcome = poll(settings_for(httpserver, api_key=wrong), engine, NOW)
    assert outcome.status == "failed"
    state = state_of(engine)
    assert state.last_error == "fetch: 400: YouTube API key rejected (API_KEY_INVALID)"
    assert wrong not in (state.last_error or "")


def test_a_video_repeated_on_the_next_page_is_returned_once(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    page = fixture("search_page2.json")
    page["items"].insert(0, fixture("search_page1.json")["items"][2])
    youtube.pages["CAMQAA"] = page
    fetched = fetch(source(httpserver))
    assert [i.guid for i in fetched.items].count("yt:video:Hn4tR7yUu8i") == 1
    assert len(fetched.items) == 5


def test_a_paging_loop_stops(httpserver: HTTPServer) -> None:
    youtube = YouTube(httpserver)
    youtube.pages["CAMQAA"] = fixture("search_page1.json")  # names CAMQAA as next page again
    fetched = fetch(source(httpserver))
    assert [r.path for r in requests(httpserver)] == [SEARCH, SEARCH, VIDEOS]
    assert fetched.note == "YouTube sent the same page token twice; paging stopped"
    assert len(fetched.items) == 3
