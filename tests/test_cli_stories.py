"""Stories, exports and folded search on the command line, over a real feed polled into a
real SQLite file: `listener stories`, `story_id`/`copies` on mentions, machine formats that
return everything, csv cells that are JSON, and a --search folded like brand matching."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from feeds import rss
from pytest_httpserver import HTTPServer

import listener.cli.alerts
import listener.cli.commands
import listener.cli.stories  # noqa: F401  (registers the commands)
from listener.cli import cli

WIRE = (
    "Kryptonite recalls its Evolution locks after a video showed one opened with a ballpoint "
    "pen; the company offers free replacements to every owner who registers online this month. "
    "Customers who bought a lock in the last two years can send proof of purchase and receive a "
    "new model within six weeks, the manufacturer said in a statement on Friday."
)


def items() -> list[dict[str, str]]:
    out = [  # one wire story reprinted by three sites: three mentions, one story
        {
            "title": "Kryptonite recall: Evolution locks replaced",
            "link": f"https://{site}.example/news/{n}",
            "guid": f"wire-{n}",
            "description": WIRE,
            "date": f"Fri, 20 Nov 2026 1{n}:00:00 +0000",
        }
        for n, site in enumerate(("alpha", "beta", "gamma"))
    ]
    out.append(
        {
            "title": "Kryptonite: Verspätung bei der Lieferung",
            "link": "https://forum.example/t/1",
            "guid": "forum-1",
            "description": "Meine Bestellung hat eine Verspätung von drei Wochen.",
            "date": "Sat, 21 Nov 2026 09:00:00 +0000",
        }
    )
    out += [
        {
            "title": f"Kryptonite lock review number {n}",
            "link": f"https://blog{n}.example/review",
            "guid": f"review-{n}",
            "description": f"Review {n}: a solid lock, {'heavy' if n % 2 else 'pricey'} though.",
            "date": f"Sun, 22 Nov 2026 {10 + n % 10:02d}:{n:02d}:00 +0000",
        }
        for n in range(56)
    ]
    return out


@pytest.fixture
def config(tmp_path: Path, httpserver: HTTPServer) -> str:
    httpserver.expect_request("/feed").respond_with_data(rss(items()), content_type="text/xml")
    path = tmp_path / "listener.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "l.db"}"
[log]
level = "warning"
[[brands]]
name = "Kryptonite"
terms = ["Kryptonite"]
[[sources]]
name = "news"
url = "{httpserver.url_for("/feed")}"
""",
        encoding="utf-8",
    )
    for args in (("db", "upgrade"), ("poll", "--once")):
        result = CliRunner().invoke(cli, ["--config", str(path), *args], env={})
        assert result.exit_code == 0, result.stderr
    return str(path)


def invoke(config: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", config, *args], env={})
    return result.exit_code, result.stdout, result.stderr


def test_stories_group_copies_of_one_article(config: str) -> None:
    code, out, _ = invoke(config, "stories", "--brand", "Kryptonite", "--since", "2026-11-01",
                          "--format", "jsonl")  # fmt: skip
    assert code == 0
    stories = [json.loads(line) for line in out.splitlines()]
    assert len(stories) == 1 + 1 + 56  # the wire story, the forum post, the reviews
    top = stories[0]
    assert top["copies"] == 3
    assert top["title"].startswith("Kryptonite recall")
    assert top["first_seen"] == "2026-11-20T10:00:00Z"
    assert top["domains"] == 3 and top["sources"] == ["news"]
    assert top["negative"] + top["neutral"] + top["positive"] == 3
    assert all(story["copies"] == 1 for story in stories[1:])

    code, out, _ = invoke(config, "mentions", "--format", "jsonl", "--search", "recall")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    assert {row["story_id"] for row in rows} == {top["story_id"]}
    assert {row["copies"] for row in rows} == {3}

    code, out, _ = invoke(config, "stories", "--brand", "Kryptonite", "--since", "2026-11-01",
                          "--format", "csv")  # fmt: skip
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert parsed[0]["copies"] == "3" and parsed[0]["sources"] == "news"


def test_stories_table_and_a_window_without_stories(config: str) -> None:
    code, out, _ = invoke(config, "stories", "--brand", "Kryptonite", "--since", "2026-11-01",
                          "--format", "table", "--limit", "2")  # fmt: skip
    assert code == 0
    assert "2 stories" in out and "Kryptonite recall" in out
    code, out, _ = invoke(config, "stories", "--brand", "Kryptonite", "--since", "2026-11-01",
                          "--until", "2026-11-02", "--format", "csv")  # fmt: skip
    assert code == 0
    assert out.splitlines() == [
        "story_id,copies,first_seen,last_seen,title,url,sources,domains,negative,neutral,positive"
    ]


def test_machine_formats_return_everything_and_the_table_says_when_it_cut(config: str) -> None:
    for fmt in ("jsonl", "csv"):
        code, out, err = invoke(config, "mentions", "--format", fmt)
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 60 + (1 if fmt == "csv" else 0)
        assert "Note" not in err
    code, out, err = invoke(config, "mentions", "--format", "json")
    assert len(json.loads(out)) == 60
    code, out, err = invoke(config, "mentions", "--format", "table")
    assert "50 mentions" in out
    assert "showing the newest 50 mentions" in err and "--limit 0" in err
    code, out, err = invoke(config, "mentions", "--format", "jsonl", "--limit", "7")
    assert len(out.splitlines()) == 7
    assert "showing the newest 7" in err  # an explicit limit that cut is reported too
    code, out, err = invoke(config, "mentions", "--format", "table", "--limit", "0")
    assert "60 mentions" in out and err == ""


def test_search_folds_umlauts_and_case_like_matching(config: str) -> None:
    for needle in ("Verspaetung", "VERSPÄTUNG", "verspätung"):
        code, out, _ = invoke(config, "mentions", "--format", "jsonl", "--search", needle)
        assert code == 0
        rows = [json.loads(line) for line in out.splitlines()]
        assert [row["title"] for row in rows] == ["Kryptonite: Verspätung bei der Lieferung"]
    code, out, _ = invoke(config, "mentions", "--format", "jsonl", "--search", "Verspätungen")
    assert out == ""
    # paging through the folded search still honours the limit, newest first
    code, out, _ = invoke(config, "mentions", "--format", "jsonl", "--search", "REVIEW",
                          "--limit", "3")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    assert rows == sorted(rows, key=lambda r: r["published_at"], reverse=True)


def test_csv_cells_with_nested_values_are_json(config: str) -> None:
    from listener.cli.output import _csv_cell

    cell = _csv_cell([{"title": "a,b", "url": None}])
    assert json.loads(cell) == [{"title": "a,b", "url": None}]
    assert _csv_cell({"k": 1}) == '{"k": 1}'
    assert _csv_cell(["x", "y"]) == "x, y"
