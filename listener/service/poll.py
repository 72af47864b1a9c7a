"""The orchestrator: one poll of one source is fetch -> parse -> match -> store.

Rules:
- Every poll has its own error boundary: whatever goes wrong with one source is recorded on its
  row (with a stage prefix: "fetch:", "parse:", "store:", "internal:") and never stops the others.
- Network waits happen on the event loop; parsing and matching run in a worker thread; database
  work runs in one dedicated thread in short transactions, so nothing blocks the loop that keeps
  timeouts honest.
- Politeness: conditional GET with the stored validators; after errors the next poll backs off
  exponentially with jitter, capped at ``polling.max_backoff`` and never giving up; a server's
  Retry-After is honoured; 410 Gone disables the source until its configured URL changes; a
  permanent redirect updates the URL that is polled.
- Only items that match at least one brand become mentions.
- A database outage (locked, read-only, full, unreachable: ``storage.sql.outage``) is not the
  source's fault: with an ``on_outage`` reporter (the daemon's) it is handed over as (kind, line)
  instead of being logged per source, nothing is written about the source, and its next poll
  comes on schedule.

Size: about 460 lines on purpose: one poll's error boundary (fetch, parse in batches,
store, backoff) reads best as one class; split, the stage prefixes and the backoff rules would
be spread over modules that must agree on them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal, TypeVar

from sqlalchemy import Engine

from listener import __version__, heap
from listener.checks import compile_brands
from listener.config import Settings, SourceSettings
from listener.errors import FetchError, ListenerError, ParseError, StorageError
from listener.models import SourceState, StoreResult
from listener.service.parse import Parsed, Parser
from listener.sources import api, urls
from listener.sources.client import Client, HttpSettings, Response, redact_url
from listener.sources.wire import remove_orphans
from listener.storage import store
from listener.storage.sql import outage
from listener.storage.writer import Writer

log = logging.getLogger(__name__)
T = TypeVar("T")
Status = Literal["ok", "not_modified", "failed", "gone", "skipped", "disabled"]
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of one source did."""

    source: str
    status: Status
    items: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    elapsed: float = 0.0
    # seconds from the end of the poll until the source may be polled again, when that is not
    # its interval (backoff, Retry-After, a gap read again); a duration, so no clock jump moves it
    next_in: float | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def source_url(source: SourceSettings) -> str:
    """The feed URL a configured source polls (URL builders for the non-plain kinds); for API
    sources the URL naming what is polled (a change resets the source's state)."""
    if api.is_api(source):
        return api.identity(source)
    if source.kind == "google_news":
        return urls.google_news_url(
            source.query or "", language=source.language or "en", country=source.country or "US"
        )
    if source.kind == "youtube":
        return urls.youtube_url(source.channel_id or "")
    assert source.url is not None
    return source.url


def http_settings(settings: Settings) -> HttpSettings:
    http = settings.http
    agent = http.user_agent or f"listener/{__version__} (social listening feed reader)"
    if http.contact:
        agent = f"{agent} contact: {http.contact}"
    return HttpSettings(
        user_agent=agent,
        connect_timeout=http.connect_timeout,
        read_timeout=http.read_timeout,
        total_timeout=http.total_timeout,
        max_body_bytes=http.max_body_size,
        max_redirects=http.max_redirects,
        per_host_limit=http.per_host_limit,
        max_connections=http.max_connections,
        secrets=settings.secrets,
    )


def backoff_delay(
    errors: int, interval: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after ``errors`` consecutive failures: exponential, capped, jittered."""
    base = min(cap, interval * 2.0 ** max(0, errors - 1))
    return base / 2 + rng() * base / 2


class Poller:
    """Polls sources for one configuration against one database through one HTTP client."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        client: Client,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.client = client
        self.clock = clock
        self.rng = rng
        sentiment = (settings.sentiment.backend, settings.sentiment.model_path)
        self._parser = Parser(compile_brands(settings), settings.polling.workers, sentiment)
        self._writer = Writer(engine)
        self._states: dict[str, SourceState] = {}
        self._sessions: dict[str, dict[str, object]] = {}  # API logins, per source
        self.on_outage: Callable[[str, str], None] | None = None  # see the module docstring
        removed = remove_orphans()  # big bodies spooled by a process killed since
        if removed:
            log.info("removed %d temporary body files left by a process that is gone", removed)

    def close(self, timeout: float | None = None) -> bool:
        """Stop the parser and the database thread. With ``timeout`` (the daemon's stop, bounded
        by design): parser workers are not waited for, and the database thread gets that many
        seconds for what is queued. Returns False when writes were still running then (they
        commit or roll back whole, with the process)."""
        self._parser.close(wait=timeout is None)
        return self._writer.close(timeout)

    async def prepare(self) -> None:
        """Register configured brands and sources, then load their fetch state."""
        sources = [
            store.CatalogSource(s.name, s.kind, source_url(s)) for s in self.settings.sources
        ]
        brands = [b.name for b in self.settings.brands]
        now = self.clock()
        await self._writer.run(lambda conn: store.sync_catalog(conn, brands, sources, now))
        self._states = await self._writer.run(store.load_states)
        for state in self._states.values():
            if state.consecutive_errors:  # queued behind healthy sources of its host
                self.client.mark_failing(state.url)

    async def source_id(self, name: str) -> int:
        """The database id of a configured source."""
        if name not in self._states:
            await self.prepare()
        return self._states[name].id

    async def poll_all(
        self,
        *,
        force: bool = True,
        on_done: Callable[[PollOutcome], None] | None = None,
    ) -> list[PollOutcome]:
        """Poll every enabled source once, ``polling.concurrency`` at a time."""
        if not self._states:
            await self.prepare()
        limit = asyncio.Semaphore(self.settings.polling.concurrency)

        async def one(source: SourceSettings) -> PollOutcome:
            async with limit:
                outcome = await self.poll(source, force=force)
            if on_done is not None:
                on_done(outcome)
            return outcome

        enabled = [s for s in self.settings.sources if s.enabled]
        return list(await asyncio.gather(*(one(s) for s in enabled)))

    async def poll(self, source: SourceSettings, *, force: bool = False) -> PollOutcome:
        """Poll one source. Never raises for anything the source or the network did."""
        started = time.monotonic()
        state = self._states.get(source.name)
        if state is None:
            await self.prepare()
            state = self._states[source.name]
        now = self.clock()
        if state.disabled_reason:
            return PollOutcome(source.name, "disabled", error=state.disabled_reason)
        if not force and state.next_poll_at is not None:
            slack = timedelta(seconds=self.settings.polling.jitter + 5)
            if state.next_poll_at > now + slack:
                return PollOutcome(source.name, "skipped")
        new_state: SourceState | None
        early: list[StoreResult] = []  # a big feed's batches stored before its last one
        try:
            outcome, new_state = await self._poll(source, state, now, early)
        except StorageError as exc:
            kind = outage(exc)
            if kind is not None and self.on_outage is not None:
                self.on_outage(kind, _one_line(exc))
                outcome = PollOutcome(source.name, "failed", error=f"store: {_one_line(exc)}")
                return _counted(outcome, early, started)
            outcome, new_state = await self._fail(source, state, now, exc)
        except ListenerError as exc:
            outcome, new_state = await self._fail(source, state, now, exc)
        except Exception as exc:
            log.exception("internal error while polling %s", source.name)
            outcome, new_state = await self._fail(source, state, now, exc)
        if new_state is not None:
            self._states[source.name] = new_state
        if outcome.status == "failed":  # what was stored before it failed is still stored
            return _counted(outcome, early, started)
        return replace(outcome, elapsed=time.monotonic() - started)

    async def _poll_api(
        self, source: SourceSettings, state: SourceState, now: datetime
    ) -> tuple[PollOutcome, SourceState]:
        """One poll of a JSON API source: new items since the stored cursor, matched and stored
        with the new cursor. A source's first poll is history (backfill), never news."""
        previous, attempts = api.read_cursor(state.cursor)
        context = api.ApiContext(
            self.client, source, previous, now, self._sessions.setdefault(source.name, {})
        )
        fetched = await api.fetch(context)
        parsed_items = await self._parser.run_items(source.name, fetched.items)
        mentions = parsed_items.mentions
        if state.last_success_at is None or (attempts and previous is None):
            mentions = tuple(replace(m, backfill=True) for m in mentions)
        interval = self.settings.source_interval(source)
        delay, cursor = interval, fetched.cursor
        if fetched.gap and attempts < api.GAP_RETRIES:
            # a later page broke: keep the cursor, read the gap again after a backoff
            attempts += 1
            cap = self.settings.polling.max_backoff
            delay = backoff_delay(attempts, interval, cap, self.rng)
            cursor = api.stored_cursor(previous, attempts)
            fetched = replace(
                fetched,
                note=f"{fetched.note}; read again from the last cursor in {delay:.0f}s "
                f"(attempt {attempts} of {api.GAP_RETRIES})",
            )
        elif fetched.gap:
            fetched = replace(
                fetched,
                note=f"{fetched.note}; given up after {attempts} attempts: items between the "
                "broken page and the last poll may be missing",
            )
        if cursor is None and attempts:
            cursor = api.stored_cursor(previous)  # the stored one, unwrapped
        if fetched.note:
            log.warning("source %s: %s", source.name, fetched.note)
        result, stored = await self._writer.run_grouped(
            store.record_successes,
            store.PollSuccess(
                source_id=state.id,
                now=now,
                next_poll_at=now + timedelta(seconds=delay),
                etag=None,
                last_modified=None,
                mentions=mentions,
                cursor=cursor,
                note=f"partial: {fetched.note}" if fetched.note else None,
            ),
            wait=bool(mentions),
        )
        outcome = PollOutcome(
            source.name,
            "ok",
            items=parsed_items.items,
            new=result.new,
            updated=result.updated,
            warnings=(fetched.note,) if fetched.note else (),
            next_in=delay if delay != interval else None,
        )
        return outcome, stored

    async def _poll(
        self, source: SourceSettings, state: SourceState, now: datetime, early: list[StoreResult]
    ) -> tuple[PollOutcome, SourceState]:
        if api.is_api(source):
            return await self._poll_api(source, state, now)
        response = await self.client.get(
            state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            headers=source.headers,
            spool=True,  # a big body goes to a file, not memory; deleted below
        )
        try:
            return await self._poll_feed(source, state, now, response, early)
        finally:
            response.discard()

    async def _poll_feed(
        self,
        source: SourceSettings,
        state: SourceState,
        now: datetime,
        response: Response,
        early: list[StoreResult],
    ) -> tuple[PollOutcome, SourceState]:
        """The rest of a feed's poll, once its response is in: gone, moved, not modified, or
        parsed and stored (a big body in batches; each batch's result is added to ``early``,
        so that a poll failing midway reports what it stored)."""
        interval = self.settings.source_interval(source)
        next_poll = now + timedelta(seconds=interval)
        if response.status == 410:
            reason = (
                f"HTTP 410 Gone from {redact_url(state.url)} at {now:%Y-%m-%d %H:%M} UTC; "
                "change the source's URL in the config to poll it again"
            )
            gone = await self._writer.run(
                partial(store.record_gone, source_id=state.id, now=now, reason=reason)
            )
            log.warning("source %s disabled: %s", source.name, reason)
            return PollOutcome(source.name, "gone", error=reason), gone
        if response.permanent_url:
            log.info(
                "source %s moved permanently to %s",
                source.name,
                redact_url(response.permanent_url),
            )
        if response.status == 304:
            _, unchanged = await self._writer.run_grouped(
                store.record_successes,
                store.PollSuccess(
                    source_id=state.id,
                    now=now,
                    next_poll_at=next_poll,
                    etag=response.etag or state.etag,
                    last_modified=response.last_modified or state.last_modified,
                    permanent_url=response.permanent_url,
                ),
            )
            return PollOutcome(source.name, "not_modified"), unchanged

        async def store_batch(batch: Parsed) -> None:
            # mentions only: the validators are stored with the last batch, so a feed whose
            # processing fails midway is fetched whole again (dedup keeps what was stored)
            record = partial(
                store.record_mentions, mentions=batch.mentions, source_id=state.id, now=now
            )
            stored = await self._writer.run(record)
            # counts only: nothing reads an early batch's new ids, which would be held to the
            # end of the poll (~40 KB per batch of 1,000, 2.4 MB for 60,000 entries)
            early.append(replace(stored, new_ids=()))
            heap.trim()  # the batch's rows and buffers, before the next batch's

        parsed = await self._parser.run_batches(
            source.name,
            response.file or response.body,
            response.url,
            response.content_type,
            store_batch,
        )
        for warning in parsed.warnings:
            log.warning("source %s: %s", source.name, warning)
        result, stored = await self._writer.run_grouped(
            store.record_successes,
            store.PollSuccess(
                source_id=state.id,
                now=now,
                next_poll_at=next_poll,
                etag=response.etag,
                last_modified=response.last_modified,
                permanent_url=response.permanent_url,
                mentions=parsed.mentions,
            ),
            wait=bool(parsed.mentions),  # an ingest is worth sharing a transaction with others
        )
        if response.file is not None:  # a big body's last batch too (not every small poll)
            heap.trim()
        outcome = PollOutcome(
            source.name,
            "ok",
            items=parsed.items,
            new=result.new + sum(batch.new for batch in early),
            updated=result.updated + sum(batch.updated for batch in early),
            warnings=parsed.warnings,
        )
        return outcome, stored

    async def _fail(
        self, source: SourceSettings, state: SourceState, now: datetime, exc: Exception
    ) -> tuple[PollOutcome, SourceState | None]:
        stage = {FetchError: "fetch", ParseError: "parse", StorageError: "store"}.get(
            type(exc), "internal"
        )
        message = f"{stage}: {_one_line(exc)}"
        errors = state.consecutive_errors + 1
        delay = backoff_delay(
            errors,
            self.settings.source_interval(source),
            self.settings.polling.max_backoff,
            self.rng,
        )
        next_poll = now + timedelta(seconds=delay)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:  # counted from the answer, not from the start of the poll
            wait = min(float(retry_after), MAX_RETRY_AFTER)
            next_poll = max(next_poll, self.clock() + timedelta(seconds=wait))
            delay = max(delay, wait)
        if getattr(exc, "status", None) == 429:
            message = f"{stage}: 429: rate limited until {next_poll:%H:%M} UTC ({_one_line(exc)})"
        log.warning(
            "source %s failed (%d in a row, next try in %ds): %s",
            source.name,
            errors,
            delay,
            message,
        )
        failed = None
        try:
            failed = await self._writer.run(
                partial(
                    store.record_failure,
                    source_id=state.id,
                    now=now,
                    error=message,
                    next_poll_at=next_poll,
                )
            )
        except StorageError as store_exc:
            kind = outage(store_exc)
            if kind is not None and self.on_outage is not None:
                self.on_outage(kind, _one_line(store_exc))
            else:
                log.error("cannot record failure of source %s: %s", source.name, store_exc)
        return PollOutcome(source.name, "failed", error=message, next_in=delay), failed


def _counted(outcome: PollOutcome, early: list[StoreResult], started: float) -> PollOutcome:
    """A failed poll's outcome with what its earlier batches stored, and its duration."""
    return replace(
        outcome,
        new=sum(batch.new for batch in early),
        updated=sum(batch.updated for batch in early),
        elapsed=time.monotonic() - started,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def summarize(outcomes: Sequence[PollOutcome]) -> dict[str, int]:
    """Counts for a cycle summary line."""
    return {
        "sources": len(outcomes),
        "ok": sum(o.status in ("ok", "not_modified") for o in outcomes),
        "not_modified": sum(o.status == "not_modified" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "disabled": sum(o.status in ("gone", "disabled") for o in outcomes),
        "skipped": sum(o.status == "skipped" for o in outcomes),
        "items": sum(o.items for o in outcomes),
        "new": sum(o.new for o in outcomes),
        "updated": sum(o.updated for o in outcomes),
    }
