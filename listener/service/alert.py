"""Alerts: detections -> episodes and outbox rows, for every configured brand; load, plan, apply.

Rules:
- ``evaluate`` runs each brand's detectors over what is new since the last run
  (``service.detect``: the same verdicts as a replay of the stored history, as
  ``listener backtest`` does, causal in arrival time), loads what the brand's plan reads once
  (stored episodes, firing and pending alerts, silences, the top mentions of each window a
  message is about), computes the pure plan (``alerting.plan``) and applies it, with the
  brand's detection state, in one transaction, before anything is sent. The plan
  rules (history, pending, silences, inhibition, quiet hours) are in ``alerting.plan``.
- Source health, repeats and digests (the daily/weekly summaries of digest routes) follow, in
  that order, each in its own transaction.
- Nothing here reads the database while it renders: messages are rendered from the plan when
  it is applied (the id of an episode the plan opens is known only then).
- Delivery of the outbox is ``service.deliver``; ``service.cycle`` runs both.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from listener.alerting import lifecycle
from listener.alerting import plan as planner
from listener.alerting.digest import BrandDigest, render_digest
from listener.alerting.render import AlertMessage, MentionLine, render
from listener.checks import routes
from listener.config import BrandSettings, RunbookSettings, Settings
from listener.detection.monitor import Judged, explain
from listener.detection.registry import INHIBITORS
from listener.matching import terms
from listener.models import Evidence, Notification
from listener.service.detect import States
from listener.storage import alerts as db
from listener.storage import outbox, store
from listener.storage import silences as silence_db
from listener.storage.sql import transaction

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


STATES = States()  # this process's detection states (``service.detect``)


def evaluate(
    engine: Engine, settings: Settings, now: datetime, states: States = STATES
) -> Evaluation:
    """Run detection for every brand and record what changed (see the module docstring)."""
    result = evaluate_brands(engine, settings, now, settings.brands, states=states)
    evaluate_overall(engine, settings, now, result)
    return result


def evaluate_brands(
    engine: Engine,
    settings: Settings,
    now: datetime,
    brands: Sequence[BrandSettings],
    result: Evaluation | None = None,
    states: States = STATES,
) -> Evaluation:
    """Detection for ``brands`` (every brand, or an instance's share of them on PostgreSQL):
    each brand's episodes and notifications, in one transaction per brand."""
    result = result if result is not None else Evaluation()
    policy = policy_of(settings)
    for brand in brands:
        run = states.run(engine, settings, brand, now)
        inputs = load_brand(engine, brand, now, run.judged)
        plan = planner.plan_brand(inputs, policy)
        if plan.windows:  # the same decisions, with the context of their messages
            contexts = load_contexts(engine, brand.name, plan.windows)
            hours = negative_hours(engine, brand.name, now)
            inputs = replace(inputs, contexts=contexts, hours=hours)
            plan = planner.plan_brand(inputs, policy)
        quiet = not (plan.steps or plan.sends or plan.held or run.saving)
        if quiet and inputs.detection_started is not None:
            run.keep()  # nothing to write
            continue
        with transaction(engine, "cannot record alerts") as conn:
            if inputs.detection_started is None:
                db.detection_started(conn, brand.name, now)
            apply(conn, plan, now, result)
            run.save(conn, now)
        run.keep()
    return result


def evaluate_overall(engine: Engine, settings: Settings, now: datetime, result: Evaluation) -> None:
    """What is not about one brand: source health, repeats and digests (the leader's part when
    several instances share detection)."""
    policy = policy_of(settings)
    with transaction(engine, "cannot record alerts") as conn:
        sources = load_sources(conn, settings)
        down_after = timedelta(seconds=settings.alerts.source_down_after)
        apply(conn, planner.plan_sources(sources, policy, now, down_after), now, result)
    with transaction(engine, "cannot record alerts") as conn:
        firing = db.firing(conn)
        silences = silence_db.active_silences(conn, now)
        plan = planner.plan_repeats(firing, silences, policy, now, lambda b: runbooks(settings, b))
        apply(conn, plan, now, result)
    _digests(engine, settings, policy.routes, now, result)


def policy_of(settings: Settings) -> planner.Policy:
    return planner.Policy(
        routes=tuple(routes(settings)),
        inhibit=settings.alerts.inhibit,
        inhibitors=INHIBITORS,
        pending_for=timedelta(seconds=settings.alerts.pending_for),
        repeat_interval=timedelta(seconds=settings.alerts.repeat_interval),
    )


def runbooks(settings: Settings, brand: str) -> planner.Runbooks:
    """A brand's runbook per severity (none for a brand without one, or for a source)."""
    configured = settings.brand(brand) if brand else None
    return _runbooks(configured.runbook if configured is not None else None)


def _runbooks(runbook: RunbookSettings | None) -> planner.Runbooks:
    if runbook is None:
        return {}
    entries = {severity: runbook.for_severity(severity) for severity in lifecycle.RANK}
    return {severity: (entry.text, entry.url) for severity, entry in entries.items()}


def load_brand(
    engine: Engine, brand: BrandSettings, now: datetime, judged: Iterable[Judged]
) -> planner.BrandInputs:
    """What one brand's plan reads: the changes judged in this run and the stored state they
    meet (``hours``, the message sparkline, is left empty: see ``negative_hours``)."""
    changes = tuple(
        planner.Change(
            item.transition.kind,
            item.transition.detector,
            item.transition.started,
            item.judged_at,
            Evidence(
                severity=item.transition.severity,
                observed=item.transition.finding.observed,
                expected=item.transition.finding.expected,
                score=item.transition.finding.score,
                probability=item.transition.finding.probability,
                window_start=item.transition.finding.window_start,
                window_end=item.transition.finding.window_end,
                explanation=explain(item.transition.finding),
            ),
        )
        for item in judged
        if item.judged_at <= now
    )
    keys = {(c.detector, c.started) for c in changes}
    with transaction(engine, "cannot read alerts") as conn:
        firing, pending = db.open_for(conn, brand.name)
        return planner.BrandInputs(
            brand=brand.name,
            now=now,
            detection_started=db.detection_started_at(conn, brand.name),
            changes=changes,
            episodes=tuple(db.episodes(conn, brand.name, keys).values()),
            firing=tuple(firing),
            pending=tuple(pending),
            silences=tuple(silence_db.active_silences(conn, now)),
            runbook=_runbooks(brand.runbook),
        )


def negative_hours(engine: Engine, brand: str, now: datetime) -> tuple[int, ...]:
    """Negative mentions per hour over the last 24 hours, oldest first (the sparkline)."""
    hours = [0] * 24
    for row in store.detection_rows(engine, brand, since=now - timedelta(hours=24), until=now):
        ago = int((now - row.event_at).total_seconds() // 3600)
        if row.negative and 0 <= ago < 24:
            hours[23 - ago] += 1
    return tuple(hours)


def load_contexts(
    engine: Engine, brand: str, windows: frozenset[planner.Window]
) -> dict[planner.Window, planner.Context]:
    """Per window: its top negative mentions (by reach, then engagement), their domains, and
    the words at least two of them use that the brand's previous week did not."""
    out = {}
    for start, end in sorted(windows):
        found = store.query_mentions(
            engine,
            store.MentionFilter(
                brand=brand, since=start, until=end, sentiment="negative", limit=200
            ),
        )
        before = store.query_mentions(
            engine,
            store.MentionFilter(brand=brand, since=start - timedelta(days=7), until=start,
                                limit=2000),
        )  # fmt: skip
        domains = Counter(urlsplit(m.url).hostname or "" for m in found if m.url)
        # ranked by reach when known (followers, karma), then by engagement, then newest first
        found = sorted(found, key=lambda m: (-(m.reach or 0), -((m.likes or 0) + (m.points or 0))))
        out[(start, end)] = planner.Context(
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
            new_terms=terms.new_terms(
                (f"{m.title} {m.text}" for m in found),
                (f"{m.title} {m.text}" for m in before),
                brand,
                limit=8,
            ),
        )
    return out


def load_sources(conn: Connection, settings: Settings) -> list[planner.SourceInputs]:
    """The health of every enabled source that has a stored state."""
    states = store.load_states(conn)
    created = store.source_created(conn)
    firing = db.firing_source_alerts(conn)
    out = []
    for source in settings.sources:
        state = states.get(source.name)
        if state is None or not source.enabled:
            continue
        open_alert = firing.get(f"source:{source.name}")
        out.append(planner.SourceInputs(source.name, state, created.get(source.name), open_alert))
    return out


def apply(conn: Connection, plan: planner.Plan, now: datetime, result: Evaluation) -> None:
    """Write ``plan`` in the caller's transaction: episode changes in order, then one rendered
    outbox row per send; count what was done into ``result``. A change another instance made
    first (``storage.alerts``: each is conditional) drops the rest of that episode's plan and
    its sends: one notification per transition, whoever evaluates the brand."""
    ids: dict[planner.Key, int] = {}
    lost: set[planner.Key] = set()  # opened meanwhile by someone else: theirs to notify

    def id_of(key: planner.Key, alert_id: int | None) -> int:
        return alert_id if alert_id is not None else ids[key]

    for step in plan.steps:
        if step.key in lost:
            continue
        if step.action == "open":
            assert step.evidence is not None and step.at is not None
            brand, detector, started = step.key
            if brand:
                opened = db.open_alert(
                    conn, brand=brand, detector=detector, started_at=started, fired_at=step.at,
                    evidence=step.evidence, historic=step.historic, pending=step.pending,
                )  # fmt: skip
            else:
                opened = db.open_source_alert(
                    conn, detector=detector, started_at=started, fired_at=step.at,
                    evidence=step.evidence,
                )  # fmt: skip
            if opened is None:
                lost.add(step.key)
                log.info("alert %s %s opened meanwhile elsewhere", detector, brand)
            else:
                ids[step.key] = opened
            continue
        alert_id = id_of(step.key, step.alert_id)
        if step.action == "escalate":
            assert step.evidence is not None
            rank = lifecycle.RANK.get(step.evidence.severity, 0)
            below = [name for name, other in lifecycle.RANK.items() if other < rank]
            changed = db.escalate(conn, alert_id, step.evidence, below)
        elif step.action == "resolve":
            assert step.at is not None
            changed = db.resolve(conn, alert_id, step.at)
        elif step.action == "promote":
            changed = db.promote(conn, alert_id)
        elif step.action == "unhide":
            changed = db.unhide(conn, alert_id)
        else:
            assert step.at is not None
            db.notified(conn, alert_id, step.at)
            changed = True
        if not changed:  # another instance made this change: its notifications are written
            lost.add(step.key)
            log.info("alert %s: %s done meanwhile elsewhere", alert_id, step.action)
    for send in plan.sends:
        if send.key in lost:
            continue
        alert_id = id_of(send.key, send.alert_id)
        rendered = render(planner.with_id(send.message, alert_id), send.format, long=send.long)
        note = Notification(send.route, send.message.kind, rendered.title, rendered.body,
                            rendered.body_format, send.due_at)  # fmt: skip
        outbox.enqueue(conn, alert_id, [note], now)
        result.queued += 1
    for held in plan.held:
        if held.key in lost or (held.by in lost and held.by_id is None):
            continue  # not ours to explain
        alert_id = id_of(held.key, held.alert_id)
        if held.reason == "silenced":
            assert held.until is not None
            result.held.append(f"alert {alert_id}: silenced until {held.until:%Y-%m-%d %H:%M}")
        else:
            assert held.by is not None
            other = id_of(held.by, held.by_id)
            result.held.append(f"alert {alert_id}: inhibited by the {held.by[1]} alert {other}")
    result.fired += plan.fired
    result.pending += plan.pending
    result.escalated += plan.escalated
    result.resolved += plan.resolved
    result.historic += plan.historic
    result.repeats += plan.repeats


def _digests(
    engine: Engine,
    settings: Settings,
    checked: tuple[lifecycle.Route, ...],
    now: datetime,
    result: Evaluation,
) -> None:
    """Each digest route gets one summary per period, at its scheduled time."""
    for route in checked:
        if not route.digest:
            continue
        due = route.last_digest_time(now)
        key = f"{route.name}#0"
        last = outbox.last_created(engine, key, kind="digest")
        if last is not None and last >= due:
            continue  # this period's digest is written already
        period = timedelta(days=7 if route.digest == "weekly" else 1)
        start = due - period
        brands = [b.name for b in settings.brands if route.hears(b.name, "digest", "critical")]
        blocks = [_brand_digest(engine, brand, start, due) for brand in brands]
        rendered = render_digest(route.digest, start, due, blocks, route.format)
        notes = [
            Notification(
                f"{route.name}#{index}",
                "digest",
                rendered.title,
                rendered.body,
                rendered.body_format,
                now,
            )
            for index in range(len(route.urls))
        ]
        with transaction(engine, "cannot record alerts") as conn:
            outbox.enqueue(conn, None, notes, now)
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
