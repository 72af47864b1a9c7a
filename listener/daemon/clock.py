"""The daemon's scheduler, re-anchored when the wall clock jumps.

APScheduler keeps next run times as wall-clock datetimes, so a wall clock stepped back by a day
would stop every job for a day, and one stepped forward would make every job late at once
(daily retention included). ``Scheduler`` compares the wall clock with the monotonic clock
whenever it wakes up (at least every ``MAX_SLEEP`` seconds), and before it runs any job moves
every next run time by the jump and calls ``on_jump`` (the daemon moves the stored poll times of
its sources the same way), so intervals, backoff, Retry-After waits and daily jobs keep their
real length. Jumps below ``TOLERANCE`` (NTP slewing, scheduling noise) are ignored.

A job still running at its next run time (a poll that overruns its interval) is skipped by
APScheduler with a warning per skipped run; ``Scheduler`` logs one line per job and overrun
instead (the first skip), and when the job ends, how many runs were skipped (info).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)
TOLERANCE = 2.0  # seconds of disagreement between the clocks taken as a jump
MAX_SLEEP = 5.0  # the scheduler looks at the clocks at least this often


def offset() -> float:
    """Wall clock minus monotonic clock: constant while no one steps the wall clock."""
    return time.time() - time.monotonic()


_SKIPPED = "maximum number of running instances reached"


class OverrunLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """APScheduler's logger, with its "skipped: maximum number of running instances reached"
    warning turned into one line per job and overrun (an episode lasts until the job's running
    instance ends: ``ended``)."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("apscheduler.scheduler"), {})
        self.skipped: dict[str, int] = {}  # job id -> runs skipped in its current overrun

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        if not (isinstance(msg, str) and _SKIPPED in msg and args):
            super().warning(msg, *args, **kwargs)
            return
        job = args[0]
        ident = str(getattr(job, "id", job))
        before = self.skipped.get(ident, 0)
        self.skipped[ident] = before + 1
        if not before:
            log.warning(
                "%s is still running at its next run time; its runs are skipped until it ends",
                getattr(job, "name", ident),
            )

    def ended(self, ident: str, name: str) -> None:
        skipped = self.skipped.pop(ident, 0)
        if skipped:
            log.info("%s ended; %d runs skipped while it ran", name, skipped)


class Scheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An AsyncIOScheduler whose job times follow the monotonic clock."""

    def __init__(self, *, on_jump: Callable[[float], None] | None = None, **options: object):
        self.overruns = OverrunLog()
        super().__init__(logger=self.overruns, **options)
        self.on_jump = on_jump
        self._offset = offset()
        self.add_listener(self._job_ended, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _job_ended(self, event: JobExecutionEvent) -> None:
        job = self.get_job(event.job_id)
        self.overruns.ended(event.job_id, job.name if job is not None else event.job_id)

    def check_clock(self) -> None:
        """Re-anchor now if the wall clock jumped since the last look (call before computing
        a run time from the wall clock)."""
        now = offset()
        jump = now - self._offset
        if abs(jump) >= TOLERANCE:
            self._offset = now
            self.reanchor(jump)
        elif abs(jump) > 0.01:
            self._offset = now  # slewing: follow it

    def _process_jobs(self) -> float | None:
        self.check_clock()
        wait = super()._process_jobs()
        return MAX_SLEEP if wait is None else min(wait, MAX_SLEEP)

    def reanchor(self, jump: float) -> None:
        """Move every job's next run time by ``jump`` seconds (what the wall clock moved)."""
        log.warning(
            "the wall clock jumped %s by %s; schedules moved with it",
            "forward" if jump > 0 else "back",
            timedelta(seconds=round(abs(jump))),
        )
        shift = timedelta(seconds=jump)
        # APScheduler 3.x has no public way to move a job without waking the scheduler (which
        # would call this method again); its job stores and Job._modify are stable in 3.x
        with self._jobstores_lock:
            for store in self._jobstores.values():
                for job in store.get_all_jobs():
                    if job.next_run_time is not None:
                        job._modify(next_run_time=job.next_run_time + shift)
                        store.update_job(job)
        if self.on_jump is not None:
            self.on_jump(jump)
