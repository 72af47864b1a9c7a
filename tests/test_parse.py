"""Parsing and matching off the event loop: worker processes, and recovery when one dies."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import pytest
from feeds import rss

from listener.matching import parse_query
from listener.models import Item, Mention, Score
from listener.service.parse import Parsed, Parser, pack, unpack
from listener.workers import Pool

BODY = rss(
    [
        {"title": "Kryptonite lock picked", "link": "https://x.example/1", "guid": "1"},
        {"title": "unrelated", "link": "https://x.example/2", "guid": "2"},
    ]
)
BRANDS = [("Kryptonite", parse_query("Kryptonite"), (), ())]


def test_worker_and_thread_parses_agree() -> None:
    async def go(workers: int) -> object:
        parser = Parser(BRANDS, workers)
        try:
            return await parser.run("s", BODY, "https://x.example/feed", "text/xml")
        finally:
            parser.close()

    in_worker, in_thread = asyncio.run(go(1)), asyncio.run(go(0))
    assert in_worker == in_thread
    assert in_worker.items == 2  # type: ignore[attr-defined]
    assert [m.item.guid for m in in_worker.mentions] == ["1"]  # type: ignore[attr-defined]


def test_a_killed_worker_is_replaced() -> None:
    async def go() -> int:
        parser = Parser(BRANDS, 1)
        try:
            await parser.run("s", BODY, "https://x.example/feed", None)
            pids = list(parser._executor._processes)  # type: ignore[attr-defined]
            os.kill(pids[0], signal.SIGKILL)
            await asyncio.sleep(0.5)
            result = await parser.run("s", BODY, "https://x.example/feed", None)
            return len(result.mentions)
        finally:
            parser.close()

    assert asyncio.run(go()) == 1


def test_a_stop_does_not_wait_for_a_busy_worker() -> None:
    """The daemon's stop (``close(wait=False)``) returns while a worker is still busy (a
    worker starting up, loading its models on a loaded machine, held a SIGTERM for seconds);
    the worker holds nothing to keep and ends with the daemon."""

    async def go() -> bool:
        parser = Parser(BRANDS, 1)
        await parser.run("s", BODY, "https://x.example/feed", None)  # the worker is up
        busy = asyncio.ensure_future(parser._call(time.sleep, 30))
        await asyncio.sleep(0.5)  # handed to the worker
        workers = list(parser._executor._processes.values())  # type: ignore[attr-defined]
        parser.close(wait=False)
        stopped_while_busy = all(process.poll() is None for process in workers)  # sleeping
        busy.cancel()
        for process in workers:
            process.kill()  # the test's process lives on: end the sleeper here
        return stopped_while_busy

    assert asyncio.run(go())


def test_an_idle_worker_pool_ends_and_starts_again_on_demand() -> None:
    async def go() -> tuple[list[int], int, int]:
        parser = Parser(BRANDS, 1, idle=0.2)
        try:
            await parser.run("s", BODY, "https://x.example/feed", None)
            pids = list(parser._executor._processes)  # type: ignore[union-attr]
            for _ in range(200):  # the retirement timer fires on this loop after 0.2 s
                if not parser.running and not any(_alive(pid) for pid in pids):
                    break
                await asyncio.sleep(0.05)
            gone = [pid for pid in pids if not _alive(pid)]
            assert not parser.running
            result = await parser.run("s", BODY, "https://x.example/feed", None)
            return gone, len(result.mentions), parser.pools_started
        finally:
            parser.close()

    gone, mentions, pools = asyncio.run(go())
    assert gone  # the idle worker process ended
    assert (mentions, pools) == (1, 2)


def test_workers_need_no_helper_process() -> None:
    """The pool's only processes are its workers: no resource tracker, no forkserver."""

    async def go() -> tuple[set[int], set[int]]:
        parser = Parser(BRANDS, 2)
        try:
            await parser.run("s", BODY, "https://x.example/feed", None)
            started = set(parser._executor._processes)  # type: ignore[union-attr]
            return started, _children() - before
        finally:
            parser.close()

    before = _children()
    workers, children = asyncio.run(go())
    assert len(workers) == 2 and children == workers


def test_a_failing_initializer_breaks_the_pool() -> None:
    pool = Pool(1, _fail)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(os.getpid).result(timeout=60)
        with pytest.raises(BrokenProcessPool):
            pool.submit(os.getpid)
    finally:
        pool.shutdown()


def test_a_call_that_raises_leaves_the_worker_serving() -> None:
    pool = Pool(1, os.getpid)
    try:
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result(timeout=60)
        assert pool.submit(divmod, 7, 2).result(timeout=60) == (3, 1)
        assert pool.submit(os.getpid).result(timeout=60) in pool._processes
    finally:
        pool.shutdown()
    assert all(process.returncode == 0 for process in pool._processes.values())


def test_big_calls_and_big_results_cross_at_once() -> None:
    """Two calls in flight per worker, each bigger than a pipe's buffer both ways: no call
    waits for another (results come back in order, whole)."""
    pool = Pool(1, os.getpid)
    try:
        texts = [bytes([97 + i]) * 3_000_000 for i in range(4)]
        futures = [pool.submit(bytes.upper, text) for text in texts]
        assert [f.result(timeout=120) for f in futures] == [t.upper() for t in texts]
    finally:
        pool.shutdown()


def _fail() -> None:
    raise RuntimeError("no models here")


def _children() -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as children:
            found.update(int(pid) for pid in children.read().split())
    return found


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (the pool reaps its workers)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_imports_what_parsing_needs_only() -> None:
    """A parser worker holds no TLS, event loop, pool machinery, database or HTTP client: the
    modules it would not use (ssl comes with the feed parsers' urllib.request unless barred)."""
    probe = "sorted(m for m in ('ssl', 'asyncio', 'multiprocessing', 'subprocess', 'sqlalchemy',"
    probe += " 'httpx', 'pydantic') if __import__('sys').modules.get(m))"  # ssl: None, barred

    async def go() -> tuple[int, object]:
        parser = Parser(BRANDS, 1)
        try:
            parsed = await parser.run("s", BODY, "https://x.example/feed", "text/xml")
            loaded = await parser._call(eval, probe)  # eval: a builtin, sent by reference
            return len(parsed.mentions), loaded
        finally:
            parser.close()

    assert asyncio.run(go()) == (1, [])


def test_the_wire_form_of_worker_results_gives_back_equal_mentions() -> None:
    item = Item(
        guid="g",
        url="https://x.example/1",
        title="Kryptonite lock picked",
        text="a text",
        author="ann",
        published_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        language="en",
        reach=10,
        points=3,
        likes=2,
        reposts=1,
        replies=0,
        article_url="https://y.example/a",
    )
    full = Mention(
        item=item,
        brands=frozenset({"Kryptonite", "Other"}),
        dedup_key="k",
        canonical_url="https://x.example/1",
        content_hash="h",
        story_url="https://x.example/1",
        fingerprint=(1 << 64) - 1,
        domain="x.example",
        sentiment=Score("negative", -0.625, 0.9, "v1"),
        backfill=True,
    )
    bare = Mention(Item(None, None, "t", ""), frozenset({"Kryptonite"}), "k2", None, "h2")
    parsed = Parsed(7, ("a warning",), (full, bare))
    crossed = unpack(pickle.loads(pickle.dumps(pack(parsed))))  # as it crosses the pipe
    assert crossed == parsed
    assert [type(m.item) for m in crossed.mentions] == [Item, Item]
    assert crossed.mentions[0].sentiment == full.sentiment
    assert crossed.mentions[1].sentiment is None
