"""Sentiment from the command line: one text, a JSON-lines stream, and re-scoring history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import listener.cli.commands
import listener.cli.sentiment  # noqa: F401  (registers the commands)
from listener.cli import cli


def test_one_text_says_why() -> None:
    result = CliRunner().invoke(cli, ["sentiment", "Totalausfall bei der Bahn, schon wieder 😡"])
    assert result.exit_code == 0, result.stderr
    first, *reasons = result.stdout.splitlines()
    assert first.startswith("negative") and "lang de" in first
    assert reasons  # the rules that fired are listed


def test_one_text_names_the_words_that_moved_it() -> None:
    # "abartig" is in no hand-written rule, only in the German Polarity Lexicon and the model.
    result = CliRunner().invoke(
        cli, ["sentiment", "--lang", "de", "Der Kundendienst war abartig, nie wieder"]
    )
    assert result.exit_code == 0, result.stderr
    words = [line.split()[1] for line in result.stdout.splitlines() if "  word: " in line]
    assert words[0] == "abartig"
    negated = CliRunner().invoke(cli, ["sentiment", "--lang", "en", "the food was not good"])
    assert "word: good [negated] (-" in negated.stdout


def test_jsonl_streams_in_order_and_reports_bad_lines() -> None:
    lines = [
        json.dumps({"text": "I want a refund, the lock broke after two days"}),
        "not json",
        json.dumps({"text": "Lieferung kam pünktlich 😍", "lang": "de"}),
        json.dumps({"text": "x", "lang": "fr"}),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "listener", "sentiment", "--jsonl"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o.get("label") for o in out] == ["negative", None, "positive", None]
    assert out[0]["lang"] == "en" and out[2]["lang"] == "de"
    assert out[1]["line"] == 2 and out[3]["line"] == 4
    assert proc.stderr.count("Error: stdin line") == 2 and "Traceback" not in proc.stderr


def test_rescore_updates_stored_mentions(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    subprocess.run(
        [sys.executable, "-m", "listener", "demo", "--dir", str(demo)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    config = str(demo / "listener.toml")
    result = CliRunner().invoke(
        cli, ["rescore", "--config", config, "--brand", "Nordbahn"], env={"LISTENER_CONFIG": ""}
    )
    assert result.exit_code == 0, result.stderr
    counted = CliRunner().invoke(
        cli,
        ["mentions", "--config", config, "--brand", "Nordbahn", "--limit", "0", "--format", "json"],
        env={"LISTENER_CONFIG": ""},
    )
    stored = len(json.loads(counted.stdout))
    assert stored > 5
    assert result.stdout.startswith(f"Rescored {stored} mentions with lexlr-")
    result = CliRunner().invoke(
        cli,
        [
            "mentions",
            "--config",
            config,
            "--brand",
            "Nordbahn",
            "--sentiment",
            "negative",
            "--format",
            "json",
        ],
        env={"LISTENER_CONFIG": ""},
    )
    rows = json.loads(result.stdout)
    assert rows and all(r["sentiment"] == "negative" for r in rows)
    bad = CliRunner().invoke(
        cli, ["rescore", "--config", config, "--brand", "Nope"], env={"LISTENER_CONFIG": ""}
    )
    assert bad.exit_code == 2 and "no brand named 'Nope'" in bad.stderr
