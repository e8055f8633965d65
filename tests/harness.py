"""Running `monitor` as a user does: one-off commands and a daemon, as subprocesses.

A daemon is started with `--log-format json`; its log lines are read from a file and
waited for with a bounded poll, and every process is killed in a `finally`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

WAIT = 11.0  # seconds a daemon gets, by default, to log what a test waits for
STOP_GRACE = 30  # seconds the daemon waits for running checks on SIGTERM

ENV = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")} | {
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def monitor(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a one-off `monitor` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        cwd=cwd,
        check=False,
    )


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    """Poll `condition` until it holds; fail saying `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.1)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


class Daemon:
    """A running `monitor run` and the JSON lines it logged so far."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process, self.log = process, log

    def lines(self) -> list[dict[str, Any]]:
        """Every complete log line; a line that is not JSON is kept as `raw`."""
        *complete, _partial = self.log.read_text().split("\n")
        out = []
        for raw in complete:
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                out.append({"level": "raw", "message": raw})
        return out

    def mark(self) -> int:
        """The index of the next log line, for `wait_log(..., after=mark)`."""
        return len(self.lines())

    def wait_log(self, text: str, *, after: int = 0, timeout: float = WAIT) -> int:
        """Wait for a line containing `text` at index `after` or later; return its index."""
        hits: list[int] = []

        def found() -> bool:
            lines = self.lines()
            hits[:] = [i for i in range(after, len(lines)) if text in lines[i]["message"]][:1]
            if not hits and self.process.poll() is not None:
                pytest.fail(f"the daemon exited ({self.process.returncode}):\n{self.tail()}")
            return bool(hits)

        try:
            wait_for(repr(text), found, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the daemon logged:\n{self.tail()}") from None
        return hits[0]

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_GRACE + 10) -> int:
        """Send `sig` and wait for the exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-n:])

    def problems(self) -> list[dict[str, Any]]:
        """Lines no healthy run should log: tracebacks, or anything that is not JSON."""
        return [ln for ln in self.lines() if "exception" in ln or ln["level"] == "raw"]


@contextlib.contextmanager
def running(
    tmp_path: Path, watchlist: Path, name: str = "daemon", *options: str
) -> Iterator[Daemon]:
    """Start `monitor run` (with `options`), wait until it is up, always kill it at the end."""
    log = tmp_path / f"{name}.log"
    command = [sys.executable, "-m", "monitor", "run", "--log-format", "json", *options]
    command += ["--watchlist", str(watchlist), "--db", str(tmp_path / "m.db")]
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=ENV, cwd=tmp_path
        ) as process,
    ):
        try:
            daemon = Daemon(process, log)
            daemon.wait_log("monitor started", timeout=30)  # signal handlers are in place
            yield daemon
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)
