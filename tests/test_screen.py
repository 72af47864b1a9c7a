"""Screening entries before they are built (``Matcher.screen`` over ``html.text_pieces``): it
never drops a mention. Screen-on and screen-off parses of generated entries (entities, accents,
HTML, CDATA, case, words glued by tags or split by them) give the same items and mentions."""

from __future__ import annotations

import re
from html import escape

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from listener.errors import ParseError
from listener.matching import Document, Matcher, fold, parse_query, terms_query
from listener.matching.matcher import _PUNCTUATION
from listener.service.parse import SentimentScorer, load_scorer, parse, parse_items
from listener.sources.feed import parse_feed
from listener.sources.html import html_to_text, text_pieces

_QUERIES = [
    terms_query(["Velora", "Kestrel Bikes"], ["Spam"]),
    "müller OR straße",
    "kryp* -title:bahn",
    "*bahn* NEAR/2 café",
    "#kryptonite OR @velora",
    'text:"vel ora"',
    "title:µnit",
]
_SCREENING = Matcher([(q, parse_query(q), (), ()) for q in _QUERIES])

_FRAGMENTS = [
    *("Velora", "VELORA", "velóra", "Vel", "ora", "vel ora", "Kestrel", "Bikes", "Spam", "Müller"),
    *("MÜLLER", "Mueller", "Straße", "STRASSE", "strasse", "Kryptonite", "kryp", "Bahn", "café"),
    *("CAFÉ", "cafe\u0301", "#", "@", " ", "\n", "\t", ".", "-", "_", "μ", "µ", "ΜΥ", "x", "1"),
    *("<b>", "</b>", "<p>", "</p>", "<br/>", '<a href="x&amp;y">', "</a>", "<Kryptonite>", "<v"),
    *("<velora>", "</velora>", "<script>", "</script>", "<style>", "<!--", "-->", "<![CDATA["),
    *("<", ">", "&", "&amp;", "&lt;", "&gt;", "&#118;", "&#x56;", "&eacute;", "&shy;", "&nbsp;"),
    *("&#8217;", "&#129;", "&#27;", "&#x1b;", "&am", "&uuml;", "&Uuml;", "&szlig;", "&ampx;"),
    *("&#0;", "]]>"),
    *("\xad", "\xa0", "’", "—", "…", "\u0301", "ﬁ", "Ｖ", "е", "\x01", "\x1b", "\x1b[31m", "\x85"),
    *("\x9a", "ä", "Ä", "ß", "ü", "½", "\u200b", "\u2028", "ŉ", "İ"),
]  # fmt: skip
# Brand words in pieces, and what glues pieces together (tags, comments, references, marks).
_PIECES = [
    *("V", "v", "el", "ora", "elo", "ra", "Kes", "trel", "Bi", "kes", "M", "ül", "ü", "ller", "ue"),
    *("Str", "a", "ß", "ss", "e", "k", "ry", "p", "ba", "hn", "caf", "é", "e\u0301", "μ", "µ", " "),
    *("<b>", "</b>", "<i/>", "<p>", "<br>", "<span class=x>", "<Velora>", "<spacer></spacer>", "<"),
    *("<!-- -->", "<script>x</script>", "<style>", "&amp;", "&#118;", "&#x6F;", "&shy;", "&lt;"),
    *("&gt;", "&szlig;", "&uuml;", "&nbsp;", "&#8217;", "\xad", "\xa0", "’", "\n", "-", "_", "#"),
]  # fmt: skip
_raw = st.one_of(
    st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=3)), max_size=14),
    st.lists(st.sampled_from(_PIECES), max_size=16),
).map("".join)


def _pieces(title: str, body: str) -> str | None:
    title_pieces, body_pieces = text_pieces(title), text_pieces(body)
    if title_pieces is None or body_pieces is None:
        return None
    return f"{title_pieces}\n{body_pieces}"


@given(_raw, _raw)
@example("Vel<b>ora</b>", "")
@example("", "<p>Mc<i>Velora</i></p>&shy;Kes<!-- x -->trel")
@example("<Kryptonite>", "&#118;elora &Uuml;")
@example("M&uuml;ller", "STRA&szlig;E")
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_a_screened_out_entry_matches_no_brand(title: str, body: str) -> None:
    pieces = _pieces(title, body)
    if pieces is None or _SCREENING.screen(pieces):
        return
    document = Document(
        title=html_to_text(title),
        text=html_to_text(body, lines=True),
        author=None,
        url="https://x.example/1",
        language=None,
        source="feed",
    )
    assert _SCREENING.match(document) == frozenset()


_FOLDED_WORD = re.compile(r"\w+")


@given(_raw)
@example("&am<x>p;")  # html_to_text keeps <x>, so no reference forms: "am" and "p" are words
@example("Vel<b>ora</b> <Kry&#112;tonite> K<!-- -->es<script>x</script>trel")
@settings(max_examples=3000)
def test_pieces_hold_every_word_of_the_text(raw: str) -> None:
    pieces = text_pieces(raw)
    if pieces is None:
        return
    if not pieces.isascii():
        try:
            _PUNCTUATION.sub(" ", pieces).encode("latin-1")
        except UnicodeEncodeError:
            return  # screen promises nothing here
    folded = fold(pieces)
    for word in _FOLDED_WORD.findall(fold(html_to_text(raw, lines=True))):
        assert word in folded, word


@pytest.mark.parametrize(
    ("title", "body", "may_match"),
    [
        ("nothing here", "<p>at all</p>", False),
        ("Vel<b>ora</b>", "", True),  # glued by a removed tag
        ("", "Kes<!-- x -->trel &amp; co", True),  # glued by a dropped comment
        ("", "&#86;elora", True),  # a reference
        ("", "<Velora>", True),  # kept as a word
        ("MÜLLER", "", True),  # folded
        ("", "STRA&szlig;E", True),
        ("", "x\x01y", True),  # html_to_text deletes \x01: no promise
        ("", "a & b", True),  # a bare ampersand: no promise
        ("", "Κryptonite", True),  # a Greek capital: not Latin-1, no promise
        ("", "it’s “quoted” — no brand", False),  # typographic punctuation is fine
    ],
)
def test_screen(title: str, body: str, may_match: bool) -> None:
    pieces = _pieces(title, body)
    assert (pieces is None or _SCREENING.screen(pieces)) is may_match


@pytest.mark.parametrize(
    "queries",
    [
        ["velora", "lang:de"],  # a query with no anchors is evaluated on every document
        ["velora", "site:example.com"],
        ["velora", "author:bob"],  # the pieces hold no author
        ["velora", "raw:Velora"],
    ],
)
def test_screening_is_off_when_it_could_not_promise(queries: list[str]) -> None:
    matcher = Matcher([(q, parse_query(q), (), ()) for q in queries])
    assert not matcher.screens
    assert matcher.screen("nothing here")


def test_screening_is_off_without_the_prefilter() -> None:
    matcher = Matcher([("v", parse_query("velora"), (), ())], prefilter=False)
    assert not matcher.screens


# --- whole feeds: screen on and off --------------------------------------------------------------


@pytest.fixture(scope="module")
def scorer() -> SentimentScorer:
    return load_scorer(("builtin", None))


def _feed(entries: list[tuple[str, str, bool]]) -> bytes:
    items = []
    for number, (title, body, cdata) in enumerate(entries):
        text = f"<![CDATA[{body}]]>" if cdata and "]]>" not in body else escape(body)
        items.append(
            f"<item><title>{escape(title)}</title><link>https://x.example/{number}</link>"
            f"<guid>g{number}</guid><description>{text}</description></item>"
        )
    document = f'<rss version="2.0"><channel><title>t</title>{"".join(items)}</channel></rss>'
    return document.encode("utf-8", "surrogatepass")


_entries = st.lists(st.tuples(_raw, _raw, st.booleans()), min_size=1, max_size=12)


@given(entries=_entries)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_screening_never_changes_a_parse(scorer: SentimentScorer, entries: list) -> None:
    body = _feed(entries)
    try:
        unscreened = parse_feed(body, url="https://x.example/feed")
    except ParseError:  # the screened parse must fail alike
        with pytest.raises(ParseError):
            parse(_SCREENING, scorer, "feed", body, "https://x.example/feed", None)
        return
    expected = parse_items(_SCREENING, scorer, "feed", unscreened.items, unscreened.warnings)
    assert parse(_SCREENING, scorer, "feed", body, "https://x.example/feed", None) == expected


def test_screened_entries_are_counted_not_built(scorer: SentimentScorer) -> None:
    entries = [("Velora rides", "<p>x</p>", False), ("weather", "<p>rain</p>", True)]
    entries += [(f"other {n}", "<p>nothing</p>", False) for n in range(3)]
    body = _feed(entries)
    parsed = parse_feed(body, url="https://x.example/feed", screen=_SCREENING.screen)
    assert parsed.parser == "fastfeedparser"
    assert (len(parsed.items), parsed.screened, parsed.warnings) == (1, 4, ())
    result = parse(_SCREENING, scorer, "feed", body, "https://x.example/feed", None)
    assert result.items == 5
    assert [m.item.title for m in result.mentions] == ["Velora rides"]


def test_screening_stops_in_a_feed_whose_entries_mostly_may_match() -> None:
    matching = [(f"Velora {n}", "<p>x</p>", False) for n in range(8)]
    other = [(f"other {n}", "<p>nothing</p>", False) for n in range(5)]
    mostly = parse_feed(
        _feed(matching + other), url="https://x.example/f", screen=_SCREENING.screen
    )
    assert (len(mostly.items), mostly.screened) == (13, 0)
    rarely = parse_feed(
        _feed(other + matching), url="https://x.example/f", screen=_SCREENING.screen
    )
    assert (len(rarely.items), rarely.screened) == (8, 5)
