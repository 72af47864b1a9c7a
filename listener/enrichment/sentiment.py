"""Built-in sentiment scorer for English and German: a small trained model plus linguistic rules.

Owns turning a text into a `Sentiment` (label, score in [-1, 1], confidence, reasons) and the
`VERSION` string stored with every score. Rules it applies:

- Offline and self-contained: the weights live in `listener/enrichment/model/` (en.tsv, de.tsv,
  meta.json), the lexicons beside this module; nothing is downloaded, no third-party runtime deps.
- Model: per language a multinomial logistic regression over word uni/bi-grams with negation
  marking and contrast weighting, English character 3-5-grams, German stems, polarity-list
  masses (VADER's lexicon, the German Polarity Lexicon) and the rules' lexicon masses (see
  `sentiment_rules`), trained by `scripts/train_sentiment.py` from the permissively licensed
  data described in ../shared/data/sentiment/SOURCES.md. Attributions: `listener/NOTICE`.
- Speed: a word's weights (the word, its sub-words, its polarity mass) are added up once per
  model and remembered (`UNIT_MEMO_MAX` words); bigrams are looked up in a table of their own.
- Memory: the weights are held in flat arrays (`sentiment_weights.Weights`: the scorer holds
  7 MB where dicts of floats made it 22 MB in every worker process); a lookup gives the very
  numbers the file holds, so scores are bit for bit those of a dict.
- Rules on top: a hand-set prior for complaint words/phrases and emoji (under-represented in the
  training data), and for negated polarity words ("not bad" away from negative, "nicht gut"
  towards it). The negative label is given when P(negative) reaches a per-language threshold
  tuned on dev.jsonl only, a separate (higher) one when no negative rule fired (no negative or
  complaint word, negative emoji or negated positive word), and never when P(positive) is
  larger (a negative label with a positive score would contradict itself); otherwise the larger
  of P(positive) and P(neutral) wins.
- score = P(positive) - P(negative); confidence = probability of the chosen label.
- Languages other than "en"/"de" are scored with the English model and rules, with the confidence
  halved and a "lang: ..." reason: best effort, never trusted as much as a supported language.
- `VERSION` is derived from the bytes of the weights, thresholds, lexicons and rules, so it
  changes whenever any of them changes; a `Scorer(model_dir)` reports its own `version`.
- Pure and synchronous; CPU-bound, so callers run it off the event loop.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from listener.enrichment import sentiment_rules as rules
from listener.enrichment.sentiment_weights import Weights, read_model

DEFAULT_MODEL_DIR = Path(__file__).parent / "model"
MODEL_FILES = ("meta.json", "en.tsv", "de.tsv")
LABELS = ("negative", "neutral", "positive")
RULE_COMPLAINT = 0.45  # added to the negative logit per unit of complaint mass (hand-set)
RULE_EMOJI = 0.35  # added to the negative/positive logit per unit of emoji mass (hand-set)
RULE_NOT_NEG = 0.5  # "not bad": taken from the negative logit per unit (hand-set)
RULE_NOT_POS = 0.4  # "nicht gut": added to the negative logit per unit (hand-set)
OTHER_LANG_CONFIDENCE = 0.5
UNIT_MEMO_MAX = 50_000  # words whose summed weights a model remembers


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: str  # "negative" | "neutral" | "positive"
    score: float  # in [-1, 1]
    confidence: float  # in [0, 1]
    reasons: tuple[str, ...]  # words/rules that drove it


def version_of(model_dir: Path) -> str:
    """Version string of a model directory together with this package's rules and lexicons."""
    digest = hashlib.sha256()
    for path in [model_dir / name for name in MODEL_FILES] + [
        rules.HERE / name for name in (*rules.LEXICON_FILES, "sentiment_rules.py")
    ]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return f"lexlr-1.0+{digest.hexdigest()[:8]}"


def read_weights(path: Path) -> dict[str, complex]:
    """feature -> complex(negative logit, positive logit), both relative to neutral."""
    weights: dict[str, complex] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            feature, neg, pos = line.rstrip("\n").split("\t")
            weights[feature] = complex(float(neg), float(pos))
    return weights


class Probabilities(NamedTuple):
    negative: float
    neutral: float
    positive: float
    evidence: bool  # a negative rule fired (negative/complaint word, negative emoji, "nicht gut")
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class _Model:
    weights: Weights  # of everything but bigrams
    pairs: Weights  # of bigrams: apart, a smaller table
    bias: complex
    thresholds: tuple[float, float]  # P(negative) needed with / without negative rule evidence
    lexicon: rules.Lexicon
    compounds: bool
    units: dict[str, complex] = field(default_factory=dict)  # unit -> summed weights (memo)

    def total(self, units: list[str]) -> complex:
        """Sum of the weights of word `units`: each expanded by `rules.expand`, plus its
        `rules.polarity` mass."""
        memo = self.units
        try:
            return sum(map(memo.__getitem__, units), 0j)
        except KeyError:
            if len(memo) > UNIT_MEMO_MAX:
                memo.clear()
            weights, lex = self.weights, self.lexicon
            total = 0j
            for unit in units:
                value = memo.get(unit)
                if value is None:
                    value = weights.total(rules.expand(unit, lex), 0j)
                    if mass := rules.polarity(unit, lex):
                        value += weights.get(mass[0]) * mass[1]
                    memo[unit] = value
                total += value
            return total


class Scorer:
    """Scores texts with the shipped model (or one in `model_dir`)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        directory = DEFAULT_MODEL_DIR if model_dir is None else model_dir
        missing = [n for n in MODEL_FILES if not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"sentiment model incomplete in {directory}: missing {', '.join(missing)}; "
                "run scripts/train_sentiment.py --out DIR"
            )
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        self._models: dict[str, _Model] = {}
        for lang in ("en", "de"):
            weights, pairs, bias = read_model(directory / f"{lang}.tsv")
            self._models[lang] = _Model(
                weights=weights,
                pairs=pairs,
                bias=bias,
                thresholds=(
                    float(meta["thresholds"][lang]),
                    float(meta["thresholds"][f"{lang}_plain"]),
                ),
                lexicon=rules.load_lexicon(lang),
                compounds=lang == "de",
            )
        self.version = version_of(directory)

    def probabilities(self, text: str, lang: str) -> Probabilities:
        """Class probabilities, negative evidence and rule reasons (no threshold applied)."""
        return Probabilities(
            *self._probabilities(self._models.get(lang) or self._models["en"], text)
        )

    @staticmethod
    def _probabilities(model: _Model, text: str) -> tuple[float, float, float, bool, list[str]]:
        analysis = rules.analyse(text, model.lexicon, model.compounds)
        get = model.weights.get
        pairs = model.pairs
        z = model.bias + model.total(analysis.after) + pairs.total(analysis.pairs_after)
        if analysis.before:
            z += rules.CONTRAST_BEFORE * (
                model.total(analysis.before) + pairs.total(analysis.pairs_before)
            )
        dense = analysis.dense
        for name, value in dense.items():
            if value:
                z += get(name) * value
        cmp, emo_neg, not_pos = dense["@cmp"], dense["@emo-"], dense["@not-pos"]
        z += complex(
            RULE_COMPLAINT * cmp
            + RULE_EMOJI * emo_neg
            - RULE_NOT_NEG * dense["@not-neg"]
            + RULE_NOT_POS * not_pos,
            RULE_EMOJI * dense["@emo+"],
        )
        neg = math.exp(max(-30.0, min(30.0, z.real)))
        pos = math.exp(max(-30.0, min(30.0, z.imag)))
        total = 1.0 + neg + pos
        evidence = bool(dense["@neg"] or cmp or emo_neg or not_pos)
        return neg / total, 1.0 / total, pos / total, evidence, analysis.reasons

    def words(self, text: str, lang: str, limit: int = 4) -> list[tuple[str, float]]:
        """The words that moved the score most, with how far: the model's positive minus
        negative logit of each word (sub-words and polarity mass included, halved before a
        contrast), strongest first. For explanations; not on the scoring path."""
        model = self._models.get(lang) or self._models["en"]
        analysis = rules.analyse(text, model.lexicon, model.compounds)
        pushes: dict[str, float] = {}
        for units, weight in ((analysis.before, rules.CONTRAST_BEFORE), (analysis.after, 1.0)):
            for unit in units:
                value = model.total([unit]) * weight
                pushes[unit] = pushes.get(unit, 0.0) + value.imag - value.real
        ranked = sorted(pushes.items(), key=lambda item: (-abs(item[1]), item[0]))
        return [(unit, round(push, 2)) for unit, push in ranked[:limit] if abs(push) >= 0.05]

    def score(self, text: str, lang: str) -> Sentiment:
        model = self._models.get(lang)
        p_neg, p_neu, p_pos, evidence, reasons = self._probabilities(
            model or self._models["en"], text
        )
        thresholds = (model or self._models["en"]).thresholds
        if p_neg >= thresholds[0 if evidence else 1] and p_neg >= p_pos:
            label, confidence = "negative", p_neg
        elif p_pos >= p_neu:
            label, confidence = "positive", p_pos
        else:
            label, confidence = "neutral", p_neu
        if model is None:
            confidence *= OTHER_LANG_CONFIDENCE
            reasons.append(f"lang: {lang!r} scored with English rules")
        return Sentiment(label, p_pos - p_neg, confidence, tuple(dict.fromkeys(reasons)))

    def score_many(self, items: Sequence[tuple[str, str]]) -> list[Sentiment]:
        score = self.score
        return [score(text, lang) for text, lang in items]


def window(text: str, terms: Sequence[str], width: int = 280) -> str:
    """The part of a long text around the first mention of any term (case-insensitive), at most
    `width` characters, cut at word boundaries where possible; the start of the text when no term
    occurs; short texts unchanged."""
    if len(text) <= width:
        return text
    low = text.lower()
    hits = sorted((i, i + len(t)) for t in terms if t and (i := low.find(t.lower())) >= 0)
    start, keep = 0, 0  # keep: the text up to here must stay inside the window
    if hits:
        first, keep = hits[0]
        start = max(0, min(first - width // 2, len(text) - width))
        if start and not text[start - 1].isspace():
            space = text.find(" ", start, first)
            start = space + 1 if space >= 0 else start
    end = min(len(text), start + width)
    if end < len(text) and not text[end].isspace():
        space = text.rfind(" ", max(start + 1, keep), end)
        end = space if space > start else end
    return text[start:end].strip()


def _default_version() -> str:
    return version_of(DEFAULT_MODEL_DIR)


VERSION: str = _default_version()
