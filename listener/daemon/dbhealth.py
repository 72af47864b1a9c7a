"""The daemon's view of its database: failing or not, and one log line per failure kind.

Rules:
- A failure is reported with a kind (``locked``, ``read-only``, ``disk full``, ``unavailable``,
  ``error``) and one line of the database's own message. The first failure of a kind is logged
  as one warning; repeats are counted and logged again only when the backoff (30 s, doubling up
  to 15 min) has passed, with the count. Never a traceback.
- While failing, work that needs the database waits until ``retry_at`` (the same backoff) instead
  of queueing up behind a lock; then one job tries again. A success (any job, or the health
  probe) ends the failure with one warning line (it closes the warnings).
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

    def _now(self) -> float:
        return self.clock()

    @property
    def failing(self) -> bool:
        return bool(self.kinds)

    def waiting(self) -> bool:
        """True while work that needs the database should not try yet."""
        return self.failing and self._now() < self.retry_at

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

    def problem(self) -> str:
        """One line for /healthz, or "" when the database is fine."""
        if not self.kinds:
            return ""
        kind, entry = max(self.kinds.items(), key=lambda item: item[1].since)
        return f"database failing ({kind}) for {int(self._now() - entry.since)} s: {entry.reason}"
