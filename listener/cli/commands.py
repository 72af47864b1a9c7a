"""The everyday commands: check-config, db, sources, poll, run (``mentions`` is in ``mentions``)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.errors import ConfigError
from listener.untrusted import for_terminal

if TYPE_CHECKING:  # the rest is imported where used: `--help` needs no pydantic, no SQLAlchemy
    from listener.config import Settings
    from listener.service.cycle import CycleReport
    from listener.service.poll import PollOutcome


def parse_when(value: str, option: str, now: datetime) -> datetime:
    """'24h' / '7d' (ago), or an ISO date / date-time (UTC unless it says otherwise)."""
    from listener.config import parse_duration

    text = value.strip()
    if re.fullmatch(r"[\d.]+\s*(ms|s|m|h|d|w)([\d.]+\s*(ms|s|m|h|d|w))*", text, re.IGNORECASE):
        return now - timedelta(seconds=parse_duration(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (24h, 7d) nor an ISO date (2026-11-01)",
            param_hint=option,
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- check-config -----------------------------------------------------------------------------


def _mask_secrets(text: str, settings: Settings) -> str:
    # values under 4 characters are no real secrets and masking them would garble the text
    for secret in sorted(settings.secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def mask(text: str, settings: Settings) -> str:
    """Text with secrets masked; URLs also lose passwords and token-like query values."""
    text = _mask_secrets(text, settings)
    if not text.startswith(("http://", "https://")):
        return text
    from listener.sources.client import redact_url

    return redact_url(text)


@cli.command("check-config")
@config_option
@pass_app
def check_config(app: App) -> None:
    """Validate the configuration and print a summary (secrets masked).

    Every problem is reported in one run (exit code 2): missing environment variables, bad
    values, broken queries and routes, and a database URL that cannot work (unsupported scheme,
    driver not installed, SQLite directory not writable)."""
    from listener.config import database_url
    from listener.service.poll import source_url
    from listener.storage import engine as db

    settings = app.settings()
    url = database_url(settings)
    problem = db.check_url(url)
    if problem is not None:
        key = "database.url" if settings.database.url else "database.url (default)"
        shown = _mask_secrets(db.display_url(url), settings)
        raise ConfigError(f"{settings.path}: {key}: {_mask_secrets(problem, settings)} ({shown})")
    out = click.echo
    out(f"Configuration {settings.path}: OK")
    out(f"Database: {_mask_secrets(db.display_url(url), settings)}")
    out(f"Brands ({len(settings.brands)}):")
    for brand in settings.brands:
        if brand.query is not None:
            rule = f"query {brand.query}"
        else:
            rule = ", ".join(brand.terms)
            rule += f"; excluding {', '.join(brand.exclude)}" if brand.exclude else ""
        muted = [*brand.mute_authors, *brand.mute_domains]
        rule += f"; muted: {', '.join(muted)}" if muted else ""
        out(f"  {brand.name}: {_mask_secrets(rule, settings)}")
    out(f"Sources ({len(settings.sources)}):")
    for source in settings.sources:
        every = _duration(settings.source_interval(source))
        state = "" if source.enabled else " (disabled in config)"
        headers = f", headers: {', '.join(sorted(source.headers))} = ***" if source.headers else ""
        out(
            f"  {source.name} [{source.kind}] every {every}: "
            f"{mask(source_url(source), settings)}{headers}{state}"
        )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- db -----------------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Database schema: upgrade, current."""


@db_group.command("upgrade")
@config_option
@pass_app
def db_upgrade(app: App) -> None:
    """Create or migrate the database schema to the version this listener needs."""
    from listener.storage import engine as db

    engine = app.engine(check=False)
    before, after = db.upgrade(engine)
    where = db.display_url(str(engine.url))
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to {after}")


@db_group.command("current")
@config_option
@pass_app
def db_current(app: App) -> None:
    """Show the schema revision of the database and the one this version needs."""
    from listener.storage import engine as db

    engine = app.engine(check=False)
    current, head = db.current_revision(engine), db.head_revision()
    state = "up to date" if current == head else "out of date: run `listener db upgrade`"
    click.echo(
        f"{db.display_url(str(engine.url))}: revision {current or 'none'} (head {head}, {state})"
    )
    if current != head:
        sys.exit(2)


# -- sources ------------------------------------------------------------------------------------


@cli.command("sources")
@config_option
@format_option
@pass_app
def sources(app: App, fmt: str | None) -> None:
    """Show each configured source's health."""
    from listener.service.poll import source_url
    from listener.storage import store

    settings = app.settings()
    engine = app.engine()
    poller_sources = [store.CatalogSource(s.name, s.kind, source_url(s)) for s in settings.sources]
    with store.transaction(engine, "cannot read sources") as conn:
        brands = [b.name for b in settings.brands]
        store.sync_catalog(conn, brands, poller_sources, datetime.now(UTC))
        states = store.load_states(conn)
    counts = store.mention_counts(engine)
    records = []
    for source in settings.sources:
        state = states[source.name]
        if not source.enabled:
            health = "disabled (config)"
        elif state.disabled_reason:
            health = "disabled"
        elif state.consecutive_errors:
            health = f"failing ({state.consecutive_errors})"
        elif state.last_success_at is None:
            health = "not polled yet"
        else:
            health = "ok"
        records.append(
            {
                "name": source.name,
                "kind": source.kind,
                "health": health,
                "url": mask(state.url, settings),
                "last_success_at": iso(state.last_success_at),
                "last_attempt_at": iso(state.last_attempt_at),
                "consecutive_errors": state.consecutive_errors,
                "last_error": mask(state.last_error, settings) if state.last_error else None,
                "next_poll_at": iso(state.next_poll_at),
                "disabled_reason": state.disabled_reason,
                "mentions": counts.get(state.id, 0),
            }
        )
    emit(
        records,
        resolve_format(fmt),
        title=f"{len(records)} sources",
        columns=[
            ("name", "source", 20),
            ("kind", "kind", 11),
            ("health", "health", 14),
            ("last_success_at", "last success", 20),
            ("next_poll_at", "next poll", 20),
            ("mentions", "mentions", 8),
            ("last_error", "last error / disabled reason", 60),
        ]
        if resolve_format(fmt) == "table"
        else [
            (k, k, None)
            for k in (
                "name",
                "kind",
                "health",
                "url",
                "last_success_at",
                "last_attempt_at",
                "consecutive_errors",
                "last_error",
                "next_poll_at",
                "disabled_reason",
                "mentions",
            )
        ],
    )


# -- poll, run ----------------------------------------------------------------------------------


async def poll_cycle(
    settings: Settings, engine: Any, show_progress: bool, now: datetime | None = None
) -> CycleReport:
    """One cycle (``service.cycle``): poll every enabled source, with a progress bar on a
    terminal, then detect and deliver."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from listener.service import cycle
    from listener.service.poll import Poller, http_settings, utcnow
    from listener.sources.client import Client

    async with Client(http_settings(settings)) as client:
        poller = Poller(settings, engine, client, clock=(lambda: now) if now else utcnow)
        try:
            await poller.prepare()
            total = sum(1 for s in settings.sources if s.enabled)
            if not show_progress:
                return await cycle.run(poller, engine, settings, now)
            console = Console(stderr=True)
            columns = (
                TextColumn("polling"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("poll", total=total, last="")

                def done(outcome: PollOutcome) -> None:
                    progress.update(task, advance=1, last=for_terminal(outcome.source)[:30])

                return await cycle.run(poller, engine, settings, now, on_done=done)
        finally:
            poller.close()


@cli.command("poll")
@config_option
@click.option(
    "--once",
    is_flag=True,
    default=True,
    help="Run one full cycle over all enabled sources and exit (the default).",
)
@click.option(
    "--now",
    "at",
    help="Pretend it is this time (ISO date/time): for replaying a scenario, demos and tests.",
)
@pass_app
def poll(app: App, once: bool, at: str | None) -> None:
    """Poll every enabled source once, store new mentions, run detection and delivery, print a
    summary.

    Sources that are backing off after errors are polled anyway; sources disabled after
    410 Gone are not.
    """
    settings = app.settings()
    if not settings.sources:
        raise ConfigError(f"{settings.path}: sources: no sources configured; hint: add [[sources]]")
    engine = app.engine()
    now = parse_when(at, "--now", datetime.now(UTC)) if at else None
    done = asyncio.run(poll_cycle(settings, engine, sys.stderr.isatty(), now))
    from listener.service.poll import summarize

    counts = summarize(done.polls)
    for outcome in done.polls:
        if outcome.status in ("failed", "gone", "disabled"):
            click.echo(
                f"  {for_terminal(outcome.source)}: {for_terminal(outcome.error or '')}", err=True
            )
    click.echo(
        f"Polled {counts['sources']} sources in {done.poll_seconds:.2f} s: {counts['ok']} ok "
        f"({counts['not_modified']} not modified), {counts['failed']} failed, "
        f"{counts['disabled']} disabled; {counts['items']} items, "
        f"{counts['new']} new mentions, {counts['updated']} updated."
    )
    if done.alerted is not None:
        from listener.cli.alerts import echo_alerted

        echo_alerted(settings, done.alerted)
    if counts["failed"] and counts["failed"] == counts["sources"]:
        sys.exit(1)


@cli.command("run")
@config_option
@pass_app
def run(app: App) -> None:
    """Run the daemon: poll every source on its interval until SIGTERM/SIGINT."""
    from listener.daemon import run_daemon

    settings = app.settings()
    engine = app.engine()
    runner = asyncio.Runner()
    code = runner.run(run_daemon(settings, engine))
    # The daemon has stopped and recorded everything. Threads stuck in a hanging call (a send,
    # a locked database) would hold the interpreter's exit for as long as they hang (asyncio and
    # concurrent.futures join them), so the process ends here without waiting for them.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
