"""``listener alerts``: list, explain, acknowledge and silence alerts; the outbox; test routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import Engine

from listener.alarm import evaluate, routes, test_message
from listener.alerting import deliver as channel
from listener.alerting.render import render
from listener.cli import App, cli, config_option, pass_app
from listener.cli.commands import parse_when
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.cli.why import report_verdicts
from listener.config import Settings, parse_duration
from listener.detection.registry import REGISTRY
from listener.dispatch import deliver
from listener.errors import ConfigError
from listener.storage import alerts as db
from listener.storage import store
from listener.untrusted import for_terminal
from listener.watch import backtest

STATES = click.Choice(["pending", "firing", "resolved", "acknowledged"])


def detect_and_deliver(settings: Settings, engine: Engine, now: datetime | None = None) -> None:
    """What the daemon does after polling: detection, then delivery of due notifications."""
    now = now or datetime.now(UTC)
    result = evaluate(engine, settings, now)
    report = deliver(engine, settings, now)
    click.echo(
        f"Detection: {result.fired} alerts fired, {result.escalated} escalated, "
        f"{result.resolved} resolved ({result.historic} past episodes recorded quietly); "
        f"{report.delivered} notifications delivered, {report.failed} to retry, "
        f"{report.dead} dead."
    )
    for line in result.held[:10]:
        click.echo(f"  {for_terminal(line)}", err=True)
    for line in report.errors[:10]:
        click.echo(f"  delivery failed: {for_terminal(line)}", err=True)


def _record(alert: db.StoredAlert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "state": "acknowledged" if alert.state == "firing" and alert.acked_at else alert.state,
        "brand": alert.brand,
        "detector": alert.detector,
        "severity": alert.severity,
        "started_at": iso(alert.started_at),
        "resolved_at": iso(alert.resolved_at),
        "observed": alert.observed,
        "expected": round(alert.expected, 2),
        "historic": alert.historic,
        "explanation": alert.explanation,
    }


COLUMNS = [
    ("id", "id", None),
    ("state", "state", None),
    ("brand", "brand", 20),
    ("detector", "detector", None),
    ("severity", "severity", None),
    ("started_at", "started", None),
    ("resolved_at", "resolved", None),
    ("explanation", "explanation", 70),
]


@cli.group("alerts", invoke_without_command=True)
@config_option
@click.option("--state", type=STATES, help="Only alerts in this state.")
@click.option("--brand", help="Only alerts of this brand.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@format_option
@pass_app
@click.pass_context
def alerts_group(
    ctx: click.Context, app: App, state: str | None, brand: str | None, limit: int, fmt: str | None
) -> None:
    """List alerts, newest first (subcommands: show, why, ack, silence, outbox, test)."""
    if ctx.invoked_subcommand is not None:
        return
    found = db.list_alerts(app.engine(), state=state, brand=brand, limit=limit)
    emit([_record(a) for a in found], resolve_format(fmt), columns=COLUMNS,
         title=f"{len(found)} alerts")  # fmt: skip


@alerts_group.command("show")
@config_option
@click.argument("alert_id", type=int)
@format_option
@pass_app
def show(app: App, alert_id: int, fmt: str | None) -> None:
    """The full explanation of one alert and the negative mentions behind it."""
    engine = app.engine()
    alert = db.get_alert(engine, alert_id)
    if alert is None:
        raise click.ClickException(f"no alert {alert_id}; `listener alerts` lists them")
    mentions = store.query_mentions(
        engine,
        store.MentionFilter(
            brand=alert.brand,
            since=alert.window_start,
            until=alert.window_end,
            sentiment="negative",
            limit=20,
        ),
    )
    output = resolve_format(fmt)
    record = _record(alert)
    record["window"] = f"{iso(alert.window_start)} - {iso(alert.window_end)}"
    record["mentions"] = [
        {"title": m.title, "source": m.source, "url": m.url, "published_at": iso(m.published_at)}
        for m in mentions
    ]
    if output != "table":
        emit([record], output, columns=[(k, k, None) for k in record], title="")
        return
    for key in ("id", "state", "brand", "detector", "severity", "started_at", "resolved_at",
                "window"):  # fmt: skip
        click.echo(f"{key:>12}: {for_terminal(str(record[key] or '-'))}")
    click.echo(f"{'why':>12}: {for_terminal(alert.explanation)}")
    click.echo(f"\n{len(mentions)} negative mentions in the window:")
    for m in mentions:
        click.echo(f"  - {for_terminal(m.title)[:100]}  ({for_terminal(m.source)})")
        if m.url:
            click.echo(f"    {for_terminal(m.url)[:200]}")


@alerts_group.command("why")
@config_option
@click.option("--brand", required=True, help="The brand to explain.")
@click.option("--since", default="6h", show_default=True, help="From this time on (6h, ISO).")
@format_option
@pass_app
def why(app: App, brand: str, since: str, fmt: str | None) -> None:
    """Why (or why not) an alert: every recently judged window with negative mentions, observed
    vs expected, score and the gate that decided (the same as `backtest --brand --explain`)."""
    settings = app.settings()
    match = [b for b in settings.brands if b.name.casefold() == brand.casefold()]
    if not match:
        known = ", ".join(b.name for b in settings.brands) or "none"
        raise ConfigError(f"brand {brand!r} is not in the configuration (brands: {known})")
    now = datetime.now(UTC)
    result = backtest(
        app.engine(), settings, match[0], since=parse_when(since, "--since", now), until=now,
        explain=True,
    )  # fmt: skip
    report_verdicts(result, resolve_format(fmt))


@alerts_group.command("ack")
@config_option
@click.argument("alert_id", type=int)
@pass_app
def ack(app: App, alert_id: int) -> None:
    """Acknowledge a firing alert: no more repeats (escalation and resolved notices still come)."""
    if not db.acknowledge(app.engine(), alert_id, datetime.now(UTC)):
        raise click.ClickException(f"no firing alert {alert_id}; `listener alerts --state firing`")
    click.echo(f"Alert {alert_id} acknowledged.")


@alerts_group.command("silence")
@config_option
@click.option("--brand", help="Silence this brand's alerts (default: all brands).")
@click.option("--detector", type=click.Choice(list(REGISTRY)), help="Only this detector.")
@click.option("--severity", type=click.Choice(["warning", "critical"]), help="Only this severity.")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
@click.option("--comment", help="Why (shown in the list of silences).")
@pass_app
def silence(
    app: App,
    brand: str | None,
    detector: str | None,
    severity: str | None,
    duration: str,
    comment: str | None,
) -> None:
    """Drop notifications of matching alerts until the silence expires."""
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    settings = app.settings()
    if brand and brand.casefold() not in {b.name.casefold() for b in settings.brands}:
        raise ConfigError(f"brand {brand!r} is not in the configuration")
    now = datetime.now(UTC)
    until = now + timedelta(seconds=seconds)
    silence_id = db.add_silence(
        app.engine(), brand=brand, detector=detector, severity=severity, starts_at=now,
        ends_at=until, comment=comment,
    )  # fmt: skip
    what = " ".join(x for x in (brand, detector, severity) if x) or "all"
    click.echo(f"Silence {silence_id}: {for_terminal(what)} alerts until {iso(until)}.")


@alerts_group.command("outbox")
@config_option
@click.option("--all", "everything", is_flag=True, help="Include delivered notifications.")
@format_option
@pass_app
def outbox(app: App, everything: bool, fmt: str | None) -> None:
    """Notifications waiting to be delivered, and dead ones (failing for longer than retry_for)."""
    items = db.outbox(app.engine(), include_delivered=everything)
    records = [
        {
            "id": i.id,
            "state": "delivered" if i.delivered_at else "dead" if i.dead_at else "pending",
            "alert": i.alert_id,
            "route": i.route,
            "kind": i.kind,
            "title": i.title,
            "attempts": i.attempts,
            "next_attempt_at": iso(i.next_attempt_at),
            "last_error": i.last_error,
        }
        for i in items
    ]
    emit(records, resolve_format(fmt), columns=[
        ("id", "id", None), ("state", "state", None), ("route", "route", 20),
        ("kind", "kind", None), ("attempts", "tries", None),
        ("next_attempt_at", "next attempt", None), ("last_error", "last error", 50),
        ("title", "title", 50),
    ], title=f"{len(records)} notifications")  # fmt: skip


@alerts_group.command("test")
@config_option
@click.option("--route", "only", help="Only this route (default: every route).")
@pass_app
def test(app: App, only: str | None) -> None:
    """Send a test message through each route and say what happened."""
    settings = app.settings()
    checked = routes(settings)
    if only:
        checked = [r for r in checked if r.name.casefold() == only.casefold()]
        if not checked:
            names = ", ".join(r.name for r in settings.routes) or "none"
            raise ConfigError(f"route {only!r} is not in the configuration (routes: {names})")
    if not checked:
        raise ConfigError(f"{settings.path}: routes: no routes configured; hint: add [[routes]]")
    message = test_message(settings, datetime.now(UTC))
    failures = 0
    for route in checked:
        for url in route.urls:
            rendered = render(message, route.format, long=url.lower().startswith("mailto"))
            outcome = channel.send(url, title=rendered.title, body=rendered.body,
                                   body_format=rendered.body_format)  # fmt: skip
            target = for_terminal(outcome.target)
            if outcome.ok:
                click.echo(f"{for_terminal(route.name)}: {target}: delivered")
            else:
                failures += 1
                click.echo(
                    f"{for_terminal(route.name)}: {target}: failed: "
                    f"{for_terminal(outcome.error or '')}"
                )
    if failures:
        raise SystemExit(1)
