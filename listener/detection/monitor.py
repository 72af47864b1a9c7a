"""The monitor: judges one brand's buckets in order through every detector, strictly causally.

Rules:
- ``judge(now)`` looks at buckets ``<= now`` only and is called once per bucket, in order; the
  same code serves the daemon, ``listener backtest`` and the scenario bench.
- A smoulder episode opens only for a rise of its own, not the aftermath of a storm alert or the
  remains of its own last episode: one crisis, one alert per detector.
- Replay of stored history is causal in arrival time too: a bucket's final judgement comes
  ``lateness`` after it ends, with only the mentions that had arrived by then (``replay``); it
  decides not to alert, escalates and resolves. Whenever mentions arrive (a poll), the detectors
  registered as early (the storm) judge the bucket of that moment at once, and may only open an
  episode: late arrivals can only add to a bucket. Mentions arriving after their bucket's final
  judgement count for the baselines and are seen by the early judgement of the poll that brings
  them, within the storm's windows. A backlog after an outage fills the buckets of its event
  times, so it is no spike.
- Calibrated detectors (the storm) open only when the score and the size (factor) also beat the
  brand's record of daily peaks (``calibrate``) and, within the refractory period after the last
  episode, ``refractory_margin`` times that episode's peak score.
- Which detectors exist, with their parameters and schedules, is ``registry``'s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from listener.detection import calibrate, storm
from listener.detection.calibrate import Peaks
from listener.detection.episodes import Tracker, Transition
from listener.detection.registry import REGISTRY
from listener.detection.registry import DetectionParams as DetectionParams  # re-exported
from listener.detection.series import Event, Series
from listener.models import Finding


class Monitor:
    """Episode state of every detector for one brand's series."""

    def __init__(self, series: Series, params: DetectionParams) -> None:
        self.series = series
        self.params = params
        self.trackers = {
            name: Tracker(name, timedelta(seconds=params.of(name).clear_after), series.width)
            for name in REGISTRY
        }
        self.peaks = {name: Peaks(max(1, series.per_day)) for name in REGISTRY}
        self.sizes = {name: Peaks(max(1, series.per_day)) for name in REGISTRY}
        # calibrated detectors: when their last episode resolved, and its peak score
        self.last_episode: dict[str, tuple[datetime, float]] = {}
        self.last: list[Finding] = []  # the findings of the last judgement, after every gate

    def findings(self, now: int) -> list[Finding]:
        """What every running detector due at bucket ``now`` says, before the monitor's gates."""
        found = []
        for name in self.params.detectors:
            spec = REGISTRY[name]
            if spec.is_due(self.series, now):
                found.append(spec.detect(self.series, now, self.params.of(name)))
        return found

    def judge(self, now: int) -> list[Transition]:
        """The final judgement of bucket ``now``."""
        transitions = []
        self.last = []
        for finding in self.findings(now):
            if REGISTRY[finding.detector].calibrated:
                finding = self._calibrated(now, finding)
            if finding.detector == "smoulder" and finding.firing:
                finding = self._unless_explained(finding)
            self.last.append(finding)
            transition = self.trackers[finding.detector].step(now, finding)
            if transition is not None:
                transitions.append(transition)
                if transition.kind == "resolved":
                    self.last_episode[finding.detector] = (transition.at, transition.peak.score)
        return transitions

    def judge_early(self, now: int) -> list[Transition]:
        """An early judgement of bucket ``now`` (still open, or waiting for late mentions) by
        the detectors registered as ``early``: it can only open an episode, never escalate, hold
        or resolve one."""
        self.last = []
        transitions = []
        for name in self.params.detectors:
            spec, tracker = REGISTRY[name], self.trackers[name]
            if not spec.early or tracker.firing:
                continue
            finding = spec.detect(self.series, now, self.params.of(name))
            if spec.calibrated:
                finding = self._calibrated(now, finding, record=False)
            if not finding.firing:  # not yet: the final judgement decides, after the lateness
                self.last.append(replace(finding, gate="lateness"))
                continue
            self.last.append(finding)
            transition = tracker.step(now, finding)
            if transition is not None:
                transitions.append(transition)
        return transitions

    def _calibrated(self, now: int, finding: Finding, *, record: bool = True) -> Finding:
        """A storm opens only when its score and its size (log factor) beat the brand's own
        record of daily peaks and, within the refractory period, ``refractory_margin`` times
        the peak score of its last episode."""
        name = finding.detector
        params = self.params.of(name)
        # a window the detector has too little to judge (under half its count floor) has no size
        size = calibrate.size(finding.observed, finding.expected, params.min_count / 2)
        if record:
            self.peaks[name].record(now, finding.score)
            self.sizes[name].record(now, size)
        if not finding.firing or self.trackers[name].firing:
            return finding
        days = params.tail_days
        bar = self.peaks[name].bar(now, days, params.tail_budget)
        if bar is not None and finding.score <= bar:
            why = (
                f"held back: score {finding.score:.1f} does not beat {bar:.1f}, which the "
                f"brand's daily peaks of the last {days} days reach once in "
                f"{params.tail_budget:g} days (calibration)"
            )
            return replace(finding, level="elevated", reason=why, gate="calibration")
        size_bar = self.sizes[name].bar(now, days, params.size_budget)
        if size_bar is not None and size <= size_bar:
            why = (
                f"held back: {finding.factor:.1f}x expected does not beat "
                f"{math.exp(size_bar):.1f}x, which the brand's daily peak factors of the last "
                f"{days} days reach once in {params.size_budget:g} days (calibration)"
            )
            return replace(finding, level="elevated", reason=why, gate="calibration")
        if name in self.last_episode:
            ended, peak = self.last_episode[name]
            beat = peak * params.refractory_margin
            if finding.at - ended < timedelta(seconds=params.refractory) and finding.score <= beat:
                why = (
                    f"held back: score {finding.score:.1f} does not beat {beat:.1f}, "
                    f"{params.refractory_margin:g} times the peak of the storm that ended "
                    f"{ended:%Y-%m-%d %H:%M} (refractory period)"
                )
                return replace(finding, level="elevated", reason=why, gate="refractory")
        if bar is not None and not finding.reason:
            why = f"score {finding.score:.1f} beats this brand's calibrated bar of {bar:.1f}"
            if size_bar is not None:
                why += f" and {finding.factor:.1f}x its bar of {math.exp(size_bar):.1f}x"
            return replace(finding, reason=why)
        return finding

    def _unless_explained(self, finding: Finding) -> Finding:
        """A smoulder opens only for a rise of its own: not one that began while a storm was
        firing (its aftermath is the storm's), nor before its own last episode resolved."""
        smoulder_, storm_ = self.trackers["smoulder"], self.trackers["storm"]
        if smoulder_.firing:
            return finding
        why = None
        if storm_.firing and storm_.started is not None:
            why = f"the storm alert firing since {storm_.started:%Y-%m-%d %H:%M} explains it"
        elif storm_.last_resolved is not None and storm_.last_resolved > finding.window_start:
            why = f"the rise began during a storm alert (resolved {storm_.last_resolved:%H:%M})"
        elif smoulder_.last_resolved is not None and smoulder_.last_resolved > finding.window_start:
            why = "the rise began before the last smoulder alert resolved"
        if why is None:
            return finding
        return replace(finding, level="elevated", reason=f"held back: {why}", gate="explained")


def run(series: Series, params: DetectionParams) -> Iterator[Transition]:
    """Judge every bucket of a complete series in order (``listener backtest --series``)."""
    monitor = Monitor(series, params)
    for now in range(len(series)):
        yield from monitor.judge(now)


@dataclass(frozen=True, slots=True)
class Judged:
    transition: Transition
    judged_at: datetime  # when the decision was taken: arrival (early) or bucket end + lateness


def replay(
    events: Iterable[Event],
    *,
    start: datetime,
    end: datetime,
    width: timedelta,
    lateness: timedelta,
    params: DetectionParams,
    with_total: bool = True,
    observe: Callable[[datetime, Finding], None] | None = None,
) -> Iterator[Judged]:
    """Replay mentions (sorted by arrival) through the detectors as the daemon would have.

    Bucket ``b`` is judged finally at its end + ``lateness`` with the mentions arrived by then.
    Besides, whenever mentions arrive (one poll's worth: the same arrival time), the bucket they
    arrive in is judged early, which can only open an episode: late arrivals can only add to a
    bucket, so what already makes the case stays made. ``observe`` sees every judged finding."""
    series = Series(start, width, with_total=with_total)
    monitor = Monitor(series, params)
    last = series.index_of(end)  # buckets 0 .. last-1 are judged
    # the buckets an early judgement looks at: the storm's longest window
    reach = max(storm.window_lengths(series, params.storm))
    done = 0  # the next bucket to judge finally

    def final(before: datetime | None) -> Iterator[Judged]:
        nonlocal done
        while done < last:
            judged_at = series.time_of(done + 1) + lateness
            if before is not None and judged_at >= before:
                return
            series.extend_to(done)
            for transition in monitor.judge(done):
                yield Judged(transition, judged_at)
            if observe is not None:
                for finding in monitor.last:
                    observe(judged_at, finding)
            done += 1

    for arrived, batch in itertools.groupby(events, key=lambda e: e.arrived or e.at):
        yield from final(arrived)
        now = series.index_of(arrived - _TICK)  # the bucket the poll happened in
        relevant = False  # negative mentions for a bucket an early judgement sees
        for event in batch:
            series.add(event)
            relevant |= event.negative and now - reach < series.index_of(event.at) <= now
        if not relevant or arrived > end:
            continue
        series.extend_to(now)
        # every bucket still waiting for its final judgement, oldest first, up to the poll's own:
        # the first that makes the case opens the episode (and dates it)
        for bucket in range(done, now + 1):
            opened = [Judged(t, arrived) for t in monitor.judge_early(bucket)]
            yield from opened
            if observe is not None:
                for finding in monitor.last:
                    observe(arrived, finding)
            if opened:
                break
    yield from final(None)


_TICK = timedelta(microseconds=1)


def explain(finding: Finding) -> str:
    """One paragraph a person can act on: observed vs expected, factor, probability, voices."""
    span = finding.window_end - finding.window_start
    text = (
        f"{finding.observed} negative mentions in {_span(span)} "
        f"({finding.window_start:%Y-%m-%d %H:%M}–{finding.window_end:%H:%M} UTC), "
        f"expected {finding.expected:.1f}"
    )
    if finding.expected > 0:
        text += f" ({finding.factor:.1f}x)"
    if finding.probability is not None:
        text += f"; probability under the baseline {finding.probability:.1g}"
    elif finding.detector == "smoulder":
        text += f"; CUSUM {finding.score:.1f}"
    if finding.stories is not None:
        text += f"; {finding.stories} stories, {finding.voices} voices, {finding.domains} domains"
    if finding.share is not None and finding.expected_share is not None:
        text += f"; negative share {finding.share:.0%} (usually {finding.expected_share:.0%})"
    if finding.cold_start:
        text += "; little history yet (cold start)"
    if finding.reason:
        text += f"; {finding.reason}"
    return text


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.1f} days"
