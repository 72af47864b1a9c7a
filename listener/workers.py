"""A pool of worker processes that needs no helper process: fresh interpreters fed over pipes.

Owns starting, feeding and ending the worker processes that ``service.parse`` runs parsing in.
``concurrent.futures.ProcessPoolExecutor`` with the "spawn" start method (no inherited threads
or sockets) also starts multiprocessing's resource tracker, a process of its own (13 MB
resident) that watches the named semaphores of its queues. This pool has none: each worker is
a fresh ``python`` running ``listener.worker.main``, with a pipe in and a pipe out, and a
thread here hands it one call at a time (pickled ``(function, args)`` in, ``(ok, result or
exception)`` out).

Rules (those of ProcessPoolExecutor that callers rely on):
- A worker is a fresh interpreter: it inherits no threads, sockets or open files but its pipes,
  and has this process's ``sys.path``. ``initializer(*initargs)`` runs
  first in each; a worker whose initializer fails exits.
- A worker that dies (killed, out of memory, initializer failed) breaks the pool: its call and
  every call still queued fail with ``BrokenProcessPool``, and so does every later ``submit``.
- ``shutdown(wait=False, cancel_futures=True)`` returns at once: queued calls are cancelled, a
  worker ends when it has finished its call (its pipe in is closed). ``wait=True`` also waits
  for the workers to exit.
- Ending workers with their parent (kill -9 included) is the initializer's job (``service.parse``
  sets it up); a worker also exits when its pipe in closes.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, InvalidStateError
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from listener.worker import send

# a worker: this process's sys.path (the package, and the modules of the functions it is
# handed, are found where they are found here), then ``listener.worker.main``, whose module
# imports next to nothing (not this one's subprocess, concurrent.futures, multiprocessing)
_WORKER = "import sys; sys.path[:] = sys.argv[1:]; from listener.worker import main; main()"
AHEAD = 2  # calls handed to a worker before its first result is read back
P = ParamSpec("P")
T = TypeVar("T")
_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class Pool(Executor):
    """``workers`` worker processes, each running ``initializer(*initargs)`` first."""

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., object],
        initargs: Sequence[object] = (),
    ) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._broken = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        for _ in range(workers):
            process = subprocess.Popen(  # noqa: S603  # this interpreter, our own code
                [sys.executable, "-c", _WORKER, *sys.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._processes[process.pid] = process
            start = (initializer, tuple(initargs))
            thread = threading.Thread(
                target=self._serve, args=(process, start), name="worker-feed", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if kwargs:
            raise TypeError("Pool.submit takes positional arguments only")
        with self._lock:
            if self._broken:
                raise BrokenProcessPool("a worker process ended abruptly")
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            future: Future[T] = Future()
            self._tasks.put((future, fn, tuple(args)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                self._cancel_queued(None)
            for _ in self._threads:
                self._tasks.put(None)  # one stop sign per worker, after the calls queued
        if wait:
            for thread in self._threads:
                thread.join()
            for process in self._processes.values():
                process.wait()

    def _cancel_queued(self, error: BaseException | None) -> None:
        """Cancel (or fail with ``error``) every call still queued; keeps the stop signs."""
        kept = 0
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is None:
                kept += 1
            elif error is None:
                task[0].cancel()
            elif task[0].set_running_or_notify_cancel():
                task[0].set_exception(error)
        for _ in range(kept):
            self._tasks.put(None)

    def _serve(self, process: subprocess.Popen[bytes], start: tuple[Any, ...]) -> None:
        """Feed one worker until a stop sign or its death, ``AHEAD`` calls in flight so that it
        starts the next while this process (busy with its event loop) takes a result. Results
        are read by a thread of their own: a worker writing a big result never waits for a
        big call being written to it."""
        assert process.stdin is not None
        pipe_in = process.stdin
        flight: collections.deque[Future[Any]] = collections.deque()
        slots = threading.Semaphore(AHEAD)
        dead, closing = threading.Event(), threading.Event()
        reader = threading.Thread(
            target=self._collect,
            args=(process, flight, slots, dead, closing),
            name="worker-results",
            daemon=True,
        )
        reader.start()
        try:
            send(pipe_in, start)
            while (task := self._tasks.get()) is not None:
                future, fn, args = task
                slots.acquire()
                if dead.is_set():
                    self._break([future])
                    break
                if not future.set_running_or_notify_cancel():
                    slots.release()
                    continue
                try:
                    data = pickle.dumps((fn, args))
                except Exception as exc:  # an argument that cannot cross: this call fails
                    slots.release()
                    future.set_exception(exc)
                    continue
                flight.append(future)
                pipe_in.write(data)
                pipe_in.flush()
            closing.set()
        except OSError:  # the worker died
            self._break(flight)
        finally:
            with contextlib.suppress(OSError):
                pipe_in.close()  # the worker reads the end of its input and exits
            reader.join()
            process.wait()  # reaped here, however it ended

    def _collect(
        self,
        process: subprocess.Popen[bytes],
        flight: collections.deque[Future[Any]],
        slots: threading.Semaphore,
        dead: threading.Event,
        closing: threading.Event,
    ) -> None:
        """Read one worker's results, in the order of its calls, until its output ends."""
        assert process.stdout is not None
        pipe_out = process.stdout
        started = False
        try:
            started, _ = pickle.load(pipe_out)  # noqa: S301  # our own worker's pipe: its start
            while started:
                ok, value = pickle.load(pipe_out)  # noqa: S301
                future = flight.popleft()
                slots.release()
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except EOFError:
            if started and closing.is_set() and not flight:
                return  # a clean end: every call answered, the input closed by the feeder
        except Exception:  # noqa: S110  # a reply that cannot be read: the worker is lost
            pass
        finally:
            with contextlib.suppress(OSError):
                pipe_out.close()
        dead.set()
        self._break(flight)
        slots.release(AHEAD)  # a feeder waiting for a slot sees the death

    def _break(self, flight: Iterable[Future[Any]]) -> None:
        """A worker died: its calls in flight, every call queued and every later one fail."""
        error = BrokenProcessPool("a worker process ended abruptly")
        with self._lock:
            self._broken = True
            self._cancel_queued(error)
        for future in list(flight):
            with contextlib.suppress(InvalidStateError):  # failed already (by the other side)
                future.set_exception(error)
