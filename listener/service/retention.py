"""Housekeeping: retention of mentions (see ``storage/retention.py`` for the rules)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from listener.config import Settings
from listener.storage import retention


def cutoffs(settings: Settings, now: datetime) -> dict[str, datetime]:
    """Per brand: mentions with event time before this go (brands kept forever are absent)."""
    out = {}
    for brand in settings.brands:
        keep = brand.keep_mentions if brand.keep_mentions is not None else None
        if keep is None:
            keep = settings.retention.keep_mentions
        if keep is not None:
            out[brand.name] = now - timedelta(seconds=keep)
    return out


def prune(engine: Engine, settings: Settings, now: datetime) -> retention.Pruned:
    return retention.prune(engine, cutoffs(settings, now))
