"""Brand queries from the command line: validation with a caret, `query test`, `rematch`, and a
syndicated story fetched from many feeds counted as one story."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from feeds import rss
from pytest_httpserver import HTTPServer

import listener.cli.commands
import listener.cli.queries  # noqa: F401  (registers the commands)
from listener.cli import cli
from listener.storage import engine as db

WIRE = (  # a wire story of ordinary length (~120 words)
    "Velora recalls 40,000 Lock One bike locks after a video showed the lock opening with a "
    "ballpoint pen. The company said customers can return affected locks for a free "
    "replacement at any dealer, and that a redesigned cylinder will ship from January. "
    "Consumer groups criticised the slow response: the first videos circulated ten days ago. "
    "According to the recall notice, locks sold between March and October carry the defect; "
    "the serial number is printed on the key card. Dealers in Germany, Austria and the "
    "Netherlands have been told to stop selling the model. Velora shares fell eleven percent "
    "in Frankfurt trading, and the chief executive apologised in a statement, promising an "
    "independent review of how the company tests its products."
)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"LISTENER_CONFIG": ""})
    return result.exit_code, result.stdout, result.stderr


def write_config(tmp_path: Path, brands: str, sources: str = "") -> str:
    path = tmp_path / "listener.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "l.db"}"\n[log]\nlevel = "error"\n'
        f"{brands}\n{sources}",
        encoding="utf-8",
    )
    return str(path)


def test_broken_query_is_refused_with_a_caret(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[[brands]]\nname = \"Velora\"\nquery = 'Velora AND NOT'\n")
    code, out, err = invoke("check-config", "--config", config)
    assert code == 2 and out == ""
    first, query_line, caret = err.splitlines()
    assert first.startswith("Error: ") and "brands[0].query" in first and "column 15" in first
    assert "'Velora'" in first  # names the brand
    assert query_line.strip() == "Velora AND NOT"
    # the caret stands where the missing term should be: right after NOT
    assert caret.index("^") - (len(query_line) - len(query_line.lstrip())) == 14


def test_terms_and_query_together_are_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[[brands]]\nname = "V"\nterms = ["V"]\nquery = "V"\n')
    code, _, err = invoke("check-config", "--config", config)
    assert code == 2 and "either query or terms" in err


@pytest.fixture
def populated(tmp_path: Path, httpserver: HTTPServer) -> str:
    sites = [f"site{i}" for i in range(8)]
    for i, site in enumerate(sites):
        # the same wire story, lightly edited, under each site's own URL and boilerplate
        text = WIRE.replace("ten days ago", "ten days ago, " + site + " reported" * (i % 2))
        items = [
            {
                "title": f"Velora recalls Lock One{'!' * (i % 3)}",
                "guid": f"{site}-1",
                "link": f"https://{site}.example/news/velora-recall?utm_source=rss",
                # the site's own header and footer are separate blocks around the wire text
                "description": f"<p>{site.upper()} NEWS | Home | Tech</p><p>{text}</p>"
                f"<p>Subscribe to {site} for more.</p>",
            },
            {
                "title": f"{site}: Velora Cityrad review",
                "guid": f"{site}-2",
                "link": f"https://{site}.example/reviews/cityrad",
                "description": f"Our own review number {i}: the Cityrad rides well, battery "
                f"lasts {30 + i} km, brakes squeal in the rain.",
            },
        ]
        httpserver.expect_request(f"/{site}").respond_with_data(rss(items), content_type="text/xml")
    sources = "".join(
        f'[[sources]]\nname = "{s}"\nurl = "{httpserver.url_for("/" + s)}"\n' for s in sites
    )
    config = write_config(tmp_path, '[[brands]]\nname = "Velora"\nterms = ["Velora"]\n', sources)
    assert invoke("db", "upgrade", "--config", config)[0] == 0
    code, _out, err = invoke("poll", "--config", config)
    assert code == 0, err
    return config


def test_syndicated_story_counts_once(populated: str, tmp_path: Path) -> None:
    engine = db.connect(f"sqlite:///{tmp_path / 'l.db'}")
    with engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                "SELECT story_id, count(*) FROM mentions WHERE title LIKE 'Velora recalls%' "
                "GROUP BY story_id"
            )
        ).all()
        reviews = conn.execute(
            text("SELECT count(DISTINCT story_id) FROM mentions WHERE title LIKE '%review'")
        ).scalar()
    engine.dispose()
    assert [count for _, count in rows] == [8]  # one story, eight copies
    assert reviews == 8  # different articles stay different stories


def test_query_test_and_rematch(populated: str) -> None:
    code, out, err = invoke(
        "query",
        "test",
        "recall* NEAR/5 Velora",
        "--config",
        populated,
        "--since",
        "3650d",
        "--format",
        "json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["matched"] == 8 and result["scanned"] == 16
    assert sum(day["mentions"] for day in result["per_day"]) == 8
    assert all("recall" in s["title"].lower() for s in result["samples"])

    code, _, err = invoke("query", "test", "recall AND (", "--config", populated)
    assert code == 2 and "^" in err

    # narrow the brand to reviews only, then rematch: recall stories lose the brand
    text = (
        Path(populated)
        .read_text(encoding="utf-8")
        .replace('terms = ["Velora"]', "query = 'Velora AND (review OR Cityrad) -recall*'")
    )
    Path(populated).write_text(text, encoding="utf-8")
    code, out, err = invoke("rematch", "--config", populated)
    assert code == 0, err
    assert "0 links added, 8 removed; 8 mentions now match no brand" in out
    code, out, _ = invoke(
        "mentions", "--config", populated, "--brand", "Velora", "--format", "json", "--limit", "0"
    )
    assert len(json.loads(out)) == 8
    code, out, _ = invoke("rematch", "--config", populated)
    assert "0 links added, 0 removed" in out  # idempotent
