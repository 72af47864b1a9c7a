"""Operator commands: ``listener status`` (daemons, sources, alerts, outbox, database) and
``listener stats`` (a terminal chart of a brand's volume and negative share)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import text

from listener.cli import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.config import parse_duration
from listener.errors import ConfigError, StorageError
from listener.storage import alerts as alert_store
from listener.storage import instances, store
from listener.storage.engine import probe
from listener.untrusted import escape_json_unsafe, for_terminal

BARS = " ▁▂▃▄▅▆▇█"


@cli.command("status")
@config_option
@format_option
@pass_app
def status(app: App, fmt: str | None) -> None:
    """Daemons (heartbeats, leader, last cycle), sources, firing alerts, outbox, database size
    and health (exit 1 when the database fails a read or a rolled-back write)."""
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
    daemons = [
        {
            "instance": row.id,
            "leader": row.leader,
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
    backlog = alert_store.backlog(engine)
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
        click.echo(
            f"daemon {for_terminal(d['instance'])}: {role}, seen {d['seen']}, "
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


@cli.command("stats")
@config_option
@click.option("--brand", required=True, help="The brand to chart.")
@click.option("--since", default="7d", show_default=True, help="From (24h, 7d, or an ISO date).")
@click.option("--bucket", default="auto", show_default=True, help="Bar width: 1h, 1d, or auto.")
@format_option
@pass_app
def stats(app: App, brand: str, since: str, bucket: str, fmt: str | None) -> None:
    """A terminal chart of a brand's mentions per bucket and their negative share."""
    settings = app.settings()
    if brand.casefold() not in {b.name.casefold() for b in settings.brands}:
        raise ConfigError(f"brand {brand!r} is not in the configuration")
    now = datetime.now(UTC)
    start = parse_when(since, "--since", now)
    if bucket == "auto":
        width = timedelta(hours=1) if now - start <= timedelta(days=3) else timedelta(days=1)
    else:
        try:
            width = timedelta(seconds=parse_duration(bucket))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--bucket") from None
    if width <= timedelta(0) or (now - start) / width > 2000:
        raise click.BadParameter("too many bars; use a wider --bucket", param_hint="--bucket")
    rows = store.detection_rows(app.engine(), brand, since=start, until=now)
    count = int((now - start) / width) + 1
    total = [0] * count
    negative = [0] * count
    for row in rows:
        index = int((row.event_at - start) / width)
        if 0 <= index < count:
            total[index] += 1
            negative[index] += row.negative
    records = [
        {
            "start": iso(start + i * width),
            "mentions": total[i],
            "negative": negative[i],
            "negative_share": round(negative[i] / total[i], 3) if total[i] else None,
        }
        for i in range(count)
    ]
    output = resolve_format(fmt)
    if output != "table":
        emit(records, output, columns=[(k, k, None) for k in records[0]], title="")
        return
    peak = max(total) or 1
    click.echo(f"{for_terminal(brand)}: mentions (bar) and negative share, per {_width(width)}")
    for record, n, neg in zip(records, total, negative, strict=True):
        bar = "█" * round(30 * n / peak)
        share = f"{neg / n:4.0%} neg" if n else ""
        shade = BARS[round(8 * neg / n)] * 3 if n else ""
        click.echo(f"{record['start']}  {bar:<30} {n:>5}  {shade} {share}")
    click.echo(escape_json_unsafe(f"{len(rows)} mentions in all"))


def _width(width: timedelta) -> str:
    hours = width.total_seconds() / 3600
    return f"{hours:g} h" if hours < 24 else f"{hours / 24:g} d"


@cli.command("prune")
@config_option
@pass_app
def prune_command(app: App) -> None:
    """Delete mentions older than their brand's retention (daily counts are kept)."""
    from listener.housekeeping import cutoffs, prune

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
