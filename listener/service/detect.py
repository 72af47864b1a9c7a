"""Detection orchestration: configuration -> detector parameters, stored mentions -> series ->
monitor, and each brand's detection state kept between runs. The bridge between storage and
the pure detectors (which never see either).

Rules:
- Parameters: the detectors' defaults, then ``[detection]``, then the brand's
  ``[brands.detection]``; unset keys fall through.
- A mention's voice is its author, else its domain; its story is its story id (every copy of one
  article shares it). Only negative mentions carry voices into the series.
- Replays start ``baseline_days`` before the period asked for, so that the first buckets of the
  period are judged against a real baseline; only alerts judged inside the period are reported.

Incremental detection (``States``, what the daemon runs):
- A brand's state (``detection.monitor.Replay``) lives in this process's cache (``States``) and
  in the ``detection_state`` table. A run takes it from the cache when the stored row is still
  the one this process wrote last (else another instance or a command changed it), else loads
  it from the table, else (missing, unreadable, or its fingerprint no longer matches the
  parameters, bucket width, lateness and listener version) rebuilds it by the full replay of
  ``replay_start(now - history_needed)`` as before. It then feeds the brand's mentions stored
  since (the cursor), judges what is due by ``now``, forgets whole days no detector reads, and
  hands over only the transitions judged in this run. Verdicts equal one full replay from the
  state's start (tests/test_incremental.py).
- The cursor: mention ids are not commit-ordered on PostgreSQL with concurrent writers. Mentions
  are read by link id above ``floor``; the ids above it already fed are kept (``seen``) and
  skipped. ``floor`` moves up to the highest id seen ``OVERLAP`` ago: a mention whose
  transaction commits more than that after a later one was read is missed until the next
  rebuild.
- One deviation from a full replay: a mention that becomes visible after the state has judged
  past its arrival is fed at the state's position (as if it had arrived then).
- The stored copy is written in the brand's apply transaction when the run judged a transition,
  rebuilt the state, or the copy is ``SAVE_EVERY`` old: re-feeding an older copy judges the same
  transitions again, which the plan recognises (episode keys), so it need not be newer. The
  cache takes the state back only after that transaction committed (``Run.keep``): a failed
  apply starts the next run from the stored copy.
- The cache holds the ``CACHE_BRANDS`` brands run most recently; a brand it dropped is loaded
  from its stored copy (which may be older than the dropped one: as after a restart).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from listener import __version__
from listener.config import BrandDetectionSettings, BrandSettings, Settings
from listener.detection import registry
from listener.detection import state as codec
from listener.detection.monitor import Judged, Replay, replay
from listener.detection.registry import REGISTRY, DetectionParams, with_overrides
from listener.detection.series import Event
from listener.models import Finding
from listener.storage import detection_state as db
from listener.storage import store

log = logging.getLogger(__name__)


def detection_params(settings: Settings, brand: BrandSettings | None = None) -> DetectionParams:
    """The parameters for one brand (or the global ones)."""
    layers: list[BrandDetectionSettings] = [settings.detection]
    if brand is not None:
        layers.append(brand.detection)
    params = DetectionParams()
    for layer in layers:
        overrides = {name: getattr(layer, name).model_dump(exclude_none=True) for name in REGISTRY}
        params = with_overrides(params, overrides, layer.detectors)
    return params


def apply_overrides(
    params: DetectionParams,
    overrides: dict[str, dict[str, Any]],
    detectors: tuple[str, ...] | None = None,
) -> DetectionParams:
    """``params`` with ``{"storm": {"min_count": 5}, ...}`` applied (see the registry)."""
    return with_overrides(params, overrides, detectors)


def parameter_names() -> dict[str, list[str]]:
    """Every tunable parameter, per detector (for CLI options and docs)."""
    return {name: spec.parameter_names() for name, spec in REGISTRY.items()}


def to_event(row: store.DetectionRow) -> Event:
    return Event(
        at=row.event_at,
        negative=row.negative,
        story=str(row.story_id) if row.story_id is not None else None,
        voice=row.author.casefold() if row.author else row.domain,
        domain=row.domain,
        arrived=row.fetched_at,
    )


@dataclass(frozen=True, slots=True)
class Backtest:
    brand: str
    start: datetime  # of the replay, including the baseline lead-in
    since: datetime
    until: datetime
    mentions: int
    alerts: list[Judged]
    # with explain: the latest judgement of every window judged in the period (early, or final)
    verdicts: list[tuple[datetime, Finding]] = field(default_factory=list)


def backtest(
    engine: Engine,
    settings: Settings,
    brand: BrandSettings,
    *,
    since: datetime,
    until: datetime,
    params: DetectionParams | None = None,
    explain: bool = False,
) -> Backtest:
    """Replay the brand's stored history through its detectors, as the daemon would have judged
    it bucket by bucket; returns the transitions judged in ``[since, until)``."""
    params = params or detection_params(settings, brand)
    width = timedelta(seconds=settings.detection.bucket)
    start = replay_start(since - history_needed(params))
    rows = store.detection_rows(engine, brand.name, since=start, until=until)
    latest: dict[tuple[str, datetime], tuple[datetime, Finding]] = {}

    def observe(judged_at: datetime, finding: Finding) -> None:
        if since <= judged_at:
            latest[(finding.detector, finding.at)] = (judged_at, finding)

    judged = replay(
        (to_event(row) for row in rows),
        start=start,
        end=until,
        width=width,
        lateness=timedelta(seconds=settings.detection.lateness),
        params=params,
        observe=observe if explain else None,
    )
    alerts = list(_inside(judged, since))
    verdicts = sorted(latest.values(), key=lambda v: (v[1].at, v[1].detector))
    return Backtest(
        brand=brand.name,
        start=start,
        since=since,
        until=until,
        mentions=len(rows),
        alerts=alerts,
        verdicts=verdicts,
    )


def _inside(judged: Iterator[Judged], since: datetime) -> Iterator[Judged]:
    for item in judged:
        if item.judged_at >= since:
            yield item


def history_needed(params: DetectionParams) -> timedelta:
    """How far before the first judged bucket a replay starts: the longest history any
    detector needs (see the registry), and two days of margin (judgements lag the bucket by
    ``lateness``)."""
    return registry.history_needed(params) + timedelta(days=2)


def replay_start(when: datetime) -> datetime:
    """Midnight UTC of ``when``'s day: replays that start there judge the same buckets and the
    same hours (smoulder's roll-up) whenever they run, so their verdicts agree."""
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


OVERLAP = timedelta(hours=1)
SAVE_EVERY = timedelta(minutes=15)
CACHE_BRANDS = 200  # detection states a process keeps between runs (``States``)


@dataclass
class Cursor:
    """Which of the brand's mentions the state holds (see the module docstring)."""

    floor: int = 0
    seen: set[int] = field(default_factory=set)
    marks: list[tuple[datetime, int]] = field(default_factory=list)  # (run time, highest id)

    def took(self, rows: list[store.DetectionRow], now: datetime) -> None:
        self.seen.update(row.mention_id for row in rows)
        top = max([self.floor, *self.seen, *(m for _, m in self.marks)])
        self.marks.append((now, top))
        old = [m for at, m in self.marks if at <= now - OVERLAP]
        if old:
            self.floor = max(self.floor, *old)
            self.marks = [(at, m) for at, m in self.marks if at > now - OVERLAP]
            self.seen = {i for i in self.seen if i > self.floor}

    @classmethod
    def of(cls, rows: list[store.DetectionRow], now: datetime) -> Cursor:
        """The cursor of a state rebuilt from ``rows`` (all of the brand's, fetched by now)."""
        floor = max((r.mention_id for r in rows if r.fetched_at <= now - OVERLAP), default=0)
        top = max((r.mention_id for r in rows), default=0)
        return cls(floor, {r.mention_id for r in rows if r.mention_id > floor}, [(now, top)])

    def encode(self) -> str:
        marks = [[at.isoformat(), m] for at, m in self.marks]
        return json.dumps({"floor": self.floor, "seen": sorted(self.seen), "marks": marks})

    @classmethod
    def decode(cls, text: str) -> Cursor:
        data = json.loads(text)
        marks = [(datetime.fromisoformat(at), int(m)) for at, m in data["marks"]]
        return cls(int(data["floor"]), {int(i) for i in data["seen"]}, marks)


@dataclass
class _Entry:
    replay: Replay
    cursor: Cursor
    fingerprint: str
    stored: tuple[str, datetime, datetime] | None  # the stored row as this process wrote it
    saved_at: datetime | None  # of the stored copy


@dataclass
class Run:
    """One brand's detection run: its transitions, and the state to store and keep."""

    brand: str
    judged: list[Judged]
    _states: States
    _key: tuple[str, str]
    _entry: _Entry
    _save: bool

    @property
    def saving(self) -> bool:
        """Whether ``save`` writes the state this time."""
        return self._save

    def save(self, conn: Connection, now: datetime) -> None:
        """Store the state in the caller's transaction, when due (see the module docstring)."""
        if not self._save:
            return
        entry = self._entry
        blob = zlib.compress(codec.encode(codec.dump(entry.replay)), 1)
        judged_until = entry.replay.position or now
        db.save(conn, self.brand, fingerprint=entry.fingerprint, cursor=entry.cursor.encode(),
                judged_until=judged_until, state=blob, now=now)  # fmt: skip
        entry.stored, entry.saved_at = (entry.fingerprint, judged_until, now), now

    def keep(self) -> None:
        """The run's transitions are applied: the next run continues from here."""
        self._states.keep(self._key, self._entry)


class States:
    """The detection states this process holds, by database and brand: the ``limit`` brands
    run most recently (a state is ~170 KB; a thousand brands would hold ~170 MB). The state of
    a brand dropped from here is loaded from its stored copy at its next run."""

    def __init__(self, limit: int = CACHE_BRANDS) -> None:
        self.entries: dict[tuple[str, str], _Entry] = {}  # least recently kept first
        self.limit = limit

    def keep(self, key: tuple[str, str], entry: _Entry) -> None:
        self.entries.pop(key, None)
        self.entries[key] = entry
        while len(self.entries) > self.limit:
            del self.entries[next(iter(self.entries))]

    def run(self, engine: Engine, settings: Settings, brand: BrandSettings, now: datetime) -> Run:
        """Detection for one brand at ``now`` (see the module docstring)."""
        params = detection_params(settings, brand)
        width = timedelta(seconds=settings.detection.bucket)
        lateness = timedelta(seconds=settings.detection.lateness)
        fingerprint = codec.fingerprint(params, width, lateness, __version__)
        key = (engine.url.render_as_string(hide_password=True), brand.name)
        entry = self.entries.pop(key, None)  # taken out: kept back after the apply
        marker = db.marker(engine, brand.name)
        if entry is not None and (entry.fingerprint != fingerprint or entry.stored != marker):
            entry = None  # changed elsewhere, or by another configuration
        stored = db.load(engine, brand.name) if entry is None and marker is not None else None
        if stored is not None and stored.fingerprint == fingerprint:
            try:
                replay = codec.load(
                    codec.decode(zlib.decompress(stored.state)),
                    width=width, lateness=lateness, params=params,
                )  # fmt: skip
                cursor = Cursor.decode(stored.cursor)
            except (ValueError, KeyError, TypeError, zlib.error) as exc:
                log.warning("detection state of %s unreadable, rebuilding: %s", brand.name, exc)
            else:
                stamp = (stored.fingerprint, stored.judged_until, stored.updated_at)
                entry = _Entry(replay, cursor, fingerprint, stamp, stored.updated_at)
        if entry is not None and entry.replay.position is not None and now < entry.replay.position:
            entry = None  # the clock went back: judge afresh
        if entry is None:
            start = replay_start(now - history_needed(params))
            replay = Replay(start=start, width=width, lateness=lateness, params=params)
            entry = _Entry(replay, Cursor(), fingerprint, marker, None)
            rows = [
                row
                for row in store.detection_rows(engine, brand.name, since=start)
                if row.fetched_at <= now
            ]
            rebuilt = True
        else:
            rows = db.new_rows(engine, brand.name, after=entry.cursor.floor, until=now)
            rows = [row for row in rows if row.mention_id not in entry.cursor.seen]
            rebuilt = False
        replay = entry.replay
        judged = list(replay.feed(to_event(row) for row in rows))
        judged += replay.advance(now)
        replay.trim()
        if rebuilt:
            entry.cursor = Cursor.of(rows, now)
        else:
            entry.cursor.took(rows, now)
        due = entry.saved_at is None or now - entry.saved_at >= SAVE_EVERY
        return Run(brand.name, judged, self, key, entry, rebuilt or bool(judged) or due)
