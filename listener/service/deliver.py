"""Delivery: sends due outbox rows through the apprise adapter (after ``service.alert`` wrote them).

Rules:
- Every due row is sent once per call, through ``alerting.deliver`` (the only apprise user),
  with retries and backoff, marked delivered only after the channel said so, and dead after
  ``alerts.retry_for``. A crash between a successful send and its mark sends that one message
  again after the restart (at least once, never lost).
- Every attempt carries the row's idempotency key (``outbox_key``): an ``Idempotency-Key``
  header for json/form/xml webhooks, the Message-ID for mail. Receivers can drop repeats.
- Before a send the row is leased: ``next_attempt_at`` moves past the route's ``send_timeout``
  and ``last_error`` says the attempt is in flight. A row found in flight later (kill -9 between
  send and mark) is logged as *uncertain* and sent again with the same key. A send that broke
  after the message went out (read timeout, SMTP timeout after DATA) is logged as uncertain too;
  its retry waits at least ``send_timeout``, so attempts never overlap.
- A permanent refusal (HTTP 4xx but 408/429, SMTP 5xx) is dead after ``PERMANENT_ATTEMPTS``
  attempts with the reason in ``last_error``; a ``Retry-After`` delays the next attempt.
- ``stop`` (the daemon's shutdown): no new send starts; a send still running is abandoned, its
  row stays in the outbox marked uncertain and due at once, and is sent again after a restart.
- Rows held by quiet hours that come due together go out as one catch-up summary.
- ``max_per_hour`` per route: rows over the budget wait five minutes.
- apprise (with requests, ~8 MB) is imported on the first due row, not before: a daemon that
  has nothing to send never holds it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from listener.alerting import lifecycle
from listener.config import Settings
from listener.models import OutboxItem
from listener.storage import alerts, outbox
from listener.storage.sql import transaction

if TYPE_CHECKING:  # imported where a row is sent: apprise and requests cost ~0.2 s of CPU to
    # import, which a cycle with nothing to deliver (most of them) does not pay
    from listener.alerting import deliver as channel

log = logging.getLogger(__name__)

Sender = Callable[..., "channel.Delivery"]
PERMANENT_ATTEMPTS = 3  # a permanent refusal is tried this often before the row is dead
IN_FLIGHT = "in flight:"  # last_error of a row whose send has started and not been recorded
LEASE_MARGIN = timedelta(seconds=30)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    postponed: int = 0
    errors: list[str] = field(default_factory=list)


def outbox_key(items: list[OutboxItem]) -> str:
    """The idempotency key of one message: the same for every attempt of the same rows."""
    from listener.alerting import deliver as channel

    return channel.idempotency_key(
        "outbox", *(f"{i.id}|{i.created_at.isoformat()}|{i.route}" for i in items)
    )


def deliver(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    send: Sender | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send every due outbox row once (see the module docstring); ``send`` defaults to
    ``alerting.deliver.send``."""
    report = DeliveryReport()
    by_name = {r.name: r for r in settings.routes}
    batches: dict[str, list[OutboxItem]] = {}
    for item in outbox.due(engine, now):
        batches.setdefault(item.route, []).append(item)
    if not batches:
        return report
    if send is None:
        from listener.alerting import deliver as channel

        send = channel.send
    for key, items in batches.items():
        name, _, index = key.rpartition("#")
        route = by_name.get(name)
        if route is None or not index.isdigit() or int(index) >= len(route.urls):
            for item in items:
                _failed(engine, item.id, error="the route is no longer configured",
                        retry_at=None, now=now)  # fmt: skip
                report.dead += 1
            continue
        held = [i for i in items if i.attempts == 0 and i.next_attempt_at - i.created_at >= HELD]
        groups = [[i] for i in items if i not in held]
        if len(held) > 1:  # the end of quiet hours: one catch-up summary instead of a burst
            groups.append(held)
        else:
            groups.extend([i] for i in held)
        url = route.urls[int(index)]
        for group in groups:
            if stop is not None and stop.is_set():
                return report
            sent = outbox.sent_since(engine, key, now - timedelta(hours=1))
            if sent >= route.max_per_hour:
                for item in group:
                    _failed(engine, item.id, error="rate limited (max_per_hour)",
                            retry_at=now + timedelta(minutes=5), now=now)  # fmt: skip
                    report.postponed += 1
                continue
            _attempt(engine, settings, now, name, url, route.send_timeout, group, send, stop,
                     report)  # fmt: skip
            if stop is not None and stop.is_set():
                return report
    return report


def notify_type(engine: Engine, group: list[OutboxItem]) -> str:
    """apprise's message type for a message: ``success`` for a resolved notice, ``failure`` for
    a critical alert, ``warning`` for a warning, ``info`` for tests and summaries (a catch-up
    summary of several takes the gravest)."""
    rank = {"info": 0, "success": 1, "warning": 2, "failure": 3}
    kinds = []
    for item in group:
        if item.kind == "resolved":
            kinds.append("success")
        elif item.kind in ("fired", "escalated", "repeat") and item.alert_id is not None:
            alert = alerts.get_alert(engine, item.alert_id)
            severe = alert is not None and alert.severity == "critical"
            kinds.append("failure" if severe else "warning")
        else:
            kinds.append("info")
    return max(kinds, key=lambda kind: rank[kind], default="info")


def _attempt(
    engine: Engine,
    settings: Settings,
    now: datetime,
    name: str,
    url: str,
    timeout: float,
    group: list[OutboxItem],
    send: Sender,
    stop: threading.Event | None,
    report: DeliveryReport,
) -> None:
    """One attempt at one message (one row, or a catch-up summary of several)."""
    ids = [item.id for item in group]
    key = outbox_key(group)
    for item in group:
        if (item.last_error or "").startswith(IN_FLIGHT):
            log.warning(
                "delivery %s to route %s: outcome uncertain (the previous attempt was not "
                "recorded; the receiver may have it), sending again with key %s",
                item.id, name, key,
            )  # fmt: skip
    attempt = max(i.attempts for i in group) + 1
    _lease(engine, ids, until=now + timedelta(seconds=timeout) + LEASE_MARGIN,
           note=f"{IN_FLIGHT} attempt {attempt} started {now:%Y-%m-%d %H:%M:%S} UTC, "
                f"key {key}")  # fmt: skip
    title, body, body_format = _combined(group)

    def call() -> channel.Delivery:
        return send(
            url,
            title=title,
            body=body,
            body_format=body_format,
            timeout=timeout,
            key=key,
            notify_type=notify_type(engine, group),
        )

    outcome = call() if stop is None else _unless_stopped(call, stop)
    if outcome is None:  # shutdown: the receiver may have it; send again with the key at restart
        note = f"{IN_FLIGHT} attempt {attempt} interrupted by shutdown, key {key}"
        _lease(engine, ids, until=now, note=note)
        log.warning(
            "delivery %s to route %s interrupted by shutdown: outcome uncertain, it stays in "
            "the outbox and is sent again with key %s",
            ", ".join(map(str, ids)), name, key,
        )  # fmt: skip
        return
    if outcome.ok:
        with transaction(engine, "cannot mark a delivery") as conn:
            for item in group:
                outbox.delivered(conn, item.id, now)
        report.delivered += len(group)
        return
    error = outcome.error or "delivery failed"
    report.errors.append(f"{name}: {error}")
    retry_for = timedelta(seconds=settings.alerts.retry_for)
    for item in group:
        retry = lifecycle.retry_at(item.attempts, item.created_at, now, retry_for)
        if outcome.permanent:
            if item.attempts + 1 >= PERMANENT_ATTEMPTS:
                retry = None
                error = f"permanent: {outcome.error} (gave up after {item.attempts + 1} attempts)"
        elif retry is not None:
            later = [retry]
            if outcome.retry_after is not None:
                later.append(now + timedelta(seconds=outcome.retry_after))
            if outcome.uncertain:
                later.append(now + timedelta(seconds=timeout))
            retry = max(later)
        _failed(engine, item.id, error=error, retry_at=retry, now=now)
        if retry is None:
            report.dead += 1
            log.error("delivery %s to route %s is dead: %s", item.id, name, error)
        elif outcome.uncertain:
            report.failed += 1
            log.warning(
                "delivery %s to route %s: outcome uncertain, retrying at %s UTC with key %s: %s",
                item.id, name, f"{retry:%H:%M:%S}", key, error,
            )  # fmt: skip
        else:
            report.failed += 1
            log.warning("delivery %s to route %s failed, retrying at %s UTC: %s",
                        item.id, name, f"{retry:%H:%M:%S}", error)  # fmt: skip


def _lease(engine: Engine, item_ids: list[int], *, until: datetime, note: str) -> None:
    with transaction(engine, "cannot record a delivery attempt") as conn:
        outbox.lease(conn, item_ids, until=until, note=note)


def _failed(
    engine: Engine, item_id: int, *, error: str, retry_at: datetime | None, now: datetime
) -> None:
    with transaction(engine, "cannot record a failed delivery") as conn:
        outbox.failed(conn, item_id, error=error, retry_at=retry_at, now=now)


def _unless_stopped(
    call: Callable[[], channel.Delivery], stop: threading.Event
) -> channel.Delivery | None:
    """Run ``call`` in a daemon thread; None when ``stop`` is set first (the thread is left to
    finish or die with the process: a hanging channel never holds up a shutdown)."""
    box: list[channel.Delivery | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # handed to the caller's thread below
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="listener-send", daemon=True).start()
    while not done.wait(0.1):
        if stop.is_set():
            return None
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


HELD = timedelta(minutes=5)  # a notification due this long after it was written was held


def _combined(items: list[OutboxItem]) -> tuple[str, str, str]:
    """One message for one item; a catch-up summary for several held by quiet hours."""
    if len(items) == 1:
        return items[0].title, items[0].body, items[0].body_format
    body_format = items[0].body_format
    separator = "<hr>" if body_format == "html" else "\n\n---\n\n"
    title = f"[SUMMARY] {len(items)} notifications held by quiet hours"
    return title, separator.join(item.body for item in items), body_format
