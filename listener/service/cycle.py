"""One cycle: poll -> detect and alert -> deliver. The one composition of the service steps.

The daemon (its alert job: detection and delivery on every bucket, polls on their own
schedules), ``listener poll --once`` and ``listener demo`` all run their cycles through here, so
"detect, then deliver" is written once.

Rules:
- Detection runs only when brands are configured; delivery follows detection in the same call,
  with the same ``now``, so what a cycle decided is sent in that cycle. Several instances on
  PostgreSQL: each evaluates its share of the brands; the leader also runs what is about every
  brand (source health, repeats, digests) and delivers the outbox, the rows every instance
  wrote (delivery stays on one instance: the outbox lease is not a claim, and ``max_per_hour``
  counts one sender's deliveries).
- ``stop`` (the daemon's shutdown) reaches delivery: no new send starts once it is set.
- ``delivering`` (the daemon's lock) is held while the outbox is sent, so a shutdown can wait
  for a send in flight.
- This is the only service module that imports its siblings (``scripts/imports.py`` checks it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from listener.config import BrandSettings, Settings
from listener.service.alert import Evaluation, evaluate_brands, evaluate_overall
from listener.service.deliver import DeliveryReport, deliver
from listener.service.poll import Poller, PollOutcome


@dataclass(frozen=True, slots=True)
class Alerted:
    """What detection decided and delivery did in one cycle."""

    evaluation: Evaluation
    delivery: DeliveryReport


@dataclass(frozen=True, slots=True)
class CycleReport:
    """One cycle: every poll's outcome, how long polling took, and what detection and delivery
    did (None when no brand is configured)."""

    polls: list[PollOutcome]
    poll_seconds: float
    alerted: Alerted | None


def detect_and_deliver(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    stop: threading.Event | None = None,
    delivering: AbstractContextManager[object] | None = None,
    brands: Sequence[BrandSettings] | None = None,
    leading: bool = True,
) -> Alerted:
    """Detection for every brand (episodes, outbox rows), then delivery of the due outbox.

    Several instances on PostgreSQL: ``brands`` is this instance's share; only the leader
    (``leading``) runs the rest of detection (source health, repeats, digests) and delivery."""
    now = now or datetime.now(UTC)
    evaluation = evaluate_brands(
        engine, settings, now, settings.brands if brands is None else brands
    )
    if not leading:
        return Alerted(evaluation, DeliveryReport())
    evaluate_overall(engine, settings, now, evaluation)
    with delivering if delivering is not None else nullcontext():
        delivery = deliver(engine, settings, now, stop=stop)
    return Alerted(evaluation, delivery)


async def run(
    poller: Poller,
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    on_done: Callable[[PollOutcome], None] | None = None,
) -> CycleReport:
    """Poll every enabled source once, then detect and deliver (off the event loop) at ``now``
    (None: the time polling ended)."""
    started = time.monotonic()
    polls = await poller.poll_all(on_done=on_done)
    elapsed = time.monotonic() - started
    alerted = None
    if settings.brands:
        alerted = await asyncio.to_thread(detect_and_deliver, engine, settings, now)
    return CycleReport(polls, elapsed, alerted)
