"""Bench: one detection run (``listener.service.alert.evaluate``, what the daemon and
``poll --once`` run after each cycle) over N brands x 30 days of stored history, on SQLite and
PostgreSQL.

    python bench/scale.py [--brands 10,100,1000] [--volumes 1000,10000,50000]
                          [--per-day 40] [--days 30] [--db sqlite,postgres] [--runs 2]

Two series, each case on a fresh database:
- brands: N brands with --per-day mentions a day each (40 a day is the 1,200 mentions per
  brand over 30 days of the issue's measurement);
- volume: one brand with V mentions a day.

History is written straight into the tables (bulk inserts through SQLAlchemy, explicit ids),
not through the poll pipeline, so that a million rows take seconds: a daily rhythm, about 20%
negative, authors and domains from pools, stories of one to a few copies, one storm burst per
brand ten days back. The first run records past episodes as history and builds each brand's
detection state (a full replay); the following ones are steady state (nothing new since the
last run; the states are in the process's cache) and are the figure to compare; a last
"restored" run starts from a fresh cache, loading every state from the table (a restart).
PostgreSQL is the throw-away server of tests/pgserver.py (needs initdb/pg_ctl; as root it runs
as postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from listener.config import Settings, validate_config  # noqa: E402
from listener.service.alert import evaluate  # noqa: E402
from listener.service.detect import States  # noqa: E402
from listener.storage import engine as db  # noqa: E402
from listener.storage.tables import Brand, MentionBrand, Source, Story  # noqa: E402
from listener.storage.tables import Mention as MentionRow  # noqa: E402

NOW = datetime(2026, 11, 23, 12, 2, tzinfo=UTC)
CHUNK = 20_000


def settings_for(url: str, brands: list[str]) -> Settings:
    raw: dict[str, Any] = {
        "database": {"url": url},
        "brands": [{"name": name, "terms": [name]} for name in brands],
        "sources": [{"name": "bench", "url": "http://127.0.0.1:9/feed.xml"}],
    }
    return validate_config(raw, file=Path("scale.toml"), env={})


def history(
    brands: list[str], per_day: int, days: int, seed: int = 7
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(brand index, mention row without ids) for every stored mention, oldest first per brand."""
    rng = random.Random(seed)
    start = NOW - timedelta(days=days)
    span = days * 86400
    for index, _ in enumerate(brands):
        count = per_day * days
        burst_at = NOW - timedelta(days=10, hours=rng.randint(0, 12))
        burst = max(200, per_day // 2)
        for n in range(count + burst):
            if n < count:
                # a daily rhythm: more by day than by night
                while True:
                    offset = rng.random() * span
                    hour = (offset / 3600) % 24
                    if rng.random() < 0.3 + 0.7 * (8 <= hour <= 22):
                        break
                event = start + timedelta(seconds=offset)
                negative = rng.random() < 0.2
            else:  # a storm: half a day's mentions (at least 200) in an hour, mostly negative
                event = burst_at + timedelta(seconds=rng.random() * 3600)
                negative = rng.random() < 0.8
            yield (
                index,
                {
                    "event_at": event,
                    "published_at": event,
                    "fetched_at": event + timedelta(seconds=60 + rng.random() * 600),
                    "sentiment": "negative" if negative else rng.choice(("neutral", "positive")),
                    "author": f"user{rng.randrange(5000)}",
                    "domain": f"site{rng.randrange(300)}.example",
                },
            )


def fill(engine: Engine, brands: list[str], per_day: int, days: int) -> int:
    """Write the brands' history; returns the number of mentions."""
    with engine.begin() as conn:
        conn.execute(insert(Brand), [{"name": b, "created_at": NOW} for b in brands])
        conn.execute(
            insert(Source),
            [
                {
                    "id": 1,
                    "name": "bench",
                    "kind": "feed",
                    "config_url": "http://127.0.0.1:9/feed.xml",
                    "url": "http://127.0.0.1:9/feed.xml",
                    "consecutive_errors": 0,
                    "created_at": NOW - timedelta(days=days + 1),
                }
            ],
        )
        rows = conn.execute(text("SELECT name, id FROM brands"))
        brand_ids = {name: ident for name, ident in rows}  # noqa: C416 (rows, not pairs)
    ids = [brand_ids[b] for b in brands]
    mentions, links, stories = [], [], []
    total, story = 0, 0
    rng = random.Random(11)

    def flush() -> None:
        with engine.begin() as conn:
            if stories:
                conn.execute(insert(Story), stories)
            conn.execute(insert(MentionRow), mentions)
            conn.execute(insert(MentionBrand), links)
        mentions.clear()
        links.clear()
        stories.clear()

    for index, row in history(brands, per_day, days):
        total += 1
        if story == 0 or rng.random() < 0.7:  # about three copies per story on average
            story += 1
            stories.append(
                {"id": story, "url": None, "title": "story", "first_seen_at": row["event_at"]}
            )
        mentions.append(
            {
                **row,
                "id": total,
                "source_id": 1,
                "dedup_key": f"k{total}",
                "content_hash": f"h{total}",
                "url": f"https://{row['domain']}/{total}",
                "canonical_url": f"https://{row['domain']}/{total}",
                "guid": f"g{total}",
                "title": f"{brands[index]} mention {total}",
                "text": f"{brands[index]} bench text",
                "updated_at": row["fetched_at"],
                "language": "en",
                "sentiment_score": -0.5 if row["sentiment"] == "negative" else 0.1,
                "sentiment_confidence": 0.8,
                "sentiment_version": "bench",
                "story_id": story,
                "backfill": False,
            }
        )
        links.append({"mention_id": total, "brand_id": ids[index]})
        if len(mentions) >= CHUNK:
            flush()
    if mentions:
        flush()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return total


@contextlib.contextmanager
def database(kind: str, work: Path, label: str) -> Iterator[Engine]:
    if kind == "sqlite":
        engine = db.connect(f"sqlite:///{work / f'{label}.db'}")
        db.upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    assert POSTGRES is not None
    admin = db.connect(POSTGRES)
    name = f"scale_{label}".replace("-", "_")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = db.connect(POSTGRES.rsplit("/", 1)[0] + f"/{name}")
    db.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


POSTGRES: str | None = None


def case(kind: str, work: Path, label: str, brands: int, per_day: int, args: Any) -> None:
    names = [f"Brand{i:04d}" for i in range(brands)]
    with database(kind, work, label) as engine:
        began = time.perf_counter()
        total = fill(engine, names, per_day, args.days)
        filled = time.perf_counter() - began
        settings = settings_for(str(engine.url), names)
        times = []
        for run in range(args.runs):
            began = time.perf_counter()
            result = evaluate(engine, settings, NOW + timedelta(minutes=5 * run))
            times.append(time.perf_counter() - began)
        steady = min(times[1:]) if len(times) > 1 else times[0]
        # a restarted daemon (or another instance): the states come from the table
        began = time.perf_counter()
        evaluate(engine, settings, NOW + timedelta(minutes=5 * args.runs), States())
        restored = time.perf_counter() - began
        print(
            f"{kind:8s} {brands:5d} brands x {per_day:6d}/day x {args.days}d = {total:8d} "
            f"mentions (written in {filled:5.1f} s): first run {times[0]:7.2f} s, "
            f"steady run {steady:7.2f} s = {steady / brands:6.3f} s per brand, "
            f"restored run {restored:7.2f} s ({result.historic} past episodes)",
            flush=True,
        )


def main() -> None:
    global POSTGRES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brands", default="10,100,1000", help="brand counts ('' for none)")
    parser.add_argument("--volumes", default="1000,10000,50000", help="mentions a day, one brand")
    parser.add_argument("--per-day", type=int, default=40, help="mentions a day per brand")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres or both: sqlite,postgres")
    parser.add_argument("--runs", type=int, default=2, help="detection runs per case (>= 2)")
    args = parser.parse_args()
    counts = [int(n) for n in args.brands.split(",") if n]
    volumes = [int(n) for n in args.volumes.split(",") if n]
    work = Path(tempfile.mkdtemp(prefix="listener-scale-"))
    with contextlib.ExitStack() as stack:
        for kind in args.db.split(","):
            if kind == "postgres" and POSTGRES is None:
                import pgserver

                reason = pgserver.available()
                if reason:
                    print(f"postgres: skipped ({reason})")
                    continue
                POSTGRES = stack.enter_context(pgserver.server())
            for n in counts:
                case(kind, work, f"{kind}-b{n}", n, args.per_day, args)
            for volume in volumes:
                case(kind, work, f"{kind}-v{volume}", 1, volume, args)


if __name__ == "__main__":
    main()
