"""Which brands this daemon evaluates: all of them on SQLite, its share on PostgreSQL.

Rules:
- SQLite has one daemon per database: it evaluates every brand at every detection run.
- PostgreSQL: every live instance takes part. At each detection run (every bucket) it renews
  its brand leases, releases those above its fair share and takes free ones up to it, in one
  transaction (``storage.leases``), then evaluates what it holds, and renews again when the run
  ends (a run longer than a bucket makes the scheduler skip the next). A lease lasts one bucket
  plus a margin (half a bucket, at most a minute): long enough that a late run does not lose
  it, short enough that a dead instance's brands are taken at the survivors' first run after
  it ran out, within a bucket and a half of its last run.
- A clean stop releases every lease at once; the others take the brands at their next run.
- Log: one info line when the set of brands held changes, one debug line per run naming the
  brands evaluated and the run's moment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from listener.config import BrandSettings, Settings
from listener.storage import leases

log = logging.getLogger(__name__)
MAX_MARGIN = 60.0


def lease_length(bucket: float) -> timedelta:
    """One bucket plus a margin for a late run: half a bucket, at most ``MAX_MARGIN`` s."""
    return timedelta(seconds=bucket + min(bucket / 2, MAX_MARGIN))


@dataclass
class Sharing:
    """One daemon's part in detection (see the module docstring)."""

    engine: Engine
    me: str
    held: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def enlist(self, settings: Settings, now: datetime, first_run: datetime) -> None:
        """At start: count this instance as live until its first run's leases would end."""
        if self.shared and settings.brands:
            leases.enlist(self.engine, self.me, first_run + lease_length(settings.detection.bucket))

    def brands(self, settings: Settings, now: datetime) -> Sequence[BrandSettings]:
        """The brands this instance evaluates in the run at ``now``."""
        if not self.shared:
            return settings.brands
        bucket = settings.detection.bucket
        names = [b.name for b in settings.brands]
        claim = leases.claim(
            self.engine,
            self.me,
            names,
            now,
            now + lease_length(bucket),
            timedelta(seconds=bucket),
        )
        if claim.held != self.held:
            log.info(
                "detection: evaluating %d of %d brands (%d live instances, share %d; "
                "took %d, released %d)",
                len(claim.held), len(names), claim.live, claim.share, len(claim.taken),
                len(claim.released),
            )  # fmt: skip
        self.held = claim.held
        held = set(claim.held)
        mine = [b for b in settings.brands if b.name in held]
        log.debug(
            "detection run at %s: evaluating %d brands: %s",
            now.isoformat(),
            len(mine),
            ", ".join(b.name for b in mine),
        )
        return mine

    def evaluated(
        self, settings: Settings, brands: Sequence[BrandSettings], at: datetime, end: datetime
    ) -> None:
        """The run at ``at`` ended at ``end``: its leases last from there."""
        if self.shared:
            until = end + lease_length(settings.detection.bucket)
            leases.evaluated(self.engine, self.me, [b.name for b in brands], at, until)

    def release(self) -> None:
        if self.shared:
            leases.release(self.engine, self.me)
            self.held = ()
