"""Bench: where the CPU of ingest goes, stage by stage, in one process (no HTTP, no workers).

    python bench/ingest_stages.py [--feeds 200] [--entries 50] [--match-share 1] [--profile N]
                                  [--dump PATH] [--check PATH]

Builds the bench feeds of feedserver.py in memory, then times on them: feed parsing, matching,
language detection, sentiment, the dedup/story keys (fingerprint), and the database write
(``storage.ingest`` into a fresh SQLite file, one poll per batch as the writer groups them).
Prints CPU seconds, items (or mentions) per CPU second and CPU microseconds each, per stage;
--profile N prints the N most expensive functions of a cProfile run of the whole parse + store
path.
--dump PATH writes every mention of the parse(all) stage (all its fields, sentiment and
fingerprint included) and every stored mention and story row as JSON lines; --check PATH
compares them with such a file (written by another version of the code) and exits 1, naming
the first difference, when they differ: a speed change must not change any output.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import pstats
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from feedserver import BRANDS, make_feed  # noqa: E402
from sqlalchemy import text  # noqa: E402

from listener.checks import BrandRule  # noqa: E402
from listener.enrichment.language import detect  # noqa: E402
from listener.matching import Matcher, parse_query, terms_query  # noqa: E402
from listener.matching.stories import fingerprint  # noqa: E402
from listener.service.parse import document, load_scorer, parse, score  # noqa: E402
from listener.sources import feed  # noqa: E402
from listener.storage import engine as db  # noqa: E402
from listener.storage import store  # noqa: E402


def brands() -> list[BrandRule]:
    return [(name, parse_query(terms_query([name], [])), (), ()) for name in BRANDS]


def _plain(value: object) -> object:
    """JSON for what json cannot write: brand sets sorted, times as strings."""
    return sorted(value) if isinstance(value, frozenset) else str(value)


def outputs(parsed_docs: list[Any], engine: Any) -> list[str]:
    """Every output of parse and store, one JSON line each (times as ISO strings)."""
    lines = [
        json.dumps(dataclasses.asdict(m), default=_plain, sort_keys=True)
        for d in parsed_docs
        for m in d.mentions
    ]
    with engine.connect() as conn:
        for table in ("mentions", "stories", "mention_brands"):
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))
            lines += [json.dumps([table, *row], default=_plain) for row in rows]
    return lines


def compare(expected: list[str], got: list[str]) -> None:
    """Exit 1 at the first line that differs from the reference file."""
    for number, (want, have) in enumerate(zip(expected, got, strict=False), 1):
        if want != have:
            sys.exit(f"check: line {number} differs\n  was {want[:400]}\n  now {have[:400]}")
    if len(expected) != len(got):
        sys.exit(f"check: {len(got)} outputs, the reference has {len(expected)}")
    print(f"check: all {len(got)} outputs (mentions, stored rows, stories) are identical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--match-share", type=float, default=1.0)
    parser.add_argument("--profile", type=int, default=0, help="print the N top functions")
    parser.add_argument("--dump", type=Path, help="write every output as JSON lines")
    parser.add_argument("--check", type=Path, help="compare every output with a --dump file")
    args = parser.parse_args()
    rng = random.Random(42)
    bodies = [make_feed(i, args.entries, rng, args.match_share) for i in range(args.feeds)]
    matcher = Matcher(brands())
    started = time.perf_counter()
    scorer = load_scorer(("builtin", None))
    detect("warm up the language model", None)
    print(f"load: sentiment + language models {time.perf_counter() - started:.2f} s")

    def timed(label: str, count: int, work: object) -> object:
        begun = time.process_time()  # CPU time: the machine may be shared and loaded
        result = work()  # type: ignore[operator]
        took = time.process_time() - begun
        each = took / count * 1e6
        print(f"{label:12s} {took:6.2f} s CPU {count / took:9.0f} /s {each:6.0f} us each")
        return result

    url = "https://site.example/feed.xml"
    parsed = timed(
        "parse",
        len(bodies) * args.entries,
        lambda: [feed.parse_feed(b, url=url, content_type="application/rss+xml") for b in bodies],
    )
    items = [(f"feed-{i}", item) for i, p in enumerate(parsed) for item in p.items]  # type: ignore[attr-defined]
    matched = timed(
        "match",
        len(items),
        lambda: [(s, it, matcher.match(document(it, s))) for s, it in items],
    )
    hits = [(s, it, b) for s, it, b in matched if b]  # type: ignore[attr-defined]
    timed(
        "language",
        len(hits),
        lambda: [detect(f"{it.title}\n{it.text}", it.language) for _, it, _ in hits],
    )
    timed("sentiment", len(hits), lambda: [score(scorer, it, b) for _, it, b in hits])
    timed("fingerprint", len(hits), lambda: [fingerprint(it.title, it.text) for _, it, _ in hits])
    parsed_docs = timed(
        "parse(all)",
        len(bodies) * args.entries,
        lambda: [
            parse(matcher, scorer, f"feed-{i}", b, url, "application/rss+xml")
            for i, b in enumerate(bodies)
        ],
    )
    mentions = sum(len(d.mentions) for d in parsed_docs)  # type: ignore[attr-defined]
    work = Path(tempfile.mkdtemp(prefix="listener-ingest-"))
    engine = db.connect(f"sqlite:///{work / 'bench.db'}")
    db.upgrade(engine)
    now = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    with engine.begin() as conn:
        store.sync_catalog(
            conn,
            BRANDS,
            [store.CatalogSource(f"feed-{i}", "feed", f"http://h/{i}") for i in range(args.feeds)],
            now,
        )
        ids = {s.name: s.id for s in store.load_states(conn).values()}

    def write() -> None:
        batches = [
            store.Batch(ids[f"feed-{i}"], d.mentions, now)
            for i, d in enumerate(parsed_docs)  # type: ignore[arg-type]
        ]
        for start in range(0, len(batches), 20):  # the writer groups ~20 polls a transaction
            with engine.begin() as conn:
                store.ingest(conn, batches[start : start + 20])

    timed("store", mentions, write)
    if args.dump or args.check:
        lines = outputs(parsed_docs, engine)  # type: ignore[arg-type]
        if args.dump:
            args.dump.write_text("".join(line + "\n" for line in lines))
        if args.check:
            compare(args.check.read_text().splitlines(), lines)
    if args.profile:
        engine2 = db.connect(f"sqlite:///{work / 'profile.db'}")
        db.upgrade(engine2)
        with engine2.begin() as conn:
            store.sync_catalog(
                conn,
                BRANDS,
                [
                    store.CatalogSource(f"feed-{i}", "feed", f"http://h/{i}")
                    for i in range(args.feeds)
                ],
                now,
            )
        profile = cProfile.Profile()
        profile.enable()
        out = [
            parse(matcher, scorer, f"feed-{i}", b, url, "application/rss+xml")
            for i, b in enumerate(bodies)
        ]
        for start in range(0, len(out), 20):
            with engine2.begin() as conn:
                store.ingest(
                    conn,
                    [
                        store.Batch(ids[f"feed-{i}"], d.mentions, now)
                        for i, d in enumerate(out[start : start + 20], start)
                    ],
                )
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
