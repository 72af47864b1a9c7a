"""Big feeds in batches: a body with more entries than one batch is cut into feed documents
(``sources.feed_split``), parsed, matched and stored batch by batch. The batches give exactly
what the one-shot path gives, every entry is stored, and a poll that fails midway stores its
validators never, so the next poll reads the whole feed again and loses nothing.

Real HTTP server on 127.0.0.1, real SQLite files; the batch size is made small here (a module
constant) so that small documents written for the test take the batch path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, text
from test_poll import Clock, make_settings, poll_all

from listener.sources import feed_split
from listener.sources.feed import parse_feed
from listener.storage import engine as db

ENTRIES = 25
BATCH = 10
# all but the empty entry (20), four weather reports (0, 7, 14, 21) and entry 13, which has
# the link of entry 12 (one mention; the two are in the same batch)
MENTIONS = 19


def rss_document(entries: int = ENTRIES) -> bytes:
    """RSS 2.0 with namespaced fields, entries of every kind (a copy of another story, one
    without a brand, one without anything) and a channel element after the items."""
    items = []
    for n in range(entries):
        title = f"Kryptonite lock review {n}" if n % 7 else f"Weather report {n}"
        if n == 12:
            title = "Kryptonite lock review 11"  # a copy of entry 11: the same story
        body = f"&lt;p&gt;Entry {n}: the Kryptonite &amp;amp; Deutsche Bahn story&lt;/p&gt;"
        if n % 7 == 0:
            body = "Sunny, then rain"
        items.append(
            "<item>"
            + (
                ""
                if n == 20
                else f"<title>{title}</title><link>https://news.example/{n - (n == 13)}</link>"
                f"<guid>g{n}</guid><dc:creator>Writer {n % 3}</dc:creator>"
                f"<pubDate>Fri, 20 Nov 2026 10:{n:02d}:00 +0000</pubDate>"
                f"<description>{body}</description>"
            )
            + "</item>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        "<title>Batch feed</title><link>https://news.example/</link>\n"
        + "".join(items)
        + "<language>de-DE</language></channel></rss>"
    ).encode()


def atom_document(entries: int = ENTRIES) -> bytes:
    parts = [
        f'<entry><id>urn:e{n}</id><title type="text">Kryptonite &amp;amp; co {n}</title>'
        f'<link rel="alternate" href="https://atom.example/{n}"/>'
        f"<updated>2026-11-20T10:{n:02d}:00Z</updated>"
        f'<content type="html">&lt;b&gt;Kryptonite&lt;/b&gt; entry {n}</content></entry>\n'
        for n in range(entries)
    ]
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Atom</title><id>urn:feed</id><updated>2026-11-20T10:00:00Z</updated>\n"
        + "".join(parts)
        + "</feed>"
    ).encode()


def rdf_document(entries: int = ENTRIES) -> bytes:
    parts = [
        f'<item rdf:about="https://rdf.example/{n}"><title>Kryptonite {n}</title>'
        f"<link>https://rdf.example/{n}</link><description>RSS 1.0 entry {n}</description>"
        "</item>"
        for n in range(entries)
    ]
    return (
        '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="https://rdf.example/">'
        "<title>RDF</title><link>https://rdf.example/</link></channel>"
        + "".join(parts)
        + "</rdf:RDF>"
    ).encode()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_split, "BATCH", BATCH)
    monkeypatch.setattr(feed_split, "SPLIT_BYTES", 0)


@pytest.mark.parametrize("document", [rss_document, atom_document, rdf_document])
def test_the_pieces_parse_to_what_the_whole_document_gives(
    document: Any, small_batches: None
) -> None:
    body = document()
    plan = feed_split.split(body)
    assert plan is not None and plan.entries == ENTRIES
    assert len(plan.batches) == 3  # 10 + 10 + 5
    whole = parse_feed(body, url="https://feed.example/")
    pieces = [parse_feed(plan.document(body, i), url="https://feed.example/") for i in range(3)]
    assert [item for piece in pieces for item in piece.items] == list(whole.items)
    assert {piece.parser for piece in pieces} == {whole.parser}
    assert {piece.language for piece in pieces} == {whole.language}
    merged = feed_split.merge_warnings(w for piece in pieces for w in piece.warnings)
    assert merged == whole.warnings


def test_what_is_not_cut(small_batches: None) -> None:
    body = rss_document()
    assert feed_split.split(body, batch=ENTRIES) is None  # one batch: parsed whole
    assert feed_split.split(body.replace(b"</item>\n<item>", b"</item><item>>", 1)) is not None
    assert feed_split.split(body[:-40]) is None  # truncated: parsed whole, leniently
    assert feed_split.split(body.replace(b"review 3", b"review & 3")) is None  # ill-formed
    latin = body.replace(b"review 4", "Übersicht 4".encode("latin-1"))
    assert feed_split.split(latin) is None  # not UTF-8: decoded whole, as before
    doctype = body.replace(b"<rss ", b'<!DOCTYPE rss [<!ENTITY x "y">]><rss ', 1)
    assert feed_split.split(doctype) is None  # a DTD is cut out first, by parse_feed


def test_small_bodies_are_not_looked_at() -> None:
    body = rss_document()
    assert len(body) < feed_split.SPLIT_BYTES and feed_split.split(body, batch=BATCH) is None


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    """Every stored mention with its story (by the story's first mention) and brands."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.dedup_key, m.guid, m.url, m.title, m.text, m.author, m.published_at,"
                " m.language, m.sentiment, m.content_hash,"
                " (SELECT min(o.guid) FROM mentions o WHERE o.story_id = m.story_id),"
                " (SELECT group_concat(b.name) FROM mention_brands l JOIN brands b"
                "  ON b.id = l.brand_id WHERE l.mention_id = m.id)"
                " FROM mentions m ORDER BY m.guid"
            )
        )
        return [tuple(row) for row in rows]


def database(path: Path) -> Engine:
    engine = db.connect(f"sqlite:///{path}")
    db.upgrade(engine)
    return engine


def test_a_feed_of_several_batches_is_stored_as_the_one_shot_path_stores_it(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        rss_document(), content_type="application/rss+xml", headers={"ETag": '"v1"'}
    )
    settings = make_settings([{"name": "big", "url": httpserver.url_for("/feed")}])
    one_shot = database(tmp_path / "one.db")
    outcome = poll_all(settings, one_shot, Clock())["big"]
    assert outcome.status == "ok" and outcome.items == ENTRIES - 1  # the empty one dropped

    monkeypatch.setattr(feed_split, "BATCH", BATCH)
    monkeypatch.setattr(feed_split, "SPLIT_BYTES", 0)
    batched = database(tmp_path / "batched.db")
    outcome_batched = poll_all(settings, batched, Clock())["big"]
    fields = ("status", "items", "new", "updated", "warnings", "next_in")
    assert [getattr(outcome_batched, f) for f in fields] == [getattr(outcome, f) for f in fields]
    assert outcome.warnings == ("1 entry without title, text, link or guid dropped",)
    rows = stored(batched)
    assert rows == stored(one_shot)
    assert len(rows) == outcome.new == MENTIONS
    assert rows[0][-1] is not None  # brands linked
    one_shot.dispose()
    batched.dispose()


def test_a_poll_failing_midway_loses_nothing_and_stores_no_validators(
    tmp_path: Path, httpserver: HTTPServer, small_batches: None
) -> None:
    """The second batch cannot be stored (a real SQLite trigger refuses one of its rows): the
    first batch stays, the ETag is not stored, so the next poll asks for the whole feed again
    (no If-None-Match) and stores the rest, with no duplicate."""
    httpserver.expect_request("/feed").respond_with_data(
        rss_document(), content_type="application/rss+xml", headers={"ETag": '"v1"'}
    )
    settings = make_settings([{"name": "big", "url": httpserver.url_for("/feed")}])
    engine = database(tmp_path / "l.db")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON mentions WHEN NEW.guid = 'g15' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    first = poll_all(settings, engine, Clock())["big"]
    assert first.status == "failed" and "refused by the test" in (first.error or "")
    kept = stored(engine)
    assert len(kept) == 8  # the first batch (entries 0-9 but two weather reports), no more
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse"))
        etag = conn.execute(text("SELECT etag FROM sources WHERE name = 'big'")).scalar()
    assert etag is None
    second = poll_all(settings, engine, Clock())["big"]
    assert second.status == "ok"
    assert second.new == MENTIONS - len(kept)  # the rest, nothing twice
    assert len(stored(engine)) == MENTIONS
    requests = [request for request, _ in httpserver.log]
    assert len(requests) == 2 and "If-None-Match" not in requests[1].headers
    engine.dispose()
