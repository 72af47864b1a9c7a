"""The everyday commands: check-config, db, mentions, sources, poll, run."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from listener.cli import App, cli, config_option, pass_app
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.errors import ConfigError
from listener.untrusted import for_terminal

if TYPE_CHECKING:  # the rest is imported where used: `--help` needs no pydantic, no SQLAlchemy
    from listener.config import Settings
    from listener.pipeline import PollOutcome
    from listener.storage import store


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
    from listener.pipeline import source_url
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


# -- mentions -----------------------------------------------------------------------------------

TABLE_LIMIT = 50


def table_limit(limit: int | None, output: str) -> int | None:
    """The row limit: the user's (0 is none); by default a screenful for a table and
    everything for the machine formats, which feed scripts that must not lose rows silently."""
    if limit is not None:
        return limit or None
    return TABLE_LIMIT if output == "table" else None


def note_cut(shown: int, what: str, order: str = "newest") -> None:
    click.echo(
        f"Note: showing the {order} {shown} {what}; more matched (--limit N, or --limit 0 for all)",
        err=True,
    )


def folded_search(search: str) -> Callable[[str, str], bool]:
    """A test of (title, text) that folds both sides as brand matching does, so "Verspaetung"
    finds "Verspätung" and "MÜLLER" finds "Mueller"."""
    from listener.matching.normalize import fold

    needle = fold(search).strip()

    def contains(title: str, text: str) -> bool:
        return needle in fold(title) or needle in fold(text)

    return contains


MENTION_COLUMNS: list[tuple[str, str, int | None]] = [
    ("published_at", "published (UTC)", 16),
    ("brands", "brand", 20),
    ("source", "source", 14),
    ("title", "title", 60),
    ("author", "author", 16),
    ("language", "lang", 4),
    ("sentiment", "sentiment", 9),
    ("engagement", "engagement", 22),
    ("url", "url", 50),
]
CSV_COLUMNS = (
    "id",
    "brands",
    "source",
    "url",
    "title",
    "text",
    "author",
    "published_at",
    "fetched_at",
    "language",
    "sentiment",
    "sentiment_score",
    "reach",
    "points",
    "likes",
    "reposts",
    "replies",
    "backfill",
    "story_id",
    "copies",
)


def emit_mention_table(
    found: list[store.StoredMention], *, title: str, drop: tuple[str, ...] = ()
) -> None:
    """The table view: the text stands in for a missing title (posts often have none)."""
    records = []
    for mention in found:
        record = mention_record(mention)
        record["title"] = mention.title or mention.text[:200]
        record["engagement"] = engagement(mention)
        records.append(record)
    columns = [column for column in MENTION_COLUMNS if column[0] not in drop]
    emit(records, "table", columns=columns, title=title)


def mention_record(mention: store.StoredMention) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": mention.id,
        "brand": mention.brands[0] if len(mention.brands) == 1 else None,
        "brands": list(mention.brands),
    }
    record.update(
        source=mention.source,
        url=mention.url,
        title=mention.title,
        text=mention.text,
        author=mention.author,
        published_at=iso(mention.published_at),
        fetched_at=iso(mention.fetched_at),
        language=mention.language,
        sentiment=mention.sentiment,
        sentiment_score=mention.sentiment_score,
        reach=mention.reach,
        points=mention.points,
        likes=mention.likes,
        reposts=mention.reposts,
        replies=mention.replies,
        backfill=mention.backfill,
        story_id=mention.story_id,
        copies=mention.copies,
    )
    return record


def engagement(mention: store.StoredMention) -> str:
    """ "12k reach, 340 likes" style, for the table; empty when the platform gives nothing."""
    parts = [
        f"{_short_count(value)} {label}"
        for value, label in (
            (mention.reach, "reach"),
            (mention.points, "points"),
            (mention.likes, "likes"),
            (mention.reposts, "reposts"),
            (mention.replies, "replies"),
        )
        if value is not None
    ]
    return ", ".join(parts[:3])


def _short_count(value: int) -> str:
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}".replace(".0", "")
    return str(value)


@cli.command("mentions")
@config_option
@click.option("--brand", help="Only mentions of this brand.")
@click.option("--source", help="Only mentions from this source (its name).")
@click.option("--since", help="From this time on: 24h, 7d, or an ISO date/time.")
@click.option("--until", help="Before this time: 24h, 7d, or an ISO date/time.")
@click.option(
    "--search",
    help="Only mentions whose title or text contains TEXT (folded like brand matching: case, "
    "umlauts, look-alike letters).",
)
@click.option(
    "--sentiment",
    type=click.Choice(["negative", "neutral", "positive"]),
    help="Only mentions scored with this sentiment.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help=f"At most this many (0: no limit). Default: {TABLE_LIMIT} in a table (a note on stderr "
    "says when more matched), everything in json, jsonl and csv.",
)
@format_option
@pass_app
def mentions(
    app: App,
    brand: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    sentiment: str | None,
    limit: int | None,
    fmt: str | None,
) -> None:
    """Show stored mentions, newest first."""
    from listener.storage import store

    now = datetime.now(UTC)
    output = resolve_format(fmt)
    most = table_limit(limit, output)
    where = store.MentionFilter(
        brand=brand,
        source=source,
        since=parse_when(since, "--since", now) if since else None,
        until=parse_when(until, "--until", now) if until else None,
        search=search,
        sentiment=sentiment,
        limit=None if most is None else most + 1,  # one more tells whether the table cut
        text_filter=folded_search(search) if search else None,
    )
    settings = app.settings()
    for name, known in (
        (brand, [b.name for b in settings.brands]),
        (source, [s.name for s in settings.sources]),
    ):
        if name and name.casefold() not in {k.casefold() for k in known}:
            click.echo(f"Warning: {for_terminal(name)!r} is not in the configuration", err=True)
    found = store.query_mentions(app.engine(), where)
    if most is not None and len(found) > most:
        found = found[:most]
        note_cut(most, "mentions")
    if output == "table":
        emit_mention_table(found, title=f"{len(found)} mentions")
        return
    records = [mention_record(m) for m in found]
    if output == "csv":
        for record in records:
            record["brands"] = ", ".join(record["brands"])
            del record["brand"]
    emit(records, output, columns=[(k, k, None) for k in CSV_COLUMNS], title="")


# -- sources ------------------------------------------------------------------------------------


@cli.command("sources")
@config_option
@format_option
@pass_app
def sources(app: App, fmt: str | None) -> None:
    """Show each configured source's health."""
    from listener.pipeline import source_url
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
) -> list[PollOutcome]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from listener.pipeline import Poller, http_settings, utcnow
    from listener.sources.client import Client

    async with Client(http_settings(settings)) as client:
        poller = Poller(settings, engine, client, clock=(lambda: now) if now else utcnow)
        try:
            await poller.prepare()
            total = sum(1 for s in settings.sources if s.enabled)
            if not show_progress:
                return await poller.poll_all()
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

                return await poller.poll_all(on_done=done)
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
    started = time.monotonic()
    outcomes = asyncio.run(poll_cycle(settings, engine, sys.stderr.isatty(), now))
    elapsed = time.monotonic() - started
    from listener.pipeline import summarize

    counts = summarize(outcomes)
    for outcome in outcomes:
        if outcome.status in ("failed", "gone", "disabled"):
            click.echo(
                f"  {for_terminal(outcome.source)}: {for_terminal(outcome.error or '')}", err=True
            )
    click.echo(
        f"Polled {counts['sources']} sources in {elapsed:.2f} s: {counts['ok']} ok "
        f"({counts['not_modified']} not modified), {counts['failed']} failed, "
        f"{counts['disabled']} disabled; {counts['items']} items, "
        f"{counts['new']} new mentions, {counts['updated']} updated."
    )
    if settings.brands:
        from listener.cli.alerts import detect_and_deliver

        detect_and_deliver(settings, engine, now)
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
