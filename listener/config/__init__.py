"""Configuration: TOML file -> validated, frozen settings.

The package, by table: ``units`` (durations, sizes, times of day, quiet hours: parsed here and
nowhere else), ``sources`` (one class per kind), ``detection``, ``routes`` (routes, alerts,
runbooks), ``settings`` (the whole ``Settings`` and the general tables), ``loading`` (file,
interpolation, one-line errors). Import names from ``listener.config``; they are all here.
Checks that need more than the file (queries, apprise URLs, the sentiment model) live in
``listener.checks``.
"""

from listener.config.detection import (
    BrandDetectionSettings,
    DetectionSettings,
    DetectorName,
    SmoulderSettings,
    StormSettings,
)
from listener.config.loading import find_config_path, load_config, validate_config
from listener.config.routes import AlertSettings, RouteSettings, RunbookEntry, RunbookSettings
from listener.config.settings import (
    MIN_RETENTION,
    BrandSettings,
    DatabaseSettings,
    HttpSettingsConfig,
    LogSettings,
    MetricsSettings,
    PollingSettings,
    RetentionSettings,
    SentimentSettings,
    Settings,
    database_url,
    default_database_url,
)
from listener.config.sources import JSON_FIELDS, KINDS, AnySource, SourceKind, SourceSettings
from listener.config.units import (
    Count,
    Duration,
    Positive,
    QuietWindow,
    Size,
    TimeOfDay,
    parse_duration,
    parse_quiet_hours,
    parse_size,
)

__all__ = [
    "JSON_FIELDS",
    "KINDS",
    "MIN_RETENTION",
    "AlertSettings",
    "AnySource",
    "BrandDetectionSettings",
    "BrandSettings",
    "Count",
    "DatabaseSettings",
    "DetectionSettings",
    "DetectorName",
    "Duration",
    "HttpSettingsConfig",
    "LogSettings",
    "MetricsSettings",
    "PollingSettings",
    "Positive",
    "QuietWindow",
    "RetentionSettings",
    "RouteSettings",
    "RunbookEntry",
    "RunbookSettings",
    "SentimentSettings",
    "Settings",
    "Size",
    "SmoulderSettings",
    "SourceKind",
    "SourceSettings",
    "StormSettings",
    "TimeOfDay",
    "database_url",
    "default_database_url",
    "find_config_path",
    "load_config",
    "parse_duration",
    "parse_quiet_hours",
    "parse_size",
    "validate_config",
]
