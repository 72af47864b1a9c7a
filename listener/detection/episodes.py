"""Episodes: one alert per brand and detector episode, with hysteresis and no flapping.

Rules:
- An episode opens ("fired") when a detector's finding reaches warning or critical, and never
  opens again while it lasts. A higher severity during the episode is an "escalated" transition;
  a lower one changes nothing (no de-escalation noise).
- It ends ("resolved") only after the detector has said "clear" continuously for
  ``clear_after``; "elevated" (above the clear level, below the alert level) keeps it open.
- Pure: the tracker is fed findings in bucket order and returns transitions; the caller persists
  them. An episode opened early (at a later bucket than the final judgements have reached)
  ignores the earlier buckets' final judgements except as evidence for its peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from listener.models import Finding

RANK = {"clear": 0, "elevated": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["fired", "escalated", "resolved"]
    detector: str
    index: int  # the bucket whose judgement caused it
    at: datetime  # end of that bucket
    severity: str
    started: datetime  # when the episode fired
    finding: Finding  # the evidence at this transition
    peak: Finding  # the strongest finding of the episode so far


@dataclass(slots=True)
class Tracker:
    """Episode state of one detector for one brand."""

    detector: str
    clear_after: timedelta
    width: timedelta  # of the buckets judged
    firing: bool = False
    severity: str = "clear"
    started: datetime | None = None
    clear_since: datetime | None = None
    peak: Finding | None = field(default=None)
    last_resolved: datetime | None = None
    opened: int = -1  # the bucket the episode opened at

    def step(self, index: int, finding: Finding) -> Transition | None:
        if not self.firing:
            if not finding.firing:
                return None
            self.firing, self.severity, self.started = True, finding.level, finding.at
            self.clear_since, self.peak, self.opened = None, finding, index
            return self._transition("fired", index, finding)
        assert self.started is not None and self.peak is not None
        if finding.score > self.peak.score and finding.firing:
            self.peak = finding
        if index < self.opened:  # an earlier bucket judged after an early opening: evidence only
            return None
        if finding.level != "clear":
            self.clear_since = None
            if finding.firing and RANK[finding.level] > RANK[self.severity]:
                self.severity = finding.level
                return self._transition("escalated", index, finding)
            return None
        if self.clear_since is None:
            self.clear_since = finding.at - self.width  # the start of the first clear bucket
        if finding.at - self.clear_since >= self.clear_after:
            transition = self._transition("resolved", index, finding)
            self.last_resolved = finding.at
            self.firing, self.severity, self.started, self.clear_since = False, "clear", None, None
            return transition
        return None

    def _transition(
        self, kind: Literal["fired", "escalated", "resolved"], index: int, finding: Finding
    ) -> Transition:
        assert self.started is not None and self.peak is not None
        return Transition(
            kind, self.detector, index, finding.at, self.severity, self.started, finding, self.peak
        )
