"""The dashboard on a big store: how long each page and feed takes to render.

Builds (once, then reused) a SQLite store of W watches with V versions each, written
through `Store.record` as checks write them: every version a ~40-block document with
one sentence edited, a ~20 KB body, and every fifth version a Hong Kong finding with a
change alert delivered to one route. Then serves the dashboard in-process (httpx's
ASGI transport, no socket) and times each page: the median and the worst of R
requests. Results go to ``bench/out/dashboard.json`` and a Markdown table to stdout.

    .venv/bin/python -m bench.dashboard            # 2,000 watches x 50 versions = 100,000
    .venv/bin/python -m bench.dashboard --quick    # 200 watches x 50 versions = 10,000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from monitor import dashboard
from monitor.config import Watchlist, loads
from monitor.messages import note_message
from monitor.model import (
    AlertKind,
    AlertRecord,
    Block,
    Change,
    ChangeKind,
    CheckRecord,
    Finding,
    FindingKind,
    Outcome,
    Snapshot,
    VersionKind,
)
from monitor.store import Store

OUT = Path(__file__).parent / "out"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BLOCKS = 40


def document(watch: int, version: int) -> tuple[Block, ...]:
    blocks = [Block("heading", f"Government requests {watch}", (), 1)]
    for i in range(1, BLOCKS):
        edit = f" (edit {version})" if i == version % (BLOCKS - 1) + 1 else ""
        text = (
            f"Paragraph {i}: we review requests from authorities in Hong Kong and elsewhere{edit}."
        )
        blocks.append(Block("paragraph", text, (f"Government requests {watch}",)))
    return tuple(blocks)


def record(watch: int, version: int) -> CheckRecord:
    at = T0 + timedelta(hours=version, seconds=watch)
    doc = document(watch, version)
    body = "<html><body><main>" + "".join(f"<p>{b.text}</p>" for b in doc) * 4 + "</main>"
    snap = Snapshot(
        f"https://example.org/{watch}", f"https://example.org/{watch}", 200,
        (("content-type", "text/html"),), body.encode(), "utf-8", at, 0.1,
    )  # fmt: skip
    findings: tuple[Finding, ...] = ()
    alerts: tuple[AlertRecord, ...] = ()
    if version and version % 5 == 0:
        change = Change(ChangeKind.MODIFIED, "paragraph", "Hong Kong before", "Hong Kong after")
        findings = (
            Finding("HK", FindingKind.SENTENCE_MODIFIED, "sentence", ("Hong Kong",), change),
        )
        message = note_message(f"w{watch}: Hong Kong", "We respond to Hong Kong requests.")
        dest = (("desk", "0" * 64, "json://robot:****@example.org/hook"),)
        alerts = (AlertRecord(f"w{watch}", AlertKind.CHANGE, f"w{watch}: Hong Kong",
                              message.to_json(), ("HK",), dest),)  # fmt: skip
    return CheckRecord(
        f"w{watch}", at, 0.1, Outcome.CHANGED if version else Outcome.NEW,
        snapshot=snap, document=doc, rules_hash="r",
        version_kind=VersionKind.CHANGE if version else VersionKind.BASELINE,
        findings=findings, alerts=alerts,
    )  # fmt: skip


def build(db: Path, watches: int, versions: int) -> float:
    started = time.monotonic()
    with Store.open(str(db)) as store:
        for version in range(versions):
            for watch in range(watches):
                store.record(record(watch, version))
    return time.monotonic() - started


def watchlist(watches: int) -> Watchlist:
    lines = ["watches:"] + [
        f"  - {{id: w{i}, platform: P{i % 7}, name: Page {i}, url: 'https://example.org/{i}',"
        " jurisdictions: [HK]}"
        for i in range(watches)
    ]
    return loads("\n".join(lines) + "\n", "bench")


def measure(db: Path, watches: int, rounds: int) -> dict[str, dict[str, float]]:
    store = Store.open(str(db), create=False)
    wl = watchlist(watches)
    app = dashboard.app(store, lambda: wl)
    middle = f"w{watches // 2}"
    paths = {
        "index": "/",
        "index, filtered": "/?platform=P3",
        "watch": f"/watch/{middle}",
        "change": f"/watch/{middle}/diff",
        "alerts": "/alerts",
        "feed: all": "/feeds/all.atom",
        "feed: HK": "/feeds/jurisdiction/HK.atom",
        "feed: watch": f"/feeds/watch/{middle}.atom",
    }

    async def go() -> dict[str, dict[str, float]]:
        transport = httpx.ASGITransport(app=app)
        times: dict[str, dict[str, float]] = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path in paths.items():
                spent = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    answer = await client.get(path)
                    spent.append(time.perf_counter() - start)
                    assert answer.status_code == 200, (path, answer.status_code)
                times[name] = {
                    "median_ms": statistics.median(spent) * 1000,
                    "max_ms": max(spent) * 1000,
                    "bytes": len(answer.content),
                }
        return times

    try:
        return asyncio.run(go())
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 watches instead of 2,000")
    parser.add_argument("--versions", type=int, default=50, help="versions per watch")
    parser.add_argument("--rounds", type=int, default=7, help="requests per page")
    args = parser.parse_args()
    watches = 200 if args.quick else 2000
    OUT.mkdir(exist_ok=True)
    db = OUT / f"dashboard-{watches}x{args.versions}.db"
    built = None
    if not db.exists():
        built = build(db, watches, args.versions)
    times = measure(db, watches, args.rounds)
    name = "dashboard-quick.json" if args.quick else "dashboard.json"
    result = {"watches": watches, "versions": watches * args.versions, "build_s": built}
    (OUT / name).write_text(json.dumps({**result, "pages": times}, indent=2))
    print(f"{watches} watches, {watches * args.versions} versions")
    print("| page | median ms | worst ms | bytes |\n|---|---:|---:|---:|")
    for page, t in times.items():
        print(f"| {page} | {t['median_ms']:.0f} | {t['max_ms']:.0f} | {t['bytes']} |")


if __name__ == "__main__":
    main()
