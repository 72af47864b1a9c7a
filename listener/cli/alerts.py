"""``listener alerts``: list, explain, acknowledge and silence alerts; the outbox; test routes.

Size: a little over 400 lines on purpose: one command group whose subcommands share the alert
record and its formats; the imports each command makes where it runs (so that ``--help`` loads
no database code) add a line or two per command.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from listener.cli.app import App, cli, config_option, pass_app
from listener.cli.commands import mask, parse_when
from listener.cli.mentions import TABLE_LIMIT, note_cut, table_limit
from listener.cli.output import emit, format_option, iso, resolve_format
from listener.detection.registry import REGISTRY
from listener.errors import ConfigError
from listener.untrusted import for_terminal

if TYPE_CHECKING:  # the rest is imported where used: `--help` needs no pydantic, no SQLAlchemy
    from listener.config import Settings
    from listener.models import OutboxItem, StoredAlert
    from listener.service.cycle import Alerted


STATES = click.Choice(["pending", "firing", "resolved", "acknowledged"])


def echo_alerted(settings: Settings, alerted: Alerted) -> None:
    """Print what a cycle's detection and delivery did (``listener poll``)."""
    result, report = alerted.evaluation, alerted.delivery
    click.echo(
        f"Detection: {result.fired} alerts fired, {result.escalated} escalated, "
        f"{result.resolved} resolved ({result.historic} past episodes recorded quietly); "
        f"{report.delivered} notifications delivered, {report.failed} to retry, "
        f"{report.dead} dead."
    )
    for line in result.held[:10]:
        click.echo(f"  {for_terminal(mask(line, settings))}", err=True)
    for line in report.errors[:10]:
        click.echo(f"  delivery failed: {for_terminal(mask(line, settings))}", err=True)


def _record(alert: StoredAlert) -> dict[str, Any]:
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
        "acked_at": iso(alert.acked_at),
        "acked_by": alert.acked_by,
        "ack_note": alert.ack_note,
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
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help=f"At most this many (0: no limit). Default: {TABLE_LIMIT} in a table, everything in "
    "json, jsonl and csv.",
)
@format_option
@pass_app
@click.pass_context
def alerts_group(
    ctx: click.Context,
    app: App,
    state: str | None,
    brand: str | None,
    limit: int | None,
    fmt: str | None,
) -> None:
    """List alerts, newest first (subcommands: show, why, ack, silence, outbox, test).

    --state firing lists the alerts nobody has acknowledged yet; --state acknowledged the
    acknowledged ones that still fire."""
    if ctx.invoked_subcommand is not None:
        return
    from listener.storage import alerts as db

    output = resolve_format(fmt)
    most = table_limit(limit, output)
    found = db.list_alerts(
        app.engine(),
        state=state,
        brand=brand,
        limit=None if most is None else most + 1,
        acked=False if state == "firing" else None,
    )
    if most is not None and len(found) > most:
        found = found[:most]
        note_cut(most, "alerts")
    emit([_record(a) for a in found], output, columns=COLUMNS, title=f"{len(found)} alerts")


@alerts_group.command("show")
@config_option
@click.argument("alert_id", type=int)
@format_option
@pass_app
def show(app: App, alert_id: int, fmt: str | None) -> None:
    """The full explanation of one alert and the negative mentions behind it."""
    from listener.storage import alerts as db
    from listener.storage import store

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
    if alert.acked_at is not None:
        who = f" by {alert.acked_by}" if alert.acked_by else ""
        note = f": {alert.ack_note}" if alert.ack_note else ""
        click.echo(f"{'acknowledged':>12}: {for_terminal(f'{iso(alert.acked_at)}{who}{note}')}")
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
    from listener.cli.why import report_verdicts
    from listener.service.detect import backtest

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


def login_name() -> str:
    """Who is at the keyboard: the login name, for acks and silences without --by."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return "unknown"


def _person(value: str | None) -> str:
    person = " ".join((value if value is not None else login_name()).split())
    if not person:
        raise click.BadParameter("must not be empty", param_hint="--by")
    return person[:200]


@alerts_group.command("ack")
@config_option
@click.argument("alert_id", type=int)
@click.option("--by", help="Who acknowledges it (default: your login name).")
@click.option("--note", help="What is being done about it (shown in later notifications).")
@pass_app
def ack(app: App, alert_id: int, by: str | None, note: str | None) -> None:
    """Acknowledge a firing alert: no more repeats (escalation and resolved notices still come,
    and say who acknowledged it)."""
    from listener.storage import alerts as db
    from listener.storage.sql import transaction

    person = _person(by)
    with transaction(app.engine(), "cannot acknowledge") as conn:
        done = db.acknowledge(conn, alert_id, datetime.now(UTC), by=person, note=note)
    if not done:
        raise click.ClickException(f"no firing alert {alert_id}; `listener alerts --state firing`")
    click.echo(f"Alert {alert_id} acknowledged by {for_terminal(person)}.")


@alerts_group.command("unack")
@config_option
@click.argument("alert_id", type=int)
@pass_app
def unack(app: App, alert_id: int) -> None:
    """Take an acknowledgement back: the alert repeats again until acknowledged."""
    from listener.storage import alerts as db
    from listener.storage.sql import transaction

    with transaction(app.engine(), "cannot unacknowledge") as conn:
        done = db.unacknowledge(conn, alert_id)
    if not done:
        raise click.ClickException(
            f"no acknowledged firing alert {alert_id}; `listener alerts --state acknowledged`"
        )
    click.echo(f"Alert {alert_id} is no longer acknowledged.")


@alerts_group.command("silence")
@config_option
@click.option("--brand", help="Silence this brand's alerts (default: all brands).")
@click.option("--detector", type=click.Choice(list(REGISTRY)), help="Only this detector.")
@click.option("--severity", type=click.Choice(["warning", "critical"]), help="Only this severity.")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
@click.option("--comment", help="Why (shown in `listener alerts silences`).")
@click.option("--by", help="Who creates it (default: your login name).")
@pass_app
def silence(
    app: App,
    brand: str | None,
    detector: str | None,
    severity: str | None,
    duration: str,
    comment: str | None,
    by: str | None,
) -> None:
    """Drop notifications of matching alerts until the silence expires."""
    from listener.config import parse_duration
    from listener.storage import silences as silence_db
    from listener.storage.sql import transaction

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    settings = app.settings()
    if brand and brand.casefold() not in {b.name.casefold() for b in settings.brands}:
        raise ConfigError(f"brand {brand!r} is not in the configuration")
    now = datetime.now(UTC)
    until = now + timedelta(seconds=seconds)
    with transaction(app.engine(), "cannot add the silence") as conn:
        silence_id = silence_db.add_silence(
            conn, brand=brand, detector=detector, severity=severity, starts_at=now,
            ends_at=until, comment=comment, created_by=_person(by),
        )  # fmt: skip
    what = " ".join(x for x in (brand, detector, severity) if x) or "all"
    click.echo(f"Silence {silence_id}: {for_terminal(what)} alerts until {iso(until)}.")


@alerts_group.command("silences")
@config_option
@click.option("--all", "everything", is_flag=True, help="Include expired silences.")
@format_option
@pass_app
def silences(app: App, everything: bool, fmt: str | None) -> None:
    """Silences in force or still to come (with --all, expired ones too), newest first."""
    from listener.storage import silences as silence_db

    now = datetime.now(UTC)
    found = silence_db.list_silences(app.engine(), now, expired=everything)
    records = [
        {
            "id": s.id,
            "state": "active" if s.starts_at <= now < s.ends_at else
                     "expired" if s.ends_at <= now else "pending",
            "brand": s.brand,
            "detector": s.detector,
            "severity": s.severity,
            "starts_at": iso(s.starts_at),
            "ends_at": iso(s.ends_at),
            "created_by": s.created_by,
            "comment": s.comment,
        }
        for s in found
    ]  # fmt: skip
    emit(records, resolve_format(fmt), columns=[
        ("id", "id", None), ("state", "state", None), ("brand", "brand", 20),
        ("detector", "detector", None), ("severity", "severity", None),
        ("ends_at", "ends (UTC)", None), ("created_by", "by", 16), ("comment", "comment", 50),
    ], title=f"{len(records)} silences")  # fmt: skip


@alerts_group.command("unsilence")
@config_option
@click.argument("silence_id", type=int)
@pass_app
def unsilence(app: App, silence_id: int) -> None:
    """End a silence now: matching alerts notify again."""
    from listener.storage import silences as silence_db
    from listener.storage.sql import transaction

    with transaction(app.engine(), "cannot expire the silence") as conn:
        done = silence_db.expire_silence(conn, silence_id, datetime.now(UTC))
    if not done:
        raise click.ClickException(f"no silence {silence_id} in force; `listener alerts silences`")
    click.echo(f"Silence {silence_id} expired.")


@alerts_group.command("outbox")
@config_option
@click.option("--all", "everything", is_flag=True, help="Include delivered notifications.")
@format_option
@pass_app
def outbox(app: App, everything: bool, fmt: str | None) -> None:
    """Notifications waiting to be delivered, and dead ones (failing for longer than retry_for)."""
    from listener.storage import outbox as outbox_db

    items = outbox_db.outbox(app.engine(), include_delivered=everything)
    records = [
        {
            "id": i.id,
            "state": _state(i),
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


def _state(item: OutboxItem) -> str:
    from listener.service.deliver import IN_FLIGHT

    if item.delivered_at:
        return "delivered"
    if item.dead_at:
        return "dead"
    return "in flight" if (item.last_error or "").startswith(IN_FLIGHT) else "pending"


@alerts_group.command("test")
@config_option
@click.option("--route", "only", help="Only this route (default: every route).")
@pass_app
def test(app: App, only: str | None) -> None:
    """Send a test message through each route and say what happened."""
    from listener.alerting import deliver as channel
    from listener.alerting.render import render
    from listener.checks import routes
    from listener.service.alert import test_message

    settings = app.settings()
    checked = routes(settings)
    if only:
        checked = [r for r in checked if r.name.casefold() == only.casefold()]
        if not checked:
            names = ", ".join(r.name for r in settings.routes) or "none"
            raise ConfigError(f"route {only!r} is not in the configuration (routes: {names})")
    if not checked:
        raise ConfigError(f"{settings.path}: routes: no routes configured; hint: add [[routes]]")
    failures = 0
    for route in checked:
        message = test_message(settings, datetime.now(UTC), route.brands)
        for url in route.urls:
            rendered = render(message, route.format, long=url.lower().startswith("mailto"))
            outcome = channel.send(url, title=rendered.title, body=rendered.body,
                                   body_format=rendered.body_format)  # fmt: skip
            target = for_terminal(mask(outcome.target, settings))
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
