"""Alert rendering: hostile web text must not survive in a dangerous form in any format, and the
benign content (brand, numbers, a normal title) must still be there."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from listener.alerting.render import (
    FORMATS,
    AlertMessage,
    MentionLine,
    escape,
    neutralise,
    render,
    sparkline,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MASS = re.compile(r"[@＠﹫][*_\\]*(everyone|here|channel|all\b|room\b)", re.IGNORECASE)
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
ZERO_WIDTH = set("\u200b\u200c\u200d\u2060\ufeff")
MD_META = set("\\`*_{}[]()#+-.!|<>~")


def message(**changes: object) -> AlertMessage:
    base = AlertMessage(
        kind="fired",
        alert_id=12,
        brand="Kryptonite",
        detector="storm",
        severity="critical",
        observed=42,
        expected=2.1,
        probability=3e-9,
        score=8.5,
        window_start=T0,
        window_end=T0 + timedelta(minutes=15),
        first_seen=T0 - timedelta(minutes=30),
        explanation="42 negative mentions in 15 min, expected 2.1 (20.0x); 9 stories, 30 voices",
        series=(0, 1, 0, 2, 1, 0, 3, 42),
        series_label="last 24 h, hourly",
        top_mentions=(
            MentionLine(
                title="Kryptonite recalls batteries",
                source="google_news",
                url="https://news.example/recall",
                domain="news.example",
                reach=12345,
            ),
        ),
        top_domains=(("news.example", 9),),
        new_terms=("recall", "fire"),
        drilldown="listener alerts show 12",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def with_title(title: str, url: str | None = "https://news.example/a") -> AlertMessage:
    return message(
        top_mentions=(MentionLine(title=title, source="reddit", url=url, domain="x.example"),)
    )


def bodies(msg: AlertMessage) -> list[tuple[str, bool, str]]:
    """(fmt, long, body) for every format and length."""
    return [(fmt, long, render(msg, fmt, long=long).body) for fmt in FORMATS for long in (0, 1)]


class Tags(HTMLParser):
    """Records every tag and attribute; fails on unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"comment in html body: {data!r}")

    def handle_decl(self, decl: str) -> None:
        raise AssertionError(f"declaration in html body: {decl!r}")

    def unknown_decl(self, data: str) -> None:
        raise AssertionError(f"unknown declaration in html body: {data!r}")


def parse_html(body: str) -> Tags:
    parser = Tags()
    parser.feed(body)
    parser.close()
    assert parser.stack == [], f"unclosed tags {parser.stack}"
    allowed = {"div", "p", "strong", "ul", "li", "a", "code", "table", "tr", "td"}
    assert set(parser.tags) <= allowed, parser.tags
    for name, value in parser.attrs:
        # the chart's inline styles and labels are the renderer's own (numbers and the label)
        chart = {"style", "title", "role", "aria-label", "cellpadding", "cellspacing"}
        assert name in {"href", "rel"} | chart, name
        if name == "href":
            assert value is not None and re.match(r"https?://[a-z0-9.-]+(:\d+)?/", value), value
        if name == "style":
            assert value is not None and "url(" not in value and "expression" not in value
    assert "<script" not in body.lower()
    return parser


def markdown_links(body: str) -> list[str]:
    """Targets of every live Markdown link/image ``[..](target)`` (ignores escaped brackets)."""
    return re.findall(r"(?<!\\)\]\((?P<url>[^)]*)\)", body)


def unescaped_metachars(text: str) -> list[str]:
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in MD_META:
            found.append(text[i])
        i += 1
    return found


# --- hostile cases --------------------------------------------------------------------------

MASS_MENTIONS = [
    "@everyone",
    "@here",
    "@channel",
    "@all",
    "@EveryOne look",
    "＠everyone",
    "﹫here",
    "@\u200beveryone",
    "@\u2060here",
    "@\u200deveryone",
    "@**all**",
    "@_**everyone**",
    "@room",
    "ping @everyone!!",
    "@everyonex",
    "@here.",
]


@pytest.mark.parametrize("hostile", MASS_MENTIONS)
def test_mass_mentions_are_defused_in_every_format(hostile: str) -> None:
    assert MASS.search(neutralise(hostile, 100)) is None
    assert "(at)" in neutralise(hostile, 100)
    for fmt, long, body in bodies(with_title(hostile)):
        assert MASS.search(body) is None, (fmt, long, body)
    for fmt in FORMATS:
        rendered = render(message(brand=hostile), fmt, long=False)
        assert MASS.search(rendered.title) is None
        assert MASS.search(rendered.body) is None


@pytest.mark.parametrize("kept", ["mail me at a@b.example", "@allbirds", "@roomba", "@kryptonite"])
def test_ordinary_handles_and_addresses_are_kept(kept: str) -> None:
    assert neutralise(kept, 100) == kept


SLACK_TOKENS = [
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<@U123>",
    "<@!123456>",
    "<#C123>",
    "<@&456>",
    "<!subteam^S123|ops>",
    "<https://evil.example|Official statement>",
]


@pytest.mark.parametrize("token", SLACK_TOKENS)
def test_chat_special_tokens_are_harmless(token: str) -> None:
    assert "<" not in neutralise(token, 100)
    assert ">" not in neutralise(token, 100)
    for fmt, long, body in bodies(with_title(f"boss {token} says")):
        for bad in ("<!", "<@", "<#", "<http"):
            assert bad not in body, (fmt, long, bad, body)
        assert "says" in body


SMUGGLED_MARKDOWN = [
    "[Click here](https://evil.example/phish)",
    "![pixel](https://evil.example/p.png)",
    "<https://evil.example>",
    "**urgent** _now_ ~~gone~~",
    "# Heading\n## Sub",
    "`rm -rf` ```code```",
    "[a]: https://evil.example/ref\n[a][a]",
    "> quote | table | --- |",
    "\\[escaped\\](https://evil.example/x)",
]


@pytest.mark.parametrize("hostile", SMUGGLED_MARKDOWN)
def test_markdown_cannot_be_smuggled(hostile: str) -> None:
    escaped = escape(neutralise(hostile, 200), "markdown")
    assert unescaped_metachars(escaped) == []
    for long in (False, True):
        body = render(with_title(hostile), "markdown", long=long).body
        assert markdown_links(body) == ["https://news.example/a"], body
        assert "\n#" not in body and "\n>" not in body
        body = render(with_title(hostile, url=None), "markdown", long=long).body
        assert markdown_links(body) == []


JS_URLS = [
    "javascript:alert(1)",
    " JavaScript:alert(document.cookie)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/no-scheme",
    "https://",
    "file:///etc/passwd",
    "https://exa mple.example/",
    "https://" + "a" * 70 + ".example/",
]


@pytest.mark.parametrize("url", JS_URLS)
def test_non_web_urls_never_become_links(url: str) -> None:
    msg = with_title("Kryptonite recalls batteries", url=url)
    for long in (False, True):
        md = render(msg, "markdown", long=long).body
        assert markdown_links(md) == []
        assert "javascript" not in md.lower()
        html_body = render(msg, "html", long=long).body
        tags = parse_html(html_body)
        assert "a" not in tags.tags
        assert "javascript" not in html_body.lower()
        text = render(msg, "text", long=long).body
        assert "javascript" not in text.lower()
        for body in (md, html_body, text):
            assert "Kryptonite recalls batteries" in body.replace("\\", "")


HTML_ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "</li></ul><iframe src=https://evil.example></iframe>",
    "<!-- comment --><a href='javascript:alert(1)'>x</a>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
]


@pytest.mark.parametrize("hostile", HTML_ATTACKS)
def test_html_injection_is_escaped(hostile: str) -> None:
    msg = message(
        brand=hostile,
        explanation=hostile,
        series_label=hostile,
        drilldown=hostile,
        top_mentions=(
            MentionLine(
                title=hostile,
                source=hostile,
                url='https://ok.example/a"onmouseover="alert(1)\'x<y>',
                domain=hostile,
                reach=5,
            ),
        ),
        top_domains=((hostile, 3),),
        new_terms=(hostile,),
    )
    for long in (False, True):
        body = render(msg, "html", long=long).body
        tags = parse_html(body)
        assert tags.tags.count("a") == 1
        hrefs = [value for name, value in tags.attrs if name == "href"]
        assert hrefs == ["https://ok.example/a%22onmouseover=%22alert%281%29%27x%3Cy%3E"]
        assert "<img" not in body and "<svg" not in body and "<iframe" not in body


def test_html_body_of_normal_message_is_well_formed() -> None:
    for long in (False, True):
        body = render(message(), "html", long=long).body
        tags = parse_html(body)
        text = "".join(tags.text)
        assert "Kryptonite" in text
        assert "Kryptonite recalls batteries" in text
        hrefs = [value for name, value in tags.attrs if name == "href"]
        assert hrefs == ["https://news.example/recall"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("brand", "Kryptonite\r\nBcc: victim@example.com"),
        ("brand", "Kryptonite\nX-Injected: 1"),
        ("detector", "storm\r\nSubject: fake"),
        ("severity", "critical\n\n<html>"),
        ("brand", "Kryptonite\u2028line\u2029para\x85nel\x0bvt\x0cff"),
    ],
)
def test_title_is_one_safe_line(field: str, value: str) -> None:
    for kind in ("fired", "escalated", "repeat", "resolved", "test", "summary"):
        for fmt in FORMATS:
            title = render(message(kind=kind, **{field: value}), fmt, long=True).title
            assert len(title) <= 120
            assert title == title.strip()
            assert not any(unicodedata.category(c)[0] in "CZ" and c != " " for c in title), title
            assert "\n" not in title and "\r" not in title


def test_ansi_and_bidi_are_removed() -> None:
    hostile = (
        "\x1b[31mRED\x1b[0m \x1b]8;;https://evil.example\x07link\x1b]8;;\x07 "
        "invoice\u202egnp.exe \u2066iso\u2069\u200e\u200f\u061c \x9b2J done\x7f\x00"
    )
    clean = neutralise(hostile, 500)
    assert clean == "RED link invoicegnp.exe iso done"
    for fmt, long, body in bodies(with_title(hostile)):
        assert "\x1b" not in body and "\x9b" not in body and "\x7f" not in body, (fmt, long)
        assert not BIDI & set(body)
        assert not ZERO_WIDTH & set(body)
        assert "[31m" not in body and "evil.example" not in body
        assert "RED" in body


def test_zero_width_surrogates_and_invisible_fillers_are_dropped() -> None:
    assert neutralise("a\u200bb\u200cc\u200dd\ufeffe\u00adf", 50) == "abcdef"
    assert neutralise("bad\ud800surrogate", 50) == "badsurrogate"
    assert neutralise("\u3164\u2800\u115f", 50) == ""
    assert neutralise("tag\U000e0041\U000e0042s", 50) == "tags"


def test_whitespace_is_collapsed() -> None:
    assert neutralise("  a\n\n b\u2028c\td\r\n\u00a0e\u3000f  ", 50) == "a b c d e f"


def test_combining_mark_floods_are_capped() -> None:
    zalgo = "Z" + "\u0301" * 50 + "a"
    assert neutralise(zalgo, 100) == "Z" + "\u0301" * 4 + "a"
    assert neutralise("Tiếng Việt", 100) == "Tiếng Việt"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("x" * 50, 10, "x" * 9 + "…"),
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("word " * 10, 12, "word word w…"),
        ("abc", 1, "…"),
        ("abc", 0, ""),
        ("a" + "\u200b" * 100_000 + "b", 10, "a…"),
    ],
)
def test_truncation(text: str, limit: int, expected: str) -> None:
    assert neutralise(text, limit) == expected
    assert len(neutralise(text, limit)) <= max(limit, 0)


def test_very_long_titles_are_truncated_in_bodies() -> None:
    title = "Kryptonite " + "A" * 500
    for fmt, long, body in bodies(with_title(title)):
        assert "A" * 101 not in body, (fmt, long)
        assert "Kryptonite " + "A" * 80 in body
        assert "…" in body
    for kind in ("fired", "escalated", "repeat", "resolved", "summary"):
        title_only = render(message(kind=kind, brand="B" * 500), "text", long=False).title
        assert len(title_only) <= 120
        assert "BBB…" in title_only
        assert title_only.endswith(("(20x expected)", "in 15 min)")), title_only


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize("char", sorted(MD_META))
def test_markdown_escapes_every_metachar(char: str) -> None:
    assert escape(f"a{char}b", "markdown") == f"a\\{char}b"


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("html", "<b>\"x\" & 'y'</b>", "&lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt;"),
        ("text", "<b>*x*</b>", "<b>*x*</b>"),
        ("markdown", "Kryptonite 2.0", "Kryptonite 2\\.0"),
        ("markdown", "plain words", "plain words"),
    ],
)
def test_escape(fmt: str, text: str, expected: str) -> None:
    assert escape(text, fmt) == expected


def test_unknown_format_or_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        escape("x", "slack")
    with pytest.raises(ValueError, match="format"):
        render(message(), "rtf", long=False)
    with pytest.raises(ValueError, match="kind"):
        render(message(kind="exploded"), "text", long=False)


def test_markdown_link_urls_are_percent_encoded() -> None:
    msg = with_title("Recall", url="https://ex.example/a (b)<c>[d]@e\\f`g|h")
    body = render(msg, "markdown", long=False).body
    assert markdown_links(body) == ["https://ex.example/a%20%28b%29%3Cc%3E%5Bd%5D%40e%5Cf%60g%7Ch"]
    text = render(msg, "text", long=False).body
    assert "https://ex.example/a%20%28b%29%3Cc%3E%5Bd%5D%40e%5Cf%60g%7Ch" in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://News.Example:8443/p?q=1&r=2#frag", "https://news.example:8443/p?q=1&r=2#frag"),
        ("https://user:pw@news.example/x", "https://news.example/x"),
        ("https://bücher.example/ä", "https://xn--bcher-kva.example/%C3%A4"),
        ("https://mastodon.example/@everyone/1", "https://mastodon.example/%40everyone/1"),
        ("https://news.example/already%20encoded", "https://news.example/already%20encoded"),
    ],
)
def test_web_urls_are_normalised(url: str, expected: str) -> None:
    msg = with_title("Recall", url=url)
    assert markdown_links(render(msg, "markdown", long=False).body) == [expected]
    tags = parse_html(render(msg, "html", long=False).body)
    assert [v for n, v in tags.attrs if n == "href"] == [expected]
    assert expected in render(msg, "text", long=False).body


# --- sparkline ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "width", "expected"),
    [
        ([], 24, ""),
        ([0, 0, 0], 24, "▁▁▁"),
        ([0] * 100, 24, "▁" * 24),
        ([0, 1, 7], 24, "▁▂█"),
        ([5, 5], 24, "██"),
        ([0, 1, 2, 3, 4, 5, 6], 24, "▁▂▃▄▅▆█"),
        ([1, 1, 1, 1, 9, 9], 3, "▂▂█"),
    ],
)
def test_sparkline(values: list[int], width: int, expected: str) -> None:
    assert sparkline(values, width) == expected


def test_sparkline_resamples_by_summing() -> None:
    values = [1] * 288
    values[200:203] = [30, 40, 30]
    line = sparkline(values, 24)
    assert len(line) == 24
    assert line.index("█") == 200 // 12
    assert line.count("█") == 1
    assert set(line) - {"█"} == {"▂"}
    rising = sparkline(list(range(288)), 24)
    assert list(rising) == sorted(rising)
    assert len(sparkline(list(range(30)), 24)) <= 24
    assert sparkline([0] * 287 + [1], 24)[-1] != "▁"


def test_sparkline_needs_a_width() -> None:
    with pytest.raises(ValueError, match="width"):
        sparkline([1, 2], 0)


# --- benign content -------------------------------------------------------------------------


def test_titles() -> None:
    assert (
        render(message(), "text", long=False).title
        == "[CRITICAL] Storm: Kryptonite — 42 negative mentions in 15 min (20x expected)"
    )
    assert render(message(kind="resolved"), "html", long=True).title.startswith("[RESOLVED] ")
    assert render(message(kind="test"), "markdown", long=False).title == "listener test message"
    escalated = render(message(kind="escalated"), "text", long=False).title
    assert escalated.startswith("[CRITICAL] Storm escalated: Kryptonite")
    warning = render(message(severity="warning", expected=8.0), "text", long=False).title
    assert warning == "[WARNING] Storm: Kryptonite — 42 negative mentions in 15 min (5.2x expected)"
    nothing = render(message(expected=0.0), "text", long=False).title
    assert nothing.endswith("(none expected)")
    for kind in ("repeat", "summary"):
        assert "Kryptonite" in render(message(kind=kind), "text", long=False).title


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("long", [False, True])
def test_benign_content_appears(fmt: str, long: bool) -> None:
    rendered = render(message(), fmt, long=long)
    body = rendered.body.replace("\\", "")  # markdown escapes
    assert rendered.body_format == fmt
    for expected in (
        "Kryptonite",
        "42 negative mentions",
        "15 min",
        "2.1",
        "20x",
        "3e-09",
        "2024-05-01 12:00–12:15 UTC",
        "first seen 2024-05-01 11:30 UTC",
        sparkline(message().series) if fmt != "html" else 'role="img"',
        "last 24 h, hourly",
        "Kryptonite recalls batteries",
        "google_news",
        "https://news.example/recall",
        "listener alerts show 12",
    ):
        assert expected in body, (expected, body)
    if long:
        for expected in ("9 stories, 30 voices", "12,345", "news.example (9)", "recall, fire"):
            assert expected in body, (expected, body)


def test_short_body_shows_three_mentions_long_shows_ten() -> None:
    mentions = tuple(
        MentionLine(title=f"Story number {i:02d}", source="feed", url=None, domain=None, reach=i)
        for i in range(12)
    )
    msg = message(top_mentions=mentions)
    for fmt in FORMATS:
        short = render(msg, fmt, long=False).body
        assert "Story number 02" in short and "Story number 03" not in short
        assert "9 stories" not in short.replace("\\", "")
        long = render(msg, fmt, long=True).body
        assert "Story number 09" in long and "Story number 10" not in long


def test_resolved_and_test_bodies() -> None:
    resolved = render(message(kind="resolved", observed=3), "text", long=False).body
    assert "resolved" in resolved
    assert "lasted 45 min" in resolved
    test = render(message(kind="test"), "markdown", long=False)
    assert "test message" in test.body
    assert "Kryptonite" in test.body
    assert "listener alerts show 12" in test.body
    assert "Details" not in render(message(kind="test", drilldown=""), "text", long=False).body


def test_naive_and_non_utc_datetimes_are_shown_in_utc() -> None:
    cest = datetime(2024, 5, 1, 14, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    msg = message(window_start=cest, window_end=cest + timedelta(minutes=15))
    assert "2024-05-01 14:00–14:15 UTC" in render(msg, "text", long=False).body
    naive = message(window_start=datetime(2024, 5, 1, 9), window_end=datetime(2024, 5, 2, 9))
    assert "2024-05-01 09:00–2024-05-02 09:00 UTC" in render(naive, "text", long=False).body


def test_the_long_text_body_neutralises_markup_and_mentions() -> None:
    msg = with_title("<b>Kryptonite</b> @everyone")
    assert "‹b›Kryptonite‹/b› (at)everyone" in render(msg, "text", long=True).body


@pytest.mark.parametrize("fmt", FORMATS)
def test_bodies_encode_to_utf8(fmt: str) -> None:
    msg = with_title("bad\ud800surrogate \udfff")
    for long in (False, True):
        render(msg, fmt, long=long).body.encode("utf-8")
        render(msg, fmt, long=long).title.encode("utf-8")


def test_sparse_messages_and_other_detectors() -> None:
    msg = message(
        detector="smoulder",
        probability=None,
        score=7.25,
        window_start=T0 - timedelta(days=3),
        first_seen=T0 - timedelta(days=3, hours=2),
        series=(),
        top_mentions=(),
        top_domains=(),
        new_terms=(),
        drilldown="",
        explanation="",
    )
    for fmt in FORMATS:
        for long in (False, True):
            rendered = render(msg, fmt, long=long)
            body = rendered.body.replace("\\", "")
            assert "score 7.2" in body
            assert "Top mentions" not in body and "Details" not in body
            assert "▁" not in body and "Explanation" not in body
        assert "in 3.0 days" in rendered.title
    assert "lasted 3.1 days" in render(replace(msg, kind="resolved"), "text", long=True).body


@pytest.mark.parametrize("path", ["a" * 3000, "ä" * 600])
def test_overlong_urls_are_left_out(path: str) -> None:
    msg = with_title("Recall", url="https://news.example/" + path)
    assert markdown_links(render(msg, "markdown", long=False).body) == []
    assert "news.example/" not in render(msg, "text", long=False).body


def test_html_email_chart_draws_bars_to_scale() -> None:
    body = render(message(series=(0, 5, 10, 2)), "html", long=True).body
    heights = [int(h) for h in re.findall(r"width:8px;height:(\d+)px", body)]
    assert heights == [1, 20, 40, 8]  # zero still shows as a 1px grey stub
    assert body.count("#c0392b") == 3 and "peak 10" in body
    parse_html(body)
