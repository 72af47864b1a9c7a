"""Brand leases on a real PostgreSQL: fair shares, no brand held twice, takeover of a dead
instance's brands after its lease (evaluated by the lease job as soon as their bucket allows),
rebalance when an instance joins, release at a clean stop, and never two evaluations of one
brand in one bucket."""

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

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # the start of a bucket
BUCKET = timedelta(minutes=5)
LEASE = timedelta(seconds=150)  # half a bucket, as the daemon takes them
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
    """A detection run's claim: every brand held that is due in this bucket."""
    return leases.claim(engine, me, BRANDS, at, at + LEASE, BUCKET)


def renew(engine: Engine, me: str, at: datetime) -> leases.Claim:
    """The lease job's claim: only brands just taken over are due."""
    return leases.claim(engine, me, BRANDS, at, at + LEASE, BUCKET, due="taken")


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
    # the lease job renews the same brands
    again = [renew(pg, me, NOW + timedelta(seconds=100 + i)) for i, me in enumerate("abc")]
    assert [c.held for c in again] == [c.held for c in claims]
    assert all(c.taken == () and c.released == () for c in again)


def test_a_dead_instances_brands_are_taken_after_its_lease(pg: Engine) -> None:
    live(pg, "a", "b", "c")
    for i, me in enumerate("abc"):
        run(pg, me, NOW + timedelta(seconds=i))
    # c dies; a and b renew every few seconds; before c's lease ends nothing moves
    early = [renew(pg, me, NOW + timedelta(seconds=100 + i)) for i, me in enumerate("ab")]
    assert [len(c.held) for c in early] == [10, 10] and early[0].live == 3
    later = NOW + LEASE + timedelta(seconds=5)  # c's lease (and its detection heartbeat) ended
    first = renew(pg, "a", later)
    second = renew(pg, "b", later + timedelta(seconds=1))
    assert first.live == 2 and first.share == 15
    assert len(first.held) == 15 and len(second.held) == 15
    assert len(first.taken) == 5 and len(second.taken) == 5
    assert sorted(first.held + second.held) == BRANDS
    assert holders(pg, later + timedelta(seconds=2)) == {"a": 15, "b": 15}
    # c evaluated them in this bucket: nobody evaluates them again before the next one
    assert first.due == () and second.due == ()
    assert run(pg, "a", later + timedelta(seconds=3)).due == ()  # a ran at NOW already


def test_brands_taken_over_are_evaluated_at_once_when_their_bucket_allows(pg: Engine) -> None:
    live(pg, "a", "b", "c")
    claims = {me: run(pg, me, NOW + timedelta(seconds=100 + i)) for i, me in enumerate("abc")}
    assert [len(c.due) for c in claims.values()] == [10, 10, 10]
    # c dies; a and b renew; c's lease runs out in the next bucket
    renew(pg, "a", NOW + timedelta(seconds=200))
    renew(pg, "b", NOW + timedelta(seconds=200))
    after = NOW + timedelta(seconds=320)  # past c's lease, in the bucket after its evaluation
    a1 = renew(pg, "a", after)
    b1 = renew(pg, "b", after + timedelta(seconds=1))
    assert set(a1.due) == set(a1.taken) and len(a1.due) == 5  # evaluated by the lease job now
    assert set(b1.due) == set(b1.taken) and len(b1.due) == 5
    assert set(a1.due) | set(b1.due) == set(claims["c"].held)
    # the next renewals and the detection runs later in that bucket leave them alone
    assert renew(pg, "a", after + timedelta(seconds=10)).due == ()
    assert not set(run(pg, "a", after + timedelta(seconds=20)).due) & set(a1.due)
    # in the following bucket the detection run evaluates all 15
    renew(pg, "a", NOW + timedelta(seconds=470))
    renew(pg, "b", NOW + timedelta(seconds=470))
    assert len(run(pg, "a", NOW + timedelta(seconds=610)).due) == 15
    rows = {row.name: row for row in leases.leases(pg)}
    assert all(rows[name].evaluated_by == "a" for name in a1.held)


def test_an_instance_joining_gets_its_share_from_the_others(pg: Engine) -> None:
    live(pg, "a", "b")
    a0, b0 = run(pg, "a", NOW), run(pg, "b", NOW)
    assert (len(a0.held), len(b0.held)) == (15, 15)
    assert (len(a0.due), len(b0.due)) == (15, 15)
    joined = NOW + timedelta(seconds=30)
    live(pg, "c", at=joined)
    c0 = run(pg, "c", joined)
    assert c0.held == ()  # nothing free yet: the others hold every brand
    # the others' next claims release above the new share of 10, free at once
    a1 = renew(pg, "a", joined + timedelta(seconds=10))
    b1 = renew(pg, "b", joined + timedelta(seconds=11))
    assert (len(a1.held), len(a1.released), len(b1.held), len(b1.released)) == (10, 5, 10, 5)
    c1 = renew(pg, "c", joined + timedelta(seconds=12))
    assert len(c1.held) == 10 and set(c1.taken) == set(a1.released) | set(b1.released)
    assert sorted(a1.held + b1.held + c1.held) == BRANDS
    # a and b evaluated them in this bucket: c's first evaluation is in the next one
    assert c1.due == () and run(pg, "c", joined + timedelta(seconds=13)).due == ()
    for me in "abc":
        renew(pg, me, NOW + timedelta(seconds=160))
    assert set(renew(pg, "c", NOW + BUCKET).due) == set(c1.taken)


def test_no_brand_is_evaluated_twice_in_one_bucket(pg: Engine) -> None:
    live(pg, "a", "b")
    a0 = run(pg, "a", NOW + timedelta(seconds=5))
    assert len(a0.held) == len(a0.due) == 15  # b has not run yet: a takes only its share
    assert run(pg, "a", NOW + timedelta(seconds=6)).due == ()  # a second run in the bucket
    live(pg, "c", at=NOW + timedelta(seconds=10))
    a1 = run(pg, "a", NOW + timedelta(seconds=20))
    assert len(a1.released) == 5 and a1.due == ()
    c0 = run(pg, "c", NOW + timedelta(seconds=30))
    assert set(a1.released) <= set(c0.held)  # taken at once
    assert not set(c0.due) & set(a1.released)  # but a evaluated them in this bucket
    assert len(c0.due) == 5  # what nobody evaluated yet
    b0 = run(pg, "b", NOW + timedelta(seconds=40))
    assert len(b0.due) == 10  # b's share of what was never evaluated
    due = [name for c in (a0, c0, b0) for name in c.due]
    assert sorted(due) == BRANDS  # every brand once in this bucket
    nxt = NOW + BUCKET + timedelta(seconds=1)
    later = [run(pg, me, nxt + timedelta(seconds=i)) for i, me in enumerate("acb")]
    assert sorted(name for c in later for name in c.due) == BRANDS  # and once in the next


def test_bucket_start_is_aligned_to_the_epoch() -> None:
    at = datetime(2026, 12, 3, 12, 7, 42, tzinfo=UTC)
    assert leases.bucket_start(at, BUCKET) == datetime(2026, 12, 3, 12, 5, tzinfo=UTC)
    assert leases.bucket_start(NOW, BUCKET) == NOW


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
