"""The hostile web, check by check: every misbehaviour gets its classified outcome.

Each case of `tests/hostile.py` is checked several times in a row against the real
server, with the real client, store and pipeline. A case passes when every check
gives the expected outcome, no check carries a finding unless the content really
changed, the stored text is right, and the whole series stayed within a memory
bound (traced with tracemalloc). The fetch deadline is what bounds time; a hang
guard far above it turns a hang into a failure instead of a stuck test run.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import config
from monitor.check import CheckResult, Context, check
from monitor.fetch import make_client
from monitor.model import Document
from monitor.store import Store
from tests.hostile import BIG, CASES, Case, HostileWeb

DEADLINE = 2  # seconds: every watch's fetch deadline (`timeout:`)
HANG_GUARD = 60  # seconds: far above any deadline, only there to catch a hang
MEMORY_BOUND = 48 * 1024 * 1024  # bytes traced at the peak of a whole series


@pytest.fixture(scope="module")
def web() -> Iterator[HostileWeb]:
    with HostileWeb() as server:
        yield server


def watchlist(url: str, *extra: str) -> config.Watchlist:
    text = "\n".join(
        [
            "defaults:",
            f"  timeout: {DEADLINE}s",
            *extra,
            "watches:",
            "  - id: hostile",
            "    platform: Example",
            "    name: Government requests",
            f"    url: '{url}'",
        ]
    )
    return config.loads(text + "\n", "test.yaml", env={}, known_jurisdictions={"HK", "MO", "CN"})


def run_checks(store: Store, wl: config.Watchlist, count: int) -> list[CheckResult]:
    """`count` checks of the watch, an hour apart on the check's clock."""
    clock = [datetime(2026, 11, 1, tzinfo=UTC)]

    def now() -> datetime:
        return clock[0]

    async def series() -> list[CheckResult]:
        results = []
        async with make_client() as client:
            ctx = Context(client, store, None, now)
            for _ in range(count):
                clock[0] += timedelta(hours=1)
                results.append(await asyncio.wait_for(check(wl.watches[0], ctx), HANG_GUARD))
        return results

    return asyncio.run(series())


def described(result: CheckResult) -> str:
    return f"failed:{result.failure}" if result.failure else result.outcome.value


def text_of(document: Document) -> str:
    return "\n".join(block.text for block in document)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.path.strip("/"))
def test_each_misbehaviour_is_classified_without_false_findings(
    case: Case, web: HostileWeb, tmp_path: Path
) -> None:
    store = Store.open(str(tmp_path / "m.db"))
    count = max(len(case.expect) + 1, 2 + 2 * bool(case.findings))
    tracemalloc.start()
    try:
        results = run_checks(store, watchlist(web.url(case.path)), count)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [described(r) for r in results] == [case.outcome(i) for i in range(count)], [
        r.message for r in results
    ]
    with_findings = {i for i, r in enumerate(results) if r.findings}
    assert with_findings == case.findings
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB traced"
    latest = store.latest_version("hostile")
    if case.text is not None:
        assert latest is not None
        assert case.text in text_of(latest.document)
    if latest is None:
        assert all(r.failure for r in results)  # nothing stored is never a silent success
    store.close()


def test_a_big_body_is_cut_off_soon_after_the_cap(web: HostileWeb, tmp_path: Path) -> None:
    """The monitor hangs up instead of reading 50 MB; the announced one is not read at all."""
    store = Store.open(str(tmp_path / "m.db"))
    wl = watchlist(web.url("/big-streamed"), "  max_size: 1MB")
    before = web.sent["/big-streamed"]
    [result] = run_checks(store, wl, 1)
    assert result.failure == "too_large"
    assert web.sent["/big-streamed"] - before < BIG  # it hung up (loopback buffers hold MBs)
    store.close()
