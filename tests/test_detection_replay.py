"""Detection over arriving mentions and over the brand's own record: early firing, late items,
backlogs after an outage, calibration on daily peaks and the refractory period."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from listener.detection.calibrate import Peaks, exceedance_level
from listener.detection.monitor import DetectionParams, Judged, Monitor, replay, run
from listener.detection.series import Event, Series
from listener.detection.storm import StormParams

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
FIVE = timedelta(minutes=5)
MINUTE = timedelta(minutes=1)


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def polled(at: datetime, every: timedelta) -> datetime:
    """When a source polled every ``every`` (from START) first sees a post made at ``at``."""
    steps = math.ceil((at - START) / every)
    return START + steps * every


def quiet_history(days: int, every: timedelta, seed: int = 4) -> list[Event]:
    """A quiet brand: about 6 mentions a day, 20% negative, each its own story and voice."""
    rng = random.Random(seed)
    events = []
    for n in range(days * 6):
        at = START + timedelta(seconds=rng.uniform(0, days * 86400))
        events.append(
            Event(at, rng.random() < 0.2, f"q{n}", f"v{n}", "d.example", polled(at, every))
        )
    return events


def angry(
    first: datetime, count: int, every: timedelta, delay: timedelta = timedelta(0)
) -> list[Event]:
    """One angry post every 90 s from different people, seen at the next poll (plus ``delay``)."""
    out = []
    for n in range(count):
        at = first + timedelta(seconds=90 * n)
        out.append(
            Event(at, True, f"a{n}", f"angry{n}", f"d{n % 5}.example", polled(at, every) + delay)
        )
    return out


def judge(events: list[Event], end: datetime, lateness: timedelta) -> list[Judged]:
    events = sorted(events, key=lambda e: (e.arrived or e.at, e.at))
    return list(
        replay(
            events, start=START, end=end, width=FIVE, lateness=lateness, params=DetectionParams()
        )
    )


def storms(judged: list[Judged]) -> list[Judged]:
    return [j for j in judged if j.transition.detector == "storm" and j.transition.kind == "fired"]


def test_a_live_storm_fires_at_the_poll_that_makes_the_case_not_after_the_lateness() -> None:
    every = 5 * MINUTE
    first = START + timedelta(days=14, hours=15, minutes=2)
    history = quiet_history(14, every)
    found = storms(
        judge(history + angry(first, 40, every), first + timedelta(hours=3), 20 * MINUTE)
    )
    assert found, "the storm was missed"
    fired = found[0]
    # at a poll (an arrival time), before the bucket's final judgement (end + 20 minutes)
    bucket_end = START + (fired.transition.index + 1) * FIVE
    assert fired.judged_at < bucket_end + 20 * MINUTE
    assert (fired.judged_at - START) % every == timedelta(0)
    assert fired.judged_at == polled(first + 7 * timedelta(seconds=90), every)  # the 8th post
    assert fired.judged_at - first <= 15 * MINUTE
    # the same storm judged only at bucket end + lateness would have been later
    assert not storms(judge(history, first + timedelta(hours=3), 20 * MINUTE))


def test_items_older_than_the_lateness_when_fetched_are_still_judged() -> None:
    every = 10 * MINUTE  # polled every 10 minutes, lateness 1 minute: every item arrives late
    first = START + timedelta(days=14, hours=15, minutes=2)
    events = quiet_history(14, every) + angry(first, 40, every)
    assert all((e.arrived or e.at) - e.at >= timedelta(0) for e in events)
    found = storms(judge(events, first + timedelta(hours=3), MINUTE))
    # at the poll that brought the min_count-th (8th) post, as with a lateness of 20 minutes
    assert found and found[0].judged_at == polled(first + 7 * timedelta(seconds=90), every)


def test_a_backlog_after_an_outage_is_no_spike() -> None:
    """Ordinary mentions of six hours arriving at once (a source back from an outage) fill their
    buckets: no storm, however early the judgement."""
    rng = random.Random(9)
    every = 5 * MINUTE
    events = []
    outage = (START + timedelta(days=14, hours=9), START + timedelta(days=14, hours=15))
    for i in range(15 * 288):  # busy brand: about 2 mentions per 5 minutes, 20% negative
        when = START + i * FIVE
        for n in range(poisson(rng, 2.0)):
            at = when + timedelta(seconds=rng.uniform(0, 299))
            arrived = polled(at, every)
            if outage[0] <= arrived < outage[1]:
                arrived = outage[1]
            events.append(Event(at, rng.random() < 0.2, f"s{i}-{n}", f"v{rng.randrange(800)}",
                                "d.example", arrived))  # fmt: skip
    assert not storms(judge(events, START + timedelta(days=15), 20 * MINUTE))


def test_an_early_opening_is_one_episode_and_resolves_once() -> None:
    every = 5 * MINUTE
    first = START + timedelta(days=14, hours=15, minutes=2)
    judged = judge(
        quiet_history(16, every) + angry(first, 40, every), START + timedelta(days=16), 20 * MINUTE
    )
    kinds = [j.transition.kind for j in judged if j.transition.detector == "storm"]
    assert kinds[0] == "fired" and kinds.count("fired") == 1 and kinds.count("resolved") == 1
    assert [j.judged_at for j in judged] == sorted(j.judged_at for j in judged)


# -- calibration --------------------------------------------------------------------------------


def test_exceedance_level_is_an_exponential_tail_above_the_median() -> None:
    record = [float(x) for x in range(1, 21)]  # median 11, excesses 1..9 (mean 5), 9 of 20 above
    assert exceedance_level(record, 4.0) == 11 + 5 * math.log(9 / 20 * 4)
    assert exceedance_level(record, 1.0) == 11  # once a day: the median
    peaks = Peaks(per_day=288)
    for day, score in enumerate(record):
        peaks.record(day * 288 + 7, score)
    assert peaks.bar(20 * 288, 28, 4.0) == exceedance_level(record, 4.0)
    assert peaks.bar(20 * 288, 28, 0.0) is None  # calibration off
    assert Peaks(per_day=288).bar(5, 28, 4.0) is None  # no record yet


def daily_bursts(days: int, size: int, seed: int = 2) -> list[int]:
    """A noisy series with one burst of ``size`` a day at a random time: this brand's normal."""
    rng = random.Random(seed)
    values = [poisson(rng, 1.5) for _ in range(days * 288)]
    for day in range(days):
        values[day * 288 + rng.randrange(60, 280)] += size
    return values


def test_bursts_as_big_as_the_brands_daily_peaks_are_mostly_held_back_a_bigger_one_fires() -> None:
    values = daily_bursts(35, 25)
    big = 32 * 288 + 150
    values[big] += 250
    off = DetectionParams(storm=StormParams(tail_budget=0, size_budget=0))

    def alerts(params: DetectionParams) -> list[int]:
        series = Series.from_counts(START, FIVE, values)
        return [t.index for t in run(series, params) if t.kind == "fired" and t.index >= 7 * 288]

    calibrated, uncalibrated = alerts(DetectionParams()), alerts(off)
    assert len(uncalibrated) >= 14  # the model alone: an alert most days
    # about one in tail_budget ordinary days: 28 days, and half as many again of slack
    assert big in calibrated and len(calibrated) <= 28 / StormParams().tail_budget * 1.5
    assert len(calibrated) <= len(uncalibrated) - 5  # and holds several of them back


def test_the_refractory_period_holds_a_second_smaller_burst_of_the_same_event() -> None:
    rng = random.Random(6)
    values = [poisson(rng, 1.5) for _ in range(30 * 288)]
    big, echo = 25 * 288 + 100, 25 * 288 + 200  # an echo 8 hours later, half the size
    values[big] += 120
    values[echo] += 60
    params = DetectionParams(storm=StormParams(tail_budget=0, size_budget=0))
    found = [t for t in run(Series.from_counts(START, FIVE, values), params) if t.kind == "fired"]
    assert [t.index for t in found] == [big]
    no_refractory = DetectionParams(storm=StormParams(tail_budget=0, size_budget=0, refractory=0))
    series = Series.from_counts(START, FIVE, values)
    assert [t.index for t in run(series, no_refractory) if t.kind == "fired"] == [big, echo]


def test_size_calibration_holds_bursts_of_the_brands_usual_factor_a_bigger_factor_fires() -> None:
    """A busy brand whose every day has a burst of about four times the usual count: the score
    calibration alone (off here) would not know it; the size record does."""
    rng = random.Random(4)
    values = [poisson(rng, 12.0) for _ in range(35 * 288)]
    for day in range(35):
        at = day * 288 + rng.randrange(60, 280)
        values[at] += 30 + rng.randrange(0, 20)  # 42 to 62 against about 12
    big = 32 * 288 + 150
    values[big] += 150  # about 13 times the usual
    sized = DetectionParams(storm=StormParams(tail_budget=0))
    off = DetectionParams(storm=StormParams(tail_budget=0, size_budget=0))
    later = 7 * 288

    def alerts(params: DetectionParams) -> list[int]:
        series = Series.from_counts(START, FIVE, values)
        return [t.index for t in run(series, params) if t.kind == "fired" and t.index >= later]

    held, unheld = alerts(sized), alerts(off)
    assert len(unheld) >= 14  # the model alone: an alert most days
    assert big in held and len(held) <= 28 / StormParams().size_budget * 1.5
    monitor_reasons = []
    series = Series.from_counts(START, FIVE, values)
    monitor = Monitor(series, sized)
    for now in range(len(series)):
        monitor.judge(now)
        monitor_reasons += [f.reason for f in monitor.last if f.gate == "calibration"]
    assert monitor_reasons and all("x expected does not beat" in r for r in monitor_reasons)


def test_within_the_refractory_period_a_new_storm_must_beat_a_margin_over_the_last_peak() -> None:
    rng = random.Random(6)
    values = [poisson(rng, 1.5) for _ in range(30 * 288)]
    big, echo = 25 * 288 + 100, 25 * 288 + 200  # an echo 8 hours later, a bit bigger
    values[big] += 60
    values[echo] += 70
    base = StormParams(tail_budget=0, size_budget=0)
    no_margin = DetectionParams(storm=replace(base, refractory_margin=1))
    series = Series.from_counts(START, FIVE, values)
    assert [t.index for t in run(series, no_margin) if t.kind == "fired"] == [big, echo]
    series = Series.from_counts(START, FIVE, values)
    assert [t.index for t in run(series, DetectionParams(storm=base)) if t.kind == "fired"] == [big]
