"""The process's heap under glibc: fewer malloc arenas, and freed memory given back.

CPython takes a page's body, its decoded text, lxml's tree and zstd's contexts from
malloc. glibc gives each thread that finds the heap busy an arena of its own (up to
eight per core) and keeps what is freed in it for later: the threads that evaluate
pages leave tens of MB resident that the process no longer uses, and a long-lived
daemon grows by them. `cap_arenas` does what `MALLOC_ARENA_MAX=2` in the environment
does (which, when set, is left to rule), and `trim` hands the free pages at the top
and in the middle of every arena back to the kernel. Under another C library (musl,
macOS) both do nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

ARENAS = 2  # the main one and one for the worker threads
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def cap_arenas() -> bool:
    """Cap the malloc arenas at `ARENAS`, before the process starts its threads.
    Whether it was capped here (not under glibc, or set by the environment: not)."""
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, ARENAS))


def trim() -> bool:
    """Give the heap's free pages back to the kernel; whether any were (glibc only)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def _glibc() -> ctypes.CDLL | None:
    """The C library's functions when it is glibc (asked of the C library itself)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (ValueError, OSError):  # no such name on this system: not glibc
        return None
    import ctypes  # only under glibc, and only then

    try:
        return ctypes.CDLL(None)
    except OSError:
        return None
