"""Calibration on the brand's own history: how surprising is "surprising" for this brand.

Rules:
- A detector's score is a tail probability under a model (Poisson widened by the baseline's
  dispersion); real mention volumes have heavier tails than any such model, and how much heavier
  differs per brand. So the score must also stand out against the brand's own record of daily
  peak scores over the last ``days`` days before today.
- Peaks over threshold: the peaks above their median are modelled as exponential (a generalised
  Pareto tail of shape 0) with the mean excess as its scale; the bar is the level that the
  record says a day's peak exceeds once in ``budget`` days. On ordinary days a brand then opens
  about one episode per ``budget`` days at most, whatever its volume or noise, and one earlier
  crisis in the record raises the bar only a little (it is one excess among many).
- Two records per detector: the score (statistical size: how improbable) and the size, the log
  of the factor observed/expected (practical size: how much more than usual). A busy brand's
  scores run high on ordinary days because its counts are large, a quiet brand's factors because
  its expectations are small; an episode must stand out on both. The size is recorded as 0 for a
  window with too few mentions to judge (under half the detector's count floor: a mention or two
  against an expectation near zero is no practical size).
- Peaks are recorded from final judgements only (never from early ones), per day of the series
  (``index // per_day``), so every replay reaches the same bar.
- With less than ``MIN_DAYS`` days of record there is no bar (cold start: the detector's own
  thresholds decide alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_DAYS = 3


@dataclass(slots=True)
class Peaks:
    """Highest score per day, for one detector of one brand."""

    per_day: int  # buckets per day (at least 1)
    peaks: dict[int, float] = field(default_factory=dict)

    def record(self, index: int, score: float) -> None:
        day = index // self.per_day
        if score > self.peaks.get(day, -1.0):
            self.peaks[day] = score

    def shift(self, days: int) -> None:
        """The series forgot its first ``days`` days: day numbers move down with it."""
        self.peaks = {day - days: score for day, score in self.peaks.items()}

    def bar(self, index: int, days: int, budget: float) -> float | None:
        """The score to beat at bucket ``index`` (see the module docstring), or None without a
        week of record or with ``budget`` 0 (calibration off)."""
        if budget <= 0:
            return None
        today = index // self.per_day
        record = sorted(s for day, s in self.peaks.items() if today - days <= day < today)
        if len(self.peaks) > 4 * days:  # forget what no bar can reach any more
            for day in [d for d in self.peaks if d < today - days]:
                del self.peaks[day]
        if len(record) < min(MIN_DAYS, days):
            return None
        return exceedance_level(record, budget)


def size(observed: float, expected: float, floor: float) -> float:
    """The practical size of a window: ``log(observed / expected)``, 0 below ``floor`` mentions
    or at most as many as expected."""
    if observed < floor or expected <= 0 or observed <= expected:
        return 0.0
    return math.log(observed / expected)


def exceedance_level(record: list[float], budget: float) -> float:
    """The level a value of ``record`` (sorted) exceeds once in ``budget`` draws: exponential
    tail above the median, scale = mean excess."""
    threshold = record[len(record) // 2]
    excesses = [x - threshold for x in record if x > threshold]
    if not excesses:
        return threshold
    scale = sum(excesses) / len(excesses)
    rate = len(excesses) / len(record)  # share of days above the threshold
    return threshold + scale * math.log(max(1.0, rate * budget))
