"""The daemon: APScheduler (AsyncIOScheduler) runs one job per source on its interval, with
jitter and never two runs of one source at once, plus detection and delivery every bucket.

Rules:
- Signal handlers only set flags or schedule work; the main coroutine does it. SIGTERM/SIGINT
  stop gracefully and within a fixed budget, whatever hangs: no new job starts, a delivery
  stops before its next message (one hanging in a send is abandoned: it stays in the outbox,
  marked uncertain, and is sent again with the same key after a restart), running polls get
  ``GRACE_SECONDS`` to finish (their writes complete or roll back, nothing is half-stored),
  then they are cancelled quietly (no job traceback) and get 1 s to end; parser workers are
  not waited for (one still starting, loading its models on a loaded machine, held a stop for
  seconds); queued database writes get ``WRITER_SECONDS`` and the final database calls
  (instance rows, leadership) ``CLEANUP_SECONDS``, all off the event loop. So a stop takes at
  most about 4 + 1 + 1 + 2 = 8 s. Threads stuck in a hanging call are not waited for
  (``listener run`` exits the process). A second SIGINT exits at once.
- Database faults (``daemon.dbhealth``): one warning per failure kind with backoff, never a
  traceback per job; while failing, jobs that need the database wait for the backoff instead of
  queueing behind a lock (one job at a time tries again); the health probe (a rolled-back write
  on SQLite, every few seconds while failing) notices recovery, and the sources whose polls
  fell into the outage are polled at once then, not an interval later; /healthz says
  "database failing (...)".
- SIGHUP reloads the configuration: a valid one replaces sources, brands, routes and schedules
  at once (a new poller is prepared before the old one is retired); an invalid one is logged in
  one line and the old configuration keeps running.
- Several instances (PostgreSQL): each poll is claimed in the database first, so exactly one
  instance polls a source per interval; the brands are shared among the live instances by
  leases (``sharing``: renewed by a light job every few seconds, which also evaluates brands
  just taken over at once), each evaluating its share every bucket; one instance, holding the
  leader lock, runs what is about every brand (source health, repeats, digests) and delivery
  (also every ``OUTBOX_SECONDS``, for what the others wrote); every instance writes a
  heartbeat. On SQLite a second daemon is refused.
- Time: job times are re-anchored when the wall clock jumps (``clock.Scheduler``), together
  with the poll times this instance stored; a source is never polled before the time its
  backoff or Retry-After set (checked in the database and, for this process's own polls, on
  the monotonic clock); its job is moved to that time instead of waiting a whole interval.
- systemd (Type=notify): READY=1 when polling has started, RELOADING=1/READY=1 around a reload,
  STOPPING=1 on shutdown, WATCHDOG=1 every half WatchdogSec but only while the event loop runs
  and the database answers.

Size: about 530 lines on purpose: the run loop, the job factories and reload all work on one
``Runtime`` (scheduler, poller, leadership, database health) and change together; the parts that
stand alone live beside it (``lifecycle``, ``dbhealth``, ``clock``, ``metrics``, ``notify``,
``sharing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from listener import heap
from listener.checks import check
from listener.config import Settings, SourceSettings, load_config
from listener.daemon.clock import Scheduler
from listener.daemon.dbhealth import DatabaseHealth
from listener.daemon.lifecycle import GRACE_SECONDS, drain, watch
from listener.daemon.metrics import Metrics, serve
from listener.daemon.notify import monotonic_usec, notify
from listener.daemon.sharing import Sharing, renew_interval
from listener.errors import ListenerError
from listener.service.poll import Poller, http_settings
from listener.sources.client import Client
from listener.storage import instances
from listener.storage.sql import outage

log = logging.getLogger(__name__)
CLEANUP_SECONDS = 2.0
WRITER_SECONDS = 1.0
HEARTBEAT_SECONDS = 30.0
OUTBOX_SECONDS = 15.0  # PostgreSQL: how often the leader delivers what followers wrote


@dataclass
class _Runtime:
    settings: Settings
    poller: Poller
    me: str
    leadership: instances.Leadership
    sharing: Sharing
    running: set[asyncio.Task[object]] = field(default_factory=set)
    last_cycle_at: datetime | None = None
    metrics: Metrics = field(default_factory=Metrics)
    database: DatabaseHealth = field(default_factory=DatabaseHealth)
    stopping: threading.Event = field(default_factory=threading.Event)
    delivering: threading.Lock = field(default_factory=threading.Lock)  # one deliver at a time

    def storage_failed(self, what: str, exc: ListenerError) -> None:
        """A job's database error: to ``database`` when it is an outage, else one error line."""
        kind = outage(exc)
        if kind is not None:
            self.database.failed(kind, " ".join(str(exc).split()))
        else:
            log.error("%s: %s", what, exc)

    not_before: dict[str, float] = field(default_factory=dict)  # monotonic, per source
    polled: set[str] = field(default_factory=set)  # sources this process polled
    put_off: set[str] = field(default_factory=set)  # sources whose poll fell into an outage


async def run_daemon(settings: Settings, engine: Engine) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    stop = asyncio.Event()
    reload_requested = asyncio.Event()
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
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)

    started = datetime.now(UTC)
    single = None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        single = instances.SingleInstance(Path(str(engine.url.database)))
        single.acquire()  # a second daemon on one SQLite file is refused with a clear message
    async with Client(http_settings(settings)) as client:
        poller = Poller(settings, engine, client)
        await poller.prepare()
        me = instances.instance_id(started)
        runtime = _Runtime(settings, poller, me, instances.Leadership(engine), Sharing(engine, me))
        poller.on_outage = runtime.database.failed
        runtime.metrics.database_problem = runtime.database.problem
        await asyncio.to_thread(
            instances.heartbeat, engine, me, started=started, now=started, leader=False
        )
        await asyncio.to_thread(runtime.sharing.enlist, settings, started)

        def on_jump(seconds: float) -> None:
            try:  # one short UPDATE, before any job runs on the moved clock
                instances.shift_times(engine, me, seconds)
            except ListenerError as exc:
                log.error("clock jump: %s", exc)

        scheduler = Scheduler(timezone=UTC, on_jump=on_jump)
        _schedule(scheduler, runtime, engine)
        scheduler.start()
        endpoint = None
        if settings.metrics.listen:
            host, _, port = settings.metrics.listen.rpartition(":")
            endpoint = await serve(runtime.metrics, host.strip("[]"), int(port))
        watchdog = asyncio.create_task(watch(engine, runtime.metrics, runtime.database))
        notify("READY=1", f"STATUS=polling {len(_enabled(settings))} sources")
        log.info(
            "listener running: %d sources, %d brands",
            len(_enabled(settings)),
            len(settings.brands),
        )
        while not stop.is_set():
            waiters: set[asyncio.Task[object]] = {
                asyncio.create_task(stop.wait()),
                asyncio.create_task(reload_requested.wait()),
            }
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if reload_requested.is_set() and not stop.is_set():
                reload_requested.clear()
                await _reload(scheduler, runtime, engine, client)
        notify("STOPPING=1")
        runtime.stopping.set()
        log.info("stopping: waiting up to %gs for running work", GRACE_SECONDS)
        watchdog.cancel()
        if endpoint is not None:
            endpoint.close()
        await drain(scheduler, runtime.running)
        # on the loop, bounded: to_thread could queue behind threads stuck in hanging calls
        if not runtime.poller.close(WRITER_SECONDS):
            log.warning(
                "stopping: database writes still running after %gs are left to roll back",
                WRITER_SECONDS,
            )
        with contextlib.suppress(ListenerError, TimeoutError):
            async with asyncio.timeout(CLEANUP_SECONDS):  # a locked or lost database: give up
                await asyncio.to_thread(instances.release_all, engine, me)
                await asyncio.to_thread(runtime.sharing.release)
                await asyncio.to_thread(instances.forget, engine, me)
                await asyncio.to_thread(runtime.leadership.release)
    if single is not None:
        single.release()
    log.info("stopped")
    return 0


def _enabled(settings: Settings) -> list[SourceSettings]:
    return [s for s in settings.sources if s.enabled]


def _first_detection(settings: Settings) -> float:
    """Seconds from start to the first detection run."""
    return min(60.0, settings.detection.bucket)


def _schedule(scheduler: AsyncIOScheduler, runtime: _Runtime, engine: Engine) -> None:
    """(Re)create every job from ``runtime.settings``."""
    for job in scheduler.get_jobs():
        job.remove()
    settings = runtime.settings
    now = datetime.now(UTC)

    async def tracked(coroutine: object) -> None:
        task = asyncio.current_task()
        if task is not None:
            runtime.running.add(task)
        try:
            await coroutine  # type: ignore[misc]
        except asyncio.CancelledError:
            log.debug("a job was cancelled (reload or shutdown)")  # over: no traceback
        finally:
            if task is not None:
                runtime.running.discard(task)

    def postpone(source: SourceSettings, seconds: float) -> None:
        """Run the source's job next in ``seconds`` (plus jitter, never minus)."""
        jitter = random.uniform(0, runtime.settings.polling.jitter)  # noqa: S311 (not crypto)
        scheduler.check_clock()  # a jump not yet seen would move this time twice
        when = datetime.now(UTC) + timedelta(seconds=seconds + jitter)
        with contextlib.suppress(LookupError):  # the job is gone (reload)
            scheduler.modify_job(f"poll:{source.name}", next_run_time=when)

    def resume() -> None:
        """The database answers again: poll now what its outage put off."""
        waiting = [s for s in _enabled(runtime.settings) if s.name in runtime.put_off]
        runtime.put_off.clear()
        if waiting and not runtime.stopping.is_set():
            log.info("polling %d sources put off while the database failed", len(waiting))
            for source in waiting:
                postpone(source, 0.0)

    runtime.database.on_recovery = resume

    async def poll_job(source: SourceSettings) -> None:
        async def work() -> None:
            if runtime.stopping.is_set():
                return
            wait = runtime.not_before.get(source.name, 0.0) - time.monotonic()
            if wait > 0:  # backoff or Retry-After of our own last poll, on the monotonic clock
                postpone(source, wait)
                return
            if not runtime.database.may_try():
                # the database is failing: its backoff, not a queue behind a lock; polled
                # as soon as it answers again
                runtime.put_off.add(source.name)
                return
            moment = datetime.now(UTC)
            interval = runtime.settings.source_interval(source)
            until = moment + timedelta(seconds=interval * 0.9)
            try:
                source_id = await runtime.poller.source_id(source.name)
                mine = await asyncio.to_thread(
                    instances.claim,
                    engine,
                    source_id,
                    runtime.me,
                    moment,
                    until,
                    moment,
                    # our own last poll: its wait is kept on the monotonic clock (not_before)
                    own_schedule=source.name in runtime.polled,
                )
            except ListenerError as exc:
                runtime.storage_failed(f"source {source.name}", exc)
                return
            runtime.put_off.discard(source.name)  # polled now, not again on recovery
            runtime.database.recovered()  # the claim was a write
            if not mine:
                due = await asyncio.to_thread(instances.due_at, engine, source_id)
                if due is not None and due > moment:  # backing off: come back when it is due
                    postpone(source, (due - moment).total_seconds())
                else:
                    log.debug("source %s is polled by another instance", source.name)
                return
            outcome = await runtime.poller.poll(source, force=True)
            runtime.polled.add(source.name)
            if outcome.next_in is not None:  # backoff, Retry-After, a gap read again
                runtime.not_before[source.name] = time.monotonic() + outcome.next_in
                postpone(source, outcome.next_in)
            runtime.last_cycle_at = datetime.now(UTC)
            metrics = runtime.metrics
            metrics.polls.labels(source.name, outcome.status).inc()
            metrics.poll_seconds.labels(source.name).observe(outcome.elapsed)
            metrics.mentions.inc(outcome.new)
            if outcome.status == "failed":
                metrics.poll_errors.labels(source.name).inc()
            if outcome.status == "ok":
                log.info(
                    "polled %s: %d items, %d new, %d updated",
                    source.name,
                    outcome.items,
                    outcome.new,
                    outcome.updated,
                )

        await tracked(work())

    async def alert_job() -> None:
        from listener.service.cycle import detect_and_deliver

        current = runtime.settings

        def work(leading: bool) -> None:
            from listener.storage import alerts as alert_store
            from listener.storage import outbox as outbox_store

            moment = datetime.now(UTC)
            brands = runtime.sharing.brands(current, moment)  # all, or our share (PostgreSQL)
            with runtime.metrics.detector_seconds.time():
                done = detect_and_deliver(
                    engine, current, moment, stop=runtime.stopping, delivering=runtime.delivering,
                    brands=brands, leading=leading,
                )  # fmt: skip
            runtime.metrics.brands.set(len(brands))
            result, report = done.evaluation, done.delivery
            runtime.metrics.count_alerts(
                alert_store.count_by_state(engine), outbox_store.backlog(engine)
            )
            heap.trim()  # every bucket: what this run and the polls since the last left free
            if result.fired or result.escalated or result.resolved or report.delivered:
                log.info(
                    "alerts: %d fired, %d escalated, %d resolved; %d delivered, %d failed",
                    result.fired, result.escalated, result.resolved, report.delivered,
                    report.failed,
                )  # fmt: skip

        async def run() -> None:
            if runtime.database.waiting() or runtime.stopping.is_set():
                return
            leading = await asyncio.to_thread(runtime.leadership.try_lead)
            if not leading and not runtime.sharing.shared:
                return  # another instance leads detection and delivery
            try:  # followers evaluate their share of the brands; the leader the rest too
                await asyncio.to_thread(work, leading)
            except ListenerError as exc:
                runtime.storage_failed("alerting", exc)

        await tracked(run())

    async def lease_job() -> None:
        """PostgreSQL: renew and rebalance the brand leases; evaluate brands just taken over."""
        from listener.service.alert import evaluate_brands

        current = runtime.settings

        def work() -> None:
            moment = datetime.now(UTC)
            brands = runtime.sharing.takeover(current, moment)
            if brands:
                result = evaluate_brands(engine, current, moment, brands)
                log.info(
                    "detection: evaluated %d brands just taken over: %d fired, %d escalated, "
                    "%d resolved", len(brands), result.fired, result.escalated, result.resolved,
                )  # fmt: skip

        async def run() -> None:
            if runtime.database.waiting() or runtime.stopping.is_set():
                return
            try:
                await asyncio.to_thread(work)
            except ListenerError as exc:
                runtime.storage_failed("leases", exc)

        await tracked(run())

    for source in _enabled(settings):
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

    async def heartbeat_job() -> None:
        await tracked(beat())

    async def beat() -> None:
        try:
            await asyncio.to_thread(
                instances.heartbeat,
                engine,
                runtime.me,
                started=started_at,
                now=datetime.now(UTC),
                leader=runtime.leadership.leading,
                last_cycle_at=runtime.last_cycle_at,
            )
        except ListenerError as exc:
            runtime.storage_failed("heartbeat", exc)

    started_at = now
    scheduler.add_job(
        heartbeat_job,
        IntervalTrigger(seconds=HEARTBEAT_SECONDS, timezone=UTC),
        id="heartbeat",
        name="heartbeat",
        max_instances=1,
        coalesce=True,
        next_run_time=now + timedelta(seconds=1),
    )

    async def prune_job() -> None:
        await tracked(prune_now())

    async def prune_now() -> None:
        from listener.service.retention import prune

        if not await asyncio.to_thread(runtime.leadership.try_lead):
            return  # the leader prunes
        current = runtime.settings
        try:
            result = await asyncio.to_thread(prune, engine, current, datetime.now(UTC))
        except ListenerError as exc:
            runtime.storage_failed("retention", exc)
            return
        if result.mentions:
            log.info("retention: pruned %d mentions", result.mentions)

    scheduler.add_job(
        prune_job,
        IntervalTrigger(hours=24, timezone=UTC),
        id="retention",
        name="retention",
        max_instances=1,
        coalesce=True,
        next_run_time=now + timedelta(minutes=10),
    )

    async def outbox_job() -> None:
        """Once at start: what the outbox holds (a delivery cut short by the last shutdown)."""
        from listener.service.deliver import deliver

        current = runtime.settings

        def work() -> None:
            with runtime.delivering:
                deliver(engine, current, datetime.now(UTC), stop=runtime.stopping)

        async def run() -> None:
            if runtime.database.waiting() or runtime.stopping.is_set():
                return
            if not await asyncio.to_thread(runtime.leadership.try_lead):
                return
            try:
                await asyncio.to_thread(work)
            except ListenerError as exc:
                runtime.storage_failed("delivery", exc)

        await tracked(run())

    if settings.routes:
        # PostgreSQL: the leader also delivers between its runs what the others' wrote
        trigger = (
            IntervalTrigger(seconds=OUTBOX_SECONDS, timezone=UTC)
            if runtime.sharing.shared
            else DateTrigger(now + timedelta(seconds=2), timezone=UTC)
        )
        scheduler.add_job(
            outbox_job, trigger, id="outbox", name="deliver the outbox", max_instances=1,
            coalesce=True, misfire_grace_time=None, next_run_time=now + timedelta(seconds=2),
        )  # fmt: skip
    if settings.brands and runtime.sharing.shared:
        renew = renew_interval(settings.detection.bucket)
        scheduler.add_job(
            lease_job, IntervalTrigger(seconds=renew, timezone=UTC), id="leases",
            name="brand leases", max_instances=1, coalesce=True,
            next_run_time=now + timedelta(seconds=renew),
        )  # fmt: skip
    if settings.brands:
        scheduler.add_job(
            alert_job,
            IntervalTrigger(seconds=settings.detection.bucket, timezone=UTC),
            id="alerts",
            name="detect and deliver",
            max_instances=1,
            coalesce=True,
            next_run_time=now + timedelta(seconds=_first_detection(settings)),
        )


async def _reload(
    scheduler: AsyncIOScheduler, runtime: _Runtime, engine: Engine, client: Client
) -> None:
    """SIGHUP: swap in a valid new configuration, keep the old one otherwise."""
    notify("RELOADING=1", monotonic_usec())
    path = runtime.settings.path
    try:
        settings = await asyncio.to_thread(load_config, str(path) if path else None)
        check(settings)
        if settings.database != runtime.settings.database:
            raise ListenerError("[database] cannot change on reload; restart the service")
        poller = Poller(settings, engine, client)
        poller.on_outage = runtime.database.failed
        await poller.prepare()
    except ListenerError as exc:
        log.error("reload failed, still running the previous configuration: %s", exc)
        notify("READY=1", "STATUS=reload failed; running the previous configuration")
        return
    old = runtime.poller
    runtime.settings, runtime.poller = settings, poller
    _schedule(scheduler, runtime, engine)
    # polls already running on the old poller finish before it is retired; those still
    # running (hanging, or queued for a host slot) after the grace are cancelled, which hands
    # their host slots back to the new configuration's sources
    retiring = set(runtime.running)
    if retiring:
        _, stuck = await asyncio.wait(retiring, timeout=GRACE_SECONDS)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=GRACE_SECONDS)
    await asyncio.to_thread(old.close)  # its workers finish off the event loop
    log.info(
        "configuration reloaded: %d sources, %d brands",
        len(_enabled(settings)),
        len(settings.brands),
    )
    notify("READY=1", f"STATUS=polling {len(_enabled(settings))} sources")
