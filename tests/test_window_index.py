"""Story assignment of a big batch: the story window is streamed through a WindowIndex and
every mention gets the story a BandIndex of the whole window gives it, equal distances
included (``listener.simhash``, ``listener.storage.ingest``), on real databases."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from listener import simhash
from listener.models import Item, Mention
from listener.simhash import BandIndex, WindowIndex, assign
from listener.storage import ingest, store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def flipped(fp: int, bits: list[int]) -> int:
    for bit in bits:
        fp ^= 1 << bit
    return fp


def clustered(rng: random.Random, centres: list[int], each: int) -> list[int]:
    """Fingerprints in clusters around a few centres: many within six bits of each other, and
    many at equal distances from one another (ties)."""
    return [
        flipped(rng.choice(centres), rng.sample(range(64), rng.randint(0, 7)))
        for _ in range(len(centres) * each)
    ]


def answers(
    window: list[int], keys: list[tuple[str | None, int | None]], index: object
) -> list[int]:
    assert isinstance(index, (BandIndex, WindowIndex))
    for ident, fp in enumerate(window, start=1):
        index.add(ident, fp)
    return assign(keys, {}, index)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 6), st.integers(2, 12))
def test_a_streamed_window_answers_as_a_band_index_of_it_ties_included(
    seed: int, bases: int, each: int
) -> None:
    rng = random.Random(seed)
    centres = [rng.getrandbits(64) for _ in range(bases)]
    window = clustered(rng, centres, each)
    batch = clustered(rng, centres, each) + window[: each // 2]  # exact copies too
    keys: list[tuple[str | None, int | None]] = [(None, fp) for fp in batch]
    expected = answers(window, keys, BandIndex())
    assert answers(window, keys, WindowIndex(batch)) == expected


def test_equally_close_stories_go_to_the_one_a_band_index_meets_first() -> None:
    base = 0x1234_5678_9ABC_DEF0
    low = flipped(base, [0, 1, 2, 3, 4, 5])  # six bits away, all in band 3
    mid = flipped(base, [16, 17, 18, 19, 20, 21])  # six bits away, all in band 2
    high = flipped(base, [58, 59, 60, 61, 62, 63])  # six bits away, all in band 0
    keys: list[tuple[str | None, int | None]] = [(None, base)]
    for window, first in (
        ([high, low], low),  # low is met in band 0, high only in band 1
        ([low, high], low),
        ([mid, low], mid),  # both met in band 0: the one added first
        ([low, mid], low),
    ):
        expected = answers(window, keys, BandIndex())
        assert answers(window, keys, WindowIndex([base])) == expected
        assert expected == [window.index(first) + 1]


def mention(i: int, fp: int, minutes: int = 0) -> Mention:
    item = Item(
        guid=f"w{i}",
        url=f"https://d{i % 7}.example/{i}",
        title=f"story {i}",
        text="t",
        published_at=NOW - timedelta(minutes=minutes),
    )
    return Mention(
        item,
        frozenset({"A"}),
        f"wk{i}",
        item.url,
        "h",
        story_url=f"https://wire.example/{i}",
        fingerprint=fp,
        domain=f"d{i % 7}.example",
    )


def store_batch(engine: Engine, source: int, mentions: list[Mention], now: datetime) -> None:
    with store.transaction(engine, "test") as conn:
        store.record_mentions(conn, mentions=mentions, source_id=source, now=now)


def test_a_big_batch_joins_the_stories_a_whole_window_index_gives(engine: Engine) -> None:
    """More distinct fingerprints than the probe lookup takes (the window is scanned), stored
    against a window of clustered stories: each mention's story is the one the former full
    read of the window into a BandIndex gives, ties included."""
    rng = random.Random(18)
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(conn, ["A"], [store.CatalogSource("s", "feed", "https://x/")], NOW)
        source = store.load_states(conn)["s"].id
    earlier = NOW - timedelta(hours=1)
    centres = [rng.getrandbits(64) for _ in range(40)]
    window = clustered(rng, centres, 6)
    store_batch(engine, source, [mention(i, fp) for i, fp in enumerate(window)], earlier)
    prints = clustered(rng, centres, 6) + [rng.getrandbits(64) for _ in range(400)]
    assert len(set(prints)) * ingest._PROBES_EACH > ingest._MAX_PROBES  # the scan path
    since = NOW - ingest.STORY_WINDOW
    with engine.connect() as conn:  # the former lookup: the window read whole, in this order
        rows = conn.execute(ingest._NEAR_WINDOW, {"since": since}).all()
    former = BandIndex(ingest.STORY_MAX_DISTANCE)
    for ident, stored in rows:
        former.add(ident, simhash.from_signed64(stored))
    expected = assign([(None, fp) for fp in prints], {}, former)
    offset = len(window)
    big = [mention(offset + i, fp) for i, fp in enumerate(prints)]
    store_batch(engine, source, big, NOW)
    with engine.connect() as conn:
        got = dict(conn.execute(text("SELECT dedup_key, story_id FROM mentions")).all())
        new_stories = conn.execute(
            text("SELECT id FROM stories WHERE id > :last ORDER BY id"),
            {"last": max(ident for ident, _ in rows)},
        ).scalars()
        fresh = list(new_stories)
    joined = [story if story > 0 else fresh[-story - 1] for story in expected]
    assert [got[m.dedup_key] for m in big] == joined
    assert sum(1 for story in expected if story > 0) > 50  # many joined a stored story
