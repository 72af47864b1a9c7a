"""Sentiment from the command line: score a text, score a JSON-lines stream, re-score history."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.enrichment.language import detect
from listener.enrichment.sentiment import Scorer, window
from listener.errors import ConfigError
from listener.models import Score
from listener.service.parse import load_scorer
from listener.storage import detection_state, store
from listener.untrusted import escape_json_unsafe, for_terminal

LANGS = click.Choice(["en", "de"])


def _verdict(scorer: Scorer, text: str, lang: str | None) -> dict[str, Any]:
    language = lang or detect(text)
    result = scorer.score(text, language)
    return {
        "label": result.label,
        "score": round(result.score, 4),
        "confidence": round(result.confidence, 4),
        "lang": language,
        "reasons": list(result.reasons),
        "words": [[word, push] for word, push in scorer.words(text, language)],
        "version": scorer.version,
    }


@cli.command("sentiment")
@click.argument("text", required=False)
@click.option("--lang", type=LANGS, help="Language of the text (default: detected).")
@click.option(
    "--jsonl",
    is_flag=True,
    help='Read {"text": ..., "lang": optional} lines from stdin; write one result line each.',
)
def sentiment(text: str | None, lang: str | None, jsonl: bool) -> None:
    """Score TEXT (or a JSON-lines stream) with the built-in sentiment scorer, and say why."""
    scorer = Scorer()
    if jsonl:
        if text is not None:
            raise click.UsageError("give TEXT or --jsonl, not both")
        _stream(scorer, lang)
        return
    if text is None:
        raise click.UsageError("give a TEXT to score, or --jsonl to read JSON lines from stdin")
    verdict = _verdict(scorer, text, lang)
    click.echo(
        f"{verdict['label']}  score {verdict['score']:+.2f}  confidence "
        f"{verdict['confidence']:.2f}  lang {verdict['lang']}"
    )
    for reason in verdict["reasons"] or ["(no rule fired)"]:
        click.echo(f"  {for_terminal(reason)}")
    for word, push in verdict["words"]:  # "!word": the word under a negation
        shown = f"{word[1:]} [negated]" if word.startswith("!") else word
        click.echo(f"  word: {for_terminal(shown)} ({push:+.2f})")


def _stream(scorer: Scorer, lang: str | None) -> None:
    """One output line per input line, in order, flushed as it goes."""
    out = sys.stdout
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError('expected an object with a "text" string')
            given = record.get("lang", lang)
            if given is not None and given not in ("en", "de"):
                raise ValueError(f"lang must be en or de, not {given!r}")
            result: dict[str, Any] = _verdict(scorer, record["text"], given)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            message = f"stdin line {number}: {exc}"
            click.echo(f"Error: {for_terminal(message)}", err=True)
            result = {"line": number, "error": message}
        out.write(escape_json_unsafe(json.dumps(result, ensure_ascii=False)) + "\n")
        out.flush()


@cli.command("rescore")
@config_option
@click.option("--since", help="Only mentions from this time on: 30d, or an ISO date.")
@click.option("--brand", help="Only mentions of this brand.")
@pass_app
def rescore(app: App, since: str | None, brand: str | None) -> None:
    """Score stored mentions again, e.g. after a model change."""
    settings = app.settings()
    engine = app.engine()
    if brand is not None and brand.casefold() not in {b.name.casefold() for b in settings.brands}:
        raise ConfigError(f"{settings.path}: brands: no brand named {brand!r}")
    start = parse_when(since, "--since", datetime.now(UTC)) if since else None
    terms = sorted({b.name for b in settings.brands})
    scorer = load_scorer((settings.sentiment.backend, settings.sentiment.model_path))
    total = store.count_mentions(engine, since=start, brand=brand)
    changed = 0
    from rich.progress import Progress

    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("rescoring", total=total)
        for batch in store.iter_match_inputs(engine, since=start, brand=brand):
            scores = []
            for row in batch:
                text = window(f"{row.title}\n{row.text}", terms)
                result = scorer.score(text, row.language or "other")
                scores.append(
                    (row.id, Score(result.label, result.score, result.confidence, scorer.version))
                )
            with store.transaction(engine, "cannot store sentiment") as conn:
                store.update_sentiments(conn, scores)
            changed += len(scores)
            progress.advance(task, len(batch))
    if changed:  # history changed (for every brand a mention belongs to): states are rebuilt
        detection_state.forget(engine)
    click.echo(f"Rescored {changed} mentions with {scorer.version}.")
