"""Host slots: at most ``limit`` requests per host at once, handed out fairly.

Rules:
- Waiting for a slot is not part of a request's deadline: the client starts the clock only
  once the slot is held, so a queue of hanging requests never times out a request that was
  never sent.
- A slot is always returned: on success, error, timeout and cancellation (also a waiter that
  is cancelled in the instant it is handed a slot gives it back), so no reload, shutdown or
  timeout can leak one and starve a host for good.
- Fair queueing per host: a request to a URL whose last request failed (timeout, refused,
  error status) waits behind every request to a URL that has not failed, first come first
  served within each class. Dead sources therefore delay a healthy one on the same host by at
  most one deadline (the longest a slot is held) per poll, however many of them queue.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict

__all__ = ["HostSlots", "Suspects"]

HEALTHY, SUSPECT = 0, 1


class HostSlots:
    """The slots of one host: ``acquire(rank)`` waits for one, ``release()`` returns it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(not future.done() for _, _, future in self._waiters)

    async def acquire(self, rank: int = HEALTHY) -> None:
        if self.busy < self.limit:
            self.busy += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot in the same instant as cancelled: give it on
            raise

    def release(self) -> None:
        """Hand the slot to the best live waiter, or free it."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot passes on; ``busy`` stays
                return
        self.busy -= 1


class Suspects:
    """URLs (without their query) whose last request failed; bounded, oldest forgotten."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._urls: OrderedDict[str, None] = OrderedDict()

    def rank(self, key: str) -> int:
        return SUSPECT if key in self._urls else HEALTHY

    def failed(self, key: str) -> None:
        self._urls[key] = None
        self._urls.move_to_end(key)
        while len(self._urls) > self._size:
            self._urls.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._urls.pop(key, None)
