"""The daemon's view of its database: failing or not, and one log line per failure kind.

Rules:
- A failure is reported with a kind (``locked``, ``read-only``, ``disk full``, ``unavailable``,
  ``error``) and one line of the database's own message. The first failure of a kind is logged
  as one warning; repeats are counted and logged again only when the backoff (30 s, doubling up
  to 15 min) has passed, with the count. Never a traceback.
- While failing, work that needs the database waits until ``retry_at`` (the same backoff) instead
  of queueing up behind a lock; then one job tries again (``may_try``: one at a time, the
  others keep waiting). A success (any job, or the health probe) ends the failure with one
  warning line (it closes the warnings) and calls ``on_recovery``: the daemon polls at once
  the sources whose polls were put off meanwhile, instead of leaving them to their next
  interval.
- ``problem()`` is what ``/healthz`` and the watchdog report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("listener.daemon")

FIRST_BACKOFF = 30.0
MAX_BACKOFF = 900.0
TRY_SECONDS = 60.0  # how long one job's try holds off the others (a lock wait is 30 s)


@dataclass
class _Kind:
    since: float
    reason: str
    count: int = 1
    suppressed: int = 0
    logged_at: float = 0.0
    backoff: float = FIRST_BACKOFF


@dataclass
class DatabaseHealth:
    """Shared by the daemon's jobs (all on one event loop, or holding no state across awaits)."""

    kinds: dict[str, _Kind] = field(default_factory=dict)
    retry_at: float = 0.0
    clock: Callable[[], float] = time.monotonic
    on_recovery: Callable[[], None] | None = None

    def _now(self) -> float:
        return self.clock()

    @property
    def failing(self) -> bool:
        return bool(self.kinds)

    def waiting(self) -> bool:
        """True while work that needs the database should not try yet."""
        return self.failing and self._now() < self.retry_at

    def may_try(self) -> bool:
        """True when work that needs the database may run now: the database is fine, or its
        backoff is over and no other job is trying it (this one then holds the try)."""
        if not self.failing:
            return True
        now = self._now()
        if now < self.retry_at:
            return False
        self.retry_at = now + TRY_SECONDS  # until this try fails or succeeds
        return True

    def failed(self, kind: str, reason: str) -> None:
        now = self._now()
        entry = self.kinds.get(kind)
        if entry is None:
            entry = self.kinds[kind] = _Kind(since=now, reason=reason, logged_at=now)
            log.warning(
                "database %s: %s; work that needs it waits and retries with backoff",
                kind, reason,
            )  # fmt: skip
        else:
            entry.count += 1
            entry.reason = reason
            if now - entry.logged_at >= entry.backoff:
                log.warning(
                    "database still %s (%d failures in %d s): %s",
                    kind, entry.count, int(now - entry.since), reason,
                )  # fmt: skip
                entry.logged_at = now
                entry.backoff = min(entry.backoff * 2, MAX_BACKOFF)
            else:
                entry.suppressed += 1
        self.retry_at = now + min(max(e.backoff for e in self.kinds.values()) / 2, 60.0)

    def recovered(self) -> None:
        if not self.kinds:
            return
        now = self._now()
        summary = ", ".join(
            f"{kind} ({e.count} failures over {int(now - e.since)} s)"
            for kind, e in self.kinds.items()
        )
        log.warning("database answering again after %s", summary)  # closes the warnings
        self.kinds.clear()
        self.retry_at = 0.0
        if self.on_recovery is not None:
            self.on_recovery()

    def problem(self) -> str:
        """One line for /healthz, or "" when the database is fine."""
        if not self.kinds:
            return ""
        kind, entry = max(self.kinds.items(), key=lambda item: item[1].since)
        return f"database failing ({kind}) for {int(self._now() - entry.since)} s: {entry.reason}"
