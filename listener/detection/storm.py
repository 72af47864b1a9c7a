"""Storm: a sudden burst of negative mentions against a robust seasonal baseline.

Rules:
- The last 1, 3 and 12 buckets (5 min, 15 min, 1 h at the default width; ``windows``) are each
  compared with the same window at the same time of day on earlier days of the same kind (weekday
  or weekend) within ``baseline_days``: expected = their robust mean (clear spikes removed),
  never below the brand's long-run rate, or ``rate_floor`` of it where the brand is busy enough
  for its time-of-day profile to show (night hours of a busy brand). Earlier spikes cannot
  inflate it.
- Surprise is a negative-binomial tail probability whose spread comes from the baseline (never
  below ``min_cv`` relative noise): ``score = -log10 p``.
- When total volume is known, the expected negatives are at least the baseline odds of negative
  to other mentions times the window's other mentions: a launch that triples all mentions at the
  usual share is not a storm, while a storm's own negatives do not raise the bar.
- It fires only with at least ``min_count`` negative mentions, ``min_factor`` times the expected
  count, and ``min_stories`` distinct stories and ``min_voices`` distinct voices (when known).
  Mentions are counted at most ``per_voice_cap`` times per story and per voice: one spammer or
  one syndicated story cannot fire it, not even on top of ordinary background chatter.
- Cold start: while the brand has less than ``cold_start_days`` of history, the count floor is
  ``cold_start_count``, so ordinary first mentions stay quiet and an extreme burst still fires.
- Calibration and refractory period (``monitor``): an episode opens only when both the score
  (statistical size) and the factor observed/expected (practical size) also beat the brand's own
  record of daily peaks (``tail_days``; ``tail_budget`` for the score, ``size_budget`` for the
  factor; see ``calibrate``) and, within ``refractory`` after the last episode ended,
  ``refractory_margin`` times that episode's peak score.
- Hysteresis: after firing, the level stays "elevated" while the longest window is still at least
  ``clear_factor`` times expected; below that it is "clear".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from listener.detection import stats
from listener.detection.series import DAY, Series
from listener.models import Finding, Level


@dataclass(frozen=True, slots=True)
class StormParams:
    windows: tuple[float, ...] = (300.0, 900.0, 3600.0)  # seconds
    baseline_days: int = 28
    min_count: int = 8
    min_factor: float = 3.0
    warning_score: float = 5.0
    critical_score: float = 14.0
    critical_factor: float = 6.0
    min_stories: int = 3
    min_voices: int = 3
    min_cv: float = 0.25
    per_voice_cap: int = 3  # mentions counted per story and per voice in a window
    clear_factor: float = 1.5
    clear_after: float = 3600.0  # seconds below clear_factor before an episode is resolved
    cold_start_days: float = 7.0
    cold_start_count: int = 30
    min_history_buckets: int = 12  # before the window, before anything can be judged
    rate_floor: float = 0.5  # expected is at least this share of the long-run rate
    tail_days: int = 28  # days of the brand's own daily peak scores the score is calibrated on
    tail_budget: float = 3.0  # score: at most one episode in this many ordinary days (0: off)
    size_budget: float = 3.0  # size (factor) likewise, on the brand's daily peak factors (0: off)
    refractory: float = 86400.0  # seconds after an episode in which a new one must beat its peak
    refractory_margin: float = 2.0  # ... by this many times its score


@dataclass(frozen=True, slots=True)
class _Window:
    length: int
    observed: int  # counting at most per_voice_cap per story and per voice
    raw: int
    expected: float
    score: float
    share: float | None
    expected_share: float | None
    by_share: bool = False  # the expectation comes from the usual negative share
    judged: bool = True  # False: too little history before the window for a verdict


def window_lengths(series: Series, params: StormParams) -> list[int]:
    return list(_lengths(series.width.total_seconds(), params.windows))


@functools.lru_cache(maxsize=64)
def _lengths(width: float, windows: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(sorted({max(1, round(seconds / width)) for seconds in windows}))


def detect_storm(series: Series, now: int, params: StormParams) -> Finding:
    """Judge bucket ``now`` using buckets ``<= now`` only."""
    lengths = window_lengths(series, params)
    first = series.first_data if series.first_data is not None else now + 1
    history_days = (now - first + 1) * series.width / DAY
    cold = history_days < params.cold_start_days
    floor = params.cold_start_count if cold else params.min_count
    if series.window_sum(series.negative, now, lengths[-1]) < max(1, params.min_count // 2):
        return _finding(series, now, "clear", None, cold, "fewer negative mentions than min_count",
                        "min_count")  # fmt: skip
    windows = [_judge(series, now, length, first, floor, params) for length in lengths]
    best = max(windows, key=lambda w: w.score)
    passing = [
        w
        for w in windows
        if w.observed >= floor
        and w.observed >= params.min_factor * w.expected
        and w.score >= params.warning_score
    ]
    longest = windows[-1]
    elevated = longest.observed >= params.clear_factor * longest.expected and longest.observed > 0
    level: Level = "elevated" if elevated else "clear"
    reason, gate = "", "baseline"
    if not any(w.judged for w in windows):
        gate = "history"
        reason = "not enough history before the window to judge it yet"
    elif passing:
        best = max(passing, key=lambda w: w.score)
        voices = series.distinct(now, best.length)
        if voices is not None and (voices[0] < params.min_stories or voices[1] < params.min_voices):
            reason = (
                f"held back: {voices[0]} distinct stories and {voices[1]} distinct voices "
                f"(needs {params.min_stories} and {params.min_voices})"
            )
            gate = "stories" if voices[0] < params.min_stories else "voices"
        else:
            gate = "fired"
            critical = (
                best.score >= params.critical_score
                and best.observed >= params.critical_factor * best.expected
                and best.observed >= 2 * floor
            )
            level = "critical" if critical else "warning"
    elif best.observed < floor:
        gate = "cold_start" if cold and best.observed >= params.min_count else "min_count"
        reason = f"{best.observed} negative mentions, fewer than the {floor} needed"
        if best.raw > best.observed:
            reason = (
                f"{best.raw} negative mentions count as {best.observed} (at most "
                f"{params.per_voice_cap} per story and per voice), fewer than the {floor} needed"
            )
    elif best.by_share and best.observed < params.min_factor * best.expected:
        gate = "share"
        reason = (
            f"{best.observed} negative mentions are the usual share of all mentions "
            f"(share floor: {best.expected:.1f} expected)"
        )
    else:
        reason = f"{best.observed} negative mentions are within what the baseline explains"
    return _finding(series, now, level, best, cold, reason, gate)


def _judge(
    series: Series, now: int, length: int, first: int, floor: int, params: StormParams
) -> _Window:
    negative = series.negative
    raw = observed = series.window_sum(negative, now, length)
    if raw >= floor:  # count at most per_voice_cap per story and per voice
        effective = series.effective(now, length, params.per_voice_cap)
        observed = raw if effective is None else effective
    samples = _seasonal_samples(series, now, length, first, params)
    expected = stats.robust_mean(samples)
    rate = _long_run_rate(series, now, length, first, params)
    if rate is None:  # nothing to compare with yet: no verdict
        return _Window(length, observed, raw, float(observed), 0.0, None, None, judged=False)
    # where the brand is busy enough for its time-of-day profile to show (the long-run rate
    # expects at least ``min_count`` in the window), the seasonal samples may bring the
    # expectation below the long-run rate (night hours), down to ``rate_floor`` of it
    lowest = params.rate_floor if samples and rate * length >= params.min_count else 1.0
    expected = max(expected, lowest * rate * length, 0.05)
    share = expected_share = None
    by_share = False
    if series.total is not None:
        total = series.window_sum(series.total, now, length)
        expected_share = _baseline_share(series, now, length, params)
        share = raw / total if total else None
        if expected_share is not None and expected_share < 1:
            # the usual odds applied to the other mentions: a crisis's own negatives must not
            # raise what is expected of them
            odds = expected_share / (1 - expected_share)
            by_share = odds * (total - raw) > expected
            expected = max(expected, odds * (total - raw))
    variance = stats.spread(samples, expected, params.min_cv)
    score = stats.tail_score(observed, expected, variance)
    return _Window(length, observed, raw, expected, score, share, expected_share, by_share)


def _seasonal_samples(
    series: Series, now: int, length: int, first: int, params: StormParams
) -> list[float]:
    negative = series.negative
    per_day = series.per_day
    if per_day:
        weekend = series.is_weekend(now)
        same: list[float] = []
        other: list[float] = []
        for day in range(1, params.baseline_days + 1):
            end = now - day * per_day
            if end - length + 1 < first:
                break
            value = float(sum(negative[end - length + 1 : end + 1]))
            (same if series.is_weekend(end) == weekend else other).append(value)
        return same if len(same) >= 3 else same + other
    samples = []
    for k in range(1, params.baseline_days + 1):
        end = now - k * length
        if end - length + 1 < first:
            break
        samples.append(float(sum(negative[end - length + 1 : end + 1])))
    return samples


def _long_run_rate(
    series: Series, now: int, length: int, first: int, params: StormParams
) -> float | None:
    """Mean negative mentions per bucket before the window, over the baseline period (None while
    there is too little history before the window to say anything)."""
    lo = now - length + 1
    if lo - first < series.per_day or not series.per_day:  # under a day: count bucket by bucket
        if lo - first < params.min_history_buckets:
            return None
        return sum(series.negative[first:lo]) / (lo - first)
    per = series.per_coarse
    stop = (now - length + 1) // per  # coarse buckets wholly before the window
    start = max(first // per, stop - params.baseline_days * series.coarse_per_day)
    if stop <= start:
        return 0.0
    return sum(series.coarse_negative[start:stop]) / ((stop - start) * per)


def _baseline_share(series: Series, now: int, length: int, params: StormParams) -> float | None:
    stop = (now - length + 1) // series.per_coarse
    start = max(0, stop - params.baseline_days * series.coarse_per_day)
    total = sum(series.coarse_total[start:stop])
    if total < 20:
        return None
    return sum(series.coarse_negative[start:stop]) / total


def _finding(
    series: Series,
    now: int,
    level: Level,
    window: _Window | None,
    cold: bool,
    reason: str,
    gate: str,
) -> Finding:
    if window is None:  # the common quiet case: no evidence to describe
        end = series.time_of(now + 1)
        return Finding("storm", end, level, 0.0, series.negative[now], 0.0, end - series.width,
                       end, cold_start=cold, reason=reason, gate=gate)  # fmt: skip
    length = window.length if window else 1
    distinct = series.distinct(now, length) if window else None
    return Finding(
        detector="storm",
        at=series.time_of(now + 1),
        level=level,
        score=window.score if window else 0.0,
        observed=window.observed if window else series.negative[now],
        expected=window.expected if window else 0.0,
        window_start=series.time_of(now - length + 1),
        window_end=series.time_of(now + 1),
        probability=stats.probability(window.score) if window else None,
        stories=distinct[0] if distinct else None,
        voices=distinct[1] if distinct else None,
        domains=distinct[2] if distinct else None,
        share=window.share if window else None,
        expected_share=window.expected_share if window else None,
        cold_start=cold,
        reason=reason,
        gate=gate,
    )
