"""The CPU half of a poll: parse a fetched body and match its items against the brands.

Part of the orchestration layer (beside poll.py): it hands the feed stage's output to the
matching stage. It lives in its own small module so that worker processes import only what
parsing and matching need (no database, no HTTP client).

``Parser`` parses and matches in worker processes when ``workers > 0`` (true parallelism: parsing
and matching were ~40% of a measured cold cycle and would otherwise share one core with the
event loop), else in a thread. Either way the event loop that keeps timeouts honest never runs
them itself, nor the split pass of a big body (``feed_split``), which runs where parsing runs.
A body is bytes or the file it was spooled to (``Response.file``); a worker is handed the
file's path and reads its piece itself, so the daemon never holds a big body, and a worker
holds one piece of it at a time (a piece whose file is deleted under it, the poll having been
cancelled, fails and is not awaited). Worker processes end when the daemon ends, however it
ends (kill -9 included): on Linux the kernel signals them when their parent (the daemon: they
are fresh interpreters that inherit no threads or sockets, fed over pipes by
``listener.workers.Pool``, which unlike a "spawn" ProcessPoolExecutor needs no resource tracker
process of 13 MB, nor a forkserver of 14 MB) dies, and everywhere a watch thread ends a worker
whose daemon is gone. They also end after ``IDLE_SECONDS`` without work: a resting daemon holds
no models.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import logging
import operator
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from listener import heap
from listener.enrichment.language import detect, preload
from listener.enrichment.sentiment import Scorer, Sentiment, window
from listener.errors import ConfigError
from listener.matching import (
    Document,
    Matcher,
    canonical_url,
    content_hash,
    dedup_key,
    entry_anchor,
)
from listener.matching.stories import fingerprint, story_url
from listener.models import Item, Mention, Score
from listener.sources import feed_split
from listener.sources.feed_split import Body, Split

if TYPE_CHECKING:  # types only: worker processes need neither the config nor pydantic
    import asyncio  # nor asyncio, nor the pool (``Parser`` imports them where it uses them)
    from concurrent.futures import Executor

    from listener.checks import BrandRule


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a body yielded: the number of items, parser warnings, and the brand mentions."""

    items: int
    warnings: tuple[str, ...]
    mentions: tuple[Mention, ...]


log = logging.getLogger(__name__)


class SentimentScorer(Protocol):
    """What a sentiment backend offers: the built-in Scorer, or a model of the user's own."""

    @property
    def version(self) -> str: ...

    def score(self, text: str, lang: str) -> Sentiment: ...


# (backend, model directory) as [sentiment] configures them
ScorerSpec = tuple[str, Path | None]


def load_scorer(spec: ScorerSpec) -> SentimentScorer:
    """The configured sentiment backend. Raises ConfigError when its model cannot be loaded."""
    backend, path = spec
    try:
        if backend == "onnx":
            from listener.enrichment.onnx import load_scorer as load_onnx

            return load_onnx(backend, path)
        return Scorer(path)
    except ValueError as exc:  # the ONNX loader's messages name the key already
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"sentiment.model_path: {exc}") from None


def parse(
    matcher: Matcher,
    scorer: SentimentScorer,
    source: str,
    body: Body,
    url: str,
    content_type: str | None,
) -> Parsed:
    """Parse ``body`` (bytes, or the file it was spooled to) and turn the items that match a
    brand into Mentions, each with its language and sentiment (scored on the text around the
    brand when the text is long); entries the matcher screens out are counted, not built.
    Raises ParseError."""
    from listener.sources import feed  # only where bodies are parsed (workers), ~6 MB

    data = body if isinstance(body, bytes) else body.read_bytes()
    screen = matcher.screen if matcher.screens else None
    parsed = feed.parse_feed(data, url=url, content_type=content_type, screen=screen)
    del data
    found = parse_items(matcher, scorer, source, parsed.items, parsed.warnings)
    if not parsed.screened:
        return found
    # screened entries are items that mention no brand: counted, never built
    return replace(found, items=found.items + parsed.screened)


def parse_items(
    matcher: Matcher,
    scorer: SentimentScorer,
    source: str,
    items: Sequence[Item],
    warnings: Sequence[str] = (),
) -> Parsed:
    """Turn the items that match a brand into Mentions (see ``parse``)."""
    mentions = []
    for item in items:
        brands = matcher.match(document(item, source))
        if brands:
            # only mentions are worth the detector's time; the feed's language is the prior
            item = replace(item, language=detect(f"{item.title}\n{item.text}", item.language))
            canonical = canonical_url(item.url) if item.url else None
            mentions.append(
                Mention(
                    item=item,
                    brands=brands,
                    dedup_key=dedup_key(
                        source=source,
                        guid=item.guid,
                        url=item.url,
                        title=item.title,
                        text=item.text,
                    ),
                    canonical_url=canonical,
                    content_hash=content_hash(item.title, item.text, item.author),
                    story_url=_story_url(item),
                    fingerprint=fingerprint(item.title, item.text),
                    domain=domain_of(canonical),
                    sentiment=score(scorer, item, brands),
                )
            )
    return Parsed(len(items), tuple(warnings), tuple(mentions))


def score(scorer: SentimentScorer, item: Item, brands: frozenset[str]) -> Score:
    """Sentiment of a mention: the window of text around the brand, in the item's language."""
    text = window(f"{item.title}\n{item.text}", sorted(brands))
    verdict = scorer.score(text, item.language or "other")
    return Score(verdict.label, verdict.score, verdict.confidence, scorer.version)


def document(item: Item, source: str) -> Document:
    return Document(
        title=item.title,
        text=item.text,
        author=item.author,
        url=item.url,
        language=item.language,
        source=source,
        article_url=item.article_url,
    )


def _story_url(item: Item) -> str | None:
    """The story URL of an item; a comment (a guid, and a link to an anchor on its post) is a
    story of its own, not a copy of the post."""
    if not item.url:
        return None
    anchor = entry_anchor(item.url, item.guid)
    return f"{story_url(item.url)}#{anchor}" if anchor else story_url(item.url)


def domain_of(url: str | None) -> str | None:
    """The host of a URL without a leading www., or None."""
    host = urlsplit(url).hostname if url else None
    return host.removeprefix("www.") if host else None


_worker: tuple[Matcher, SentimentScorer] | None = None
IDLE_SECONDS = 120.0  # a worker pool without work this long ends; the next parse starts one
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_SECONDS = 1.0


def _exit_with(daemon: int) -> None:
    """End this worker process when the daemon (pid ``daemon``) or its own parent ends."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:  # the kernel signals us when our parent (the daemon) dies
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass  # the watch below still ends us

    def watch() -> None:
        while True:
            if os.getppid() != parent or not _alive(daemon):
                os._exit(1)  # orphaned: nobody will ever collect our results
            time.sleep(WATCH_SECONDS)

    threading.Thread(target=watch, name="daemon-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _init_worker(brands: Sequence[BrandRule], spec: ScorerSpec, daemon: int = 0) -> None:
    global _worker  # one matcher and one scorer per worker process, built once
    if daemon:
        _exit_with(daemon)
    if spec[0] == "builtin":
        # A worker never speaks TLS, but the feed parsers import urllib.request for fetching
        # (listener fetches itself), and it http.client and ssl: made unimportable here (the
        # documented None in sys.modules), they load without it and the worker holds 1.3 MB
        # less. A user's model (another backend) may need it and is left alone.
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    _worker = (Matcher(brands), load_scorer(spec))
    preload()  # the language model too: what loading them left free goes back to the OS now
    heap.trim()
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


Tools = tuple[Matcher, SentimentScorer]
T = TypeVar("T")


def _tools(tools: Tools | None) -> Tools:
    """The matcher and scorer: the caller's (a thread), else this worker process's own."""
    if tools is not None:
        return tools
    assert _worker is not None
    return _worker


def _parse_body(
    tools: Tools | None, source: str, body: Body, url: str, content_type: str | None
) -> Parsed:
    return parse(*_tools(tools), source, body, url, content_type)


def _parse_piece(
    tools: Tools | None,
    source: str,
    body: Body,
    plan: Split,
    index: int,
    url: str,
    content_type: str | None,
) -> Parsed:
    """One piece of a split body, read here (from its file when it is spooled)."""
    try:
        return parse(*_tools(tools), source, plan.document(body, index), url, content_type)
    finally:
        heap.trim()  # the piece's buffers, freed, would stay resident under the next one's


# The wire form of a worker's Parsed: (items, warnings, mentions as plain tuples). Unpickling
# a frozen, slotted dataclass sets each field through __setstate__; tuples of plain values and
# one constructor call per object cost ~40% less (14.3 -> 8.8 us a mention, measured) in the
# thread that reads the workers' results. Fields go in declaration order, so a new field
# travels without a change here.
_ITEM = operator.attrgetter(*(f.name for f in dataclasses.fields(Item)))
_MENTION = operator.attrgetter(*(f.name for f in dataclasses.fields(Mention)))
_SCORE = operator.attrgetter(*(f.name for f in dataclasses.fields(Score)))
_AT_ITEM = [f.name for f in dataclasses.fields(Mention)].index("item")
_AT_SENTIMENT = [f.name for f in dataclasses.fields(Mention)].index("sentiment")
Packed = tuple[int, tuple[str, ...], tuple[tuple[Any, ...], ...]]


def pack(parsed: Parsed) -> Packed:
    """``parsed`` as plain tuples (see ``unpack``)."""
    mentions = []
    for mention in parsed.mentions:
        values = list(_MENTION(mention))
        values[_AT_ITEM] = _ITEM(mention.item)
        if mention.sentiment is not None:
            values[_AT_SENTIMENT] = _SCORE(mention.sentiment)
        mentions.append(tuple(values))
    return parsed.items, parsed.warnings, tuple(mentions)


def unpack(packed: Packed) -> Parsed:
    """The Parsed that ``pack`` was given: equal, field by field."""
    items, warnings, rows = packed
    mentions = []
    for row in rows:
        values = list(row)
        values[_AT_ITEM] = Item(*values[_AT_ITEM])
        if values[_AT_SENTIMENT] is not None:
            values[_AT_SENTIMENT] = Score(*values[_AT_SENTIMENT])
        mentions.append(Mention(*values))
    return Parsed(items, warnings, tuple(mentions))


def _packed_body(*args: Any) -> Packed:
    return pack(_parse_body(*args))


def _packed_piece(*args: Any) -> Packed:
    return pack(_parse_piece(*args))


def _packed_items(*args: Any) -> Packed:
    return pack(_parse_items(*args))


_PACKED: dict[Callable[..., Parsed], Callable[..., Packed]] = {}  # filled below the functions


def _split(body: Body, batch: int, content_type: str | None, smallest: int) -> Split | None:
    """``feed_split.split`` where parsing runs, giving back the memory of the pass after it."""
    try:
        return feed_split.split(body, batch, content_type, smallest)
    finally:
        heap.trim()


def _parse_items(tools: Tools | None, source: str, items: Sequence[Item]) -> Parsed:
    return parse_items(*_tools(tools), source, items)


class Parser:
    """Runs ``parse`` off the event loop: in ``workers`` processes, or a thread when 0.

    Worker processes are started on first use and end after ``idle`` seconds without work
    (their models are most of a resting daemon's memory); the next parse starts them again."""

    def __init__(
        self,
        brands: Sequence[BrandRule],
        workers: int,
        spec: ScorerSpec = ("builtin", None),
        *,
        idle: float = IDLE_SECONDS,
    ) -> None:
        # in-process parses need these here; worker processes build their own
        self.matcher = Matcher(brands) if workers == 0 else None
        # In-process parses need the scorer here. With workers, each loads its own; a model
        # the user configured is still loaded once here so that a bad one fails at start, but
        # the shipped model (0.8 s to load) is not loaded twice.
        shipped = spec == ("builtin", None)
        self.scorer = load_scorer(spec) if workers == 0 or not shipped else None
        self._spec = spec
        self._brands = tuple(brands)
        self._workers = workers
        self._idle = idle
        self._executor: Executor | None = None
        self._busy = 0  # calls in flight
        self._retire_at: asyncio.TimerHandle | None = None
        self.pools_started = 0  # for tests and benches

    def _start(self) -> Executor:
        from concurrent.futures import ThreadPoolExecutor

        from listener.workers import Pool

        self.pools_started += 1
        if self._workers == 0:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        # fresh interpreters: workers never inherit this process's threads or open sockets
        return Pool(self._workers, _init_worker, (self._brands, self._spec, os.getpid()))

    @property
    def running(self) -> bool:
        """Whether the worker pool (or thread) is up."""
        return self._executor is not None

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker process, or the thread when there are none; a pool
        whose worker died is replaced and the call tried once more."""
        import asyncio
        from concurrent.futures.process import BrokenProcessPool

        loop = asyncio.get_running_loop()
        if self._retire_at is not None:
            self._retire_at.cancel()
            self._retire_at = None
        self._busy += 1
        try:
            if self._executor is None:
                self._executor = self._start()
            executor = self._executor
            try:
                return await loop.run_in_executor(executor, function, *args)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start new workers, try this once more.
                if self._executor is executor:
                    log.warning("a parser worker died; starting new workers")
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = executor = self._start()
                return await loop.run_in_executor(self._executor or executor, function, *args)
        finally:
            self._busy -= 1
            if self._busy == 0 and self._workers > 0 and self._executor is not None:
                self._retire_at = loop.call_later(self._idle, self._retire)

    async def _parse(self, function: Callable[..., Parsed], *args: Any) -> Parsed:
        """``function(*args)`` through ``_call``; from a worker process in the wire form."""
        if self._workers == 0:
            return await self._call(function, *args)
        return unpack(await self._call(_PACKED[function], *args))

    def _retire(self) -> None:
        """End idle worker processes (they exit as soon as they have read their last call)."""
        self._retire_at = None
        if self._busy == 0 and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def _own_tools(self) -> Tools | None:
        """What a thread parse is handed; None in worker processes (they have their own)."""
        if self._workers:
            return None
        assert self.matcher is not None and self.scorer is not None
        return self.matcher, self.scorer

    async def run(self, source: str, body: Body, url: str, content_type: str | None) -> Parsed:
        return await self._parse(_parse_body, self._own_tools, source, body, url, content_type)

    async def run_batches(
        self,
        source: str,
        body: Body,
        url: str,
        content_type: str | None,
        store: Callable[[Parsed], Awaitable[None]],
    ) -> Parsed:
        """``run`` for a body of any size: a big one is cut into feed documents of
        ``feed_split.BATCH`` entries, parsed one after another (the next while the previous
        is stored), so memory holds a batch or two, not the feed. Every batch but the last goes
        to ``store``; the last is returned, counting the items and warnings of all. The split
        pass and the pieces run where parsing runs (a worker, or the thread)."""
        plan = None
        smallest = feed_split.SPLIT_BYTES  # read here: a worker has the module's own values
        if feed_split.size_of(body) >= smallest:
            batch = feed_split.BATCH
            plan = await self._call(_split, body, batch, content_type, smallest)
        if plan is None:
            return await self.run(source, body, url, content_type)
        try:
            return await self._run_pieces(source, body, plan, url, content_type, store)
        finally:
            plan.discard()

    async def _run_pieces(
        self,
        source: str,
        body: Body,
        plan: Split,
        url: str,
        content_type: str | None,
        store: Callable[[Parsed], Awaitable[None]],
    ) -> Parsed:
        import asyncio

        items = 0
        warnings: list[str] = list(plan.warnings)
        ahead = max(1, self._workers)  # batches parsed while one is stored
        tools = self._own_tools

        def start(index: int) -> asyncio.Future[Parsed]:
            if isinstance(body, bytes):  # small enough to cut here: only the piece is sent
                document = plan.document(body, index)
                return asyncio.ensure_future(self.run(source, document, url, content_type))
            piece = self._parse(_parse_piece, tools, source, body, plan, index, url, content_type)
            return asyncio.ensure_future(piece)

        pending = collections.deque(start(i) for i in range(min(ahead, len(plan.batches))))
        try:
            for index in range(len(plan.batches)):
                batch = await pending.popleft()
                items += batch.items
                warnings.extend(batch.warnings)
                if index + 1 == len(plan.batches):
                    return Parsed(items, feed_split.merge_warnings(warnings), batch.mentions)
                if index + ahead < len(plan.batches):
                    pending.append(start(index + ahead))
                await store(batch)
        finally:
            for future in pending:  # a failed store: the batches after it are not needed
                future.cancel()
        raise AssertionError("unreachable: the loop returns the last batch")

    async def run_items(self, source: str, items: Sequence[Item]) -> Parsed:
        """``parse_items`` off the event loop (API sources hand over items, not a body)."""
        return await self._parse(_parse_items, self._own_tools, source, items)

    def close(self, wait: bool = True) -> None:
        """Stop the workers. ``wait=False`` (the daemon's stop) does not wait for a worker
        still starting or parsing: it holds nothing to keep, and ends with the daemon."""
        if self._retire_at is not None:
            self._retire_at.cancel()
            self._retire_at = None
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None


_PACKED.update(
    {_parse_body: _packed_body, _parse_piece: _packed_piece, _parse_items: _packed_items}
)
