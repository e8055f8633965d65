"""A flood of findings: one page whose every sentence about Hong Kong changes at once.

Issue 14's hostile review found that a 789 KB page of changed Hong Kong sentences made
20,001 findings, 1,330 Discord messages per alert and a 45 MB alert row, and that a
4.8 MB page took 24 s of CPU inside the event loop and 699 MB of RSS. This measures
the same shapes end to end: a local HTTP server on 127.0.0.1 serves a page of N
sentences naming Hong Kong, `monitor check` records its baseline, every sentence is
then edited and `monitor check` runs again. Each run is a fresh process, measured
with `resource.getrusage(RUSAGE_CHILDREN)` (CPU and peak RSS); the store's alert
row and the number of findings are read back with sqlite3.

    .venv/bin/python -m bench.flood                  # 789 KB and 4.8 MB pages
    .venv/bin/python -m bench.flood --sizes 10000000 # a 10 MB page

Nothing but 127.0.0.1 is contacted; no route is configured, so alerts go to the store.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SENTENCE = "Requests from the Hong Kong police in case {n} were {verb} after review."


def page(size: int, verb: str) -> bytes:
    """An HTML page of about `size` bytes: paragraphs of sentences naming Hong Kong."""
    parts, total, n = [], 0, 0
    while total < size:
        paragraph = " ".join(SENTENCE.format(n=n + i, verb=verb) for i in range(5))
        parts.append(f"<p>{paragraph}</p>")
        total += len(parts[-1])
        n += 5
    body = "\n".join(parts)
    return f"<html><body><main><h1>Requests</h1>{body}</main></body></html>".encode()


class Site:
    def __init__(self) -> None:
        self.body = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/p"


def run_check(workdir: Path) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of one `monitor check` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "monitor", "check", "--watchlist", "w.yaml", "--db", "m.db"],
        cwd=workdir,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_PROXY": "127.0.0.1"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, after.ru_maxrss / 1024


def measure(size: int) -> dict[str, object]:
    site = Site()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "w.yaml").write_text(
            "defaults: {max_size: 50MB, timeout: 300s}\n"
            f"watches:\n  - {{id: flood, url: '{site.url}', jurisdictions: [HK]}}\n"
        )
        site.body = page(size, "answered")
        run_check(workdir)
        site.body = page(size, "refused")
        cpu, rss = run_check(workdir)
        with sqlite3.connect(workdir / "m.db") as db:
            findings = db.execute("select count(*) from findings").fetchone()[0]
            row = db.execute("select length(message), title from alerts").fetchone()
    site.server.shutdown()
    return {
        "page_bytes": len(site.body),
        "findings": findings,
        "alert_row_bytes": row[0] if row else 0,
        "title": row[1] if row else "",
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[789_000, 4_800_000])
    args = parser.parse_args()
    print("| page | findings | alert row | CPU of the changed check | peak RSS (all checks) |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        r = measure(size)
        print(
            f"| {r['page_bytes']:,} B | {r['findings']:,} | {r['alert_row_bytes']:,} B "
            f"| {r['cpu_s']} s | {r['peak_rss_mb']} MB |"
        )
        print(f"  title: {r['title']}")


if __name__ == "__main__":
    main()
