"""Delivery: sends due outbox rows through the apprise adapter (the second half of ``alarm``).

Rules:
- Every due row is sent once per call, through ``alerting.deliver`` (the only apprise user),
  with retries and backoff, marked delivered only after the channel said so, and dead after
  ``alerts.retry_for``. A crash between a successful send and its mark sends that one message
  again after the restart (at least once, never lost).
- Rows held by quiet hours that come due together go out as one catch-up summary.
- ``max_per_hour`` per route: rows over the budget wait five minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from listener.alerting import deliver as channel
from listener.alerting import lifecycle
from listener.config import Settings
from listener.storage import alerts as db

log = logging.getLogger(__name__)

Sender = Callable[..., channel.Delivery]


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    postponed: int = 0
    errors: list[str] = field(default_factory=list)


def deliver(
    engine: Engine, settings: Settings, now: datetime, *, send: Sender = channel.send
) -> DeliveryReport:
    """Send every due outbox row once (see the module docstring)."""
    report = DeliveryReport()
    by_name = {r.name: r for r in settings.routes}
    retry_for = timedelta(seconds=settings.alerts.retry_for)
    batches: dict[str, list[db.OutboxItem]] = {}
    for item in db.due(engine, now):
        batches.setdefault(item.route, []).append(item)
    for key, items in batches.items():
        name, _, index = key.rpartition("#")
        route = by_name.get(name)
        if route is None or not index.isdigit() or int(index) >= len(route.urls):
            for item in items:
                db.failed(engine, item.id, error="the route is no longer configured",
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
            sent = db.sent_since(engine, key, now - timedelta(hours=1))
            if sent >= route.max_per_hour:
                for item in group:
                    db.failed(engine, item.id, error="rate limited (max_per_hour)",
                              retry_at=now + timedelta(minutes=5), now=now)  # fmt: skip
                    report.postponed += 1
                continue
            title, body, body_format = _combined(group)
            outcome = send(url, title=title, body=body, body_format=body_format)
            if outcome.ok:
                for item in group:
                    db.delivered(engine, item.id, now)
                report.delivered += len(group)
                continue
            error = outcome.error or "delivery failed"
            report.errors.append(f"{name}: {error}")
            for item in group:
                retry = lifecycle.retry_at(item.attempts, item.created_at, now, retry_for)
                db.failed(engine, item.id, error=error, retry_at=retry, now=now)
                if retry is None:
                    report.dead += 1
                    log.error("delivery %s to route %s is dead: %s", item.id, name, error)
                else:
                    report.failed += 1
                    log.warning(
                        "delivery %s to route %s failed, retrying: %s", item.id, name, error
                    )
    return report


HELD = timedelta(minutes=5)  # a notification due this long after it was written was held


def _combined(items: list[db.OutboxItem]) -> tuple[str, str, str]:
    """One message for one item; a catch-up summary for several held by quiet hours."""
    if len(items) == 1:
        return items[0].title, items[0].body, items[0].body_format
    body_format = items[0].body_format
    separator = "<hr>" if body_format == "html" else "\n\n---\n\n"
    title = f"[SUMMARY] {len(items)} notifications held by quiet hours"
    return title, separator.join(item.body for item in items), body_format
