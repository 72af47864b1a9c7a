"""The ``[detection]`` table and each brand's ``detection`` overrides: which detectors run, and
overrides of their parameters (unset keys keep the detector's defaults)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from listener.config.units import Count, Duration, Positive, Section


class StormSettings(Section):
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


class SmoulderSettings(Section):
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


class BrandDetectionSettings(Section):
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
