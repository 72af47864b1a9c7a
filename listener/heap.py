"""Handing freed heap memory back to the operating system.

Owns one call: ``trim`` asks glibc (``malloc_trim(0)``) to return the free pages of its heap.
CPython's allocator frees whole arenas, but glibc keeps what a burst of allocations left free
(loading a model, a poll cycle, a detection run) as part of the process's resident memory until
it is asked. A no-op where the C library has no ``malloc_trim`` (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the symbols the process has loaded, libc's among them
        function: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return function


def trim() -> bool:
    """Return free heap pages to the OS; whether any were (False where unsupported)."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False
