"""The shareable report: one self-contained HTML file about a brand over a time window, or about
one alert, for the people who have to decide and explain what to do.

Owns ``Report`` (a plain value: everything the page says) and ``render_report`` (the page). Pure:
no I/O, no clock, no database; the CLI gathers the data. Rules:

- Self-contained: charts are inline SVG drawn by pygal (pure Python, no browser or server), with
  pygal's tooltip script switched off; CSS is inline; no image, font, script or stylesheet is
  fetched, so the file works offline and as an email attachment.
- Everything from the web (titles, authors, domains, source names, terms) is data: HTML-escaped,
  stripped of control and bidi characters, cut to a length; links are only ever http(s) URLs
  rebuilt by the alert renderer's URL check.
- Times are shown in UTC, as everywhere else in listener.

Size: a little over 400 lines on purpose: the page's sections share one set of escaping and
link rules, and reading them in one file is how they stay applied everywhere.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from listener.alerting.render import neutralise, web_url

__all__ = [
    "AlertSpan",
    "AuthorLine",
    "Bucket",
    "Event",
    "Report",
    "StoryLine",
    "render_report",
]


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    mentions: int
    negative: int


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """One alert: when it fired and (if it did) resolved, for the charts and the timeline."""

    alert_id: int
    detector: str
    severity: str
    fired_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None = None
    acked_by: str | None = None
    first_negative_at: datetime | None = None  # the episode's first negative mention
    escalated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoryLine:
    title: str
    url: str | None
    copies: int
    sources: tuple[str, ...]
    first_seen: datetime
    negative: int


@dataclass(frozen=True, slots=True)
class AuthorLine:
    author: str
    reach: int | None
    mentions: int
    negative: int


@dataclass(frozen=True, slots=True)
class Event:
    """One step of the response timeline."""

    at: datetime
    what: str


@dataclass(frozen=True, slots=True)
class Report:
    brand: str
    since: datetime
    until: datetime
    generated_at: datetime
    bucket: timedelta
    buckets: tuple[Bucket, ...]
    alerts: tuple[AlertSpan, ...] = ()
    stories: tuple[StoryLine, ...] = ()
    sources: tuple[tuple[str, int], ...] = ()
    domains: tuple[tuple[str, int], ...] = ()
    authors: tuple[AuthorLine, ...] = ()
    new_terms: tuple[str, ...] = ()
    focus: int | None = None  # the alert this report is about, if any
    runbook: str = ""
    runbook_url: str | None = None
    notes: tuple[str, ...] = field(default=())


def _t(text: object, limit: int = 300) -> str:
    """Untrusted text made safe for the page."""
    return html.escape(neutralise(str(text), limit), quote=True)


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _span(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "—"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 72 else f"{hours / 24:.1f} d"


def _link(label: str, url: str | None, limit: int = 140) -> str:
    safe = web_url(url) if url else None
    text = _t(label or (url or ""), limit)
    if safe is None:
        return text
    return f'<a href="{html.escape(safe, quote=True)}" rel="noopener noreferrer">{text}</a>'


# --- charts ------------------------------------------------------------------------------------


def _pygal() -> Any:
    """pygal, imported on first use. Its import appends a legacy ``sys.meta_path`` finder (for
    map plugins, which listener does not use) that has no ``find_spec``: Python 3.11 warns on
    every import it is asked about and 3.12 ignores it. It is taken out again, so the rest of
    the process imports as if pygal had not been loaded."""
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]
    return pygal


def _style(colors: tuple[str, ...] = ("#c0392b", "#95a5a6")) -> object:
    return _pygal().style.Style(
        background="white",
        plot_background="white",
        foreground="#333333",
        foreground_strong="#111111",
        foreground_subtle="#bbbbbb",
        colors=colors,
        font_family="sans-serif",
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        title_font_size=14,
    )


def _labels(report: Report) -> tuple[list[str], int]:
    fmt = "%a %d %H:%M" if report.bucket < timedelta(days=1) else "%a %d %b"
    labels = [b.start.strftime(fmt) for b in report.buckets]
    every = max(1, len(labels) // 8)
    return labels, every


def _firing(report: Report) -> list[bool]:
    out = []
    for bucket in report.buckets:
        end = bucket.start + report.bucket
        out.append(
            any(
                a.fired_at < end and (a.resolved_at is None or a.resolved_at >= bucket.start)
                for a in report.alerts
            )
        )
    return out


def _chart_config(colors: tuple[str, ...] = ("#c0392b", "#95a5a6")) -> dict[str, object]:
    return {
        "js": [],  # pygal's tooltip script would be fetched from the web: never
        "disable_xml_declaration": True,
        "width": 960,
        "height": 300,
        "style": _style(colors),
        "show_minor_x_labels": False,
        "x_label_rotation": 0,
        "truncate_label": -1,
        "legend_at_bottom": True,
        "show_dots": False,
        "stroke_style": {"width": 2},
        "margin": 10,
    }


def volume_chart(report: Report) -> str:
    """Mentions per bucket, negative and the rest stacked, and when an alert was firing."""
    chart = _pygal().StackedBar(**_chart_config(), title=f"Mentions per {_unit(report)}")
    labels, every = _labels(report)
    chart.x_labels = labels
    chart.x_labels_major_every = every
    chart.add("negative", [b.negative for b in report.buckets])
    chart.add("other", [b.mentions - b.negative for b in report.buckets])
    return _svg(chart)


def rolling_share(report: Report) -> list[float | None]:
    """Negative share in percent per bucket over the last day of buckets (hourly buckets: 24),
    so that a quiet hour with one negative post does not read as 100%."""
    span = (
        max(1, int(timedelta(days=1) / report.bucket)) if report.bucket < timedelta(days=1) else 1
    )
    out: list[float | None] = []
    for index in range(len(report.buckets)):
        window = report.buckets[max(0, index - span + 1) : index + 1]
        total = sum(b.mentions for b in window)
        negative = sum(b.negative for b in window)
        out.append(round(100 * negative / total, 1) if total else None)
    return out


def share_chart(report: Report) -> str:
    """The negative share of all mentions per bucket, in percent, with alert states marked."""
    rolling = report.bucket < timedelta(days=1)
    chart = _pygal().Line(
        **_chart_config(("#c0392b", "#f39c12")),
        title="Negative share (%)" + (", last 24 h at each hour" if rolling else ""),
        range=(0, 105),
        fill=False,
        allow_interruptions=True,
    )
    labels, every = _labels(report)
    chart.x_labels = labels
    chart.x_labels_major_every = every
    chart.add("negative share", rolling_share(report))
    if report.alerts:  # a thick band along the top while an alert was firing
        firing = [103 if on else None for on in _firing(report)]
        chart.add("alert firing", firing, stroke=False, show_dots=True, dots_size=4)
    return _svg(chart)


_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)


def _svg(chart: object) -> str:
    """The chart's SVG without pygal's inline configuration script (only its tooltips use it;
    the page runs no script at all)."""
    rendered = str(chart.render(is_unicode=True))  # type: ignore[attr-defined]
    return _SCRIPT.sub("", rendered)


def _unit(report: Report) -> str:
    return "hour" if report.bucket <= timedelta(hours=1) else "day"


# --- the page ----------------------------------------------------------------------------------

_CSS = """
body{font-family:sans-serif;margin:24px auto;max-width:1000px;color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:13px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6}.num{text-align:right;white-space:nowrap}.chart svg{width:100%;height:auto}
.kpi{display:inline-block;margin-right:24px;font-size:13px}.kpi b{display:block;font-size:20px}
.critical{color:#c0392b;font-weight:bold}.warning{color:#d35400;font-weight:bold}
.runbook{background:#fff8e1;border-left:4px solid #f39c12;padding:8px 12px}
"""


def timeline(report: Report) -> list[Event]:
    """The response timeline of the report's alerts (the focus alert only, when there is one)."""
    events = []
    for alert in report.alerts:
        if report.focus is not None and alert.alert_id != report.focus:
            continue
        name = f"#{alert.alert_id} {alert.severity} {alert.detector}"
        if alert.first_negative_at is not None:
            events.append(Event(alert.first_negative_at, f"{name}: first negative mention"))
        events.append(Event(alert.fired_at, f"{name}: fired"))
        if alert.escalated_at is not None:
            events.append(Event(alert.escalated_at, f"{name}: escalated to critical"))
        if alert.acked_at is not None:
            who = f" by {alert.acked_by}" if alert.acked_by else ""
            events.append(Event(alert.acked_at, f"{name}: acknowledged{who}"))
        if alert.resolved_at is not None:
            events.append(Event(alert.resolved_at, f"{name}: resolved"))
    return sorted(events, key=lambda e: e.at)


def render_report(report: Report) -> str:
    """The whole page, as one string of HTML."""
    total = sum(b.mentions for b in report.buckets)
    negative = sum(b.negative for b in report.buckets)
    share = f"{100 * negative / total:.0f}%" if total else "—"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # no request may leave the page: the policy makes the browser refuse any that would
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>listener report: {_t(report.brand, 100)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_t(report.brand, 100)}: mentions and alerts</h1>",
        f'<p class="meta">{_when(report.since)} to {_when(report.until)}; generated '
        f"{_when(report.generated_at)} by listener</p>",
        f'<p><span class="kpi"><b>{total:,}</b>mentions</span>'
        f'<span class="kpi"><b>{negative:,}</b>negative</span>'
        f'<span class="kpi"><b>{share}</b>negative share</span>'
        f'<span class="kpi"><b>{len(report.alerts)}</b>alerts</span></p>',
    ]
    if report.runbook or report.runbook_url:
        book = _t(report.runbook, 1000)
        if report.runbook_url:
            book += " " + _link(report.runbook_url, report.runbook_url, 300)
        parts.append(f'<p class="runbook"><b>Runbook:</b> {book}</p>')
    parts += _notes(report)
    parts += ['<h2>Volume</h2><div class="chart">', volume_chart(report), "</div>"]
    parts += ['<div class="chart">', share_chart(report), "</div>"]
    parts += _timeline_section(report)
    parts += _stories_section(report)
    parts += _counts_section("Sources", "source", report.sources)
    parts += _counts_section("Domains", "domain", report.domains)
    parts += _authors_section(report)
    if report.new_terms:
        terms = ", ".join(_t(term, 40) for term in report.new_terms[:30])
        parts.append(f"<h2>New terms</h2><p>{terms}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _notes(report: Report) -> list[str]:
    return [f'<p class="meta">{_t(note, 300)}</p>' for note in report.notes]


def _timeline_section(report: Report) -> list[str]:
    out = ["<h2>Response timeline</h2>"]
    events = timeline(report)
    if not events:
        return [*out, "<p>No alert in this period.</p>"]
    rows = "".join(f"<tr><td>{_when(e.at)}</td><td>{_t(e.what, 200)}</td></tr>" for e in events)
    out.append(f"<table><tr><th>when</th><th>what</th></tr>{rows}</table>")
    head = "<tr><th>alert</th><th>severity</th><th>time to detect</th>"
    head += "<th>time to acknowledge</th><th>time to resolve</th></tr>"
    lines = []
    for alert in report.alerts:
        if report.focus is not None and alert.alert_id != report.focus:
            continue
        detect = alert.fired_at - alert.first_negative_at if alert.first_negative_at else None
        ack = alert.acked_at - alert.fired_at if alert.acked_at else None
        resolve = alert.resolved_at - alert.fired_at if alert.resolved_at else None
        lines.append(
            f"<tr><td>#{alert.alert_id} {_t(alert.detector, 40)}</td>"
            f'<td class="{_t(alert.severity, 10)}">{_t(alert.severity, 10)}</td>'
            f'<td class="num">{_span(detect)}</td><td class="num">{_span(ack)}</td>'
            f'<td class="num">{_span(resolve)}</td></tr>'
        )
    out.append(f"<table>{head}{''.join(lines)}</table>")
    return out


def _stories_section(report: Report) -> list[str]:
    if not report.stories:
        return ["<h2>Top stories</h2><p>No mentions in this period.</p>"]
    head = (
        '<tr><th>story</th><th class="num">copies</th><th class="num">negative</th>'
        "<th>first seen</th><th>sources</th></tr>"
    )
    rows = "".join(
        f'<tr><td>{_link(s.title, s.url)}</td><td class="num">{s.copies}</td>'
        f'<td class="num">{s.negative}</td><td>{_when(s.first_seen)}</td>'
        f"<td>{_t(', '.join(s.sources[:5]), 200)}</td></tr>"
        for s in report.stories
    )
    return [f"<h2>Top stories</h2><table>{head}{rows}</table>"]


def _counts_section(title: str, label: str, counts: Sequence[tuple[str, int]]) -> list[str]:
    if not counts:
        return []
    rows = "".join(
        f'<tr><td>{_t(name, 120)}</td><td class="num">{count:,}</td></tr>' for name, count in counts
    )
    head = f'<tr><th>{label}</th><th class="num">mentions</th></tr>'
    return [f"<h2>{title}</h2><table>{head}{rows}</table>"]


def _authors_section(report: Report) -> list[str]:
    if not report.authors:
        return []
    head = (
        '<tr><th>author</th><th class="num">reach</th><th class="num">mentions</th>'
        '<th class="num">negative</th></tr>'
    )
    rows = "".join(
        f"<tr><td>{_t(a.author, 80)}</td>"
        f'<td class="num">{"—" if a.reach is None else f"{a.reach:,}"}</td>'
        f'<td class="num">{a.mentions}</td><td class="num">{a.negative}</td></tr>'
        for a in report.authors
    )
    return [f"<h2>Authors by reach</h2><table>{head}{rows}</table>"]
