"""Sentiment benchmark: the built-in scorer next to VADER and a German lexicon baseline.

    python bench/sentiment_bench.py [--data ../shared/data/sentiment] [--no-holdout]

Prints, per language and per source of dev.jsonl: accuracy, macro-F1 and precision/recall/F1 of
the negative class for
- listener: `listener.enrichment.sentiment.Scorer` (thresholds were tuned on dev.jsonl, so dev
  figures are optimistic; the hold-out figures below are not tuned on),
- vader: vaderSentiment 3.3 (pip install vaderSentiment), compound <= -0.05 negative, >= 0.05
  positive (its documented thresholds); run on German too, to show what an English lexicon does
  there,
- lexicon-de: a bare German lexicon baseline: sum of the polarity of the ~250 hand-picked
  positive/negative/complaint words of listener/enrichment/lexicon_de.txt over the lower-cased
  word tokens, no negation, no model; < 0 negative, > 0 positive, else neutral.
Then the same figures for listener on the 10% of train.jsonl the trainer held out (same seed),
and throughput in texts/s on one core for dev texts as they are and cut to 100-220 characters.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from listener.enrichment import sentiment_rules
from listener.enrichment.sentiment import VERSION, Scorer

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("negative", "neutral", "positive")


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def metrics(gold: list[str], pred: list[str]) -> tuple[float, float, float, float, float]:
    """accuracy, macro-F1, negative precision, recall, F1"""
    f1s = []
    neg = (0.0, 0.0, 0.0)
    for label in LABELS:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, pred, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        if label == "negative":
            neg = (prec, rec, f1)
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    return acc, sum(f1s) / 3, *neg


def vader() -> Callable[[str], str] | None:
    try:
        from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]  # no stubs
            SentimentIntensityAnalyzer,
        )
    except ImportError:
        return None
    analyzer = SentimentIntensityAnalyzer()

    def label(text: str) -> str:
        c = analyzer.polarity_scores(text)["compound"]
        return "negative" if c <= -0.05 else "positive" if c >= 0.05 else "neutral"

    return label


def lexicon_de() -> Callable[[str], str]:
    lex = sentiment_rules.load_lexicon("de")
    polarity = dict(lex.polarity)
    polarity.update({w: -v for w, v in lex.complaint.items() if " " not in w})
    words = re.compile(r"\w+")

    def label(text: str) -> str:
        s = sum(polarity.get(w, 0.0) for w in words.findall(text.lower()))
        return "negative" if s < 0 else "positive" if s > 0 else "neutral"

    return label


def table(rows: list[dict[str, str]], systems: dict[str, Callable[[str, str], str]]) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["lang"]].append(i)
        groups[f"{r['lang']}:{r['source']}"].append(i)
    preds = {name: [f(r["text"], r["lang"]) for r in rows] for name, f in systems.items()}
    print(
        f"{'group':30} {'n':>5} {'system':11} {'acc':>6} {'macroF1':>7} "
        f"{'negP':>6} {'negR':>6} {'negF1':>6}"
    )
    for group in sorted(groups, key=lambda g: (g.split(":")[0], ":" in g, g)):
        idx = groups[group]
        gold = [rows[i]["label"] for i in idx]
        for name, pred in preds.items():
            lang = group.split(":")[0]
            if name == "lexicon-de" and lang != "de":
                continue
            acc, macro, prec, rec, f = metrics(gold, [pred[i] for i in idx])
            print(
                f"{group:30} {len(idx):5} {name:11} {acc:6.3f} {macro:7.3f} "
                f"{prec:6.3f} {rec:6.3f} {f:6.3f}"
            )


def throughput(scorer: Scorer, rows: list[dict[str, str]]) -> None:
    """texts/s on one core for dev.jsonl as is and for its texts repeated and cut to about 100,
    150 and 220 characters (a mention's window is at most 280)."""
    natural = [(r["text"], r["lang"]) for r in rows]
    sets = [("dev.jsonl as is", natural)]
    for cut in (100, 150, 220):
        texts = []
        for text, lang in natural:
            while len(text) < cut - 40:
                text = text + " " + text
            texts.append((text[:cut], lang))
        sets.append((f"cut to <= {cut} chars", texts))
    for name, texts in sets:
        mean = sum(len(t) for t, _ in texts) / len(texts)
        scorer.score_many(texts)  # a running daemon has seen most words before
        best = 0.0
        for _ in range(5):
            start = time.perf_counter()
            scorer.score_many(texts)
            best = max(best, len(texts) / (time.perf_counter() - start))
        print(
            f"throughput: {best:>7,.0f} texts/s on one core, {name:<20} "
            f"(mean {mean:.0f} chars, {len(texts)} texts, best of 5)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/sentiment")
    parser.add_argument("--no-holdout", action="store_true")
    args = parser.parse_args()
    scorer = Scorer()
    print(f"listener sentiment {VERSION}")
    systems: dict[str, Callable[[str, str], str]] = {
        "listener": lambda t, lang: scorer.score(t, lang).label,
    }
    v = vader()
    if v is not None:
        systems["vader"] = lambda t, lang: v(t)
    else:
        print("vaderSentiment not installed: no VADER column")
    lex = lexicon_de()
    systems["lexicon-de"] = lambda t, lang: lex(t)
    dev = read_jsonl(args.data / "dev.jsonl")
    print("\n== dev.jsonl (thresholds and L2 were chosen on it)")
    table(dev, systems)
    if not args.no_holdout:
        spec = importlib.util.spec_from_file_location("train", ROOT / "scripts/train_sentiment.py")
        assert spec is not None and spec.loader is not None
        train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(train)
        _, held = train.split_holdout(read_jsonl(args.data / "train.jsonl"))
        print("\n== 10% of train.jsonl held out by the trainer (never trained or tuned on)")
        table(held, {"listener": systems["listener"]})
    print()
    throughput(scorer, dev)


if __name__ == "__main__":
    main()
