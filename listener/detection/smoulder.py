"""Smoulder: a sustained rise of negative mentions over days, which a storm detector misses.

Rules:
- Works on the hourly roll-up. The expected count of each hour comes from the ``baseline_days``
  before the run window: a robust daily level (median or trimmed mean of daily counts, so earlier
  crises do not raise it) shaped by an hour-of-day profile for weekdays and weekends, smoothed so
  that a quiet brand's profile stays flat. With totals known, the expected negatives are at least
  the baseline negative share of the hour's total: more talk at the usual tone is no smoulder.
- A Poisson CUSUM over the last ``window_days`` tests "the rate is ``ratio`` times the expected"
  against "as expected": ``S = max(0, S + x*ln(ratio) - expected*(ratio-1))``. It fires when S
  reaches ``threshold`` (critical at ``critical_threshold``), the mentions since the rise began
  exceed the expectation by ``min_excess`` (counting at most ``per_voice_cap`` per story and per
  voice and day), and they come from ``min_stories`` stories and ``min_voices`` voices (when
  known), over at least ``min_duration``: a sudden burst is the storm detector's, not this one's.
- Hysteresis: it stays "elevated" while S is at least ``clear_fraction`` of the threshold, and
  both firing and staying elevated need the last day to run ``hold_ratio`` times the expected
  count: a finished storm that still weighs on the statistic neither holds nor reopens it.
- It needs ``min_history_days`` of history; extreme bursts in the first week are the storm's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from listener.detection import stats
from listener.detection.series import Series
from listener.models import Finding, Level


@dataclass(frozen=True, slots=True)
class SmoulderParams:
    baseline_days: int = 28
    window_days: float = 4.0
    ratio: float = 2.0
    threshold: float = 8.0
    critical_threshold: float = 20.0
    min_excess: int = 12
    min_stories: int = 3
    min_voices: int = 3
    per_voice_cap: int = 3  # mentions counted per story and per voice and day of the rise
    clear_fraction: float = 0.5
    hold_ratio: float = 1.5  # the last day must still run this far above expected
    clear_after: float = 12 * 3600.0  # seconds below the clear level before resolved
    min_duration: float = 6 * 3600.0  # seconds the rise must have lasted (sudden ones are storms)
    min_history_days: float = 7.0


def is_due(series: Series, now: int) -> bool:
    """Smoulder is judged when bucket ``now`` closes an hour of the roll-up."""
    return (now + 1) % series.per_coarse == 0


def detect_smoulder(series: Series, now: int, params: SmoulderParams) -> Finding:
    """Judge the roll-up bucket that ends with bucket ``now``, using buckets ``<= now`` only."""
    per = series.per_coarse
    last = (now + 1) // per - 1  # the last complete coarse bucket
    cpd = series.coarse_per_day
    first = (series.first_data // per) if series.first_data is not None else last + 1
    history = last - first + 1
    window = max(1, round(params.window_days * cpd))
    at = series.time_of(now + 1)
    if history < params.min_history_days * cpd or last < 0:
        return _clear(series, now, "not enough history yet")
    window = min(window, history // 2)
    run_start = last - window + 1
    base_start = max(first, run_start - params.baseline_days * cpd)
    expected = _expected(series, base_start, run_start, run_start, last + 1)
    log_ratio = math.log(params.ratio)
    cusum = 0.0
    began = run_start
    for j in range(run_start, last + 1):
        x, mu = series.coarse_negative[j], expected[j - run_start]
        cusum += x * log_ratio - mu * (params.ratio - 1)
        if cusum <= 0:
            cusum = 0.0
            began = j + 1
    began = min(began, last)
    observed = sum(series.coarse_negative[began : last + 1])
    baseline = sum(expected[began - run_start :])
    recent = min(cpd, last - run_start + 1)
    recent_observed = sum(series.coarse_negative[last - recent + 1 : last + 1])
    recent_ratio = recent_observed / max(sum(expected[-recent:]), 1e-9)
    level: Level = "clear"
    reason = ""
    if recent_ratio < params.hold_ratio:
        reason = f"the last day ran {recent_ratio:.1f}x expected, below {params.hold_ratio}x"
    elif cusum >= params.threshold:
        level = "critical" if cusum >= params.critical_threshold else "warning"
        voices = series.distinct(now, (last - began + 1) * per)
        span = (last - began + 1) * per
        cap = params.per_voice_cap * max(1, round(span / max(1, series.per_day or span)))
        effective = series.effective(now, span, cap)
        excess = (observed if effective is None else effective) - baseline
        lasted = (last - began + 1) * per * series.width.total_seconds()
        if lasted < params.min_duration:
            level = "elevated"
            needed = params.min_duration / 3600
            reason = f"held back: the rise is {lasted / 3600:.0f} h old, needs {needed:.0f} h"
        elif excess < params.min_excess:
            level = "elevated"
            reason = f"held back: {excess:.0f} more than expected, needs {params.min_excess}"
        elif voices is not None and (
            voices[0] < params.min_stories or voices[1] < params.min_voices
        ):
            level = "elevated"
            reason = (
                f"held back: {voices[0]} distinct stories and {voices[1]} distinct voices "
                f"(needs {params.min_stories} and {params.min_voices})"
            )
    elif cusum >= params.clear_fraction * params.threshold:
        level = "elevated"
    distinct = series.distinct(now, (last - began + 1) * per)
    share = expected_share = None
    if series.total is not None:
        total = sum(series.coarse_total[began : last + 1])
        share = observed / total if total else None
        expected_share = _share(series, base_start, run_start)
    return Finding(
        detector="smoulder",
        at=at,
        level=level,
        score=cusum,
        observed=observed,
        expected=baseline,
        window_start=series.time_of(began * per),
        window_end=at,
        probability=None,
        stories=distinct[0] if distinct else None,
        voices=distinct[1] if distinct else None,
        domains=distinct[2] if distinct else None,
        share=share,
        expected_share=expected_share,
        reason=reason,
    )


def _expected(
    series: Series, base_start: int, base_stop: int, start: int, stop: int
) -> list[float]:
    """Expected negatives for coarse buckets ``start..stop-1`` from the baseline period."""
    neg = series.coarse_negative
    cpd = series.coarse_per_day
    days = [float(sum(neg[d : d + cpd])) for d in range(base_start, base_stop - cpd + 1, cpd)]
    if not days:
        days = [sum(neg[base_start:base_stop]) * cpd / max(1, base_stop - base_start)]
    level = max(stats.median(days), stats.trimmed_mean(days)) / cpd  # per coarse bucket
    level = max(level, 0.5 / cpd)  # at least one mention every two days
    profile = _profile(series, base_start, base_stop, level)
    share = _share(series, base_start, base_stop)
    out = []
    for j in range(start, stop):
        value = level * profile[_slot(series, j)] if profile else level
        if share is not None:
            value = max(value, share * series.coarse_total[j])
        out.append(value)
    return out


def _slot(series: Series, coarse: int) -> tuple[bool, int]:
    cpd = series.coarse_per_day
    middle = (coarse - coarse % cpd + cpd // 2) * series.per_coarse
    return series.is_weekend(middle), coarse % cpd


def _profile(series: Series, start: int, stop: int, level: float) -> dict[tuple[bool, int], float]:
    """Relative hour-of-day profile per day kind, shrunk towards flat by a prior of 5 mentions."""
    cpd = series.coarse_per_day
    if not series.per_day or cpd < 2 or level <= 0:
        return {}
    neg = series.coarse_negative
    sums = {False: [0.0] * cpd, True: [0.0] * cpd}
    days = {False: 0, True: 0}
    offset = start % cpd
    for d0 in range(start - offset, stop - cpd + 1, cpd):
        if d0 < start:
            continue
        weekend = series.is_weekend((d0 + cpd // 2) * series.per_coarse)
        sums[weekend] = [a + b for a, b in zip(sums[weekend], neg[d0 : d0 + cpd], strict=True)]
        days[weekend] += 1
    prior = 5.0
    profile = {}
    for weekend in (False, True):
        for hour in range(cpd):
            total = sums[weekend][hour]
            mean = total / days[weekend] if days[weekend] else level
            weight = total / (total + prior)  # the data's weight grows with its mentions
            profile[(weekend, hour)] = (weight * mean + (1 - weight) * level) / level
    return profile


def _share(series: Series, start: int, stop: int) -> float | None:
    if series.total is None:
        return None
    total = sum(series.coarse_total[start:stop])
    if total < 20:
        return None
    return sum(series.coarse_negative[start:stop]) / total


def _clear(series: Series, now: int, reason: str) -> Finding:
    return Finding(
        detector="smoulder",
        at=series.time_of(now + 1),
        level="clear",
        score=0.0,
        observed=0,
        expected=0.0,
        window_start=series.time_of(now + 1),
        window_end=series.time_of(now + 1),
        reason=reason,
    )
