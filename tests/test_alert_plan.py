"""The alert plan without a database: lifecycle and fan-out, table-driven over plain values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from listener.alerting.lifecycle import QuietHours, Route
from listener.alerting.plan import (
    BrandInputs,
    Change,
    Context,
    Plan,
    Policy,
    SourceInputs,
    plan_brand,
    plan_repeats,
    plan_sources,
    with_id,
)
from listener.detection.registry import INHIBITORS
from listener.models import Evidence, SourceState, StoredAlert, StoredSilence

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EARLY = NOW - timedelta(days=30)  # detection ran long before
STARTED = NOW - timedelta(hours=1)
CHAT = Route("chat", ("json://chat.example/hook",))
MAIL = Route("mail", ("mailto://ops@example.org",), min_severity="critical")


def evidence(severity: str = "warning", start: datetime = STARTED) -> Evidence:
    return Evidence(severity, 30, 2.0, 9.0, None, start, NOW, f"{severity}: 30 instead of 2")


def change(kind: str, detector: str = "storm", severity: str = "warning", **kw: object) -> Change:
    values: dict[str, object] = {"started": STARTED, "judged_at": NOW, **kw}
    return Change(kind, detector, evidence=evidence(severity), **values)  # type: ignore[arg-type]


def stored(
    alert_id: int, detector: str = "storm", state: str = "firing", severity: str = "warning",
    **kw: object,
) -> StoredAlert:  # fmt: skip
    e = evidence(severity)
    values: dict[str, object] = {
        "id": alert_id, "brand": "Velora", "detector": detector, "started_at": STARTED,
        "state": state, "severity": severity, "fired_at": STARTED, "resolved_at": None,
        "acked_at": None, "last_notified_at": STARTED, "historic": False,
        "observed": e.observed, "expected": e.expected, "score": e.score,
        "probability": None, "window_start": e.window_start, "window_end": e.window_end,
        "explanation": e.explanation,
    }  # fmt: skip
    values.update(kw)
    return StoredAlert(**values)  # type: ignore[arg-type]


def inputs(*changes: Change, **kw: object) -> BrandInputs:
    values: dict[str, object] = {"detection_started": EARLY, "changes": changes, **kw}
    return BrandInputs("Velora", NOW, **values)  # type: ignore[arg-type]


def steps(plan: Plan) -> list[tuple[str, str, int | None]]:
    return [(s.action, s.key[1], s.alert_id) for s in plan.steps]


def sends(plan: Plan) -> list[tuple[str, str, int | None]]:
    return [(s.route, s.message.kind, s.alert_id) for s in plan.sends]


def counts(plan: Plan) -> tuple[int, int, int, int, int, int]:
    return (plan.fired, plan.pending, plan.escalated, plan.resolved, plan.historic, plan.repeats)


POLICY = Policy(routes=(CHAT, MAIL), inhibitors=INHIBITORS)
ACKED = {"acked_by": "ana", "acked_at": STARTED, "ack_note": "on it"}

LIFECYCLE = [
    # (case, inputs, policy, steps, sends, counts: fired pending escalated resolved historic rep.)
    ("a new episode fires and notifies", inputs(change("fired")), POLICY,
     [("open", "storm", None), ("notified", "storm", None)],
     [("chat#0", "fired", None)], (1, 0, 0, 0, 0, 0)),
    ("an episode opened before is not opened again",
     inputs(change("fired"), episodes=(stored(7),)), POLICY, [], [], (0,) * 6),
    ("history fired and cleared is recorded quietly",
     inputs(change("fired", judged_at=EARLY - timedelta(hours=2)),
            change("resolved", judged_at=EARLY - timedelta(hours=1))), POLICY,
     [("open", "storm", None), ("resolve", "storm", None)], [], (0, 0, 0, 1, 1, 0)),
    ("history still firing is announced once",
     inputs(change("fired", judged_at=EARLY - timedelta(hours=2))), POLICY,
     [("open", "storm", None), ("unhide", "storm", None), ("notified", "storm", None)],
     [("chat#0", "fired", None)], (1, 0, 0, 0, 1, 0)),
    ("the first run of a brand treats its whole replay as history",
     inputs(change("fired", judged_at=NOW - timedelta(hours=2)),
            change("resolved", judged_at=NOW - timedelta(hours=1)), detection_started=None),
     POLICY, [("open", "storm", None), ("resolve", "storm", None)], [], (0, 0, 0, 1, 1, 0)),
    ("pending until it held for pending_for",
     inputs(change("fired")), replace(POLICY, pending_for=timedelta(minutes=10)),
     [("open", "storm", None)], [], (0, 1, 0, 0, 0, 0)),
    ("a pending episode that held fires",
     inputs(pending=(stored(3, state="pending", fired_at=NOW - timedelta(minutes=11)),)),
     replace(POLICY, pending_for=timedelta(minutes=10)),
     [("promote", "storm", 3), ("notified", "storm", 3)], [("chat#0", "fired", 3)],
     (1, 0, 0, 0, 0, 0)),
    ("a pending episode that clears is resolved without a word",
     inputs(change("resolved"), pending=(stored(3, state="pending", fired_at=NOW),)),
     replace(POLICY, pending_for=timedelta(minutes=10)),
     [("resolve", "storm", 3)], [], (0, 0, 0, 1, 0, 0)),
    ("escalation goes upwards to every route that hears it",
     inputs(change("escalated", severity="critical"), episodes=(stored(4, **ACKED),)), POLICY,
     [("escalate", "storm", 4), ("notified", "storm", 4)],
     [("chat#0", "escalated", 4), ("mail#0", "escalated", 4)], (0, 0, 1, 0, 0, 0)),
    ("no escalation to the same severity",
     inputs(change("escalated"), episodes=(stored(4),)), POLICY, [], [], (0,) * 6),
    ("resolved notice for a firing alert",
     inputs(change("resolved"), episodes=(stored(4),)), POLICY,
     [("resolve", "storm", 4), ("notified", "storm", 4)], [("chat#0", "resolved", 4)],
     (0, 0, 0, 1, 0, 0)),
    ("changes of episodes not open change nothing",
     inputs(change("resolved"), change("escalated", severity="critical"),
            episodes=(stored(4, state="resolved"),)), POLICY, [], [], (0,) * 6),
    ("a silence holds the notification, not the episode",
     inputs(change("fired"), silences=(
         StoredSilence(1, "velora", None, None, EARLY, NOW + timedelta(hours=1), None),)),
     POLICY, [("open", "storm", None)], [], (1, 0, 0, 0, 0, 0)),
    ("a firing storm inhibits a lesser alert of the brand",
     inputs(change("fired", detector="smoulder"), firing=(stored(2, severity="critical"),)),
     POLICY, [("open", "smoulder", None)], [], (1, 0, 0, 0, 0, 0)),
    ("without inhibit the lesser alert is sent",
     inputs(change("fired", detector="smoulder"), firing=(stored(2, severity="critical"),)),
     replace(POLICY, inhibit=False),
     [("open", "smoulder", None), ("notified", "smoulder", None)],
     [("chat#0", "fired", None)], (1, 0, 0, 0, 0, 0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("inputs_", "policy", "want_steps", "want_sends", "want_counts"),
    [case[1:] for case in LIFECYCLE],
    ids=[case[0] for case in LIFECYCLE],
)
def test_lifecycle(
    inputs_: BrandInputs,
    policy: Policy,
    want_steps: list[tuple[str, str, int | None]],
    want_sends: list[tuple[str, str, int | None]],
    want_counts: tuple[int, ...],
) -> None:
    plan = plan_brand(inputs_, policy)
    assert steps(plan) == want_steps
    assert sends(plan) == want_sends
    assert counts(plan) == want_counts
    assert plan == plan_brand(inputs_, policy)  # a value: the same inputs, the same plan


def test_held_notifications_say_why() -> None:
    silence = StoredSilence(1, None, "storm", None, EARLY, NOW + timedelta(hours=1), None)
    silenced = plan_brand(inputs(change("fired"), silences=(silence,)), POLICY)
    [held] = silenced.held
    assert (held.reason, held.until, held.alert_id) == ("silenced", silence.ends_at, None)
    smoulder = change("fired", detector="smoulder")
    inhibited = plan_brand(inputs(smoulder, firing=(stored(2, severity="critical"),)), POLICY)
    [held] = inhibited.held
    assert (held.reason, held.by_id, held.by) == ("inhibited", 2, ("Velora", "storm", STARTED))


def test_escalated_and_resolved_notices_say_who_acknowledged() -> None:
    plan = plan_brand(
        inputs(change("escalated", severity="critical"), episodes=(stored(4, **ACKED),)), POLICY
    )
    assert {(s.message.acked_by, s.message.ack_note) for s in plan.sends} == {("ana", "on it")}


FAN_OUT = [
    ("severity filters routes", "warning", (CHAT, MAIL), [("chat#0", False)]),
    ("every URL of a route", "critical",
     (Route("both", ("json://a.example/", "mailtos://ops@example.org")),),
     [("both#0", False), ("both#1", True)]),
    ("brand and detector filters", "warning",
     (Route("other", ("json://x/",), brands=("Nordbahn",)),
      Route("smoulder-only", ("json://y/",), detectors=("smoulder",)),
      Route("velora", ("json://z/",), brands=("VELORA",))), [("velora#0", False)]),
    ("digest routes get summaries, not alerts", "critical",
     (Route("daily", ("json://d/",), digest="daily"),), []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("severity", "routes", "want"), [c[1:] for c in FAN_OUT], ids=[c[0] for c in FAN_OUT]
)
def test_fan_out(severity: str, routes: tuple[Route, ...], want: list[tuple[str, bool]]) -> None:
    plan = plan_brand(inputs(change("fired", severity=severity)), Policy(routes=routes))
    assert [(s.route, s.long) for s in plan.sends] == want
    assert all(s.due_at == NOW and s.reason is None for s in plan.sends)


@pytest.mark.parametrize(
    ("severity", "ignores", "due"),
    [("warning", True, NOW + timedelta(hours=6)), ("critical", True, NOW),
     ("critical", False, NOW + timedelta(hours=6))],
)  # fmt: skip
def test_quiet_hours_hold_until_they_end(severity: str, ignores: bool, due: datetime) -> None:
    quiet = QuietHours(start=11 * 60, end=18 * 60, zone="UTC")
    route = Route("chat", ("json://c/",), quiet=quiet, critical_ignores_quiet_hours=ignores)
    [send] = plan_brand(inputs(change("fired", severity=severity)), Policy((route,))).sends
    assert send.due_at == due
    assert (send.reason is not None) == (due > NOW)


def test_messages_carry_the_loaded_context_and_the_id_known_at_apply() -> None:
    context = Context(top_domains=(("forum.example", 3),), new_terms=("ballpoint",))
    first = plan_brand(inputs(change("fired")), POLICY)
    assert first.windows == {(STARTED, NOW)}
    loaded = inputs(change("fired"), contexts={(STARTED, NOW): context}, hours=(1,) * 24)
    [send] = plan_brand(loaded, POLICY).sends
    assert send.message.new_terms == ("ballpoint",) and send.message.series == (1,) * 24
    assert send.message.alert_id is None and send.message.drilldown == ""
    message = with_id(send.message, 12)
    assert (message.alert_id, message.drilldown) == (12, "listener alerts show 12")


REPEATS = [
    ("repeats after the interval", {}, [("chat#0", "repeat", 5)], 1),
    ("not when acknowledged", {"acked_at": STARTED}, [], 0),
    ("not before the interval", {"last_notified_at": NOW - timedelta(minutes=5)}, [], 0),
    ("not for history", {"historic": True}, [], 0),
    ("not when never notified", {"last_notified_at": None}, [], 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "want", "repeats"), [c[1:] for c in REPEATS], ids=[c[0] for c in REPEATS]
)
def test_repeats(fields: dict[str, object], want: list[tuple[str, str, int]], repeats: int) -> None:
    alert = stored(5, **{"last_notified_at": NOW - timedelta(hours=5), **fields})
    plan = plan_repeats([alert], [], POLICY, NOW, lambda brand: {})
    assert sends(plan) == want
    assert plan.repeats == repeats


def test_sources_down_and_back() -> None:
    failing = SourceState(
        1, "forum", "https://forum.example/feed", consecutive_errors=4,
        last_error="fetch: HTTP 503", last_success_at=NOW - timedelta(hours=2),
    )  # fmt: skip
    down = plan_sources([SourceInputs("forum", failing, EARLY, None)], POLICY, NOW,
                        timedelta(hours=1))  # fmt: skip
    assert steps(down) == [("open", "source:forum", None), ("notified", "source:forum", None)]
    assert sends(down) == [("chat#0", "fired", None)] and down.fired == 1
    assert "HTTP 503" in down.sends[0].message.explanation
    short = plan_sources([SourceInputs("forum", failing, EARLY, None)], POLICY, NOW,
                         timedelta(hours=3))  # fmt: skip
    assert short == Plan()
    back = replace(failing, consecutive_errors=0, last_error=None, last_success_at=NOW)
    alert = stored(9, detector="source:forum", brand="")
    up = plan_sources([SourceInputs("forum", back, EARLY, alert)], POLICY, NOW, timedelta(hours=1))
    assert steps(up) == [("resolve", "source:forum", 9), ("notified", "source:forum", 9)]
    assert sends(up) == [("chat#0", "resolved", 9)] and up.resolved == 1
