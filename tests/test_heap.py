"""listener.heap: freed heap pages go back to the OS (glibc), a no-op elsewhere."""

from __future__ import annotations

import os
import platform

import pytest

from listener import heap


def resident_kb() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_what_a_burst_of_allocations_left_free() -> None:
    # 64 KB blocks come from malloc's heap (below its mmap threshold); every other one stays
    # alive, so the freed ones are holes in the middle of the heap that glibc keeps unless asked
    blocks = [bytes(64_000) + bytes([i % 256]) for i in range(640)]
    kept = blocks[::2]
    del blocks
    before = resident_kb()
    assert heap.trim()
    assert resident_kb() < before - 10_000  # ~20 MB of holes, most of it given back
    assert len(kept) == 320
