"""Output of query commands: one shared set of formats (table, json, jsonl, csv) for every command
that lists rows. Every untrusted string is made terminal-safe here, in every format."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from listener.untrusted import escape_json_unsafe, for_terminal

FORMATS = ("table", "json", "jsonl", "csv")
F = TypeVar("F", bound=Callable[..., Any])


def format_option(func: F) -> F:
    """--format table|json|jsonl|csv; table by default on a terminal, jsonl otherwise."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format (default: table on a terminal, jsonl when piped).",
    )(func)


def resolve_format(fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    return "table" if sys.stdout.isatty() else "jsonl"


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, or None."""
    if value is None:
        return None
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_line(record: dict[str, Any], indent: int | None = None) -> str:
    return escape_json_unsafe(json.dumps(record, ensure_ascii=False, indent=indent))


def emit(
    records: Sequence[dict[str, Any]],
    fmt: str,
    *,
    columns: Sequence[tuple[str, str, int | None]],
    title: str | None = None,
) -> None:
    """Write records. ``columns`` (key, header, max width) drive the table and csv formats.
    In every format, URLs lose their userinfo (``user:password@``) and secret-looking query
    values (``redact_url``)."""
    records = [{key: _no_credentials(value) for key, value in r.items()} for r in records]
    if fmt == "jsonl":
        for record in records:
            click.echo(_json_line(record))
    elif fmt == "json":
        click.echo(_json_line(list(records), indent=2))  # type: ignore[arg-type]
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([key for key, _, _ in columns])
        for record in records:
            writer.writerow([_csv_cell(record.get(key)) for key, _, _ in columns])
        click.echo(buffer.getvalue(), nl=False)
    else:
        _table(records, columns, title)


# How much a table column matters when the terminal is too narrow for all of them: the lowest
# goes first (ties: the rightmost). One list for every table command, so that the same column
# survives in `mentions`, `alerts`, `stories` and the rest.
PRIORITY: dict[str, int] = {
    "title": 10, "id": 9, "published_at": 9, "brand": 8, "brands": 8, "state": 8, "copies": 8,
    "story_id": 7, "severity": 7, "sentiment": 7, "started_at": 7, "explanation": 6,
    "detector": 6, "first_seen": 6, "ends_at": 6, "route": 6, "kind": 6, "source": 5,
    "mix": 5, "comment": 5, "last_error": 5, "resolved_at": 4, "attempts": 4, "created_by": 4,
    "author": 3, "language": 3, "sources": 3, "next_attempt_at": 3, "engagement": 2, "url": 1,
}  # fmt: skip
_WIDE = {"url": 24, "title": 20, "explanation": 20, "text": 20, "last_error": 16}


def table_width() -> int:
    """Columns to fit: the terminal's, or $COLUMNS, else 160 when not on a terminal."""
    from rich.console import Console

    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) >= 20:
        return int(env)
    return Console().width if sys.stdout.isatty() else 160


def _least(key: str, header: str, most: int | None) -> int:
    """The narrowest a column may get before it is dropped instead (never zero-width)."""
    if key.endswith(("_at", "_seen")):
        return 16
    least = _WIDE.get(key, max(len(header), 4))
    return min(least, most) if most else least


def fit_columns(
    columns: Sequence[tuple[str, str, int | None]], width: int
) -> tuple[list[tuple[str, str, int | None]], list[str]]:
    """The columns that fit in ``width`` at their least widths (borders and padding counted),
    dropping the least important first; and the headers of those dropped."""
    kept = list(columns)
    dropped: list[str] = []

    def needed() -> int:
        return sum(_least(k, h, m) for k, h, m in kept) + 3 * len(kept) + 1

    while len(kept) > 1 and needed() > width:
        order = sorted(
            range(len(kept)), key=lambda i: (PRIORITY.get(kept[i][0], 5), -i)
        )  # least important, rightmost first
        dropped.append(kept.pop(order[0])[1])
    return kept, dropped


def _widths(
    columns: Sequence[tuple[str, str, int | None]], cells: list[list[str]], width: int
) -> list[int]:
    """Each column as wide as its longest cell (up to its most); when that is too wide for
    ``width``, the widest columns give way first, never below their least."""
    sizes = []
    for index, (key, header, most) in enumerate(columns):
        longest = max([len(header), *(len(row[index]) for row in cells)])
        sizes.append(max(min(longest, most or longest), _least(key, header, most)))
    floor = [_least(key, header, most) for key, header, most in columns]
    excess = sum(sizes) + 3 * len(sizes) + 1 - width
    while excess > 0:
        room = [i for i in range(len(sizes)) if sizes[i] > floor[i]]
        if not room:
            break
        widest = max(room, key=lambda i: sizes[i])
        sizes[widest] -= 1
        excess -= 1
    return sizes


def _table(
    records: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str, int | None]],
    title: str | None,
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    terminal = sys.stdout.isatty()
    width = table_width()
    shown, dropped = fit_columns(columns, width)
    rendered = io.StringIO()
    console = Console(
        file=rendered,
        highlight=False,
        soft_wrap=False,
        width=width,
        force_terminal=terminal,
        color_system="auto" if terminal else None,
    )
    caption = f"not shown for lack of width: {', '.join(dropped)}" if dropped else None
    table = Table(title=title, caption=caption, show_lines=False, header_style="bold", expand=False)
    cells = [[_table_cell(key, record.get(key)) for key, _, _ in shown] for record in records]
    widths = _widths(shown, cells, width)
    for (_key, header, _most), size in zip(shown, widths, strict=True):
        table.add_column(header, width=size, overflow="ellipsis", no_wrap=True)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    click.echo(rendered.getvalue(), nl=False)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+$")


def _no_credentials(value: object) -> object:
    from listener.sources.client import redact_url

    if isinstance(value, str):
        return redact_url(value) if _URL.match(value) and ("@" in value or "=" in value) else value
    if isinstance(value, list):
        return [_no_credentials(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_credentials(v) for k, v in value.items()}
    return value


def _table_cell(key: str, value: object) -> str:
    if key.endswith(("_at", "_seen")) and isinstance(value, str):
        return value[:16].replace("T", " ")
    return _cell(value)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:+.2f}"
    return for_terminal(str(value))


def _csv_cell(value: object) -> str:
    """Terminal-safe, and neutralised against spreadsheet formula injection; nested values
    (objects, lists of objects) are JSON, never Python reprs."""
    if isinstance(value, dict) or (
        isinstance(value, list | tuple) and any(isinstance(v, dict | list | tuple) for v in value)
    ):
        text = for_terminal(json.dumps(value, ensure_ascii=False, default=str))
    else:
        text = _cell(value) if not isinstance(value, float) else repr(value)
    if text[:1] in ("=", "+", "-", "@") and not isinstance(value, int | float):
        return "'" + text
    return text
