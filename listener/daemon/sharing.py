"""Which brands this daemon evaluates: all of them on SQLite, its share on PostgreSQL.

Rules:
- SQLite has one daemon per database: it evaluates every brand at every detection run.
- PostgreSQL: every live instance takes part. A light lease job (every ``renew_interval``:
  a sixth of a bucket, at most 10 s) renews this instance's leases, releases those above its
  fair share and takes free ones up to it, in one transaction (``storage.leases``); a lease
  lasts ``lease_length`` (half a bucket: three renewals or more, so a slow moment does not
  lose it). Brands it just took over are evaluated by that job at once when their bucket
  allows (another instance evaluated them in an earlier bucket), not at the next detection
  run: a dead instance's brands are taken half a bucket after its last renewal at most, and
  evaluated in the bucket after its last evaluation (a run cut short by the death counts: its
  brands were reserved). The detection run (every bucket) evaluates the rest of what it holds.
- Every evaluation is reserved in the database first (``evaluated_at`` against the start of
  the current bucket), so no brand is evaluated twice in one bucket, by one instance or two.
- A clean stop releases every lease at once; the others take the brands at their next job.
- Log: one info line when the set of brands held changes, one debug line per evaluation
  naming the brands and the moment ("detection run at ...").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine

from listener.config import BrandSettings, Settings
from listener.storage import leases

log = logging.getLogger(__name__)
MAX_RENEW_SECONDS = 10.0


def lease_length(bucket: float) -> timedelta:
    """Half a bucket: at least three renewals (``renew_interval``) before a lease runs out."""
    return timedelta(seconds=max(bucket / 2, 3 * renew_interval(bucket)))


def renew_interval(bucket: float) -> float:
    """Seconds between two runs of the lease job: a sixth of a bucket, at most 10 s."""
    return min(bucket / 6, MAX_RENEW_SECONDS)


@dataclass
class Sharing:
    """One daemon's part in detection (see the module docstring)."""

    engine: Engine
    me: str
    held: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def enlist(self, settings: Settings, now: datetime) -> None:
        """At start: count this instance as live for one lease, until its lease job runs."""
        if self.shared and settings.brands:
            leases.enlist(self.engine, self.me, now + lease_length(settings.detection.bucket))

    def brands(self, settings: Settings, now: datetime) -> Sequence[BrandSettings]:
        """The brands the detection run at ``now`` evaluates: every brand on SQLite; on
        PostgreSQL those this instance holds that nobody evaluated in this bucket yet."""
        if not self.shared:
            return settings.brands
        return self._claim(settings, now, "all")

    def takeover(self, settings: Settings, now: datetime) -> Sequence[BrandSettings]:
        """The lease job: renew and rebalance; the brands just taken over that are due now."""
        if not self.shared:
            return ()
        return self._claim(settings, now, "taken")

    def _claim(
        self, settings: Settings, now: datetime, due: Literal["all", "taken"]
    ) -> Sequence[BrandSettings]:
        bucket = settings.detection.bucket
        names = [b.name for b in settings.brands]
        claim = leases.claim(
            self.engine,
            self.me,
            names,
            now,
            now + lease_length(bucket),
            timedelta(seconds=bucket),
            due,
        )
        if claim.held != self.held:
            log.info(
                "detection: evaluating %d of %d brands (%d live instances, share %d; "
                "took %d, released %d)",
                len(claim.held), len(names), claim.live, claim.share, len(claim.taken),
                len(claim.released),
            )  # fmt: skip
        self.held = claim.held
        wanted = set(claim.due)
        mine = [b for b in settings.brands if b.name in wanted]
        if mine or due == "all":
            log.debug(
                "detection run at %s: evaluating %d brands: %s",
                now.isoformat(),
                len(mine),
                ", ".join(b.name for b in mine),
            )
        return mine

    def release(self) -> None:
        if self.shared:
            leases.release(self.engine, self.me)
            self.held = ()
