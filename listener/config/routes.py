"""Where alerts go and how: ``[[routes]]`` (apprise URLs, filters, quiet hours, summaries),
``[alerts]`` (repeat, retry, inhibition) and runbooks. Quiet hours and summary times are parsed
once, here, into typed values (``QuietWindow``, ``TimeOfDay``); whether apprise understands a
URL and whether a route's brands exist is checked by ``listener.checks``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from listener.config.units import (
    Duration,
    QuietWindow,
    Section,
    TimeOfDay,
    check_http_url,
    quiet_window,
    time_of_day,
)


class RunbookEntry(Section):
    """What the team does when an alert fires: a short text, a link, or both."""

    text: str = ""
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class RunbookSettings(RunbookEntry):
    """A brand's runbook; ``warning`` and ``critical`` replace its text and/or URL for alerts of
    that severity (what they leave out comes from the brand's)."""

    warning: RunbookEntry | None = None
    critical: RunbookEntry | None = None

    def for_severity(self, severity: str) -> RunbookEntry:
        special = self.critical if severity == "critical" else self.warning
        if special is None:
            return self
        return RunbookEntry(text=special.text or self.text, url=special.url or self.url)


class RouteSettings(Section):
    name: str = Field(min_length=1)
    urls: tuple[str, ...] = Field(min_length=1)
    min_severity: Literal["warning", "critical"] = "warning"
    brands: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    format: Literal["text", "markdown", "html"] = "text"
    # "22:00-07:00 Europe/Berlin" in the file
    quiet_hours: Annotated[QuietWindow, BeforeValidator(quiet_window)] | None = None
    critical_ignores_quiet_hours: bool = True
    max_per_hour: int = Field(default=20, ge=1)
    repeat_interval: Duration | None = None
    digest: Literal["daily", "weekly"] | None = None  # a summary instead of single alerts
    # local time of day (weekly: on Mondays); "08:00 UTC" in the file
    digest_at: Annotated[TimeOfDay, BeforeValidator(time_of_day)] = TimeOfDay(8 * 60, "UTC")
    send_timeout: Duration = 60.0  # one attempt at one URL, connect to answer

    @field_validator("send_timeout")
    @classmethod
    def _send_timeout(cls, value: float) -> float:
        if not 1 <= value <= 600:
            raise ValueError("must be between 1s and 10m")
        return value


class AlertSettings(Section):
    repeat_interval: Duration = 4 * 3600.0
    retry_for: Duration = 24 * 3600.0
    inhibit: bool = True
    source_down_after: Duration = 3600.0
    pending_for: Duration = 0.0
