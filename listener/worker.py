"""One worker process of ``listener.workers.Pool``: its loop, and how a message is written.

Owns the worker's side of the pipes: the initializer first, then one pickled ``(function,
args)`` call after another, each answered with ``(ok, result or exception)``, until the input
ends. Kept apart from ``listener.workers`` so that a worker imports only this (and what the
calls it is handed need), not the pool's subprocess, concurrent.futures and multiprocessing
(3 MB of a worker's memory).
"""

from __future__ import annotations

import pickle
import sys
from typing import IO


def send(pipe: IO[bytes], message: object) -> None:
    pipe.write(pickle.dumps(message))
    pipe.flush()


def main() -> None:
    """A worker: the initializer, then calls until the input ends."""
    pipe_in, pipe_out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdin = None  # the calls' input is not theirs to read
    sys.stdout = sys.stderr  # nothing a call prints can garble the results
    try:
        initializer, initargs = pickle.load(pipe_in)  # noqa: S301  # our own parent's pipe
        initializer(*initargs)
    except EOFError:
        return
    except BaseException as exc:  # the pool breaks; the reason goes to the daemon's log
        print(f"listener worker: initializer failed: {exc!r}", file=sys.stderr)
        send(pipe_out, (False, None))
        sys.exit(1)
    send(pipe_out, (True, None))
    while True:
        try:
            fn, args = pickle.load(pipe_in)  # noqa: S301  # our own parent's pipe
        except EOFError:
            return
        try:
            result: tuple[bool, object] = (True, fn(*args))
        except BaseException as exc:
            result = (False, exc)
        try:
            data = pickle.dumps(result)
        except Exception as exc:
            data = pickle.dumps((False, RuntimeError(f"result could not be pickled: {exc}")))
        pipe_out.write(data)
        pipe_out.flush()
