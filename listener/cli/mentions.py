"""``listener mentions`` and the mention table other commands show (alerts, queries, stories,
demo): the table's columns and limits, one record per mention for JSON/CSV output, and the folded
text search."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.untrusted import for_terminal

if TYPE_CHECKING:  # imported where used: `--help` needs no SQLAlchemy
    from listener.storage import store

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
