"""What one `monitor check` of one page costs, start to exit: the fixed cost a cron job
or a single check pays at every run.

Serves one HTML page on 127.0.0.1 (from a thread of this process, so the server's CPU
is not counted) and runs `python -m monitor check` of a one-watch watchlist as a
child process, in four checks on a fresh SQLite store each repetition:

    new        the page first seen                          -> new
    304        the same page, its ETag sent back            -> not_modified
    unchanged  the same bytes, served without an ETag       -> unchanged
    changed    a sentence about Hong Kong edited            -> changed (findings)

then `monitor health` of that store (a container's probe: it loads the store alone)
and `monitor --version` (the parser alone). Reports the median over
`--runs` repetitions of each child's CPU (user + system) and peak RSS, read from
`os.wait4`.

    .venv/bin/python -m bench.startup --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.run import ROOT, monitor_python

PARAGRAPHS = 40
OLD = "We received 12 requests from Hong Kong and answered none of them."
NEW = "We received 14 requests from Hong Kong and answered two of them."


def page(sentence: str) -> bytes:
    """A policy page of about 40 KB: navigation, a footer, a main text with the
    Hong Kong sentence among other paragraphs."""
    filler = "".join(
        f"<p>Paragraph {n}: we review each request for legal sufficiency and "
        "notify the people concerned unless the law forbids it.</p>"
        for n in range(PARAGRAPHS)
    )
    nav = "".join(f'<a href="/l{n}">Link {n}</a>' for n in range(50))
    return (
        f"<html><head><title>Government requests</title></head><body><nav>{nav}</nav>"
        f"<main><h1>Government requests</h1>{filler}<h2>Hong Kong</h2><p>{sentence}</p>"
        f"{filler}</main><footer>Terms</footer></body></html>"
    ).encode()


class Site:
    """One page at `/p`; `etag` None serves it without validators."""

    def __init__(self) -> None:
        self.body = page(OLD)
        self.etag: str | None = None
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if site.etag and self.headers.get("If-None-Match") == site.etag:
                    self.send_response(304)
                    self.send_header("ETag", site.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(site.body)))
                if site.etag:
                    self.send_header("ETag", site.etag)
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/p"


def child(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run `python -m monitor ARGS` with monitor's runtime dependencies alone (the
    working tree's code): (CPU seconds, peak RSS MB, stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    proc = subprocess.Popen(
        [str(monitor_python()), "-m", "monitor", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env | {"PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def repetition(site: Site, work: Path) -> dict[str, tuple[float, float]]:
    """The four checks on a fresh store, `health` of that store and `--version`."""
    db = work / "monitor.db"
    db.unlink(missing_ok=True)
    watchlist = work / "watchlist.yaml"
    watchlist.write_text(f"watches:\n  - {{id: p, platform: P, url: '{site.url}'}}\n")
    check = ["check", "--watchlist", str(watchlist), "--db", str(db), "--json"]
    figures: dict[str, tuple[float, float]] = {}
    steps: tuple[tuple[str, str, str | None], ...] = (
        ("new", OLD, '"a"'),
        ("304", OLD, '"a"'),
        ("unchanged", OLD, None),
        ("changed", NEW, None),
    )
    for name, sentence, etag in steps:
        site.body, site.etag = page(sentence), etag
        cpu, rss, out = child(check, work)
        outcome = json.loads(out.splitlines()[0])["outcome"]
        expected = {"304": "not_modified"}.get(name, name)
        if outcome != expected:
            raise SystemExit(f"{name}: the check's outcome was {outcome}, not {expected}")
        figures[name] = (cpu, rss)
    for name, args in (("health", ["health", "--db", str(db)]), ("--version", ["--version"])):
        cpu, rss, _ = child(args, work)  # health: no daemon's heartbeat, so it exits 1
        figures[name] = (cpu, rss)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    site = Site()
    with tempfile.TemporaryDirectory(prefix="monitor-startup-") as tmp:
        child(["--version"], Path(tmp))  # warm-up: bytecode compiled, files cached
        runs = [repetition(site, Path(tmp)) for _ in range(args.runs)]
    print(f"one `monitor check` of one page, median of {args.runs} runs (CPU s, peak RSS MB)")
    for name in runs[0]:
        cpu = statistics.median(r[name][0] for r in runs)
        rss = statistics.median(r[name][1] for r in runs)
        print(f"  {name:<10} {cpu:6.3f} s  {rss:6.1f} MB")


if __name__ == "__main__":
    main()
