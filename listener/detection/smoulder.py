"""Smoulder: a sustained rise of negative mentions over days, which a storm detector misses.

Rules:
- Works on the hourly roll-up. The expected count of each hour comes from the ``baseline_days``
  before the run window: a robust daily level (the mean of daily counts without clear spikes,
  so earlier crises do not raise it, plus its standard error: a short baseline is uncertain)
  shaped by an hour-of-day profile for weekdays and weekends, smoothed so that a quiet brand's
  profile stays flat. With totals known, the negative share of
  the rise must also be ``share_ratio`` times the usual share: more talk at the usual tone is no
  smoulder.
- A Poisson CUSUM over the last ``window_days`` tests "the rate is ``ratio`` times the expected"
  against "as expected": ``S = max(0, S + x*ln(ratio) - expected*(ratio-1))``; a second one tests
  ``ratio**2`` (a steep rise on a quiet brand is found sooner), the larger counts. Each hour's count
  capped at ``ratio**2 * expected + 2`` so that a storm's hours cannot carry it for days after
  (a robust, Huber-style CUSUM), and each step divided by the dispersion of the baseline's daily
  counts (quasi-Poisson: a brand whose days vary more than Poisson needs more evidence). It fires
  when S
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
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from listener.detection import stats
from listener.detection.series import Series
from listener.models import Finding, Level


@dataclass(frozen=True, slots=True)
class SmoulderParams:
    baseline_days: int = 28
    window_days: float = 4.0
    ratio: float = 2.0
    threshold: float = 6.0
    critical_threshold: float = 20.0
    min_excess: int = 8
    min_stories: int = 3
    min_voices: int = 3
    per_voice_cap: int = 3  # mentions counted per story and per voice and day of the rise
    clear_fraction: float = 0.5
    hold_ratio: float = 1.5  # the last day must still run this far above expected
    share_ratio: float = 1.5  # with totals: the rise's negative share against the usual one
    clear_after: float = 12 * 3600.0  # seconds below the clear level before resolved
    min_duration: float = 24 * 3600.0  # seconds the rise must have lasted (sudden: storms)
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
        return _clear(series, now, "not enough history yet", "history")
    window = min(window, history // 2)
    run_start = last - window + 1
    base_stop = run_start - run_start % cpd  # whole days before the run: one baseline a day
    base_start = max(first, base_stop - params.baseline_days * cpd)
    expected, dispersion = _expected(series, base_start, base_stop, run_start, last + 1)
    cap = params.ratio * params.ratio
    counts = series.coarse_negative[run_start : last + 1]
    cusum, began = -1.0, run_start
    for ratio in (params.ratio, params.ratio * params.ratio):  # a doubling, and a steeper rise
        statistic, start = _cusum(counts, expected, ratio, cap, dispersion)
        if statistic > cusum:
            cusum, began = statistic, run_start + start
    began = min(began, last)
    observed = sum(series.coarse_negative[began : last + 1])
    baseline = sum(expected[began - run_start :])
    recent = min(cpd, last - run_start + 1)
    recent_observed = sum(series.coarse_negative[last - recent + 1 : last + 1])
    recent_ratio = recent_observed / max(sum(expected[-recent:]), 1e-9)
    share = expected_share = None
    if series.total is not None:
        total = sum(series.coarse_total[began : last + 1])
        share = observed / total if total else None
        expected_share = _share(series, base_start, base_stop)
    level: Level = "clear"
    reason, gate = "", "baseline"
    if recent_ratio < params.hold_ratio:
        reason = f"the last day ran {recent_ratio:.1f}x expected, below {params.hold_ratio}x"
        gate = "hold"
    elif cusum >= params.threshold:
        level = "critical" if cusum >= params.critical_threshold else "warning"
        gate = "fired"
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
            gate = "duration"
        elif excess < params.min_excess:
            level = "elevated"
            reason = f"held back: {excess:.0f} more than expected, needs {params.min_excess}"
            gate = "min_count"
        elif share is not None and expected_share and share < params.share_ratio * expected_share:
            level = "elevated"
            reason = (
                f"held back: the negative share {share:.0%} is not {params.share_ratio}x "
                f"the usual {expected_share:.0%} (more talk at the usual tone)"
            )
            gate = "share"
        elif voices is not None and (
            voices[0] < params.min_stories or voices[1] < params.min_voices
        ):
            level = "elevated"
            reason = (
                f"held back: {voices[0]} distinct stories and {voices[1]} distinct voices "
                f"(needs {params.min_stories} and {params.min_voices})"
            )
            gate = "stories" if voices[0] < params.min_stories else "voices"
    elif cusum >= params.clear_fraction * params.threshold:
        level = "elevated"
    distinct = series.distinct(now, (last - began + 1) * per)
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
        gate=gate,
    )


def _cusum(
    counts: Sequence[int], expected: list[float], ratio: float, cap: float, dispersion: float
) -> tuple[float, int]:
    """Poisson CUSUM for "``ratio`` times expected": the statistic at the end, and the offset at
    which its current run began. ``S_n = max(0, S_n-1 + step_n)`` equals ``X_n - min(0, X_k<=n)``
    for the cumulative sum X of the steps, which runs at C speed."""
    log_ratio, rise = math.log(ratio), ratio - 1
    steps = [
        (min(x, cap * mu + 2) * log_ratio - mu * rise) / dispersion  # a storm hour: a hot hour
        for x, mu in zip(counts, expected, strict=True)
    ]
    path = [0.0, *accumulate(steps)]
    lowest = min(path)
    began = len(path) - 1 - path[::-1].index(lowest)  # after the last time S was 0
    return path[-1] - lowest, began


def _expected(
    series: Series, base_start: int, base_stop: int, start: int, stop: int
) -> tuple[list[float], float]:
    """Expected negatives for coarse buckets ``start..stop-1`` from the baseline period, and the
    dispersion of daily counts (variance over mean, at least 1: Poisson)."""
    level, profile, dispersion = _baseline(series, base_start, base_stop)
    if not profile:
        return [level] * (stop - start), dispersion
    return [level * profile[_slot(series, j)] for j in range(start, stop)], dispersion


def _baseline(
    series: Series, base_start: int, base_stop: int
) -> tuple[float, dict[tuple[bool, int], float], float]:
    """Level per coarse bucket, profile and dispersion of the baseline period; cached until the
    series changes (a replay of a complete series computes each day's baseline once)."""
    key = ("smoulder", base_start, base_stop, series.edits)
    cached = series.cache.get(key)
    if cached is not None:
        return cached  # type: ignore[return-value]
    neg = series.coarse_negative
    cpd = series.coarse_per_day
    days = [float(sum(neg[d : d + cpd])) for d in range(base_start, base_stop - cpd + 1, cpd)]
    if not days:
        days = [sum(neg[base_start:base_stop]) * cpd / max(1, base_stop - base_start)]
    daily = stats.robust_mean(days)
    # judge against the level's upper standard error: a short baseline is an uncertain one
    daily += math.sqrt(max(daily, 0.5) / len(days))
    level = max(daily, 0.5) / cpd  # per coarse bucket; at least one mention every two days
    result = (level, _profile(series, base_start, base_stop, level), stats.dispersion(days))
    if len(series.cache) > 64:
        series.cache.clear()
    series.cache[key] = result
    return result


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


def _clear(series: Series, now: int, reason: str, gate: str) -> Finding:
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
        gate=gate,
    )
