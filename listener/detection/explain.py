"""Explanations: one paragraph per finding that a person can act on (alert messages, backtests)."""

from __future__ import annotations

from datetime import timedelta

from listener.models import Finding


def explain(finding: Finding) -> str:
    """One paragraph a person can act on: observed vs expected, factor, probability, voices."""
    span = finding.window_end - finding.window_start
    text = (
        f"{finding.observed} negative mentions in {_span(span)} "
        f"({finding.window_start:%Y-%m-%d %H:%M}–{finding.window_end:%H:%M} UTC), "
        f"expected {finding.expected:.1f}"
    )
    if finding.expected > 0:
        text += f" ({finding.factor:.1f}x)"
    if finding.probability is not None:
        text += f"; probability under the baseline {finding.probability:.1g}"
    elif finding.detector == "smoulder":
        text += f"; CUSUM {finding.score:.1f}"
    if finding.stories is not None:
        text += f"; {finding.stories} stories, {finding.voices} voices, {finding.domains} domains"
    if finding.share is not None and finding.expected_share is not None:
        text += f"; negative share {finding.share:.0%} (usually {finding.expected_share:.0%})"
    if finding.cold_start:
        text += "; little history yet (cold start)"
    if finding.reason:
        text += f"; {finding.reason}"
    return text


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.1f} days"
