"""Why, and why not: the judged windows of a replay as people read them (``listener backtest
--brand --explain`` and ``listener alerts why``): observed vs expected, score, level, the gate
that decided and the reason in words; when nothing fired, each detector's strongest window."""

from __future__ import annotations

from typing import Any

import click

from listener.cli.output import emit, iso
from listener.models import GATES
from listener.service.detect import Backtest
from listener.untrusted import for_terminal

VERDICT_COLUMNS = [
    ("judged_at", "judged at", None),
    ("detector", "detector", None),
    ("window", "window", None),
    ("observed", "observed", None),
    ("expected", "expected", None),
    ("score", "score", None),
    ("level", "level", None),
    ("gate", "gate", None),
    ("reason", "why", 70),
]


def verdict_records(result: Backtest) -> list[dict[str, Any]]:
    """One record per judged window with negative mentions (the latest judgement of each)."""
    records = []
    for judged_at, finding in result.verdicts:
        if finding.observed == 0 and not finding.firing:
            continue
        records.append(
            {
                "judged_at": iso(judged_at),
                "detector": finding.detector,
                "window": f"{finding.window_start:%H:%M}-{finding.window_end:%H:%M}",
                "window_start": iso(finding.window_start),
                "window_end": iso(finding.window_end),
                "observed": finding.observed,
                "expected": round(finding.expected, 2),
                "score": round(finding.score, 2),
                "level": finding.level,
                "gate": finding.gate,
                "reason": finding.reason or GATES.get(finding.gate, ""),
            }
        )
    return records


def report_verdicts(result: Backtest, fmt: str) -> None:
    """Print the judged windows and, in a table, a closing line on the strongest one."""
    records = verdict_records(result)
    fired = [a for a in result.alerts if a.transition.kind == "fired"]
    title = (
        f"{result.brand}: {len(records)} judged windows with negative mentions from "
        f"{iso(result.since)} to {iso(result.until)}, {len(fired)} alerts"
    )
    columns = VERDICT_COLUMNS
    if fmt == "csv":
        columns = [(k, k, None) for k in records[0]] if records else columns
    if fmt == "table" and not records:
        click.echo(for_terminal(title + "; no negative mentions judged in the period"))
        return
    emit(records, fmt, columns=columns, title=title)
    if fmt != "table" or not result.verdicts:
        return
    if fired:
        return
    for detector in sorted({f.detector for _, f in result.verdicts}):
        strongest = max(
            (f for _, f in result.verdicts if f.detector == detector), key=lambda f: f.score
        )
        click.echo(
            for_terminal(
                f"No {detector} alert. Strongest: {strongest.observed} observed vs "
                f"{strongest.expected:.1f} expected (score {strongest.score:.1f}) in "
                f"{strongest.window_start:%H:%M}-{strongest.window_end:%H:%M}, held by "
                f"{strongest.gate or '-'}: {strongest.reason or GATES.get(strongest.gate, '')}"
            )
        )
