"""``listener stories``: the stories behind a brand's mentions, so that forty reprints of one
wire story read as one story with forty copies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.mentions import note_cut, table_limit
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.storage import store
from listener.untrusted import for_terminal

COLUMNS: list[tuple[str, str, int | None]] = [
    ("story_id", "story", None),
    ("copies", "copies", None),
    ("first_seen", "first seen (UTC)", 16),
    ("mix", "neg/neu/pos", 11),
    ("title", "top title", 60),
    ("sources", "sources", 30),
    ("url", "url", 50),
]


FIELDS = (
    "story_id",
    "copies",
    "first_seen",
    "last_seen",
    "title",
    "url",
    "sources",
    "domains",
    "negative",
    "neutral",
    "positive",
)


def story_record(story: store.StoredStory) -> dict[str, Any]:
    return {
        "story_id": story.story_id,
        "copies": story.copies,
        "first_seen": iso(story.first_seen),
        "last_seen": iso(story.last_seen),
        "title": story.title,
        "url": story.url,
        "sources": list(story.sources),
        "domains": story.domains,
        "negative": story.negative,
        "neutral": story.neutral,
        "positive": story.positive,
    }


@cli.command("stories")
@config_option
@click.option("--brand", required=True, help="The brand whose stories to show.")
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="From this time on: 24h, 7d, or an ISO date/time.",
)
@click.option("--until", help="Before this time: 24h, 7d, or an ISO date/time.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="At most this many stories (0: no limit). Default: 50 in a table, everything in "
    "json, jsonl and csv.",
)
@format_option
@pass_app
def stories(
    app: App, brand: str, since: str, until: str | None, limit: int | None, fmt: str | None
) -> None:
    """The stories behind a brand's mentions, most copies first: copies, first seen, sources,
    top title and the sentiment mix of the copies."""
    now = datetime.now(UTC)
    settings = app.settings()
    if brand.casefold() not in {b.name.casefold() for b in settings.brands}:
        click.echo(f"Warning: {for_terminal(brand)!r} is not in the configuration", err=True)
    found = store.brand_stories(
        app.engine(),
        brand,
        parse_when(since, "--since", now),
        parse_when(until, "--until", now) if until else None,
    )
    output = resolve_format(fmt)
    most = table_limit(limit, output)
    if most is not None and len(found) > most:
        found = found[:most]
        note_cut(most, "stories", order="top")
    records = [story_record(s) for s in found]
    if output == "table":
        for record in records:
            record["mix"] = f"{record['negative']}/{record['neutral']}/{record['positive']}"
        copies = sum(s.copies for s in found)
        emit(records, "table", columns=COLUMNS, title=f"{len(found)} stories, {copies} mentions")
        return
    if output == "csv":
        for record in records:
            record["sources"] = ", ".join(record["sources"])
    emit(records, output, columns=[(k, k, None) for k in FIELDS], title="")
