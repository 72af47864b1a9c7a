"""``listener backtest``: replay a count series or the stored history through the detectors.

Contract of ``--series IN.csv --output OUT.csv``: IN has the header ``timestamp,value``, one row
per bucket, oldest first, ISO-8601 UTC timestamps and integer counts, any fixed bucket width
(inferred); it is the negative-mention series of one brand. OUT gets the header
``timestamp,severity,score`` and one row per alert raised (an episode opening), ``timestamp``
copied from IN's row of the bucket at which it fired. The decision for a bucket uses only rows up
to that bucket. Missing rows (zero-count buckets left out by a GROUP BY) count as zero.
"""

from __future__ import annotations

import csv
import itertools
import sys
from collections import Counter
from dataclasses import MISSING, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.cli.why import report_verdicts
from listener.config import parse_duration
from listener.detection.monitor import explain, run
from listener.detection.registry import REGISTRY, DetectionParams, with_overrides
from listener.detection.series import Series
from listener.errors import ConfigError, InputError
from listener.service.detect import backtest, detection_params
from listener.untrusted import for_terminal


def _detector_options(func: Any) -> Any:
    """--<detector>-<param> (--storm-min-count, ...) for every registered detector's parameters."""
    for prefix, spec in reversed(REGISTRY.items()):
        for f in reversed(fields(spec.params)):
            default = f.default if f.default is not MISSING else None
            if f.name == "windows":
                kind: Any = str
                shown = ",".join(f"{int(s)}s" for s in default)  # type: ignore[union-attr]
            elif f.name in spec.durations:
                kind, shown = str, f"{int(default)}s"  # type: ignore[arg-type]
            else:
                kind, shown = type(default), str(default)
            func = click.option(
                f"--{prefix}-{f.name.replace('_', '-')}",
                f"{prefix}__{f.name}",
                type=kind,
                default=None,
                help=f"{prefix} {f.name} (default {shown}).",
            )(func)
    return func


def _overrides(options: dict[str, Any], prefix: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in options.items():
        if value is None or not key.startswith(prefix + "__"):
            continue
        name = key[len(prefix) + 2 :]
        try:
            if name == "windows":
                value = tuple(parse_duration(part) for part in str(value).split(","))
            elif name in REGISTRY[prefix].durations:
                value = parse_duration(value)
        except ValueError as exc:
            option = f"--{prefix}-{name.replace('_', '-')}"
            raise click.BadParameter(str(exc), param_hint=option) from None
        found[name] = value
    return found


@cli.command("backtest")
@config_option
@click.option(
    "--series",
    "series_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A CSV of timestamp,value rows: one brand's negative mentions per bucket.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="With --series: where to write timestamp,severity,score rows ('-': stdout).",
)
@click.option("--brand", help="Replay this brand's stored history instead.")
@click.option(
    "--since",
    default="90d",
    show_default=True,
    help="With --brand: from this time on (90d, or an ISO date).",
)
@click.option("--until", help="With --brand: before this time (default: now).")
@click.option(
    "--explain",
    "explain_",
    is_flag=True,
    help="With --brand: every judged window with negative mentions: observed vs expected, "
    "score, and the gate that decided.",
)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    type=click.Choice(list(REGISTRY)),
    help="Run only this detector (repeatable; default: all configured).",
)
@_detector_options
@format_option
@pass_app
def backtest_command(
    app: App,
    /,
    series_path: str | None,
    output_path: str | None,
    brand: str | None,
    since: str,
    until: str | None,
    explain_: bool,
    detectors: tuple[str, ...],
    fmt: str | None,
    **options: Any,
) -> None:
    """Replay history through the detectors and list the alerts that would have fired."""
    if (series_path is None) == (brand is None):
        raise click.UsageError("give either --series IN.csv --output OUT.csv, or --brand NAME")
    overrides = {name: _overrides(options, name) for name in REGISTRY}
    if series_path is not None:
        if output_path is None:
            raise click.UsageError("--series needs --output OUT.csv ('-' for stdout)")
        base = detection_params(app.settings()) if app.config_path else DetectionParams()
        params = with_overrides(base, overrides, detectors or None)
        _backtest_series(series_path, output_path, params)
        return
    assert brand is not None
    settings = app.settings()
    match = [b for b in settings.brands if b.name.casefold() == brand.casefold()]
    if not match:
        known = ", ".join(b.name for b in settings.brands) or "none"
        raise ConfigError(f"brand {brand!r} is not in the configuration (brands: {known})")
    now = datetime.now(UTC)
    params = with_overrides(detection_params(settings, match[0]), overrides, detectors or None)
    result = backtest(
        app.engine(),
        settings,
        match[0],
        since=parse_when(since, "--since", now),
        until=parse_when(until, "--until", now) if until else now,
        params=params,
        explain=explain_,
    )
    if explain_:
        report_verdicts(result, resolve_format(fmt))
        return
    _report(result, resolve_format(fmt))


# -- --series -----------------------------------------------------------------------------------


def read_series(stream: TextIO, name: str) -> tuple[list[str], list[datetime], list[int]]:
    """Rows of a timestamp,value CSV: raw timestamps, parsed UTC times, counts."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise InputError(f"{name}: empty file; expected the header 'timestamp,value'")
    if [h.strip().lstrip("\ufeff").lower() for h in header] != ["timestamp", "value"]:
        shown = for_terminal(",".join(header))[:80]
        raise InputError(f"{name}:1: header is {shown!r}; expected 'timestamp,value'")
    raw: list[str] = []
    times: list[datetime] = []
    values: list[int] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise InputError(f"{name}:{line}: expected 2 fields (timestamp,value), got {len(row)}")
        stamp, value = row[0].strip(), row[1].strip()
        when = _parse_time(stamp, name, line)
        try:
            count = int(value)
        except ValueError:
            raise InputError(
                f"{name}:{line}: value {for_terminal(value)[:40]!r} is not an integer count"
            ) from None
        if count < 0:
            raise InputError(f"{name}:{line}: value {count} is negative")
        if times and when <= times[-1]:
            raise InputError(
                f"{name}:{line}: timestamp {for_terminal(stamp)[:40]} is not after the row before"
            )
        raw.append(stamp)
        times.append(when)
        values.append(count)
    if len(times) < 2:
        raise InputError(f"{name}: needs at least 2 rows to infer the bucket width")
    return raw, times, values


def _parse_time(stamp: str, name: str, line: int) -> datetime:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{name}:{line}: timestamp {for_terminal(stamp)[:40]!r} is not ISO-8601 "
            "(like 2026-01-05T10:00:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def infer_width(times: list[datetime], name: str) -> timedelta:
    """The bucket width: the most common step; every step must be a whole number of it."""
    steps = Counter(b - a for a, b in itertools.pairwise(times))
    width = min(step for step, n in steps.items() if n == max(steps.values()))
    for i, (a, b) in enumerate(itertools.pairwise(times)):
        if (b - a) % width:
            raise InputError(
                f"{name}:{i + 3}: step {b - a} is not a multiple of the bucket width {width}"
            )
    return width


def _backtest_series(series_path: str, output_path: str, params: DetectionParams) -> None:
    name = "<stdin>" if series_path == "-" else series_path
    try:
        if series_path == "-":
            raw, times, values = read_series(sys.stdin, name)
        else:
            with Path(series_path).open(newline="", encoding="utf-8") as stream:
                raw, times, values = read_series(stream, name)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    width = infer_width(times, name)
    index_of = {(t - times[0]) // width: i for i, t in enumerate(times)}
    counts = [0] * (((times[-1] - times[0]) // width) + 1)
    for t, v in zip(times, values, strict=True):
        counts[(t - times[0]) // width] = v
    series = Series.from_counts(times[0], width, counts)
    rows = []
    for transition in run(series, params):
        if transition.kind != "fired":
            continue
        row = index_of.get(transition.index)
        stamp = raw[row] if row is not None else iso(series.time_of(transition.index))
        rows.append((stamp, transition.severity, f"{transition.finding.score:.2f}"))
    _write_rows(output_path, rows)
    if output_path != "-":
        click.echo(
            f"{len(values)} buckets of {_width(width)}, {len(rows)} alerts written to "
            f"{for_terminal(output_path)}",
            err=True,
        )


def _write_rows(path: str, rows: list[tuple[str | None, str, str]]) -> None:
    try:
        if path == "-":
            _write_csv(sys.stdout, rows)
            return
        target = Path(path)
        temporary = target.with_name(target.name + ".tmp")
        with temporary.open("w", newline="", encoding="utf-8") as stream:
            _write_csv(stream, rows)
        temporary.replace(target)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def _write_csv(stream: TextIO, rows: list[tuple[str | None, str, str]]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["timestamp", "severity", "score"])
    writer.writerows(rows)


def _width(width: timedelta) -> str:
    seconds = int(width.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


# -- --brand ------------------------------------------------------------------------------------


def _report(result: Any, fmt: str) -> None:
    records = []
    opened: dict[str, datetime] = {}
    for item in result.alerts:
        t = item.transition
        if t.kind == "fired":
            opened[t.detector] = item.judged_at
        records.append(
            {
                "judged_at": iso(item.judged_at),
                "event": t.kind,
                "detector": t.detector,
                "severity": t.severity,
                "score": round(t.finding.score, 2),
                "time_to_detect": _ttd(item.judged_at - t.finding.window_start)
                if t.kind != "resolved"
                else None,
                "observed": t.finding.observed,
                "expected": round(t.finding.expected, 2),
                "explanation": explain(t.finding),
            }
        )
    title = (
        f"{result.brand}: {sum(r['event'] == 'fired' for r in records)} alerts from "
        f"{iso(result.since)} to {iso(result.until)} ({result.mentions} mentions replayed)"
    )
    if fmt == "table" and not records:
        click.echo(for_terminal(title))
        return
    columns = [
        ("judged_at", "judged at", None),
        ("event", "event", None),
        ("detector", "detector", None),
        ("severity", "severity", None),
        ("time_to_detect", "time to detect", None),
        ("explanation", "explanation", 90),
    ]
    if fmt == "csv":
        columns = [(k, k, None) for k in records[0]] if records else columns
    emit(records, fmt, columns=columns, title=title)


def _ttd(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"
