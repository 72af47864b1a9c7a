"""Alert lifecycle decisions, pure: which route hears of which change, when, and what holds it.

Rules:
- States: firing -> resolved (stored); acknowledged is a flag on a firing alert that stops
  repeats but not escalation or the resolved notice; silences drop matching notifications until
  they expire; a firing alert of a brand from a detector that inhibits others (the detector
  registry says which: the storm) inhibits the notifications of its alerts from other detectors
  of lower or equal severity (the storm says it all). This module names no detector.
- A route hears of alerts at or above its ``min_severity``, of its ``brands`` and ``detectors``
  (empty: all). Resolved notices go where the alert went.
- Quiet hours hold delivery, not evaluation: a held notification is due when they end; a
  critical one goes out at once unless the route says otherwise.
- Retries back off exponentially from 30 s up to 30 min; after ``retry_for`` a delivery is dead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

RANK = {"warning": 1, "critical": 2}


class Silencing(Protocol):
    @property
    def brand(self) -> str | None: ...
    @property
    def detector(self) -> str | None: ...
    @property
    def severity(self) -> str | None: ...


class Firing(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def brand(self) -> str: ...
    @property
    def detector(self) -> str: ...
    @property
    def severity(self) -> str: ...


S = TypeVar("S", bound=Silencing)
F = TypeVar("F", bound=Firing)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: int  # minute of the day
    end: int
    zone: str

    def until(self, now: datetime) -> datetime | None:
        """The end of the quiet hours ``now`` falls in (UTC), or None outside them."""
        local = now.astimezone(ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.start == self.end:
            return None
        if self.start < self.end:
            inside = self.start <= minute < self.end
            end = midnight + timedelta(minutes=self.end)
        else:  # across midnight
            inside = minute >= self.start or minute < self.end
            end = midnight + timedelta(minutes=self.end)
            if minute >= self.start:
                end += timedelta(days=1)
        if not inside:
            return None
        # wall-clock arithmetic in the zone: normalise through UTC for DST changes
        return end.replace(tzinfo=ZoneInfo(self.zone)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    urls: tuple[str, ...]
    min_severity: str = "warning"
    brands: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    format: str = "text"
    quiet: QuietHours | None = None
    critical_ignores_quiet_hours: bool = True
    max_per_hour: int = 20
    repeat_interval: timedelta | None = None
    digest: str | None = None  # "daily" | "weekly": summaries instead of single alerts
    digest_minute: int = 8 * 60
    digest_zone: str = "UTC"

    def last_digest_time(self, now: datetime) -> datetime:
        """The latest scheduled digest time at or before ``now`` (UTC)."""
        zone = ZoneInfo(self.digest_zone)
        local = now.astimezone(zone)
        at = local.replace(
            hour=self.digest_minute // 60, minute=self.digest_minute % 60, second=0, microsecond=0
        )
        if at > local:
            at -= timedelta(days=1)
        if self.digest == "weekly":
            at -= timedelta(days=at.weekday())  # Mondays
        return at.astimezone(UTC)

    def hears(self, brand: str, detector: str, severity: str) -> bool:
        if RANK.get(severity, 0) < RANK[self.min_severity]:
            return False
        if self.brands and brand.casefold() not in {b.casefold() for b in self.brands}:
            return False
        return not (self.detectors and detector not in self.detectors)

    def due_at(self, severity: str, now: datetime) -> datetime:
        """When a notification made now may go out: now, or the end of quiet hours."""
        if self.quiet is None:
            return now
        if severity == "critical" and self.critical_ignores_quiet_hours:
            return now
        return self.quiet.until(now) or now


def silenced_by(silences: Iterable[S], brand: str, detector: str, severity: str) -> S | None:
    for silence in silences:
        if silence.brand is not None and silence.brand.casefold() != brand.casefold():
            continue
        if silence.detector is not None and silence.detector != detector:
            continue
        if silence.severity is not None and silence.severity != severity:
            continue
        return silence
    return None


def inhibited_by(
    firing: Sequence[F],
    alert_id: int | None,
    brand: str,
    detector: str,
    severity: str,
    inhibitors: Collection[str],
) -> F | None:
    """A firing alert of the same brand from one of the ``inhibitors`` (the detectors that
    declare so in the registry), from another detector and at least as severe, inhibits this
    one."""
    for other in firing:
        if other.id == alert_id or other.brand != brand or other.detector not in inhibitors:
            continue
        if other.detector != detector and RANK.get(other.severity, 0) >= RANK.get(severity, 0):
            return other
    return None


def retry_at(
    attempts: int, created: datetime, now: datetime, retry_for: timedelta
) -> datetime | None:
    """When to try again after ``attempts`` failures, or None: give up (dead)."""
    if now - created >= retry_for:
        return None
    delay = min(timedelta(seconds=30 * (1 << min(attempts, 10))), timedelta(minutes=30))
    return now + delay
