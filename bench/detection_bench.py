"""Detection scenario bench: every synthetic scenario replayed through the detectors, causally.

    python bench/detection_bench.py [--scenario NAME] [--explain] [--seed N]

Each scenario of ``scenarios.py`` next to this file (six weeks of ordinary history, then a crisis
or a harmless look-alike) is replayed with ``listener.detection.monitor.replay`` exactly as the
daemon would have judged it: 5-minute buckets, each judged the scenario's poll interval after it
ends with only the mentions that had arrived by then, default ``DetectionParams``.

One row per scenario:
- expected: "alert" for a crisis, "none" otherwise; events: mentions replayed.
- detected: a "fired" transition judged within [crisis onset, crisis end] ("-" without a crisis).
- delay: from the crisis onset to the judgement of the first such transition (the judgement
  waits the poll interval after a bucket ends, for late mentions); buckets: the detector's own
  delay, from the onset's 5-minute bucket to the bucket it fired at (0: the onset bucket).
- first: the detector and severity of that transition; without a crisis, of the first (false)
  alert.
- false: fired transitions judged outside [onset, crisis end], or any in a scenario without a
  crisis; false/wk: per brand-week of the whole replay (the six weeks of history included).
- run s: replay time (generation excluded).
- delay 5m, delay 15m (crises only): the delay again when the source is polled every 5 and every
  15 minutes (each mention arrives at the first poll at or after it; a source outage keeps its
  catch-up) and the daemon waits the default ``[detection] lateness`` (20 minutes): alerts fire
  early, as soon as the mentions that have arrived make the case.
Then every false alert, the slow burn's delay from the day its negative share clearly rose
(``Scenario.share_rise_at``; the target is an alert within 48 hours of it), and a summary.
``--explain`` prints ``explain(finding)`` for every fired, escalated and resolved transition.
``--seed N`` redraws every scenario (0 is the fixed default); ``--seeds N`` summarises seeds
0..N-1 (with the buckets from onset of each crisis, seed by seed). The bench reports; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from scenarios import NAMES, Scenario, scenario

from listener.config import DetectionSettings
from listener.detection.monitor import DetectionParams, Judged, explain, replay

WIDTH = timedelta(minutes=5)
WEEK = timedelta(days=7)
MONTH = timedelta(days=365.25 / 12)
LATENESS = timedelta(seconds=DetectionSettings().lateness)
POLLS = (timedelta(minutes=5), timedelta(minutes=15))


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    judged: list[Judged]
    seconds: float

    @property
    def fired(self) -> list[Judged]:
        return [j for j in self.judged if j.transition.kind == "fired"]

    def in_crisis(self, judged: Judged) -> bool:
        onset, end = self.scenario.crisis_onset, self.scenario.crisis_end
        return onset is not None and end is not None and onset <= judged.judged_at <= end

    @property
    def hits(self) -> list[Judged]:
        return [j for j in self.fired if self.in_crisis(j)]

    @property
    def false(self) -> list[Judged]:
        return [j for j in self.fired if not self.in_crisis(j)]

    @property
    def duration(self) -> timedelta:
        return self.scenario.end - self.scenario.start


def run(case: Scenario, lateness: timedelta | None = None) -> Result:
    began = time.perf_counter()
    judged = list(
        replay(
            case.events,
            start=case.start,
            end=case.end,
            width=WIDTH,
            lateness=case.polling if lateness is None else lateness,
            params=DetectionParams(),
        )
    )
    return Result(case, judged, time.perf_counter() - began)


def polled(case: Scenario, every: timedelta) -> Scenario:
    """The scenario as a source polled every ``every`` sees it: each mention arrives at the first
    poll at or after its event time; mentions held back by an outage keep their catch-up time."""
    step = every.total_seconds()
    events = []
    for event in case.events:
        since = (event.at - case.start).total_seconds()
        arrived = case.start + timedelta(seconds=math.ceil(since / step) * step)
        if event.arrived is not None and event.arrived - event.at > 2 * case.polling:
            arrived = max(arrived, event.arrived)  # an outage's backlog
        events.append(replace(event, arrived=arrived))
    events.sort(key=lambda e: (e.arrived or e.at, e.at))
    return replace(case, events=tuple(events), polling=every)


def poll_delays(case: Scenario) -> list[str]:
    """The crisis's detection delay when polled every 5 and 15 minutes ("-" without a crisis,
    "no" when missed)."""
    if case.crisis_onset is None:
        return ["-" for _ in POLLS]
    out = []
    for every in POLLS:
        result = run(polled(case, every), LATENESS)
        hits = result.hits
        out.append(duration(hits[0].judged_at - case.crisis_onset) if hits else "no")
    return out


def duration(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    sign = "-" if minutes < 0 else ""
    minutes = abs(minutes)
    if minutes < 120:
        return f"{sign}{minutes:.0f} min"
    return f"{sign}{minutes / 60:.0f} h"


def relative(when: datetime, case: Scenario) -> str:
    anchor = case.crisis_onset or case.event_at
    if anchor is None:
        return f"{when:%Y-%m-%d %H:%M}"
    span = when - anchor
    return f"{when:%Y-%m-%d %H:%M} ({'+' if span >= timedelta(0) else ''}{duration(span)})"


COLUMNS = (
    ("scenario", 16),
    ("expected", 8),
    ("events", 7),
    ("detected", 8),
    ("delay", 7),
    ("buckets", 7),
    ("first", 17),
    ("false", 5),
    ("false/wk", 8),
    ("run s", 6),
    ("delay 5m", 8),
    ("delay 15m", 9),
)


def row(cells: list[str]) -> str:
    out = []
    for (_, width), cell in zip(COLUMNS, cells, strict=True):
        out.append(cell.ljust(width) if width == COLUMNS[0][1] else cell.rjust(width))
    return "  ".join(out)


def table_row(result: Result) -> str:
    case = result.scenario
    crisis = case.crisis_onset is not None
    first = result.hits[0] if crisis and result.hits else None
    if not crisis and result.false:
        first = result.false[0]
    detected = ("yes" if result.hits else "no") if crisis else "-"
    delay = buckets = "-"
    if crisis and result.hits and case.crisis_onset is not None:
        delay = duration(result.hits[0].judged_at - case.crisis_onset)
        buckets = str(result.hits[0].transition.index - (case.crisis_onset - case.start) // WIDTH)
    which = f"{first.transition.detector} {first.transition.severity}" if first else "-"
    weeks = result.duration / WEEK
    return row(
        [
            case.name,
            "alert" if case.expect_alert else "none",
            str(len(case.events)),
            detected,
            delay,
            buckets,
            which,
            str(len(result.false)),
            f"{len(result.false) / weeks:.2f}",
            f"{result.seconds:.1f}",
            *poll_delays(case),
        ]
    )


def sweep(names: list[str], seeds: int) -> None:
    """Per scenario over many draws: crises detected, detector delay, false alerts (in all, within
    two days after the look-alike event, the most in one run, and per brand-month)."""
    print(
        f"{'scenario':16}  {'detected':>8}  {'buckets (min-max)':>17}  {'share-rise delay':>24}"
        f"  {'false':>5}  {'on look-alike':>13}  {'max/run':>7}  {'per brand-month':>15}"
        f"  {'delay 10m (med/max)':>19}  {'delay 5m (med/max)':>18}  {'delay 15m (med/max)':>19}"
    )
    total_false, total_months = 0, 0.0
    per_seed: dict[str, list[str]] = {}  # crisis scenarios: buckets from onset, by seed
    for name in names:
        hits, buckets, rise, false, months = 0, [], [], 0, 0.0
        on_event, worst = 0, 0
        delays: dict[str, list[float]] = {"10m": [], "5m": [], "15m": []}
        for seed in range(seeds):
            result = run(scenario(name, seed))
            case = result.scenario
            if case.crisis_onset is not None:
                for label, every in (("5m", POLLS[0]), ("15m", POLLS[1])):
                    hit = run(polled(case, every), LATENESS).hits
                    if hit:
                        delays[label].append(_minutes(hit[0].judged_at - case.crisis_onset))
                if result.hits:
                    delays["10m"].append(_minutes(result.hits[0].judged_at - case.crisis_onset))
            false += len(result.false)
            worst = max(worst, len(result.false))
            if case.crisis_onset is None and case.event_at is not None:
                near = (case.event_at, case.event_at + timedelta(days=2))
                on_event += sum(near[0] <= j.judged_at <= near[1] for j in result.false)
            months += result.duration / MONTH
            if case.crisis_onset is not None and not result.hits:
                per_seed.setdefault(name, []).append("-")
            if result.hits and case.crisis_onset is not None:
                hits += 1
                first = result.hits[0]
                buckets.append(first.transition.index - (case.crisis_onset - case.start) // WIDTH)
                per_seed.setdefault(name, []).append(str(buckets[-1]))
                if case.share_rise_at is not None and name == "slow-burn":
                    rise.append((first.judged_at - case.share_rise_at) / timedelta(hours=1))
        total_false += false
        total_months += months
        crisis = scenario(name).crisis_onset is not None
        span = f"{min(buckets)}-{max(buckets)}" if buckets else "-"
        within = (
            f"{sum(h <= 48 for h in rise)}/{len(rise)} within 48 h (max {max(rise):.0f} h)"
            if rise
            else "-"
        )
        spans = [_spread(delays[k]) if crisis else "-" for k in ("10m", "5m", "15m")]
        print(
            f"{name:16}  {f'{hits}/{seeds}' if crisis else '-':>8}  {span:>17}  {within:>24}"
            f"  {false:>5}  {on_event if not crisis else '-':>13}  {worst:>7}"
            f"  {false / months:>15.2f}  {spans[0]:>19}  {spans[1]:>18}  {spans[2]:>19}"
        )
    print(
        f"\nall: {total_false} false alerts in {total_months:.0f} brand-months "
        f"({total_false / total_months:.2f} per brand-month)"
    )
    for name, seen in per_seed.items():
        print(f"buckets per seed (0..{seeds - 1}; -: missed), {name}: {','.join(seen)}")


def _minutes(span: timedelta) -> float:
    return span.total_seconds() / 60


def _spread(minutes: list[float]) -> str:
    """Median and maximum delay of the detected draws."""
    if not minutes:
        return "none"
    ordered = sorted(minutes)
    return f"{duration(timedelta(minutes=ordered[len(ordered) // 2]))}/" + duration(
        timedelta(minutes=ordered[-1])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", choices=NAMES, help="run this scenario only")
    parser.add_argument("--explain", action="store_true", help="explain every transition")
    parser.add_argument("--seed", type=int, default=0, help="redraw the scenarios (0: default)")
    parser.add_argument("--seeds", type=int, help="summarise seeds 0..N-1 instead")
    args = parser.parse_args()
    names = [args.scenario] if args.scenario else list(NAMES)
    if args.seeds:
        sweep(names, args.seeds)
        return

    began = time.perf_counter()
    print(row([name for name, _ in COLUMNS]))
    results = []
    for name in names:
        result = run(scenario(name, args.seed))
        results.append(result)
        print(table_row(result), flush=True)
    wall = time.perf_counter() - began

    print()
    for result in results:
        case = result.scenario
        for judged in result.false:
            t = judged.transition
            print(
                f"false alert: {case.name}: {t.detector} {t.severity} judged "
                f"{relative(judged.judged_at, case)}"
            )
        if case.share_rise_at is not None:
            hit = result.hits[0].judged_at if result.hits else None
            after = f"alert {duration(hit - case.share_rise_at)} after it" if hit else "no alert"
            print(
                f"{case.name}: negative share clearly rose (3-day share >= 2x background) on "
                f"{case.share_rise_at:%Y-%m-%d %H:%M}, {after} (target: within 48 h)"
            )
    if args.explain:
        for result in results:
            print(f"\n{result.scenario.name}:")
            for judged in result.judged:
                t = judged.transition
                print(
                    f"  {t.kind} {t.detector} {t.severity} judged "
                    f"{relative(judged.judged_at, result.scenario)}: {explain(t.finding)}"
                )

    crises = [r for r in results if r.scenario.crisis_onset is not None]
    detected = sum(1 for r in crises if r.hits)
    false = sum(len(r.false) for r in results)
    months = sum((r.duration for r in results), timedelta(0)) / MONTH
    print(
        f"\nsummary: detected crises {detected}/{len(crises)}, false alerts {false}, "
        f"{false / months:.2f} false alerts per brand-month ({months:.1f} brand-months), "
        f"{wall:.1f} s in all"
    )


if __name__ == "__main__":
    main()
