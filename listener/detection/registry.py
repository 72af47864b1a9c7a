"""The detector registry: the one place that lists the detectors, with their parameters, detect
function and schedule.

Rules:
- Every detector is a module of ``listener.detection`` with a frozen parameter dataclass (its
  defaults are the defaults), a pure ``detect(series, now, params) -> Finding`` that looks at
  buckets ``<= now`` only, and a schedule ``is_due(series, now)`` saying which buckets it judges.
  Its entry here names them; the monitor, the replay, ``listener backtest`` (``--detector``,
  ``--<name>-<param>``), ``listener alerts silence --detector`` and the configuration's
  parameter overrides all read this table.
- ``early``: the detector may open an episode at the poll that brings the evidence, before the
  bucket's final judgement (sudden bursts); ``calibrated``: its score must also beat the brand's
  own record of daily peak scores and factors (``min_count``, ``tail_days``, ``tail_budget``,
  ``size_budget``, ``refractory``, ``refractory_margin`` parameters).
- ``inhibits``: while one of its alerts fires, the brand's alerts from other detectors of lower or
  equal severity are not notified (``[alerts] inhibit``; the storm says it all).
- ``history``: how far back a replay must start for its first judged bucket to have a baseline.
- Parameters that are durations (seconds, configured as "1h") are listed in ``durations``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from listener.detection import smoulder, storm
from listener.detection.series import Series
from listener.models import Finding


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    summary: str  # one line, for help texts
    params: type[Any]  # frozen dataclass; its defaults are the detector's defaults
    detect: Callable[[Series, int, Any], Finding]
    is_due: Callable[[Series, int], bool]  # the schedule: is bucket ``now`` judged?
    history: Callable[[Any], timedelta]  # history a replay needs before its first judged bucket
    durations: frozenset[str] = frozenset({"clear_after"})
    early: bool = False
    calibrated: bool = False
    inhibits: bool = False

    def parameter_names(self) -> list[str]:
        return [f.name for f in fields(self.params)]


def _every_bucket(series: Series, now: int) -> bool:
    return True


REGISTRY: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector(
            name="storm",
            summary="a sudden burst of negative mentions against a seasonal baseline",
            params=storm.StormParams,
            detect=storm.detect_storm,
            is_due=_every_bucket,
            history=lambda p: timedelta(days=p.baseline_days),
            durations=frozenset({"windows", "clear_after", "refractory"}),
            early=True,
            calibrated=True,
            inhibits=True,
        ),
        Detector(
            name="smoulder",
            summary="a sustained rise of negative mentions over days",
            params=smoulder.SmoulderParams,
            detect=smoulder.detect_smoulder,
            is_due=smoulder.is_due,
            history=lambda p: timedelta(days=p.baseline_days + p.window_days),
            durations=frozenset({"clear_after", "min_duration"}),
        ),
    )
}
NAMES = tuple(REGISTRY)
INHIBITORS = frozenset(name for name, spec in REGISTRY.items() if spec.inhibits)


class DetectionParams:
    """Parameters of every registered detector, and which of them run.

    ``DetectionParams(storm=StormParams(min_count=5), detectors=("storm",))``: unnamed detectors
    keep their defaults."""

    __slots__ = ("by_detector", "detectors")

    def __init__(self, detectors: tuple[str, ...] | None = None, **params: Any) -> None:
        unknown = [name for name in params if name not in REGISTRY]
        if unknown:
            raise TypeError(f"unknown detector(s): {', '.join(unknown)}")
        self.by_detector: dict[str, Any] = {
            name: params.get(name) or spec.params() for name, spec in REGISTRY.items()
        }
        self.detectors: tuple[str, ...] = tuple(detectors) if detectors else NAMES

    def of(self, name: str) -> Any:
        return self.by_detector[name]

    @property
    def storm(self) -> storm.StormParams:
        return self.by_detector["storm"]  # type: ignore[no-any-return]

    @property
    def smoulder(self) -> smoulder.SmoulderParams:
        return self.by_detector["smoulder"]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DetectionParams):
            return NotImplemented
        return (self.by_detector, self.detectors) == (other.by_detector, other.detectors)

    def __hash__(self) -> int:
        return hash((tuple(self.by_detector.items()), self.detectors))

    def __repr__(self) -> str:
        return f"DetectionParams(detectors={self.detectors!r}, {self.by_detector!r})"


def with_overrides(
    params: DetectionParams,
    overrides: dict[str, dict[str, Any]],
    detectors: tuple[str, ...] | None = None,
) -> DetectionParams:
    """``params`` with some parameters changed (``{"storm": {"min_count": 5}}``)."""
    changed = {}
    for name, values in overrides.items():
        values = dict(values)
        if "windows" in values:
            values["windows"] = tuple(values["windows"])
        changed[name] = replace(params.of(name), **values)
    merged = {name: changed.get(name, params.of(name)) for name in REGISTRY}
    return DetectionParams(detectors=detectors or params.detectors, **merged)


def history_needed(params: DetectionParams) -> timedelta:
    """The longest history any detector needs before its first judged bucket (all of them, so
    that switching one off does not move where replays start)."""
    return max(spec.history(params.of(name)) for name, spec in REGISTRY.items())
