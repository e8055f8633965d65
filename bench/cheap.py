"""The cheap rounds: what a check costs when the page did not change.

Runs `monitor.check.check` in-process, one check at a time, against a local server
(another process, so its CPU is not counted) on the benchmark corpus, in six rounds
on one real SQLite store:

    first      the pages as first served                          -> new
    identical  the same bytes again, no validators                -> unchanged
    noise      footer timestamp, CSRF token and nonces changed    -> unchanged
    changed    every page's main text edited (a word or a number) -> changed
    etag       the same bytes, now with an ETag                   -> unchanged
    304        If-None-Match answered 304 Not Modified            -> not_modified

and prints, per round, the CPU time of this process per check (user + system), the
SQL statements per check (an SQLAlchemy listener on the store's engine) and the
outcomes. No per-host politeness delay (no limiter): CPU is what is measured.

    .venv/bin/python -m bench.cheap --pages 100
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from bench.corpus import DEFAULT_SEED, Corpus

HOST = "127.0.0.1"
CHANGED_ROUND = 2
# (name, corpus round, server sends an ETag and answers If-None-Match)
ROUNDS = (
    ("first", 0, False),
    ("identical", 0, False),
    ("noise", 1, False),
    ("changed", CHANGED_ROUND, False),
    ("etag", CHANGED_ROUND, True),
    ("304", CHANGED_ROUND, True),
)
T = TypeVar("T")
_CONTROL = re.compile(r"^/_control/(\d+)/([01])$")


# --- the server (its own process) -----------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        found = self.server.pages.get(self.path)
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, b"", {})
            return
        plain, packed, etag = found
        if self.server.etags and self.headers.get("If-None-Match") == etag:
            self._send(HTTPStatus.NOT_MODIFIED, b"", {"ETag": etag})
            return
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if self.server.etags:
            headers["ETag"] = etag
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            plain = packed
        self._send(HTTPStatus.OK, plain, headers)

    def do_POST(self) -> None:
        match = _CONTROL.match(self.path)
        if match is None:
            self._send(HTTPStatus.NOT_FOUND, b"", {})
            return
        self.server.switch(int(match[1]), etags=match[2] == "1")
        self._send(HTTPStatus.OK, b"ok", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, corpus: Corpus) -> None:
        super().__init__((HOST, 0), _Handler)
        self.corpus = corpus
        self.pages: dict[str, tuple[bytes, bytes, str]] = {}
        self.etags = False
        self.switch(0, etags=False)

    def switch(self, round_: int, *, etags: bool) -> None:
        self.pages = {
            path: (body, gzip.compress(body, mtime=0), f'"{hashlib.sha256(body).hexdigest()[:16]}"')
            for path, body in self.corpus.pages(round_).items()
        }
        self.etags = etags


def serve(pages: int, seed: int) -> None:
    corpus = Corpus(pages, seed=seed, changed_rounds=[CHANGED_ROUND], share=1.0)
    server = _Server(corpus)
    paths = [spec.path for spec in corpus.specs]
    print(json.dumps({"port": server.server_address[1], "paths": paths}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the benchmark closes our stdin


# --- the checks (this process) --------------------------------------------------------


@contextmanager
def _server(pages: int, seed: int) -> Iterator[tuple[int, list[str]]]:
    command = [sys.executable, "-m", "bench.cheap", "--serve", "--pages", str(pages)]
    command += ["--seed", str(seed)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        ready = json.loads(proc.stdout.readline())
        try:
            yield int(ready["port"]), list(ready["paths"])
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)


def _watchlist(folder: Path, port: int, paths: list[str]) -> Path:
    lines = ["defaults:", "  jurisdictions: [HK, MO, CN]", "watches:"]
    for index, path in enumerate(paths):
        lines += [
            f"  - id: page-{index:04d}",
            "    platform: Bench",
            f"    name: Benchmark page {index}",
            f"    url: http://{HOST}:{port}{path}",
        ]
    target = folder / "watchlist.yaml"
    target.write_text("\n".join(lines) + "\n")
    return target


def _switch(port: int, round_: int, etags: bool) -> None:
    import httpx

    httpx.post(
        f"http://{HOST}:{port}/_control/{round_}/{int(etags)}", timeout=600
    ).raise_for_status()


async def _rounds(
    port: int, paths: list[str], folder: Path, profiles: Path | None
) -> list[dict[str, Any]]:
    from sqlalchemy import event

    from monitor.app import load_watchlist
    from monitor.check import Context, check
    from monitor.fetch import make_client
    from monitor.pipeline import Matchers
    from monitor.store import Store

    watchlist = load_watchlist(_watchlist(folder, port, paths))
    statements = [0]
    results = []
    with Store.open(f"sqlite:///{folder / 'monitor.db'}") as store:

        def count(*_: object) -> None:
            statements[0] += 1

        event.listen(store.engine, "before_cursor_execute", count)
        async with make_client() as client:
            ctx = Context(client, store, matchers=Matchers(watchlist), routes=watchlist.routes)
            for name, round_, etags in ROUNDS:
                _switch(port, round_, etags)
                outcomes: Counter[str] = Counter()
                statements[0] = 0
                profile = cProfile.Profile() if profiles else None
                cpu, wall = time.process_time(), time.perf_counter()
                if profile:
                    profile.enable()
                for watch in watchlist.watches:
                    outcomes[(await check(watch, ctx)).outcome.value] += 1
                if profile:
                    profile.disable()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if profile and profiles:
                    profile.dump_stats(profiles / f"{name}.prof")
                n = len(watchlist.watches)
                results.append(
                    {
                        "round": name,
                        "cpu_ms_per_check": round(1000 * cpu / n, 2),
                        "wall_ms_per_check": round(1000 * wall / n, 2),
                        "statements_per_check": round(statements[0] / n, 2),
                        "outcomes": dict(outcomes),
                    }
                )
                print(_line(results[-1]), flush=True)
    return results


async def _inline(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return func(*args, **kwargs)


def _line(row: dict[str, Any]) -> str:
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(row["outcomes"].items()))
    return (
        f"{row['round']:<10} CPU {row['cpu_ms_per_check']:7.2f} ms/check  "
        f"wall {row['wall_ms_per_check']:7.2f} ms/check  "
        f"SQL {row['statements_per_check']:5.1f}/check  {outcomes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="cProfile each round into DIR/ROUND.prof, evaluation inlined (slower)",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.pages, args.seed)
        return
    os.environ.setdefault("MONITOR_LOG_LEVEL", "WARNING")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        asyncio.to_thread = _inline  # type: ignore[assignment]  # cProfile sees one thread
    with _server(args.pages, args.seed) as (port, paths), tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(_rounds(port, paths, Path(tmp), args.profile))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
