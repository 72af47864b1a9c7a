"""Per-brand count series in event time: fixed buckets, with an hourly roll-up kept alongside.

Rules:
- Bucket ``i`` covers ``[start + i*width, start + (i+1)*width)`` in UTC event time (published
  time, not fetch time). Buckets are appended as time passes; late mentions land in the bucket of
  their event time, even one already judged (which the monitor never judges again).
- Besides counts of all and of negative mentions, each bucket keeps, among its negative mentions,
  the mentions per story and per voice (author, or the domain when the author is unknown) and the
  domains, so that a detector can ask how many different people a rise comes from, and count a
  rise with at most a few mentions per story and per voice (``effective``).
- A long-running series forgets whole days no detector reads any more (``drop_days``): indices
  shift, ``first_data`` is clamped to 0 (history before it existed), and a late mention for a
  forgotten bucket only says that there was history. The per-bucket detail (stories, voices,
  domains) of buckets older than any window that reads it may be forgotten first
  (``forget_detail``).
- The roll-up ("hour") is ``max(width, 1h)`` when that is a whole number of buckets, else the
  bucket itself; smoulder works on it. ``total`` is ``None`` for a series of negative counts only
  (``listener backtest --series``).
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_NONE: dict[str, int] = {}  # the detail of a bucket without negative mentions: never mutated
_NO_DOMAINS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Event:
    """One mention as detection sees it."""

    at: datetime  # event time
    negative: bool
    story: str | None = None
    voice: str | None = None  # author, else domain
    domain: str | None = None
    arrived: datetime | None = None  # when listener first stored it (for replay)


class Series:
    """Counts per bucket; see the module docstring."""

    def __init__(self, start: datetime, width: timedelta, *, with_total: bool = True) -> None:
        if width <= timedelta(0):
            raise ValueError("bucket width must be positive")
        self.width = width
        self._set_start(start.astimezone(UTC))
        # compact arrays: a brand's state is kept between runs, a thousand brands in one process
        self.negative: array[int] = array("i")
        self.total: array[int] | None = array("i") if with_total else None
        # among negative mentions, by bucket (only buckets with some): mentions per story and
        # per voice, and the domains
        self.stories: dict[int, dict[str, int]] = {}
        self.voices: dict[int, dict[str, int]] = {}
        self.domains: dict[int, set[str]] = {}
        per_hour = HOUR / width
        self.per_coarse = int(per_hour) if per_hour >= 1 and per_hour == int(per_hour) else 1
        per_day = DAY / width
        self.per_day = int(per_day) if per_day >= 1 and per_day == int(per_day) else 0
        # coarse buckets per day, at least 1; the time-of-day profile needs ``per_day`` > 0 too
        self.coarse_per_day = max(1, round(DAY / (width * self.per_coarse)))
        self.coarse_negative: array[int] = array("i")
        self.coarse_total: array[int] = array("i")
        self.first_data: int | None = None  # index of the first bucket with any mention
        self.detailed = False  # True once events with stories/voices were added
        self.edits = 0  # counts every change, so that derived values can be cached safely
        self.cache: dict[object, object] = {}
        self.dropped = 0  # buckets forgotten at the start (``drop_days``)
        self.detail_from = 0  # buckets before it may have lost their detail
        self.anonymous = 0  # mentions without a story or voice so far (each its own key)

    def _set_start(self, start: datetime) -> None:
        self.start = start
        monday = (start - timedelta(days=start.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self._week_offset = (start - monday).total_seconds()
        self._width_seconds = self.width.total_seconds()

    def drop_days(self, days: int) -> int:
        """Forget the first ``days`` whole days (needs a whole number of buckets and of
        roll-up buckets a day); returns the buckets dropped (0 when it cannot)."""
        if days <= 0 or not self.per_day or self.per_day % self.per_coarse:
            return 0
        n = days * self.per_day
        if n >= len(self.negative):
            return 0
        del self.negative[:n]
        if self.total is not None:
            del self.total[:n]
        self.stories = {i - n: d for i, d in self.stories.items() if i >= n}
        self.voices = {i - n: d for i, d in self.voices.items() if i >= n}
        self.domains = {i - n: d for i, d in self.domains.items() if i >= n}
        coarse = n // self.per_coarse
        del self.coarse_negative[:coarse], self.coarse_total[:coarse]
        if self.first_data is not None:
            self.first_data = max(0, self.first_data - n)
        self.detail_from = max(0, self.detail_from - n)
        self.dropped += n
        self._set_start(self.start + n * self.width)
        self.edits += 1
        self.cache.clear()
        return n

    def forget_detail(self, before: int) -> None:
        """Drop the stories, voices and domains of the buckets before ``before``."""
        for detail in (self.stories, self.voices, self.domains):
            for i in [i for i in detail if i < before]:
                del detail[i]
        self.detail_from = max(self.detail_from, before)

    @classmethod
    def from_counts(
        cls, start: datetime, width: timedelta, negative: list[int], total: list[int] | None = None
    ) -> Series:
        series = cls(start, width, with_total=total is not None)
        series.extend_to(len(negative) - 1)
        for i, value in enumerate(negative):
            series.add_count(i, value, total[i] if total is not None else value)
        return series

    def __len__(self) -> int:
        return len(self.negative)

    def index_of(self, when: datetime) -> int:
        return (when - self.start) // self.width

    def time_of(self, index: int) -> datetime:
        return self.start + index * self.width

    def extend_to(self, index: int) -> None:
        """Make buckets up to ``index`` exist (empty)."""
        missing = index + 1 - len(self.negative)
        if missing <= 0:
            return
        self.negative.extend(itertools.repeat(0, missing))
        if self.total is not None:
            self.total.extend(itertools.repeat(0, missing))
        coarse = len(self.negative) // self.per_coarse + 1
        grow = coarse - len(self.coarse_negative)
        if grow > 0:
            self.coarse_negative.extend(itertools.repeat(0, grow))
            self.coarse_total.extend(itertools.repeat(0, grow))

    def add_count(self, index: int, negative: int, total: int) -> None:
        if index < 0:
            if index >= -self.dropped and (negative or total):
                self.first_data = 0  # a forgotten day had data: history began before
            return
        self.extend_to(index)
        self.edits += 1
        self.negative[index] += negative
        if self.total is not None:
            self.total[index] += total
        coarse = index // self.per_coarse
        self.coarse_negative[coarse] += negative
        self.coarse_total[coarse] += total
        if (negative or total) and (self.first_data is None or index < self.first_data):
            self.first_data = index

    def add(self, event: Event) -> None:
        """Count one mention in the bucket of its event time (dropped before ``start``)."""
        index = self.index_of(event.at)
        if index < -self.dropped:
            return
        self.add_count(index, 1 if event.negative else 0, 1)
        self.detailed = True
        if event.negative and index >= 0:
            # a mention without a story or voice is its own: it cannot be told apart
            self.anonymous += 1
            story = event.story or f"\0{self.anonymous}"
            voice = event.voice or f"\0{self.anonymous}"
            stories = self.stories.setdefault(index, {})
            voices = self.voices.setdefault(index, {})
            stories[story] = stories.get(story, 0) + 1
            voices[voice] = voices.get(voice, 0) + 1
            if event.domain:
                self.domains.setdefault(index, set()).add(event.domain)

    def window_sum(self, values: Sequence[int], end: int, length: int) -> int:
        """Sum of ``values`` over the ``length`` buckets ending at ``end`` (inclusive)."""
        lo = max(0, end - length + 1)
        return sum(values[lo : end + 1]) if end >= 0 else 0

    def distinct(self, end: int, length: int) -> tuple[int, int, int] | None:
        """Distinct (stories, voices, domains) among negative mentions in the window, or None when
        the series carries no such detail (counts only)."""
        if not self.detailed:
            return None
        stories, voices = self._merged(end, length)
        domains: set[str] = set()
        for i in range(max(0, end - length + 1), end + 1):
            domains |= self.domains.get(i, _NO_DOMAINS)
        return len(stories), len(voices), len(domains)

    def effective(self, end: int, length: int, cap: int) -> int | None:
        """Negative mentions in the window counting at most ``cap`` per story and per voice: one
        spammer or one syndicated story adds ``cap``, not hundreds. None without detail."""
        if not self.detailed:
            return None
        stories, voices = self._merged(end, length)
        return min(
            sum(min(n, cap) for n in stories.values()), sum(min(n, cap) for n in voices.values())
        )

    def _merged(self, end: int, length: int) -> tuple[dict[str, int], dict[str, int]]:
        stories: dict[str, int] = {}
        voices: dict[str, int] = {}
        for i in range(max(0, end - length + 1), end + 1):
            for key, n in self.stories.get(i, _NONE).items():
                stories[key] = stories.get(key, 0) + n
            for key, n in self.voices.get(i, _NONE).items():
                voices[key] = voices.get(key, 0) + n
        return stories, voices

    def is_weekend(self, index: int) -> bool:
        seconds = self._week_offset + index * self._width_seconds
        return (seconds // 86400) % 7 >= 5
