"""Three real daemons share detection of 30 brands on one PostgreSQL database: the leases split
the brands 10/10/10 and no brand is evaluated twice in one bucket; one daemon is killed with
SIGKILL mid-run, the two others take its brands over (15/15) and evaluate them as soon as their
bucket allows; the takeover time (kill to the last orphan's first evaluation) is printed, never
asserted. Every episode has one alert and one notification per route, whoever evaluated it.

Each brand has ten quiet days stored, and its feed (a real HTTP server on 127.0.0.1) serves a
storm of angry posts from the last minutes, so every brand opens an episode while the daemons
run. Who evaluated what is read from the daemons' debug lines ("detection run at ...").
Nothing here depends on machine speed: every wait is for a condition, with a generous deadline.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from listener.config import load_config
from listener.models import Item, Mention, Score
from listener.service.poll import source_url
from listener.storage import engine as dbengine
from listener.storage import instances, leases, store
from listener.storage.tables import Alert, Outbox

BRANDS = [f"Zorvex{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(30)]
BUCKET = 60.0  # seconds: the smallest bucket the configuration allows
DEADLINE = 900.0  # seconds to wait for any one condition (a loaded 2-core machine)
ANGRY = (
    "{b} lock opened with a pen, I want a refund",
    "Disgusting: my {b} lock is useless, bike stolen",
    "{b} support hung up on me, worst service ever",
    "Never buying {b} again, the lock is a scam",
    "{b} charged me twice and nobody answers",
)
T0 = datetime.now(UTC).replace(microsecond=0)


def storm(brand: str) -> list[tuple[datetime, str, str, str]]:
    """30 angry posts in the 5 minutes before the test started, each from someone else."""
    return [
        (
            T0 - timedelta(seconds=300 - 10 * n),
            f"{brand}-{n}",
            f"angry{n}",
            ANGRY[n % 5].format(b=brand) + f" (#{n} from {['Leeds', 'Graz', 'Lyon'][n % 3]})",
        )
        for n in range(30)
    ]


@pytest.fixture
def world() -> Iterator[tuple[str, dict[str, list[dict[str, Any]]]]]:
    hooks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            index = int(self.path.removeprefix("/feed").removesuffix(".xml"))
            items = "".join(
                f"<item><guid>{guid}</guid><link>https://forum{n % 7}.example.org/{guid}</link>"
                f"<title>{escape(words)}</title><author>{who}@x.example ({who})</author>"
                f"<pubDate>{format_datetime(when)}</pubDate></item>"
                for n, (when, guid, who, words) in enumerate(storm(BRANDS[index]))
            )
            body = f'<rss version="2.0"><channel><title>f</title>{items}</channel></rss>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                hooks[self.path].append({**data, "key": self.headers.get("Idempotency-Key")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", hooks
    server.shutdown()
    server.server_close()


def write_config(tmp_path: Path, database: str, host: str) -> Path:
    brands = "".join(f'[[brands]]\nname = "{b}"\n' for b in BRANDS)
    sources = "".join(
        f'[[sources]]\nname = "s{i}"\nurl = "http://{host}/feed{i}.xml"\ninterval = "30s"\n'
        for i in range(len(BRANDS))
    )
    routes = "".join(
        f'[[routes]]\nname = "{name}"\nurls = ["json://{host}/{name}"]\nformat = "markdown"\n'
        "max_per_hour = 1000\n"
        for name in ("chat", "ops")
    )
    path = tmp_path / "listener.toml"
    path.write_text(
        f'[database]\nurl = "{database}"\n[log]\nlevel = "debug"\nformat = "json"\n'
        f'[polling]\njitter = "1s"\nworkers = 0\n[detection]\nbucket = "{int(BUCKET)}s"\n'
        f"{brands}{sources}{routes}",
        encoding="utf-8",
    )
    return path


def fill_history(path: Path) -> None:
    """Ten quiet days per brand, stored as hourly polls of its source (so the daemons' polls
    are not the first: what they fetch is news, not backfill)."""
    settings = load_config(str(path))
    engine = dbengine.connect(settings.database.url)
    rng = random.Random(7)
    sources = [store.CatalogSource(s.name, s.kind, source_url(s)) for s in settings.sources]
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(conn, BRANDS, sources, T0 - timedelta(days=11))
        ids = {name: state.id for name, state in store.load_states(conn).items()}
    serial = 0
    for index, brand in enumerate(BRANDS):
        polls = []
        hour = T0 - timedelta(days=10)
        while hour < T0 - timedelta(hours=1):
            batch = []
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                serial += 1
                when = hour + timedelta(minutes=rng.randrange(60))
                item = Item(guid=f"h{serial}", url=f"https://site{serial % 40}.example/{serial}",
                            title=f"{brand} post {serial}", text="an ordinary day",
                            published_at=when, author=f"a{rng.randrange(300)}")  # fmt: skip
                negative = rng.random() < 0.2
                mention = Mention(item, frozenset({brand}), f"k{serial}", item.url, f"c{serial}")
                polls_mention = replace(
                    mention,
                    domain=f"site{serial % 40}.example",
                    sentiment=Score("negative" if negative else "neutral", -0.7 if negative
                                    else 0.0, 0.8, "t"),
                )  # fmt: skip
                batch.append(polls_mention)
            arrival = hour + timedelta(hours=1, minutes=5)
            polls.append(store.PollSuccess(ids[f"s{index}"], arrival, arrival, None, None,
                                           mentions=batch))  # fmt: skip
            hour += timedelta(hours=1)
        with store.transaction(engine, "test") as conn:
            store.record_successes(conn, polls)
    engine.dispose()


def start(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--config", str(path)],
            stdout=sink,
            stderr=sink,
            env={**os.environ, "LISTENER_CONFIG": ""},
        )


Run = tuple[datetime, frozenset[str]]


def runs(log: Path) -> list[Run]:
    """The detection runs a daemon logged: the run's moment and the brands it evaluated."""
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line).get("message", "")
        if not message.startswith("detection run at "):
            continue
        head, _, names = message.partition(" brands: ")
        moment = datetime.fromisoformat(head.removeprefix("detection run at ").split(": ")[0])
        out.append((moment, frozenset(n for n in names.split(", ") if n)))
    return out


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1.0)


def bucket_of(at: datetime) -> int:
    """The epoch-aligned detection bucket a moment is in."""
    return int(at.timestamp() // BUCKET)


def test_three_daemons_share_30_brands_and_take_over_after_kill_9(
    tmp_path: Path, pg_database: str, world: tuple[str, dict[str, list[dict[str, Any]]]]
) -> None:
    host, hooks = world
    path = write_config(tmp_path, pg_database, host)
    fill_history(path)
    logs = [tmp_path / f"run{i}.log" for i in range(3)]
    procs = [start(path, log) for log in logs]
    engine = dbengine.connect(pg_database)

    def held() -> dict[int, int]:
        """Brands each daemon holds a lease of now, by daemon index."""
        counts = leases.held(engine, datetime.now(UTC))
        return {
            i: sum(n for who, n in counts.items() if f":{p.pid}:" in who)
            for i, p in enumerate(procs)
        }

    try:
        # steady state: every instance has run, and the leases split the brands 10/10/10
        def settled() -> bool:
            leading = any(row.leader for row in instances.instances(engine))
            shares = sorted(held().values())
            return leading and all(runs(log) for log in logs) and shares == [10, 10, 10]

        wait_for(settled, "three instances sharing the brands")
        before = held()
        leader = next((row for row in instances.instances(engine) if row.leader), None)
        # kill a follower (delivery stays out of the picture): the one whose run began last,
        # so the kill comes while it runs or soon after
        followers = [i for i, p in enumerate(procs) if not (leader and f":{p.pid}:" in leader.id)]
        victim = max(followers, key=lambda i: runs(logs[i])[-1][0])
        pid = f":{procs[victim].pid}:"
        me = next(row.id for row in instances.instances(engine) if pid in row.id)
        orphans = {row.name for row in leases.leases(engine) if row.held_by == me}
        procs[victim].send_signal(signal.SIGKILL)
        killed = datetime.now(UTC)
        procs[victim].wait(timeout=60)
        into_run = killed - runs(logs[victim])[-1][0]
        seen = [r for log in logs for r in runs(log) if r[0] <= killed]
        last = {n: max((at for at, names in seen if n in names), default=None) for n in orphans}
        survivors = [i for i in range(3) if i != victim]

        def first_after_kill() -> dict[str, datetime]:
            return {
                brand: min(at for i in survivors for at, names in runs(logs[i])
                           if at > killed and brand in names)
                for brand in orphans
                if any(at > killed and brand in names for i in survivors
                       for at, names in runs(logs[i]))
            }  # fmt: skip

        def taken_over() -> bool:
            counts = held()
            return len(first_after_kill()) == len(orphans) and sorted(
                counts[i] for i in survivors
            ) == [15, 15]

        wait_for(taken_over, "the survivors to hold and evaluate every brand")
        firsts = first_after_kill()
        takeover = max(firsts.values()) - killed
        gaps = [bucket_of(firsts[n]) - bucket_of(at) for n, at in last.items() if at]
        after = held()
        # the survivors' next detection runs (every brand of theirs due in a later bucket)
        done = max(firsts.values())
        wait_for(
            lambda: all(any(bucket_of(at) > bucket_of(done) for at, _ in runs(logs[i]))
                        for i in survivors),
            "the survivors' runs in the next bucket",
        )  # fmt: skip

        def delivered() -> bool:  # by the leader, every 15 s
            with engine.connect() as conn:
                rows = list(conn.execute(select(Outbox.delivered_at)))
            return bool(rows) and all(row.delivered_at is not None for row in rows)

        wait_for(delivered, "every notification delivered")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
    # each brand: at most one evaluation per bucket, whoever evaluated it
    evaluations: dict[str, Counter[int]] = defaultdict(Counter)
    for log in logs:
        for at, names in runs(log):
            for name in names:
                evaluations[name][bucket_of(at)] += 1
    assert set(evaluations) == set(BRANDS)
    twice = {name: b for name, seen in evaluations.items() for b, n in seen.items() if n > 1}
    assert not twice, twice
    # one alert per episode, one notification per route and transition, each received once
    with engine.connect() as conn:
        alerts = list(conn.execute(select(Alert.id, Alert.brand_id, Alert.detector,
                                          Alert.started_at, Alert.historic)))  # fmt: skip
        rows = list(conn.execute(select(Outbox.alert_id, Outbox.kind, Outbox.route,
                                        Outbox.delivered_at)))  # fmt: skip
    engine.dispose()
    episodes = Counter((a.brand_id, a.detector, a.started_at) for a in alerts)
    per_route = Counter((r.alert_id, r.kind, r.route) for r in rows)
    fired = {r.alert_id for r in rows if r.kind == "fired"}
    news = {a.id for a in alerts if not a.historic}
    keys = {route: Counter(h["key"] for h in hooks[f"/{route}"]) for route in ("chat", "ops")}
    print(
        f"\nbrands held per instance before the kill: {before} (victim: instance {victim}); "
        f"after: { {i: after[i] for i in survivors} }; "
        f"takeover after SIGKILL: {takeover.total_seconds():.1f} s (bucket {BUCKET:.0f} s; "
        f"buckets from the victim's last evaluation to the survivors' first: "
        f"{sorted(Counter(gaps).items())}; killed {into_run.total_seconds():.1f} s after the "
        f"victim's last run began); "
        f"episodes: {len(episodes)} ({len(news)} news), "
        f"alerts per episode: {sorted(set(episodes.values()))}; "
        f"notifications per (alert, kind, route): {sorted(set(per_route.values()))}; "
        f"received: chat {len(keys['chat'])} messages, each "
        f"{sorted(set(keys['chat'].values()))} time(s); ops {len(keys['ops'])}, each "
        f"{sorted(set(keys['ops'].values()))} time(s)"
    )
    assert sorted(before.values()) == [10, 10, 10]
    assert sorted(after[i] for i in survivors) == [15, 15]
    assert episodes and set(episodes.values()) == {1}
    assert set(per_route.values()) == {1}
    assert all((alert, "fired", f"{route}#0") in per_route for alert in fired
               for route in ("chat", "ops"))  # fmt: skip
    assert news and news <= fired  # every episode that is news was announced
    for route in ("chat", "ops"):
        assert set(keys[route].values()) == {1}  # nothing received twice
        assert len(keys[route]) == sum(1 for r in rows if r.route == f"{route}#0")
    for log in logs:
        assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")
