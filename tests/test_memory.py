"""The process's heap under glibc: the command line caps malloc's arenas, and the
daemon's trim hands freed memory back to the kernel (monitor.memory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


pytestmark = pytest.mark.skipif(not _glibc(), reason="malloc arenas and trim are glibc's")

# Eight threads alive at once, each allocating: glibc gives each one an arena of its own
# (up to eight per core) unless capped. malloc_stats() lists the arenas on stderr.
ARENAS = """
import ctypes, sys, threading
if sys.argv[1] == "monitor":
    from monitor.cli import main
    try:
        main(["--version"])
    except SystemExit:
        pass
together = threading.Barrier(8)
def work():
    kept = [bytearray(4096) for _ in range(1000)]
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(how: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", ARENAS, how],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        check=True,
        timeout=60,
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_the_command_line_keeps_threads_to_two_malloc_arenas() -> None:
    assert _arenas("plain") > 2  # what the threads of any Python process get by default
    assert _arenas("monitor") == 2
    # the environment, when it says, rules: the operator's MALLOC_ARENA_MAX is kept
    assert _arenas("monitor", MALLOC_ARENA_MAX="4") == 4


# 600 blocks of 64 KB (below malloc's mmap threshold: on the heap) freed but the last,
# which holds the heap's top: free() alone gives none of it back.
TRIM = """
from monitor import memory
def resident():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) // 1024
blocks = [bytearray(65536) for _ in range(600)]
for block in blocks:
    block[::4096] = b"x" * 16
del blocks[:-1]
freed = resident()
print(memory.trim(), freed - resident())
"""


def test_trim_gives_the_freed_heap_back_to_the_kernel() -> None:
    done = subprocess.run(
        [sys.executable, "-c", TRIM], capture_output=True, text=True, cwd=ROOT, check=True
    )
    trimmed, released_mb = done.stdout.split()
    assert trimmed == "True"
    assert int(released_mb) >= 20  # of the 37.5 MB freed
