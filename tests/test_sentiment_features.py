"""Features of the built-in sentiment model: the trainer and the scorer see the same features,
word units expand into sub-words, the third-party polarity lists are looked up (inflected,
negated) and shipped as imported, and the scorer's memo never changes a score."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from listener.enrichment import sentiment
from listener.enrichment import sentiment_rules as rules
from listener.enrichment.sentiment import Scorer

ROOT = Path(__file__).resolve().parents[1]

TEXTS = [
    ("en", "The refund never arrived and support was rude :("),
    ("en", "not bad at all, but sooooo slow!!!"),
    ("en", "Absolutely love the new app 😍"),
    ("en", "Their scammy refundless policy is outrageous"),
    ("de", "Das Essen war gut, aber der Service war eine Katastrophe"),
    ("de", "Das gefällt mir nicht."),
    ("de", "Totalausfall und keine Entschädigung, nie wieder!"),
    ("de", "Eine abartige, enttäuschende Kundenservice-Katastrophe 😡"),
]


def _trainer():  # type: ignore[no-untyped-def]
    pytest.importorskip("numpy")
    pytest.importorskip("scipy")
    spec = importlib.util.spec_from_file_location(
        "train_sentiment", ROOT / "scripts" / "train_sentiment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("lang", "text"), TEXTS)
def test_trainer_features_give_the_scorers_probabilities(lang: str, text: str) -> None:
    train = _trainer()
    lex = rules.load_lexicon(lang)
    feats = train.featurise(text, lex, lang == "de")
    weights = sentiment.read_weights(sentiment.DEFAULT_MODEL_DIR / f"{lang}.tsv")
    z = sum((weights.get(f, 0j) * v for f, v in feats.items()), 0j)
    dense = rules.analyse(text, lex, lang == "de").dense
    z += complex(
        sentiment.RULE_COMPLAINT * dense["@cmp"]
        + sentiment.RULE_EMOJI * dense["@emo-"]
        - sentiment.RULE_NOT_NEG * dense["@not-neg"]
        + sentiment.RULE_NOT_POS * dense["@not-pos"],
        sentiment.RULE_EMOJI * dense["@emo+"],
    )
    total = 1 + math.exp(z.real) + math.exp(z.imag)
    got = Scorer().probabilities(text, lang)
    assert got.negative == pytest.approx(math.exp(z.real) / total, abs=1e-9)
    assert got.positive == pytest.approx(math.exp(z.imag) / total, abs=1e-9)


def test_memo_never_changes_a_score(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [(t, lang) for lang, t in TEXTS]
    fresh = Scorer().score_many(items)
    warm = Scorer()
    warm.score_many(items)
    assert warm.score_many(items) == fresh
    monkeypatch.setattr(sentiment, "UNIT_MEMO_MAX", 2)  # cleared again and again
    assert Scorer().score_many(items * 3) == fresh * 3


def test_english_words_expand_into_character_ngrams() -> None:
    lex = rules.load_lexicon("en")
    feats = rules.expand("refund", lex)
    assert feats[0] == "refund"
    assert {"#<re", "#ref", "#und>", "#<refu", "#fund>"} <= set(feats)
    assert "#<refund>" not in feats and all(len(f) <= 6 for f in feats[1:])
    negated = rules.expand("!refund", lex)
    assert negated[0] == "!refund" and "!#und>" in negated and "#und>" not in negated
    assert rules.expand(":)", lex) == (":)",)


def test_german_words_expand_into_their_stem_only() -> None:
    lex = rules.load_lexicon("de")
    assert rules.expand("enttäuschend", lex) == ("enttäuschend", "~enttä")
    assert rules.expand("!gut", lex) == ("!gut",)


def test_polarity_list_finds_inflected_german_words() -> None:
    lex = rules.load_lexicon("de")
    value = lex.external["abartig"]
    assert value < 0 and "abartige" not in lex.external
    assert rules.polarity("abartige", lex) == ("@x-", -value)
    assert rules.polarity("!abartig", lex) == ("@xn-", -value)
    assert rules.polarity("montag", lex) is None


def test_polarity_mass_counts_half_before_a_contrast() -> None:
    train = _trainer()
    lex = rules.load_lexicon("en")
    value = lex.external["horrible"]
    after = train.featurise("fine but horrible", lex, False)["@x-"]
    before = train.featurise("horrible but fine", lex, False)["@x-"]
    assert after == pytest.approx(-value) and before == pytest.approx(-value / 2)
    negated = train.featurise("not horrible", lex, False)
    assert negated["@xn-"] == pytest.approx(-value) and "@x-" not in negated


def test_shipped_english_polarity_list_is_vaders_lexicon() -> None:
    vader = pytest.importorskip("vaderSentiment")
    source = Path(vader.__file__).parent / "vader_lexicon.txt"
    expected = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0] and " " not in parts[0]:
            value = f"{max(-1.0, min(1.0, float(parts[1]) / 4)):.3f}"
            if value not in ("0.000", "-0.000"):
                expected[parts[0].lower()] = float(value)
    assert rules.load_lexicon("en").external == expected


def test_naive_bayes_scale_favours_telling_words() -> None:
    train = _trainer()
    import numpy as np
    import scipy.sparse

    vocab = ["@neg", "awful", "great", "the"]
    # negative, negative, neutral, positive: "awful" only in the negative ones, "the" everywhere
    x = scipy.sparse.csr_matrix(
        np.array([[0.5, 1, 0, 1], [0.7, 1, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]], dtype=float)
    )
    scale = train.nb_scale(x, np.array([0, 0, 1, 2]), vocab, 1.0)
    assert scale[0] == 1.0  # dense features keep their scale
    assert scale[1] > scale[3] >= 1.0 and scale[2] > scale[3]
    half = train.nb_scale(x, np.array([0, 0, 1, 2]), vocab, 0.5)
    assert np.allclose(half - 1, (scale - 1) / 2)
