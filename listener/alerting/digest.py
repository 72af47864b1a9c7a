"""Digest messages: a daily or weekly summary per route (volume, sentiment mix, top negative
mentions, the alerts of the period). Pure; every web string is neutralised and escaped for the
target format by ``render``'s own functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from listener.alerting.render import Rendered, escape, neutralise


@dataclass(frozen=True, slots=True)
class BrandDigest:
    brand: str
    mentions: int
    negative: int
    neutral: int
    positive: int
    top_negative: tuple[tuple[str, str | None], ...]  # (title, url), untrusted
    alerts: tuple[str, ...]  # one line each, from our own stored explanations


def render_digest(
    period: str, start: datetime, end: datetime, brands: list[BrandDigest], fmt: str
) -> Rendered:
    title = neutralise(
        f"[DIGEST] {period} summary {start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC", 120
    )

    def e(text: str, limit: int = 200) -> str:
        return escape(neutralise(text, limit), fmt)

    lines: list[str] = []
    for b in brands:
        share = f"{b.negative / b.mentions:.0%}" if b.mentions else "-"
        head = f"{b.brand}: {b.mentions} mentions, {b.negative} negative ({share}), "
        head += f"{b.neutral} neutral, {b.positive} positive"
        lines.append(f"<p><strong>{e(head)}</strong></p>" if fmt == "html" else e(head))
        for text, url in b.top_negative:
            safe_url = url if url and url.startswith(("http://", "https://")) else None
            item = e(text, 100) + (f" {e(safe_url, 300)}" if safe_url else "")
            lines.append(f"<li>{item}</li>" if fmt == "html" else f"- {item}")
        for alert in b.alerts:
            line = e(f"alert: {alert}", 300)
            lines.append(f"<li>{line}</li>" if fmt == "html" else f"- {line}")
    if not brands:
        lines.append(e("No mentions in this period."))
    body = "\n".join(lines)
    if fmt == "html":
        body = f"<div>{body}</div>"
    return Rendered(title, body, fmt)
