"""Configuration building blocks: the one place where units and typed values are parsed.

Owns:
- durations ("90s", "15m", "1h30m", "7d", "250ms", or a bare number of seconds) and sizes
  ("10MB", "512KiB", or a plain byte count), as ``Duration``/``Size`` field types;
- times of day ("08:00 Europe/Berlin") and quiet hours ("22:00-07:00 Europe/Berlin"), parsed once
  when the configuration is loaded into ``TimeOfDay``/``QuietWindow`` values;
- ``Section``, the base of every table (unknown keys are errors, values frozen), and the http URL
  check. Parse errors are ``ValueError`` with a one-line hint; loading adds file and key path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


def parse_duration(value: object) -> float:
    """Parse "15m", "1h30m", "7d", "250ms" (or a bare number of seconds) into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '15m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like '15m'")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2).lower()]
        pos = part.end()
    if not text or pos != len(text):
        raise ValueError("invalid duration; use a number with a unit: 30s, 15m, 1h, 1h30m, 7d")
    return total


def parse_size(value: object) -> int:
    """Parse "10MB", "512KiB" or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like '10MB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("invalid size; use a number with a unit: 512KB, 10MB, 1GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Quiet hours: from ``start`` to ``end`` (minutes of the day; across midnight when
    start > end) in time zone ``zone``."""

    start: int
    end: int
    zone: str


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    """A local time of day: ``minute`` of the day in time zone ``zone``."""

    minute: int
    zone: str


def parse_quiet_hours(value: str) -> tuple[int, int, str]:
    """ "22:00-07:00 Europe/Berlin" -> (start minute of day, end minute of day, time zone)."""
    match = _QUIET.match(value)
    if match is None:
        raise ValueError("expected quiet hours like '22:00-07:00 Europe/Berlin'")
    h1, m1, h2, m2 = (int(g) for g in match.groups()[:4])
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError("hours are 00-23 and minutes 00-59")
    zone = match.group(5) or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {zone!r}; use an IANA name like Europe/Berlin"
        ) from None
    return h1 * 60 + m1, h2 * 60 + m2, zone


def quiet_window(value: object) -> object:
    """A ``quiet_hours`` string as a QuietWindow (other values are left to pydantic)."""
    return QuietWindow(*parse_quiet_hours(value)) if isinstance(value, str) else value


def time_of_day(value: object) -> object:
    """ "08:00 Europe/Berlin" (zone optional, UTC) as a TimeOfDay; the same rules and messages
    as quiet hours."""
    if not isinstance(value, str):
        return value
    at, *zone = value.split() or [""]
    minute, _, name = parse_quiet_hours(f"{at}-{at} {' '.join(zone)}")
    return TimeOfDay(minute, name)


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    """A configuration table: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
