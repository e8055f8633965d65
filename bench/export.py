"""Evidence export on a large store: `monitor export` and `verify-export` memory and time.

Builds a store through `Store.record` (no HTTP: the export only reads what checks left)
with W watches of N snapshots each, every body B MB of page text that differs from
every other (so the store holds them all, near incompressible, as real bodies it
cannot delta-encode), a version every tenth snapshot. Then runs, as subprocesses:

    monitor export WATCH --out X.warc           for the largest watch
    monitor export --all --out DIR              every watch, .warc.gz
    monitor verify-export X.warc

and reads each one's peak RSS and CPU time from `os.wait4`, beside the store's size,
the archive's size and the largest body. Bounded memory means the peak stays near a
few bodies' size however many snapshots there are. Results go to
``bench/out/export.json`` and a Markdown table to stdout.

    .venv/bin/python -m bench.export                     # 2 watches x 300 x 4 MB: 2.4 GB
    .venv/bin/python -m bench.export --quick             # 2 watches x 40 x 1 MB
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.model import Block, CheckRecord, Outcome, Snapshot, VersionKind
from monitor.store import Store

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
PYTHON = BENCH.parent / ".venv/bin/python"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def body(watch: int, number: int, size: int) -> bytes:
    """`size` bytes of HTML around base64 text of seeded random bytes: unlike any other
    body, so zstd keeps about three quarters of it."""
    head = f"<html><body><main><h1>Report {watch}</h1><p>Snapshot {number}</p><pre>".encode()
    tail = b"</pre></main></body></html>"
    text = base64.b64encode(random.Random(f"{watch}:{number}").randbytes(size * 3 // 4))
    return head + text[: size - len(head) - len(tail)] + tail


def build(db: Path, watches: int, snapshots: int, size: int) -> None:
    with Store.open(str(db)) as store:
        for w in range(watches):
            for n in range(snapshots):
                at = T0 + timedelta(hours=n)
                raw = body(w, n, size)
                snap = Snapshot(
                    url=f"https://example.org/{w}",
                    final_url=f"https://example.org/{w}",
                    status=200,
                    headers=(("content-type", "text/html; charset=utf-8"),),
                    body=raw,
                    encoding="utf-8",
                    fetched_at=at,
                    elapsed=0.1,
                )
                versioned = n % 10 == 0
                doc = (Block("heading", f"Report {w}", level=1), Block("paragraph", f"{n}"))
                store.record(
                    CheckRecord(
                        f"watch-{w}",
                        at,
                        0.1,
                        Outcome.CHANGED if versioned else Outcome.UNCHANGED,
                        snapshot=snap,
                        document=doc if versioned else None,
                        version_kind=(VersionKind.CHANGE if n else VersionKind.BASELINE)
                        if versioned
                        else None,
                        rules_hash="bench",
                    )
                )


def measure(*args: str) -> dict[str, Any]:
    """Run `monitor ARGS`, return its wall time, CPU time and peak RSS."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "monitor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.communicate()
    return {
        "command": "monitor " + " ".join(args),
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stdout": out.decode()[-400:],
        "stderr": err.decode()[-400:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--watches", type=int, default=2)
    parser.add_argument("--snapshots", type=int, default=300)
    parser.add_argument("--size-mb", type=float, default=4.0)
    opts = parser.parse_args()
    if opts.quick:
        opts.snapshots, opts.size_mb = 40, 1.0
    size = int(opts.size_mb * 1_000_000)
    work = OUT / "export"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "monitor.db"
    started = time.monotonic()
    build(db, opts.watches, opts.snapshots, size)
    built = time.monotonic() - started
    wl = work / "w.yaml"
    wl.write_text("watches:\n  - {id: unrelated, url: 'https://example.org/x'}\n")
    common = ("--db", str(db), "--watchlist", str(wl))
    one = work / "one.warc"
    runs = [
        measure("history", "watch-0", "--db", str(db)),  # the baseline: imports and a read
        measure("export", "watch-0", "--out", str(one), *common),
        measure("export", "--all", "--out", str(work / "all"), *common),
        measure("verify-export", str(one)),
    ]
    for run in runs:
        if run["exit"] != 0:
            raise SystemExit(f"{run['command']} failed: {run['stderr']}")
    store_size = sum(p.stat().st_size for p in work.glob("monitor.db*"))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "watches": opts.watches,
        "snapshots_per_watch": opts.snapshots,
        "body_mb": opts.size_mb,
        "store_mb": round(store_size / 1e6),
        "build_s": round(built, 1),
        "one_warc_mb": round(one.stat().st_size / 1e6),
        "all_warc_gz_mb": round(sum(p.stat().st_size for p in (work / "all").iterdir()) / 1e6),
        "runs": runs,
    }
    (OUT / "export.json").write_text(json.dumps(results, indent=1))
    print(
        f"store: {results['store_mb']} MB ({opts.watches} watches x {opts.snapshots} "
        f"snapshots x {opts.size_mb} MB bodies), built in {results['build_s']} s; "
        f"one watch's .warc {results['one_warc_mb']} MB, --all .warc.gz "
        f"{results['all_warc_gz_mb']} MB"
    )
    print("\n| command | exit | wall s | CPU s | peak RSS MB |\n|---|---|---|---|---|")
    for run in runs:
        name = run["command"].replace(str(work) + "/", "")
        print(
            f"| `{name}` | {run['exit']} | {run['wall_s']} | {run['cpu_s']} | "
            f"{run['peak_rss_mb']} |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
