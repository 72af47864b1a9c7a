"""Tests of listener.sources.feed (parse_feed), .urls (URL builders) and .html."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastfeedparser
import pytest

from listener.errors import ParseError
from listener.models import Item, ParsedFeed
from listener.sources.feed import parse_feed
from listener.sources.html import html_to_text
from listener.sources.urls import google_news_url, youtube_url

FEEDS = Path(__file__).parent / "data" / "feeds"
GERMAN = "Müller über Straße, Verspätung"


def read(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def rss(items: str, *, channel: str = "", declaration: str = '<?xml version="1.0"?>') -> bytes:
    """A small RSS 2.0 document around ``items`` (XML text)."""
    return (
        f'{declaration}\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>T</title><link>https://t.example/</link>{channel}{items}"
        "</channel></rss>\n"
    ).encode()


@pytest.fixture
def fastfeedparser_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make fastfeedparser reject every body, so parse_feed must fall back to feedparser."""

    def reject(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("rejected by test")

    monkeypatch.setattr(fastfeedparser, "parse", reject)


def all_text(parsed: ParsedFeed) -> str:
    return "\n".join(
        f"{i.guid} {i.url} {i.title} {i.text} {i.author} {i.language}" for i in parsed.items
    )


# --- formats ---------------------------------------------------------------------------------

RSS2_ITEMS = (
    Item(
        guid="urn:news:1",
        url="https://news.example.de/acme-recall",
        title="Acme & Co. recalls kettles",
        text="Acme recalls all kettles.\nSecond para é",  # one line per paragraph
        author="Jane Press",
        published_at=datetime(2024, 1, 2, 9, 30, tzinfo=UTC),
        language="de",
    ),
    Item(
        guid=None,
        url="https://news.example.de/articles/2",
        title="Relative link item",
        text="Only a description here",
        author="Max Mustermann",
        published_at=datetime(2024, 1, 3, 8, 0, tzinfo=UTC),
        language="de",
    ),
    Item(
        guid="urn:news:3",
        url=None,
        title="Bad link and bad date",
        text="",
        author=None,
        published_at=None,
        language="de",
    ),
    Item(  # description-only items are valid RSS 2.0
        guid=None,
        url=None,
        title="",
        text="No guid, no link, no title: kept for its text",
        language="de",
    ),
)

RDF_ITEMS = (
    Item(
        guid=None,
        url="https://rdf.example.org/one",
        title="Premier article",
        text="Le premier article",
        author="Jean Dupont",
        published_at=datetime(2024, 3, 4, 3, 6, 7, tzinfo=UTC),
        language="fr",
    ),
    Item(
        guid=None,
        url="https://rdf.example.org/two",
        title="Second article",
        text="Le second",
        author="Marie Curie",
        published_at=datetime(2024, 3, 5, tzinfo=UTC),
        language="fr",
    ),
)

ATOM_BASE_ITEMS = (
    Item(
        guid="urn:uuid:entry-1",
        url="https://blog.example.com/base/posts/1",
        title="First post",
        text="The full content of the first post, which is longer.",
        author="Alice Author",
        published_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        language="en",
    ),
    Item(
        guid="urn:uuid:entry-2",
        url="https://other.example.net/page2",
        title="Zweiter Beitrag",
        text="XHTML summary",
        author=None,
        published_at=datetime(2024, 5, 3, tzinfo=UTC),
        language="de",
    ),
)

ATOM_PLAIN_ITEMS = (
    Item(
        guid="urn:uuid:plain-1",
        url="https://plain.example.nl/1",
        title="Eerste bericht",
        text="Langere inhoud van het eerste bericht.",
        author="Piet",
        published_at=datetime(2024, 6, 1, 8, 0, tzinfo=UTC),
        language="nl",
    ),
    Item(
        guid="urn:uuid:plain-2",
        url="https://plain.example.nl/posts/2",
        title="Relatief",
        text="Een samenvatting die langer is dan de inhoud hier.",
        author=None,
        published_at=datetime(2024, 6, 2, 8, 0, tzinfo=UTC),
        language="nl",
    ),
)

FORMAT_CASES = [
    # fixture, feed URL, parser on the normal path, feed language, items
    # "not a date" sends it to feedparser: fastfeedparser's dates are only trusted in full forms
    ("rss2.xml", "https://news.example.de/feed.xml", "feedparser", "de", RSS2_ITEMS),
    ("rss1_rdf.xml", "https://rdf.example.org/index.rdf", "fastfeedparser", "fr", RDF_ITEMS),
    ("atom_plain.xml", "https://plain.example.nl/feed", "fastfeedparser", "nl", ATOM_PLAIN_ITEMS),
    # xml:base (and xml:lang on an entry, and an xhtml summary) send Atom to feedparser
    ("atom.xml", "https://blog.example.com/feed.atom", "feedparser", "en", ATOM_BASE_ITEMS),
]


@pytest.mark.parametrize(("name", "url", "parser", "language", "items"), FORMAT_CASES)
def test_formats_parse_to_items(
    name: str, url: str, parser: str, language: str, items: tuple[Item, ...]
) -> None:
    parsed = parse_feed(read(name), url=url)
    assert parsed == ParsedFeed(items=items, warnings=(), parser=parser, language=language)


@pytest.mark.parametrize(("name", "url", "parser", "language", "items"), FORMAT_CASES)
@pytest.mark.usefixtures("fastfeedparser_fails")
def test_feedparser_fallback_gives_the_same_items(
    name: str, url: str, parser: str, language: str, items: tuple[Item, ...]
) -> None:
    parsed = parse_feed(read(name), url=url)
    assert parsed.parser == "feedparser"
    assert parsed.language == language
    assert parsed.items == items


def test_fastfeedparser_finding_no_entries_in_a_feed_with_items_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastfeedparser, "parse", lambda *a, **k: {"feed": {}, "entries": []})
    parsed = parse_feed(read("rss2.xml"), url="https://news.example.de/feed.xml")
    assert parsed.parser == "feedparser"
    assert parsed.items == RSS2_ITEMS


def test_a_feed_without_entries_is_empty_not_an_error() -> None:
    parsed = parse_feed(rss("", channel="<language>en-us</language>"), url="https://t.example/")
    assert parsed == ParsedFeed(items=(), parser="fastfeedparser", language="en")


# --- charsets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "title"),
    [
        ("latin1_declared.xml", None, GERMAN),
        ("latin1_declared.xml", "application/rss+xml", GERMAN),
        ("latin1_undeclared.xml", "text/xml; charset=ISO-8859-1", GERMAN),
        ("latin1_undeclared.xml", 'application/xml; charset="iso-8859-1"', GERMAN),
        ("cp1252_declared.xml", None, GERMAN + " „Zitat“ €"),
        ("cp1252_declared.xml", "text/xml; charset=utf-8", GERMAN + " „Zitat“ €"),
        ("utf8_bom.xml", None, GERMAN),
        ("utf8_bom.xml", "text/xml; charset=iso-8859-1", GERMAN),  # the BOM wins
        ("utf16_bom.xml", None, GERMAN),
    ],
)
def test_charsets_are_honoured(name: str, content_type: str | None, title: str) -> None:
    parsed = parse_feed(read(name), url="https://charset.example/feed", content_type=content_type)
    assert [item.title for item in parsed.items] == [title]
    assert parsed.items[0].text.startswith(title)
    assert parsed.warnings == ()


def test_undeclared_latin1_without_charset_is_read_as_windows_1252() -> None:
    parsed = parse_feed(read("latin1_undeclared.xml"), url="https://charset.example/feed")
    assert parsed.items[0].title == GERMAN


def test_charsets_are_honoured_by_the_fallback_too(fastfeedparser_fails: None) -> None:
    parsed = parse_feed(
        read("latin1_undeclared.xml"),
        url="https://charset.example/feed",
        content_type="text/xml; charset=ISO-8859-1",
    )
    assert parsed.parser == "feedparser"
    assert parsed.items[0].title == GERMAN


# --- broken feeds ----------------------------------------------------------------------------


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
def test_truncated_feed_keeps_the_entries_before_the_break(
    fallback: bool, request: pytest.FixtureRequest
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    parsed = parse_feed(read("truncated.xml"), url="https://trunc.example/feed")
    assert [item.title for item in parsed.items] == ["One", "Two", "Three", "Four"]
    assert [item.guid for item in parsed.items] == ["t1", "t2", "t3", "t4"]
    assert parsed.warnings == (
        "feed is not well-formed XML (line 11: no element found): parsed leniently, kept 4 entries",
    )


def test_mismatched_tag_is_kept_as_far_as_it_goes_with_a_warning() -> None:
    parsed = parse_feed(read("mismatched.xml"), url="https://mm.example/feed")
    assert [item.url for item in parsed.items][:1] == ["https://mm.example/1"]
    assert parsed.warnings[0].startswith("feed is not well-formed XML (line 7: mismatched tag)")
    assert parsed.warnings[0].endswith(f"parsed leniently, kept {len(parsed.items)} entry")
    # what the break left of the second item has nothing in it, and the log says so
    assert parsed.warnings[1:] == ("1 entry without title, text, link or guid dropped",)


def test_undefined_html_entity_is_a_warning_not_a_failure() -> None:
    body = rss("<item><title>Caf&eacute; &amp; more&nbsp;here</title><guid>g1</guid></item>")
    parsed = parse_feed(body, url="https://t.example/")
    assert [item.guid for item in parsed.items] == ["g1"]
    assert parsed.warnings == (
        "feed is not well-formed XML (line 2: undefined entity): 2 undefined entities decoded; "
        "parsed leniently, kept 1 entry",
    )


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
def test_control_characters_never_reach_a_field(
    fallback: bool, request: pytest.FixtureRequest
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    body = rss(
        "<item><title>Nul\x00 and \x01bell\x07</title><guid>g\x02 1</guid>"
        "<link>https://t.example/\x03a</link>"
        "<description>tab\there\x1b[31m red\x7f</description>"
        "<author>x@y.example (Ja\x08ne)</author></item>"
    )
    parsed = parse_feed(body, url="https://t.example/")
    (item,) = parsed.items
    assert item == Item(
        guid="g 1",
        url="https://t.example/a",
        title="Nul and bell",
        text="tab here red",  # the escape sequence goes whole
        author="Jane",
    )


# --- hostile feeds ---------------------------------------------------------------------------


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
def test_billion_laughs_is_not_expanded(fallback: bool, request: pytest.FixtureRequest) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    started = time.perf_counter()
    parsed = parse_feed(read("billion_laughs.xml"), url="https://lol.example/feed")
    assert time.perf_counter() - started < 1.0
    assert "lollol" not in all_text(parsed)
    assert [item.url for item in parsed.items] == [
        "https://lol.example/1",
        "https://lol.example/2",
    ]
    # line numbers are the body's, though the DOCTYPE was cut out
    assert parsed.warnings == (
        "feed is not well-formed XML (line 16: undefined entity): 6 undefined entities decoded; "
        "parsed leniently, kept 2 entries",
    )


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
def test_external_entities_are_never_read(
    fallback: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4711")
    body = read("xxe.xml").replace(b"file:///etc/passwd", secret.as_uri().encode())
    parsed = parse_feed(body, url="https://xxe.example/feed")
    text = all_text(parsed)
    assert "TOPSECRET" not in text
    assert "root:" not in text
    assert [item.url for item in parsed.items] == ["https://xxe.example/1"]


def test_a_doctype_with_tricky_internal_subset_is_removed_whole() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!-- a ] in a comment -->\n'
        b"<!ENTITY a \"x]>y\">\n<!ENTITY b '&a;&a;'>\n]>\n"
        b"<rss><channel><item><title>T &b;</title><guid>g</guid></item></channel></rss>"
    )
    parsed = parse_feed(body, url="https://t.example/")
    # &b; lost its definition with the DTD: it stays as text, like any undefined entity
    assert [item.title for item in parsed.items] == ["T &b;"]


def test_an_unterminated_doctype_leaves_no_declaration_behind() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "lol">\n'
        b"<rss><channel><item><title>T &a;</title><guid>g</guid></item></channel></rss>"
    )
    parsed = parse_feed(body, url="https://t.example/")
    assert "lol" not in all_text(parsed)


# --- not a feed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is empty"),
        (b"  \n\t ", "the body is empty"),
        (read("not_a_feed.html"), "the body is an HTML page"),
        (b"<html><body><p>hi</p></body></html>", "the body is an HTML page"),
        (read("json_feed.json"), "the body looks like JSON"),
        (b'[{"a": 1}]', "the body looks like JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "the body is not XML"),
        (b"Just some text.", "the body is not XML"),
        (b'<?xml version="1.0"?><note><to>x</to></note>', "no <rss>, <feed> or <rdf:RDF>"),
    ],
)
def test_not_a_feed_raises_parse_error(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, url="https://t.example/", content_type="text/html")
    message = str(caught.value)
    assert message.startswith("not an RSS/Atom feed: ")
    assert reason in message
    assert "\n" not in message


# --- fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ("<pubDate>Tue, 02 Jan 2024 10:30:00 +0100</pubDate>", datetime(2024, 1, 2, 9, 30)),
        ("<pubDate>Wed, 03 Jan 2024 08:00:00 GMT</pubDate>", datetime(2024, 1, 3, 8, 0)),
        ("<dc:date>2024-03-04T05:06:07+02:00</dc:date>", datetime(2024, 3, 4, 3, 6, 7)),
        ("<dc:date>2024-03-05T10:00:00</dc:date>", datetime(2024, 3, 5, 10, 0)),  # naive: UTC
        ("<pubDate>not a date</pubDate>", None),
        ("", None),
    ],
)
def test_dates(
    element: str, expected: datetime | None, fallback: bool, request: pytest.FixtureRequest
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    parsed = parse_feed(rss(f"<item><guid>g</guid>{element}</item>"), url="https://t.example/")
    want = expected.replace(tzinfo=UTC) if expected else None
    assert parsed.items[0].published_at == want


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://t.example/a?b=1#c", "https://t.example/a?b=1#c"),
        ("http://other.example/x", "http://other.example/x"),
        ("/path/to", "https://feeds.example/path/to"),
        ("relative", "https://feeds.example/dir/relative"),
        ("//cdn.example/x", "https://cdn.example/x"),
        ("javascript:alert(1)", None),
        ("mailto:someone@example.org", None),
        ("ftp://files.example/x", None),
        ("data:text/html,hi", None),
        ("", None),
    ],
)
def test_links_are_resolved_and_only_web_urls_kept(
    link: str, expected: str | None, fallback: bool, request: pytest.FixtureRequest
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    body = rss(f"<item><title>x</title><link>{link}</link></item>")
    parsed = parse_feed(body, url="https://feeds.example/dir/feed.xml")
    assert parsed.items[0].url == expected


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("<language>de-DE</language>", "de"),
        ("<language>en_US</language>", "en"),
        ("<language>EN</language>", "en"),
        ("<language> pt-br </language>", "pt"),
        ("<dc:language>fr</dc:language>", "fr"),
        ("<language>x-klingon</language>", None),
        ("<language></language>", None),
        ("", None),
    ],
)
def test_feed_language_is_the_primary_subtag(channel: str, expected: str | None) -> None:
    parsed = parse_feed(rss("<item><guid>g</guid></item>", channel=channel), url="https://t/")
    assert parsed.language == expected
    assert parsed.items[0].language == expected


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("<author>press@acme.example (Jane Press)</author>", "Jane Press"),
        ("<author>press@acme.example</author>", "press@acme.example"),
        ("<author>Jane Press (press@acme.example)</author>", "Jane Press"),
        ("<dc:creator>Max Mustermann</dc:creator>", "Max Mustermann"),
        ("<dc:creator>  </dc:creator>", None),
        ("", None),
    ],
)
def test_author(author: str, expected: str | None) -> None:
    parsed = parse_feed(rss(f"<item><guid>g</guid>{author}</item>"), url="https://t/")
    assert parsed.items[0].author == expected


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
def test_only_items_without_anything_are_dropped_and_the_log_says_so(
    fallback: bool, request: pytest.FixtureRequest
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    body = rss(
        "<item><description>only a description</description></item>"
        "<item><guid>   </guid><title>  </title><description>  </description></item>"
        "<item><category>nothing else</category></item>"
        "<item><guid>keep-guid</guid></item>"
        "<item><link>https://t.example/keep</link></item>"
        "<item><title>keep title</title></item>"
    )
    parsed = parse_feed(body, url="https://t.example/")
    assert parsed.warnings == ("2 entries without title, text, link or guid dropped",)
    assert [(i.guid, i.url, i.title, i.text) for i in parsed.items] == [
        (None, None, "", "only a description"),
        ("keep-guid", None, "", ""),
        (None, "https://t.example/keep", "", ""),
        (None, None, "keep title", ""),
    ]


def test_text_is_the_longest_of_content_and_summary() -> None:
    body = rss(
        '<item xmlns:content="http://purl.org/rss/1.0/modules/content/"><guid>a</guid>'
        "<description>the longer description wins here</description>"
        "<content:encoded>short</content:encoded></item>"
        '<item xmlns:content="http://purl.org/rss/1.0/modules/content/"><guid>b</guid>'
        "<description>short</description>"
        "<content:encoded><![CDATA[<p>the longer <i>content</i> wins here</p>]]>"
        "</content:encoded></item>"
    )
    parsed = parse_feed(body, url="https://t.example/")
    assert [item.text for item in parsed.items] == [
        "the longer description wins here",
        "the longer content wins here",
    ]


# --- html_to_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("plain text", "plain text"),
        ("<p>one</p><p>two</p>", "one two"),
        ("line<br>break<br/>and<BR />more", "line break and more"),
        ("Mc<b>Donald</b>'s", "McDonald's"),
        ("<ul><li>a</li><li>b</li></ul>", "a b"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("x<script>alert('<p>no</p>')</script>y", "xy"),
        ("x<STYLE type='text/css'>p { color: red }</STYLE>y", "xy"),
        ("x<!-- hidden <b>comment</b> -->y", "xy"),
        ("x<script>never closed", "x"),
        ("x<!-- never closed", "x"),
        ("a &amp; b &lt;tag&gt; &eacute;&#233;&#xE9; &nbsp;c", "a & b <tag> ééé c"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("<a href='x' <b>broken</b>", "<a href='x' broken"),
        ("  lots \n\n of \t\r\n   space  ", "lots of space"),
        ("nul\x00 bell\x07 esc\x1b del\x7f", "nul bell esc del"),
        ("<?xml version='1.0'?><!DOCTYPE html><div>ok</div>", "ok"),
        ("&#0;&#x1;&#x7f;", "\ufffd"),  # html.unescape: U+FFFD for NUL, nothing for the rest
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_is_linear_on_hostile_input() -> None:
    hostile = "<" * 50_000 + "<a " * 50_000 + "<script>" * 10_000 + "&" * 50_000
    started = time.perf_counter()
    html_to_text(hostile)
    assert time.perf_counter() - started < 1.0


# --- URL builders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            google_news_url("acme corp"),
            "https://news.google.com/rss/search?q=acme+corp&hl=en-US&gl=US&ceid=US:en",
        ),
        (
            google_news_url('"Acme GmbH" & Söhne', language="de", country="de"),
            "https://news.google.com/rss/search?q=%22Acme+GmbH%22+%26+S%C3%B6hne"
            "&hl=de-DE&gl=DE&ceid=DE:de",
        ),
        (
            youtube_url("UC_x5XG1OV2P6uZZ5FSM9Ttw"),
            "https://www.youtube.com/feeds/videos.xml?channel_id=UC_x5XG1OV2P6uZZ5FSM9Ttw",
        ),
    ],
)
def test_url_builders(url: str, expected: str) -> None:
    assert url == expected


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: google_news_url(""), "must not be empty"),
        (lambda: google_news_url("x", language="english"), "is not a code"),
        (lambda: google_news_url("x", country="USA"), "is not a code"),
        (lambda: youtube_url("@acme"), "not a channel id"),
    ],
)
def test_url_builders_reject_bad_input(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_body_paragraphs_stay_lines_and_titles_stay_one_line() -> None:
    from listener.sources.html import html_to_text

    body = "<p>Menu | Home</p><p>The  article <b>text</b>.</p><br/>\n\n<div>Subscribe now</div>"
    assert html_to_text(body, lines=True) == "Menu | Home\nThe article text.\nSubscribe now"
    assert html_to_text(body) == "Menu | Home The article text. Subscribe now"


# --- which parser reads what ------------------------------------------------------------------

ATOM_NS = 'xmlns="http://www.w3.org/2005/Atom"'


@pytest.mark.parametrize(
    ("body", "parser"),
    [
        (
            rss("<item><title>plain</title><link>https://t.example/1</link></item>"),
            "fastfeedparser",
        ),
        (rss("<item><title>x</title><description>a <b>b</b></description></item>"), "feedparser"),
        (rss("<item><title>caf&eacute;</title></item>"), "feedparser"),
        (rss("<item><title>x</title><link>https://t.example/?a=1&b=2</link></item>"), "feedparser"),
        (rss('<item><title>x</title><guid isPermaLink="false">g</guid></item>'), "feedparser"),
        (
            rss(
                '<item><title>x</title><link>https://t/1</link><guid isPermaLink="false">g</guid>'
                "</item>"
            ),
            "fastfeedparser",
        ),
        (
            rss("<item><title>x</title><pubDate>Thu, 30 Apr 2015 08:57:00 MEST</pubDate></item>"),
            "feedparser",
        ),
        (
            rss("<item><title>x</title><pubDate>Thu, 30 Apr 2015 08:57:00 +0200</pubDate></item>"),
            "fastfeedparser",
        ),
        (rss("<item><title>x</title><dc:date>2003-12</dc:date></item>"), "feedparser"),
        (
            rss("<item><title>x</title><dc:date>2003-12-31T10:14:55Z</dc:date></item>"),
            "fastfeedparser",
        ),
        (
            rss('<item><title>x</title><itunes:title xmlns:itunes="urn:i">y</itunes:title></item>'),
            "feedparser",
        ),
        (
            f'<feed {ATOM_NS}><entry><id>i</id><title type="xhtml"><div>t</div></title>'
            "</entry></feed>".encode(),
            "feedparser",
        ),
        (
            f'<feed {ATOM_NS}><entry><id>i</id><link rel="self" href="https://t/s"/></entry></feed>'.encode(),
            "feedparser",
        ),
        (
            f'<feed {ATOM_NS}><link rel="self" href="https://t/f"/><entry><id>i</id>'
            '<link rel="alternate" href="https://t/a"/><link rel="replies" href="https://t/r"/>'
            "</entry></feed>".encode(),
            "fastfeedparser",
        ),
    ],
)
def test_what_fastfeedparser_would_misread_goes_to_feedparser(body: bytes, parser: str) -> None:
    assert parse_feed(body, url="https://t.example/").parser == parser


@pytest.mark.parametrize("fallback", [False, True], ids=["fastfeedparser", "feedparser"])
@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Thu, 30 Apr 2015 08:57:00 MEST", datetime(2015, 4, 30, 6, 57)),
        ("Thu, 30 Apr 2015 08:57:00 MET", datetime(2015, 4, 30, 7, 57)),
        ("Mon, 26 January 2004 16:31:00 ET", datetime(2004, 1, 26, 21, 31)),
        ("Thu, 30 Apr 2015 08:57:00 Z", datetime(2015, 4, 30, 8, 57)),
        # military zones by RFC 822's table (A is -1), as feedparser reads them
        ("Thu, 30 Apr 2015 08:57:00 A", datetime(2015, 4, 30, 9, 57)),
        ("Wed, 19 Feb 2012 22:40:00 GMT-01:01", datetime(2012, 2, 19, 23, 41)),
        ("2003-12", datetime(2003, 12, 1)),
        ("2003", datetime(2003, 1, 1)),
        ("2013-xx-27", None),  # feedparser's lenient ISO reader gave 2013-<this month>-01
        ("2013-01-27-01", None),
        ("22013", None),
    ],
)
def test_dates_are_right_or_none(
    date: str, expected: datetime | None, fallback: bool, request: pytest.FixtureRequest
) -> None:
    if fallback:
        request.getfixturevalue("fastfeedparser_fails")
    body = rss(f"<item><guid>g</guid><pubDate>{date}</pubDate></item>")
    want = expected.replace(tzinfo=UTC) if expected else None
    assert parse_feed(body, url="https://t.example/").items[0].published_at == want
