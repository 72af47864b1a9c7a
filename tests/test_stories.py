"""Tests for listener.matching.stories (story URLs, fingerprints) and listener.simhash (the band
index and story assignment storage runs, with its distance of 6 bits)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listener.matching import stories
from listener.matching.normalize import normalize
from listener.matching.stories import fingerprint, story_url
from listener.simhash import (
    MAX_DISTANCE,
    BandIndex,
    assign,
    bands,
    distance,
    from_signed64,
    to_signed64,
)

DATA = Path(__file__).parent / "data" / "stories"

ARTICLE = "https://example.com/news/2024/bike-lock-recall"


@pytest.mark.parametrize(
    "url",
    [
        ARTICLE,
        "http://example.com/news/2024/bike-lock-recall",
        "https://www.example.com/news/2024/bike-lock-recall",
        "https://m.example.com/news/2024/bike-lock-recall",
        "https://mobile.example.com/news/2024/bike-lock-recall/",
        "https://amp.example.com/news/2024/bike-lock-recall",
        "https://WWW.Example.COM:443/news/2024/bike-lock-recall?utm_source=rss#comments",
        "https://example.com/amp/news/2024/bike-lock-recall",
        "https://example.com/news/2024/bike-lock-recall/amp",
        "https://example.com/news/2024/bike-lock-recall/amp/",
        "https://example.com/news/2024/bike-lock-recall?amp",
        "https://example.com/news/2024/bike-lock-recall?amp=1",
        "https://example.com/news/2024/bike-lock-recall?outputType=amp",
        "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/2024/bike-lock-recall",
        "https://example-com.cdn.ampproject.org/v/s/example.com/news/2024/bike-lock-recall/amp/",
        "https://www.google.com/amp/s/m.example.com/news/2024/bike-lock-recall",
    ],
)
def test_story_url_folds_variants_of_one_article(url: str) -> None:
    assert story_url(url) == ARTICLE


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a/story.amp.html", "https://example.com/a/story.html"),
        ("https://www.example.com/amp", "https://example.com/"),
        ("https://example.com/p?id=7&amp=1&page=2", "https://example.com/p?id=7&page=2"),
        ("https://example.com/p?outputType=print", "https://example.com/p?outputType=print"),
        ("http://ex-com.cdn.ampproject.org/c/ex.com/a", "https://ex.com/a"),
        # a host made only of a prefix and a top-level domain keeps its prefix
        ("https://m.com/a", "https://m.com/a"),
        ("https://amp.dev/documentation", "https://amp.dev/documentation"),
        # "amp" inside words or in the middle of a path is not an AMP marker
        ("https://example.com/camp/ampere", "https://example.com/camp/ampere"),
        ("https://example.com/a/amp/b", "https://example.com/a/amp/b"),
        # what canonical_url leaves alone, story_url does too
        ("/relative/path", "/relative/path"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
        ("http://[::1", "http://[::1"),
        ("http://[2001:DB8::1]:80/x/amp", "https://[2001:db8::1]/x"),
        ("https://ex-com.cdn.ampproject.org/c/s/", "https://ex-com.cdn.ampproject.org/c/s"),
    ],
)
def test_story_url_rules(url: str, expected: str) -> None:
    assert story_url(url) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/news/recall", "https://example.com/news/recall-update"),
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),
        ("https://example.com/news/recall", "https://example.org/news/recall"),
        ("https://news.example.com/recall", "https://example.com/recall"),
    ],
)
def test_story_url_keeps_different_articles_apart(a: str, b: str) -> None:
    assert story_url(a) != story_url(b)


_urls = st.builds(
    lambda scheme, prefixes, host, path, suffix, query: (
        f"{scheme}://{prefixes}{host}{path}{suffix}" + (f"?{query}" if query else "")
    ),
    st.sampled_from(["http", "https", "HTTPS"]),
    st.lists(st.sampled_from(["www.", "m.", "mobile.", "amp.", "news."]), max_size=3).map("".join),
    st.sampled_from(["example.com", "ex.co.uk", "com", "cdn.ampproject.org", "google.com"]),
    st.from_regex(r"(/(amp|c|s|v|[a-z0-9.]{1,6})){0,4}", fullmatch=True),
    st.sampled_from(["", "/", "/amp", "/amp/", ".amp.html", ".amp", "//"]),
    st.lists(
        st.sampled_from(["amp", "amp=1", "outputType=amp", "id=3", "utm_source=x", ""]),
        max_size=3,
    ).map("&".join),
)


@given(_urls)
def test_story_url_is_idempotent(url: str) -> None:
    once = story_url(url)
    assert story_url(once) == once


@given(st.text())
def test_story_url_is_idempotent_on_any_text(url: str) -> None:
    once = story_url(url)
    assert story_url(once) == once


def _copies(name: str) -> list[dict[str, Any]]:
    copies: list[dict[str, Any]] = json.loads((DATA / name).read_text("utf-8"))["copies"]
    return copies


def _group(entries: list[tuple[str, str, str]]) -> list[int]:
    """Run entries (url, title, text) through the story assignment storage runs on a batch
    (``listener.simhash.assign``); per entry, the number of the entry that started its story."""
    keys = [(story_url(url), fingerprint(title, text)) for url, title, text in entries]
    first: dict[int, int] = {}
    return [first.setdefault(story, n) for n, story in enumerate(assign(keys, {}, BandIndex()))]


@pytest.mark.parametrize("name", ["wire_en.json", "wire_de.json"])
def test_syndicated_copies_are_one_story(name: str) -> None:
    copies = _copies(name)
    assert len(copies) == 8
    entries = [(c["url"], c["title"], "\n".join(c["lines"])) for c in copies]
    assert len({story_url(url) for url, _, _ in entries}) == 8  # only the text can group them
    fps = [fingerprint(title, text) for _, title, text in entries]
    assert all(fp is not None for fp in fps)
    first = fps[0]
    assert first is not None
    report = {c["edits"]: distance(first, fp) for c, fp in zip(copies, fps, strict=True) if fp}
    assert _group(entries) == [0] * 8, f"distances to the original: {report}"


def test_two_syndicated_stories_interleaved_stay_two() -> None:
    en, de = _copies("wire_en.json"), _copies("wire_de.json")
    entries = [
        (c["url"], c["title"], "\n".join(c["lines"]))
        for c in itertools.chain.from_iterable(zip(en, de, strict=True))
    ]
    assert _group(entries) == [0, 1] * 8


def test_unrelated_articles_sharing_boilerplate_stay_apart() -> None:
    site = json.loads((DATA / "one_site.json").read_text("utf-8"))
    entries = [
        (a["url"], a["title"], "\n".join(site["header"] + a["lines"] + site["footer"]))
        for a in site["articles"]
    ]
    fps = [fingerprint(title, text) for _, title, text in entries]
    assert all(fp is not None for fp in fps)  # the test is about fingerprints, not URLs
    closest = min(
        distance(a, b) for a, b in itertools.combinations(fps, 2) if a is not None and b is not None
    )
    assert _group(entries) == list(range(6)), f"closest pair: {closest} bits"
    assert closest > 10, f"closest pair: {closest} bits"


def test_boilerplate_alone_is_not_a_story() -> None:
    site = json.loads((DATA / "one_site.json").read_text("utf-8"))
    assert fingerprint("Lakeside Courier", "\n".join(site["header"])) is None


TWEET = (
    "Just got the recall letter for my ShackleMax lock. So my bike was basically unlocked for a "
    "year? Great job Ferrox #fail"
)


def test_short_texts_have_no_fingerprint_and_group_by_url_only() -> None:
    assert fingerprint("", TWEET) is None
    assert fingerprint("Ferrox recalls 40,000 bike locks", "") is None
    known = {story_url("https://social.example/@ann/1"): 1}
    ann = (story_url("https://social.example/@ann/1"), fingerprint("", TWEET))
    bob = (story_url("https://social.example/@bob/2"), fingerprint("", TWEET))
    assert assign([ann], dict(known), BandIndex()) == [1]
    assert assign([bob], dict(known), BandIndex()) == [-1]  # a new story


def test_page_furniture_is_not_fingerprinted() -> None:
    body = "\n".join(_copies("wire_en.json")[0]["lines"])
    title = "Ferrox recalls bike locks"
    furnished = "\n".join(
        [
            "Home | News | Sport | Business | Weather",
            "Menu",
            body,
            "Subscribe to our newsletter for the top stories.",
            "Wir verwenden Cookies. Alle Rechte vorbehalten.",
        ]
    )
    assert fingerprint(title, furnished) == fingerprint(title, body)


def test_fingerprint_ignores_case_and_punctuation() -> None:
    body = "\n".join(_copies("wire_en.json")[0]["lines"])
    assert fingerprint("Ferrox recalls locks", body) == fingerprint(
        "FERROX: recalls 'locks'!", body.upper()
    )


def test_index_prefers_url_and_then_the_closest_fingerprint() -> None:
    def known() -> BandIndex:
        index = BandIndex()
        index.add(1, 0)
        index.add(2, 0b111)
        index.add(3, 0b1)
        return index

    def find(url: str | None, fp: int | None) -> int | None:
        by_url = {story_url("https://example.com/a"): 1}
        (story,) = assign([(story_url(url) if url else None, fp)], by_url, known())
        return None if story < 0 else story

    assert find("https://www.example.com/a/amp/", 0b111) == 1
    assert find(None, 0b111) == 2
    assert find(None, 0b11) in (2, 3)  # one bit from each
    assert find(None, 0b1) == 3
    assert find(None, 0) == 1
    assert find(None, 0b1111111 << 57) is None  # seven bits from story 1
    assert find(None, None) is None
    assert find("https://example.com/b", None) is None
    assert len(known()) == 3


@given(st.integers(0, 2**64 - 1), st.sets(st.integers(0, 63), max_size=MAX_DISTANCE))
def test_index_finds_every_fingerprint_within_max_distance(fp: int, flips: set[int]) -> None:
    index = BandIndex()
    index.add(7, fp)
    near = fp
    for bit in flips:
        near ^= 1 << bit
    assert distance(fp, near) == len(flips)
    assert index.nearest(near) == 7


@given(st.integers(0, 2**64 - 1), st.sets(st.integers(0, 63), min_size=3, max_size=3))
def test_index_max_distance_is_respected(fp: int, flips: set[int]) -> None:
    index = BandIndex(max_distance=2)
    index.add(7, fp)
    near = fp
    for bit in flips:
        near ^= 1 << bit
    assert index.nearest(near) is None


@pytest.mark.parametrize("max_distance", [-1, 8])
def test_index_rejects_distances_bands_cannot_guarantee(max_distance: int) -> None:
    with pytest.raises(ValueError, match="max_distance"):
        BandIndex(max_distance)


def test_bands() -> None:
    assert bands(0x0123_4567_89AB_CDEF) == (0x0123, 0x4567, 0x89AB, 0xCDEF)
    assert bands(0) == (0, 0, 0, 0)


@given(st.integers(0, 2**64 - 1))
def test_signed64_round_trip(value: int) -> None:
    signed = to_signed64(value)
    assert -(2**63) <= signed < 2**63
    assert from_signed64(signed) == value


def test_signed64_edges() -> None:
    assert to_signed64(2**64 - 1) == -1
    assert to_signed64(2**63) == -(2**63)
    assert to_signed64(2**63 - 1) == 2**63 - 1
    assert from_signed64(-1) == 2**64 - 1


# --- the word split's fast path gives the words of the rules -------------------------------------


def _reference_content_words(text: str) -> list[str]:
    """``_content_words`` as written first: every line checked, words found by the regex."""
    words: list[str] = []
    for line in stories._lines(normalize(text)):
        line_words = stories._WORD.findall(line)
        if len(line_words) < stories._SHORT_LINE_WORDS or (
            stories._has_any(line, stories._NAV_CHARS)
            and len(stories._NAV_SEPARATORS.findall(line)) >= 3
        ):
            continue
        if not stories._has_boilerplate_word(line) or not stories._BOILERPLATE.search(line):
            words += line_words
            continue
        for sentence in stories._SENTENCES.split(line):
            if not stories._BOILERPLATE.search(sentence):
                words += stories._WORD.findall(sentence)
    return words


def test_latin1_words_are_the_regex_words_for_every_latin1_character() -> None:
    for code in range(256):
        text = f"a{chr(code)}b {chr(code)}"
        assert stories._words(text) == stories._WORD.findall(text), hex(code)


_STORY_PIECES = [
    *(" ", "\n", "\r", ". ", " | ", " · ", "Cookie", "newsletter", "Related", "read more"),
    *("Anzeige", "©", "Straße", "Müller", "über", "ʼn", "Ⅸ", "½", "²", "_", "\x85", "\xa0"),
    *("word", "other", "lock", "bike", "the", "und", "ﬁne", "İ", "ǅ", "ß", "µ", "\u2028"),
]  # fmt: skip
_story_text = st.lists(
    st.one_of(st.sampled_from(_STORY_PIECES), st.text(max_size=4)), max_size=60
).map("".join)


@given(_story_text)
def test_words_and_content_words_agree_with_the_regex(text: str) -> None:
    assert stories._words(text) == stories._WORD.findall(text)
    assert stories._content_words(text) == _reference_content_words(text)
