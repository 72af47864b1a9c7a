"""Language detection: English, German and other, short tweets, noise, and the feed's hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from listener.enrichment import language, language_model
from listener.enrichment.language import LANGUAGES, VERSION, detect

ENGLISH = [
    "The train is late again and nobody tells us anything.",
    "Worst customer service ever, still waiting for my refund",
    "lol this is so good",
    "Just got my new phone, battery life is amazing!!",
    "@acme_support my order never arrived, please help https://t.co/AbC123xyz",
    "RT @someone: Huge recall announced for the X200 model #recall #safety",
    "Can't log in since the update. Anyone else?",
    "not bad at all tbh",
]

GERMAN = [
    "Der Zug ist schon wieder zu spaet",
    "Der Zug ist schon wieder zu spät",
    "Totalausfall beim Kundenservice, seit drei Wochen keine Antwort.",
    "Das ist echt nicht gut",
    "Warum funktioniert die App seit dem Update nicht mehr?",
    "@bahn_de wieso steht der ICE schon wieder seit einer Stunde? https://t.co/xyz",
    "Heute endlich das Paket bekommen, alles super #zufrieden",
    "Ich bin total enttäuscht von der Lieferung",
    "Verspätung, Zugausfall, Chaos. Wie jeden Montag",
    "Mega Produkt, würde ich sofort wieder kaufen!",
]

OTHER = [
    "Le train a encore du retard, c'est vraiment insupportable.",
    "Je ne recommande pas ce produit, il est tombé en panne après deux jours.",
    "El servicio al cliente fue muy amable y rápido.",
    "No funciona la aplicación desde ayer, qué desastre.",
    "De trein is weer te laat, ik ben het zat.",
    "Het product werkt prima, erg tevreden met de levering.",
    "Il treno è di nuovo in ritardo, che schifo.",
    "Ho ricevuto il pacco ieri, tutto perfetto grazie.",
    "Поезд снова опаздывает, это ужасно.",
    "電車がまた遅れています。",
]


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert detect(text) == "en"


@pytest.mark.parametrize("text", GERMAN)
def test_german(text: str) -> None:
    assert detect(text) == "de"


@pytest.mark.parametrize("text", OTHER)
def test_other(text: str) -> None:
    assert detect(text) == "other"


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        # empty or too short to tell: the hint's primary subtag if it is en/de, else "other"
        ("", None, "other"),
        ("", "de-DE", "de"),
        ("ok", "en", "en"),
        ("ok", "EN_us", "en"),
        ("👍👍", "de", "de"),
        ("👍👍", "fr-FR", "other"),
        ("   ", "", "other"),
        ("@someone https://example.com/a-very-long-path-that-says-nothing", "de", "de"),
        ("@someone https://example.com/a-very-long-path-that-says-nothing", None, "other"),
        # a hint tips short, ambiguous text...
        ("Hallo Team", "en", "en"),
        ("Hallo Team", "de", "de"),
        # ...but does not override a clear text
        ("Der Zug ist schon wieder zu spaet und keiner sagt etwas", "en", "de"),
        ("The train is late again and nobody tells us anything", "de-AT", "en"),
        ("Le train a encore du retard, c'est vraiment insupportable.", "de", "other"),
        # a hint never makes another script English or German
        ("Поезд снова опаздывает, это ужасно.", "de", "other"),
    ],
)
def test_hint(text: str, hint: str | None, expected: str) -> None:
    assert detect(text, hint) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # handles and URLs carry no language; the German around them decides
        ("@TheRealJohnSmith @HappyCustomer2024 danke für nichts https://shop.example.com/x", "de"),
        # hashtag words stay as text: German tags after German text keep it German
        ("Schon wieder kein Empfang #Funkloch #Netzausfall", "de"),
        ("Check this out https://example.com/de/angebote/produkt?id=123 amazing deal", "en"),
    ],
)
def test_noise(text: str, expected: str) -> None:
    assert detect(text) == expected


def test_clean_removes_urls_handles_and_hash_signs() -> None:
    cleaned = language.clean("@a_b hi #Tag see https://x.example/y and www.z.example mail@x.de")
    assert "@a_b" not in cleaned
    assert "https" not in cleaned
    assert "www." not in cleaned
    assert "#" not in cleaned
    assert "Tag" in cleaned
    assert "mail@x.de" in cleaned  # an e-mail address is not a handle


def test_long_text_is_judged_by_its_start() -> None:
    text = "Der Kundenservice hat sich nach drei Wochen immer noch nicht gemeldet. " * 20
    assert detect(text) == "de"


def test_deterministic() -> None:
    texts = ENGLISH + GERMAN + OTHER
    assert [detect(t) for t in texts] == [detect(t) for t in texts]


def test_contract() -> None:
    assert LANGUAGES == ("en", "de")
    assert VERSION.startswith("py3langid-")
    assert "/" in VERSION


def test_shipped_model_loads_and_tells_languages_apart() -> None:
    # the packaged file (built by scripts/build_language_model.py) has the twelve candidates
    model = language_model.load()
    assert set(model.classes) == set(language._CANDIDATES)
    assert len(model.features) > 10_000
    assert {len(gram) for gram in model.features} == {2, 3, 4, 5}
    expected = {
        "The delivery was late and the support never answered my emails.": "en",
        "Die Lieferung kam zu spät und der Support hat nie geantwortet.": "de",
        "La livraison est arrivée en retard et personne ne répond.": "fr",
        "El pedido llegó tarde y nadie contesta los correos.": "es",
        "great app": "en",
        "echt schlecht": "de",
    }
    for text, code in expected.items():
        assert language_model.rank(model, text)[0][0] == code, text


def test_scores_are_py3langids_up_to_a_constant() -> None:
    # the light model keeps py3langid's log-probabilities of the features it keeps: on short
    # everyday text it ranks the languages as py3langid (restricted to the candidates) does,
    # with score differences close to py3langid's (the features left out are rare ones)
    py3langid = pytest.importorskip("py3langid.langid")
    theirs = py3langid.LanguageIdentifier.from_model_file(py3langid.MODEL_FILE)
    theirs.set_languages(list(language._CANDIDATES))
    model = language_model.load()
    for text in ("the support never answered", "Der Zug kam wieder zu spät", "het is mooi"):
        ours = dict(language_model.rank(model, text))
        ref = dict(theirs.rank(text))
        assert [code for code, _ in language_model.rank(model, text)][:3] == [
            code for code, _ in theirs.rank(text)
        ][:3]
        gaps = [ours[c] - ours["en"] - (ref[c] - ref["en"]) for c in ours]
        assert max(map(abs, gaps)) < 0.5, text


def test_text_without_known_features() -> None:
    model = language_model.load()
    assert language_model.rank(model, "") == [(code, 0.0) for code in model.classes]
    # upper-case text is judged as lower case, like py3langid does
    assert language_model.rank(model, "DER ZUG IST SCHON WIEDER ZU SPÄT")[0][0] == "de"


def test_version_names_the_source_of_the_shipped_model() -> None:
    import gzip
    from importlib.resources import files

    raw = files("listener.enrichment").joinpath("language_model.tsv.gz").read_bytes()
    head = gzip.decompress(raw).decode("ascii").splitlines()[0]
    source = VERSION.split("/")[0].replace("-", " ")
    assert source in head
    assert "BSD 3-Clause" in gzip.decompress(raw).decode("ascii")


def test_build_script_reproduces_the_shipped_model(tmp_path: Path) -> None:
    # the shipped file is exactly what scripts/build_language_model.py makes of py3langid's model
    pytest.importorskip("py3langid")
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "model.tsv.gz"
    subprocess.run(
        [sys.executable, str(root / "scripts" / "build_language_model.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    shipped = root / "listener" / "enrichment" / "language_model.tsv.gz"
    assert out.read_bytes() == shipped.read_bytes()
