"""Tests for listener.matching.normalize and listener.matching.matcher."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from listener.matching import Matcher, normalize
from listener.matching.normalize import normalize_for_match
from listener.models import BrandTerms, Item

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
    assert normalize_for_match(text) == " ".join(expected.split())


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_ascii_fast_path_agrees_with_full_rules(text: str) -> None:
    assert normalize(text) == unicodedata.normalize("NFKC", text).casefold()
    assert normalize_for_match(text) == " ".join(text.casefold().split())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Kryptonite\n\t LOCK\u2003x ", "kryptonite lock x"),
        (" Müller ", "müller"),
        ("Müller\u2028GmbH", "müller gmbh"),
        ("a  b", "a b"),
        ("a b", "a b"),
        ("\n", ""),
    ],
)
def test_normalize_for_match_collapses_whitespace(raw: str, expected: str) -> None:
    assert normalize_for_match(raw) == expected


# --- Matcher -----------------------------------------------------------------------------------

KRYPTONITE = BrandTerms(
    name="Kryptonite",
    terms=("Kryptonite", "Kryptonite lock", "#kryptonitelock", "@kryptonite"),
    exclude=("Superman",),
)
DB = BrandTerms(name="Deutsche Bahn", terms=("Deutsche Bahn", "DB Fernverkehr", "#DBNavigator"))
MUELLER = BrandTerms(name="Müller", terms=("Müller",))
STRASSE = BrandTerms(name="Straße", terms=("Hauptstraße",))
CPP = BrandTerms(name="C++", terms=("C++",))
LOCK = BrandTerms(name="Lock Co", terms=("lock",))


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher([KRYPTONITE, DB, MUELLER, STRASSE, CPP, LOCK])


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        # plain terms, case-insensitive, in title or text
        ("kryptonite is great", "", {"Kryptonite"}),
        ("", "I love KRYPTONITE.", {"Kryptonite"}),
        ("Kryptonite", "Kryptonite", {"Kryptonite"}),
        # whole words only
        ("Kryptonites everywhere", "", set()),
        ("", "unlock the locks", set()),
        ("", "xkryptonite kryptonitex kryptonite_x", set()),
        ("", "(kryptonite)", {"Kryptonite"}),
        ("", "2kryptonite", set()),
        # phrases across whitespace runs and line breaks; overlapping with a shorter term
        ("", "my Kryptonite\n\n  LOCK broke", {"Kryptonite", "Lock Co"}),
        ("", "Kryptonite\u200b lock", {"Kryptonite", "Lock Co"}),
        # hashtags and handles
        ("", "#KryptoniteLock stolen", {"Kryptonite"}),
        ("", "via@kryptonite", {"Kryptonite"}),
        ("", "#kryptonitelocks", set()),
        # zero-width and bidi characters inside the brand name
        ("Kry\u200bptonite", "", {"Kryptonite"}),
        ("", "K\u00adryp\u200dto\u2060nite\ufeff", {"Kryptonite"}),
        # exclusions, in title or text, win over terms
        ("Kryptonite", "Superman is weak to it", set()),
        ("Superman and Kryptonite", "", set()),
        ("Kryptonite", "Supermanlike", {"Kryptonite"}),  # the exclusion is whole-word too
        # German: casefolding, umlauts, ß
        ("Ärger mit der DEUTSCHE BAHN", "", {"Deutsche Bahn"}),
        ("", "deutsche\nbahn verspätet", {"Deutsche Bahn"}),
        ("", "Deutsche Bahnhof", set()),
        ("", "MÜLLER eröffnet", {"Müller"}),
        ("", "Müllers Laden", set()),
        ("", "Mueller", set()),  # no transliteration (yet)
        ("", "HAUPTSTRASSE 5", {"Straße"}),
        ("", "Hauptstraße 5", {"Straße"}),
        ("", "#dbnavigator kaputt", {"Deutsche Bahn"}),
        # terms with non-word edges
        ("", "I write C++ daily", {"C++"}),
        ("", "c++17 is fine", {"C++"}),
        ("", "abc++", set()),
        # several brands in one item
        ("Kryptonite lock on a DB Fernverkehr train", "near Müller", None),
        # a phrase never spans from the title into the text
        ("Deutsche", "Bahn", set()),
        ("", "", set()),
    ],
)
def test_match(matcher: Matcher, title: str, text: str, expected: set[str] | None) -> None:
    if expected is None:
        expected = {"Kryptonite", "Lock Co", "Deutsche Bahn", "Müller"}
    assert matcher.match(title, text) == frozenset(expected)


def test_match_item(matcher: Matcher) -> None:
    item = Item(guid="1", url=None, title="News", text="the deutsche bahn strikes")
    assert matcher.match_item(item) == frozenset({"Deutsche Bahn"})


def test_exclusion_only_affects_its_own_brand() -> None:
    matcher = Matcher(
        [
            BrandTerms(name="Apple", terms=("apple",), exclude=("pie",)),
            BrandTerms(name="Bakery", terms=("pie",)),
        ]
    )
    assert matcher.match("apple pie", "") == frozenset({"Bakery"})
    assert matcher.match("apple", "") == frozenset({"Apple"})


def test_shared_terms_and_duplicates() -> None:
    matcher = Matcher(
        [
            BrandTerms(name="A", terms=("acme", "ACME", "acme corp")),
            BrandTerms(name="B", terms=("Acme",), exclude=("corp",)),
        ]
    )
    assert matcher.match("", "acme") == frozenset({"A", "B"})
    assert matcher.match("", "Acme Corp") == frozenset({"A"})


def test_overlapping_terms_of_different_brands() -> None:
    matcher = Matcher(
        [
            BrandTerms(name="Long", terms=("new york times",)),
            BrandTerms(name="Mid", terms=("york",)),
            BrandTerms(name="Short", terms=("new york",)),
            BrandTerms(name="Tail", terms=("times square",)),
        ]
    )
    assert matcher.match("", "the New York Times square") == frozenset(
        {"Long", "Mid", "Short", "Tail"}
    )


def test_empty_terms_are_ignored() -> None:
    matcher = Matcher(
        [
            BrandTerms(name="Blank", terms=("", "   ", "\u200b"), exclude=("",)),
            BrandTerms(name="Real", terms=("real",), exclude=("\n",)),
        ]
    )
    assert matcher.match("anything at all", " ") == frozenset()
    assert matcher.match("real", "") == frozenset({"Real"})


def test_no_brands() -> None:
    assert Matcher([]).match("anything", "at all") == frozenset()


_letters = st.characters(categories=("Lu", "Ll"))
_words = st.text(alphabet=_letters, min_size=1, max_size=12)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_" or unicodedata.category(char).startswith("M")


def _tokens(text: str) -> set[str]:
    """Maximal runs of word characters."""
    spaced = "".join(c if _is_word_char(c) else " " for c in text)
    return set(spaced.split())


@given(w=_words, t=_words, exclusions=st.lists(_words, max_size=3))
def test_term_between_words_is_found(w: str, t: str, exclusions: list[str]) -> None:
    text = f"{w} {t} {w}"
    # Exclusions win, so none may occur in the text. (Some letters fold to more than letters:
    # "Ŀ" becomes "l·", in which the exclusion "l" is a whole word.)
    assume(not any(normalize_for_match(e) in normalize_for_match(text) for e in exclusions))
    matcher = Matcher([BrandTerms(name="brand", terms=(t,), exclude=tuple(exclusions))])
    assert "brand" in matcher.match(text, "")
    assert "brand" in matcher.match("", text)


@given(w=_words, t=_words)
def test_term_glued_to_a_word_is_not_found(w: str, t: str) -> None:
    term = normalize_for_match(t)
    assume(all(_is_word_char(c) for c in term))
    # The term may only match where it is a whole word of its own.
    assume(term not in _tokens(normalize_for_match(w + t)) | _tokens(normalize_for_match(t + w)))
    matcher = Matcher([BrandTerms(name="brand", terms=(t,))])
    assert matcher.match(w + t, t + w) == frozenset()
