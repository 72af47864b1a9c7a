"""Frozen values passed between pipeline stages.

Everything here is plain data: no I/O, no behaviour beyond trivial helpers. Text fields hold
untrusted text exactly as a source delivered it (after HTML was reduced to plain text); whoever
prints or renders it must escape it for its target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a source, parsed. ``published_at`` is timezone-aware UTC or None."""

    guid: str | None
    url: str | None
    title: str
    text: str
    author: str | None = None
    published_at: datetime | None = None
    language: str | None = None
    # reach and engagement where the platform gives them (None: unknown)
    reach: int | None = None  # the author's followers, karma or subscribers
    points: int | None = None  # score, upvotes
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    # the page the item links to when that is not the item itself (a Hacker News story's
    # article): matched by site: and url: queries, not stored
    article_url: str | None = None


@dataclass(frozen=True, slots=True)
class Mention:
    """An item that matched brands (by name), with its dedup identity, ready to store."""

    item: Item
    brands: frozenset[str]
    dedup_key: str
    canonical_url: str | None
    content_hash: str
    # story identity: the URL with AMP/mobile variants folded, a 64-bit SimHash of the text
    # (None when too short to compare), and the host the mention was published on
    story_url: str | None = None
    fingerprint: int | None = None
    domain: str | None = None
    sentiment: Score | None = None
    backfill: bool = False  # fetched on its source's first poll: history, not news


@dataclass(frozen=True, slots=True)
class Score:
    """A sentiment verdict: label (negative / neutral / positive), score in [-1, 1], confidence
    in [0, 1], and the version of the scorer that gave it."""

    label: str
    score: float
    confidence: float
    version: str


@dataclass(frozen=True, slots=True)
class SourceState:
    """The persisted fetch state of one source."""

    id: int
    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    consecutive_errors: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    next_poll_at: datetime | None = None
    disabled_reason: str | None = None
    cursor: str | None = None  # API sources: where the last poll stopped (id, time, token)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed: its items, warnings for partly broken feeds, and which parser read it."""

    items: tuple[Item, ...]
    warnings: tuple[str, ...] = ()
    parser: str = ""
    language: str | None = None
    screened: int = 0  # entries screened out (no brand can match them), not built into items


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one batch of ingest did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    new_ids: tuple[int, ...] = field(default=())


Level = Literal["clear", "elevated", "warning", "critical"]
SEVERITIES = ("warning", "critical")
# What decided a judgement: "fired" (every gate passed), or the gate that held it back
GATES = {
    "fired": "every gate passed",
    "history": "not enough history to judge yet",
    "min_count": "too few negative mentions (minimum count, or excess over expected)",
    "cold_start": "the higher count floor while the brand has little history",
    "baseline": "within what the baseline explains (score, factor, CUSUM level)",
    "share": "the negative share is as usual (share floor)",
    "stories": "too few distinct stories",
    "voices": "too few distinct voices",
    "duration": "the rise is too young (smoulder: sudden bursts are the storm's)",
    "hold": "the last day no longer runs above expected",
    "explained": "explained by a storm alert or an earlier episode",
    "calibration": "not beyond the brand's own record of daily peaks",
    "refractory": "within the refractory period, not beyond the last storm's peak",
    "lateness": "early judgement: the decision not to alert waits for the lateness",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """What one detector says about one brand at one bucket, with the evidence behind it.

    ``level``: "warning"/"critical" when the alert condition holds; "elevated" when it no longer
    holds but has not cleared (hysteresis); "clear" otherwise. ``score`` is -log10 of the
    probability of the observation under the baseline (storm) or the CUSUM statistic (smoulder).
    """

    detector: str  # "storm" | "smoulder"
    at: datetime  # end of the judged bucket
    level: Level
    score: float
    observed: int  # negative mentions in the window
    expected: float  # under the baseline
    window_start: datetime
    window_end: datetime
    probability: float | None = None
    stories: int | None = None  # distinct, among the negative mentions of the window
    voices: int | None = None
    domains: int | None = None
    share: float | None = None  # negative share in the window
    expected_share: float | None = None
    cold_start: bool = False
    reason: str = ""  # one sentence: why it fired, or what held it back
    gate: str = ""  # what decided: "fired", or the gate that held it (see GATES)

    @property
    def factor(self) -> float:
        return self.observed / self.expected if self.expected > 0 else float("inf")

    @property
    def firing(self) -> bool:
        return self.level in SEVERITIES


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a detector said when an alert changed, as stored."""

    severity: str
    observed: int
    expected: float
    score: float
    probability: float | None
    window_start: datetime
    window_end: datetime
    explanation: str


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One alert episode as stored (``brand`` is "" for an alert about a source)."""

    id: int
    brand: str
    detector: str
    started_at: datetime
    state: str
    severity: str
    fired_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    last_notified_at: datetime | None
    historic: bool
    observed: int
    expected: float
    score: float
    probability: float | None
    window_start: datetime
    window_end: datetime
    explanation: str
    acked_by: str | None = None
    ack_note: str | None = None

    @property
    def evidence(self) -> Evidence:
        return Evidence(
            self.severity, self.observed, self.expected, self.score, self.probability,
            self.window_start, self.window_end, self.explanation,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredSilence:
    id: int
    brand: str | None
    detector: str | None
    severity: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str | None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one route, rendered, to be written to the outbox."""

    route: str
    kind: str
    title: str
    body: str
    body_format: str
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert_id: int | None
    route: str
    kind: str
    title: str
    body: str
    body_format: str
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
