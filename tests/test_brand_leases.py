"""Brand leases on a real PostgreSQL: fair shares, no brand held twice, takeover of a dead
instance's brands after its lease, rebalance when an instance joins, release at a clean stop;
and two instances evaluating one brand at once write one alert and one notification per route."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from listener.storage import engine as db
from listener.storage import instances, leases, store

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BUCKET = timedelta(minutes=5)
LEASE = timedelta(minutes=6)
BRANDS = [f"brand{i:02d}" for i in range(30)]


@pytest.fixture
def pg(pg_admin_url: str, pg_template: str) -> Iterator[Engine]:
    name = f"listener_leases_{os.getpid()}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    engine = db.connect(make_url(pg_admin_url).set(database=name).render_as_string(False))
    with store.transaction(engine, "set up") as conn:
        store.sync_catalog(conn, BRANDS, [], NOW)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def live(engine: Engine, *names: str, at: datetime = NOW) -> None:
    for name in names:
        instances.heartbeat(engine, name, started=at, now=at, leader=False)
        leases.enlist(engine, name, at + LEASE)


def run(engine: Engine, me: str, at: datetime) -> leases.Claim:
    return leases.claim(engine, me, BRANDS, at, at + LEASE, BUCKET)


def holders(engine: Engine, at: datetime) -> Counter[str]:
    return Counter(
        row.held_by for row in leases.leases(engine) if row.held_by and row.held_until > at
    )


def test_three_instances_take_a_fair_share_each_and_no_brand_twice(pg: Engine) -> None:
    live(pg, "a", "b", "c")
    claims = [run(pg, me, NOW + timedelta(seconds=i)) for i, me in enumerate("abc")]
    assert [len(c.held) for c in claims] == [10, 10, 10]
    assert all(c.live == 3 and c.share == 10 for c in claims)
    held = [name for c in claims for name in c.held]
    assert sorted(held) == BRANDS  # every brand, exactly once
    # the next runs renew the same brands
    again = [run(pg, me, NOW + BUCKET + timedelta(seconds=i)) for i, me in enumerate("abc")]
    assert [c.held for c in again] == [c.held for c in claims]
    assert all(c.taken == () and c.released == () for c in again)


def test_a_dead_instances_brands_are_taken_after_its_lease(pg: Engine) -> None:
    live(pg, "a", "b", "c")
    for i, me in enumerate("abc"):
        run(pg, me, NOW + timedelta(seconds=i))
    # c dies; a and b run every bucket; before c's lease ends nothing moves
    early = [run(pg, me, NOW + BUCKET + timedelta(seconds=i)) for i, me in enumerate("ab")]
    assert [len(c.held) for c in early] == [10, 10] and early[0].live == 3
    later = NOW + LEASE + timedelta(seconds=5)  # c's lease (and its detection heartbeat) ended
    first = run(pg, "a", later)
    second = run(pg, "b", later + timedelta(seconds=1))
    assert first.live == 2 and first.share == 15
    assert len(first.held) == 15 and len(second.held) == 15
    assert len(first.taken) == 5 and len(second.taken) == 5
    assert sorted(first.held + second.held) == BRANDS
    assert holders(pg, later + timedelta(seconds=2)) == {"a": 15, "b": 15}


def test_an_instance_joining_gets_its_share_from_the_others(pg: Engine) -> None:
    live(pg, "a", "b")
    a0, b0 = run(pg, "a", NOW), run(pg, "b", NOW)
    assert (len(a0.held), len(b0.held)) == (15, 15)
    leases.evaluated(pg, "a", a0.held, NOW, NOW + LEASE)
    leases.evaluated(pg, "b", b0.held, NOW, NOW + LEASE)
    joined = NOW + timedelta(seconds=30)
    live(pg, "c", at=joined)
    c0 = run(pg, "c", joined)
    assert c0.held == ()  # nothing free yet: the others hold every brand
    # the others' next runs release above the new share of 10; free a bucket after their last
    # evaluation, so c's first evaluation of one never comes within a bucket of theirs
    a1 = run(pg, "a", NOW + BUCKET)
    b1 = run(pg, "b", NOW + BUCKET)
    assert (len(a1.held), len(a1.released), len(b1.held), len(b1.released)) == (10, 5, 10, 5)
    c1 = run(pg, "c", NOW + BUCKET + timedelta(seconds=1))
    assert len(c1.held) == 10 and set(c1.taken) == set(a1.released) | set(b1.released)
    assert sorted(a1.held + b1.held + c1.held) == BRANDS


def test_released_brands_wait_a_bucket_after_their_last_evaluation(pg: Engine) -> None:
    live(pg, "a", "b")
    a0 = run(pg, "a", NOW)
    assert len(a0.held) == 15  # b has not run yet: a takes only its share
    leases.evaluated(pg, "a", a0.held, NOW, NOW + LEASE)
    live(pg, "c", at=NOW + timedelta(seconds=10))
    a1 = run(pg, "a", NOW + timedelta(seconds=20))  # an early run (late one before it)
    assert len(a1.released) == 5
    c0 = run(pg, "c", NOW + timedelta(seconds=30))
    assert not set(c0.held) & set(a1.released)  # a evaluated them 30 s ago
    assert len(c0.held) == 10  # the 15 never held
    b0 = run(pg, "b", NOW + BUCKET)
    assert set(a1.released) <= set(b0.held)  # free a bucket after a's evaluation


def test_a_clean_stop_frees_its_brands_at_once(pg: Engine) -> None:
    live(pg, "a", "b")
    a0, b0 = run(pg, "a", NOW), run(pg, "b", NOW)
    leases.release(pg, "b")
    assert holders(pg, NOW) == {"a": 15}
    a1 = run(pg, "a", NOW + timedelta(seconds=10))  # b no longer counts as live
    assert a1.live == 1 and len(a1.held) == 30 and set(a1.taken) == set(b0.held)
    assert a0.held == tuple(b for b in BRANDS if b in a0.held)


def test_concurrent_claims_never_hold_one_brand_twice(pg: Engine) -> None:
    names = [f"i{n}" for n in range(6)]
    live(pg, *names)
    results: dict[str, leases.Claim] = {}
    barrier = threading.Barrier(len(names))

    def claim(me: str) -> None:
        barrier.wait()
        results[me] = run(pg, me, NOW)

    threads = [threading.Thread(target=claim, args=(me,)) for me in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    held = [b for c in results.values() for b in c.held]
    assert len(held) == len(set(held)) == 30
    assert all(len(c.held) == 5 for c in results.values())


def test_status_shows_the_brands_each_instance_evaluates(pg: Engine, tmp_path: Path) -> None:
    from click.testing import CliRunner

    import listener.cli.ops  # noqa: F401  (registers the command)
    from listener.cli import cli

    now = datetime.now(UTC)
    live(pg, "host:1:a", "host:2:b", at=now)
    run(pg, "host:1:a", now)
    run(pg, "host:2:b", now)
    leases.release(pg, "host:2:b")  # a clean stop: nothing held any more
    config = tmp_path / "listener.toml"
    url = pg.url.render_as_string(hide_password=False)
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["status", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert {d["instance"]: d["brands"] for d in record["daemons"]} == {
        "host:1:a": 15,
        "host:2:b": 0,
    }
    result = CliRunner().invoke(cli, ["status", "--config", str(config), "--format", "table"])
    assert "daemon host:1:a: follower, 15 brands" in result.stdout
