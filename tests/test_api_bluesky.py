"""The bluesky adapter against a fake PDS/AppView on pytest-httpserver (real HTTP, the real
Client): login, refresh, search paging, cursors, rate limits and broken answers; then the whole
pipeline on SQLite and PostgreSQL. Fixtures under tests/data/api/bluesky follow the documented
XRPC answers (each file says where its format comes from)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select
from test_poll import load_states, make_settings, poll_all
from werkzeug import Request, Response

from listener.config import SourceSettings
from listener.errors import FetchError, ParseError
from listener.sources import api, bluesky
from listener.sources.client import Client
from listener.storage import store
from listener.storage.tables import Mention as MentionRow

DATA = Path(__file__).parent / "data" / "api" / "bluesky"
NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
PASSWORD = "abcd-efgh-ijkl-mnop"
HANDLE = "listener-bot.bsky.social"
NEWEST = "2026-11-20T12:40:05.120Z"  # sortAt (= createdAt) of the newest post of page 1


def fixture(name: str) -> str:
    """A fixture file without its leading ``//`` comment lines."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("//"):
        lines.pop(0)
    return "\n".join(lines)


def document(name: str) -> Any:
    return json.loads(fixture(name))


def as_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, content_type="application/json", headers=headers)


class FakeBluesky:
    """createSession, refreshSession and searchPosts with token bookkeeping. Search answers are
    looked up by the ``cursor`` parameter (None: the first page)."""

    def __init__(self, server: HTTPServer) -> None:
        self.calls: list[str] = []
        self.searches: list[dict[str, str]] = []
        self.logins: list[Any] = []
        self.bearers: list[str] = []
        session, refreshed = document("createSession.json"), document("refreshSession.json")
        self.session_body: Any = session
        self.refresh_body: Any = refreshed
        self.login_answer: Response | None = None  # None: the session fixture
        self.refresh_answer: Response | None = None
        self.access = {session["accessJwt"], refreshed["accessJwt"]}
        self.refresh = {session["refreshJwt"]}
        self.expired_answer = as_json(fixture("error_expired.json"), 400)
        self.pages: dict[str | None, Response] = {
            None: as_json(fixture("search_page1.json")),
            "25": as_json(fixture("search_page2.json")),
        }
        server.expect_request(bluesky.LOGIN, method="POST").respond_with_handler(self._login)
        server.expect_request(bluesky.REFRESH, method="POST").respond_with_handler(self._refresh)
        server.expect_request(bluesky.SEARCH, method="GET").respond_with_handler(self._search)
        self.base = server.url_for("/").rstrip("/")

    def _login(self, request: Request) -> Response:
        self.calls.append("createSession")
        self.logins.append(request.get_json())
        return self.login_answer or as_json(self.session_body)

    def _refresh(self, request: Request) -> Response:
        self.calls.append("refreshSession")
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.refresh_answer is not None:
            return self.refresh_answer
        if token not in self.refresh:
            return as_json(fixture("error_expired.json"), 400)
        return as_json(self.refresh_body)

    def _search(self, request: Request) -> Response:
        self.calls.append("searchPosts")
        self.searches.append(dict(request.args))
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        self.bearers.append(token)
        if token not in self.access:
            return self.expired_answer
        return self.pages.get(request.args.get("cursor"), as_json({"posts": []}))


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeBluesky:
    return FakeBluesky(httpserver)


def source(fake: FakeBluesky, **extra: Any) -> SourceSettings:
    settings: dict[str, Any] = {
        "name": "bsky",
        "kind": "bluesky",
        "query": "kryptonite",
        "identifier": HANDLE,
        "app_password": PASSWORD,
        "base_url": fake.base,
        **extra,
    }
    return SourceSettings(**settings)


def run(
    settings: SourceSettings, cursor: str | None = None, session: dict[str, Any] | None = None
) -> api.Fetched:
    async def go() -> api.Fetched:
        async with Client() as client:
            context = api.ApiContext(
                client, settings, cursor, NOW, {} if session is None else session
            )
            return await bluesky.fetch(context)

    return asyncio.run(go())


# -- paging, mapping, cursors ------------------------------------------------------------------


def test_first_poll_logs_in_and_pages_through_recent_posts(fake: FakeBluesky) -> None:
    fetched = run(source(fake))
    assert fake.calls == ["createSession", "searchPosts", "searchPosts"]
    assert fake.logins == [{"identifier": HANDLE, "password": PASSWORD}]
    assert fake.searches == [
        {"q": "kryptonite", "sort": "latest", "limit": "100"},
        {"q": "kryptonite", "sort": "latest", "limit": "100", "cursor": "25"},
    ]
    assert set(fake.bearers) == {document("createSession.json")["accessJwt"]}
    assert (fetched.pages, fetched.note, fetched.cursor) == (2, None, NEWEST)
    assert [i.text[:22] for i in fetched.items] == [
        "My Kryptonite lock got",
        "Die Deutsche Bahn ist ",
        "Watching cycling video",
        "Kryptonite Evolution o",
        "#kryptonitelock still ",
    ]
    first = fetched.items[0]
    uri = "at://did:plc:k7ryq2mzv4x6c3b5n8d1f0ga/app.bsky.feed.post/3m5kq7xvbq22a"
    assert first.guid == f"bsky:{uri}"
    assert first.url == "https://bsky.app/profile/samrides.bsky.social/post/3m5kq7xvbq22a"
    assert first.title == ""
    assert first.text == "My Kryptonite lock got cut in 30 seconds. Not impressed."
    assert first.author == "samrides.bsky.social"
    assert first.published_at == datetime(2026, 11, 20, 12, 40, 5, 120000, tzinfo=UTC)
    assert first.language == "en"
    assert (first.reach, first.points, first.likes, first.reposts, first.replies) == (
        None,  # searchPosts carries no follower counts
        None,
        12,
        3 + 1,  # reposts and quotes
        4,
    )
    assert fetched.items[1].language == "de"
    # an unverifiable handle ("handle.invalid"): the profile URL uses the DID
    assert fetched.items[2].url == (
        "https://bsky.app/profile/did:plc:z3xw5ce7rv9tb1ny2mu4ki6o/post/3m5kpeb7hrk2x"
    )


def test_next_poll_sends_since_and_keeps_only_new_posts(fake: FakeBluesky) -> None:
    fake.pages[None] = as_json(fixture("search_new.json"))
    fetched = run(source(fake), cursor=NEWEST)
    assert fake.searches == [{"q": "kryptonite", "sort": "latest", "limit": "100", "since": NEWEST}]
    # the new post, and the tie at the cursor (since is inclusive; storage dedups it)
    assert [i.author for i in fetched.items] == ["kryptonite.example.com", "samrides.bsky.social"]
    assert fetched.cursor == "2026-11-20T12:55:00.000Z"
    assert fetched.note is None


def test_older_posts_end_the_paging(fake: FakeBluesky) -> None:
    # a server that ignores since: page 1 reaches back past the cursor, so page 2 is not asked
    fetched = run(source(fake), cursor="2026-11-20T12:30:00Z")
    assert len(fake.searches) == 1
    assert [i.author for i in fetched.items] == ["samrides.bsky.social", "pendlerin.bsky.social"]
    assert fetched.cursor == NEWEST


def test_session_is_kept_between_polls(fake: FakeBluesky) -> None:
    session: dict[str, Any] = {}
    run(source(fake), session=session)
    run(source(fake), cursor=NEWEST, session=session)
    assert fake.calls.count("createSession") == 1
    # the session is kept for one account: another identifier logs in again
    run(source(fake, identifier="other.bsky.social"), cursor=NEWEST, session=session)
    assert fake.calls.count("createSession") == 2


def test_empty_results(fake: FakeBluesky) -> None:
    fake.pages[None] = as_json(fixture("search_empty.json"))
    first = run(source(fake))
    assert (first.items, first.cursor, first.note) == ((), None, None)  # None keeps the cursor
    later = run(source(fake), cursor=NEWEST)
    assert (later.items, later.cursor) == ((), NEWEST)


def test_page_cap_limits_the_first_poll_quietly(fake: FakeBluesky) -> None:
    fetched = run(source(fake, page_cap=1))
    assert (len(fake.searches), len(fetched.items), fetched.note) == (1, 3, None)


def test_page_cap_on_a_later_poll_warns_of_a_gap(fake: FakeBluesky) -> None:
    fetched = run(source(fake, page_cap=1), cursor="2026-11-20T10:00:00Z")
    assert len(fake.searches) == 1
    assert fetched.note is not None and "page_cap (1) reached" in fetched.note


def test_a_repeated_cursor_stops_the_paging(fake: FakeBluesky) -> None:
    page = document("search_page2.json")
    fake.pages["25"] = as_json({**page, "cursor": "25"})
    fetched = run(source(fake))
    assert len(fake.searches) == 2
    assert len(fetched.items) == 5
    assert fetched.note == "page 2: the server repeated a cursor; paging stopped"


# -- sessions and auth failures ----------------------------------------------------------------


def test_expired_token_is_refreshed_and_the_search_retried_once(fake: FakeBluesky) -> None:
    session: dict[str, Any] = {}
    run(source(fake, page_cap=1), session=session)
    fake.access.discard(document("createSession.json")["accessJwt"])  # it expires
    fake.calls.clear()
    fetched = run(source(fake, page_cap=1), session=session)
    assert fake.calls == ["searchPosts", "refreshSession", "searchPosts"]
    assert fake.bearers[-1] == document("refreshSession.json")["accessJwt"]
    assert len(fetched.items) == 3
    assert session["access"] == document("refreshSession.json")["accessJwt"]


def test_expired_token_answered_with_401_is_refreshed_too(fake: FakeBluesky) -> None:
    session: dict[str, Any] = {}
    run(source(fake, page_cap=1), session=session)
    fake.access.discard(document("createSession.json")["accessJwt"])
    fake.expired_answer = as_json(
        {"error": "AuthMissing", "message": "Authentication Required"}, 401
    )
    fake.calls.clear()
    run(source(fake, page_cap=1), session=session)
    assert fake.calls == ["searchPosts", "refreshSession", "searchPosts"]


def test_refused_refresh_logs_in_again(fake: FakeBluesky) -> None:
    session: dict[str, Any] = {}
    run(source(fake, page_cap=1), session=session)
    fake.access.discard(document("createSession.json")["accessJwt"])
    fake.refresh_answer = as_json(
        {"error": "ExpiredToken", "message": "Token has been revoked"}, 400
    )
    fake.session_body = {**fake.session_body, "accessJwt": "access-3"}  # a new login
    fake.access.add("access-3")
    fake.calls.clear()
    fetched = run(source(fake, page_cap=1), session=session)
    assert fake.calls == ["searchPosts", "refreshSession", "createSession", "searchPosts"]
    assert len(fetched.items) == 3


def test_a_session_rejected_after_renewal_fails_loudly(fake: FakeBluesky) -> None:
    fake.access.clear()  # no token is ever accepted
    with pytest.raises(FetchError) as caught:
        run(source(fake))
    assert caught.value.status == 401
    assert str(caught.value).startswith(
        "401: bluesky rejected the session for searchPosts even after logging in again"
    )
    assert fake.calls == ["createSession", "searchPosts", "refreshSession", "searchPosts"]


def test_rejected_app_password_fails_loudly_without_the_secret(fake: FakeBluesky) -> None:
    fake.login_answer = as_json(fixture("error_login.json"), 401)
    with pytest.raises(FetchError) as caught:
        run(source(fake))
    message = str(caught.value)
    assert message.startswith("401: app password rejected by bluesky (createSession)")
    assert caught.value.status == 401
    assert PASSWORD not in message
    assert fake.calls == ["createSession"]


def test_login_answer_without_tokens_is_a_parse_error(fake: FakeBluesky) -> None:
    fake.login_answer = as_json({"did": "did:plc:x", "handle": HANDLE})
    with pytest.raises(ParseError, match="no accessJwt/refreshJwt"):
        run(source(fake))


def test_refused_query_is_explained(fake: FakeBluesky) -> None:
    fake.pages[None] = as_json(fixture("error_query.json"), 400)
    with pytest.raises(FetchError) as caught:
        run(source(fake))
    assert str(caught.value) == (
        "400: bluesky refused the search (BadQueryString: query string is too long)"
    )


def test_identity_names_the_search_without_secrets(fake: FakeBluesky) -> None:
    identity = bluesky.identity(source(fake))
    assert identity == f"{fake.base}/xrpc/app.bsky.feed.searchPosts?q=kryptonite"
    assert PASSWORD not in identity
    default = SourceSettings(
        name="b", kind="bluesky", query="a b", identifier=HANDLE, app_password=PASSWORD
    )
    assert bluesky.identity(default) == "https://bsky.social/xrpc/app.bsky.feed.searchPosts?q=a+b"


# -- rate limits -------------------------------------------------------------------------------


def test_429_with_ratelimit_reset_gives_retry_after(fake: FakeBluesky) -> None:
    reset = int(time.time()) + 120
    fake.pages[None] = as_json(
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        429,
        {"ratelimit-limit": "3000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
    )
    with pytest.raises(FetchError) as caught:
        run(source(fake))
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120


def test_429_with_retry_after(fake: FakeBluesky) -> None:
    fake.login_answer = as_json(
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        429,
        {"Retry-After": "300"},
    )
    with pytest.raises(FetchError) as caught:
        run(source(fake))
    assert (caught.value.status, caught.value.retry_after) == (429, 300.0)


def test_a_spent_budget_stops_the_paging(fake: FakeBluesky) -> None:
    reset = int(NOW.timestamp()) + 300
    fake.pages[None] = as_json(
        fixture("search_page1.json"),
        headers={
            "ratelimit-limit": "3000",
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(reset),
        },
    )
    fetched = run(source(fake))
    assert len(fake.searches) == 1
    assert len(fetched.items) == 3
    assert fetched.note == (
        "page 1: bluesky rate limit used up (ratelimit-remaining 0) until 13:05 UTC"
    )
    assert fetched.cursor == NEWEST


def test_429_on_a_later_page_stays_loud(fake: FakeBluesky) -> None:
    fake.pages["25"] = as_json({"error": "RateLimitExceeded"}, 429, {"Retry-After": "60"})
    with pytest.raises(FetchError) as caught:
        run(source(fake))
    assert caught.value.retry_after == 60.0


# -- broken answers ----------------------------------------------------------------------------


def test_malformed_first_page_is_a_parse_error(fake: FakeBluesky) -> None:
    fake.pages[None] = as_json('{"posts": [')
    with pytest.raises(ParseError, match="bluesky searchPosts: not JSON"):
        run(source(fake))


def test_first_page_without_posts_is_a_parse_error(fake: FakeBluesky) -> None:
    fake.pages[None] = as_json({"feed": []})
    with pytest.raises(ParseError, match="no 'posts' list"):
        run(source(fake))


def test_malformed_second_page_keeps_the_first(fake: FakeBluesky) -> None:
    fake.pages["25"] = as_json("<html>Bad gateway</html>")
    fetched = run(source(fake))
    assert len(fetched.items) == 3
    assert fetched.cursor == NEWEST
    assert fetched.note is not None and fetched.note.startswith("page 2: bluesky searchPosts:")


def test_a_server_error_on_the_second_page_keeps_the_first(fake: FakeBluesky) -> None:
    fake.pages["25"] = as_json({"error": "InternalServerError"}, 500)
    fetched = run(source(fake))
    assert len(fetched.items) == 3
    assert fetched.note is not None and fetched.note.startswith("page 2: HTTP 500")


def test_deep_nesting_huge_numbers_and_wrong_types(fake: FakeBluesky) -> None:
    page = document("search_page1.json")
    posts = page["posts"]
    nested: Any = "bottom"
    for _ in range(100):
        nested = {"inner": nested}
    posts[0]["record"]["embed"] = nested  # deep, but within the parser's reach
    posts[0]["likeCount"] = 2**80
    posts[1]["likeCount"] = "many"
    posts[1]["repostCount"] = True
    posts[2]["record"]["text"] = 12345
    posts[2]["record"]["langs"] = "en"
    posts.append("not a post")
    posts.append({"uri": "https://not.an/at-uri", "record": {"text": "Kryptonite"}})
    fake.pages[None] = as_json(page)
    fetched = run(source(fake, page_cap=1))
    first, second, third = fetched.items
    assert first.likes == 2**63 - 1  # clamped
    assert second.likes is None and second.reposts is None
    assert third.text == "" and third.language is None


def test_link_cards_alt_texts_and_quotes_are_matched_text(fake: FakeBluesky) -> None:
    """Embeds as app.bsky.feed.defs#postView carries them (the embed views of
    app.bsky.embed.external, .images, .record and .recordWithMedia) and as the record has them."""
    page = document("search_page1.json")
    first, second, third = page["posts"][:3]
    first["embed"] = {
        "$type": "app.bsky.embed.external#view",
        "external": {
            "uri": "https://news.example/recall",
            "title": "Kryptonite recalls Evolution locks",
            "description": "The maker of bike locks announced a recall.",
        },
    }
    first["record"]["embed"] = {
        "$type": "app.bsky.embed.external",
        "external": {
            "uri": "https://news.example/recall",
            "title": "Kryptonite recalls Evolution locks",
            "description": "The maker of bike locks announced a recall.",
        },
    }
    second["record"]["embed"] = {
        "$type": "app.bsky.embed.images",
        "images": [{"alt": "A cut Kryptonite U-lock on the pavement", "image": {}}],
    }
    third["embed"] = {
        "$type": "app.bsky.embed.recordWithMedia#view",
        "record": {
            "record": {
                "$type": "app.bsky.embed.record#viewRecord",
                "uri": "at://did:plc:x/app.bsky.feed.post/1",
                "value": {"text": "Quoted: my Kryptonite lock lasted 20 seconds"},
            }
        },
        "media": {"$type": "app.bsky.embed.images#view", "images": [{"alt": "Bolt cutter"}]},
    }
    fake.pages[None] = as_json(page)
    one, two, three = run(source(fake, page_cap=1)).items[:3]
    assert one.text.split("\n") == [
        "My Kryptonite lock got cut in 30 seconds. Not impressed.",
        "Kryptonite recalls Evolution locks",  # once, though view and record both carry it
        "The maker of bike locks announced a recall.",
    ]
    assert two.text.split("\n")[1:] == ["A cut Kryptonite U-lock on the pavement"]
    assert three.text.split("\n")[1:] == [
        "Quoted: my Kryptonite lock lasted 20 seconds",
        "Bolt cutter",
    ]


def test_huge_float_counts_are_unknown(fake: FakeBluesky) -> None:
    body = fixture("search_page1.json").replace('"likeCount": 12', '"likeCount": 1e400', 1)
    fake.pages[None] = as_json(body)
    fetched = run(source(fake, page_cap=1))
    assert fetched.items[0].likes is None


def test_nesting_deeper_than_the_parser_allows_is_a_parse_error(fake: FakeBluesky) -> None:
    fake.pages[None] = as_json('{"posts": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    with pytest.raises(ParseError, match="nested too deeply"):
        run(source(fake))


def test_text_is_cleaned_of_control_characters_and_lone_surrogates(fake: FakeBluesky) -> None:
    body = fixture("search_page1.json").replace(
        "Not impressed.", "Not\\u0000 impressed.\\ud800\\u202e", 1
    )
    fake.pages[None] = as_json(body)
    fetched = run(source(fake, page_cap=1))
    assert fetched.items[0].text.endswith("Not impressed.?\u202e")


# -- the whole pipeline ------------------------------------------------------------------------


def pipeline_settings(fake: FakeBluesky) -> Any:
    return make_settings(
        [
            {
                "name": "bsky",
                "kind": "bluesky",
                "query": "kryptonite OR bahn",
                "identifier": HANDLE,
                "app_password": PASSWORD,
                "base_url": fake.base,
            }
        ]
    )


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                MentionRow.guid,
                MentionRow.text,
                MentionRow.backfill,
                MentionRow.likes,
                MentionRow.reposts,
                MentionRow.replies,
            )
        )
        return {row.guid.rsplit("/", 1)[-1]: row for row in rows}


def test_pipeline_backfill_then_only_new_posts(fake: FakeBluesky, engine: Engine) -> None:
    settings = pipeline_settings(fake)
    first = poll_all(settings, engine)["bsky"]
    assert (first.status, first.items, first.new) == ("ok", 5, 4)
    rows = stored(engine)
    assert set(rows) == {"3m5kq7xvbq22a", "3m5kpzt4lxc2o", "3m5kmhb2c4s2d", "3m5kl3rgf7k2n"}
    assert all(row.backfill for row in rows.values())
    assert (rows["3m5kq7xvbq22a"].likes, rows["3m5kq7xvbq22a"].reposts) == (12, 4)
    state = load_states(engine)["bsky"]
    assert state.cursor == NEWEST
    assert state.url == f"{fake.base}/xrpc/app.bsky.feed.searchPosts?q=kryptonite+OR+bahn"

    # second poll: since = the stored cursor; one new post, the tie at the cursor is unchanged
    fake.pages[None] = as_json(fixture("search_new.json"))
    fake.searches.clear()
    second = poll_all(settings, engine)["bsky"]
    assert [s.get("since") for s in fake.searches] == [NEWEST]
    assert (second.status, second.items, second.new, second.updated) == ("ok", 2, 1, 0)
    rows = stored(engine)
    assert rows["3m5ksa5ibwc2f"].backfill is False  # news, not history
    assert load_states(engine)["bsky"].cursor == "2026-11-20T12:55:00.000Z"

    # the post at the cursor again, with edited text: its row is updated
    edited = document("search_new.json")
    edited["posts"][0]["record"]["text"] = "Kryptonite here: the fix is out, swaps are free."
    fake.pages[None] = as_json(edited)
    third = poll_all(settings, engine)["bsky"]
    assert (third.new, third.updated) == (0, 1)
    assert stored(engine)["3m5ksa5ibwc2f"].text.startswith("Kryptonite here: the fix is out")
    assert store.count_rows(engine)["mentions"] == 5


def test_pipeline_auth_failure_is_stored_as_last_error(fake: FakeBluesky, engine: Engine) -> None:
    fake.login_answer = as_json(fixture("error_login.json"), 401)
    outcome = poll_all(pipeline_settings(fake), engine)["bsky"]
    assert outcome.status == "failed"
    state = load_states(engine)["bsky"]
    assert (state.last_error or "").startswith(
        "fetch: 401: app password rejected by bluesky (createSession)"
    )
    assert PASSWORD not in (state.last_error or "")
    assert state.consecutive_errors == 1


def test_pipeline_rate_limit_is_shown_with_its_end(fake: FakeBluesky, engine: Engine) -> None:
    fake.pages[None] = as_json({"error": "RateLimitExceeded"}, 429, {"Retry-After": "3600"})
    poll_all(pipeline_settings(fake), engine)
    state = load_states(engine)["bsky"]
    assert (state.last_error or "").startswith("fetch: 429: rate limited until 14:00 UTC")
