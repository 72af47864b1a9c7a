"""Brand queries against stored history: `query test` before enabling a query, `rematch` after
changing one."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import click

from listener.checks import compile_brands
from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.mentions import emit_mention_table
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.errors import ConfigError
from listener.matching import Matcher
from listener.matching.query import QuerySyntaxError, parse_query
from listener.models import Item
from listener.service.parse import document
from listener.storage import detection_state, store


def _doc(row: store.MatchInput) -> Any:
    item = Item(
        guid=None,
        url=row.url,
        title=row.title,
        text=row.text,
        author=row.author,
        language=row.language,
    )
    return document(item, row.source)


@cli.group("query")
def query_group() -> None:
    """Brand queries: try one on stored mentions."""


@query_group.command("test")
@config_option
@click.argument("query")
@click.option(
    "--since",
    default="30d",
    show_default=True,
    help="Only mentions from this time on: 24h, 7d, or an ISO date/time.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many matching mentions to show.",
)
@format_option
@pass_app
def query_test(app: App, query: str, since: str, samples: int, fmt: str | None) -> None:
    """What QUERY would match among stored mentions: counts per day and the newest samples.

    Only mentions that are already stored (they matched some brand) can be tested.
    """
    try:
        parsed = parse_query(query)
    except QuerySyntaxError as exc:
        raise ConfigError(f"query: {exc}", detail=exc.caret()) from None
    engine = app.engine()
    start = parse_when(since, "--since", datetime.now(UTC))
    matcher = Matcher([("query", parsed, (), ())])
    per_day: Counter[str] = Counter()
    matched: list[int] = []
    scanned = 0
    for batch in store.iter_match_inputs(engine, since=start):
        for row in batch:
            scanned += 1
            if matcher.match(_doc(row)):
                per_day[row.event_at.date().isoformat()] += 1
                matched.append(row.id)
    found = store.mentions_by_id(engine, matched[-samples:][::-1]) if samples else []
    output = resolve_format(fmt)
    days = [{"day": day, "mentions": count} for day, count in sorted(per_day.items())]
    if output == "json":
        from listener.cli.mentions import mention_record

        emit(
            [
                {
                    "query": query,
                    "since": iso(start),
                    "scanned": scanned,
                    "matched": len(matched),
                    "per_day": days,
                    "samples": [mention_record(m) for m in found],
                }
            ],
            "jsonl",
            columns=[],
        )
    elif output == "jsonl":
        emit(days, "jsonl", columns=[])
    elif output == "csv":
        emit(days, "csv", columns=[("day", "day", None), ("mentions", "mentions", None)])
    else:
        click.echo(f"{len(matched)} of {scanned} stored mentions since {iso(start)} match.")
        emit(
            days,
            "table",
            columns=[("day", "day", 10), ("mentions", "mentions", 8)],
            title="Per day",
        )
        if found:
            emit_mention_table(found, title="Newest matches", drop=("sentiment",))


@cli.command("rematch")
@config_option
@click.option("--brand", help="Only this brand (default: every configured brand).")
@pass_app
def rematch(app: App, brand: str | None) -> None:
    """Apply the configured brand queries to every stored mention again, so that the history
    agrees with the config: links are added where a query now matches and removed where it no
    longer does."""
    settings = app.settings()
    engine = app.engine()
    rules = compile_brands(settings)
    if brand is not None:
        rules = [r for r in rules if r[0].casefold() == brand.casefold()]
        if not rules:
            raise ConfigError(f"{settings.path}: brands: no brand named {brand!r}")
    matcher = Matcher(rules)
    with store.transaction(engine, "cannot read brands") as conn:
        store.sync_catalog(conn, [r[0] for r in rules], [], datetime.now(UTC))
        ids = store.brand_ids(conn)
    scope = [ids[r[0]] for r in rules]
    total = store.count_mentions(engine)
    added = removed = orphaned = 0
    show = sys.stderr.isatty()
    from rich.progress import Progress

    with Progress(transient=True, disable=not show) as progress:
        task = progress.add_task("rematching", total=total)
        for batch in store.iter_match_inputs(engine):
            matches = {row.id: {ids[name] for name in matcher.match(_doc(row))} for row in batch}
            with store.transaction(engine, "cannot update brand links") as conn:
                plus, minus = store.relink(conn, scope, matches)
                orphaned += store.count_unlinked(conn, list(matches))
            added, removed = added + plus, removed + minus
            progress.advance(task, len(batch))
    # the history of these brands changed: their detection states are rebuilt on the next run
    detection_state.forget(engine, [r[0] for r in rules])
    names = ", ".join(r[0] for r in rules)
    click.echo(
        f"Rematched {total} mentions against {names}: {added} links added, "
        f"{removed} removed; {orphaned} mentions now match no brand (kept)."
    )
