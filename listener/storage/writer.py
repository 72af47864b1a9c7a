"""Group commit: store operations from many concurrent polls run in one dedicated thread, many
to a transaction.

Why: measured on 1,000 sources, one transaction per poll cost ~5 ms each, mostly waiting for the
GIL between the event loop and the database thread, so the database thread became the
bottleneck of the whole cycle. Draining everything that is queued into one transaction turns a
thousand hand-offs into a few dozen.

Rules: operations are plain functions of a Connection; they run in submission order. Grouped
operations (``run_grouped``) go further: every payload queued for the same group function is
handed to one call, so a thousand polls' ingests become a few set-based statements; a batch
started by a grouped job submitted with ``wait`` (a poll with mentions) waits up to ``linger``
seconds for more to join it (not once a job that is not to wait has joined). Only those wait:
a poll holds its concurrency slot until it is stored, so a wait costs polls that have little
to store (all-304 cycles) more time than the transactions it saves. If a batch fails, each of its
operations is retried alone in its own transaction, so one bad operation fails only its own
caller and nothing already stored is lost. SQLAlchemy errors reach callers as StorageError.
Async callers (``run``, ``run_grouped``) are woken once per transaction and event loop, not once
each: a thousand polls stored in a few transactions cost the loop a few wake-ups, not a thousand
cross-thread hand-offs.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from listener.errors import StorageError
from listener.storage.sql import describe

T = TypeVar("T")
P = TypeVar("P")
Operation = Callable[[Connection], Any]
Group = Callable[[Connection, list[Any]], list[Any]]
# (operation, future, group, payload, waits, awaited): a plain job has no group; a grouped job
# has no operation; ``waits``: the job may wait ``linger`` seconds for company (see
# ``submit_grouped``); ``awaited``: the asyncio future an async caller awaits (run, run_grouped)
_Job = tuple[Operation | None, "Future[Any]", Group | None, Any, bool, "asyncio.Future[Any] | None"]
# what a transaction did for one job: (job, result, error)
_Outcome = tuple[_Job, Any, BaseException | None]
# Seconds a waiting grouped job waits for others to share its transaction. Measured on 1,000
# feeds (10% matching, cold, every poll waiting): 0 s: ~700 transactions, 5.8 s of CPU in this
# thread; 0.02 s: 315, 3.9 s; 0.05 s: ~190, 3.4 s; 0.1 s: 101, 3.1 s.
LINGER = 0.05


class Writer:
    """Runs store operations in one thread, batching whatever is queued into one transaction."""

    def __init__(self, engine: Engine, *, max_batch: int = 256, linger: float = LINGER) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.linger = linger
        self.transactions = 0  # for tests and metrics
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="listener-db-writer", daemon=True)
        self._thread.start()

    def submit(self, operation: Callable[[Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((operation, future, None, None, False, None))
        return future

    async def run(self, operation: Callable[[Connection], T]) -> T:
        result: T = await self._awaited(operation, None, None, False)
        return result

    def submit_grouped(
        self, group: Callable[[Connection, list[P]], list[T]], payload: P, *, wait: bool = False
    ) -> Future[T]:
        """Queue ``payload`` for ``group``: one call of group(conn, payloads) serves every payload
        queued for it in the same batch and must return one result per payload, in order.
        ``wait``: a batch this job starts waits up to ``linger`` seconds for others to join (for
        jobs whose transaction costs much more than its rows: a poll's mentions to ingest); a
        job that does not wait ends the wait of the batch it joins."""
        future: Future[T] = Future()
        self._queue.put((None, future, group, payload, wait, None))
        return future

    async def run_grouped(
        self, group: Callable[[Connection, list[P]], list[T]], payload: P, *, wait: bool = False
    ) -> T:
        result: T = await self._awaited(None, group, payload, wait)
        return result

    async def _awaited(
        self, operation: Operation | None, group: Group | None, payload: Any, wait: bool
    ) -> Any:
        """Queue a job whose result an asyncio future receives, set on its loop together with
        the others of its transaction (``_deliver``). A caller cancelled before its job ran
        cancels the job, as asyncio.wrap_future would."""
        future: Future[Any] = Future()
        awaited = asyncio.get_running_loop().create_future()
        awaited.add_done_callback(partial(_cancel_job, future))
        self._queue.put((operation, future, group, payload, wait, awaited))
        return await awaited

    def close(self, timeout: float | None = None) -> bool:
        """Finish what is queued, then stop the thread; wait at most ``timeout`` seconds (None:
        as long as it takes). False when the thread is still busy then: it is a daemon thread,
        left to finish or to die with the process (each transaction commits or rolls back
        whole, so nothing is half-stored)."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            # a waiting job (a poll's mentions) waits a moment for others to share the
            # transaction: its fixed cost (statements built, compiled, committed) is most of a
            # small poll's store
            deadline = time.monotonic() + self.linger if first[4] else 0.0
            while len(batch) < self.max_batch:
                try:
                    wait = deadline - time.monotonic()
                    job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                if not job[4]:  # it is not to wait: commit what is here now
                    deadline = 0.0
                batch.append(job)
            live = [job for job in batch if job[1].set_running_or_notify_cancel()]
            if live:
                self._commit(live)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            self.transactions += 1
            with self.engine.begin() as conn:
                results = self._execute(conn, batch)
        except BaseException as exc:
            if len(batch) > 1:
                for job in batch:
                    self._commit([job])
                return
            if isinstance(exc, SQLAlchemyError):
                error: BaseException = StorageError(f"database write failed: {describe(exc)}")
                error.__cause__ = exc
            else:
                error = exc
            self._deliver([(batch[0], None, error)])
            return
        self._deliver([(job, result, None) for job, result in zip(batch, results, strict=True)])

    @staticmethod
    def _deliver(outcomes: list[_Outcome]) -> None:
        """Results to their futures; async callers' with one call per event loop."""
        loops: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            job, result, error = outcome
            if error is None:
                job[1].set_result(result)
            else:
                job[1].set_exception(error)
            if job[5] is not None:
                loops.setdefault(job[5].get_loop(), []).append(outcome)
        for loop, settled in loops.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, settled)

    @staticmethod
    def _execute(conn: Connection, batch: list[_Job]) -> list[Any]:
        """Plain operations in order, then each group once with all its payloads."""
        results: list[Any] = [None] * len(batch)
        groups: dict[Group, list[int]] = {}
        for index, (operation, _, group, _, _, _) in enumerate(batch):
            if group is not None:
                groups.setdefault(group, []).append(index)
            else:
                assert operation is not None
                results[index] = operation(conn)
        for group, indexes in groups.items():
            answers = group(conn, [batch[i][3] for i in indexes])
            for index, answer in zip(indexes, answers, strict=True):
                results[index] = answer
        return results


def _cancel_job(job: Future[Any], awaited: asyncio.Future[Any]) -> None:
    """An async caller gave up: its job does not run if it has not started."""
    if awaited.cancelled():
        job.cancel()


def _settle(outcomes: list[_Outcome]) -> None:
    """On the callers' loop: each awaited future gets its result (unless cancelled)."""
    for job, result, error in outcomes:
        awaited = job[5]
        if awaited is None or awaited.done():
            continue
        if error is None:
            awaited.set_result(result)
        else:
            awaited.set_exception(error)
