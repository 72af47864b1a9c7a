"""Feeds as they exist in the wild, one small document per case, served over real HTTP on
127.0.0.1, polled by the real poller into a real SQLite file: the stored title, text, link,
author and time are what a reader of the feed sees. Plus a property: inline markup and
entities never lose the words around them."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, text

from listener.config import Settings, validate_config
from listener.service.poll import Poller, http_settings
from listener.sources.client import Client
from listener.sources.feed import parse_feed
from listener.storage import store

NOW = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
RSS_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"'
CHANNEL = "<channel><title>T</title><link>https://blog.example/</link>"


def make_settings(url: str) -> Settings:
    raw: dict[str, Any] = {
        "brands": [{"name": "Kryptonite", "terms": ["Kryptonite"]}],
        "sources": [{"name": "feed", "url": url}],
        "http": {"total_timeout": "5s", "read_timeout": "2s", "connect_timeout": "2s"},
    }
    return validate_config(raw, file=Path("test.toml"), env={})


def poll(httpserver: HTTPServer, engine: Engine, body: str | bytes, **headers: str) -> list[Any]:
    """Serve ``body`` once, poll it, and return the stored mentions, oldest first."""
    data = body.encode() if isinstance(body, str) else body
    content_type = headers.pop("content_type", "application/rss+xml")
    httpserver.expect_request("/feed").respond_with_data(data, content_type=content_type)
    settings = make_settings(httpserver.url_for("/feed"))

    async def go() -> None:
        async with Client(http_settings(settings)) as client:
            poller = Poller(settings, engine, client, clock=lambda: NOW, rng=lambda: 0.5)
            try:
                [outcome] = await poller.poll_all(force=True)
                assert outcome.status == "ok", outcome
            finally:
                poller.close()

    asyncio.run(go())
    mentions = store.query_mentions(engine, store.MentionFilter(limit=None))
    return sorted(mentions, key=lambda m: m.id)


def rss(items: str, namespaces: str = "") -> str:
    return f"{RSS_HEAD}{namespaces}>{CHANNEL}{items}</channel></rss>"


def test_undeclared_entities_in_a_title_keep_the_whole_title(
    httpserver: HTTPServer, engine: Engine
) -> None:
    body = rss(
        "<item><title>Lock test&nbsp;&mdash; Kryptonite fails</title>"
        "<link>https://blog.example/lock?id=2&amp;cat=locks</link>"
        "<description>Caf&eacute; owner&rsquo;s bike gone</description>"
        "<author>m@blog.example (Mia)</author>"
        "<pubDate>Tue, 17 Nov 2026 09:30:00 +0100</pubDate></item>"
    )
    [mention] = poll(httpserver, engine, body)
    assert mention.title == "Lock test — Kryptonite fails"
    assert mention.text == "Café owner’s bike gone"
    assert mention.url == "https://blog.example/lock?id=2&cat=locks"
    assert mention.author == "Mia"
    assert mention.published_at == datetime(2026, 11, 17, 8, 30, tzinfo=UTC)


def test_raw_inline_html_in_a_description_is_read_whole(
    httpserver: HTTPServer, engine: Engine
) -> None:
    body = rss(
        "<item><title>Cut in ten seconds</title><link>https://blog.example/cut</link>"
        "<description>My <b>Kryptonite</b> lock was <i>cut</i>, see <a href='/x'>photos</a>"
        "</description><pubDate>Tue, 17 Nov 2026 10:00:00 GMT</pubDate></item>"
    )
    [mention] = poll(httpserver, engine, body)
    assert mention.text == "My Kryptonite lock was cut, see photos"
    assert mention.title == "Cut in ten seconds"


def test_an_atom_xhtml_title_and_base64_content_are_text(
    httpserver: HTTPServer, engine: Engine
) -> None:
    encoded = base64.b64encode(b"<p>Sponsored by <b>Kryptonite</b>, it broke</p>").decode()
    body = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>A</title><id>urn:a</id><updated>2026-11-17T10:00:00Z</updated><entry>"
        '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">The <em>lock</em> '
        "review</div></title><id>urn:a:1</id>"
        '<link rel="alternate" href="https://atom.example/1"/>'
        "<author><name>Ana</name></author><updated>2026-11-17T10:00:00-05:00</updated>"
        f'<content type="application/octet-stream">{encoded}</content></entry></feed>'
    )
    [mention] = poll(httpserver, engine, body, content_type="application/atom+xml")
    assert mention.title == "The lock review"
    assert mention.text == "Sponsored by Kryptonite, it broke"
    assert mention.url == "https://atom.example/1"
    assert mention.author == "Ana"
    assert mention.published_at == datetime(2026, 11, 17, 15, 0, tzinfo=UTC)


def test_a_comment_feed_of_three_commenters_gives_three_mentions(
    httpserver: HTTPServer, engine: Engine
) -> None:
    post = "https://blog.example/2026/11/kryptonite-pen"
    items = "".join(
        f"<item><title>Comment on Kryptonite and a pen by {name}</title>"
        f"<link>{post}#comment-{n}</link>"
        f'<guid isPermaLink="false">https://blog.example/?p=7#comment-{n}</guid>'
        f"<dc:creator>{name}</dc:creator>"
        f"<description>{words}</description>"
        f"<pubDate>Tue, 17 Nov 2026 1{n}:00:00 +0000</pubDate></item>"
        for n, name, words in (
            (1, "Ann", "Mine opened too."),
            (2, "Bob", "A Bic pen, really?"),
            (3, "Cem", "Returning it tomorrow."),
        )
    )
    body = rss(items, ' xmlns:dc="http://purl.org/dc/elements/1.1/"')
    mentions = poll(httpserver, engine, body)
    assert [(m.author, m.text, m.url) for m in mentions] == [
        ("Ann", "Mine opened too.", f"{post}#comment-1"),
        ("Bob", "A Bic pen, really?", f"{post}#comment-2"),
        ("Cem", "Returning it tomorrow.", f"{post}#comment-3"),
    ]
    assert [m.published_at.hour for m in mentions if m.published_at] == [11, 12, 13]
    with engine.connect() as conn:  # three stories: a thread is not three copies of one post
        stories = conn.execute(text("SELECT COUNT(DISTINCT story_id) FROM mentions")).scalar()
    assert stories == 3


def test_a_description_only_item_is_kept(httpserver: HTTPServer, engine: Engine) -> None:
    body = rss(
        "<item><description>Kryptonite recall announced for the Evolution series"
        "</description><pubDate>Tue, 17 Nov 2026 08:00:00 GMT</pubDate></item>"
    )
    [mention] = poll(httpserver, engine, body)
    assert (mention.title, mention.url) == ("", None)
    assert mention.text == "Kryptonite recall announced for the Evolution series"
    assert mention.published_at == datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def test_one_bad_ampersand_changes_no_other_link(httpserver: HTTPServer, engine: Engine) -> None:
    body = rss(
        "<item><title>Kryptonite one</title><link>https://shop.example/?id=1&cat=locks</link>"
        "</item><item><title>Kryptonite two</title>"
        "<link>https://shop.example/?id=2&amp;cat=locks</link></item>"
    )
    mentions = poll(httpserver, engine, body)
    assert [m.url for m in mentions] == [
        "https://shop.example/?id=1&cat=locks",
        "https://shop.example/?id=2&cat=locks",
    ]


def test_a_youtube_channel_feed_gives_description_and_views(
    httpserver: HTTPServer, engine: Engine
) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns:yt="http://www.youtube.com/xml/'
        'schemas/2015" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns="http://www.w3.org/2005/Atom"><title>Bike Tests</title><entry>'
        "<id>yt:video:abc123</id><yt:videoId>abc123</yt:videoId>"
        "<title>Ten locks, one bolt cutter</title>"
        '<link rel="alternate" href="https://www.youtube.com/watch?v=abc123"/>'
        "<author><name>Bike Tests</name></author>"
        "<published>2026-11-16T18:00:00+00:00</published>"
        "<updated>2026-11-18T09:00:00+00:00</updated>"
        "<media:group><media:title>Ten locks (re-upload)</media:title>"
        '<media:content url="https://www.youtube.com/v/abc123" type="application/x-shockwave'
        '-flash" width="640" height="390"/>'
        '<media:thumbnail url="https://i.ytimg.com/vi/abc123/hqdefault.jpg"/>'
        "<media:description>This video is sponsored by Kryptonite.</media:description>"
        '<media:community><media:starRating count="40" average="4.5"/>'
        '<media:statistics views="12345"/></media:community></media:group></entry></feed>'
    )
    [mention] = poll(httpserver, engine, body, content_type="application/atom+xml")
    assert mention.title == "Ten locks, one bolt cutter"
    assert mention.text == "This video is sponsored by Kryptonite."
    assert mention.url == "https://www.youtube.com/watch?v=abc123"
    assert mention.author == "Bike Tests"
    assert mention.reach == 12345
    assert mention.published_at == datetime(2026, 11, 16, 18, 0, tzinfo=UTC)


def test_a_non_permalink_guid_is_never_a_link(httpserver: HTTPServer, engine: Engine) -> None:
    body = rss(
        '<item><title>Kryptonite forum post</title><guid isPermaLink="false">'
        "https://forum.example/internal/4711</guid></item>"
    )
    [mention] = poll(httpserver, engine, body)
    assert mention.url is None
    assert mention.title == "Kryptonite forum post"


def test_dates_in_named_zones_and_partial_dates(httpserver: HTTPServer, engine: Engine) -> None:
    dates = [
        ("Tue, 17 Nov 2026 08:57:00 MEST", datetime(2026, 11, 17, 6, 57, tzinfo=UTC)),
        ("Tue, 17 Nov 2026 08:57:00 MET", datetime(2026, 11, 17, 7, 57, tzinfo=UTC)),
        ("Tue, 17 Nov 2026 08:57:00 EST", datetime(2026, 11, 17, 13, 57, tzinfo=UTC)),
        ("Tue, 17 Nov 2026 08:57:00 PDT", datetime(2026, 11, 17, 15, 57, tzinfo=UTC)),
        ("Tue, 17 Nov 2026 22:40:00 GMT-01:01", datetime(2026, 11, 17, 23, 41, tzinfo=UTC)),
        ("2026-11", datetime(2026, 11, 1, tzinfo=UTC)),  # never today's day
        ("2025", datetime(2025, 1, 1, tzinfo=UTC)),
    ]
    items = "".join(
        f"<item><title>Kryptonite {n}</title><link>https://d.example/{n}</link>"
        f"<pubDate>{date}</pubDate></item>"
        for n, (date, _) in enumerate(dates)
    )
    mentions = poll(httpserver, engine, rss(items))
    assert [m.published_at for m in mentions] == [want for _, want in dates]


def test_an_undated_item_uses_the_fetch_time_and_says_so(
    httpserver: HTTPServer, engine: Engine
) -> None:
    body = rss(
        "<item><title>Kryptonite no date</title><link>https://d.example/a</link></item>"
        "<item><title>Kryptonite bad date</title><link>https://d.example/b</link>"
        "<pubDate>2013-xx-27</pubDate></item>"
    )
    mentions = poll(httpserver, engine, body)
    assert [m.published_at for m in mentions] == [None, None]  # the row says: no feed date
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_at, fetched_at FROM mentions")).all()
    assert len(rows) == 2
    assert all(row.event_at == row.fetched_at for row in rows)


WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzKR", min_size=1, max_size=8)
MARKUP = st.sampled_from(
    [
        "<b>",
        "</b>",
        "<i>",
        "</i>",
        '<a href="https://x.example/?a=1&amp;b=2">',
        "</a>",
        "<br/>",
        "<p>",
        "</p>",
        '<span class="c">',
        "</span>",
        "&nbsp;",
        "&mdash;",
        "&eacute;",
        "&amp;",
        "&#8217;",
        " ",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.tuples(WORDS, st.lists(MARKUP, max_size=3)), min_size=1, max_size=12),
    escaped=st.booleans(),
    field=st.sampled_from(["title", "description"]),
)
def test_inline_markup_and_entities_never_lose_the_words_around_them(
    parts: list[tuple[str, list[str]]], escaped: bool, field: str
) -> None:
    """Words separated (or not) by random inline markup and entities, raw in the XML (not
    well-formed where an HTML entity is undeclared) or escaped: every word arrives, in order."""
    html = "".join(word + "".join(markup) for word, markup in parts)
    if escaped:
        html = html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = rss(
        f"<item><guid>g</guid><{field}>{html}</{field}>"
        "<pubDate>Tue, 17 Nov 2026 08:00:00 GMT</pubDate></item>"
    ).encode()
    item = parse_feed(body, url="https://blog.example/feed").items[0]
    got = "".join((item.title if field == "title" else item.text).split())
    position = 0
    for word, _ in parts:
        found = got.find(word, position)
        assert found >= 0, (word, got)
        position = found + len(word)
