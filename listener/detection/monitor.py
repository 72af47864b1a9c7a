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

from listener.detection import calibrate, registry, storm
from listener.detection.calibrate import Peaks
from listener.detection.episodes import Tracker, Transition
from listener.detection.explain import explain as explain  # re-exported
from listener.detection.registry import REGISTRY
from listener.detection.registry import DetectionParams as DetectionParams  # re-exported
from listener.detection.series import DAY, Event, Series
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

    def shift(self, buckets: int, days: int) -> None:
        """The series forgot its first ``buckets`` buckets (``days`` whole days)."""
        for tracker in self.trackers.values():
            tracker.opened -= buckets
        for record in (*self.peaks.values(), *self.sizes.values()):
            record.shift(days)

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


class Replay:
    """A resumable replay of one brand's mentions through its detectors (see ``replay``).

    ``feed`` takes arrival batches (sorted by arrival), ``advance`` moves the clock on and
    judges what is due by then; fed in pieces or at once, the verdicts are the same. A mention
    that arrives before the replay's position (it became visible after the replay moved past
    its arrival) is fed at the position: the one way an incremental replay can differ from a
    replay of the complete history. ``trim`` forgets whole days no detector reads any more,
    which changes no verdict."""

    def __init__(
        self,
        *,
        start: datetime,
        width: timedelta,
        lateness: timedelta,
        params: DetectionParams,
        with_total: bool = True,
        observe: Callable[[datetime, Finding], None] | None = None,
    ) -> None:
        self.series = Series(start, width, with_total=with_total)
        self.monitor = Monitor(self.series, params)
        self.params = params
        self.lateness = lateness
        self.observe = observe
        # the buckets an early judgement looks at: the storm's longest window
        self.reach = max(storm.window_lengths(self.series, params.storm))
        self.done = 0  # the next bucket to judge finally
        self.position: datetime | None = None  # the latest arrival fed, or time advanced to
        # buckets ``done .. clean-1`` were judged early, without opening, on the very counts,
        # records and episodes they have now: judging them early again would say the same
        self.clean = 0

    def feed(self, events: Iterable[Event], *, end: datetime | None = None) -> Iterator[Judged]:
        """Add mentions sorted by arrival: the buckets due before each arrival batch are judged
        finally first, then the batch is added and judged early. With ``end``, buckets from
        ``end`` on are never judged and arrivals after it are not judged early."""
        floor = self.position
        last = self.series.index_of(end) if end is not None else None

        def arrival(event: Event) -> datetime:
            at = event.arrived or event.at
            return at if floor is None or at >= floor else floor

        series, monitor = self.series, self.monitor
        for arrived, batch in itertools.groupby(events, key=arrival):
            yield from self._final(arrived, last, strict=True)
            self.position = arrived
            now = series.index_of(arrived - _TICK)  # the bucket the poll happened in
            relevant = False  # negative mentions for a bucket an early judgement sees
            detailed = series.detailed
            for event in batch:
                series.add(event)
                index = series.index_of(event.at)
                self.clean = min(self.clean, index)
                relevant |= event.negative and now - self.reach < index <= now
            if series.detailed != detailed:  # every window now has stories and voices
                self.clean = 0
            if not relevant or (end is not None and arrived > end):
                continue
            series.extend_to(now)
            # every bucket still waiting for its final judgement, oldest first, up to the
            # poll's own: the first that makes the case opens the episode (and dates it)
            first = self.done if self.observe is not None else max(self.done, self.clean)
            self.clean = now + 1
            for bucket in range(first, now + 1):
                opened = [Judged(t, arrived) for t in monitor.judge_early(bucket)]
                yield from opened
                if self.observe is not None:
                    for finding in monitor.last:
                        self.observe(arrived, finding)
                if opened:
                    self.clean = 0
                    break

    def advance(self, until: datetime) -> Iterator[Judged]:
        """Judge finally every bucket due by ``until`` (its end + lateness), after the mentions
        arrived by then (fed before)."""
        yield from self._final(until, None)
        if self.position is None or until > self.position:
            self.position = until

    def finish(self, end: datetime) -> Iterator[Judged]:
        """Judge finally every bucket before ``end``'s, whenever due (the end of a backtest)."""
        yield from self._final(None, self.series.index_of(end))

    def _final(
        self, until: datetime | None, last: int | None, *, strict: bool = False
    ) -> Iterator[Judged]:
        """Final judgements of the buckets due by ``until`` (before it when ``strict``) and
        before bucket ``last``; at least one of them is given."""
        series, monitor = self.series, self.monitor
        while last is None or self.done < last:
            judged_at = series.time_of(self.done + 1) + self.lateness
            if until is not None and (judged_at >= until if strict else judged_at > until):
                return
            series.extend_to(self.done)
            self.clean = 0  # records and episodes move on
            for transition in monitor.judge(self.done):
                yield Judged(transition, judged_at)
            if self.observe is not None:
                for finding in monitor.last:
                    self.observe(judged_at, finding)
            self.done += 1

    def trim(self) -> None:
        """Forget the whole days before what any judgement still to come reads, and the detail
        (stories, voices, domains) before the longest window that reads it."""
        series = self.series
        series.cache.clear()  # derived values: recomputed when needed, not kept between runs
        if not series.per_day:
            return
        keep, detail = self.horizons()
        dropped = series.drop_days((self.done - keep) // series.per_day)
        self.clean = 0
        if dropped:
            self.done -= dropped
            self.monitor.shift(dropped, dropped // series.per_day)
        if self.done - detail > series.detail_from:
            series.forget_detail(self.done - detail)

    def horizons(self) -> tuple[int, int]:
        """Buckets before the next judged one that the detectors read: counts, and detail."""
        series, params = self.series, self.params
        width = series.width
        longest = max(self.reach, 1)
        needed = max(
            registry.history_needed(params),
            timedelta(days=params.storm.cold_start_days),
            timedelta(days=params.smoulder.min_history_days),
        )
        margin = self.lateness + DAY
        keep = math.ceil((needed + margin) / width) + longest
        per = series.per_coarse
        smoulder_span = round(params.smoulder.window_days * series.coarse_per_day) * per + per
        detail = max(longest, smoulder_span) + math.ceil(margin / width)
        return keep, detail


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
    state = Replay(
        start=start,
        width=width,
        lateness=lateness,
        params=params,
        with_total=with_total,
        observe=observe,
    )
    yield from state.feed(events, end=end)
    yield from state.finish(end)


_TICK = timedelta(microseconds=1)
