"""Configuration: TOML file -> validated, frozen settings.

Rules:
- The file is found by ``find_config_path``: ``--config PATH``, else ``$LISTENER_CONFIG``, else
  ``./listener.toml``, else ``$XDG_CONFIG_HOME/listener/config.toml``, else
  ``/etc/listener/config.toml``.
- ``${NAME}`` in any string is replaced by the environment variable NAME, ``${file:PATH}`` by the
  stripped content of a file (systemd credentials), ``$${`` is a literal ``${``. Values that came
  from there are secrets: ``Settings.secrets`` holds them so that they can be masked.
- Unknown keys are errors with a did-you-mean. Every error is one line naming the file, the key
  path (``sources[2].interval``), the bad value and a hint.
- Durations are strings with units ("90s", "15m", "1h30m", "7d") parsed here and nowhere else;
  sizes are "10MB" style strings or plain byte counts.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from listener.errors import ConfigError

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
_INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}")


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


def _default_workers() -> int:
    """Worker processes for parsing and matching: one per core beyond the first, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(4, max(0, (cores or 1) - 1)) if (cores or 1) > 1 else 0


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    return value


class DatabaseSettings(_Section):
    url: str | None = None


class HttpSettingsConfig(_Section):
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


class PollingSettings(_Section):
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


class SentimentSettings(_Section):
    backend: Literal["builtin", "onnx"] = "builtin"
    model_path: Path | None = None

    @model_validator(mode="after")
    def _path_for_onnx(self) -> SentimentSettings:
        if self.backend == "onnx" and self.model_path is None:
            raise ValueError("backend 'onnx' needs model_path (a local model directory)")
        return self


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "text", "json"] = "auto"


Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]


class StormSettings(_Section):
    """Overrides of the storm detector's parameters; unset keys keep its defaults
    (``listener.detection.storm.StormParams``)."""

    windows: tuple[Duration, ...] | None = None
    baseline_days: Count | None = None
    min_count: Count | None = None
    min_factor: Positive | None = None
    warning_score: Positive | None = None
    critical_score: Positive | None = None
    critical_factor: Positive | None = None
    min_stories: Count | None = None
    min_voices: Count | None = None
    min_cv: Annotated[float, Field(ge=0)] | None = None
    per_voice_cap: Count | None = None
    clear_factor: Positive | None = None
    clear_after: Duration | None = None
    cold_start_days: Annotated[float, Field(ge=0)] | None = None
    cold_start_count: Count | None = None
    min_history_buckets: Count | None = None
    rate_floor: Annotated[float, Field(ge=0, le=1)] | None = None
    tail_days: Count | None = None
    tail_budget: Annotated[float, Field(ge=0)] | None = None
    size_budget: Annotated[float, Field(ge=0)] | None = None
    refractory: Duration | None = None
    refractory_margin: Annotated[float, Field(ge=1)] | None = None


class SmoulderSettings(_Section):
    """Overrides of the smoulder detector's parameters (``SmoulderParams``)."""

    baseline_days: Count | None = None
    window_days: Positive | None = None
    ratio: Annotated[float, Field(gt=1)] | None = None
    threshold: Positive | None = None
    critical_threshold: Positive | None = None
    min_excess: Count | None = None
    min_stories: Count | None = None
    min_voices: Count | None = None
    per_voice_cap: Count | None = None
    clear_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    hold_ratio: Positive | None = None
    share_ratio: Positive | None = None
    clear_after: Duration | None = None
    min_history_days: Annotated[float, Field(ge=0)] | None = None
    min_duration: Duration | None = None


DetectorName = Literal["storm", "smoulder"]


class BrandDetectionSettings(_Section):
    """Per-brand overrides, on top of ``[detection]``."""

    detectors: tuple[DetectorName, ...] | None = None
    storm: StormSettings = Field(default_factory=StormSettings)
    smoulder: SmoulderSettings = Field(default_factory=SmoulderSettings)


class DetectionSettings(BrandDetectionSettings):
    bucket: Duration = 300.0
    lateness: Duration = 1200.0

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: float) -> float:
        if value < 60 or value > 86400:
            raise ValueError("bucket must be between 1m and 1d")
        return value


class RunbookEntry(_Section):
    """What the team does when an alert fires: a short text, a link, or both."""

    text: str = ""
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)


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


class BrandSettings(_Section):
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


JSON_FIELDS = frozenset(
    {
        "id", "title", "text", "url", "author", "published", "reach", "points", "likes",
        "reposts", "replies", "language", "html", "next",
    }
)  # fmt: skip


class SourceSettings(_Section):
    name: str = Field(min_length=1)
    kind: Literal[
        "feed",
        "google_news",
        "reddit",
        "youtube",
        "mastodon",
        "hackernews",
        "bluesky",
        "lemmy",
        "stackexchange",
        "json",
    ] = "feed"
    url: str | None = None
    interval: Duration | None = None
    enabled: bool = True
    headers: dict[str, str] = Field(default_factory=dict)
    # URL builders, and search kinds
    query: str | None = None
    language: str | None = None
    country: str | None = None
    subreddit: str | None = None
    channel_id: str | None = None
    instance: str | None = None
    hashtag: str | None = None
    # API kinds
    base_url: str | None = None
    page_cap: int = Field(default=5, ge=1, le=100)
    cross_origin_redirects: bool = False
    client_id: str | None = None
    client_secret: str | None = None
    identifier: str | None = None
    app_password: str | None = None
    token: str | None = None
    api_key: str | None = None
    site: str | None = None
    items_path: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("url", "base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @field_validator("interval")
    @classmethod
    def _min_interval(cls, value: float | None) -> float | None:
        if value is not None and value < 10:
            raise ValueError("interval must be at least 10s")
        return value

    @model_validator(mode="after")
    def _fields_for_kind(self) -> SourceSettings:
        required = {
            "feed": ("url",),
            "google_news": ("query",),
            "hackernews": ("query",),
            "bluesky": ("query",),
            "lemmy": ("instance", "query"),
            "stackexchange": ("query", "site"),
            "json": ("url", "items_path"),
        }.get(self.kind, ())
        for key in required:
            value = getattr(self, key)
            if value is None or (key != "items_path" and not value):
                raise ValueError(f"a source of kind '{self.kind}' needs '{key}'")
        unknown = sorted(set(self.fields) - JSON_FIELDS)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(JSON_FIELDS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"fields.{unknown[0]} is not a field listener knows{hint} "
                f"(known: {', '.join(sorted(JSON_FIELDS))})"
            )
        if self.kind == "reddit" and not (self.subreddit or self.query):
            raise ValueError("a source of kind 'reddit' needs 'subreddit' or 'query'")
        if self.kind == "reddit" and bool(self.client_id) != bool(self.client_secret):
            raise ValueError("reddit app credentials need both 'client_id' and 'client_secret'")
        if self.kind == "youtube" and not (self.channel_id or self.query):
            raise ValueError("a source of kind 'youtube' needs 'channel_id' or 'query'")
        if self.kind == "youtube" and self.query and not self.api_key:
            raise ValueError(
                "youtube search needs 'api_key' (a YouTube Data API key); channel feeds "
                "('channel_id' alone) need none"
            )
        if self.kind == "mastodon" and not (self.instance and (self.hashtag or self.query)):
            raise ValueError(
                "a source of kind 'mastodon' needs 'instance' and 'hashtag' or 'query'"
            )
        if self.kind == "mastodon" and self.query and not self.token:
            raise ValueError(
                "mastodon status search needs 'token' (an access token of the instance); "
                "hashtag timelines need none"
            )
        if self.kind == "bluesky" and not (self.identifier and self.app_password):
            raise ValueError(
                "bluesky needs 'identifier' and 'app_password' (create an app password in "
                "the Bluesky settings): unauthenticated search was closed in 2025"
            )
        if self.kind == "json" and not (
            {"id", "title"} <= set(self.fields) or "text" in self.fields
        ):
            raise ValueError(
                "a source of kind 'json' needs fields.id and fields.title or fields.text"
            )
        if self.kind not in ("feed", "json") and self.url is not None:
            raise ValueError(f"'url' is built from the other keys for kind '{self.kind}'")
        return self


_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


def parse_quiet_hours(value: str) -> tuple[int, int, str]:
    """ "22:00-07:00 Europe/Berlin" -> (start minute of day, end minute of day, time zone)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


class RouteSettings(_Section):
    name: str = Field(min_length=1)
    urls: tuple[str, ...] = Field(min_length=1)
    min_severity: Literal["warning", "critical"] = "warning"
    brands: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    format: Literal["text", "markdown", "html"] = "text"
    quiet_hours: str | None = None
    critical_ignores_quiet_hours: bool = True
    max_per_hour: int = Field(default=20, ge=1)
    repeat_interval: Duration | None = None
    digest: Literal["daily", "weekly"] | None = None  # a summary instead of single alerts
    digest_at: str = "08:00 UTC"  # local time of day (weekly: on Mondays)
    send_timeout: Duration = 60.0  # one attempt at one URL, connect to answer

    @field_validator("send_timeout")
    @classmethod
    def _send_timeout(cls, value: float) -> float:
        if not 1 <= value <= 600:
            raise ValueError("must be between 1s and 10m")
        return value

    @field_validator("digest_at")
    @classmethod
    def _digest_at(cls, value: str) -> str:
        parse_quiet_hours(f"{value.split()[0]}-{value.split()[0]} {' '.join(value.split()[1:])}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)
        return value


MIN_RETENTION = 35 * 86400.0  # detection reads 28 days of baseline plus a 4-day window


def _retention(value: float | None) -> float | None:
    if value == 0:
        return None  # "0d": keep forever
    if value is not None and value < MIN_RETENTION:
        raise ValueError(
            "must be at least 35d (the detectors read 32 days of history), or 0d for forever"
        )
    return value


class RetentionSettings(_Section):
    keep_mentions: Duration | None = 365 * 86400.0  # None: keep forever

    @field_validator("keep_mentions")
    @classmethod
    def _at_least(cls, value: float | None) -> float | None:
        return _retention(value)


class MetricsSettings(_Section):
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


class AlertSettings(_Section):
    repeat_interval: Duration = 4 * 3600.0
    retry_for: Duration = 24 * 3600.0
    inhibit: bool = True
    source_down_after: Duration = 3600.0
    pending_for: Duration = 0.0


class Settings(_Section):
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
    sources: tuple[SourceSettings, ...] = ()
    path: Path | None = Field(default=None, exclude=True)
    secrets: frozenset[str] = Field(default=frozenset(), exclude=True)

    def source_interval(self, source: SourceSettings) -> float:
        return source.interval if source.interval is not None else self.polling.interval

    def brand(self, name: str) -> BrandSettings | None:
        """The configured brand called ``name`` (case-insensitive), or None."""
        return next((b for b in self.brands if b.name.casefold() == name.casefold()), None)


def find_config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """Return the config file to use, in the documented order of precedence."""
    if explicit:
        return Path(explicit)
    if env.get("LISTENER_CONFIG"):
        return Path(env["LISTENER_CONFIG"])
    candidates = [Path("listener.toml")]
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    candidates.append(Path(xdg) / "listener" / "config.toml")
    candidates.append(Path("/etc/listener/config.toml"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no configuration file found (looked in {searched}); "
        "hint: run `listener init` for a starter, pass --config PATH or set LISTENER_CONFIG "
        "(every key: `listener config example`)"
    )


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Find, read, interpolate and validate the configuration. Raises ConfigError."""
    env = os.environ if env is None else env
    file = find_config_path(path, env)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: file not found; hint: check --config and LISTENER_CONFIG"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}; hint: check quoting and brackets") from exc
    return validate_config(raw, file=file, env=env)


def validate_config(raw: dict[str, Any], *, file: Path, env: Mapping[str, str]) -> Settings:
    """Validate an already parsed TOML document. Every problem is reported at once: the
    ConfigError's message is the first, ``more`` the others (missing variables, bad values)."""
    secrets: set[str] = set()
    problems: list[tuple[str, ConfigError]] = []  # (key path, error)
    data = _interpolate(raw, "", file, env, secrets, problems)
    errors = [error for _, error in problems]
    unresolved = [where for where, _ in problems]
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        for where, message in _describe_all(exc, file, secrets):
            # a value that could not be interpolated is already reported; its knock-on errors
            # (an empty URL, or a table's check that it is missing) would only confuse
            if not any(_related(where, u) for u in unresolved):
                errors.append(ConfigError(message))
    if settings is not None:
        for table in ("brands", "sources", "routes"):
            seen: dict[str, int] = {}
            for index, entry in enumerate(getattr(settings, table)):
                first = seen.setdefault(entry.name.casefold(), index)
                if first != index:
                    errors.append(
                        ConfigError(
                            f"{file}: {table}[{index}].name: duplicate name {entry.name!r} "
                            f"(also {table}[{first}]); hint: names must be unique"
                        )
                    )
    if errors or settings is None:
        raise ConfigError.of(errors or [ConfigError(f"{file}: invalid configuration")])
    return settings.model_copy(update={"path": file, "secrets": frozenset(secrets)})


def _related(where: str, unresolved: str) -> bool:
    """Whether key path ``where`` is ``unresolved``, inside it, or a table that contains it."""
    if where == unresolved or not where:
        return True
    inner, outer = (where, unresolved) if len(where) > len(unresolved) else (unresolved, where)
    return inner.startswith((outer + ".", outer + "["))


def _interpolate(
    value: Any,
    where: str,
    file: Path,
    env: Mapping[str, str],
    secrets: set[str],
    problems: list[tuple[str, ConfigError]],
) -> Any:
    """``value`` with ${NAME} and ${file:/path} replaced; a reference that cannot be resolved is
    added to ``problems`` (and left empty) so that one run names every missing variable."""
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{where}.{k}" if where else k, file, env, secrets, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, f"{where}[{i}]", file, env, secrets, problems)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name.startswith("file:"):
            try:
                secret = Path(name[5:]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(
                    (
                        where,
                        ConfigError(
                            f"{file}: {where}: cannot read secret file {name[5:]!r} "
                            f"({exc.strerror}); hint: check the path and its permissions"
                        ),
                    )
                )
                return ""
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            if name not in env:
                problems.append(
                    (
                        where,
                        ConfigError(
                            f"{file}: {where}: environment variable {name} is not set; "
                            f"hint: export {name}=... or put it in the service's EnvironmentFile"
                        ),
                    )
                )
                return ""
            secret = env[name]
        else:
            problems.append(
                (
                    where,
                    ConfigError(
                        f"{file}: {where}: invalid reference ${{{name}}}; hint: use ${{NAME}} "
                        "for an environment variable or ${file:/path} for a file"
                    ),
                )
            )
            return ""
        if secret:
            secrets.add(secret)
        return secret

    return _INTERPOLATION.sub(replace, value)


def _describe_all(exc: ValidationError, file: Path, secrets: set[str]) -> list[tuple[str, str]]:
    """(key path, one line) for every validation error, each location once."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for error in exc.errors():
        where = _key_path([part for part in error["loc"] if not _is_union_tag(part)])
        if where not in seen:
            seen.add(where)
            out.append((where, _describe(error, file, secrets)))
    return out


def _describe(error: Any, file: Path, secrets: set[str]) -> str:
    """One line for one validation error: file, key path, bad value, hint."""
    loc = [part for part in error["loc"] if not _is_union_tag(part)]
    where = _key_path(loc)
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"{file}: {where}: unknown key; hint: {hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {_show(value, secrets)})"
    if error["type"] == "missing":
        return f"{file}: {where}: required key is missing; hint: add {loc[-1]} = ..."
    if error["type"] == "literal_error":
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(value), expected, n=1)
        hint = f"; hint: did you mean '{close[0]}'?" if close else ""
        return f"{file}: {where}: {message}{shown}{hint}"
    if error["type"] in ("tuple_type", "list_type"):
        message = 'expected a list, e.g. ["a", "b"]'
    hint = _HINTS.get(str(loc[-1]) if loc else "", "")
    return f"{file}: {where or '(top level)'}: {message}{shown}{'; hint: ' + hint if hint else ''}"


_HINTS = {
    "url": "write the full URL, e.g. https://example.org/feed.xml",
    "terms": 'write a list of strings: terms = ["Brand", "#brand"]',
    "brands": "each brand is a [[brands]] table with name and terms",
    "sources": "each source is a [[sources]] table with name, kind and url",
}


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _key_path(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: object, secrets: set[str]) -> str:
    text = repr(value)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text if len(text) <= 80 else text[:77] + "..."


def _fields_at(loc: list[int | str]) -> list[str]:
    """The field names of the model found by walking ``loc`` from Settings."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        inner = _model_in(field.annotation)
        if inner is None:
            break
        model = inner
    return [name for name in model.model_fields if name not in ("path", "secrets")]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


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
