"""Output of query commands: one shared set of formats (table, json, jsonl, csv) for every command
that lists rows. Every untrusted string is made terminal-safe here, in every format."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from listener.sources.client import redact_url
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
        terminal = sys.stdout.isatty()
        rendered = io.StringIO()
        console = Console(
            file=rendered,
            highlight=False,
            soft_wrap=False,
            width=Console().width if terminal else 160,
            force_terminal=terminal,
            color_system="auto" if terminal else None,
        )
        table = Table(title=title, show_lines=False, header_style="bold", expand=False)
        for key, header, most in columns:
            least = 16 if key.endswith("_at") else min(most or 8, len(header), 12)
            table.add_column(
                header, min_width=least, max_width=most, overflow="ellipsis", no_wrap=True
            )
        for record in records:
            table.add_row(*(Text(_table_cell(key, record.get(key))) for key, _, _ in columns))
        console.print(table)
        click.echo(rendered.getvalue(), nl=False)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+$")


def _no_credentials(value: object) -> object:
    if isinstance(value, str):
        return redact_url(value) if _URL.match(value) and ("@" in value or "=" in value) else value
    if isinstance(value, list):
        return [_no_credentials(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_credentials(v) for k, v in value.items()}
    return value


def _table_cell(key: str, value: object) -> str:
    if key.endswith("_at") and isinstance(value, str):
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
    """Terminal-safe, and neutralised against spreadsheet formula injection."""
    text = _cell(value) if not isinstance(value, float) else repr(value)
    if text[:1] in ("=", "+", "-", "@") and not isinstance(value, int | float):
        return "'" + text
    return text


def echo_safe(message: str, *, err: bool = False) -> None:
    click.echo(for_terminal(message, keep_newlines=True), err=err)
