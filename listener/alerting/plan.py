"""The alert plan: what one evaluation writes and sends, decided without a database.

Alertmanager keeps deciding apart from doing; so does listener. ``service.alert`` loads a
brand's inputs once (its judged changes, stored episodes, firing and pending alerts, silences
in force, the hourly series and the context of its messages), ``plan_brand`` turns them into a
``Plan`` (a plain frozen value), and ``service.alert`` applies the plan in one transaction.
``plan_sources`` (source health) and ``plan_repeats`` work the same way. Tests build inputs
from plain values and compare plans.

Rules (the lifecycle; see ``lifecycle`` for routes, silences, inhibition and quiet hours):
- An episode is keyed by (brand, detector, started): it opens once, escalates only upwards,
  resolves once. Changes of an episode that is not open (or is resolved) change nothing.
- Episodes judged before detection first ran for the brand are history: stored, not notified.
- With ``pending_for``, a new episode is pending (stored, not notified) until its condition has
  held that long; one that clears before is resolved without a word; one that held fires.
- An episode found in history that is still firing is news: announced once.
- Notifications: a silence drops one, a firing storm of the brand drops lesser ones (with
  ``inhibit``), both with the reason in ``Plan.held``; quiet hours hold one (``Send.reason``,
  due when they end). Every URL of every route that hears of the alert gets one; email gets
  the long message. Rendering happens when the plan is applied: the id of an episode this plan
  opens is known only then. Rate limits (``max_per_hour``) count what was delivered in the
  last hour, so delivery applies them (``service.deliver``).

Why one module over 400 lines: the three planners share the episode model, the silence and
inhibition checks and the fan-out; split, the lifecycle would be read in three places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from listener.alerting import lifecycle
from listener.alerting.render import SOURCE_DOWN, AlertMessage, MentionLine
from listener.models import Evidence, SourceState, StoredAlert, StoredSilence

Key = tuple[str, str, datetime]  # brand ("" for a source), detector, started_at
Window = tuple[datetime, datetime]
Runbooks = Mapping[str, tuple[str, str | None]]  # severity -> (text, url)
Action = Literal["open", "escalate", "resolve", "promote", "unhide", "notified"]
SERIES_LABEL = "negative mentions, last 24 h, hourly"


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings a plan obeys."""

    routes: tuple[lifecycle.Route, ...]
    inhibit: bool = True
    inhibitors: frozenset[str] = frozenset()  # the detectors the registry marks ``inhibits``
    pending_for: timedelta = timedelta(0)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class Change:
    """One transition a detector judged (fired, escalated, resolved), as stored evidence."""

    kind: str
    detector: str
    started: datetime
    judged_at: datetime
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Context:
    """What a brand's message says besides the finding, for one window."""

    top_mentions: tuple[MentionLine, ...] = ()
    top_domains: tuple[tuple[str, int], ...] = ()
    new_terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BrandInputs:
    """Everything one brand's plan reads, loaded once."""

    brand: str
    now: datetime
    detection_started: datetime | None  # None: detection runs for the brand for the first time
    changes: tuple[Change, ...] = ()  # judged at or before ``now``, in judgement order
    episodes: tuple[StoredAlert, ...] = ()  # the stored episodes the changes are about
    firing: tuple[StoredAlert, ...] = ()  # the brand's firing alerts
    pending: tuple[StoredAlert, ...] = ()  # the brand's pending alerts
    silences: tuple[StoredSilence, ...] = ()  # in force at ``now``
    hours: tuple[int, ...] = (0,) * 24  # negative mentions per hour, the last 24 h
    runbook: Runbooks = field(default_factory=dict)
    contexts: Mapping[Window, Context] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """One write to one episode; ``alert_id`` None: the episode this plan opens as ``key``."""

    action: Action
    key: Key
    alert_id: int | None
    at: datetime | None = None
    evidence: Evidence | None = None
    historic: bool = False
    pending: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    """One notification to one URL of one route (``route`` is "name#index")."""

    key: Key
    alert_id: int | None
    route: str
    format: str
    long: bool
    due_at: datetime
    message: AlertMessage
    reason: str | None = None  # why it waits: "quiet hours until ..."


@dataclass(frozen=True, slots=True)
class Held:
    """A notification not written, and why; ``by`` is the inhibiting alert's key."""

    key: Key
    alert_id: int | None
    reason: Literal["silenced", "inhibited"]
    until: datetime | None = None
    by: Key | None = None
    by_id: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What one evaluation step writes (``steps``, in order) and sends."""

    steps: tuple[Step, ...] = ()
    sends: tuple[Send, ...] = ()
    held: tuple[Held, ...] = ()
    windows: frozenset[Window] = frozenset()  # message contexts the plan needed
    fired: int = 0
    pending: int = 0
    escalated: int = 0
    resolved: int = 0
    historic: int = 0
    repeats: int = 0


@dataclass(slots=True)
class _Episode:
    """An episode as the plan sees it while it changes; ``ref`` orders and identifies it."""

    key: Key
    alert_id: int | None
    ref: int  # the id, or a negative stand-in for an episode this plan opens
    state: str
    evidence: Evidence
    fired_at: datetime
    historic: bool
    last_notified_at: datetime | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_note: str | None = None

    @property
    def brand(self) -> str:
        return self.key[0]

    @property
    def detector(self) -> str:
        return self.key[1]

    @property
    def severity(self) -> str:
        return self.evidence.severity

    @property
    def id(self) -> int:  # lifecycle.Firing
        return self.ref

    @classmethod
    def of(cls, alert: StoredAlert) -> _Episode:
        return cls(
            (alert.brand, alert.detector, alert.started_at), alert.id, alert.id, alert.state,
            alert.evidence, alert.fired_at, alert.historic, alert.last_notified_at,
            alert.acked_by, alert.acked_at, alert.ack_note,
        )  # fmt: skip


class _Builder:
    """Collects a plan's steps, sends and counts, and fans notifications out to routes."""

    def __init__(self, policy: Policy, now: datetime, silences: Sequence[StoredSilence]):
        self.policy, self.now, self.silences = policy, now, silences
        self.steps: list[Step] = []
        self.sends: list[Send] = []
        self.held: list[Held] = []
        self.windows: set[Window] = set()
        self.counts = dict.fromkeys(
            ("fired", "pending", "escalated", "resolved", "historic", "repeats"), 0
        )

    def step(self, action: Action, ep: _Episode, **values: object) -> None:
        self.steps.append(Step(action, ep.key, ep.alert_id, **values))  # type: ignore[arg-type]
        if action == "notified":
            ep.last_notified_at = self.now

    def queue(self, ep: _Episode, message: AlertMessage, firing: Sequence[_Episode]) -> int:
        """The notifications ``message`` makes after silences and inhibition; their number."""
        silence = lifecycle.silenced_by(
            self.silences, message.brand, message.detector, message.severity
        )
        if silence is not None and message.kind != "test":
            self.held.append(Held(ep.key, ep.alert_id, "silenced", until=silence.ends_at))
            return 0
        if self.policy.inhibit and message.kind in ("fired", "escalated", "repeat"):
            other = lifecycle.inhibited_by(
                firing,
                ep.ref,
                message.brand,
                message.detector,
                message.severity,
                self.policy.inhibitors,
            )
            if other is not None:
                held = Held(ep.key, ep.alert_id, "inhibited", by=other.key, by_id=other.alert_id)
                self.held.append(held)
                return 0
        return self.fan_out(ep.key, ep.alert_id, message)

    def fan_out(self, key: Key, alert_id: int | None, message: AlertMessage) -> int:
        """One send per URL of every route that hears of ``message`` (digest routes get
        summaries instead); email (mailto) gets the long message."""
        before = len(self.sends)
        for route in self.policy.routes:
            if route.digest or not route.hears(message.brand, message.detector, message.severity):
                continue
            due = route.due_at(message.severity, self.now)
            reason = f"quiet hours until {due:%Y-%m-%d %H:%M} UTC" if due > self.now else None
            for index, url in enumerate(route.urls):
                long = urlsplit(url).scheme.lower() in ("mailto", "mailtos")
                name = f"{route.name}#{index}"
                send = Send(key, alert_id, name, route.format, long, due, message, reason)
                self.sends.append(send)
        return len(self.sends) - before

    def plan(self) -> Plan:
        return Plan(
            tuple(self.steps), tuple(self.sends), tuple(self.held), frozenset(self.windows),
            **self.counts,
        )  # fmt: skip


def plan_brand(inputs: BrandInputs, policy: Policy) -> Plan:
    """The plan of one brand's evaluation (see the module docstring). Messages whose context
    is missing from ``inputs.contexts`` say less; ``Plan.windows`` names the contexts used, so
    a caller can plan once without contexts, load them, and plan again."""
    now, brand = inputs.now, inputs.brand
    out = _Builder(policy, now, inputs.silences)
    started = inputs.detection_started or now
    episodes: dict[Key, _Episode] = {}
    for alert in (*inputs.episodes, *inputs.firing, *inputs.pending):
        episodes.setdefault((alert.brand, alert.detector, alert.started_at), _Episode.of(alert))

    def firing() -> list[_Episode]:
        return sorted((e for e in episodes.values() if e.state == "firing"), key=_order)

    def message(kind: str, ep: _Episode, started_at: datetime, evidence: Evidence) -> AlertMessage:
        window = (evidence.window_start, evidence.window_end)
        out.windows.add(window)
        context = inputs.contexts.get(window, Context())
        acked = kind != "fired"
        return AlertMessage(
            kind=kind, alert_id=ep.alert_id, brand=brand, detector=ep.detector,
            severity=evidence.severity, observed=evidence.observed, expected=evidence.expected,
            probability=evidence.probability, score=evidence.score,
            window_start=evidence.window_start, window_end=evidence.window_end,
            first_seen=started_at, explanation=evidence.explanation, series=inputs.hours,
            series_label=SERIES_LABEL, top_mentions=context.top_mentions,
            top_domains=context.top_domains, new_terms=context.new_terms,
            drilldown=_drilldown(ep.alert_id),
            acked_by=ep.acked_by if acked else None, acked_at=ep.acked_at if acked else None,
            ack_note=ep.ack_note if acked else None, **_runbook(inputs.runbook, evidence.severity),
        )  # fmt: skip

    def fire_now(ep: _Episode) -> None:
        """Notify a stored episode as fired now (a pending one that held, an ongoing one found
        in history)."""
        out.queue(ep, message("fired", ep, ep.key[2], ep.evidence), firing())
        out.step("notified", ep, at=now)
        out.counts["fired"] += 1

    for change in inputs.changes:
        key = (brand, change.detector, change.started)
        historic = change.judged_at < started
        ep = episodes.get(key)
        if change.kind == "fired":
            if ep is not None:
                continue  # opened (and decided) before
            waiting = policy.pending_for > timedelta(0) and not historic
            ep = _Episode(key, None, -1 - len(episodes), "pending" if waiting else "firing",
                          change.evidence, change.judged_at, historic)  # fmt: skip
            episodes[key] = ep
            out.step("open", ep, at=change.judged_at, evidence=change.evidence,
                     historic=historic, pending=waiting)  # fmt: skip
            out.counts["historic"] += historic
            if waiting:
                out.counts["pending"] += 1
                continue
            out.counts["fired"] += not historic
        else:
            if ep is None or ep.state not in ("firing", "pending"):
                continue
            historic = historic or ep.historic or ep.state == "pending"
            if change.kind == "escalated":
                if lifecycle.RANK.get(change.evidence.severity, 0) <= lifecycle.RANK.get(
                    ep.severity, 0
                ):
                    continue
                ep.evidence = change.evidence
                out.step("escalate", ep, evidence=change.evidence)
                out.counts["escalated"] += 1
            else:
                ep.state = "resolved"
                out.step("resolve", ep, at=change.judged_at)
                out.counts["resolved"] += 1
        if historic:
            continue
        note = message(change.kind, ep, change.started, change.evidence)
        if out.queue(ep, note, firing()):
            out.step("notified", ep, at=now)
    for ep in firing():  # ongoing episodes found in history
        if ep.historic and ep.last_notified_at is None:
            out.step("unhide", ep)
            ep.historic = False
            fire_now(ep)
    waited = sorted((e for e in episodes.values() if e.state == "pending"), key=_order)
    for ep in waited:
        if now - ep.fired_at < policy.pending_for:
            continue
        out.step("promote", ep)
        ep.state = "firing"
        fire_now(ep)
    return out.plan()


def plan_repeats(
    firing: Sequence[StoredAlert],
    silences: Sequence[StoredSilence],
    policy: Policy,
    now: datetime,
    runbooks: Callable[[str], Runbooks],
) -> Plan:
    """Repeat firing, unacknowledged, notified alerts every ``repeat_interval``."""
    out = _Builder(policy, now, silences)
    episodes = [_Episode.of(alert) for alert in firing]
    for alert, ep in zip(firing, episodes, strict=True):
        if alert.historic or alert.acked_at is not None or alert.last_notified_at is None:
            continue
        if now - alert.last_notified_at < policy.repeat_interval:
            continue
        message = AlertMessage(
            kind="repeat", alert_id=alert.id, brand=alert.brand, detector=alert.detector,
            severity=alert.severity, observed=alert.observed, expected=alert.expected,
            probability=alert.probability, score=alert.score, window_start=alert.window_start,
            window_end=alert.window_end, first_seen=alert.started_at,
            explanation=alert.explanation, series=(), series_label="",
            drilldown=_drilldown(alert.id), **_runbook(runbooks(alert.brand), alert.severity),
        )  # fmt: skip
        queued = out.queue(ep, message, episodes)
        out.step("notified", ep, at=now)
        out.counts["repeats"] += bool(queued)
    return out.plan()


@dataclass(frozen=True, slots=True)
class SourceInputs:
    """One enabled source's health: its state, when it was registered, its open alert."""

    name: str
    state: SourceState
    created: datetime | None
    open_alert: StoredAlert | None


def plan_sources(sources: Sequence[SourceInputs], policy: Policy, now: datetime,
                 down_after: timedelta) -> Plan:  # fmt: skip
    """A source failing for longer than ``down_after`` opens one "source down" alert (detector
    ``source:NAME``, no brand); its first success resolves it. Both go to the routes that hear
    of it; silences and inhibition are about brands and do not hold them."""
    out = _Builder(policy, now, ())
    for source in sources:
        state, open_alert = source.state, source.open_alert
        detector = f"source:{source.name}"
        since = state.last_success_at or source.created or now
        failing = state.consecutive_errors > 0 or state.disabled_reason is not None
        reason = state.disabled_reason or state.last_error or "failing"
        if failing and open_alert is None and now - since >= down_after:
            evidence = Evidence(
                "critical" if state.disabled_reason else "warning", state.consecutive_errors,
                0.0, float(state.consecutive_errors), None, since, now,
                f"source {source.name} has failed {state.consecutive_errors} times in a row "
                f"since {since:%Y-%m-%d %H:%M} UTC: {reason}",
            )  # fmt: skip
            ep = _Episode(("", detector, since), None, -1, "firing", evidence, now, False)
            out.step("open", ep, at=now, evidence=evidence)
            out.counts["fired"] += 1
            kind = "fired"
        elif not failing and open_alert is not None:
            ep = _Episode.of(open_alert)
            out.step("resolve", ep, at=now)
            out.counts["resolved"] += 1
            evidence = Evidence(
                "warning", 0, 0.0, 0.0, None, open_alert.window_start, now,
                f"source {source.name} works again since {now:%Y-%m-%d %H:%M} UTC "
                f"(down since {open_alert.window_start:%Y-%m-%d %H:%M} UTC)",
            )  # fmt: skip
            kind = "resolved"
        else:
            continue
        message = AlertMessage(
            kind=kind, alert_id=ep.alert_id, brand=source.name, detector=SOURCE_DOWN,
            severity=evidence.severity, observed=evidence.observed, expected=evidence.expected,
            probability=None, score=evidence.score, window_start=evidence.window_start,
            window_end=evidence.window_end, first_seen=evidence.window_start,
            explanation=evidence.explanation, series=(), series_label="",
            drilldown="listener sources",
        )  # fmt: skip
        out.fan_out(ep.key, ep.alert_id, message)
        out.step("notified", ep, at=now)
    return out.plan()


def with_id(message: AlertMessage, alert_id: int) -> AlertMessage:
    """``message`` of an episode whose id became known when the plan was applied."""
    if message.alert_id is not None:
        return message
    drilldown = message.drilldown or _drilldown(alert_id)
    return replace(message, alert_id=alert_id, drilldown=drilldown)


def _drilldown(alert_id: int | None) -> str:
    return f"listener alerts show {alert_id}" if alert_id is not None else ""


def _order(ep: _Episode) -> tuple[int, int]:
    """Stored episodes by id, then those this plan opens, in the order it opens them."""
    return (0, ep.ref) if ep.ref > 0 else (1, -ep.ref)


def _runbook(runbook: Runbooks, severity: str) -> dict[str, Any]:
    """The AlertMessage fields of a brand's runbook for an alert of ``severity``."""
    if severity not in runbook:
        return {}
    text, url = runbook[severity]
    return {"runbook": text, "runbook_url": url}
