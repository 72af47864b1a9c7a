"""The in-memory story window (SQLite): it answers as reading the window afresh would, and is
read again whenever anyone else changed the stories table."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from listener import simhash
from listener.models import Mention
from listener.storage import engine as db
from listener.storage import store, story_window
from tests.test_storage import NOW, setup_source, story_mention


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.connect(f"sqlite:///{tmp_path / 'listener.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


def poll(engine: Engine, source: int, mentions: list[Mention], now: object = NOW) -> None:
    with store.transaction(engine, "test") as conn:
        store.record_successes(
            conn, [store.PollSuccess(source, now, now, None, None, mentions=mentions)]
        )


def stories(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT dedup_key, story_id FROM mentions")).all())


def test_random_histories_get_the_stories_a_fresh_read_gives(tmp_path: Path) -> None:
    """Ten polls of near copies and strangers, once with the window kept between polls and
    once read afresh each time (MAX_STORIES 0): every mention gets the same story."""
    results = []
    for limit in (story_window.MAX_STORIES, 0):
        engine = db.connect(f"sqlite:///{tmp_path / f'{limit}.db'}")
        db.upgrade(engine)
        source = setup_source(engine)
        rng = random.Random(7)
        seen: list[int] = []
        old = story_window.MAX_STORIES
        story_window.MAX_STORIES = limit
        try:
            for round_ in range(10):
                batch = [
                    story_mention(round_ * 100 + n, url=None, fp=fp)
                    for n, fp in enumerate(_near_copies(rng, seen, 60))
                ]
                poll(engine, source, batch, NOW + timedelta(hours=round_))
        finally:
            story_window.MAX_STORIES = old
        results.append(stories(engine))
        engine.dispose()
    assert results[0] == results[1]
    assert len(set(results[0].values())) < len(results[0])  # copies were joined


def test_a_story_another_process_stored_is_found(sqlite_engine: Engine, tmp_path: Path) -> None:
    source = setup_source(sqlite_engine)
    base = 0x1234_5678_9ABC_DEF0
    poll(sqlite_engine, source, [story_mention(0, url=None, fp=0x0F0F_0F0F_0F0F_0F0F)])
    other = db.connect(f"sqlite:///{tmp_path / 'listener.db'}")  # another process's engine
    poll(other, source, [story_mention(1, url=None, fp=base)])
    other.dispose()
    poll(sqlite_engine, source, [story_mention(2, url=None, fp=base ^ 0b111)])
    found = stories(sqlite_engine)
    assert found["sk2"] == found["sk1"] != found["sk0"]


def test_a_deleted_story_is_not_joined_and_a_reused_id_is_read(sqlite_engine: Engine) -> None:
    """Retention deletes a story without mentions; SQLite may give its id to the next story,
    stored by someone else: the window learns both."""
    source = setup_source(sqlite_engine)
    first, second = 0x1111_2222_3333_4444, 0x7777_0000_7777_0000
    poll(sqlite_engine, source, [story_mention(0, url=None, fp=first)])
    gone = stories(sqlite_engine)["sk0"]
    with sqlite_engine.begin() as conn:  # as retention does, through another connection
        conn.execute(text("DELETE FROM mention_brands"))
        conn.execute(text("DELETE FROM mentions"))
        conn.execute(text("DELETE FROM stories"))
        conn.execute(  # the freed id, another fingerprint (bands summing alike but one)
            text(
                "INSERT INTO stories (id, url, fingerprint, band0, band1, band2, band3, title,"
                " first_seen_at) VALUES (:id, NULL, :fp, :b0, :b1, :b2, :b3, 't',"
                " '2026-11-23 12:00:00')"
            ),
            {"id": gone, "fp": second, "b0": 0x7777, "b1": 0, "b2": 0x7777, "b3": 0},
        )
    poll(sqlite_engine, source, [story_mention(1, url=None, fp=first ^ 1)])
    poll(sqlite_engine, source, [story_mention(2, url=None, fp=second ^ 1)])
    found = stories(sqlite_engine)
    assert found["sk1"] != gone  # not the deleted story
    assert found["sk2"] == gone  # the story now under that id


def test_a_rolled_back_story_is_not_joined(sqlite_engine: Engine) -> None:
    source = setup_source(sqlite_engine)
    base = 0x0123_4567_89AB_CDEF
    with pytest.raises(RuntimeError), sqlite_engine.begin() as conn:
        store.ingest(conn, [store.Batch(source, [story_mention(0, url=None, fp=base)], NOW)])
        raise RuntimeError("the transaction fails after the story was inserted")
    poll(sqlite_engine, source, [story_mention(1, url=None, fp=base ^ 1)])
    with sqlite_engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM stories")).scalars().all()
    assert stories(sqlite_engine)["sk1"] in ids and len(ids) == 1


def test_stories_older_than_the_window_are_not_joined(sqlite_engine: Engine) -> None:
    source = setup_source(sqlite_engine)
    old, recent = 0x1111_0000_1111_0000, 0x0000_2222_0000_2222
    poll(sqlite_engine, source, [story_mention(0, url=None, fp=old)], NOW - timedelta(days=8))
    poll(sqlite_engine, source, [story_mention(1, url=None, fp=recent)], NOW - timedelta(days=6))
    poll(sqlite_engine, source, [story_mention(2, url=None, fp=old ^ 1)])
    poll(sqlite_engine, source, [story_mention(3, url=None, fp=recent ^ 1)])
    found = stories(sqlite_engine)
    assert found["sk2"] != found["sk0"]
    assert found["sk3"] == found["sk1"]


def test_the_window_is_kept_across_batches_and_read_again_after_changes(
    sqlite_engine: Engine,
) -> None:
    """Batches of this process (with or without fingerprints) keep the window; a story stored
    behind its back makes the next batch read it again."""
    source = setup_source(sqlite_engine)
    poll(sqlite_engine, source, [story_mention(0, url=None, fp=0x0F0F_0F0F_0F0F_0F0F)])
    kept = story_window._windows[sqlite_engine]
    poll(sqlite_engine, source, [story_mention(1, url="https://a.example/1", fp=None)])
    poll(sqlite_engine, source, [story_mention(2, url=None, fp=0x7070_7070_7070_7070)])
    assert story_window._windows[sqlite_engine] is kept
    with sqlite_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stories (url, title, first_seen_at)"
                " VALUES ('https://b.example/1', 't', '2026-11-23 12:00:00')"
            )
        )
    poll(sqlite_engine, source, [story_mention(3, url=None, fp=0x1234_0000_0000_4321)])
    assert story_window._windows[sqlite_engine] is not kept
    found = stories(sqlite_engine)
    assert len(set(found.values())) == 4


def _near_copies(rng: random.Random, seen: list[int], count: int) -> Iterator[int]:
    """Fingerprints, 40% of them copies of earlier ones with up to 7 bits flipped (ties)."""
    for _ in range(count):
        if seen and rng.random() < 0.4:
            fp = rng.choice(seen)
            for _ in range(rng.randint(0, 7)):
                fp ^= 1 << rng.randrange(64)
        else:
            fp = rng.getrandbits(64)
        seen.append(fp)
        yield fp


def test_rebuilt_and_overlaid_bands_answer_as_a_fresh_band_index() -> None:
    """A window read from rows (some older than the batch's start), then more new stories
    than the overlay holds (so the bands are rebuilt mid-batch, with keys still pending), then
    more after they are named: every lookup answers as a BandIndex of the same stories."""
    rng = random.Random(11)
    since = NOW - timedelta(days=7)
    seen: list[int] = []
    rows = [
        (ident, fp, since + timedelta(minutes=rng.randint(-600, 600), microseconds=ident))
        for ident, fp in enumerate(_near_copies(rng, seen, 3000), start=1)
    ]
    window = story_window.StoryWindow(since, (0,) * 6)
    window.load(rows)
    fresh = simhash.BandIndex()
    for ident, fp, first_seen in rows:
        if first_seen >= since:
            fresh.add(ident, fp)
    view = window.view(since)
    batch = 2 * story_window._REBUILD + 500
    for key, fp in enumerate(_near_copies(rng, seen, batch), start=1):
        assert view.nearest(fp) == fresh.nearest(fp)
        if rng.random() < 0.5:  # a new story of the batch
            view.add(-key, fp)
            fresh.add(-key, fp)
    assert window.built > len(rows)  # rebuilt with pending keys in it
    assert any(window.overlay)  # and the latest in the overlay
    ids = list(range(10_001, 10_001 + batch))
    view.stored(ids, [None] * batch, NOW)
    later_since = since + timedelta(hours=3)  # fewer of the rows are in the window now
    renamed = simhash.BandIndex()
    for ident, fp, first_seen in rows:
        if first_seen >= later_since:
            renamed.add(ident, fp)
    for position in range(len(rows), len(window.ids)):
        renamed.add(window.ids[position], window.prints[position])
    assert sorted(window.ids[len(rows) :]) == list(window.ids[len(rows) :])
    later = window.view(later_since)
    for fp in _near_copies(rng, seen, 2000):
        assert later.nearest(fp) == renamed.nearest(fp)


def test_polls_past_many_rebuilds_get_the_stories_a_fresh_read_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls through the database with the overlay rebuilt every 16 stories (mid-batch and
    between batches): every mention gets the story a fresh read each poll gives."""
    monkeypatch.setattr(story_window, "_REBUILD", 16)
    results = []
    for limit in (story_window.MAX_STORIES, 0):
        monkeypatch.setattr(story_window, "MAX_STORIES", limit)
        engine = db.connect(f"sqlite:///{tmp_path / f'{limit}.db'}")
        db.upgrade(engine)
        source = setup_source(engine)
        rng = random.Random(5)
        seen: list[int] = []
        for round_ in range(6):
            prints = _near_copies(rng, seen, 80)
            batch = [
                story_mention(round_ * 100 + n, url=None, fp=fp) for n, fp in enumerate(prints)
            ]
            poll(engine, source, batch, NOW + timedelta(hours=round_))
        results.append(stories(engine))
        engine.dispose()
    assert results[0] == results[1]
    assert len(set(results[0].values())) < len(results[0])  # copies were joined
