"""Tables that fit the terminal: at 80, 120 and 200 columns every table command shows whole
columns only (each header readable, or the column listed as not shown), no line wider than the
terminal, and the most important columns last to go."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from test_cli_stories import config  # noqa: F401  (the fixture: 60 mentions polled into SQLite)

import listener.cli.queries  # noqa: F401  (registers the commands)
from listener.cli import cli
from listener.cli.output import fit_columns

COMMANDS = {
    "mentions": ["mentions", "--limit", "5"],
    "stories": ["stories", "--brand", "Kryptonite", "--since", "2026-11-01", "--limit", "5"],
    "sources": ["sources"],
    "alerts": ["alerts"],
    "query test": ["query", "test", "Kryptonite", "--since", "2026-11-01"],
}
HEADERS = {
    "mentions": ["published (UTC)", "brand", "source", "title", "author", "lang", "sentiment",
                 "engagement", "url"],
    "stories": ["story", "copies", "first seen (UTC)", "neg/neu/pos", "top title", "sources",
                "url"],
}  # fmt: skip


def table(path: str, width: int, args: list[str]) -> str:
    result = CliRunner().invoke(
        cli, ["--config", path, *args, "--format", "table"], env={"COLUMNS": str(width)}
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("width", [80, 120, 200])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_tables_fit_and_never_show_a_squashed_column(config: str, name: str, width: int) -> None:  # noqa: F811
    out = table(config, width, COMMANDS[name])
    lines = out.splitlines()
    assert lines, out
    assert max(len(line) for line in lines) <= width, out
    hidden = re.search(r"not shown for lack of width: (.*)", out)
    dropped = [h.strip() for h in hidden.group(1).split(",")] if hidden else []
    width_of_row = 0
    for line in lines:  # some commands print more than one table
        if line.startswith("┃"):
            cells = [cell.strip() for cell in line.strip("┃").split("┃")]
            assert all(cells), f"a zero-width column: {line!r}"
            assert not any(cell.endswith("…") for cell in cells), f"a cropped header: {cells}"
            width_of_row = len(cells)
            for header in HEADERS.get(name, []):
                assert (header in cells) != (header in dropped), (header, cells, dropped)
        elif line.startswith("│"):
            assert len(line.strip("│").split("│")) == width_of_row, line


def test_the_title_outlives_the_url(config: str) -> None:  # noqa: F811
    narrow = table(config, 80, COMMANDS["mentions"])
    assert "title" in narrow and "not shown for lack of width:" in narrow
    assert "url" in narrow.split("not shown for lack of width:")[1]
    wide = table(config, 200, COMMANDS["mentions"])
    assert "not shown" not in wide
    assert "https://blog" in wide  # the whole URL, not "ht"


def test_fit_columns_drops_by_priority() -> None:
    columns = [("published_at", "published", 16), ("title", "title", 60), ("url", "url", 50),
               ("author", "author", 16)]  # fmt: skip
    kept, dropped = fit_columns(columns, 50)
    assert [k for k, _, _ in kept] == ["published_at", "title"]
    assert dropped == ["url", "author"]
    kept, dropped = fit_columns(columns, 400)
    assert dropped == [] and len(kept) == 4
