"""Tests for listener.matching: normalize/fold, tokens, and the Matcher over brand queries."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listener.matching import Document, Matcher, fold, normalize, parse_query, terms_query
from listener.matching.tokens import tokenize

# --- normalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Kryptonite", "kryptonite"),
        ("MÜLLER", "müller"),
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("Kry\u200bptonite", "kryptonite"),
        ("Kry\u00adpto\u200dnite", "kryptonite"),
        ("\ufeff\u202eetinotpyrK\u202c", "etinotpyrk"),
        ("\u2066Brand\u2069\u2060", "brand"),
        ("\u200e\u200fx", "x"),
        ("ＫＲＹＰＴＯＮＩＴＥ", "kryptonite"),  # full-width letters, NFKC
        ("ﬁne", "fine"),  # ligature, NFKC
        ("a\u00a0b", "a b"),  # NBSP becomes a plain space
        ("e\u0301", "é"),  # composed by NFKC
        ("e\u200b\u0301", "é"),  # composes once the zero-width space is gone
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


_INVISIBLE = "\u00ad\u200b\u200c\u200d\u200e\u200f\u202a\u202e\u2060\u2064\u2066\u2069\ufeff"
_tricky_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(_INVISIBLE + " \t\n\r\x0b\x0c\x1c\x85\u00a0\u1680\u2028\u3000"),
    )
)


@given(_tricky_text)
def test_fast_paths_agree_with_the_full_rules(text: str) -> None:
    without_invisible = "".join(c for c in text if c not in _INVISIBLE)
    expected = unicodedata.normalize("NFKC", without_invisible).casefold()
    assert normalize(text) == expected


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_ascii_fast_path_agrees_with_full_rules(text: str) -> None:
    assert normalize(text) == unicodedata.normalize("NFKC", text).casefold()
    assert fold(text) == text.lower()


# --- fold --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Kryptonite", "kryptonite"),
        ("Müller", "mueller"),
        ("MÜLLER", "mueller"),
        ("Mueller", "mueller"),
        ("Mu\u0308ller", "mueller"),  # decomposed umlaut composes first
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("Größe Ärger Öl", "groesse aerger oel"),
        ("Kry\u200bptonite", "kryptonite"),
        ("\u202eKryptonite\u202c", "kryptonite"),
        ("\u041aryptonite", "kryptonite"),  # Cyrillic capital Ka
        ("Кrурtоnitе", "kryptonite"),  # Cyrillic К у р о е among Latin letters
        ("ΚRΥΡΤΟΝΙΤΕ", "kryptonite"),  # Greek capitals
        ("αpple", "apple"),  # Greek small alpha
        ("ＫＲＹＰＴＯＮＩＴＥ", "kryptonite"),  # full-width letters, NFKC
        ("µm", "mm"),  # the micro sign is NFKC Greek mu, folded by its capital's look
        ("ΝΙΚΕ νικε", "nike nike"),
        ("İstanbul", "istanbul"),  # the dot casefolding leaves is a mark, removed
        ("café", "café"),  # other accents stay
        ("שָׁלוֹם", "שלום"),  # niqqud removed
        ("😀 Bahn", "😀 bahn"),
        ("", ""),
    ],
)
def test_fold(raw: str, expected: str) -> None:
    assert fold(raw) == expected


_HOMOGLYPHS = "АВЕКМНОРСТУХІЈЅавекмнорстухіјѕΑΒΕΖΗΙΚΜΝΟΡΤΥΧαβεζηικμνορτυχ"


def _is_folded_mark(char: str) -> bool:
    """Marks fold removes: those of planes 0 and 1 and the variation selectors supplement."""
    in_range = char < "\U00020000" or "\U000e0100" <= char < "\U000e01f0"
    return in_range and unicodedata.category(char).startswith("M")


def _reference_fold(text: str) -> str:
    """The fold rules, spelled out slowly."""
    from listener.matching.normalize import HOMOGLYPHS

    text = "".join(c for c in text if c not in _INVISIBLE)
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(HOMOGLYPHS.get(c, c) for c in text)
    text = "".join(c for c in text if not _is_folded_mark(c))
    return text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")


_fold_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(_INVISIBLE + _HOMOGLYPHS + "äöüÄÖÜßẞ\u0308\u0345µİΐ ǰ"),
    )
)


@given(_fold_text)
def test_fold_fast_path_agrees_with_the_rules(text: str) -> None:
    assert fold(text) == _reference_fold(text)


def test_fold_latin1_table_agrees_with_the_rules_on_every_pair() -> None:
    latin1 = [chr(code) for code in range(256)]
    for first in latin1:
        assert fold(first) == _reference_fold(first), hex(ord(first))
        for second in latin1:
            pair = first + second
            assert fold(pair) == _reference_fold(pair), pair


@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=40))
def test_fold_latin1_fast_path_agrees_with_the_rules(text: str) -> None:
    assert fold(text) == _reference_fold(text)


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folded", "words", "sigils"),
    [
        ("deutsche bahn, bahnchaos!", ["deutsche", "bahn", "bahnchaos"], None),
        ("#kryptonitelock @kryptonite x", ["kryptonitelock", "kryptonite", "x"], ["#", "@", ""]),
        ("mail@example.com c#5", ["mail", "example", "com", "c", "5"], ["", "", "", "", ""]),
        ("##x (@y)", ["x", "y"], ["#", "@"]),
        ("", [], None),
    ],
)
def test_tokenize(folded: str, words: list[str], sigils: list[str] | None) -> None:
    assert tokenize(folded) == (words, sigils)


# --- Matcher -----------------------------------------------------------------------------------


def doc(
    title: str = "",
    text: str = "",
    *,
    author: str | None = None,
    url: str | None = None,
    language: str | None = None,
    source: str = "feed",
) -> Document:
    return Document(title, text, author, url, language, source)


def matches(query: str, document: Document) -> bool:
    brands = [("brand", parse_query(query), (), ())]
    found = Matcher(brands).match(document)
    assert Matcher(brands, prefilter=False).match(document) == found
    return "brand" in found


@pytest.mark.parametrize(
    ("query", "document", "expected"),
    [
        # words: whole tokens, any case, title or text but not author
        ("Kryptonite", doc("KRYPTONITE rocks"), True),
        ("Kryptonite", doc(text="i love kryptonite."), True),
        ("Kryptonite", doc("Kryptonites everywhere"), False),
        ("lock", doc(text="unlock the locks"), False),
        ("lock", doc(text="a lock_x and xlock"), False),
        ("kryptonite", doc(author="Kryptonite"), False),
        # phrases: consecutive tokens, punctuation and line breaks between do not matter
        ('"Kryptonite lock"', doc(text="my Kryptonite\n\n  LOCK broke"), True),
        ('"Kryptonite lock"', doc(text="Kryptonite, lock"), True),
        ('"Kryptonite lock"', doc(text="Kryptonite bike lock"), False),
        ('"Deutsche Bahn"', doc("Deutsche", "Bahn"), False),  # never across title and text
        ('"Deutsche Bahn"', doc(text="Deutsche Bahnhof"), False),
        ("e-mail", doc(text="E mail me"), True),
        # AND, OR, NOT, implicit AND
        ("kryptonite lock", doc(text="lock and kryptonite"), True),
        ("kryptonite AND lock", doc(text="kryptonite only"), False),
        ("kryptonite OR lock", doc(text="lock only"), True),
        ("Kryptonite NOT Superman", doc("Kryptonite", "Superman is weak to it"), False),
        ("Kryptonite -Superman", doc("Kryptonite", "Supermanlike"), True),
        ("Kryptonite -(Superman OR Clark)", doc(text="kryptonite clark"), False),
        ("(bahn OR db) -streik", doc(text="Die Bahn fährt"), True),
        # wildcards and German compounds
        ("*bahn*", doc(text="Bahnchaos in Köln"), True),
        ("*bahn*", doc(text="die Deutschebahn"), True),
        ("bahn", doc(text="Bahnchaos in Köln"), False),
        ("bahn", doc(text="S-Bahn fällt aus"), True),
        ("*bahn", doc(text="Deutschebahn"), True),
        ("*bahn", doc(text="Bahnchaos"), False),
        ("bahn*", doc(text="Bahnchaos"), True),
        ("bahn*", doc(text="Deutschebahn"), False),
        ("lock*", doc(text="lockpicking"), True),
        ("#lock*", doc(text="#LockDown"), True),
        ("#lock*", doc(text="lockdown"), False),
        ("straß*", doc(text="STRASSENBAHN"), True),
        # German folding
        ("Müller", doc(text="MUELLER eröffnet"), True),
        ("Mueller", doc(text="Müller eröffnet"), True),
        ("Müller", doc(text="Müllers Laden"), False),
        ("Hauptstraße", doc(text="HAUPTSTRASSE 5"), True),
        ('"Straße der Einheit"', doc(text="Strasse der Einheit"), True),
        # hashtags and handles
        ("#kryptonitelock", doc(text="#KryptoniteLock stolen"), True),
        ("#kryptonitelock", doc(text="kryptonitelock stolen"), False),
        ("#kryptonitelock", doc(text="@kryptonitelock"), False),
        ("kryptonitelock", doc(text="#KryptoniteLock stolen"), True),
        ("kryptonite", doc(text="thanks @kryptonite!"), True),
        ("@kryptonite", doc(text="thanks @Kryptonite!"), True),
        ("@kryptonite", doc(text="mail@kryptonite.com"), False),
        ("#kryptonitelock", doc(text="#kryptonitelocks"), False),
        ('"#db navigator"', doc(text="#DB Navigator"), True),
        # invisible characters and homoglyphs
        ("Kryptonite", doc("Kry\u200bptonite"), True),
        ("Kryptonite", doc(text="K\u00adryp\u200dto\u2060nite\ufeff"), True),
        ("Kryptonite", doc(text="\u041aryptonite"), True),
        ("\u041aryptonite", doc(text="kryptonite"), True),
        # NEAR and ONEAR
        ("kryptonite NEAR/3 lock", doc(text="kryptonite is a good lock"), True),
        ("kryptonite NEAR/2 lock", doc(text="kryptonite is a good lock"), False),
        ("kryptonite NEAR/0 lock", doc(text="lock kryptonite"), True),
        ("kryptonite ONEAR/3 lock", doc(text="lock with kryptonite"), False),
        ("kryptonite ONEAR/3 lock", doc(text="kryptonite, a lock"), True),
        ("kryptonite NEAR/5 lock", doc("kryptonite", "lock"), False),
        ('"deutsche bahn" NEAR/2 streik*', doc(text="Streiks bei der Deutschen Bahn"), False),
        ('"deutsche bahn" NEAR/2 streik*', doc(text="Deutsche Bahn: neue Streiks"), True),
        ("*bahn* NEAR/1 chaos", doc(text="Chaos bei Deutschebahn"), True),
        ("preis ONEAR/1 *bahn", doc(text="Preis der Deutschebahn"), True),
        ("#db NEAR/1 @bahn", doc(text="#db und @bahn"), True),
        ("#db NEAR/1 @bahn", doc(text="db und @bahn"), False),
        # text fields
        ("title:kryptonite", doc("Kryptonite", ""), True),
        ("title:kryptonite", doc("", "Kryptonite"), False),
        ("text:kryptonite", doc("Kryptonite", ""), False),
        ("author:müller", doc(text="x", author="Hans Mueller"), True),
        ('author:"hans müller"', doc("hans müller", "x"), False),
        ("title:(bahn OR db) text:streik", doc("DB", "Streik!"), True),
        ("title:(bahn OR db) text:streik", doc("Streik", "DB"), False),
        ("title:(kryptonite NEAR/1 lock)", doc("Kryptonite U-lock"), True),
        # metadata fields
        ("bahn site:spiegel.de", doc(text="bahn", url="https://www.SPIEGEL.de/x"), True),
        ("bahn site:spiegel.de", doc(text="bahn", url="https://spiegel.de./x"), True),
        ("bahn site:spiegel.de", doc(text="bahn", url="https://notspiegel.de/x"), False),
        ("bahn site:spiegel.de", doc(text="bahn"), False),
        ("bahn -site:spiegel.de", doc(text="bahn", url="http://[::1"), True),
        (
            'bahn url:"spiegel.de/wirtschaft"',
            doc(text="bahn", url="https://SPIEGEL.de/Wirtschaft/1"),
            True,
        ),
        ("bahn url:/sport/", doc(text="bahn", url="https://spiegel.de/wirtschaft/1"), False),
        ("bahn lang:de", doc(text="bahn", language="de-AT"), True),
        ("bahn lang:DE", doc(text="bahn", language="de"), True),
        ("bahn lang:de", doc(text="bahn", language="en"), False),
        ("bahn lang:de", doc(text="bahn"), False),
        ("bahn -lang:de", doc(text="bahn"), True),
        ("bahn source:Heise", doc(text="bahn", source="heise"), True),
        ("bahn source:heise", doc(text="bahn", source="reddit"), False),
        # raw: case-sensitive, unfolded, whole words where the value has word edges
        ('raw:"Apple"', doc(text="Apple announced"), True),
        ('raw:"Apple"', doc(text="apple pie"), False),
        ('raw:"Apple"', doc(text="Apples"), False),
        ('raw:"Apple"', doc(text="Pineapple Apple"), True),
        ("raw:C++", doc(text="I write C++ daily, c++17 too"), True),
        ("raw:C++", doc(text="abc++"), False),
        ('raw:"Müller"', doc(text="Mueller"), False),
        ('title:raw:"DB"', doc("DB streikt", ""), True),
        ('title:raw:"DB"', doc("", "DB streikt"), False),
        ("", doc(), None),  # placeholder replaced below
    ][:-1],
)
def test_match(query: str, document: Document, expected: bool) -> None:
    assert matches(query, document) is expected


KRYPTONITE = ("Kryptonite", "Kryptonite lock", "#kryptonitelock", "@kryptonite")


@pytest.fixture(scope="module")
def legacy() -> Matcher:
    """The old terms/exclude brands, through ``terms_query``."""
    brands = [
        ("Kryptonite", KRYPTONITE, ("Superman",)),
        ("Deutsche Bahn", ("Deutsche Bahn", "DB Fernverkehr", "#DBNavigator"), ()),
        ("Müller", ("Müller",), ()),
        ("Straße", ("Hauptstraße",), ()),
        ("Lock Co", ("lock",), ()),
    ]
    return Matcher([(n, parse_query(terms_query(t, e)), (), ()) for n, t, e in brands])


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        ("kryptonite is great", "", {"Kryptonite"}),
        ("", "I love KRYPTONITE.", {"Kryptonite"}),
        ("Kryptonites everywhere", "", set()),
        ("", "unlock the locks", set()),
        ("", "xkryptonite kryptonitex kryptonite_x", set()),
        ("", "(kryptonite)", {"Kryptonite"}),
        ("", "2kryptonite", set()),
        ("", "my Kryptonite\n\n  LOCK broke", {"Kryptonite", "Lock Co"}),
        ("", "#KryptoniteLock stolen", {"Kryptonite"}),
        ("", "#kryptonitelocks", set()),
        ("Kry\u200bptonite", "", {"Kryptonite"}),
        ("Kryptonite", "Superman is weak to it", set()),
        ("Superman and Kryptonite", "", set()),
        ("Ärger mit der DEUTSCHE BAHN", "", {"Deutsche Bahn"}),
        ("", "deutsche\nbahn verspätet", {"Deutsche Bahn"}),
        ("", "Deutsche Bahnhof", set()),
        ("", "MÜLLER eröffnet", {"Müller"}),
        ("", "Mueller", {"Müller"}),  # German folding (the old matcher had none)
        ("", "HAUPTSTRASSE 5", {"Straße"}),
        ("", "#dbnavigator kaputt", {"Deutsche Bahn"}),
        ("Kryptonite lock on a DB Fernverkehr train", "near Müller", None),
        ("Deutsche", "Bahn", set()),
        ("", "", set()),
    ],
)
def test_legacy_terms(legacy: Matcher, title: str, text: str, expected: set[str] | None) -> None:
    if expected is None:
        expected = {"Kryptonite", "Lock Co", "Deutsche Bahn", "Müller"}
    assert legacy.match(doc(title, text)) == frozenset(expected)


def test_exclusion_only_affects_its_own_brand() -> None:
    matcher = Matcher(
        [
            ("Apple", parse_query("apple -pie"), (), ()),
            ("Bakery", parse_query("pie"), (), ()),
        ]
    )
    assert matcher.match(doc("apple pie")) == frozenset({"Bakery"})
    assert matcher.match(doc("apple")) == frozenset({"Apple"})


def test_overlapping_anchors_of_different_brands() -> None:
    matcher = Matcher(
        [
            ("Long", parse_query('"new york times"'), (), ()),
            ("Mid", parse_query("york"), (), ()),
            ("Short", parse_query('"new york"'), (), ()),
            ("Tail", parse_query('"times square"'), (), ()),
            ("Infix", parse_query("*ork*"), (), ()),
        ]
    )
    assert matcher.match(doc(text="the New York Times square")) == frozenset(
        {"Long", "Mid", "Short", "Tail", "Infix"}
    )


def test_mutes() -> None:
    matcher = Matcher(
        [
            ("A", parse_query("bahn"), ("@Bahnbot", "Hans Müller"), ("spam.example",)),
            ("B", parse_query("bahn"), (), ()),
        ]
    )
    assert matcher.match(doc(text="bahn", author="bahnbot")) == frozenset({"B"})
    assert matcher.match(doc(text="bahn", author="Hans Mueller")) == frozenset({"B"})
    assert matcher.match(doc(text="bahn", author="Hans")) == frozenset({"A", "B"})
    assert matcher.match(doc(text="bahn", url="https://x.spam.example/")) == frozenset({"B"})
    assert matcher.match(doc(text="bahn", url="https://spam.example.org/")) == frozenset({"A", "B"})


def test_no_brands_and_queries_without_anchors() -> None:
    assert Matcher([]).match(doc("anything", "at all")) == frozenset()
    matcher = Matcher(
        [("Raw", parse_query("raw:DB"), (), ()), ("Meta", parse_query("lang:de"), (), ())]
    )
    assert matcher.match(doc("DB", language="de")) == frozenset({"Raw", "Meta"})
    assert matcher.match(doc("db", language="en")) == frozenset()


def test_separator_in_fields_is_harmless() -> None:
    assert matches('"a b"', doc("a\x00b"))
    assert not matches('title:"x y"', doc("x\x00", "y"))


# --- properties --------------------------------------------------------------------------------

_vocabulary = [
    "Bahn", "Deutschebahn", "bahnchaos", "Müller", "Mueller", "#kryptonite", "@kryptonite",
    "kryptonite", "lock", "locks", "Straße", "x", "und", "the",
]  # fmt: skip
_doc_text = st.lists(st.one_of(st.sampled_from(_vocabulary), st.text(max_size=4)), max_size=12).map(
    " ".join
)
_documents = st.builds(
    Document,
    title=_doc_text,
    text=_doc_text,
    author=st.one_of(st.none(), _doc_text),
    url=st.sampled_from([None, "https://www.spiegel.de/x", "http://bahn.example/1"]),
    language=st.sampled_from([None, "de", "en-GB"]),
    source=st.sampled_from(["heise", "reddit"]),
)
_query_texts = [
    "bahn", "*bahn*", "*bahn", "bahn*", "müller", "#kryptonite", "kryptonite", "@kryptonite",
    '"kryptonite lock"', "kryptonite NEAR/2 lock*", "lock ONEAR/1 *bahn*", "title:bahn",
    "author:(müller OR x)", "bahn -lock", "(bahn OR lock) -title:x", "site:spiegel.de bahn",
    "lang:de (x OR und)", "source:heise OR lock", "raw:Bahn", "straße -(lock NEAR/1 the)",
    "bahn OR author:kryptonite", "und the x",
]  # fmt: skip
_MATCHERS = [
    Matcher([(q, parse_query(q), (), ()) for q in _query_texts], prefilter=flag)
    for flag in (True, False)
]


@given(_documents)
def test_prefilter_never_changes_results(document: Document) -> None:
    assert _MATCHERS[0].match(document) == _MATCHERS[1].match(document)


@given(w=st.text(st.characters(categories=("Lu", "Ll")), min_size=1, max_size=12))
def test_a_word_finds_itself(w: str) -> None:
    term = fold(w)
    if not tokenize(term)[0] or len(tokenize(term)[0]) > 1:
        return
    assert matches(f'"{w}"', doc(text=f"x {w} y"))
    if w.upper().casefold() == w.casefold():  # not so for "ı", whose capital is "I"
        assert matches(f'"{w}"', doc(text=w.upper()))
