"""``listener report``: one self-contained HTML file about an alert or a brand's period, to look
at and to share (charts, top stories, sources, authors, new terms, the response timeline)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import Engine

from listener.alerting.report import AlertSpan, AuthorLine, Bucket, Report, StoryLine, render_report
from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.config import Settings
from listener.errors import ConfigError, InputError
from listener.matching.terms import new_terms
from listener.storage import alerts as alert_store
from listener.storage import outbox as outbox_store
from listener.storage import store
from listener.untrusted import for_terminal


def _floor(moment: datetime, width: timedelta) -> datetime:
    seconds = int(width.total_seconds())
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _buckets(
    mentions: list[store.StoredMention], since: datetime, until: datetime, width: timedelta
) -> tuple[Bucket, ...]:
    start = _floor(since, width)
    counts: dict[datetime, list[int]] = {}
    moment = start
    while moment < until:
        counts[moment] = [0, 0]
        moment += width
    for mention in mentions:
        when = mention.published_at or mention.fetched_at
        key = _floor(when, width)
        if key in counts:
            counts[key][0] += 1
            counts[key][1] += mention.sentiment == "negative"
    return tuple(Bucket(at, all_, neg) for at, (all_, neg) in sorted(counts.items()))


def build_report(
    settings: Settings,
    engine: Engine,
    brand: str,
    since: datetime,
    until: datetime,
    now: datetime,
    focus: int | None = None,
) -> Report:
    """Everything the report says, read from the database."""
    width = timedelta(hours=1) if until - since <= timedelta(days=8) else timedelta(days=1)
    where = store.MentionFilter(brand=brand, since=since, until=until, limit=None)
    mentions = store.query_mentions(engine, where)
    lead = min(until - since, timedelta(days=7))
    before = store.query_mentions(
        engine, store.MentionFilter(brand=brand, since=since - lead, until=since, limit=5000)
    )
    alerts = [
        a
        for a in alert_store.list_alerts(engine, brand=brand, limit=None)
        if a.fired_at < until and (a.resolved_at is None or a.resolved_at >= since)
        and not a.historic
    ]  # fmt: skip
    if focus is not None and all(a.id != focus for a in alerts):
        stored = alert_store.get_alert(engine, focus)
        if stored is not None:
            alerts.append(stored)
    moments = outbox_store.first_notifications(engine, [a.id for a in alerts])
    spans = []
    for alert in sorted(alerts, key=lambda a: a.fired_at):
        negatives = [
            m.published_at or m.fetched_at
            for m in mentions
            if m.sentiment == "negative"
            and alert.window_start <= (m.published_at or m.fetched_at) <= alert.fired_at
        ]
        spans.append(
            AlertSpan(
                alert_id=alert.id,
                detector=alert.detector,
                severity=alert.severity,
                fired_at=alert.fired_at,
                resolved_at=alert.resolved_at,
                acked_at=alert.acked_at,
                acked_by=alert.acked_by,
                first_negative_at=min(negatives, default=None),
                escalated_at=moments.get(alert.id, {}).get("escalated"),
            )
        )
    stories = store.brand_stories(engine, brand, since, until)[:15]
    sources = Counter(m.source for m in mentions)
    domains = Counter(m.domain for m in mentions if m.domain)
    authors: dict[str, list[int]] = {}
    for m in mentions:
        if m.author:
            entry = authors.setdefault(m.author, [-1, 0, 0])
            entry[0] = max(entry[0], m.reach if m.reach is not None else -1)
            entry[1] += 1
            entry[2] += m.sentiment == "negative"
    top_authors = sorted(authors.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:15]
    configured = settings.brand(brand)
    runbook = configured.runbook if configured is not None else None
    severity = next((a.severity for a in alerts if a.id == focus), "warning")
    book = runbook.for_severity(severity) if runbook is not None else None
    return Report(
        brand=configured.name if configured is not None else brand,
        since=since,
        until=until,
        generated_at=now,
        bucket=width,
        buckets=_buckets(mentions, since, until, width),
        alerts=tuple(spans),
        stories=tuple(
            StoryLine(s.title, s.url, s.copies, s.sources, s.first_seen, s.negative)
            for s in stories
        ),
        sources=tuple(sources.most_common(15)),
        domains=tuple((d, n) for d, n in domains.most_common(15) if d),
        authors=tuple(
            AuthorLine(name, reach if reach >= 0 else None, count, neg)
            for name, (reach, count, neg) in top_authors
        ),
        new_terms=new_terms(
            (f"{m.title} {m.text}" for m in mentions),
            (f"{m.title} {m.text}" for m in before),
            brand,
            limit=30,
        ),
        focus=focus,
        runbook=book.text if book is not None else "",
        runbook_url=book.url if book is not None else None,
    )


@cli.command("report")
@config_option
@click.argument("alert_id", type=int, required=False)
@click.option("--brand", help="The brand to report on (without ALERT_ID).")
@click.option("--since", default="7d", show_default=True, help="From: 24h, 7d or an ISO date.")
@click.option("--until", help="Until: 24h, 7d or an ISO date (default: now).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write.",
)
@pass_app
def report(
    app: App,
    alert_id: int | None,
    brand: str | None,
    since: str,
    until: str | None,
    output: Path,
) -> None:
    """Write one self-contained HTML report (works offline and as an email attachment): about
    ALERT_ID (its day before, the episode and a day after), or about --brand over --since."""
    settings = app.settings()
    engine = app.engine()
    now = datetime.now(UTC)
    if alert_id is not None:
        if brand is not None:
            raise click.UsageError("give ALERT_ID or --brand, not both")
        alert = alert_store.get_alert(engine, alert_id)
        if alert is None or not alert.brand:
            raise click.ClickException(f"no brand alert {alert_id}; `listener alerts` lists them")
        brand = alert.brand
        start = alert.window_start - timedelta(days=1)
        end = min(now, (alert.resolved_at or now) + timedelta(days=1))
    else:
        if brand is None:
            raise click.UsageError("give ALERT_ID or --brand NAME")
        if brand.casefold() not in {b.name.casefold() for b in settings.brands}:
            raise ConfigError(f"brand {brand!r} is not in the configuration")
        start = parse_when(since, "--since", now)
        end = parse_when(until, "--until", now) if until else now
    if end <= start:
        raise click.BadParameter("the period is empty", param_hint="--since/--until")
    data = build_report(settings, engine, brand, start, end, now, focus=alert_id)
    page = render_report(data)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror}") from None
    total = sum(b.mentions for b in data.buckets)
    click.echo(
        f"Wrote {output} ({len(page) // 1024} KB): {for_terminal(data.brand)}, {total} mentions, "
        f"{len(data.alerts)} alerts, {len(data.stories)} top stories."
    )
