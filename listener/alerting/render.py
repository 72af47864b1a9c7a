"""Alert messages that explain themselves, rendered safely as plain text, Markdown or HTML.

Owns: the input shape of an alert message (``AlertMessage``, ``MentionLine``), the sparkline,
making untrusted text safe (``neutralise`` then ``escape``) and the title/body of every alert kind.
Pure: no I/O, no clock, no apprise; delivery decides which format a target gets.

Rules:
- Every interpolated string, trusted or not, passes ``neutralise`` (or its non-truncating core)
  and then ``escape`` for the target format. The layout is built as blocks of segments; the
  three writers emit markup only from their own constants, never from message data.
- ``neutralise`` gives one line: ANSI/OSC escape sequences, C0/C1 controls, DEL, format
  characters (bidi overrides/isolates/marks, zero-width, soft hyphen, tag characters) and lone
  surrogates are removed; every kind of whitespace (CR/LF, U+2028, NEL, invisible fillers)
  becomes one space; runs of combining marks are capped (no "Zalgo" text spilling over lines).
- Mass mentions are defused by rewriting the "@" as "(at)": "@everyone", "@here", "@channel"
  (also as a prefix: Discord pings "@everyonex"), "@all", "@room", "@stream", "@topic" (as whole
  words), with "@", fullwidth "＠" or small "﹫", also Zulip's "@**all**". Visible ASCII text
  survives every client; word joiners or fullwidth look-alikes do not (clients strip or fold
  them). Ordinary handles ("@brand") stay as they are: they are what the mention is about.
- "<" and ">" become "‹" and "›" in every format: no Slack/Discord/Mattermost control token
  (``<!here>``, ``<@U123>``, ``<#C1>``, ``<url|label>``) and no HTML tag can be formed, even
  where a target ignores our escaping.
- Links: only http/https URLs with a valid (IDNA) host become links; the host is rebuilt without
  user info, and path, query and fragment are percent-encoded except for RFC 3986 characters
  that are harmless in Markdown link targets, HTML attributes and chat text (so no ``( ) < > "
  ' @ [ ] \\ | `` or space remains). Any other URL (javascript:, data:, file:, scheme-relative,
  malformed) is left out entirely, not shown as text: it has no use in an alert and some
  clients linkify more than they should.
- Titles are plain text, one line, at most 120 characters, and carry only configured names and
  numbers.

Size: over 500 lines on purpose: the safety rules (neutralise, escape, links) and the three
writers change together; a writer apart from the rules is how markup slips through.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

FORMATS = ("text", "markdown", "html")
KINDS = ("fired", "escalated", "repeat", "resolved", "test", "summary")
TITLE_LIMIT = 120
SOURCE_DOWN = "source down"  # the detector of alerts about a source; ``brand`` is its name

_BLOCKS = "▁▂▃▄▅▆▇█"
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor movement, clear screen)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x1b\x9d]\][^\x07\x1b\x9c]{0,2048}(?:\x07|\x1b\\|\x9c)"  # OSC (titles, hyperlinks)
    r"|\x1b[P^_X][^\x1b\x9c]{0,2048}(?:\x1b\\|\x9c)"  # DCS, PM, APC, SOS strings
    r"|\x1b[@-Z\\-_]"  # other two-character escapes
)
# invisible letters and symbols that render as blank space
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_MAX_MARKS = 4  # combining marks kept after one base character
_MASS_MENTION = re.compile(
    r"[@＠﹫](?=[*_]*(?:everyone|here|channel|(?:all|room|stream|topic)(?!\w)))", re.IGNORECASE
)
_MD_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~=&")
_URL_SAFE = "-._~!$&*+,;=:/?%"  # RFC 3986 characters kept as they are in path/query/fragment
_URL_LIMIT = 2048
_HOST = re.compile(r"[a-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class MentionLine:
    """One top negative mention. ``title``, ``url`` and ``domain`` are untrusted."""

    title: str
    source: str  # source name from the configuration
    url: str | None
    domain: str | None
    reach: int | None = None  # followers/score when known


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """Everything one alert message says; rendering decides how."""

    kind: str  # "fired" | "escalated" | "repeat" | "resolved" | "test" | "summary"
    alert_id: int | None
    brand: str
    detector: str  # "storm" | "smoulder" | "source" ...
    severity: str  # "warning" | "critical"
    observed: int
    expected: float
    probability: float | None
    score: float
    window_start: datetime
    window_end: datetime
    first_seen: datetime  # when the episode began
    explanation: str  # one paragraph from the detector
    series: tuple[int, ...]  # negative mentions per bucket, oldest first
    series_label: str  # e.g. "last 24 h, hourly"
    top_mentions: tuple[MentionLine, ...] = ()
    top_domains: tuple[tuple[str, int], ...] = ()  # untrusted domain, count
    new_terms: tuple[str, ...] = ()  # untrusted words new in the window
    drilldown: str = ""  # CLI command to run, e.g. "listener alerts show 12"
    acked_by: str | None = None  # who acknowledged the alert (escalated and resolved notices)
    acked_at: datetime | None = None
    ack_note: str | None = None
    runbook: str = ""  # the team's defined process for this brand (and severity)
    runbook_url: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: a plain one-line ``title`` and a ``body`` in ``body_format``."""

    title: str
    body: str
    body_format: str


def sparkline(values: Sequence[int], width: int = 24) -> str:
    """Block characters for ``values``, summed into at most ``width`` cells.

    Zero is the lowest block; any non-zero count is at least the second, the largest the highest.
    """
    if width < 1:
        raise ValueError(f"sparkline width must be at least 1, not {width}")
    counts = [max(0, int(v)) for v in values]
    if len(counts) > width:
        n = len(counts)
        counts = [sum(counts[i * n // width : (i + 1) * n // width]) for i in range(width)]
    peak = max(counts, default=0)
    return "".join(_BLOCKS[_level(c, peak)] for c in counts)


def _level(count: int, peak: int) -> int:
    if count == 0:
        return 0
    if peak == 1:
        return len(_BLOCKS) - 1
    return 1 + (count - 1) * (len(_BLOCKS) - 2) // (peak - 1)


def neutralise(text: str, limit: int) -> str:
    """Untrusted text as one safe line of at most ``limit`` characters (cut with "…")."""
    if limit <= 0:
        return ""
    cap = limit * 8 + 256  # bounds the work on huge input; what is cut counts as truncated
    cut = len(text) > cap
    line = _clean(text[:cap]).strip()
    if len(line) > limit or cut:
        line = line[: limit - 1].rstrip() + "…"
    return line


def _clean(text: str) -> str:
    """The core of ``neutralise``: safe characters, one line, no mentions; no strip or cut."""
    text = _ANSI.sub("", text)
    out: list[str] = []
    marks = 0
    for char in text:
        category = unicodedata.category(char)
        if char.isspace() or category in ("Zs", "Zl", "Zp") or char in _BLANKS:
            if not out or out[-1] != " ":
                out.append(" ")
            marks = 0
        elif category in ("Cc", "Cf", "Cs"):
            continue
        elif category in ("Mn", "Me"):
            marks += 1
            if marks <= _MAX_MARKS:
                out.append(char)
        else:
            out.append(char)
            marks = 0
    line = _MASS_MENTION.sub("(at)", "".join(out))
    return line.replace("<", "‹").replace(">", "›")


def escape(text: str, fmt: str) -> str:
    """Escape neutralised text for ``fmt``: "text" as is, "markdown" with a backslash before
    every metacharacter (CommonMark and Telegram MarkdownV2 accept it before any ASCII
    punctuation), "html" with ``html.escape(quote=True)``."""
    if fmt == "text":
        return text
    if fmt == "markdown":
        return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)
    if fmt == "html":
        return html.escape(text, quote=True)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def web_url(url: str | None) -> str | None:
    """``url`` rebuilt as a safe http(s) link (see the module rules), or None."""
    return _web_url(url)


def _web_url(url: str | None) -> str | None:
    """The URL, rebuilt and percent-encoded, when it is http(s) with a valid host; else None."""
    if not url:
        return None
    cleaned = "".join(c for c in url if unicodedata.category(c) not in ("Cc", "Cf", "Cs")).strip()
    if len(cleaned) > _URL_LIMIT:
        return None
    try:
        parts = urlsplit(cleaned)
        host, port = parts.hostname, parts.port
        if parts.scheme.lower() not in ("http", "https") or not host:
            return None
        host = host.encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        return None
    if not _HOST.fullmatch(host):
        return None
    netloc = host if port is None else f"{host}:{port}"
    path, query, fragment = (quote(p, safe=_URL_SAFE) for p in parts[2:5])
    rebuilt = urlunsplit((parts.scheme.lower(), netloc, path, query, fragment))
    return rebuilt if len(rebuilt) <= _URL_LIMIT else None


# --- layout: blocks of segments, written by one writer per format ----------------------------


@dataclass(frozen=True, slots=True)
class _Text:
    """Message data: neutralised (with ``limit``) and escaped."""

    text: str
    limit: int = 300


@dataclass(frozen=True, slots=True)
class _Strong:
    text: str


@dataclass(frozen=True, slots=True)
class _Code:
    text: str


@dataclass(frozen=True, slots=True)
class _Link:
    """A link on ``label`` (Markdown, HTML); only the label in text, see ``_Bare``."""

    label: _Text
    url: str | None  # as given; only a _web_url() becomes a link


@dataclass(frozen=True, slots=True)
class _Bare:
    """The URL spelled out, in the text format only (after the line's other words)."""

    url: str | None


# a plain str segment is this module's own wording: still cleaned and escaped, never cut
_Segment = str | _Text | _Strong | _Code | _Link | _Bare


@dataclass(frozen=True, slots=True)
class _Para:
    parts: tuple[_Segment, ...]
    heading: bool = False


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[tuple[_Segment, ...], ...]


@dataclass(frozen=True, slots=True)
class _Chart:
    """A small bar chart of counts: a sparkline in text and Markdown; in HTML a table of bars
    drawn with inline styles only, which every mail client shows (no image, no SVG, no CSS
    class, nothing fetched)."""

    values: tuple[int, ...]
    label: str


_Block = _Para | _List | _Chart


def _inline(segment: _Segment, fmt: str) -> str:
    if isinstance(segment, str):
        return escape(_clean(segment), fmt)
    if isinstance(segment, _Text):
        return escape(neutralise(segment.text, segment.limit), fmt)
    if isinstance(segment, _Strong):
        inner = escape(_clean(segment.text), fmt)
        if not inner or fmt == "text":
            return inner
        return f"**{inner}**" if fmt == "markdown" else f"<strong>{inner}</strong>"
    if isinstance(segment, _Code):
        inner = escape(_clean(segment.text), fmt)
        if fmt == "html":
            return f"<code>{inner}</code>"
        if fmt == "markdown" and inner and set(inner) <= set(_BLOCKS):
            return f"`{inner}`"
        return inner
    url = _web_url(segment.url)
    if isinstance(segment, _Bare):
        return f" {neutralise(url, _URL_LIMIT)}" if url is not None and fmt == "text" else ""
    label = _inline(segment.label, fmt)
    if url is None or fmt == "text":
        return label
    if fmt == "html":
        href = html.escape(url, quote=True)
        return f'<a href="{href}" rel="noopener noreferrer">{label or href}</a>'
    return f"[{label or escape(url, fmt)}]({url})"


def _line(parts: tuple[_Segment, ...], fmt: str) -> str:
    return "".join(_inline(part, fmt) for part in parts)


def _write(blocks: list[_Block], fmt: str, *, long: bool) -> str:
    if fmt == "html":
        return "<div>\n" + "\n".join(_html_block(block) for block in blocks) + "\n</div>"
    gap = "\n\n" if fmt == "markdown" or long else "\n"
    out = ""
    for i, block in enumerate(blocks):
        if isinstance(block, _Chart):
            text = _line((_Code(sparkline(block.values)), " ", _Text(block.label, 60)), fmt)
        elif isinstance(block, _List):
            bullet = "- " if fmt == "markdown" else "• "
            text = "\n".join(bullet + _line(item, fmt) for item in block.items)
        elif block.heading:
            text = _inline(_Strong(_line(block.parts, "text")), fmt)
        else:
            text = _line(block.parts, fmt)
        if i:  # in plain text a list stays with its heading
            previous = blocks[i - 1]
            under_heading = isinstance(previous, _Para) and previous.heading
            out += "\n" if fmt == "text" and under_heading else gap
        out += text
    return out


_CHART_HEIGHT = 40  # pixels of the tallest bar


def _html_chart(chart: _Chart) -> str:
    counts = [max(0, int(v)) for v in chart.values[-48:]]
    peak = max(counts, default=0)
    cells = []
    for count in counts:
        height = max(1, round(_CHART_HEIGHT * count / peak)) if peak else 1
        colour = "#c0392b" if count else "#dddddd"
        cells.append(
            f'<td style="vertical-align:bottom;padding:0 1px;height:{_CHART_HEIGHT}px" '
            f'title="{count}"><div style="width:8px;height:{height}px;'
            f'background-color:{colour};font-size:0;line-height:0">&nbsp;</div></td>'
        )
    label = escape(neutralise(chart.label, 60), "html")
    return (
        f'<table role="img" aria-label="{label}, peak {peak}" cellpadding="0" cellspacing="0" '
        f'style="border-collapse:collapse"><tr>{"".join(cells)}</tr></table>'
        f'<p style="font-size:12px;color:#666666;margin-top:2px">{label} (peak {peak})</p>'
    )


def _html_block(block: _Block) -> str:
    if isinstance(block, _Chart):
        return _html_chart(block)
    if isinstance(block, _List):
        items = "".join(f"<li>{_line(item, 'html')}</li>\n" for item in block.items)
        return f"<ul>\n{items}</ul>"
    if block.heading:
        return f"<p>{_inline(_Strong(_line(block.parts, 'text')), 'html')}</p>"
    return f"<p>{_line(block.parts, 'html')}</p>"


# --- content --------------------------------------------------------------------------------


def render(message: AlertMessage, fmt: str, *, long: bool) -> Rendered:
    """Title and body of ``message`` for ``fmt``: short for chat, ``long`` (everything) for
    email."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if message.kind not in KINDS:
        raise ValueError(f"unknown alert kind {message.kind!r}; expected one of {', '.join(KINDS)}")
    blocks = _test_blocks(message) if message.kind == "test" else _blocks(message, long=long)
    return Rendered(title=title(message), body=_write(blocks, fmt, long=long), body_format=fmt)


def title(message: AlertMessage) -> str:
    """One plain line, at most 120 characters, e.g. ``[CRITICAL] Storm: Kryptonite — 42
    negative mentions in 15 min (20x expected)``."""
    if message.kind == "test":
        return "listener test message"
    if message.detector == SOURCE_DOWN:  # about a source, not a brand: no mention counts
        tag = "RESOLVED" if message.kind == "resolved" else neutralise(message.severity, 12).upper()
        state = "works again" if message.kind == "resolved" else "failing"
        return neutralise(f"[{tag}] Source down: {message.brand} — {state}", TITLE_LIMIT)
    detector = neutralise(message.detector, 20).capitalize()
    what = f"{message.observed} negative mentions in {_duration(_span(message))}"
    if message.kind == "resolved":
        lasted = _duration(message.window_end - message.first_seen)
        before, after = f"[RESOLVED] {detector}: ", f" — back to normal after {lasted} ({what})"
    else:
        tag = "SUMMARY" if message.kind == "summary" else neutralise(message.severity, 12).upper()
        label = {"escalated": " escalated", "repeat": " still firing"}.get(message.kind, "")
        factor = f"{_factor(message)} expected" if message.expected > 0 else "none expected"
        before, after = f"[{tag}] {detector}{label}: ", f" — {what} ({factor})"
    # the brand gets the room that is left, so the numbers are never cut off
    brand = neutralise(message.brand, max(12, TITLE_LIMIT - len(before) - len(after)))
    return neutralise(before + brand + after, TITLE_LIMIT)


def _headline(message: AlertMessage) -> tuple[_Segment, ...]:
    detector = neutralise(message.detector, 20)
    severity = neutralise(message.severity, 20).upper()
    brand = _Text(message.brand, 80)
    number = "" if message.alert_id is None else f" (alert #{message.alert_id})"
    if message.kind == "resolved":
        return (f"{detector.capitalize()} alert for ", brand, f" resolved{number}")
    if message.kind == "escalated":
        return (f"{detector.capitalize()} alert for ", brand, f" escalated to {severity}{number}")
    if message.kind == "summary":
        return ("Summary for ", brand, f" ({detector}){number}")
    still = " still firing" if message.kind == "repeat" else ""
    return (f"{severity} {detector} alert for ", brand, f"{still}{number}")


def _source_blocks(message: AlertMessage) -> list[_Block]:
    blocks: list[_Block] = [
        _Para(_headline(message), heading=True),
        _Para((_Text(message.explanation, 2000),)),
        _Para((f"Down since {_time(message.first_seen)} UTC",)),
    ]
    if message.drilldown:
        blocks.append(_Para(("Details: ", _Text(message.drilldown, 200))))
    return blocks


def _blocks(message: AlertMessage, *, long: bool) -> list[_Block]:
    if message.detector == SOURCE_DOWN:
        return _source_blocks(message)
    numbers = (
        f"{message.observed} negative mentions in {_duration(_span(message))}, "
        f"expected {message.expected:.1f}"
    )
    if message.expected > 0:
        numbers += f" ({_factor(message)})"
    if message.probability is not None:
        numbers += f"; probability under the baseline {message.probability:.1g}"
    else:
        numbers += f"; score {message.score:.1f}"
    when = f"Window: {_window(message)}; first seen {_time(message.first_seen)} UTC"
    if message.kind == "resolved":
        when += f"; lasted {_duration(message.window_end - message.first_seen)}"
    blocks: list[_Block] = [_Para(_headline(message), heading=True), _Para((numbers,))]
    if long and message.explanation:
        blocks.append(_Para(("Explanation: ", _Text(message.explanation, 2000))))
    blocks.append(_Para((when,)))
    if message.series:
        blocks.append(_Chart(tuple(message.series), message.series_label))
    mentions = message.top_mentions[: 10 if long else 3]
    if mentions:
        blocks.append(_Para(("Top mentions",), heading=True))
        blocks.append(_List(tuple(_mention(m, long=long) for m in mentions)))
    if long and message.top_domains:
        blocks.append(_Para(("Top domains",), heading=True))
        items = tuple((_Text(d, 100), f" ({count})") for d, count in message.top_domains[:10])
        blocks.append(_List(items))
    if long and message.new_terms:
        terms: list[_Segment] = ["New terms: "]
        for i, term in enumerate(message.new_terms[:20]):
            terms.extend([", "] if i else [])
            terms.append(_Text(term, 40))
        blocks.append(_Para(tuple(terms)))
    blocks.extend(_response_blocks(message))
    if message.drilldown:
        blocks.append(_Para(("Details: ", _Text(message.drilldown, 200))))
    return blocks


def _response_blocks(message: AlertMessage) -> list[_Block]:
    """Who acknowledged it, and the runbook: what the team does next."""
    blocks: list[_Block] = []
    if message.acked_at is not None or message.acked_by:
        parts: list[_Segment] = ["Acknowledged"]
        if message.acked_by:
            parts += [" by ", _Text(message.acked_by, 100)]
        if message.acked_at is not None:
            parts.append(f" at {_time(message.acked_at)} UTC")
        if message.ack_note:
            parts += [": ", _Text(message.ack_note, 300)]
        blocks.append(_Para(tuple(parts)))
    if message.runbook or message.runbook_url:
        parts = ["Runbook: "]
        if message.runbook:
            parts.append(_Text(message.runbook, 1000))
        if message.runbook_url:  # the link's label is the URL itself, spelled out in text
            link = _Link(_Text(message.runbook_url, 300), message.runbook_url)
            parts += [" — " if message.runbook else "", link]
        blocks.append(_Para(tuple(parts)))
    return blocks


def _mention(mention: MentionLine, *, long: bool) -> tuple[_Segment, ...]:
    about: list[_Segment] = [" (", _Text(mention.source, 60)]
    if long and mention.reach is not None:
        about.append(f", reach {mention.reach:,}")
    about.append(")")
    return (_Link(_Text(mention.title, 100), mention.url), *about, _Bare(mention.url))


def _test_blocks(message: AlertMessage) -> list[_Block]:
    blocks: list[_Block] = [
        _Para(("listener test message",), heading=True),
        _Para(("This is a test message from listener for ", _Text(message.brand, 80), ".")),
        _Para(("If you can read this, alerts reach this channel.",)),
    ]
    if message.drilldown:
        blocks.append(_Para(("Details: ", _Text(message.drilldown, 200))))
    return blocks


def _factor(message: AlertMessage) -> str:
    """Observed over expected, e.g. "20x" or "1.4x"; only for ``expected > 0``."""
    factor = message.observed / message.expected
    return f"{factor:.0f}x" if factor >= 10 else f"{factor:.1f}x"


def _span(message: AlertMessage) -> timedelta:
    return message.window_end - message.window_start


def _duration(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes / 1440:.1f} days"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(moment: datetime) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M}"


def _window(message: AlertMessage) -> str:
    start, end = _utc(message.window_start), _utc(message.window_end)
    until = f"{end:%H:%M}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}–{until} UTC"
