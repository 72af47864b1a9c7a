"""Two instances evaluating one brand at once (a lease race, or a paused instance whose lease
ran out) write one alert per episode and one notification per route and transition."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from test_alert import NOW, route, settings_for, storm_now
from test_backtest import fill_history

from listener.alerting import plan as planner
from listener.config import Settings
from listener.service import alert as service
from listener.service.detect import States
from listener.storage.sql import transaction
from listener.storage.tables import Alert, Outbox

ROUTES = route("chat", "json://127.0.0.1:9/hook") + route("team", "json://127.0.0.1:9/team")


def stored(engine: Engine) -> tuple[Counter[tuple[str, object]], Counter[tuple[int, str, str]]]:
    """Alerts per episode (detector, started) and outbox rows per (alert, kind, route)."""
    with engine.connect() as conn:
        alerts = Counter(
            (row.detector, row.started_at)
            for row in conn.execute(select(Alert.detector, Alert.started_at))
        )
        rows = Counter(
            (row.alert_id, row.kind, row.route)
            for row in conn.execute(select(Outbox.alert_id, Outbox.kind, Outbox.route))
        )
    return alerts, rows


def stale_plans(engine: Engine, settings: Settings, at: datetime) -> list[planner.Plan]:
    """Two instances' plans for one brand, both loaded before either writes."""
    brand, policy = settings.brands[0], service.policy_of(settings)
    plans = []
    for _ in range(2):
        run = States().run(engine, settings, brand, at)  # each instance its own process
        inputs = service.load_brand(engine, brand, at, run.judged)
        plans.append(planner.plan_brand(inputs, policy))
    return plans


def apply_both(engine: Engine, plans: list[planner.Plan], at: datetime) -> list[int]:
    queued = []
    for plan in plans:
        result = service.Evaluation()
        with transaction(engine, "test") as conn:
            service.apply(conn, plan, at, result)
        queued.append(result.queued)
    return queued


def test_a_paused_instance_writes_no_second_alert_or_notification(engine: Engine) -> None:
    settings = settings_for(ROUTES)
    fill_history(engine, NOW - timedelta(hours=3))
    service.evaluate(engine, settings, NOW - timedelta(hours=3))  # history, quietly
    storm_now(engine, NOW)
    fired = stale_plans(engine, settings, NOW)
    assert all(plan.fired == 1 for plan in fired)  # both would fire it
    assert apply_both(engine, fired, NOW) == [2, 0]  # the first writes one per route
    later = NOW + timedelta(hours=12)
    resolved = stale_plans(engine, settings, later)
    assert all(plan.resolved >= 1 for plan in resolved)  # both would resolve it
    assert apply_both(engine, resolved, later)[1] == 0
    alerts, rows = stored(engine)
    assert alerts and set(alerts.values()) == {1}
    kinds = Counter(kind for _, kind, _ in rows)
    assert kinds["fired"] == 2 and kinds["resolved"] == 2  # one per route
    assert set(rows.values()) == {1}


def test_two_instances_evaluating_one_brand_at_once_notify_once(engine: Engine) -> None:
    settings = settings_for(ROUTES)
    fill_history(engine, NOW - timedelta(hours=3))
    service.evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW)
    for at in (NOW, NOW + timedelta(hours=12)):
        assert at_once(engine, settings, at) == []
    alerts, rows = stored(engine)
    assert alerts and set(alerts.values()) == {1}
    assert set(rows.values()) == {1}
    kinds = Counter(kind for _, kind, _ in rows)
    assert kinds["fired"] == 2 and kinds["resolved"] == 2


def at_once(engine: Engine, settings: Settings, at: datetime) -> list[BaseException]:
    """Two threads (two instances) evaluate every brand at ``at`` together; their errors."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            barrier.wait()
            service.evaluate_brands(engine, settings, at, settings.brands, states=States())
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors
