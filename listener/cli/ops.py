"""Operator commands: ``listener status`` (daemons, sources, alerts, outbox, database) and
``listener stats`` (a terminal chart of a brand's volume and negative share)."""

from __future__ import annotations

import os
import sys
from bisect import bisect_right
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from sqlalchemy import text

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.output import emit, format_option, iso, resolve_format, table_width
from listener.errors import ConfigError, StorageError
from listener.storage import alerts as alert_store
from listener.storage import instances, leases, store
from listener.storage import outbox as outbox_store
from listener.storage.engine import probe
from listener.untrusted import escape_json_unsafe, for_terminal


@cli.command("status")
@config_option
@format_option
@pass_app
def status(app: App, fmt: str | None) -> None:
    """Daemons (heartbeats, leader, brands evaluated, last cycle), sources, firing alerts,
    outbox, database size and health (exit 1 when the database fails a read or a rolled-back
    write)."""
    engine = app.engine()
    now = datetime.now(UTC)
    found = probe(engine)
    problem = f"failing ({found[0]}): {found[1]}" if found else None
    try:
        _status(engine, now, problem, resolve_format(fmt))
    except StorageError as exc:
        if problem is None:
            raise
        click.echo(f"database: {for_terminal(problem)} ({for_terminal(str(exc))})")
        raise SystemExit(1) from None
    if problem is not None:
        raise SystemExit(1)


def _status(engine: Any, now: datetime, problem: str | None, output: str) -> None:
    # PostgreSQL: the brands each instance holds a detection lease of; SQLite: all (None)
    held = leases.held(engine, now) if engine.dialect.name == "postgresql" else None
    daemons = [
        {
            "instance": row.id,
            "leader": row.leader,
            "brands": held.get(row.id, 0) if held is not None else None,
            "seen": f"{int((now - row.seen_at).total_seconds())} s ago",
            "last_cycle_at": iso(row.last_cycle_at),
            "started_at": iso(row.started_at),
            "version": row.version,
        }
        for row in instances.instances(engine)
    ]
    with store.transaction(engine, "cannot read sources") as conn:
        states = store.load_states(conn)
    failing = {n: s for n, s in states.items() if s.consecutive_errors or s.disabled_reason}
    firing = alert_store.list_alerts(engine, state="firing", limit=1000)
    backlog = outbox_store.backlog(engine)
    record: dict[str, Any] = {
        "daemons": daemons,
        "sources": len(states),
        "sources_failing": {
            name: (state.disabled_reason or state.last_error or "")
            for name, state in failing.items()
        },
        "last_poll_at": iso(
            max((s.last_attempt_at for s in states.values() if s.last_attempt_at), default=None)
        ),
        "alerts_firing": [f"#{a.id} {a.severity} {a.detector} {a.brand}".rstrip() for a in firing],
        "outbox_pending": backlog["pending"],
        "outbox_dead": backlog["dead"],
        "database_bytes": _database_size(engine),
        "database_problem": problem,
    }
    if output != "table":
        emit([record], output, columns=[(k, k, None) for k in record], title="")
        return
    if not daemons:
        click.echo("daemons: none running (no heartbeat in the last day)")
    for d in daemons:
        role = "leader" if d["leader"] else "follower"
        brands = "all brands" if d["brands"] is None else f"{d['brands']} brands"
        click.echo(
            f"daemon {for_terminal(d['instance'])}: {role}, {brands}, seen {d['seen']}, "
            f"last cycle {d['last_cycle_at'] or '-'}"
        )
    click.echo(
        f"sources: {len(states)}, {len(failing)} failing; last poll {record['last_poll_at']}"
    )
    for name, why in record["sources_failing"].items():
        click.echo(f"  {for_terminal(name)}: {for_terminal(why)[:160]}")
    click.echo(f"alerts firing: {len(firing)}")
    for line in record["alerts_firing"][:20]:
        click.echo(f"  {for_terminal(line)}")
    click.echo(f"outbox: {backlog['pending']} pending, {backlog['dead']} dead")
    size = record["database_bytes"]
    click.echo(f"database: {size / 1024 / 1024:.1f} MB" if size is not None else "database: -")
    if problem is not None:
        click.echo(f"database: {for_terminal(problem)}")


def _database_size(engine: Any) -> int | None:
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:":
            return None
        files = (Path(path), Path(f"{path}-wal"))
        return sum(p.stat().st_size for p in files if p.exists())
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar())


def local_zone() -> tzinfo:
    """The machine's time zone: $TZ, else /etc/localtime's zone name, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = str(Path("/etc/localtime").readlink())
        except OSError:
            target = ""
        name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_option(value: str | None) -> tzinfo:
    if value is None:
        return local_zone()
    try:
        return UTC if value.upper() == "UTC" else ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{value!r} is not a time zone (e.g. Europe/Berlin, UTC)", param_hint="--tz"
        ) from None


def buckets(now: datetime, since: datetime, width: str, zone: tzinfo) -> list[datetime]:
    """Bucket starts (UTC) aligned to whole hours, days or weeks (Mondays) of ``zone``, the last
    one holding ``now``, as many as it takes to cover ``since`` (no partial bucket in front)."""
    local = now.astimezone(zone)
    if width == "hour":
        current = local.replace(minute=0, second=0, microsecond=0)
    else:
        current = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if width == "week":
            current -= timedelta(days=current.weekday())
    span = now - since
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
    count = max(1, round(span / step[width]))
    starts = []
    for back in range(count - 1, -1, -1):
        if width == "hour":  # hours step in UTC: a DST change neither skips nor repeats one
            starts.append(current.astimezone(UTC) - back * step["hour"])
        else:  # days and weeks step in local dates: midnight stays midnight across DST
            day = (current.date() - back * step[width]).isoformat()
            moment = datetime.fromisoformat(day).replace(tzinfo=zone)
            starts.append(moment.astimezone(UTC))
    return starts


def _auto_width(span: timedelta) -> str:
    if span <= timedelta(hours=36):
        return "hour"
    return "day" if span <= timedelta(days=60) else "week"


@cli.command("stats")
@config_option
@click.option(
    "--brand",
    "brands",
    multiple=True,
    required=True,
    help="The brand to chart; give it twice or more to compare brands (share of voice).",
)
@click.option("--since", default="7d", show_default=True, help="From (24h, 7d, or an ISO date).")
@click.option(
    "--bucket",
    default="auto",
    show_default=True,
    help="Bar width: hour, day, week (1h and 1d also work), or auto: one screen at most.",
)
@click.option(
    "--tz",
    "zone_name",
    help="Time zone the bars are aligned to and labelled in (default: the machine's).",
)
@format_option
@pass_app
def stats(
    app: App,
    brands: tuple[str, ...],
    since: str,
    bucket: str,
    zone_name: str | None,
    fmt: str | None,
) -> None:
    """A terminal chart of mentions per hour, day or week and their negative share; with
    several --brand, side by side with each brand's share of voice."""
    settings = app.settings()
    names = {b.name.casefold(): b.name for b in settings.brands}
    chosen = []
    for brand in brands:
        if brand.casefold() not in names:
            raise ConfigError(f"brand {brand!r} is not in the configuration")
        if names[brand.casefold()] not in chosen:
            chosen.append(names[brand.casefold()])
    zone = zone_option(zone_name)
    now = datetime.now(UTC)
    start = parse_when(since, "--since", now)
    if start >= now:
        raise click.BadParameter("must be in the past", param_hint="--since")
    width = {"1h": "hour", "1d": "day", "1w": "week", "7d": "week"}.get(bucket, bucket)
    if width == "auto":
        width = _auto_width(now - start)
    if width not in ("hour", "day", "week"):
        raise click.BadParameter("use hour, day, week or auto", param_hint="--bucket")
    starts = buckets(now, start, width, zone)
    if len(starts) > 5000:
        raise click.BadParameter("too many bars; use a wider --bucket", param_hint="--bucket")
    ends = [*starts[1:], now + timedelta(seconds=1)]
    series: dict[str, tuple[list[int], list[int]]] = {}
    for brand in chosen:
        total, negative = [0] * len(starts), [0] * len(starts)
        rows = store.detection_rows(app.engine(), brand, since=starts[0], until=ends[-1])
        for row in rows:
            index = bisect_right(starts, row.event_at) - 1
            if 0 <= index < len(starts):
                total[index] += 1
                negative[index] += row.negative
        series[brand] = (total, negative)
    label = "%a %d %b %H:%M" if width == "hour" else "%a %d %b %Y"
    records = [
        {
            "start": iso(at),
            "local": at.astimezone(zone).strftime(label),
            "brand": brand,
            "mentions": series[brand][0][i],
            "negative": series[brand][1][i],
            "negative_share": round(series[brand][1][i] / series[brand][0][i], 3)
            if series[brand][0][i]
            else None,
        }
        for i, at in enumerate(starts)
        for brand in chosen
    ]
    output = resolve_format(fmt)
    if output != "table":
        emit(records, output, columns=[(k, k, None) for k in records[0]], title="")
        return
    _chart(chosen, series, starts, zone, width, label)


def _chart(
    brands: list[str],
    series: dict[str, tuple[list[int], list[int]]],
    starts: list[datetime],
    zone: tzinfo,
    width: str,
    label: str,
) -> None:
    """Bars per bucket: the negative part red, the rest blue (on a terminal); one column of
    bars per brand, all on one scale, then each brand's share of voice."""
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    bar_width = max(10, min(40, (table_width() - 24) // len(brands) - 16))
    peak = max((max(total, default=0) for total, _ in series.values()), default=0) or 1
    zone_label = getattr(zone, "key", None) or str(zone)
    heading = " | ".join(for_terminal(b) for b in brands)
    legend = "red: negative" if colour else "▓: negative"
    click.echo(f"{heading}: mentions per {width} ({legend}), {zone_label}")
    for i, at in enumerate(starts):
        cells = []
        for brand in brands:
            total, negative = series[brand]
            n, neg = total[i], negative[i]
            length = round(bar_width * n / peak)
            red = round(length * neg / n) if n else 0
            bar = click.style("█" * red, fg="red") if colour else "▓" * red
            bar += click.style("█" * (length - red), fg="blue") if colour else "█" * (length - red)
            bar += " " * (bar_width - length)
            share = f"{neg / n:4.0%}" if n else "   -"
            cells.append(f"{bar} {n:>5} {share}")
        click.echo(f"{at.astimezone(zone).strftime(label):<19} " + "  ".join(cells))
    sums = {b: (sum(series[b][0]), sum(series[b][1])) for b in brands}
    everything = sum(total for total, _ in sums.values()) or 1
    for brand in brands:
        count, bad = sums[brand]
        voice = f", share of voice {count / everything:.0%}" if len(brands) > 1 else ""
        neg_share = f"{bad / count:.0%}" if count else "-"
        click.echo(
            escape_json_unsafe(
                f"{for_terminal(brand)}: {count} mentions, {bad} negative ({neg_share}){voice}"
            )
        )


@cli.command("prune")
@config_option
@pass_app
def prune_command(app: App) -> None:
    """Delete mentions older than their brand's retention (daily counts are kept)."""
    from listener.service.retention import cutoffs, prune

    settings = app.settings()
    now = datetime.now(UTC)
    plan = cutoffs(settings, now)
    if not plan:
        click.echo("Retention: every brand keeps its mentions forever; nothing to prune.")
        return
    result = prune(app.engine(), settings, now)
    click.echo(
        f"Pruned {result.mentions} mentions ({result.links} brand links, {result.stories} "
        f"stories) older than their brand's retention; daily counts kept."
        + (" The SQLite file was compacted." if result.vacuumed else "")
    )
