"""Detectors as pure functions: tail probabilities, storm and smoulder shapes, episodes, and the
properties every detector must keep (flat and seasonal series never alert; decisions are causal;
resolved never precedes firing)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listener.detection import stats
from listener.detection.episodes import Transition
from listener.detection.monitor import DetectionParams, explain, run
from listener.detection.series import Event, Series
from listener.detection.storm import StormParams, detect_storm

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
FIVE = timedelta(minutes=5)
HOUR = timedelta(hours=1)


def brute_tail(k: int, pmf: list[float]) -> float:
    return -math.log10(max(1e-300, 1.0 - sum(pmf[:k])))


@pytest.mark.parametrize(("k", "mean"), [(5, 1.0), (10, 2.0), (30, 12.0), (3, 0.2)])
def test_poisson_tail_matches_a_direct_sum(k: int, mean: float) -> None:
    pmf = [math.exp(-mean) * mean**x / math.factorial(x) for x in range(k)]
    assert stats.tail_score(k, mean, mean) == pytest.approx(brute_tail(k, pmf), rel=1e-6)


@pytest.mark.parametrize(("k", "mean", "variance"), [(20, 5.0, 15.0), (40, 10.0, 60.0)])
def test_negative_binomial_tail_matches_a_direct_sum(k: int, mean: float, variance: float) -> None:
    r = mean * mean / (variance - mean)
    p = r / (r + mean)
    pmf = [
        math.exp(math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1)) * p**r * (1 - p) ** x
        for x in range(k)
    ]
    assert stats.tail_score(k, mean, variance) == pytest.approx(brute_tail(k, pmf), rel=1e-6)
    assert stats.tail_score(k, mean, variance) < stats.tail_score(
        k, mean, mean
    )  # wider: less surprise


def test_robust_baseline_ignores_an_earlier_spike() -> None:
    samples = [3.0, 4.0, 2.0, 3.0, 500.0, 3.0, 4.0]
    assert stats.median(samples) == 3.0


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def noisy_series(days: int, rate: float, seed: int = 1) -> list[int]:
    """Negative mentions per 5 minutes with a daily profile and weekend dips."""
    rng = random.Random(seed)
    values = []
    for i in range(days * 288):
        t = START + i * FIVE
        lam = rate * (1 + 0.6 * math.sin((t.hour - 6) / 24 * 2 * math.pi))
        lam *= 0.5 if t.weekday() >= 5 else 1.0
        values.append(poisson(rng, lam))
    return values


def fired(transitions: list[Transition]) -> list[Transition]:
    return [t for t in transitions if t.kind == "fired"]


def test_storm_fires_within_two_buckets_of_a_gentle_onset_and_resolves() -> None:
    values = noisy_series(35, 0.4)
    onset = 30 * 288 + 150  # day 30, 12:30
    for j in range(36):  # nothing, then hundreds within hours: 4, 7, 10, ... per 5 minutes
        values[onset + j] += min(60, 4 + 3 * j)
    transitions = list(run(Series.from_counts(START, FIVE, values), DetectionParams()))
    storms = [t for t in transitions if t.detector == "storm"]
    assert [t.kind for t in storms][:1] == ["fired"]
    # 4 mentions on ~0.6 expected are not yet evidence; 4 + 7 + 10 are
    assert onset <= storms[0].index <= onset + 2
    assert any(t.kind == "resolved" for t in storms)
    assert not [t for t in fired(transitions) if t.index < onset]  # no false alarm before
    assert "expected" in explain(storms[0].finding)


def test_slow_burn_fires_smoulder_but_not_storm() -> None:
    rng = random.Random(7)
    days = 50
    values = [0] * (days * 288)
    onset_day = 40
    for day in range(days):
        extra = 0 if day < onset_day else round(1.5 * 1.35 ** (day - onset_day))
        for _ in range(poisson(rng, 3.0) + extra):  # a few negative mentions a day, then more
            values[day * 288 + rng.randrange(288)] += 1
    transitions = list(run(Series.from_counts(START, FIVE, values), DetectionParams()))
    smoulders = [t for t in fired(transitions) if t.detector == "smoulder"]
    assert smoulders, "the slow burn was missed"
    first = smoulders[0].index / 288
    assert onset_day < first < onset_day + 6
    assert not [t for t in fired(transitions) if t.index < onset_day * 288]


def test_one_voice_cannot_fire_a_storm_but_many_can() -> None:
    def burst(voices: int) -> list[Transition]:
        series = Series(START, FIVE)
        rng = random.Random(3)
        for i in range(20 * 288):  # background: ~0.2 negative, 1 mention per bucket
            when = START + i * FIVE
            for n in range(poisson(rng, 1.0)):
                series.add(Event(when, rng.random() < 0.2, f"s{i}-{n}", f"v{rng.randrange(500)}"))
        at = START + (15 * 288 + 100) * FIVE
        for n in range(60):
            series.add(Event(at, True, f"spam{n}", f"voice{n % voices}", f"d{n % voices}"))
        series.extend_to(20 * 288 - 1)
        return [t for t in run(series, DetectionParams()) if t.kind == "fired"]

    assert burst(voices=1) == []
    many = burst(voices=30)
    assert many and many[0].detector == "storm"
    assert many[0].finding.voices is not None and many[0].finding.voices >= 30


def test_a_launch_at_the_usual_negative_share_is_not_a_storm() -> None:
    rng = random.Random(5)
    days = 20
    total, negative = [], []
    for i in range(days * 288):
        n = poisson(rng, 2.0) * (8 if 15 * 288 + 100 <= i < 15 * 288 + 244 else 1)
        total.append(n)
        negative.append(sum(rng.random() < 0.15 for _ in range(n)))
    series = Series.from_counts(START, FIVE, negative, total)
    assert fired(list(run(series, DetectionParams()))) == []
    # the same negative counts without the total would look like a storm
    alone = Series.from_counts(START, FIVE, negative)
    assert fired(list(run(alone, DetectionParams())))


def test_cold_start_stays_quiet_on_ordinary_mentions_but_catches_an_extreme_burst() -> None:
    values = noisy_series(5, 0.8, seed=11)
    assert fired(list(run(Series.from_counts(START, FIVE, values), DetectionParams()))) == []
    values[3 * 288 + 40] += 80
    found = fired(list(run(Series.from_counts(START, FIVE, values), DetectionParams())))
    assert found and found[0].finding.cold_start


def test_one_row_short_of_history_no_verdict() -> None:
    series = Series.from_counts(START, FIVE, [50, 50, 50])
    finding = detect_storm(series, 2, StormParams())
    assert not finding.firing


# -- properties -------------------------------------------------------------------------------

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(value=st.integers(0, 400), days=st.integers(1, 40))
def test_a_flat_series_never_alerts(value: int, days: int) -> None:
    series = Series.from_counts(START, HOUR, [value] * (days * 24))
    assert list(run(series, DetectionParams())) == []


@SLOW
@given(
    base=st.floats(0.5, 300),
    amplitude=st.floats(0, 0.9),
    weekend=st.floats(0.2, 1.0),
    width=st.sampled_from([FIVE * 3, HOUR, timedelta(days=1)]),
)
def test_a_purely_seasonal_series_never_alerts(
    base: float, amplitude: float, weekend: float, width: timedelta
) -> None:
    count = int(timedelta(days=42) / width)
    values = []
    for i in range(count):
        t = START + i * width
        day = weekend if t.weekday() >= 5 else 1.0
        values.append(round(base * day * (1 + amplitude * math.sin(t.hour / 24 * 2 * math.pi))))
    assert list(run(Series.from_counts(START, width, values), DetectionParams())) == []


series_values = st.lists(st.integers(0, 6), min_size=24 * 12, max_size=24 * 20).flatmap(
    lambda base: st.tuples(
        st.just(base), st.integers(0, len(base) - 1), st.integers(0, 200), st.integers(1, 30)
    )
)


@SLOW
@given(case=series_values, cut=st.floats(0.1, 0.95))
def test_decisions_are_causal(case: tuple[list[int], int, int, int], cut: float) -> None:
    base, at, size, length = case
    values = list(base)
    for j in range(at, min(len(values), at + length)):
        values[j] += size  # a burst somewhere, so that there is something to decide
    full = list(run(Series.from_counts(START, HOUR / 4, values), DetectionParams()))
    keep = max(1, int(len(values) * cut))
    truncated = list(run(Series.from_counts(START, HOUR / 4, values[:keep]), DetectionParams()))
    assert [t for t in full if t.index < keep] == truncated


@SLOW
@given(case=series_values)
def test_resolved_never_precedes_firing(case: tuple[list[int], int, int, int]) -> None:
    base, at, size, length = case
    values = list(base)
    for j in range(at, min(len(values), at + length)):
        values[j] += size
    open_: dict[str, bool] = {}
    for t in run(Series.from_counts(START, HOUR / 4, values), DetectionParams()):
        if t.kind == "fired":
            assert not open_.get(t.detector), "an episode opened twice"
            open_[t.detector] = True
        else:
            assert open_.get(t.detector), f"{t.kind} without a firing episode"
            if t.kind == "resolved":
                open_[t.detector] = False
