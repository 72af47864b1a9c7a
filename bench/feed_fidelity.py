"""Bench: how completely listener's feed parser reads real-world documents, with feedparser as
the reference.

    python bench/feed_fidelity.py [--corpus DIR] [--show N] [--verbose]

Runs :func:`listener.sources.feed.parse_feed` and ``feedparser.parse`` over every document of
the corpus (default: feedparser's own test documents, ``../shared/data/feeds/feedparser-tests``
from the repository root) and prints agreement per field over the documents feedparser parses
(it finds at least one entry): entries kept, title, link, plain text of the body, author and
published instant. Text fields are compared as plain text without whitespace (feedparser's HTML
reduced with lxml), so markup and line breaks do not count, lost or extra words do.

Every disagreement gets a category. Categories starting with "reference:" are cases where
feedparser is wrong (or reads a non-feed element) and listener is right; the reason is in the
name. The rest are listener's. Then the date strings of feedparser's date-parser tests are run
through a one-item feed each: the instant listener stores must equal the test's expected
instant or be None, never a different one.

Also prints the share of documents that needed the lenient path (feedparser).
"""

from __future__ import annotations

import argparse
import collections
import io
import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import lxml.html

from listener.errors import ParseError
from listener.models import Item
from listener.sources.feed import parse_feed

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "data" / "feeds" / "feedparser-tests"
BASE = "http://127.0.0.1:8097/"
FIELDS = ("entries", "title", "link", "text", "author", "published")
_HEADER = re.compile(r"^Header:\s*([\w-]+):\s*(.+?)\s*$", re.MULTILINE)
_SPACE = re.compile(r"\s+")

# The date strings of feedparser's tests/test_date_parsers.py (github.com/kurtmckee/feedparser,
# BSD-2-Clause) with the instant each test expects (UTC), or None. Strings the tests give to
# one specific sub-parser only are marked False in the last column: feedparser's own
# _parse_date is not expected to read them, and neither is listener (None is fine there too).
DATE_CASES: tuple[tuple[str, tuple[int, ...] | None, bool], ...] = (
    ("Κυρ, 11 Ιούλ 2004 12:00:00 EST", (2004, 7, 11, 17, 0, 0), True),
    ("2004-július-13T9:15-05:00", (2004, 7, 13, 14, 15, 0), True),
    ("-0312", (2003, 12, 1, 0, 0, 0), False),
    ("031231", (2003, 12, 31, 0, 0, 0), False),
    ("03-12-31", (2003, 12, 31, 0, 0, 0), False),
    ("-03-12", (2003, 12, 1, 0, 0, 0), False),
    ("03335", (2003, 12, 1, 0, 0, 0), False),
    ("2003-12-31T10:14:55.1234Z", (2003, 12, 31, 10, 14, 55), True),
    ("2003-012-31T10:14:55+00:00", (2003, 12, 31, 10, 14, 55), True),
    ("2004-05-25 오후 11:23:17", (2004, 5, 25, 14, 23, 17), True),
    ("2004년 05월 28일  01:31:15", (2004, 5, 27, 16, 31, 15), True),
    ("Fri, 2006/09/15 08:19:53 EDT", (2006, 9, 15, 12, 19, 53), True),
    ("Thu, 30 Apr 2015 08:57:00 MET", (2015, 4, 30, 7, 57, 0), True),
    ("Thu, 30 Apr 2015 08:57:00 MEST", (2015, 4, 30, 6, 57, 0), True),
    ("Thu, 01 Jan 0100 00:00:01 +0100", (99, 12, 31, 23, 0, 1), True),
    ("Thu, 01 Jan 04 19:48:21 GMT", (2004, 1, 1, 19, 48, 21), True),
    ("Thu, 01 Jan 2004 19:48:21 GMT", (2004, 1, 1, 19, 48, 21), True),
    ("Thu,  5 Apr 2012 10:00:00 GMT", (2012, 4, 5, 10, 0, 0), True),
    ("Wed, 19 Aug 2009 18:28:00 Etc/GMT", (2009, 8, 19, 18, 28, 0), True),
    ("Wed, 19 Feb 2012 22:40:00 GMT-01:01", (2012, 2, 19, 23, 41, 0), True),
    ("Wed, 19 Feb 2012 22:40:00 -01:01", (2012, 2, 19, 23, 41, 0), True),
    ("Mon, 13 Feb, 2012 06:28:00 UTC", (2012, 2, 13, 6, 28, 0), True),
    ("Thu, 01 Jan 2004 00:00 GMT", (2004, 1, 1, 0, 0, 0), True),
    ("Thu, 01 Jan 2004", (2004, 1, 1, 0, 0, 0), True),
    ("Mon, 26 January 2004 16:31:00 AT", (2004, 1, 26, 20, 31, 0), True),
    ("Mon, 26 January 2004 16:31:00 ET", (2004, 1, 26, 21, 31, 0), True),
    ("Mon, 26 January 2004 16:31:00 CT", (2004, 1, 26, 22, 31, 0), True),
    ("Mon, 26 January 2004 16:31:00 MT", (2004, 1, 26, 23, 31, 0), True),
    ("Mon, 26 January 2004 16:31:00 PT", (2004, 1, 27, 0, 31, 0), True),
    ("Thu Aug 30 2012 17:26:16 +0200", (2012, 8, 30, 15, 26, 16), True),
    ("Sun, 16 Dec 2012 1:2:3:4 GMT", None, True),
    ("Sun, 16 zzz 2012 11:47:32 GMT", None, True),
    ("Sun, Dec x 2012 11:47:32 GMT", None, True),
    ("Sun, 16 Dec zz 11:47:32 GMT", None, True),
    ("Sun, 16 Dec 2012 11:47:32 +zz:00", None, True),
    ("Sun, 16 Dec 2012 11:47:32 +00:zz", None, True),
    ("Sun, 99 Jun 2009 12:00:00 GMT", None, True),
    ("Sun Jan  4 16:29:06 2004", (2004, 1, 4, 16, 29, 6), True),
    ("Sun Jul 15 01:16:00 +0000 2012", (2012, 7, 15, 1, 16, 0), True),
    ("2003-12-31T10:14:55Z", (2003, 12, 31, 10, 14, 55), True),
    ("2003-12-31T10:14:55-08:00", (2003, 12, 31, 18, 14, 55), True),
    ("2003-12-31T18:14:55+08:00", (2003, 12, 31, 10, 14, 55), True),
    ("2007-04-23T23:25:47.538+10:00", (2007, 4, 23, 13, 25, 47), True),
    ("2003-12-31", (2003, 12, 31, 0, 0, 0), True),
    ("2003-12", (2003, 12, 1, 0, 0, 0), True),
    ("2003", (2003, 1, 1, 0, 0, 0), True),
    ("2004-02-28T18:14:55-08:00", (2004, 2, 29, 2, 14, 55), True),
    ("2003-02-28T18:14:55-08:00", (2003, 3, 1, 2, 14, 55), True),
    ("2000-02-28T18:14:55-08:00", (2000, 2, 29, 2, 14, 55), True),
    ("9999-12-31T23:59:59-99:99", None, True),
    ("2003-12-31T25:14:55Z", None, True),
    ("2003-12-31T10:61:55Z", None, True),
    ("2003-12-31T10:14:61Z", None, True),
    ("22013", None, True),
    ("013", None, True),
    ("2013-01-27-01", None, True),
    ("2013-01-28T11:30:00-06:00Textra", None, True),
    ("2013-xx-27", None, True),
    ("2013-01-28T09:xx:00Z", None, True),
    ("2013-01-28T09:00:00+00:xx", None, True),
    ("2004-07-08 23:56:58 -00:20", (2004, 7, 9, 0, 16, 58), True),
    ("2004-07-08 23:56:58", (2004, 7, 8, 23, 56, 58), True),
    ("2004-07-08 23:56:58.0", (2004, 7, 8, 23, 56, 58), True),
)


def reference_text(value: object, detail: object = None) -> str:
    """feedparser's value as plain text without whitespace (HTML reduced with lxml)."""
    if not isinstance(value, str) or not value:
        return ""
    kind = detail.get("type", "") if isinstance(detail, Mapping) else "text/html"
    if "html" in str(kind) and ("<" in value or "&" in value):
        try:
            tree = lxml.html.fragment_fromstring(value, create_parent="div")
            for bad in tree.xpath("//script|//style"):
                bad.drop_tree()
            value = str(tree.text_content())
        except Exception:  # lxml finds nothing to parse in e.g. a lone "<"
            pass
    return _SPACE.sub("", value)


def squeeze(value: str | None) -> str:
    return _SPACE.sub("", value or "")


def reference_body(entry: Mapping[str, Any]) -> str:
    """The longest of feedparser's summary and content values, as plain text."""
    best = reference_text(entry.get("summary"), entry.get("summary_detail"))
    for part in entry.get("content") or []:
        text = reference_text(part.get("value"), part)
        if len(text) > len(best):
            best = text
    return best


def reference_author(entry: Mapping[str, Any]) -> str:
    detail = entry.get("author_detail")
    if isinstance(detail, Mapping) and detail.get("name"):
        return squeeze(detail["name"])
    author = entry.get("author")
    return squeeze(author) if isinstance(author, str) else ""


def reference_date(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if isinstance(value, time.struct_time):
            try:
                return datetime(*value[:6], tzinfo=UTC)
            except ValueError:
                return None
    return None


def reference_link(entry: Mapping[str, Any]) -> str | None:
    link = entry.get("link")
    if isinstance(link, str) and link.startswith(("http://", "https://")):
        return link.strip()
    return None


def same_entry(entry: Mapping[str, Any], item: Item) -> bool:
    """Whether listener's ``item`` is feedparser's ``entry`` (for aligning dropped entries)."""
    link = reference_link(entry)
    if link and item.url == link:
        return True
    title = reference_text(entry.get("title"), entry.get("title_detail"))
    if title and squeeze(item.title) == title:
        return True
    guid = entry.get("id")
    return bool(guid) and item.guid == guid


def align(
    entries: list[Mapping[str, Any]], items: tuple[Item, ...]
) -> list[tuple[Mapping[str, Any], Item | None]]:
    if len(entries) == len(items):
        return list(zip(entries, items, strict=True))
    pairs: list[tuple[Mapping[str, Any], Item | None]] = []
    index = 0
    for entry in entries:
        if index < len(items) and same_entry(entry, items[index]):
            pairs.append((entry, items[index]))
            index += 1
        else:
            pairs.append((entry, None))
    return pairs


class Tally:
    def __init__(self) -> None:
        self.total: collections.Counter[str] = collections.Counter()
        self.agree: collections.Counter[str] = collections.Counter()
        self.categories: collections.Counter[tuple[str, str]] = collections.Counter()
        self.examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)

    def count(self, field: str, agrees: bool, category: str = "", example: str = "") -> None:
        self.total[field] += 1
        if agrees:
            self.agree[field] += 1
            return
        key = (field, category or "other")
        self.categories[key] += 1
        self.examples[key].append(example)


MISDECODED = (
    "reference: body not valid in its encoding: listener keeps what decodes and replaces the "
    "rest, with a warning; feedparser reads it all as windows-1252"
)


SCRIPT = "reference: feedparser keeps the source code of a <script> as text"
BINARY = (
    "reference: base64 content: feedparser gives the decoded bytes with their markup, "
    "listener their text"
)


def classify_title(doc: str, entry: Mapping[str, Any], ours: str, theirs: str) -> str:
    if "\ufffd" in ours:
        return MISDECODED
    raw = str(entry.get("title") or "")
    if "<script" in raw.lower():
        return SCRIPT
    kind = (entry.get("title_detail") or {}).get("type", "")
    if "html" not in kind and reference_text(raw, {"type": "text/html"}) == ours:
        return BINARY
    if "xhtml" in doc and 'type="xhtml"' in doc and not theirs:
        return "reference: feedparser drops an xhtml title"
    return "title differs"


def classify_text(doc: str, entry: Mapping[str, Any], ours: str, theirs: str) -> str:
    if "\ufffd" in ours:
        return MISDECODED
    values = [str(entry.get("summary") or "")]
    values += [str(part.get("value") or "") for part in entry.get("content") or []]
    if any("<script" in value.lower() for value in values):
        return SCRIPT
    if "&nbsp;" in theirs and theirs.replace("&nbsp;", "") == ours:
        return "reference: a plain-text summary spells '&nbsp;' out; listener has the same words"
    if any(reference_text(value, {"type": "text/html"}) == ours for value in values):
        return BINARY
    if ("/sanitize/" in doc or "/entities/" in doc) and theirs in ours:
        return "reference: feedparser's sanitizer drops text listener keeps"
    if not theirs:
        return "reference: feedparser has no text"
    return "text differs"


def compare_doc(path: Path, tally: Tally, lenient: collections.Counter[str]) -> None:
    raw = path.read_bytes()
    head = raw[:2000].decode("utf-8", "replace")
    headers = {name.lower(): value for name, value in _HEADER.findall(head)}
    expect_match = re.search(r"^Expect:\s*(.+)$", head, re.MULTILINE)
    expect = expect_match.group(1) if expect_match else ""
    base = headers.get("content-location", BASE + path.name)
    content_type = headers.get("content-type")
    ref_headers = {"content-location": base}
    if content_type:
        ref_headers["content-type"] = content_type
    reference = feedparser.parse(io.BytesIO(raw), response_headers=ref_headers)
    entries: list[Mapping[str, Any]] = reference.get("entries") or []
    doc = str(path)
    try:
        parsed = parse_feed(raw, url=base, content_type=content_type)
    except ParseError as exc:
        items: tuple[Item, ...] = ()
        reason = f"ParseError: {exc}"
        lenient["rejected"] += 1
    else:
        items = parsed.items
        reason = "; ".join(parsed.warnings) or "no warning"
        lenient[parsed.parser] += 1
    if not entries:
        return
    tally.total["documents"] += 1
    for entry, item in align(entries, items):
        if item is None:
            if path.suffix == ".json":
                category = "reference: not an RSS/Atom document (JSON Feed)"
            elif "no <rss>, <feed> or <rdf:RDF>" in reason and b"<CHANNEL" in raw.upper():
                category = "reference: CDF (Microsoft, 1997), not RSS/Atom: one ParseError line"
            elif "without title, text, link or guid dropped" in reason:
                category = (
                    "reference: nothing to match or link to (no title, text, link, guid), logged"
                )
            else:
                category = "dropped"
            tally.count("entries", False, category, f"{doc}: {reason}")
            continue
        tally.count("entries", True)
        theirs = reference_text(entry.get("title"), entry.get("title_detail"))
        ours = squeeze(item.title)
        if theirs or ours:
            tally.count(
                "title",
                ours == theirs,
                classify_title(doc, entry, ours, theirs),
                f"{doc}: ours {ours[:60]!r} theirs {theirs[:60]!r}",
            )
        link = reference_link(entry)
        if link or item.url:
            category = "link differs"
            if item.url and item.url in expect and (link is None or link not in expect):
                category = "reference: listener gives what feedparser's own test expects"
            elif item.url is None and entry.get("guidislink"):
                category = "reference: feedparser takes the entry id / guid as link (not a link)"
            tally.count("link", item.url == link, category, f"{doc}: {item.url} vs {link}")
        theirs = reference_body(entry)
        ours = squeeze(item.text)
        if theirs or ours:
            tally.count(
                "text",
                ours == theirs,
                classify_text(doc, entry, ours, theirs),
                f"{doc}: ours {ours[:60]!r} theirs {theirs[:60]!r}",
            )
        theirs = reference_author(entry)
        ours = squeeze(item.author)
        if theirs or ours:
            tally.count(
                "author",
                ours == theirs,
                "author differs",
                f"{doc}: ours {ours!r} theirs {theirs!r}",
            )
        when = reference_date(entry)
        if when or item.published_at:
            ours_when = item.published_at.replace(microsecond=0) if item.published_at else None
            tally.count(
                "published",
                when == ours_when,  # feedparser's resolution is one second
                "date differs" if when else "reference: feedparser has no date",
                f"{doc}: ours {item.published_at} theirs {when}",
            )


def check_dates() -> tuple[int, int, int, int, list[str]]:
    """(right, none, wrong, feedparser right, wrong examples) over DATE_CASES."""
    right = none = wrong = reference_right = 0
    examples = []
    for text, expected, dispatched in DATE_CASES:
        want = None
        if expected:
            year, month, day, hour, minute, second = expected
            want = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        doc = (
            '<rss version="2.0"><channel><item><title>t</title><link>http://a.example/1</link>'
            f"<pubDate>{text}</pubDate></item></channel></rss>"
        ).encode()
        got = parse_feed(doc, url=BASE).items[0].published_at
        got = got.replace(microsecond=0) if got else None  # the tests' resolution
        theirs = reference_date(feedparser.parse(io.BytesIO(doc)).entries[0])
        reference_right += theirs == want or (not dispatched and theirs is None)
        if got == want:
            right += 1
        elif got is None:
            none += 1
        else:
            wrong += 1
            examples.append(f"{text!r}: ours {got}, expected {want}")
    return right, none, wrong, reference_right, examples


class ReasonCounter(logging.Handler):
    """Counts the reasons parse_feed logs for reading a body leniently."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if "parsing leniently" in str(record.msg) and isinstance(record.args, tuple):
            reason = str(record.args[1])
            self.counts[reason.split(" (")[0].split(" <")[0]] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--show", type=int, default=3, help="examples per category")
    parser.add_argument("--verbose", action="store_true", help="show listener's log")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"bench: no corpus at {args.corpus}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    reasons = ReasonCounter()
    feed_log = logging.getLogger("listener.sources.feed")
    feed_log.addHandler(reasons)
    feed_log.setLevel(logging.DEBUG)
    feed_log.propagate = args.verbose
    tally = Tally()
    lenient: collections.Counter[str] = collections.Counter()
    paths = sorted(p for p in args.corpus.rglob("*") if p.suffix in (".xml", ".json"))
    started = time.perf_counter()
    for path in paths:
        compare_doc(path, tally, lenient)
    elapsed = time.perf_counter() - started
    documents = tally.total["documents"]
    print(
        f"corpus: {len(paths)} documents, feedparser finds entries in {documents}; "
        f"{elapsed:.1f} s for both parsers"
    )
    print(f"{'field':10s} {'agree':>7s} {'of':>6s} {'share':>7s}   excluding 'reference:' cases")
    for field in FIELDS:
        total, agree = tally.total[field], tally.agree[field]
        excused = sum(
            n for (f, c), n in tally.categories.items() if f == field and c.startswith("reference:")
        )
        share = agree / total if total else 1.0
        fair = (agree + excused) / total if total else 1.0
        print(f"{field:10s} {agree:7d} {total:6d} {share:7.1%}   {fair:7.1%}")
    print("\ndisagreements by category:")
    for (field, category), n in sorted(tally.categories.items(), key=lambda kv: (kv[0][0], -kv[1])):
        print(f"  {field:10s} {n:5d}  {category}")
        for example in tally.examples[(field, category)][: args.show]:
            print(f"      {example}")
    parsers = sum(lenient.values())
    print(
        "\nparser used (all documents): "
        + ", ".join(f"{name} {n}" for name, n in lenient.most_common())
        + f"; lenient path (feedparser) {lenient['feedparser'] / parsers:.1%} of all"
    )
    print(
        "why the lenient path: "
        + ", ".join(f"{why} {n}" for why, n in reasons.counts.most_common())
    )
    right, none, wrong, reference_right, examples = check_dates()
    print(
        f"\ndate strings of feedparser's date tests: {len(DATE_CASES)}; listener right {right}, "
        f"none {none}, wrong {wrong}; feedparser right {reference_right}"
    )
    for example in examples:
        print(f"    wrong: {example}")


if __name__ == "__main__":
    main()
