"""Storage on real databases: migrations, SQLite settings, batched ingest, group commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from listener.errors import ConfigError, SchemaOutdatedError, StorageError
from listener.models import Item, Mention
from listener.storage import engine as db
from listener.storage import store
from listener.storage.writer import Writer

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_schema_head_constant_matches_migrations() -> None:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == db.SCHEMA_HEAD


def test_migrations_create_exactly_the_tables(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from listener.storage.tables import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_empty_database_is_refused_with_hint(tmp_path: Path) -> None:
    engine = db.connect(f"sqlite:///{tmp_path / 'new' / 'x.db'}")
    with pytest.raises(SchemaOutdatedError, match="listener db upgrade"):
        db.check_schema(engine)
    assert db.upgrade(engine) == (None, db.SCHEMA_HEAD)
    db.check_schema(engine)
    assert db.upgrade(engine) == (db.SCHEMA_HEAD, db.SCHEMA_HEAD)


def test_outdated_revision_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutdatedError, match="revision 0000"):
        db.check_schema(engine)


def test_sqlite_settings(tmp_path: Path) -> None:
    engine = db.connect(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_bad_url_and_password_masking() -> None:
    with pytest.raises(ConfigError, match=r"database\.url") as caught:
        db.connect("nonsense://")
    assert "database.url" in str(caught.value)
    assert db.display_url("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"


def mention(i: int, *, brands: frozenset[str] = frozenset({"A"}), text: str = "t") -> Mention:
    item = Item(
        guid=f"g{i}",
        url=f"https://x.example/{i}",
        title=f"title {i}",
        text=text,
        published_at=NOW - timedelta(minutes=i),
    )
    return Mention(item, brands, f"key{i}", item.url, f"hash-{text}")


def setup_source(engine: Engine) -> int:
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(conn, ["A", "B"], [store.CatalogSource("s", "feed", "https://x/")], NOW)
        return store.load_states(conn)["s"].id


def test_ingest_dedups_and_updates_in_bulk(engine: Engine) -> None:
    source = setup_source(engine)
    batch = [mention(i) for i in range(1200)]  # more than one IN-list chunk
    with store.transaction(engine, "test") as conn:
        [(result, state)] = store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source, now=NOW, next_poll_at=NOW, etag="e", last_modified=None, mentions=batch
                )
            ],
        )
    assert (result.new, result.updated, len(result.new_ids)) == (1200, 0, 1200)
    assert state.etag == "e" and state.last_success_at == NOW
    again = [mention(i) for i in range(1190, 1210)]  # 10 known, 10 new
    again[0] = mention(1190, brands=frozenset({"A", "B"}), text="changed")
    with store.transaction(engine, "test") as conn:
        [(result, _)] = store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source, now=NOW, next_poll_at=NOW, etag="e", last_modified=None, mentions=again
                )
            ],
        )
    assert (result.new, result.updated, result.unchanged) == (10, 1, 9)
    counts = store.count_rows(engine)
    assert counts["mentions"] == 1210
    assert counts["mention_brands"] == 1211  # the changed item gained brand B
    [changed] = store.query_mentions(engine, store.MentionFilter(search="title 1190"))
    assert changed.text == "changed" and changed.brands == ("A", "B")


def test_future_dates_do_not_become_event_time(engine: Engine) -> None:
    source = setup_source(engine)
    future = Item(
        guid="f",
        url="https://x.example/f",
        title="from the future",
        text="",
        published_at=NOW + timedelta(days=3),
    )
    with store.transaction(engine, "test") as conn:
        store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source,
                    now=NOW,
                    next_poll_at=NOW,
                    etag=None,
                    last_modified=None,
                    mentions=[Mention(future, frozenset({"A"}), "kf", None, "h")],
                )
            ],
        )
    # event time is clamped to the fetch time, so --until now still finds it
    assert store.query_mentions(engine, store.MentionFilter(until=NOW + timedelta(seconds=1)))


def test_writer_batches_and_isolates_failures(engine: Engine) -> None:
    import threading

    source = setup_source(engine)
    writer = Writer(engine)
    gate = threading.Event()

    def fail(conn: Connection) -> None:
        conn.execute(text("INSERT INTO nonexistent VALUES (1)"))

    def count(conn: Connection, i: int) -> None:
        store.record_failure(conn, source, now=NOW, error=f"e{i}", next_poll_at=NOW)

    try:
        blocker = writer.submit(lambda conn: gate.wait(10))
        good = [writer.submit(lambda conn, i=i: count(conn, i)) for i in range(50)]
        gate.set()
        blocker.result(10)
        for future in good:
            future.result(10)
        # the 50 queued operations shared one transaction (the blocker may have joined it)
        assert writer.transactions <= 2
        before = writer.transactions

        gate.clear()
        blocker = writer.submit(lambda conn: gate.wait(10))
        mixed = [writer.submit(lambda conn, i=i: count(conn, i)) for i in range(5)]
        broken = writer.submit(fail)
        gate.set()
        for future in mixed:
            future.result(10)
        with pytest.raises(StorageError, match="database write failed"):
            broken.result(10)
        # a failed batch, then each of its operations alone
        assert 1 + 6 <= writer.transactions - before <= 1 + 1 + 6
    finally:
        gate.set()
        writer.close()
    with store.transaction(engine, "test") as conn:
        assert store.load_states(conn)["s"].consecutive_errors == 55


def test_upgrade_from_first_revision_keeps_every_row(db_url: str) -> None:
    """Migrations rebuild tables on SQLite; nothing stored before may be lost."""
    from alembic import command

    engine = db.connect(db_url)
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.attributes["engine"] = engine
    command.downgrade(config, "0001")
    assert db.current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (id, name, kind, config_url, url, consecutive_errors,"
                " created_at)"
                " VALUES (1, 's', 'feed', 'https://x/', 'https://x/', 0, '2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text("INSERT INTO brands (id, name, created_at) VALUES (1, 'A', '2026-11-01 00:00:00')")
        )
        conn.execute(
            text(
                "INSERT INTO mentions (id, source_id, dedup_key, content_hash, title, text,"
                " fetched_at, updated_at, event_at) VALUES (1, 1, 'k', 'h', 't', 'x',"
                " '2026-11-01 00:00:00', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
            )
        )
        conn.execute(text("INSERT INTO mention_brands (mention_id, brand_id) VALUES (1, 1)"))
    db.upgrade(engine)
    db.check_schema(engine)
    assert store.count_rows(engine) == {
        "brands": 1,
        "sources": 1,
        "mentions": 1,
        "mention_brands": 1,
    }
    engine.dispose()


def story_mention(
    i: int,
    *,
    url: str | None,
    fp: int | None,
    author: str = "a",
    domain: str = "d.example",
    minutes: int = 0,
) -> Mention:
    item = Item(
        guid=f"s{i}",
        url=f"https://{domain}/{i}",
        title=f"story {i}",
        text="t",
        author=author,
        published_at=NOW - timedelta(minutes=minutes),
    )
    return Mention(
        item,
        frozenset({"A"}),
        f"sk{i}",
        item.url,
        "h",
        story_url=url,
        fingerprint=fp,
        domain=domain,
    )


def test_copies_of_one_story_share_it(engine: Engine) -> None:
    source = setup_source(engine)
    base = 0xF0F0_1234_ABCD_0001
    batch = [
        story_mention(0, url="https://wire.example/recall", fp=base, domain="a.example"),
        story_mention(1, url="https://wire.example/recall", fp=None, domain="b.example"),
        story_mention(2, url="https://c.example/copy", fp=base ^ 0b101, domain="c.example"),
        story_mention(3, url="https://d.example/other", fp=base ^ 0xFFFF_0000_FFFF_0000),
        story_mention(4, url=None, fp=None, author="b"),
        story_mention(5, url=None, fp=(1 << 64) - 1, author="c"),  # stored as signed BIGINT
    ]
    with store.transaction(engine, "test") as conn:
        store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source,
                    now=NOW,
                    next_poll_at=NOW,
                    etag=None,
                    last_modified=None,
                    mentions=batch[:3],
                )
            ],
        )
    with store.transaction(engine, "test") as conn:  # a later poll finds the stored story
        store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source,
                    now=NOW,
                    next_poll_at=NOW,
                    etag=None,
                    last_modified=None,
                    mentions=batch[3:],
                )
            ],
        )
        stories = dict(conn.execute(text("SELECT dedup_key, story_id FROM mentions")).all())
    assert stories["sk0"] == stories["sk1"] == stories["sk2"]
    assert len({stories["sk0"], stories["sk3"], stories["sk4"], stories["sk5"]}) == 4
    counts = store.count_buckets(
        engine, "a", NOW - timedelta(hours=1), NOW + timedelta(hours=1), timedelta(hours=1)
    )
    assert [(c.mentions, c.stories, c.authors, c.domains) for c in counts] == [(6, 4, 3, 4)]
    assert counts[0].start == NOW


def test_fingerprints_up_to_six_bits_apart_are_one_story(engine: Engine) -> None:
    source = setup_source(engine)
    base = 0x1234_5678_9ABC_DEF0
    batch = [
        story_mention(0, url="https://a.example/1", fp=base),
        story_mention(1, url="https://b.example/1", fp=base ^ 0x0003_0003_0001_0001),  # 6 bits
        story_mention(2, url="https://c.example/1", fp=base ^ 0x0000_0000_0000_007F),  # 7 bits
        story_mention(3, url="https://d.example/1", fp=base ^ 0x0000_0000_7F00_0000),  # 7 bits
        story_mention(4, url="https://e.example/1", fp=base ^ 0x00FF_0000_0000_0000),  # 8 bits
    ]
    for mention in batch:  # one at a time: each is looked up among the stored stories
        with store.transaction(engine, "test") as conn:
            store.record_successes(
                conn,
                [
                    store.PollSuccess(
                        source,
                        now=NOW,
                        next_poll_at=NOW,
                        etag=None,
                        last_modified=None,
                        mentions=[mention],
                    )
                ],
            )
    with engine.connect() as conn:
        stories = dict(conn.execute(text("SELECT dedup_key, story_id FROM mentions")).all())
    assert stories["sk0"] == stories["sk1"]  # 6 bits apart: the same story
    assert len({stories[k] for k in ("sk0", "sk2", "sk3", "sk4")}) == 4  # 7 and 8 bits: not


@pytest.mark.parametrize("crowd", [0, 700], ids=["probed", "window-read"])
def test_story_lookup_finds_near_stored_stories_in_small_and_big_batches(
    engine: Engine, crowd: int
) -> None:
    """A small batch probes the bands of its fingerprints, a big one (``crowd`` unrelated
    fingerprints more) reads the window: both join exactly the stored stories within 6 bits."""
    import random

    rng = random.Random(16)
    source = setup_source(engine)
    stored = [rng.getrandbits(64) for _ in range(300)]

    def poll(mentions: list[Mention]) -> None:
        with store.transaction(engine, "test") as conn:
            store.record_successes(
                conn,
                [store.PollSuccess(source, NOW, NOW, None, None, mentions=mentions)],
            )

    poll([story_mention(i, url=None, fp=fp) for i, fp in enumerate(stored)])
    six = (0x0003_0003_0001_0001, 0x8000_0000_0000_001F, 0x0000_0000_0000_0000)
    seven = (0x0003_0003_0003_0001, 0x0000_0000_0000_007F)
    near = [(1000 + n, stored[n * 7] ^ flip) for n, flip in enumerate(six)]
    far = [(1100 + n, stored[n * 11 + 1] ^ flip) for n, flip in enumerate(seven)]
    crowding = [(2000 + n, rng.getrandbits(64)) for n in range(crowd)]
    poll([story_mention(i, url=None, fp=fp) for i, fp in (*near, *far, *crowding)])
    with engine.connect() as conn:
        story = dict(conn.execute(text("SELECT dedup_key, story_id FROM mentions")).all())
    for n, (key, _) in enumerate(near):
        assert story[f"sk{key}"] == story[f"sk{n * 7}"]
    for n, (key, _) in enumerate(far):
        assert story[f"sk{key}"] != story[f"sk{n * 11 + 1}"]
    assert len(set(story.values())) == len(stored) + len(far) + crowd


def test_stored_bands_are_the_fingerprint_bands(engine: Engine) -> None:
    """The band columns that candidate lookups probe hold ``listener.simhash.bands``."""
    from listener import simhash

    source = setup_source(engine)
    value = 0xF234_5678_9ABC_DEF0  # the top bit set: stored as a negative BIGINT
    with store.transaction(engine, "test") as conn:
        store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source,
                    now=NOW,
                    next_poll_at=NOW,
                    etag=None,
                    last_modified=None,
                    mentions=[story_mention(0, url="https://a.example/1", fp=value)],
                )
            ],
        )
        row = conn.execute(
            text("SELECT fingerprint, band0, band1, band2, band3 FROM stories")
        ).one()
    assert simhash.from_signed64(row[0]) == value
    assert tuple(row[1:]) == simhash.bands(value)


def test_many_polls_in_one_call(engine: Engine) -> None:
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(
            conn,
            ["A"],
            [
                store.CatalogSource("s1", "feed", "https://1/"),
                store.CatalogSource("s2", "feed", "https://2/"),
            ],
            NOW,
        )
        states = store.load_states(conn)
    one, two = states["s1"].id, states["s2"].id
    shared = mention(1)  # the same item (same dedup key) in both sources
    polls = [
        store.PollSuccess(one, NOW, NOW, '"e1"', None, None, [mention(0), shared]),
        store.PollSuccess(two, NOW, NOW, None, "lm", "https://2/moved", [shared, mention(2)]),
        store.PollSuccess(two, NOW, NOW, None, None, None, []),  # e.g. a 304
    ]
    with store.transaction(engine, "test") as conn:
        results = store.record_successes(conn, polls)
    assert [(r.new, r.unchanged) for r, _ in results] == [(2, 0), (1, 0), (0, 0)]
    assert results[0][1].etag == '"e1"'
    assert results[1][1].url == "https://2/moved"
    assert store.count_rows(engine)["mentions"] == 3
    # the same guid in another source is another item; in the same source it is the same row
    again = Mention(
        Item(guid="g0", url="https://moved.example/0", title="title 0", text="new"),
        frozenset({"A"}),
        "other-key",
        None,
        "changed",
    )
    with store.transaction(engine, "test") as conn:
        [(result, _)] = store.record_successes(
            conn, [store.PollSuccess(one, NOW, NOW, None, None, None, [again])]
        )
    assert (result.new, result.updated) == (0, 1)
    assert store.count_rows(engine)["mentions"] == 3


def test_writer_groups_payloads_into_one_call(engine: Engine) -> None:
    import threading

    calls: list[list[int]] = []

    def group(conn: Connection, payloads: list[int]) -> list[int]:
        calls.append(payloads)
        return [p * 10 for p in payloads]

    writer = Writer(engine)
    gate = threading.Event()
    try:
        blocker = writer.submit(lambda conn: gate.wait(10))
        futures = [writer.submit_grouped(group, i) for i in range(5)]
        gate.set()
        blocker.result(10)
        assert [f.result(10) for f in futures] == [0, 10, 20, 30, 40]
    finally:
        gate.set()
        writer.close()
    assert sum(len(c) for c in calls) == 5 and len(calls) <= 2


def test_sentiment_is_stored_and_filtered(engine: Engine) -> None:
    from dataclasses import replace

    from listener.models import Score

    source = setup_source(engine)
    scored = [
        replace(mention(0), sentiment=Score("negative", -0.8, 0.9, "test-1")),
        replace(mention(1), sentiment=Score("positive", 0.6, 0.7, "test-1")),
        mention(2),
    ]
    with store.transaction(engine, "test") as conn:
        store.record_successes(
            conn,
            [
                store.PollSuccess(
                    source,
                    now=NOW,
                    next_poll_at=NOW,
                    etag=None,
                    last_modified=None,
                    mentions=scored,
                )
            ],
        )
    [negative] = store.query_mentions(engine, store.MentionFilter(sentiment="negative"))
    assert (negative.title, negative.sentiment, negative.sentiment_score) == (
        "title 0",
        "negative",
        -0.8,
    )
    assert len(store.query_mentions(engine, store.MentionFilter(sentiment="neutral"))) == 0
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT sentiment_confidence, sentiment_version FROM mentions"
                " WHERE dedup_key = 'key0'"
            )
        ).one()
    assert tuple(row) == (0.9, "test-1")


def test_alert_counts_by_state_agree_with_the_rows(engine: Engine) -> None:
    """The daemon's gauge counts alerts with one COUNT query instead of loading them."""
    from collections import Counter

    from listener.models import Evidence
    from listener.storage import alerts

    evidence = Evidence("warning", 5, 1.0, 3.0, None, NOW, NOW, "five instead of one")
    with engine.begin() as conn:
        store.sync_catalog(conn, ["A"], [], NOW)
        ids = [
            alerts.open_alert(
                conn,
                brand="A",
                detector="storm",
                started_at=NOW + timedelta(hours=hour),
                fired_at=NOW,
                evidence=evidence,
                historic=False,
                pending=hour == 2,
            )
            for hour in range(4)
        ]
        assert None not in ids
        alerts.resolve(conn, ids[0] or 0, NOW)
    counts = alerts.count_by_state(engine)
    assert counts == {"resolved": 1, "firing": 2, "pending": 1}
    assert counts == Counter(a.state for a in alerts.list_alerts(engine, limit=None))


def test_a_writer_stop_with_a_timeout_does_not_wait_for_a_stuck_write(tmp_path: Path) -> None:
    """A write waiting for a lock another process holds: ``close(timeout)`` stops waiting
    for it (False) instead of waiting out SQLite's 30 s busy timeout (the daemon's stop); the
    write is left to its thread, which commits or rolls it back whole."""
    import subprocess
    import sys

    engine = db.connect(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade(engine)
    code = (
        "import sqlite3, time\n"
        f"c = sqlite3.connect({str(tmp_path / 'l.db')!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(60)\n"
    )
    locker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        writer = Writer(engine)
        stuck = writer.submit(lambda conn: conn.execute(text("CREATE TABLE t (x INTEGER)")))
        assert writer.close(timeout=1.0) is False
        assert not stuck.done()
    finally:
        locker.kill()
        locker.wait()
        if locker.stdout is not None:
            locker.stdout.close()
    stuck.exception(timeout=60)  # once the lock is gone it runs; the test's process waits
    engine.dispose()


def test_writer_grouped_jobs_wait_to_share_a_transaction(engine: Engine) -> None:
    """A grouped job submitted with ``wait`` waits (``linger``) for others to join its
    transaction; the batch commits as soon as it is full, so the test does not wait the linger
    out; a job that is not to wait ends the wait."""
    import threading

    writer = Writer(engine, max_batch=3, linger=60.0)
    calls: list[list[int]] = []

    def group(conn: Connection, payloads: list[int]) -> list[int]:
        calls.append(list(payloads))
        return [p * 10 for p in payloads]

    try:
        first = writer.submit_grouped(group, 1, wait=True)
        threading.Event().wait(0.2)  # the writer has taken the first job, waiting for company
        second = writer.submit_grouped(group, 2, wait=True)
        third = writer.submit_grouped(group, 3, wait=True)
        assert [first.result(10), second.result(10), third.result(10)] == [10, 20, 30]
        assert calls == [[1, 2, 3]] and writer.transactions == 1
        # a plain operation, or a grouped job that is not to wait, ends the wait
        grouped = writer.submit_grouped(group, 4, wait=True)
        plain = writer.submit(lambda conn: "plain")
        assert plain.result(10) == "plain" and grouped.result(10) == 40
        grouped = writer.submit_grouped(group, 5, wait=True)
        eager = writer.submit_grouped(group, 6)
        assert [grouped.result(10), eager.result(10)] == [50, 60]
    finally:
        writer.close()


def test_a_sqlite_store_never_imports_the_postgresql_dialect(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'x.db'}"
    migrated = db.connect(url)
    db.upgrade(migrated)
    migrated.dispose()
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from listener.models import Item, Mention\n"
        "from listener.storage import engine as db, store\n"
        f"engine = db.connect({url!r})\n"
        "db.check_schema(engine)\n"
        "now = datetime(2026, 11, 23, tzinfo=UTC)\n"
        "with store.transaction(engine, 'test') as conn:\n"
        "    feed = store.CatalogSource('s', 'feed', 'https://x/')\n"
        "    store.sync_catalog(conn, ['A'], [feed], now)\n"
        "    source = store.load_states(conn)['s'].id\n"
        "item = Item(guid='g', url='https://x.example/1', title='t', text='A', published_at=now)\n"
        "mention = Mention(item, frozenset({'A'}), 'k', item.url, 'h')\n"
        "success = store.PollSuccess(source, now=now, next_poll_at=now, etag=None,\n"
        "                            last_modified=None, mentions=[mention])\n"
        "with store.transaction(engine, 'test') as conn:\n"
        "    [(result, _)] = store.record_successes(conn, [success])\n"
        "print('NEW', result.new, len(store.query_mentions(engine, store.MentionFilter())))\n"
        "print('PG', sorted(m for m in sys.modules if 'postgres' in m or 'psycopg' in m))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "NEW 1 1" in done.stdout, done.stdout
    assert "PG []" in done.stdout, done.stdout
