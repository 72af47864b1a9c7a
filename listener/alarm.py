"""The alert orchestrator: detect -> alert -> outbox -> deliver, for every configured brand.

Rules:
- ``evaluate`` replays each brand's recent stored history through its detectors (the same replay
  as ``listener backtest``: causal in arrival time, so every run reaches the same verdicts) and
  applies the transitions to the stored episodes idempotently: an episode opens once, escalates
  only upwards, resolves once. Each change and the notifications it causes are written in one
  transaction, before anything is sent.
- Episodes judged before detection first ran for a brand are recorded as history, not notified:
  the first poll of a new brand or source does not page anyone for crises that are over.
- With ``alerts.pending_for``, a new episode is pending (stored, not notified) until its
  condition has held that long; one that clears before is resolved without a word.
- Notifications are rendered per route (format, length) when written, so that what is delivered
  is exactly what was decided; silences drop them, inhibition (a firing alert of a detector
  the registry marks ``inhibits``: the storm) drops lesser ones, quiet hours hold them,
  ``repeat_interval`` repeats firing unacknowledged alerts.
- Delivery of the outbox is ``listener.dispatch.deliver``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from listener.alerting import lifecycle
from listener.alerting.digest import BrandDigest, render_digest
from listener.alerting.render import SOURCE_DOWN, AlertMessage, MentionLine, render
from listener.checks import routes
from listener.config import BrandSettings, RunbookSettings, Settings
from listener.detection.episodes import Transition
from listener.detection.monitor import explain, replay
from listener.detection.registry import INHIBITORS
from listener.matching import terms
from listener.storage import alerts as db
from listener.storage import store
from listener.watch import detection_params, history_needed, replay_start, to_event

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    fired: int = 0
    pending: int = 0
    escalated: int = 0
    resolved: int = 0
    historic: int = 0
    repeats: int = 0
    queued: int = 0
    held: list[str] = field(default_factory=list)  # why notifications were not written


def evaluate(engine: Engine, settings: Settings, now: datetime) -> Evaluation:
    """Run detection for every brand and record what changed (see the module docstring)."""
    result = Evaluation()
    checked = routes(settings)
    for brand in settings.brands:
        _evaluate_brand(engine, settings, checked, brand, now, result)
    _source_health(engine, settings, checked, now, result)
    _repeat(engine, settings, checked, now, result)
    _digests(engine, settings, checked, now, result)
    return result


def _digests(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    now: datetime,
    result: Evaluation,
) -> None:
    """Each digest route gets one summary per period, at its scheduled time."""
    for route in checked:
        if not route.digest:
            continue
        due = route.last_digest_time(now)
        key = f"{route.name}#0"
        last = db.last_created(engine, key, kind="digest")
        if last is not None and last >= due:
            continue  # this period's digest is written already
        period = timedelta(days=7 if route.digest == "weekly" else 1)
        start = due - period
        brands = [b.name for b in settings.brands if route.hears(b.name, "digest", "critical")]
        blocks = [_brand_digest(engine, brand, start, due) for brand in brands]
        rendered = render_digest(route.digest, start, due, blocks, route.format)
        notes = [
            db.Notification(
                f"{route.name}#{index}",
                "digest",
                rendered.title,
                rendered.body,
                rendered.body_format,
                now,
            )
            for index in range(len(route.urls))
        ]
        with db_transaction(engine) as conn:
            db.enqueue(conn, None, notes, now)
        result.queued += len(notes)


def _brand_digest(engine: Engine, brand: str, start: datetime, end: datetime) -> BrandDigest:
    found = store.query_mentions(
        engine, store.MentionFilter(brand=brand, since=start, until=end, limit=None)
    )
    mix = Counter(m.sentiment for m in found)
    negative = sorted(
        (m for m in found if m.sentiment == "negative"),
        key=lambda m: (-(m.reach or 0), -((m.likes or 0) + (m.points or 0))),
    )
    alerts = [
        a for a in db.list_alerts(engine, brand=brand, limit=200) if start <= a.fired_at < end
    ]
    return BrandDigest(
        brand=brand,
        mentions=len(found),
        negative=mix.get("negative", 0),
        neutral=mix.get("neutral", 0),
        positive=mix.get("positive", 0),
        top_negative=tuple((m.title or m.text[:140], m.url) for m in negative[:5]),
        alerts=tuple(f"#{a.id} {a.severity} {a.detector}: {a.explanation[:200]}" for a in alerts),
    )


def _source_health(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    now: datetime,
    result: Evaluation,
) -> None:
    """A source failing for longer than ``alerts.source_down_after`` opens one "source down"
    alert (detector ``source:NAME``, no brand); its first success resolves it."""
    threshold = timedelta(seconds=settings.alerts.source_down_after)
    with db_transaction(engine) as conn:
        states = store.load_states(conn)
        started = store.source_created(conn)
        for source in settings.sources:
            state = states.get(source.name)
            if state is None or not source.enabled:
                continue
            detector = f"source:{source.name}"
            open_alert = db.firing_source_alert(conn, detector)
            since = state.last_success_at or started.get(source.name, now)
            failing = state.consecutive_errors > 0 or state.disabled_reason is not None
            reason = state.disabled_reason or state.last_error or "failing"
            if failing and open_alert is None and now - since >= threshold:
                evidence = db.Evidence(
                    severity="critical" if state.disabled_reason else "warning",
                    observed=state.consecutive_errors,
                    expected=0.0,
                    score=float(state.consecutive_errors),
                    probability=None,
                    window_start=since,
                    window_end=now,
                    explanation=(
                        f"source {source.name} has failed {state.consecutive_errors} times in a "
                        f"row since {since:%Y-%m-%d %H:%M} UTC: {reason}"
                    ),
                )
                alert_id = db.open_source_alert(
                    conn, detector=detector, started_at=since, fired_at=now, evidence=evidence
                )
                if alert_id is not None:
                    result.fired += 1
                    _notify_source(conn, settings, checked, alert_id, "fired", source.name,
                                   evidence, now, result)  # fmt: skip
            elif not failing and open_alert is not None:
                db.resolve(conn, open_alert.id, now)
                result.resolved += 1
                evidence = db.Evidence(
                    "warning", 0, 0.0, 0.0, None, open_alert.window_start, now,
                    f"source {source.name} works again since {now:%Y-%m-%d %H:%M} UTC "
                    f"(down since {open_alert.window_start:%Y-%m-%d %H:%M} UTC)",
                )  # fmt: skip
                _notify_source(conn, settings, checked, open_alert.id, "resolved", source.name,
                               evidence, now, result)  # fmt: skip


def _notify_source(
    conn: Any,
    settings: Settings,
    checked: list[lifecycle.Route],
    alert_id: int,
    kind: str,
    source: str,
    evidence: db.Evidence,
    now: datetime,
    result: Evaluation,
) -> None:
    """Source health goes to the routes without a brand filter (brand routes are for brands);
    silences and inhibition are about brands and do not hold it."""
    message = AlertMessage(
        kind=kind,
        alert_id=alert_id,
        brand=source,
        detector=SOURCE_DOWN,
        severity=evidence.severity,
        observed=evidence.observed,
        expected=evidence.expected,
        probability=None,
        score=evidence.score,
        window_start=evidence.window_start,
        window_end=evidence.window_end,
        first_seen=evidence.window_start,
        explanation=evidence.explanation,
        series=(),
        series_label="",
        drilldown="listener sources",
    )
    notes = _fan_out(checked, message, now)
    db.enqueue(conn, alert_id, notes, now)
    db.notified(conn, alert_id, now)
    result.queued += len(notes)


def _evaluate_brand(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    brand: BrandSettings,
    now: datetime,
    result: Evaluation,
) -> None:
    params = detection_params(settings, brand)
    width = timedelta(seconds=settings.detection.bucket)
    # whole UTC days: every run judges the same buckets and hours, so verdicts (and the episode
    # keys they open) are the same whichever run sees them first
    start = replay_start(now - history_needed(params))
    with db_transaction(engine) as conn:
        started = db.detection_started(conn, brand.name, now)
    rows = store.detection_rows(engine, brand.name, since=start, until=now)
    judged = replay(
        (to_event(row) for row in rows),
        start=start,
        end=now,
        width=width,
        lateness=timedelta(seconds=settings.detection.lateness),
        params=params,
    )
    context = _Context(engine, brand.name, rows, now, runbook=brand.runbook)
    for item in judged:
        if item.judged_at > now:
            break
        _apply(engine, settings, checked, brand.name, item.transition, item.judged_at,
               historic=item.judged_at < started, context=context, result=result)  # fmt: skip
    _announce_ongoing(engine, settings, checked, brand.name, context, result)
    _promote(engine, settings, checked, brand.name, context, result)


def _promote(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    brand: str,
    context: _Context,
    result: Evaluation,
) -> None:
    """Pending alerts whose condition held for ``alerts.pending_for`` fire now."""
    wait = timedelta(seconds=settings.alerts.pending_for)
    with db_transaction(engine) as conn:
        for alert in db.pending(conn, brand):
            if context.now - alert.fired_at < wait:
                continue
            db.promote(conn, alert.id)
            _fire_now(conn, settings, checked, alert, context, result)


def _announce_ongoing(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    brand: str,
    context: _Context,
    result: Evaluation,
) -> None:
    """An episode found in history that is still firing is news: notify it once. Episodes that
    are over stay history."""
    with db_transaction(engine) as conn:
        for alert in db.firing(conn):
            if alert.brand != brand or not alert.historic or alert.last_notified_at is not None:
                continue
            db.unhide(conn, alert.id)
            _fire_now(conn, settings, checked, alert, context, result)


def _fire_now(
    conn: Any,
    settings: Settings,
    checked: list[lifecycle.Route],
    alert: db.StoredAlert,
    context: _Context,
    result: Evaluation,
) -> None:
    """Notify a stored alert as fired now (a pending one that held, an ongoing one from
    history)."""
    evidence = db.Evidence(
        alert.severity, alert.observed, alert.expected, alert.score, alert.probability,
        alert.window_start, alert.window_end, alert.explanation,
    )  # fmt: skip
    message = context.message("fired", alert.id, alert.detector, alert.started_at, evidence)
    _queue(conn, settings, checked, message, alert.id, context.now, result)
    db.notified(conn, alert.id, context.now)
    result.fired += 1


def _queue(
    conn: Any,
    settings: Settings,
    checked: list[lifecycle.Route],
    message: AlertMessage,
    alert_id: int,
    now: datetime,
    result: Evaluation,
) -> int:
    """Write the notifications ``message`` makes (after silences and inhibition); their number."""
    firing = db.firing(conn)
    silences = db.active_silences(conn, now)
    notes = _notifications(settings, checked, message, firing, silences, now, result, alert_id)
    db.enqueue(conn, alert_id, notes, now)
    result.queued += len(notes)
    return len(notes)


def db_transaction(engine: Engine):  # type: ignore[no-untyped-def]
    return store.transaction(engine, "cannot record alerts")


def _apply(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    brand: str,
    t: Transition,
    judged_at: datetime,
    *,
    historic: bool,
    context: _Context,
    result: Evaluation,
) -> None:
    evidence = db.Evidence(
        severity=t.severity,
        observed=t.finding.observed,
        expected=t.finding.expected,
        score=t.finding.score,
        probability=t.finding.probability,
        window_start=t.finding.window_start,
        window_end=t.finding.window_end,
        explanation=explain(t.finding),
    )
    with db_transaction(engine) as conn:
        waiting = settings.alerts.pending_for > 0 and not historic
        if t.kind == "fired":
            alert_id = db.open_alert(
                conn, brand=brand, detector=t.detector, started_at=t.started,
                fired_at=judged_at, evidence=evidence, historic=historic, pending=waiting,
            )  # fmt: skip
            if alert_id is None:
                return
            result.historic += historic
            if waiting:
                result.pending += 1
                return
            result.fired += not historic
        else:
            stored = db.find_alert(conn, brand, t.detector, t.started)
            if stored is None or stored.state not in ("firing", "pending"):
                return
            alert_id = stored.id
            historic = historic or stored.historic or stored.state == "pending"
            if t.kind == "escalated":
                if lifecycle.RANK.get(t.severity, 0) <= lifecycle.RANK.get(stored.severity, 0):
                    return
                db.escalate(conn, alert_id, evidence)
                result.escalated += 1
            else:
                db.resolve(conn, alert_id, judged_at)
                result.resolved += 1
        if historic:
            return
        message = context.message(
            t.kind,
            alert_id,
            t.detector,
            t.started,
            evidence,
            stored=None if t.kind == "fired" else stored,
        )
        if _queue(conn, settings, checked, message, alert_id, context.now, result):
            db.notified(conn, alert_id, context.now)


def _notifications(
    settings: Settings,
    checked: list[lifecycle.Route],
    message: AlertMessage,
    firing: Sequence[db.StoredAlert],
    silences: Sequence[db.StoredSilence],
    now: datetime,
    result: Evaluation,
    alert_id: int | None,
) -> list[db.Notification]:
    silence = lifecycle.silenced_by(silences, message.brand, message.detector, message.severity)
    if silence is not None and message.kind != "test":
        result.held.append(f"alert {alert_id}: silenced until {silence.ends_at:%Y-%m-%d %H:%M}")
        return []
    if settings.alerts.inhibit and message.kind in ("fired", "escalated", "repeat"):
        other = lifecycle.inhibited_by(
            firing, alert_id, message.brand, message.detector, message.severity, INHIBITORS
        )
        if other is not None:
            result.held.append(
                f"alert {alert_id}: inhibited by the {other.detector} alert {other.id}"
            )
            return []
    return _fan_out(checked, message, now)


def _fan_out(
    checked: list[lifecycle.Route], message: AlertMessage, now: datetime
) -> list[db.Notification]:
    """One rendered notification per URL of every route that hears of ``message`` (digest
    routes get summaries instead); email (mailto) gets the long message."""
    notes = []
    for route in checked:
        if route.digest or not route.hears(message.brand, message.detector, message.severity):
            continue
        for index, url in enumerate(route.urls):
            long = urlsplit(url).scheme.lower() in ("mailto", "mailtos")
            rendered = render(message, route.format, long=long)
            notes.append(
                db.Notification(
                    route=f"{route.name}#{index}",
                    kind=message.kind,
                    title=rendered.title,
                    body=rendered.body,
                    body_format=rendered.body_format,
                    next_attempt_at=route.due_at(message.severity, now),
                )
            )
    return notes


def _repeat(
    engine: Engine,
    settings: Settings,
    checked: list[lifecycle.Route],
    now: datetime,
    result: Evaluation,
) -> None:
    """Repeat firing, unacknowledged, notified alerts every ``repeat_interval``."""
    interval = timedelta(seconds=settings.alerts.repeat_interval)
    with db_transaction(engine) as conn:
        for alert in db.firing(conn):
            if alert.historic or alert.acked_at is not None or alert.last_notified_at is None:
                continue
            if now - alert.last_notified_at < interval:
                continue
            message = _message_from(alert, "repeat", settings)
            queued = _queue(conn, settings, checked, message, alert.id, now, result)
            db.notified(conn, alert.id, now)
            result.repeats += bool(queued)


def _runbook(runbook: RunbookSettings | None, severity: str) -> dict[str, Any]:
    """The AlertMessage fields of a brand's runbook for an alert of ``severity``."""
    if runbook is None:
        return {}
    entry = runbook.for_severity(severity)
    return {"runbook": entry.text, "runbook_url": entry.url}


def _runbook_of(settings: Settings, brand: str) -> RunbookSettings | None:
    configured = settings.brand(brand)
    return configured.runbook if configured is not None else None


def _message_from(alert: db.StoredAlert, kind: str, settings: Settings) -> AlertMessage:
    return AlertMessage(
        kind=kind,
        alert_id=alert.id,
        brand=alert.brand,
        detector=alert.detector,
        severity=alert.severity,
        observed=alert.observed,
        expected=alert.expected,
        probability=alert.probability,
        score=alert.score,
        window_start=alert.window_start,
        window_end=alert.window_end,
        first_seen=alert.started_at,
        explanation=alert.explanation,
        series=(),
        series_label="",
        drilldown=f"listener alerts show {alert.id}",
        **_runbook(_runbook_of(settings, alert.brand), alert.severity),
    )


class _Context:
    """What messages of one brand need besides the finding: its recent series and top mentions."""

    def __init__(
        self,
        engine: Engine,
        brand: str,
        rows: Sequence[store.DetectionRow],
        now: datetime,
        runbook: RunbookSettings | None = None,
    ):
        self.engine, self.brand, self.now, self.runbook = engine, brand, now, runbook
        hours = [0] * 24
        for row in rows:
            ago = int((now - row.event_at).total_seconds() // 3600)
            if row.negative and 0 <= ago < 24:
                hours[23 - ago] += 1
        self.hours = tuple(hours)

    def new_terms(self, found: Sequence[store.StoredMention], since: datetime) -> tuple[str, ...]:
        """Words at least two mentions of the window use that the brand's previous week did not."""
        before = store.query_mentions(
            self.engine,
            store.MentionFilter(
                brand=self.brand, since=since - timedelta(days=7), until=since, limit=2000
            ),
        )
        return terms.new_terms(
            (f"{m.title} {m.text}" for m in found),
            (f"{m.title} {m.text}" for m in before),
            self.brand,
            limit=8,
        )

    def message(
        self,
        kind: str,
        alert_id: int,
        detector: str,
        started: datetime,
        evidence: db.Evidence,
        stored: db.StoredAlert | None = None,
    ) -> AlertMessage:
        """The message of one transition; ``stored`` (an alert already open) says who
        acknowledged it."""
        brand = self.brand
        found = store.query_mentions(
            self.engine,
            store.MentionFilter(
                brand=brand,
                since=evidence.window_start,
                until=evidence.window_end,
                sentiment="negative",
                limit=200,
            ),
        )
        domains = Counter(urlsplit(m.url).hostname or "" for m in found if m.url)
        # ranked by reach when known (followers, karma), then by engagement, then newest first
        found = sorted(found, key=lambda m: (-(m.reach or 0), -((m.likes or 0) + (m.points or 0))))
        return AlertMessage(
            kind=kind,
            alert_id=alert_id,
            brand=brand,
            detector=detector,
            severity=evidence.severity,
            observed=evidence.observed,
            expected=evidence.expected,
            probability=evidence.probability,
            score=evidence.score,
            window_start=evidence.window_start,
            window_end=evidence.window_end,
            first_seen=started,
            explanation=evidence.explanation,
            series=self.hours,
            series_label="negative mentions, last 24 h, hourly",
            top_mentions=tuple(
                MentionLine(
                    title=m.title or m.text[:140],
                    source=m.source,
                    url=m.url,
                    domain=urlsplit(m.url).hostname if m.url else None,
                    reach=m.reach,
                )
                for m in found[:10]
            ),
            top_domains=tuple((d, n) for d, n in domains.most_common(5) if d),
            new_terms=self.new_terms(found, evidence.window_start),
            drilldown=f"listener alerts show {alert_id}",
            acked_by=stored.acked_by if stored is not None else None,
            acked_at=stored.acked_at if stored is not None else None,
            ack_note=stored.ack_note if stored is not None else None,
            **_runbook(self.runbook, evidence.severity),
        )


def test_message(settings: Settings, now: datetime, brands: tuple[str, ...] = ()) -> AlertMessage:
    """A test notification for a route that hears ``brands`` (empty: every brand)."""
    brand = ", ".join(brands) if brands else "all brands"
    return AlertMessage(
        kind="test",
        alert_id=None,
        brand=brand,
        detector="test",
        severity="warning",
        observed=0,
        expected=0.0,
        probability=None,
        score=0.0,
        window_start=now,
        window_end=now,
        first_seen=now,
        explanation="A test message from `listener alerts test`: this route works.",
        series=(),
        series_label="",
        drilldown="listener alerts",
    )
