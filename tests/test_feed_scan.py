"""feed_scan's one-pass search for what fastfeedparser misreads gives what one search per
check gave (the reference below, the code before the pass)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from listener.sources import feed_scan as fs


def _reference(data: bytes, text: str) -> str | None:
    """The checks of ``_lenient_reason`` as they were written first: one search each."""
    if b"xml:" in data:
        if b"xml:base" in data:
            return "xml:base"
        if b"xml:lang" in data and fs._ENTRY_XML_LANG.search(data):
            return "xml:lang on entries"
    if b"purl.org/atom/ns#" in data[:4096]:  # on the root element
        return "Atom 0.3"
    if b"xhtml" in data and fs._XHTML.search(data):
        return "xhtml content"
    if b"base64" in data and fs._BASE64.search(data):
        return "base64 content"
    if b"type=" in data and fs._BINARY_TYPE.search(data):
        return "base64 content"
    entries = text.count("<entry")
    if entries and "rel=" in text:
        rels = fs._REL.findall(text)
        alternates = rels.count("alternate")
        if alternates < len(rels) and alternates < entries:
            # fastfeedparser takes the first link when an entry has no rel="alternate" one
            return "entry links of other relations"
    media = fs._MEDIA.search(data) if b"media:" in data else None
    if media:
        return f"Media RSS <{media.group(1).decode()}>"
    if ('type="text' in text or "type='text" in text) and fs._PLAIN.search(text):
        return "escaped markup in a plain-text field"
    for clash in fs._NAMESPACED_FIELD.finditer(text):
        start = text.rfind("<", 0, clash.start())
        if start >= 0 and fs._PREFIX.fullmatch(text, start + 1, clash.start()):
            return f"an extension element named {clash.group(1)}"
    markup = fs._MARKUP.search(text)
    if markup:
        return f"markup inside <{markup.group(1)}>"
    loose = "ermaLink" in text and fs._LOOSE_GUID.search(text)
    if loose and text.count("<link") <= text.count("<item"):
        return 'a guid isPermaLink="false" on an item without a link'
    for pattern in (fs._ATE_ELEMENT, fs._PUBLISHED_ELEMENT):
        for found in pattern.finditer(text):
            value = found.group(1).strip()
            if not value:
                continue
            if pattern is fs._ATE_ELEMENT and not text.endswith(
                fs._ATE_NAMES, 0, found.start() + 3
            ):
                continue  # not a date element ("<rate>")
            return f"a date fastfeedparser may misread ({value[:40]!r})"
    return None


_FRAGMENTS = [
    *("<entry>", "</entry>", '<link rel="alternate" href="x"/>', '<link rel="enclosure"/>'),
    *("<link>", "</link>", "<item>", "</item>", '<item xml:lang="de">', 'xml:base="x"', "xml:"),
    *('<entry xml:lang="en">', "<media:content>", "<media:title>", "media:thumbnail", "xhtml"),
    *('type="text"', "type='text'", 'type="xhtml"', 'mode="base64"', 'type="image/png"', "&lt;"),
    *("&amp;", "<![CDATA[", "]]>", "<title>", "</title>", "<description>", "</description>"),
    *("<dc:title>", "<itunes:summary>", "<content:encoded>", "</content:encoded>", "<b>", "<br/>"),
    *("<pubDate>", "</pubDate>", "Mon, 01 Jan 2024 10:00:00 GMT", "yesterday", "<rate>", "</rate>"),
    *("<published>", "</published>", "<updated>", "</updated>", "2024-01-01", "2024-01-01T10:00"),
    *('<guid isPermaLink="false">', "</guid>", "purl.org/atom/ns#", ":", "<", ">", "/", " ", "\n"),
    *("ü", "ß", "€", "x", "<summary>", ":title ", ":description>", "<a:b:title>", "date>", "ate>"),
]  # fmt: skip
_documents = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=3)), max_size=30).map(
    "".join
)


@given(_documents)
@example('<feed><entry><link rel="x"/><content type="html">a<b>b</b></content></entry></feed>')
@example("<rss><item><media:content><title>x<b>y</title><pubDate>today</pubDate></item></rss>")
@example("<x><pubDate>a date> b</pubDate><rate>5</rate><published>soon</published></x>")
@settings(max_examples=3000)
def test_one_pass_agrees_with_one_search_per_check(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    assert fs._lenient_reason(data, text) == _reference(data, text)


_CORPUS = Path(os.environ.get("LISTENER_FEED_CORPUS", "/work/shared/data/feeds/feedparser-tests"))


@pytest.mark.skipif(not _CORPUS.is_dir(), reason="the feedparser test corpus is not here")
def test_one_pass_agrees_on_the_feedparser_corpus() -> None:
    for path in sorted(p for p in _CORPUS.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        data = text.encode("utf-8", "surrogatepass")
        assert fs._lenient_reason(data, text) == _reference(data, text), path
