"""Detection orchestration: configuration -> detector parameters, stored mentions -> series ->
monitor. The bridge between storage and the pure detectors (which never see either).

Rules:
- Parameters: the detectors' defaults, then ``[detection]``, then the brand's
  ``[brands.detection]``; unset keys fall through.
- A mention's voice is its author, else its domain; its story is its story id (every copy of one
  article shares it). Only negative mentions carry voices into the series.
- Replays start ``baseline_days`` before the period asked for, so that the first buckets of the
  period are judged against a real baseline; only alerts judged inside the period are reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from listener.config import BrandDetectionSettings, BrandSettings, Settings
from listener.detection import registry
from listener.detection.monitor import Judged, replay
from listener.detection.registry import REGISTRY, DetectionParams, with_overrides
from listener.detection.series import Event
from listener.models import Finding
from listener.storage import store


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
