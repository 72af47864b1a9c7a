"""The daemon's scheduler: a job that overruns its interval is logged once per overrun, not
once per skipped run (APScheduler's own warning), with the count when it ends."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.triggers.interval import IntervalTrigger

from listener.daemon.clock import Scheduler


def test_an_overrunning_job_is_one_line_per_overrun(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> tuple[int, int]:
        scheduler = Scheduler(timezone=UTC)
        skips = 0
        enough = asyncio.Event()
        release = asyncio.Event()
        runs = 0
        finished = asyncio.Event()

        def skipped(event: JobSubmissionEvent) -> None:
            nonlocal skips
            skips += 1
            if skips in (4, 7):  # 4 skips in the first overrun, 3 more in the second
                enough.set()

        async def slow() -> None:
            nonlocal runs
            runs += 1
            if runs > 2:
                return  # after two overruns, runs end at once
            await release.wait()  # runs until the test lets it end: no timing involved
            release.clear()
            finished.set()

        scheduler.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            slow, IntervalTrigger(seconds=0.05, timezone=UTC), id="poll:slow", name="poll slow",
            max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
        )  # fmt: skip
        scheduler.start()
        for _ in range(2):  # two overruns
            await enough.wait()
            enough.clear()
            finished.clear()
            release.set()
            await finished.wait()
            await asyncio.sleep(0)  # the executed event reaches the scheduler
        scheduler.shutdown(wait=False)
        return skips, runs

    skips, runs = asyncio.run(scenario())
    records = [r for r in caplog.records if r.name.startswith(("listener", "apscheduler"))]
    overruns = [r for r in records if "still running at its next run time" in r.getMessage()]
    apscheduler = [r for r in records if "maximum number of running instances" in r.getMessage()]
    ended = [
        int(m.group(1))
        for r in records
        if (m := re.fullmatch(r"poll slow ended; (\d+) runs skipped while it ran", r.getMessage()))
    ]
    assert skips >= 7 and runs >= 2
    assert len(overruns) == 2 and overruns[0].levelno == logging.WARNING
    assert "poll slow" in overruns[0].getMessage()
    assert apscheduler == []
    assert len(ended) == 2 and ended[0] >= 4 and sum(ended) == skips
