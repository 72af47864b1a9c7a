"""The daemon: APScheduler (AsyncIOScheduler) runs one job per source on its interval, with
jitter and never two runs of one source at once; signal handlers only set a flag; the main
coroutine waits for it and shuts down within a bounded grace period.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from listener.config import Settings, SourceSettings
from listener.errors import ListenerError
from listener.pipeline import Poller, http_settings
from listener.sources.client import Client

log = logging.getLogger(__name__)
GRACE_SECONDS = 20.0


async def run_daemon(settings: Settings, engine: Engine) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal(signum: int) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1 and signum == signal.SIGINT:
            log.warning("second interrupt: exiting now")
            raise SystemExit(1)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    async with Client(http_settings(settings)) as client:
        poller = Poller(settings, engine, client)
        await poller.prepare()
        scheduler = AsyncIOScheduler(timezone=UTC)
        running: set[asyncio.Task[object]] = set()

        async def poll_job(source: SourceSettings) -> None:
            task = asyncio.current_task()
            if task is not None:
                running.add(task)
            try:
                outcome = await poller.poll(source)
                if outcome.status == "ok":
                    log.info(
                        "polled %s: %d items, %d new, %d updated",
                        source.name,
                        outcome.items,
                        outcome.new,
                        outcome.updated,
                    )
            finally:
                if task is not None:
                    running.discard(task)

        now = datetime.now(UTC)
        enabled = [s for s in settings.sources if s.enabled]
        for source in enabled:
            interval = settings.source_interval(source)
            # spread the first polls over the jitter window instead of all at once
            first = now + timedelta(
                seconds=random.uniform(0, min(settings.polling.jitter, interval))  # noqa: S311 (not crypto)
            )
            scheduler.add_job(
                poll_job,
                IntervalTrigger(seconds=interval, jitter=settings.polling.jitter, timezone=UTC),
                args=[source],
                id=f"poll:{source.name}",
                name=f"poll {source.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(interval),
                next_run_time=first,
            )

        async def alert_job() -> None:
            """Detection and delivery, every bucket, in a worker thread (off the event loop)."""
            from listener.alarm import deliver, evaluate

            def work() -> None:
                now = datetime.now(UTC)
                result = evaluate(engine, settings, now)
                report = deliver(engine, settings, now)
                if result.fired or result.escalated or result.resolved or report.delivered:
                    log.info(
                        "alerts: %d fired, %d escalated, %d resolved; %d delivered, %d failed",
                        result.fired, result.escalated, result.resolved, report.delivered,
                        report.failed,
                    )  # fmt: skip

            try:
                await asyncio.to_thread(work)
            except ListenerError as exc:
                log.error("alerting: %s", exc)

        if settings.brands:
            scheduler.add_job(
                alert_job,
                IntervalTrigger(seconds=settings.detection.bucket, timezone=UTC),
                id="alerts",
                name="detect and deliver",
                max_instances=1,
                coalesce=True,
                next_run_time=now + timedelta(seconds=min(60.0, settings.detection.bucket)),
            )
        scheduler.start()
        log.info("listener running: %d sources, %d brands", len(enabled), len(settings.brands))
        await stop.wait()
        log.info("stopping: waiting up to %ds for running polls", GRACE_SECONDS)
        scheduler.shutdown(wait=False)
        if running:
            _, pending = await asyncio.wait(set(running), timeout=GRACE_SECONDS)
            for task in pending:
                task.cancel()
        poller.close()
    log.info("stopped")
    return 0
