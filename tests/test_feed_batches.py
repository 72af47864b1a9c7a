"""Big feeds in batches: a body with more entries than one batch is cut into feed documents
(``sources.feed_split``), parsed, matched and stored batch by batch. The batches give exactly
what the one-shot path gives, every entry is stored, and a poll that fails midway stores its
validators never, so the next poll reads the whole feed again and loses nothing.

Real HTTP server on 127.0.0.1, real SQLite files; the batch size is made small here (a module
constant) so that small documents written for the test take the batch path."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, text
from test_poll import Clock, make_settings, poll_all

from listener.sources import client as http_client
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
    assert first.new == 8  # reported as stored (metrics count it), not 0
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


# -- spooled bodies: read from a file in chunks, transcoded when not UTF-8 ----------------------


def pieces_of(body: bytes | Path, plan: feed_split.Split) -> list[Any]:
    docs = [plan.document(body, i) for i in range(len(plan.batches))]
    return [parse_feed(doc, url="https://feed.example/") for doc in docs]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_a_file_is_cut_where_its_bytes_are_cut_whatever_the_chunk_size(
    tmp_path: Path, small_batches: None, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Chunks of 7 bytes cut every tag somewhere: the entries found are the same."""
    body = rss_document()
    in_memory = feed_split.split(body)
    monkeypatch.setattr(feed_split, "CHUNK", chunk)
    path = tmp_path / "body"
    path.write_bytes(body)
    from_file = feed_split.split(path)
    assert in_memory is not None and from_file == in_memory
    assert [plan.document(path, i) for plan in (from_file,) for i in range(3)] == [
        in_memory.document(body, i) for i in range(3)
    ]
    # a DTD cut by a chunk boundary is still found
    doctype = body.replace(b"<rss ", b'<!DOCTYPE rss [<!ENTITY x "y">]><rss ', 1)
    path.write_bytes(doctype)
    assert feed_split.split(path) is None


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [
        ("iso-8859-1", None),  # the XML declaration names it
        ("windows-1252", "application/rss+xml; charset=windows-1252"),  # the HTTP header does
        ("utf-16", None),  # a BOM says so
    ],
)
def test_a_spooled_body_in_another_charset_is_transcoded_then_cut(
    tmp_path: Path, small_batches: None, encoding: str, content_type: str | None
) -> None:
    text = rss_document().decode().replace("review 4", "Übersicht 4 – “zitiert”")
    if encoding != "windows-1252":
        text = text.replace("“zitiert”", "zitiert").replace("–", "-")
    text = text.replace('encoding="utf-8"', f'encoding="{encoding}"')
    body = text.encode(encoding)
    path = tmp_path / "body"
    path.write_bytes(body)
    plan = feed_split.split(path, content_type=content_type)
    assert plan is not None and plan.transcoded is not None and plan.transcoded.exists()
    whole = parse_feed(body, url="https://feed.example/", content_type=content_type)
    pieces = pieces_of(path, plan)
    assert [item for piece in pieces for item in piece.items] == list(whole.items)
    assert any("Übersicht 4" in item.title for item in whole.items)
    merged = feed_split.merge_warnings(
        [*plan.warnings, *(w for piece in pieces for w in piece.warnings)]
    )
    assert merged == whole.warnings
    plan.discard()
    assert not plan.transcoded.exists() and path.exists()


def test_undecodable_bytes_are_replaced_with_the_same_warning_as_a_whole_parse(
    tmp_path: Path, small_batches: None
) -> None:
    """Declared UTF-8 but not UTF-8 (nor windows-1252, which leaves 0x81 undefined): the
    declared charset is kept and what does not decode is replaced, as in a whole parse."""
    body = rss_document().replace(b"review 4", b"review \x81\xe4 4")
    path = tmp_path / "body"
    path.write_bytes(body)
    plan = feed_split.split(path)
    assert plan is not None and plan.warnings == (
        "body is not valid utf-8; undecodable bytes replaced",
    )
    whole = parse_feed(body, url="https://feed.example/")
    pieces = pieces_of(path, plan)
    assert [item for piece in pieces for item in piece.items] == list(whole.items)
    merged = feed_split.merge_warnings(
        [*plan.warnings, *(w for piece in pieces for w in piece.warnings)]
    )
    assert merged == whole.warnings
    plan.discard()


def test_an_ill_formed_file_is_not_cut_and_leaves_no_copy(
    tmp_path: Path, small_batches: None
) -> None:
    path = tmp_path / "body"
    path.write_bytes(rss_document().replace(b"review 3", b"\xe4 & 3"))  # latin-1 and a bare &
    assert feed_split.split(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["body"]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_spooled_feed_is_stored_in_batches_and_its_files_are_deleted(
    tmp_path: Path,
    httpserver: HTTPServer,
    small_batches: None,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """The body goes to a file while it downloads (the spool threshold made small), the split
    and the pieces are read from it (by the worker process with workers = 1), and no file is
    left once the poll is over: neither the body's nor its UTF-8 copy."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    monkeypatch.setattr(http_client, "SPOOL_BYTES", 100)
    latin = rss_document().replace(b"review 4", "Übersicht 4".encode("latin-1"))
    latin = latin.replace(b'encoding="utf-8"', b'encoding="iso-8859-1"')
    httpserver.expect_request("/feed").respond_with_data(
        latin, content_type="application/rss+xml", headers={"ETag": '"v1"'}
    )
    settings = make_settings(
        [{"name": "big", "url": httpserver.url_for("/feed")}], polling={"workers": workers}
    )
    engine = database(tmp_path / "l.db")
    outcome = poll_all(settings, engine, Clock())["big"]
    assert outcome.status == "ok" and outcome.new == MENTIONS
    assert outcome.warnings == ("1 entry without title, text, link or guid dropped",)
    titles = [row[3] for row in stored(engine)]
    assert "Kryptonite lock Übersicht 4" in titles
    assert list(spool.iterdir()) == []
    engine.dispose()
