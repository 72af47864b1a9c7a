"""The sentiment model's compact weight tables (`sentiment_weights.Weights`) hold exactly what
the model files say: every feature gives the file's numbers, absent ones 0j, and a scorer on
them scores every text bit for bit as one on plain dicts (the tables of before)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from listener.enrichment import sentiment, sentiment_weights
from listener.enrichment.sentiment import Scorer
from listener.enrichment.sentiment_weights import Weights, read_model

TEXTS = [
    ("en", "The refund never arrived and support was rude :("),
    ("en", "not bad at all, but sooooo slow!!!"),
    ("en", "Absolutely love the new app 😍 best purchase this year"),
    ("en", "Their scammy refundless policy is outrageous, never again"),
    ("en", "The delivery was on time and the driver was friendly."),
    ("en", "I waited three weeks for a reply. Still no answer from customer service."),
    ("de", "Das Essen war gut, aber der Service war eine Katastrophe"),
    ("de", "Das gefällt mir nicht."),
    ("de", "Totalausfall und keine Entschädigung, nie wieder!"),
    ("de", "Eine abartige, enttäuschende Kundenservice-Katastrophe 😡"),
    ("de", "Super Beratung im Laden, ich bin sehr zufrieden mit dem neuen Rad."),
    ("de", "Die Lieferung kam pünktlich, aber die Rechnung war falsch."),
    ("fr", "Le service client est vraiment nul"),
]


class _DictTable:
    """The tables as they were: a plain dict, summed as the scorer summed it."""

    def __init__(self, weights: dict[str, complex]) -> None:
        self.weights = weights

    def get(self, feature: str) -> complex:
        return self.weights.get(feature, 0j)

    def total(self, features: list[str], start: complex | int = 0) -> complex:
        return sum([self.weights.get(f, 0j) for f in features], start)


def _dict_scorer() -> Scorer:
    scorer = Scorer()
    for lang, model in list(scorer._models.items()):
        plain = sentiment.read_weights(sentiment.DEFAULT_MODEL_DIR / f"{lang}.tsv")
        assert plain.pop("@bias") == model.bias
        scorer._models[lang] = replace(
            model,
            weights=_DictTable({f: w for f, w in plain.items() if " " not in f}),  # type: ignore[arg-type]
            pairs=_DictTable({f: w for f, w in plain.items() if " " in f}),  # type: ignore[arg-type]
        )
    return scorer


@pytest.mark.parametrize("lang", ["en", "de"])
def test_every_feature_gives_the_numbers_of_the_file(lang: str) -> None:
    plain = sentiment.read_weights(sentiment.DEFAULT_MODEL_DIR / f"{lang}.tsv")
    words, pairs, bias = read_model(sentiment.DEFAULT_MODEL_DIR / f"{lang}.tsv")
    assert bias == plain.pop("@bias")
    assert len(words) + len(pairs) == len(plain)
    for feature, weight in plain.items():
        table = pairs if " " in feature else words
        assert table.get(feature) == weight, feature
        assert table.total([feature, "zz nicht da", feature]) == 0 + weight + 0j + weight
    assert dict(words.items()) | dict(pairs.items()) == plain
    for absent in ["", "refund refund refund", "#zzzq", "ünbekännt", "😀😀", "@bias"]:
        assert words.get(absent) == 0j and pairs.get(absent) == 0j


def test_scores_equal_those_of_plain_dicts() -> None:
    compact, plain = Scorer(), _dict_scorer()
    for _ in range(2):  # cold memos, then warm ones
        for text, lang in [(t, lang) for lang, t in TEXTS]:
            assert compact.score(text, lang) == plain.score(text, lang), text
            assert compact.probabilities(text, lang) == plain.probabilities(text, lang), text
            assert compact.words(text, lang) == plain.words(text, lang), text


def test_a_full_memo_is_cleared_and_changes_no_score(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [(t, lang) for lang, t in TEXTS]
    fresh = Scorer().score_many(items)
    monkeypatch.setattr(sentiment_weights, "FEATURE_MEMO_MAX", 3)
    scorer = Scorer()
    assert scorer.score_many(items * 2) == fresh * 2
    assert all(len(m.weights.memo) <= 3 and len(m.pairs.memo) <= 3 for m in scorer._models.values())


def test_signed_zeros_duplicates_and_pickling(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text(
        "@bias\t0.5\t-0.25\nzero\t-0.0\t0.0\ngut\t0.1\t0.2\ngut\t0.3\t0.4\nnicht gut\t1.5\t-2.5\n"
        "😍\t-0.5\t1.5\nsehr grün\t0.25\t0.75\nsehr grün\t0.5\t1.0\n",
        encoding="utf-8",
    )
    words, pairs, bias = read_model(path)
    assert bias == complex(0.5, -0.25)
    zero = words.get("zero")
    assert str(zero.real) == "-0.0" and str(zero.imag) == "0.0"
    assert words.get("gut") == complex(0.3, 0.4)  # written twice: the last counts, as in a dict
    assert pairs.get("nicht gut") == complex(1.5, -2.5) and words.get("nicht gut") == 0j
    assert words.get("😍") == complex(-0.5, 1.5) and pairs.get("sehr grün") == complex(0.5, 1.0)
    assert words.get("grün") == 0j and pairs.total(["sehr grün", "nicht gut"]) == 0 + complex(
        0.5, 1.0
    ) + complex(1.5, -2.5)
    copy = pickle.loads(pickle.dumps(words))
    assert isinstance(copy, Weights) and dict(copy.items()) == dict(words.items())
    assert copy.get("gut") == complex(0.3, 0.4) and copy.get("schlecht") == 0j
