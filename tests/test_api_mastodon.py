"""The mastodon adapter against a real HTTP server on 127.0.0.1 that answers like a Mastodon
instance (hashtag timeline and v2 search with min_id/max_id paging and Link headers, over the
documented Status entities in tests/data/api/mastodon/), and through the whole pipeline into
SQLite and PostgreSQL."""

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
from listener.sources import api
from listener.sources.client import Client, HttpSettings
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "api" / "mastodon"
TOKEN = "Zm9vYmFyLXRva2VuLXNlY3JldC0xMjM0"
TAG_PATH = "/api/v1/timelines/tag/kryptonitelock"


def fixture(name: str) -> Any:
    """A fixture file's JSON, without its leading ``//`` comment lines."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.startswith("//")))


def snowflake(when: datetime, sequence: int = 1234) -> str:
    return str(int(when.timestamp() * 1000) << 16 | sequence)


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 20, 12, minute, second, tzinfo=UTC)


HISTORY: list[dict[str, Any]] = fixture("tag_history.json")  # 12:50, 12:40, 12:30, 12:20
NEW: list[dict[str, Any]] = fixture("tag_new.json")  # 12:58, 12:55
NEWEST_SEEN = HISTORY[0]["id"]  # 12:50


def fillers(start: datetime, count: int) -> list[dict[str, Any]]:
    """Statuses without a brand, one per second from ``start``, to fill pages of 40."""
    made = []
    for index in range(count):
        status = copy.deepcopy(fixture("filler.json"))
        when = start + timedelta(seconds=index)
        status["id"] = snowflake(when)
        status["created_at"] = when.isoformat().replace("+00:00", "Z")
        status["uri"] = f"https://mastodon.social/users/filler/statuses/{status['id']}"
        status["url"] = f"https://mastodon.social/@filler/{status['id']}"
        made.append(status)
    return made


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, content_type="application/json", headers=headers)


class Mastodon:
    """An instance double: the tag timeline and the status search over ``statuses``, paged by
    min_id/max_id as Mastodon does, with Link headers that name the instance's own host."""

    def __init__(self, server: HTTPServer, statuses: list[dict[str, Any]]) -> None:
        self.statuses = copy.deepcopy(statuses)  # tests edit them
        self.token: str | None = None  # wanted on every request when set
        self.headers: dict[str, str] = {}
        self.links = True
        self.broken: set[str] = set()  # max_id/min_id values answered with a broken body
        server.expect_request(TAG_PATH).respond_with_handler(self.timeline)
        server.expect_request("/api/v2/search").respond_with_handler(self.search)

    def add(self, *statuses: dict[str, Any]) -> None:
        self.statuses += copy.deepcopy(statuses)

    def _refused(self, request: Request) -> Response | None:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response(fixture("token_invalid.json"), 401)
        return None

    def _broken(self, request: Request) -> Response | None:
        for key in ("max_id", "min_id"):
            if request.args.get(key) in self.broken:
                return json_response('[{"id": "1", "content": ')
        return None

    def _ascending(self) -> list[dict[str, Any]]:
        return sorted(self.statuses, key=lambda s: int(s["id"]))

    def timeline(self, request: Request) -> Response:
        refused = self._refused(request) or self._broken(request)
        if refused:
            return refused
        limit = min(40, int(request.args.get("limit", 20)))
        found = self._ascending()
        if "max_id" in request.args:
            found = [s for s in found if int(s["id"]) < int(request.args["max_id"])]
        if "min_id" in request.args:  # the page immediately newer than min_id
            page = [s for s in found if int(s["id"]) > int(request.args["min_id"])][:limit]
        else:
            page = found[-limit:]
        page.reverse()
        headers = dict(self.headers)
        if page and self.links:
            here = "https://mastodon.social" + TAG_PATH
            headers["Link"] = (
                f'<{here}?max_id={page[-1]["id"]}>; rel="next", '
                f'<{here}?min_id={page[0]["id"]}>; rel="prev"'
            )
        return json_response(page, **headers)

    def search(self, request: Request) -> Response:
        if not self.token or request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response(fixture("token_invalid.json"), 401)
        broken = self._broken(request)
        if broken:
            return broken
        words = request.args["q"].lower()
        found = [s for s in self._ascending() if words in s["content"].lower()]
        if "min_id" in request.args:
            found = [s for s in found if int(s["id"]) > int(request.args["min_id"])]
        if "max_id" in request.args:
            found = [s for s in found if int(s["id"]) < int(request.args["max_id"])]
        limit = min(40, int(request.args.get("limit", 20)))
        envelope = fixture("search.json")
        envelope["statuses"] = list(reversed(found))[:limit]  # newest first
        return json_response(envelope, **self.headers)


def source(server: HTTPServer, **extra: Any) -> SourceSettings:
    settings: dict[str, Any] = {
        "instance": "mastodon.social",
        "hashtag": "#kryptonitelock",
        "base_url": server.url_for("/"),
        **extra,
    }
    return SourceSettings(name="masto", kind="mastodon", **settings)


def fetch(src: SourceSettings, cursor: str | None = None, *, now: datetime = NOW) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client(HttpSettings(total_timeout=5, read_timeout=2)) as client:
            return await api.fetch(api.ApiContext(client, src, cursor, now, {}))

    return asyncio.run(go())


def requests(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


def test_first_poll_reads_history_back_in_time(httpserver: HTTPServer) -> None:
    # 41 statuses: the newest page of 40 has three of the fixture's, the second the fourth
    Mastodon(httpserver, [*HISTORY, *fillers(at(25), 37)])
    fetched = fetch(source(httpserver))
    assert (len(fetched.items), fetched.pages, fetched.note) == (41, 2, None)
    assert fetched.cursor == NEWEST_SEEN
    first, second = (dict(r.args) for r in requests(httpserver))
    assert first == {"limit": "40"}
    # the Link header's rel="next" (it names the instance's host: only its max_id is used)
    assert second == {"limit": "40", "max_id": snowflake(at(25))}
    assert fetched.items[-1].guid == f"mastodon:{HISTORY[3]['uri']}"
    sam, kernpanik = fetched.items[:2]
    assert sam.guid == "mastodon:https://mastodon.social/users/sam/statuses/117648850944001234"
    assert sam.url == "https://mastodon.social/@sam/117648850944001234"
    assert sam.title == ""
    assert sam.text == (
        'My lock was cut in ten minutes flat. So much for #KryptoniteLock & its "sold secure" '
        "rating."
    )
    assert sam.author == "sam@mastodon.social"  # a local account's acct gets its host
    assert (sam.language, sam.published_at) == ("en", at(50))
    assert (sam.reach, sam.likes, sam.reposts, sam.replies, sam.points) == (322930, 11, 6, 5, None)
    assert kernpanik.text == "Fahrradschloss\nDas #kryptonitelock hält seit fünf Jahren."
    assert kernpanik.author == "kernpanik@chaos.social"


def test_without_link_headers_the_page_ids_page(httpserver: HTTPServer) -> None:
    mastodon = Mastodon(httpserver, [*HISTORY, *fillers(at(25), 37)])
    mastodon.links = False
    assert len(fetch(source(httpserver)).items) == 41
    assert requests(httpserver)[1].args["max_id"] == snowflake(at(25))


def test_later_polls_walk_forward_from_the_cursor(httpserver: HTTPServer) -> None:
    # 42 new statuses since the cursor: 40 filler seconds after 12:50, then 12:55 and 12:58
    Mastodon(httpserver, [*HISTORY, *fillers(at(51), 40), *NEW])
    fetched = fetch(source(httpserver), cursor=NEWEST_SEEN)
    first, second = (dict(r.args) for r in requests(httpserver))
    assert first == {"limit": "40", "min_id": NEWEST_SEEN}
    assert second == {"limit": "40", "min_id": snowflake(at(51, 39))}  # rel="prev"
    assert len(fetched.items) == 42
    assert {i.guid for i in fetched.items} >= {f"mastodon:{s['uri']}" for s in NEW}
    assert fetched.cursor == NEW[0]["id"]  # 12:58
    assert fetched.note is None


def test_a_capped_forward_walk_leaves_no_gap(httpserver: HTTPServer) -> None:
    Mastodon(httpserver, [*HISTORY, *fillers(at(51), 40), *NEW])
    one = fetch(source(httpserver, page_cap=1), cursor=NEWEST_SEEN)
    assert (len(one.items), one.cursor, one.note) == (40, snowflake(at(51, 39)), None)
    two = fetch(source(httpserver, page_cap=1), cursor=one.cursor)
    assert [i.guid for i in two.items] == [f"mastodon:{s['uri']}" for s in NEW]
    assert two.cursor == NEW[0]["id"]


def test_nothing_new_keeps_the_cursor(httpserver: HTTPServer) -> None:
    Mastodon(httpserver, HISTORY)
    assert fetch(source(httpserver), cursor=NEWEST_SEEN) == api.Fetched((), None, None, 1)


def test_unknown_hashtag_is_empty(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAG_PATH).respond_with_response(
        json_response(fixture("not_found.json"), 404)
    )
    assert fetch(source(httpserver)).items == ()


def test_other_404s_fail(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAG_PATH).respond_with_data("<h1>Not Found</h1>", status=404)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(source(httpserver))


def test_instance_that_wants_a_token(httpserver: HTTPServer) -> None:
    Mastodon(httpserver, HISTORY).token = TOKEN
    with pytest.raises(FetchError, match=r"^401: .* requires an access token for hashtag"):
        fetch(source(httpserver))


def test_token_is_sent_and_a_rejected_one_is_named(httpserver: HTTPServer) -> None:
    Mastodon(httpserver, HISTORY).token = TOKEN
    assert len(fetch(source(httpserver, token=TOKEN)).items) == 4
    assert requests(httpserver)[0].headers["Authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(FetchError, match=r"^401: mastodon access token rejected by") as caught:
        fetch(source(httpserver, token="revoked-token-0000"))
    assert "revoked-token-0000" not in str(caught.value)
    assert caught.value.status == 401


def test_429_carries_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAG_PATH).respond_with_response(
        json_response({"error": "Too many requests"}, 429, **{"Retry-After": "300"})
    )
    with pytest.raises(FetchError) as caught:
        fetch(source(httpserver))
    assert (caught.value.status, caught.value.retry_after) == (429, 300)


def test_used_up_budget_stops_paging(httpserver: HTTPServer) -> None:
    mastodon = Mastodon(httpserver, [*HISTORY, *fillers(at(25), 37)])
    mastodon.headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2026-11-20T13:05:00.000Z",
    }
    fetched = fetch(source(httpserver))
    assert len(requests(httpserver)) == 1
    assert fetched.note is not None and "rate-limit budget used up after page 1" in fetched.note
    assert "2026-11-20T13:05:00.000Z" in fetched.note
    assert fetched.cursor == NEWEST_SEEN


def test_malformed_first_page_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAG_PATH).respond_with_data("<html>maintenance</html>")
    with pytest.raises(ParseError, match="mastodon hashtag timeline: not JSON"):
        fetch(source(httpserver))


@pytest.mark.parametrize("body", ['{"error": "weird"}', '[{"no": "id"}, 5]'])
def test_json_that_is_no_timeline_is_a_parse_error(httpserver: HTTPServer, body: str) -> None:
    httpserver.expect_request(TAG_PATH).respond_with_data(body)
    with pytest.raises(ParseError, match="mastodon: "):
        fetch(source(httpserver))


def test_malformed_second_page_keeps_the_first(httpserver: HTTPServer) -> None:
    mastodon = Mastodon(httpserver, [*HISTORY, *fillers(at(25), 37)])
    mastodon.broken = {snowflake(at(25))}
    fetched = fetch(source(httpserver))
    assert len(fetched.items) == 40
    assert fetched.note is not None
    assert fetched.note.startswith("page 2: mastodon hashtag timeline: not JSON")
    assert fetched.cursor == NEWEST_SEEN


def test_deep_nesting_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAG_PATH).respond_with_data("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ParseError, match="nested too deeply"):
        fetch(source(httpserver))


def test_huge_numbers_bad_ids_and_future_ids(httpserver: HTTPServer) -> None:
    statuses = copy.deepcopy(HISTORY)
    statuses[1].update(favourites_count=10**30, reblogs_count=-(10**30), replies_count="12")
    statuses[1]["account"]["followers_count"] = float("1e300")
    statuses[2]["id"] = "9" * 60  # no id Mastodon could send: the status is skipped
    future = copy.deepcopy(statuses[3])
    future["id"] = snowflake(NOW + timedelta(days=10))
    httpserver.expect_request(TAG_PATH).respond_with_response(
        json_response([future, statuses[0], statuses[1], statuses[2]])
    )
    fetched = fetch(source(httpserver))
    assert len(fetched.items) == 3
    huge = fetched.items[2]
    assert (huge.likes, huge.reposts, huge.replies) == (2**63 - 1, -(2**63 - 1), 12)
    assert huge.reach == 2**63 - 1
    assert fetched.cursor == NEWEST_SEEN  # the id from ten days ahead is not trusted


def test_a_boost_is_read_as_the_boosted_status(httpserver: HTTPServer) -> None:
    boost = copy.deepcopy(fixture("filler.json"))
    boost.update(id=snowflake(at(59)), content="", reblog=copy.deepcopy(HISTORY[1]))
    httpserver.expect_request(TAG_PATH).respond_with_response(json_response([boost]))
    fetched = fetch(source(httpserver), cursor=NEWEST_SEEN)
    [item] = fetched.items
    assert item.guid == f"mastodon:{HISTORY[1]['uri']}"
    assert item.author == "kernpanik@chaos.social"
    assert fetched.cursor == snowflake(at(59))  # paging goes by the timeline entry's id


def test_identity_and_instance_forms() -> None:
    def identity(**extra: Any) -> str:
        settings = {"instance": "Mastodon.Social", "hashtag": "#München", **extra}
        return api.identity(SourceSettings(name="m", kind="mastodon", **settings))

    assert identity() == "https://mastodon.social/api/v1/timelines/tag/M%C3%BCnchen"
    assert identity(instance="http://localhost:3000/") == (
        "http://localhost:3000/api/v1/timelines/tag/M%C3%BCnchen"
    )
    assert identity(query="kryptonite lock", token=TOKEN) == (
        "https://mastodon.social/api/v2/search?q=kryptonite+lock&type=statuses"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"hashtag": "two words"}, "is not a tag like '#python'"),
        ({"instance": "mastodon.social/@sam", "base_url": None}, "is not a host like"),
    ],
)
def test_bad_names_are_explained(
    httpserver: HTTPServer, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(FetchError, match=message):
        fetch(source(httpserver, **extra))


# -- search -------------------------------------------------------------------------------------


def search_source(server: HTTPServer, **extra: Any) -> SourceSettings:
    return source(server, hashtag=None, query="kryptonitelock", token=TOKEN, **extra)


def test_search_reads_newest_first_and_walks_back_to_the_cursor(httpserver: HTTPServer) -> None:
    mastodon = Mastodon(httpserver, list(HISTORY))
    mastodon.token = TOKEN
    first = fetch(search_source(httpserver))
    assert [i.guid for i in first.items] == [f"mastodon:{s['uri']}" for s in HISTORY]
    assert first.cursor == NEWEST_SEEN
    [request] = requests(httpserver)
    assert dict(request.args) == {
        "q": "kryptonitelock",
        "type": "statuses",
        "limit": "40",
        "resolve": "false",
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    # 42 new statuses: the newest 40, then back (max_id) to the cursor
    new_ones = fillers(at(51), 40)
    for status in new_ones:
        status["content"] = "<p>#kryptonitelock again</p>"
    mastodon.add(*new_ones, *NEW)
    httpserver.clear_log()
    later = fetch(search_source(httpserver), cursor=NEWEST_SEEN)
    one, two = (dict(r.args) for r in requests(httpserver))
    assert one["min_id"] == two["min_id"] == NEWEST_SEEN
    assert "max_id" not in one
    assert two["max_id"] == snowflake(at(51, 2))  # the oldest of the newest 40
    assert (len(later.items), later.cursor, later.note) == (42, NEW[0]["id"], None)


def test_search_capped_before_the_cursor_is_noted(httpserver: HTTPServer) -> None:
    new_ones = fillers(at(51), 45)
    for status in new_ones:
        status["content"] = "<p>#kryptonitelock again</p>"
    Mastodon(httpserver, [*HISTORY, *new_ones]).token = TOKEN
    fetched = fetch(search_source(httpserver, page_cap=1), cursor=NEWEST_SEEN)
    assert fetched.note is not None and "page_cap (1 pages) reached" in fetched.note
    assert fetched.cursor == snowflake(at(51, 44))


def test_search_with_a_broken_later_page_keeps_the_cursor(httpserver: HTTPServer) -> None:
    new_ones = fillers(at(51), 45)
    for status in new_ones:
        status["content"] = "<p>#kryptonitelock again</p>"
    mastodon = Mastodon(httpserver, [*HISTORY, *new_ones])
    mastodon.token = TOKEN
    mastodon.broken = {snowflake(at(51, 5))}
    fetched = fetch(search_source(httpserver), cursor=NEWEST_SEEN)
    assert len(fetched.items) == 40
    assert fetched.note is not None and fetched.note.startswith("page 2: mastodon search")
    assert fetched.gap  # the pipeline keeps the stored cursor: the next poll reads the gap


def test_search_without_statuses_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v2/search").respond_with_response(
        json_response({"accounts": [], "hashtags": []})
    )
    with pytest.raises(ParseError, match="no 'statuses' list"):
        fetch(search_source(httpserver))


# -- through the pipeline -----------------------------------------------------------------------


def settings_for(server: HTTPServer, **extra: Any) -> Settings:
    raw: dict[str, Any] = {
        "brands": [
            {
                "name": "Kryptonite",
                "terms": ["Kryptonite", "#kryptonitelock"],
                "exclude": ["Superman"],
            }
        ],
        "sources": [
            {
                "name": "masto",
                "kind": "mastodon",
                "instance": "mastodon.social",
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
            select(MentionRow.guid, MentionRow.backfill, MentionRow.text, MentionRow.likes)
        )
        return {row.guid: (row.backfill, row.text, row.likes) for row in rows}


def state_of(engine: Engine) -> Any:
    with store.transaction(engine, "test") as conn:
        return store.load_states(conn)["masto"]


def test_pipeline_hashtag_backfill_then_only_new(httpserver: HTTPServer, engine: Engine) -> None:
    mastodon = Mastodon(httpserver, list(HISTORY))
    settings = settings_for(httpserver, hashtag="kryptonitelock")
    first = poll(settings, engine, NOW)
    assert (first.status, first.items, first.new) == ("ok", 4, 3)  # Superman is excluded
    rows = stored(engine)
    assert set(rows) == {f"mastodon:{HISTORY[i]['uri']}" for i in (0, 1, 3)}
    assert all(backfill for backfill, _, _ in rows.values())
    assert rows[f"mastodon:{HISTORY[0]['uri']}"][2] == 11
    assert state_of(engine).cursor == NEWEST_SEEN

    mastodon.add(*NEW)
    httpserver.clear_log()
    second = poll(settings, engine, NOW + timedelta(minutes=15))
    assert (second.status, second.items, second.new) == ("ok", 2, 2)
    [request] = requests(httpserver)
    assert request.args["min_id"] == NEWEST_SEEN
    rows = stored(engine)
    assert [rows[f"mastodon:{s['uri']}"][0] for s in NEW] == [False, False]  # news
    assert state_of(engine).cursor == NEW[0]["id"]


def test_pipeline_search_reads_a_gap_again_and_updates_edits(
    httpserver: HTTPServer, engine: Engine
) -> None:
    mastodon = Mastodon(httpserver, list(HISTORY))
    mastodon.token = TOKEN
    settings = settings_for(httpserver, query="kryptonitelock", token=TOKEN)
    assert poll(settings, engine, NOW).new == 3
    # 45 new: 43 without a brand, then 12:55 and 12:58; page 2 breaks on the next poll
    mastodon.add(*fillers(at(51), 43), *NEW)
    for status in mastodon.statuses[len(HISTORY) :]:
        status["content"] = status["content"].replace("Nothing", "#kryptonitelock nothing")
    mastodon.broken = {snowflake(at(51, 5))}
    partial = poll(settings, engine, NOW + timedelta(minutes=15))
    assert (partial.status, partial.new) == ("ok", 40)
    assert partial.warnings and partial.warnings[0].startswith("page 2: mastodon search")
    assert api.read_cursor(state_of(engine).cursor) == (NEWEST_SEEN, 1)  # kept, one retry so far
    # the 12:55 status is edited; the next poll reads everything since the cursor again
    edited = next(s for s in mastodon.statuses if s["id"] == NEW[1]["id"])
    edited["content"] = "<p>#kryptonitelock EDIT: the cut video was staged.</p>"
    edited["edited_at"] = "2026-11-20T13:10:00.000Z"
    mastodon.broken = set()
    httpserver.clear_log()
    again = poll(settings, engine, NOW + timedelta(minutes=30))
    assert (again.status, again.new, again.updated) == ("ok", 5, 1)
    assert all(r.args["min_id"] == NEWEST_SEEN for r in requests(httpserver))
    assert stored(engine)[f"mastodon:{NEW[1]['uri']}"][1] == (
        "#kryptonitelock EDIT: the cut video was staged."
    )
    assert state_of(engine).cursor == NEW[0]["id"]


def test_pipeline_records_a_rejected_token(httpserver: HTTPServer, engine: Engine) -> None:
    Mastodon(httpserver, HISTORY).token = TOKEN
    settings = settings_for(httpserver, query="kryptonitelock", token="revoked-token-0000")
    outcome = poll(settings, engine, NOW)
    assert outcome.status == "failed"
    state = state_of(engine)
    assert state.last_error is not None
    assert state.last_error.startswith("fetch: 401: mastodon access token rejected by")
    assert "revoked-token-0000" not in state.last_error
