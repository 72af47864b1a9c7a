"""The whole configuration (``Settings``) and its general tables: database, http, polling, log,
sentiment, brands, retention, metrics. The other tables have their own modules (``sources``,
``detection``, ``routes``); units are parsed in ``units``, files are read in ``loading``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from listener.config.detection import BrandDetectionSettings, DetectionSettings
from listener.config.routes import AlertSettings, RouteSettings, RunbookSettings
from listener.config.sources import AnySource, SourceSettings
from listener.config.units import Duration, Section, Size


def _default_workers() -> int:
    """Worker processes for parsing and matching: one per core beyond the first, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(4, max(0, (cores or 1) - 1)) if (cores or 1) > 1 else 0


class DatabaseSettings(Section):
    url: str | None = None


class HttpSettingsConfig(Section):
    user_agent: str | None = None
    contact: str | None = None
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 30.0
    total_timeout: Duration = 60.0
    max_body_size: Size = 10 * 1000**2
    max_redirects: int = Field(default=5, ge=0, le=20)
    per_host_limit: int = Field(default=2, ge=1, le=100)
    max_connections: int = Field(default=100, ge=1, le=10000)

    @field_validator("connect_timeout", "read_timeout", "total_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a timeout must be greater than zero")
        return value

    @field_validator("max_body_size")
    @classmethod
    def _positive_size(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("max_body_size must be at least 1KB")
        return value


class PollingSettings(Section):
    interval: Duration = 900.0
    jitter: Duration = 30.0
    max_backoff: Duration = 6 * 3600.0
    concurrency: int = Field(default=50, ge=1, le=1000)
    workers: int = Field(default_factory=lambda: _default_workers(), ge=0, le=64)

    @field_validator("interval")
    @classmethod
    def _min_interval(cls, value: float) -> float:
        if value < 10:
            raise ValueError("interval must be at least 10s")
        return value


class SentimentSettings(Section):
    backend: Literal["builtin", "onnx"] = "builtin"
    model_path: Path | None = None

    @model_validator(mode="after")
    def _path_for_onnx(self) -> SentimentSettings:
        if self.backend == "onnx" and self.model_path is None:
            raise ValueError("backend 'onnx' needs model_path (a local model directory)")
        return self


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "text", "json"] = "auto"


class BrandSettings(Section):
    name: str = Field(min_length=1)
    terms: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    query: str | None = None
    mute_authors: tuple[str, ...] = ()
    mute_domains: tuple[str, ...] = ()
    detection: BrandDetectionSettings = Field(default_factory=BrandDetectionSettings)
    keep_mentions: Duration | None = None  # this brand's retention (default: [retention])
    runbook: RunbookSettings | None = None  # included in every alert of this brand

    @field_validator("keep_mentions")
    @classmethod
    def _keep(cls, value: float | None) -> float | None:
        return _retention(value)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a brand name cannot be blank")
        return value.strip()

    @field_validator("terms", "exclude")
    @classmethod
    def _no_blank_terms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not term.strip() for term in value):
            raise ValueError("terms cannot be blank")
        return tuple(term.strip() for term in value)

    @field_validator("mute_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for domain in value:
            if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", domain.strip().lower()):
                raise ValueError(f"{domain!r} is not a domain name like example.com")
        return tuple(d.strip().lower() for d in value)

    @model_validator(mode="after")
    def _default_terms(self) -> BrandSettings:
        if self.query is not None and (self.terms or self.exclude):
            raise ValueError("give either query or terms/exclude, not both")
        if self.query is None and not self.terms:
            object.__setattr__(self, "terms", (self.name,))
        return self


MIN_RETENTION = 35 * 86400.0  # detection reads 28 days of baseline plus a 4-day window


def _retention(value: float | None) -> float | None:
    if value == 0:
        return None  # "0d": keep forever
    if value is not None and value < MIN_RETENTION:
        raise ValueError(
            "must be at least 35d (the detectors read 32 days of history), or 0d for forever"
        )
    return value


class RetentionSettings(Section):
    keep_mentions: Duration | None = 365 * 86400.0  # None: keep forever

    @field_validator("keep_mentions")
    @classmethod
    def _at_least(cls, value: float | None) -> float | None:
        return _retention(value)


class MetricsSettings(Section):
    listen: str | None = None  # "127.0.0.1:9108"; unset: no HTTP endpoint

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, like 127.0.0.1:9108")
        return value


class Settings(Section):
    """The whole validated configuration. ``path`` and ``secrets`` are filled by the loader."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettingsConfig = Field(default_factory=HttpSettingsConfig)
    polling: PollingSettings = Field(default_factory=PollingSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    routes: tuple[RouteSettings, ...] = ()
    brands: tuple[BrandSettings, ...] = ()
    sources: tuple[AnySource, ...] = ()
    path: Path | None = Field(default=None, exclude=True)
    secrets: frozenset[str] = Field(default=frozenset(), exclude=True)

    def source_interval(self, source: SourceSettings) -> float:
        return source.interval if source.interval is not None else self.polling.interval

    def brand(self, name: str) -> BrandSettings | None:
        """The configured brand called ``name`` (case-insensitive), or None."""
        return next((b for b in self.brands if b.name.casefold() == name.casefold()), None)


def default_database_url(env: Mapping[str, str]) -> str:
    """$STATE_DIRECTORY (systemd) or the XDG data dir, as an SQLite URL."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        base = Path(state)
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "listener"
    return f"sqlite:///{base / 'listener.db'}"


def database_url(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    return settings.database.url or default_database_url(os.environ if env is None else env)
