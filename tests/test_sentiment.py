"""The built-in sentiment scorer: behaviour cases (written before looking at the model's output),
the contract (ranges, labels, version, determinism), window() and training reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from listener.enrichment import sentiment
from listener.enrichment import sentiment_rules as rules
from listener.enrichment.sentiment import VERSION, Scorer, Sentiment, window

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


# --- behaviour cases: written first, the model has to meet them --------------------------------

NEGATIVE = [
    ("de", "Das Essen war nicht gut."),
    ("de", "Das gefällt mir nicht."),
    ("de", "Das Essen war gut, aber der Service war eine Katastrophe"),
    ("de", "Totalausfall bei der Bahn"),
    ("de", "Kundenservice-Katastrophe, seit drei Wochen keine Antwort"),
    ("de", "Rückruf wegen Datenleck"),
    ("de", "Schon wieder 40 Minuten Verspätung 😡"),
    ("de", "Was für eine Abzocke, nie wieder!"),
    ("de", "Das Paket kam kaputt an, ich will eine Erstattung"),
    ("en", "This is not good at all."),
    ("en", "The food was great but the service was a disaster"),
    ("en", "again delayed 😡"),
    ("en", "I want a refund, the lock broke after two days"),
    ("en", "Recall announced after a data leak exposed customer records"),
    ("en", "Rude staff and a total scam, never again"),
    ("en", "My order arrived defective :("),
]

POSITIVE = [
    ("de", "Lieferung kam pünktlich 😍"),
    ("de", "Der Service war anfangs langsam, aber am Ende super freundlich"),
    ("de", "Sehr zufrieden, tolles Produkt!"),
    ("en", "Delivery arrived on time, love it 😍"),
    ("en", "It was slow at first but in the end the support team was great"),
    ("en", "Absolutely love this phone, best purchase this year!"),
]

NOT_NEGATIVE: list[object] = [
    ("en", "not bad"),
    ("en", "The update is not bad at all"),
    ("de", "Nicht schlecht, das neue Update"),
    ("de", "Das war gar nicht so schlimm"),
    ("en", "The store opens at 9am on Monday."),
    ("de", "Die Filiale öffnet am Montag um 9 Uhr."),
]


@pytest.mark.parametrize(("lang", "text"), NEGATIVE)
def test_negative_cases(scorer: Scorer, lang: str, text: str) -> None:
    result = scorer.score(text, lang)
    assert result.label == "negative", result
    assert result.score < 0


@pytest.mark.parametrize(("lang", "text"), POSITIVE)
def test_positive_cases(scorer: Scorer, lang: str, text: str) -> None:
    result = scorer.score(text, lang)
    assert result.label == "positive", result
    assert result.score > 0


@pytest.mark.parametrize(("lang", "text"), NOT_NEGATIVE)
def test_not_negative_cases(scorer: Scorer, lang: str, text: str) -> None:
    assert scorer.score(text, lang).label != "negative"


# Customer-complaint language, under-represented in the training data (written before the
# scorer saw them; the lexicon's complaint words, phrases and remedies were then extended).
COMPLAINTS = [
    ("en", "Three weeks and still no refund from Velora"),
    ("en", "My order was cancelled without any explanation"),
    ("en", "Customer service hung up on me twice"),
    ("en", "They charged my card twice and won't answer emails"),
    ("en", "The app leaked my personal data"),
    ("en", "Velora recalls 40,000 e-bikes over battery fire risk"),
    ("en", "Package arrived damaged and the replacement is out of stock"),
    ("en", "Waited 2 hours on hold, nobody picked up"),
    ("en", "Worst customer experience I've ever had"),
    ("en", "still waiting for my delivery, tracking hasn't updated in 10 days"),
    ("en", "Their support is useless"),
    ("en", "the update bricked my phone"),
    ("en", "Employees filmed doing disgusting things with food"),
    ("de", "Seit drei Wochen warte ich auf meine Erstattung"),
    ("de", "Mein Paket ist seit zwei Wochen verschollen"),
    ("de", "Der Kundenservice legt einfach auf"),
    ("de", "Rückrufaktion wegen Brandgefahr bei Akkus"),
    ("de", "Zug fällt schon wieder aus, keine Durchsage"),
    ("de", "Die App stürzt ständig ab"),
    ("de", "Kundendaten im Netz aufgetaucht – Datenleck bei Velora"),
    ("de", "Nach dem Update funktioniert gar nichts mehr"),
    ("de", "Zweimal abgebucht und keiner meldet sich"),
    ("de", "Lieferung kam beschädigt an und Ersatz ist nicht lieferbar"),
    ("de", "Unverschämtes Personal in der Filiale"),
    ("de", "Bestellung storniert ohne Begründung"),
    pytest.param(
        "en",
        "The lock can be opened with a ballpoint pen",
        marks=pytest.mark.xfail(
            strict=True,
            reason="a product failure told in neutral words: nothing in it is negative "
            "unless you know what a lock is for",
        ),
    ),
]
NOT_COMPLAINTS = [
    ("en", "Velora opens a new store in Berlin"),
    ("de", "Velora eröffnet eine neue Filiale in Berlin"),
    ("en", "No delays at all, the train was on time"),
    ("de", "Keine Verspätung, alles pünktlich"),
    ("de", "Super Service, Problem in einem Tag gelöst"),
]


@pytest.mark.parametrize(("lang", "text"), COMPLAINTS)
def test_complaint_language_is_negative(scorer: Scorer, lang: str, text: str) -> None:
    assert scorer.score(text, lang).label == "negative"


@pytest.mark.parametrize(("lang", "text"), NOT_COMPLAINTS)
def test_absent_problems_and_news_are_not_negative(scorer: Scorer, lang: str, text: str) -> None:
    result = scorer.score(text, lang)
    assert result.label != "negative", result


def test_missing_remedy_is_a_complaint_but_missing_harm_is_not() -> None:
    en = rules.load_lexicon("en")
    absent_refund = rules.analyse("still no refund", en, False)
    assert absent_refund.dense["@cmp"] > 0 and "complaint: no refund" in absent_refund.reasons
    absent_delay = rules.analyse("no delays today", en, False)
    assert absent_delay.dense["@cmp"] == 0 and absent_delay.dense["@not-neg"] > 0
    de = rules.load_lexicon("de")
    assert rules.analyse("keine Rückmeldung", de, True).dense["@cmp"] > 0
    assert rules.analyse("Rückmeldung kam sofort", de, True).dense["@cmp"] == 0


def test_label_never_contradicts_the_score(scorer: Scorer) -> None:
    texts = [t for _, t in NEGATIVE + POSITIVE + COMPLAINTS[:-1] + NOT_COMPLAINTS]
    for lang in ("en", "de"):
        for text in texts:
            result = scorer.score(str(text), lang)
            if result.label == "negative":
                assert result.score <= 0, (text, result)


def test_negation_lowers_the_score(scorer: Scorer) -> None:
    assert scorer.score("nicht gut", "de").score < scorer.score("gut", "de").score
    assert scorer.score("not bad", "en").score > scorer.score("bad", "en").score


def test_contrast_clause_after_dominates(scorer: Scorer) -> None:
    good_then_bad = scorer.score("Das Essen war gut, aber der Service war schlecht", "de")
    bad_then_good = scorer.score("Der Service war schlecht, aber das Essen war gut", "de")
    assert good_then_bad.score < bad_then_good.score


def test_reasons_name_the_rules(scorer: Scorer) -> None:
    reasons = " | ".join(scorer.score("Totalausfall bei der Bahn 😡", "de").reasons)
    assert "compound: totalausfall" in reasons
    assert "emoji: 😡" in reasons
    assert any(r.startswith("negation:") for r in scorer.score("nicht gut", "de").reasons)
    assert any(r.startswith("contrast:") for r in scorer.score("good but awful", "en").reasons)
    assert any(r.startswith("complaint:") for r in scorer.score("I want a refund", "en").reasons)


def test_intensifier_and_exclamation_strengthen(scorer: Scorer) -> None:
    assert scorer.score("sehr schlecht!!!", "de").score < scorer.score("schlecht", "de").score
    assert scorer.score("soooo good!!", "en").score >= scorer.score("good", "en").score


# --- contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("", "en"),
        ("   ", "de"),
        ("!!!", "en"),
        ("😡" * 500, "de"),
        ("x" * 5000, "fr"),
        ("ok", "xx"),
    ],
)
def test_ranges_and_labels(scorer: Scorer, text: str, lang: str) -> None:
    result = scorer.score(text, lang)
    assert isinstance(result, Sentiment)
    assert result.label in {"negative", "neutral", "positive"}
    assert -1.0 <= result.score <= 1.0
    assert 0.0 <= result.confidence <= 1.0
    assert all(isinstance(r, str) for r in result.reasons)


def test_empty_text_is_neutral(scorer: Scorer) -> None:
    assert scorer.score("", "en").label == "neutral"


def test_other_language_is_low_confidence(scorer: Scorer) -> None:
    en = scorer.score("This is terrible, I want a refund", "en")
    other = scorer.score("This is terrible, I want a refund", "fr")
    assert other.label == en.label
    assert other.confidence <= en.confidence / 2 + 1e-9
    assert any(r.startswith("lang:") for r in other.reasons)


def test_score_many_matches_score(scorer: Scorer) -> None:
    items = [(t, lang) for lang, t in NEGATIVE + POSITIVE]
    assert scorer.score_many(items) == [scorer.score(t, lang) for t, lang in items]


def test_deterministic_across_instances() -> None:
    items = [(t, lang) for lang, t in NEGATIVE + POSITIVE]
    assert Scorer().score_many(items) == Scorer().score_many(items)


def test_version_is_stable_and_names_the_weights() -> None:
    assert VERSION.startswith("lexlr-")
    assert Scorer().version == VERSION
    assert sentiment.version_of(sentiment.DEFAULT_MODEL_DIR) == VERSION


def test_version_changes_with_weights(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for f in sentiment.DEFAULT_MODEL_DIR.iterdir():
        if f.is_file():
            (model / f.name).write_bytes(f.read_bytes())
    assert sentiment.version_of(model) == VERSION
    meta = json.loads((model / "meta.json").read_text(encoding="utf-8"))
    meta["thresholds"]["en"] = 0.99
    meta["thresholds"]["en_plain"] = 0.99
    (model / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert Scorer(model).version != VERSION
    assert Scorer(model).score("terrible awful", "en").label != "negative"


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sentiment model"):
        Scorer(tmp_path / "nope")


# --- window() ---------------------------------------------------------------------------------


def test_window_short_text_unchanged() -> None:
    assert window("short text about Acme", ["acme"]) == "short text about Acme"


def test_window_centres_on_first_mention() -> None:
    text = "lorem ipsum " * 100 + "Acme broke my heart" + " dolor sit" * 100
    out = window(text, ["ACME", "Globex"], width=80)
    assert "Acme broke my heart" in out
    assert len(out) <= 80


def test_window_uses_earliest_of_several_terms() -> None:
    text = "x " * 300 + "Globex first " + "y " * 300 + "Acme later" + " z" * 300
    assert "Globex" in window(text, ["acme", "globex"], width=60)


def test_window_no_mention_takes_the_start() -> None:
    text = "word " * 200
    out = window(text, ["acme"], width=50)
    assert text.startswith(out) and len(out) <= 50


def test_window_mention_at_edges() -> None:
    text = "Acme " + "a" * 1000 + " end Acme"
    assert window(text, ["acme"], width=40).startswith("Acme")
    assert window("b" * 1000 + " Acme", ["zzz", "acme"], width=40).endswith("Acme")


# --- training reproducibility -----------------------------------------------------------------


def _write_subset(data: Path) -> None:
    data.mkdir()
    rows = []
    words = {
        "en": {
            "negative": "awful broken refund",
            "neutral": "the store opens",
            "positive": "great love",
        },
        "de": {"negative": "schlecht kaputt", "neutral": "die Filiale", "positive": "super toll"},
    }
    for i in range(60):
        for lang, by_label in words.items():
            for label, w in by_label.items():
                source = "s1" if i % 2 else "s2"
                rows.append(
                    {"text": f"{w} item {i % 7}", "lang": lang, "label": label, "source": source}
                )
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    (data / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (data / "dev.jsonl").write_text("\n".join(lines[::5]) + "\n", encoding="utf-8")


def test_training_reproduces_bytes(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("scipy")
    _write_subset(tmp_path / "data")
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "train_sentiment.py"),
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(out),
                "--iterations",
                "20",
                "--min-count",
                "1",
            ],
            check=True,
            capture_output=True,
        )
        outs.append({f.name: f.read_bytes() for f in sorted(out.iterdir())})
    assert outs[0] == outs[1]
    assert {"en.tsv", "de.tsv", "meta.json"} <= set(outs[0])
