"""Incremental detection: a state fed in pieces, trimmed, stored and restored judges exactly as one
full replay of the whole history; what changes history throws it away."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, insert, select, text

import listener.cli.queries
import listener.cli.sentiment  # noqa: F401
from listener.cli import cli
from listener.config import Settings, validate_config
from listener.detection import state as codec
from listener.detection.monitor import DetectionParams, Judged, Replay, replay
from listener.detection.series import Event
from listener.service.alert import STATES, evaluate
from listener.service.detect import (
    CACHE_BRANDS,
    States,
    detection_params,
    history_needed,
    replay_start,
    to_event,
)
from listener.storage import detection_state, store
from listener.storage import engine as dbengine
from listener.storage.sql import transaction
from listener.storage.tables import Brand, DetectionState, MentionBrand, Source, Story
from listener.storage.tables import Mention as MentionRow

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
WIDTH = timedelta(minutes=5)
LATENESS = timedelta(minutes=20)  # the default [detection] lateness
PARAMS = DetectionParams()


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def history(seed: int, days: int) -> list[Event]:
    """A brand polled every 10 minutes: a daily rhythm, bursts of anger from many voices (some
    of them one spammer), a slow rise over days, mentions that arrive hours or days late, and
    many mentions of one poll (equal arrival times). Sorted by arrival."""
    rng = random.Random(seed)
    daily = rng.choice((12, 40, 150))
    events: list[Event] = []
    n = 0

    def add(at: datetime, negative: bool, voice: str, delay: timedelta) -> None:
        nonlocal n
        n += 1
        polled = START + math.ceil((at - START) / timedelta(minutes=10)) * timedelta(minutes=10)
        story = f"s{n // rng.choice((1, 1, 3))}"
        domain = f"d{rng.randrange(40)}.example"
        events.append(Event(at, negative, story, voice, domain, polled + delay))

    rise = rng.randrange(min(12, days - 7), days - 6)
    for hour in range(days * 24):
        at0 = START + timedelta(hours=hour)
        day = hour // 24
        rate = daily / 24 * (1.6 if 8 <= hour % 24 <= 20 else 0.3)
        share = 0.15 * (2.5 if rise <= day < rise + 4 else 1.0)
        for _ in range(poisson(rng, rate)):
            at = at0 + timedelta(seconds=rng.uniform(0, 3600))
            late = timedelta(hours=rng.uniform(1, 60)) if rng.random() < 0.05 else timedelta(0)
            add(at, rng.random() < share, f"v{rng.randrange(500)}", late)
    for _ in range(rng.randrange(1, 4)):  # bursts
        at0 = START + timedelta(days=rng.uniform(8, days - 1))
        spammer = rng.random() < 0.3
        for k in range(rng.randrange(20, 80)):
            voice = "spammer" if spammer and k % 2 else f"angry{k}"
            add(at0 + timedelta(seconds=60 * k), True, voice, timedelta(0))
    events.sort(key=lambda e: e.arrived or e.at)
    return events


def key(item: Judged) -> tuple[Any, ...]:
    t = item.transition
    return (t.kind, t.detector, t.started, item.judged_at, t.severity, t.finding, t.peak)


def full(
    events: list[Event], start: datetime, end: datetime, *, every: bool = False
) -> list[tuple[Any, ...]]:
    """One replay of everything; ``every``: judging every waiting bucket early at each poll,
    also those whose counts did not change since their last early judgement (an observer sees
    every verdict, so the replay skips none)."""

    def observe(judged_at: datetime, finding: Any) -> None:
        pass

    judged = replay(events, start=start, end=end, width=WIDTH, lateness=LATENESS, params=PARAMS,
                    observe=observe if every else None)  # fmt: skip
    return [key(j) for j in judged if j.judged_at <= end]


def run_times(rng: random.Random, start: datetime, end: datetime) -> list[datetime]:
    """Runs at random times: minutes to two days apart."""
    times, t = [], start + timedelta(days=rng.uniform(0.5, 3))
    while t < end:
        times.append(t)
        t += timedelta(minutes=rng.choice((1, 5, 5, 7, 60, 300, 2880)) * rng.uniform(0.5, 1.5))
    return [*times, end]


@pytest.mark.parametrize("seed", range(6))
def test_incremental_runs_judge_every_transition_as_one_full_replay(seed: int) -> None:
    """Fed at random run times, trimmed, and round-tripped through the stored form now and
    then: every transition (kind, detector, start, time judged, severity, finding, peak) is
    the full replay's."""
    days = 45  # longer than the 34 days the detectors need: trimming happens
    events = history(seed, days)
    end = START + timedelta(days=days)
    expected = full(events, START, end)
    assert full(events, START, end, every=True) == expected  # skipping unchanged ones is exact
    rng = random.Random(seed)
    state = Replay(start=START, width=WIDTH, lateness=LATENESS, params=PARAMS)
    got: list[tuple[Any, ...]] = []
    i = 0
    for now in run_times(rng, START, end):
        batch = []
        while i < len(events) and (events[i].arrived or events[i].at) <= now:
            batch.append(events[i])
            i += 1
        got += [key(j) for j in state.feed(batch)]
        got += [key(j) for j in state.advance(now)]
        state.trim()
        if rng.random() < 0.3:  # a restart: the state as stored
            data = codec.decode(codec.encode(codec.dump(state)))
            loaded = codec.load(data, width=WIDTH, lateness=LATENESS, params=PARAMS)
            for name in ("negative", "total", "coarse_negative", "coarse_total"):
                assert getattr(loaded.series, name) == getattr(state.series, name), name
            state = loaded
    assert any(k[0] == "fired" for k in expected) or seed % 2  # the histories do fire
    assert got == expected
    assert state.series.dropped > 0
    keep, _ = state.horizons()
    assert len(state.series) <= keep + 2 * 288 + 12  # bounded: about what the detectors read


def test_trimming_changes_no_verdict_and_bounds_the_state() -> None:
    events = history(11, 60)
    end = START + timedelta(days=60)
    trimmed = Replay(start=START, width=WIDTH, lateness=LATENESS, params=PARAMS)
    kept = Replay(start=START, width=WIDTH, lateness=LATENESS, params=PARAMS)
    out: dict[str, list[tuple[Any, ...]]] = {"trimmed": [], "kept": []}
    now = START
    i = 0
    while now < end:
        now += timedelta(hours=6)
        batch = []
        while i < len(events) and (events[i].arrived or events[i].at) <= now:
            batch.append(events[i])
            i += 1
        for name, state in (("trimmed", trimmed), ("kept", kept)):
            out[name] += [key(j) for j in state.feed(batch)]
            out[name] += [key(j) for j in state.advance(now)]
        trimmed.trim()
    assert out["trimmed"] == out["kept"] == full(events, START, now)
    assert trimmed.series.dropped >= 20 * 288
    assert len(trimmed.series) < len(kept.series) - 20 * 288
    # the detail (stories, voices, domains) is kept only for the last days
    detail_days = len(trimmed.series.voices) / 288
    assert trimmed.series.detail_from > 0 and detail_days < 8


def test_a_mention_seen_after_its_arrival_was_judged_is_fed_at_the_state_position() -> None:
    state = Replay(start=START, width=WIDTH, lateness=LATENESS, params=PARAMS)
    list(state.advance(START + timedelta(days=2)))
    late = Event(START + timedelta(hours=1), True, "s", "v", "d", START + timedelta(hours=2))
    list(state.feed([late]))
    assert state.position == START + timedelta(days=2)
    assert state.series.negative[12] == 1  # counted in the bucket of its event time


def test_stored_state_refuses_what_it_did_not_write() -> None:
    with pytest.raises(ValueError, match="not a detection state"):
        codec.load({"format": 1}, width=WIDTH, lateness=LATENESS, params=PARAMS)
    with pytest.raises(ValueError, match="not a detection state"):
        codec.load({"format": 99}, width=WIDTH, lateness=LATENESS, params=PARAMS)
    a = codec.fingerprint(PARAMS, WIDTH, LATENESS, "1")
    assert a == codec.fingerprint(DetectionParams(), WIDTH, LATENESS, "1")
    assert a != codec.fingerprint(PARAMS, WIDTH, LATENESS, "2")
    assert a != codec.fingerprint(PARAMS, WIDTH, timedelta(minutes=30), "1")


# --- through the database -------------------------------------------------------------------


def settings_for(url: str, extra: str = "") -> Settings:
    raw: dict[str, Any] = {
        "database": {"url": url},
        "brands": [{"name": "Velora", "terms": ["Velora"]}],
        "sources": [{"name": "s", "url": "http://127.0.0.1:9/feed.xml"}],
    }
    if extra:
        raw["brands"][0]["detection"] = {"storm": {"min_count": int(extra)}}
    return validate_config(raw, file=Path("t.toml"), env={})


class Store:
    """Writes a history into the tables as polls would: in arrival order, ids ascending."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.n = 0
        self.stories: set[int] = set()
        with engine.begin() as conn:
            conn.execute(insert(Brand), [{"name": "Velora", "created_at": START}])
            conn.execute(
                insert(Source),
                [{"id": 1, "name": "s", "kind": "feed", "config_url": "http://x/",
                  "url": "http://x/", "consecutive_errors": 0, "created_at": START}],
            )  # fmt: skip
            self.brand = conn.execute(select(Brand.id)).scalar_one()

    def write(self, events: list[Event]) -> None:
        if not events:
            return
        mentions, links, stories = [], [], []
        for e in events:
            self.n += 1
            assert e.story is not None and e.arrived is not None
            story = int(e.story[1:]) + 1
            if story not in self.stories:
                self.stories.add(story)
                stories.append({"id": story, "url": None, "title": "t", "first_seen_at": e.at})
            mentions.append(
                {"id": self.n, "source_id": 1, "dedup_key": f"k{self.n}",
                 "content_hash": f"h{self.n}", "url": None, "canonical_url": None,
                 "guid": f"g{self.n}", "title": "Velora", "text": "Velora", "author": e.voice,
                 "published_at": e.at, "fetched_at": e.arrived, "updated_at": e.arrived,
                 "event_at": e.at, "language": "en",
                 "sentiment": "negative" if e.negative else "neutral", "story_id": story,
                 "domain": e.domain, "backfill": False}
            )  # fmt: skip
            links.append({"mention_id": self.n, "brand_id": self.brand})
        with self.engine.begin() as conn:
            if stories:
                conn.execute(insert(Story), stories)
            conn.execute(insert(MentionRow), mentions)
            conn.execute(insert(MentionBrand), links)


def detect(engine: Engine, states: States, settings: Settings, now: datetime) -> list[Judged]:
    """One brand's detection run as ``evaluate`` makes it: run, store, keep."""
    run = states.run(engine, settings, settings.brands[0], now)
    with transaction(engine, "test") as conn:
        run.save(conn, now)
    run.keep()
    return run.judged


@pytest.mark.parametrize("limit", [CACHE_BRANDS, 0], ids=["cached", "cache-bound-0"])
def test_incremental_detection_through_the_database_equals_a_full_replay(
    engine: Engine, limit: int
) -> None:
    """SQLite and PostgreSQL: mentions stored poll by poll, detection runs at random times, the
    process cache dropped now and then (a restart: the state comes from the table), or bounded
    to no brand at all (every run loads the stored copy); the transitions equal one full
    replay of the stored history from the state's start."""
    days = 40
    events = history(3, days)
    settings = settings_for(str(engine.url.render_as_string(hide_password=False)))
    rows = Store(engine)
    rng = random.Random(5)
    states = States(limit)
    got: list[tuple[Any, ...]] = []
    first: datetime | None = None
    i = 0
    end = START + timedelta(days=days)
    for now in run_times(rng, START + timedelta(days=3), end):
        batch = []
        while i < len(events) and (events[i].arrived or events[i].at) <= now:
            batch.append(events[i])
            i += 1
        rows.write(batch)
        first = first or now
        got += [key(j) for j in detect(engine, states, settings, now)]
        assert len(states.entries) <= limit
        if rng.random() < 0.25:
            states = States(limit)  # a restart, or another instance taking over
    assert first is not None
    stored = detection_state.load(engine, "Velora")
    assert stored is not None
    assert stored.fingerprint == codec.fingerprint(
        detection_params(settings, settings.brands[0]), WIDTH, LATENESS, listener_version()
    )
    origin = replay_start(first - history_needed(PARAMS))
    history_rows = store.detection_rows(engine, "Velora", since=origin)
    expected = full([to_event(r) for r in history_rows], origin, end)
    # a restarted process may judge again what a stored copy older than the run had judged:
    # identically (the plan recognises it); once each, the transitions are the full replay's
    once = list(dict.fromkeys(got))
    assert once == expected
    assert any(k[0] == "fired" for k in expected)


def test_the_state_cache_keeps_the_brands_run_most_recently() -> None:
    entry: Any = object()  # the cache never looks inside an entry
    states = States(2)
    for brand in ("a", "b", "a", "c"):
        states.keep(("db", brand), entry)
    assert list(states.entries) == [("db", "a"), ("db", "c")]  # b, kept least recently, left


def listener_version() -> str:
    from listener import __version__

    return __version__


def test_a_configuration_change_rebuilds_the_state(engine: Engine) -> None:
    rows = Store(engine)
    events = history(2, 20)
    rows.write(events)
    now = START + timedelta(days=20)
    url = str(engine.url.render_as_string(hide_password=False))
    states = States()
    first = detect(engine, states, settings_for(url), now)
    again = detect(engine, states, settings_for(url), now + timedelta(minutes=5))
    assert [k for k in map(key, again) if k[3] <= now] == []  # nothing judged twice
    before = detection_state.load(engine, "Velora")
    changed = settings_for(url, extra="4")
    rebuilt = detect(engine, states, changed, now + timedelta(minutes=10))
    after = detection_state.load(engine, "Velora")
    assert before is not None and after is not None
    assert after.fingerprint != before.fingerprint
    # rebuilt from the start: every transition of the history again, under the new parameters
    assert len(rebuilt) >= len(first) and rebuilt[0].judged_at < now - timedelta(days=1)


def test_rematch_and_rescore_forget_the_states_they_invalidate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    rows = Store(engine)
    rows.write(history(1, 12))
    settings = settings_for(url)
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[[brands]]\nname = "Velora"\nterms = ["Velora"]\n\n'
        '[[sources]]\nname = "s"\nurl = "http://127.0.0.1:9/feed.xml"\n',
        encoding="utf-8",
    )

    def states() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM detection_state")).scalar_one())

    for command in (["rematch"], ["rescore", "--brand", "Velora"]):
        detect(engine, States(), settings, START + timedelta(days=12))
        assert states() == 1
        result = CliRunner().invoke(
            cli, [*command, "--config", str(config)], env={"LISTENER_CONFIG": ""}
        )
        assert result.exit_code == 0, result.output
        assert states() == 0, command
    engine.dispose()


def test_evaluate_opens_one_alert_per_episode_with_state_kept_or_restored(
    engine: Engine,
) -> None:
    """The daemon's path: ``evaluate`` every few minutes through a storm, with the process
    cache and with a fresh one (a restarted daemon) each run, opens the same alerts, once."""
    events = history(4, 30)
    bursts = [e for e in events if e.voice and e.voice.startswith("angry")]
    assert bursts
    rows = Store(engine)
    url = str(engine.url.render_as_string(hide_password=False))
    settings = settings_for(url)
    onset = min(e.arrived or e.at for e in bursts)
    cut = onset - timedelta(hours=2)
    rows.write([e for e in events if (e.arrived or e.at) <= cut])
    evaluate(engine, settings, cut, States())
    written = cut
    restart = False
    now = cut
    while now < onset + timedelta(hours=8):
        now += timedelta(minutes=5)
        rows.write([e for e in events if written < (e.arrived or e.at) <= now])
        written = now
        evaluate(engine, settings, now, States() if restart else STATES)
        restart = not restart
    with engine.connect() as conn:
        alerts = conn.execute(text("SELECT detector, started_at FROM alerts")).all()
        rows_ = conn.execute(select(DetectionState.brand_id)).all()
    assert len(alerts) == len(set(alerts)) >= 1
    assert len(rows_) == 1


def test_retention_leaves_the_state_and_a_rebuild_uses_what_is_left(tmp_path: Path) -> None:
    from listener.storage import retention

    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    Store(engine).write(history(6, 20))
    now = START + timedelta(days=20)
    settings = settings_for(url)
    detect(engine, States(), settings, now)
    before = detection_state.load(engine, "Velora")
    pruned = retention.prune(engine, {"Velora": START + timedelta(days=10)})
    assert pruned.mentions > 0
    assert detection_state.load(engine, "Velora") == before  # the state is left alone
    detection_state.forget(engine, ["Velora"])
    rebuilt = detect(engine, States(), settings, now + timedelta(minutes=5))
    assert detection_state.load(engine, "Velora") is not None
    assert all(j.transition.started >= START + timedelta(days=10) for j in rebuilt)
    engine.dispose()
