"""Host slots: at most ``limit`` requests per host at once, handed out fairly.

Rules:
- Waiting for a slot is not part of a request's deadline: the client starts the clock only
  once the slot is held, so a queue of hanging requests never times out a request that was
  never sent.
- A slot is always returned: on success, error, timeout and cancellation (also a waiter that
  is cancelled in the instant it is handed a slot gives it back), so no reload, shutdown or
  timeout can leak one and starve a host for good.
- Fair queueing per host: requests to URLs whose last request succeeded go first, then URLs
  never tried, then URLs whose last request failed (timeout, refused, error status); first
  come first served within each class. Dead sources therefore delay a healthy one on the same
  host by at most one deadline (the longest a slot is held) per poll, however many queue.
- A URL never tried before is unknown: while other requests wait for its host, its first try
  must bring response headers within a short probe (``probe_timeout``), so a new host full of
  dead URLs is sorted out at one probe per URL rather than one deadline. After the probe the
  URL is known: from then on it gets the full deadline (behind healthy ones if it failed).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict

__all__ = ["HostSlots", "Suspects", "probe_timeout"]

HEALTHY, UNKNOWN, SUSPECT = 0, 1, 2  # queue classes, served in this order


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


def probe_timeout(total: float) -> float:
    """How long a first try may wait for response headers on a busy host."""
    return min(total, max(1.0, total / 10))


class Suspects:
    """URLs (without their query) that were tried, and whether their last request failed;
    bounded, the oldest forgotten."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._urls: OrderedDict[str, bool] = OrderedDict()  # key -> failed last time

    def rank(self, key: str) -> int:
        failed = self._urls.get(key)
        return UNKNOWN if failed is None else SUSPECT if failed else HEALTHY

    def known(self, key: str) -> bool:
        return key in self._urls

    def failed(self, key: str) -> None:
        self._remember(key, True)

    def succeeded(self, key: str) -> None:
        self._remember(key, False)

    def _remember(self, key: str, failed: bool) -> None:
        self._urls[key] = failed
        self._urls.move_to_end(key)
        while len(self._urls) > self._size:
            self._urls.popitem(last=False)
