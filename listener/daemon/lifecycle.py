"""The daemon's shutdown drain and its health watchdog (used by ``listener.daemon``).

Rules:
- ``drain``: no job traceback at shutdown. The scheduler is paused, running jobs get
  ``GRACE_SECONDS``, the rest are cancelled by us (the daemon's ``tracked`` wrapper ends them
  quietly), and only then does APScheduler shut down, with nothing left for it to cancel.
- ``watch``: the database is probed regularly (a read; on SQLite also a rolled-back write, so a
  locked or read-only file counts as failing); WATCHDOG=1 every half WatchdogSec (with a
  watchdog) while it answers, every ``FAILING_CHECK_SECONDS`` while it fails; failures and
  recovery go to ``DatabaseHealth``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine

from listener.daemon.dbhealth import DatabaseHealth
from listener.daemon.metrics import Metrics
from listener.daemon.notify import notify, watchdog_interval
from listener.storage.engine import probe

log = logging.getLogger("listener.daemon")
GRACE_SECONDS = 4.0
HEALTH_SECONDS = 30.0
DB_CHECK_SECONDS = 10.0
FAILING_CHECK_SECONDS = 5.0


async def drain(scheduler: AsyncIOScheduler, running: set[asyncio.Task[object]]) -> None:
    """Stop the scheduler without a job traceback: no new runs; the running ones get the grace
    period, then are cancelled by us (``tracked`` ends them quietly); only then does APScheduler
    shut down, with nothing left for it to cancel."""
    scheduler.pause()
    for _ in range(3):  # jobs submitted just before the pause start and register themselves
        await asyncio.sleep(0)
    if running:
        _, late = await asyncio.wait(set(running), timeout=GRACE_SECONDS)
        for task in late:
            task.cancel()
        if late:
            log.info("stopping: cancelled %d jobs still running after %gs", len(late),
                     GRACE_SECONDS)  # fmt: skip
            await asyncio.wait(late, timeout=1.0)
    scheduler.shutdown(wait=False)


async def watch(engine: Engine, metrics: Metrics, database: DatabaseHealth) -> None:
    """Health: the database is asked regularly (a read, and on SQLite a rolled-back write);
    WATCHDOG=1 every half WatchdogSec (with a watchdog) while the loop runs and the database
    answers; /healthz says the same."""
    interval = watchdog_interval()
    every = interval if interval is not None else HEALTH_SECONDS
    metrics.health_window = max(2 * every + DB_CHECK_SECONDS, 30.0)
    while True:
        try:
            found = await asyncio.wait_for(asyncio.to_thread(probe, engine), DB_CHECK_SECONDS)
        except TimeoutError:
            found = ("unavailable", f"no answer within {DB_CHECK_SECONDS:g} s")
        if found is not None:  # the database is not healthy: no ping, systemd decides
            kind, reason = found
            metrics.problem = "database check failed"
            database.failed(kind, reason)
            log.debug("watchdog: database check failed: %s", reason)
        else:
            metrics.problem = ""
            metrics.healthy_at = time.monotonic()
            database.recovered()
            if interval is not None:
                notify("WATCHDOG=1")
        # while the database fails, look more often: recovery resumes the polls put off
        await asyncio.sleep(min(every, FAILING_CHECK_SECONDS) if database.failing else every)
