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
import contextlib
import tracemalloc
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import config
from monitor.check import Context, Matchers, check
from monitor.cli import main
from monitor.fetch import make_client
from monitor.model import CheckResult, Document
from monitor.store import Store
from tests.conftest import Mailbox, Receiver, free_port, mailto, parts
from tests.harness import query, running, wait_for
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


def matchers(wl: config.Watchlist) -> Matchers:
    """The watch's jurisdiction matcher, built before a test measures memory: it is
    built once per process (and cached), so only the first test would pay for it."""
    built = Matchers(wl)
    built.for_watch(wl.watches[0])
    return built


def run_checks(
    store: Store, wl: config.Watchlist, count: int, known: Matchers | None = None
) -> list[CheckResult]:
    """`count` checks of the watch, an hour apart on the check's clock."""
    clock = [datetime(2026, 11, 1, tzinfo=UTC)]
    known = known or matchers(wl)

    def now() -> datetime:
        return clock[0]

    async def series() -> list[CheckResult]:
        results = []
        async with make_client() as client:
            ctx = Context(client, store, None, now, matchers=known)
            for _ in range(count):
                clock[0] += timedelta(hours=1)
                results.append(await asyncio.wait_for(check(wl.watches[0], ctx), HANG_GUARD))
        return results

    return asyncio.run(series())


def described(result: CheckResult) -> str:
    return label(result.outcome.value, result.failure)


def label(outcome: str, failure: str | None) -> str:
    """An outcome as `Case.expect` writes it: `new`, or `failed:<kind>`."""
    return f"failed:{failure}" if failure else outcome


def text_of(document: Document) -> str:
    return "\n".join(block.text for block in document)


# Cases whose checks wait in real time: for the fetch deadline, for a Retry-After, or
# between retries of a transient failure (the check's back-off sleeps are real).
WAITING = {"/cut-transfer", "/huge-header", "/not-http", "/drip", "/silent", "/429-then-page"}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.path.strip("/"), marks=[pytest.mark.slow] if c.path in WAITING else [])
        for c in CASES
    ],
)
def test_each_misbehaviour_is_classified_without_false_findings(
    case: Case, web: HostileWeb, tmp_path: Path
) -> None:
    store = Store.open(str(tmp_path / "m.db"))
    count = max(len(case.expect) + 1, 2 + 2 * bool(case.findings))
    wl = watchlist(web.url(case.path))
    known = matchers(wl)
    tracemalloc.start()
    try:
        results = run_checks(store, wl, count, known)
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


def test_a_script_in_a_hong_kong_sentence_is_escaped_in_every_output(
    tmp_path: Path, mailbox: Mailbox, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks = [f"json://127.0.0.1:{receiver.port}/{fmt}?format={fmt}" for fmt in ("html", "markdown")]
    with HostileWeb() as fresh:
        watchlist = tmp_path / "w.yaml"
        watchlist.write_text(
            "defaults:\n  routes: [desk]\n"
            f"routes:\n  desk: {[mailto(mailbox.port), *hooks]}\n"
            "watches:\n"
            f"  - {{id: x, platform: Example, name: Requests, url: '{fresh.url('/xss')}'}}\n"
        )
        args = ["--watchlist", str(watchlist), "--db", str(tmp_path / "m.db")]
        assert main(["check", *args]) == 0
        assert main(["check", *args]) == 0
    capsys.readouterr()
    assert main(["diff", *args, "--color", "never", "x"]) == 0
    terminal = capsys.readouterr().out

    [mail] = mailbox.messages
    html = parts(mail)["text/html"]
    posted = {post.path.strip("/"): post.json()["message"] for post in receiver.posts}
    for out in (html, posted["html"]):
        assert "&lt;script&gt;alert(" in out and "&lt;img src=x" in out
        assert "<script" not in out and "<img" not in out
    assert r"\<script\>alert(" in posted["markdown"]
    assert "<script>alert(" in terminal  # plain text is shown as it is, ...
    assert "\x1b" not in terminal + parts(mail)["text/plain"]  # ... without its escapes


# --- the daemon against the whole hostile web at once --------------------------------------

INTERVAL = 3  # seconds between checks of each hostile watch
RSS_BOUND = 300 * 1024  # kB: the daemon's peak resident memory (about 100 MB when idle)


def checks_needed(case: Case) -> int:
    """Enough checks to see every expected outcome, and a quiet one after a finding."""
    return max(len(case.expect) + 1, 2 + 2 * bool(case.findings))


def watch_id(case: Case) -> str:
    return "hostile-" + case.path.strip("/")


def outcomes(db: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for watch, outcome, kind in query(
        db, "SELECT watch_id, outcome, failure_kind FROM checks ORDER BY id"
    ):
        found.setdefault(watch, []).append(label(outcome, kind))
    return found


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


@pytest.mark.slow
def test_the_daemon_keeps_running_through_the_hostile_web(tmp_path: Path) -> None:
    """Every case at once, each on a loopback address of its own (one host would queue
    them behind the politeness delay), plus a half-written watchlist on the way."""
    db, port = tmp_path / "m.db", free_port()
    watchlist = tmp_path / "w.yaml"
    with contextlib.ExitStack() as servers:
        webs = [servers.enter_context(HostileWeb(f"127.0.0.{i + 2}")) for i in range(len(CASES))]
        text = "\n".join(
            [
                "defaults:",
                f"  interval: {INTERVAL}s",
                "  jitter: 0",
                "  browser: never",  # what plain HTTP makes of them; rendering: test_browser
                f"  timeout: {DEADLINE}s",
                "watches:",
                *(
                    f"  - {{id: {watch_id(c)}, platform: X, name: N, url: '{web.url(c.path)}'}}"
                    for c, web in zip(CASES, webs, strict=True)
                ),
            ]
        )
        watchlist.write_text(text + "\n")

        def checked(extra: int = 0) -> bool:
            seen = outcomes(db)
            return all(len(seen.get(watch_id(c), ())) >= checks_needed(c) + extra for c in CASES)

        options = ("--http", f"127.0.0.1:{port}", "--spread", "0", "--watch-file")
        with running(tmp_path, watchlist, "daemon", *options) as daemon:
            wait_for("every hostile watch checked", checked, timeout=90)
            mark = daemon.mark()
            watchlist.write_text(text + "\n  - {id: half-written, url: 'http://")  # an editor
            daemon.wait_log("watchlist reload refused", after=mark, timeout=20)
            wait_for("two more rounds on the old watchlist", lambda: checked(2), timeout=30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as ok:
                assert ok.status == 200
            peak = peak_rss_kb(daemon.process.pid)
            assert daemon.stop() == 0

    seen = outcomes(db)
    for case in CASES:
        expected = [case.outcome(i) for i in range(checks_needed(case))]
        assert seen[watch_id(case)][: len(expected)] == expected, case.path
    alerted = dict(
        query(db, "SELECT watch_id, count(*) FROM alerts WHERE kind = 'change' GROUP BY watch_id")
    )
    assert alerted == {watch_id(c): len(c.findings) for c in CASES if c.findings}
    assert peak < RSS_BOUND, f"peak RSS {peak / 1024:.0f} MB"
    assert daemon.problems() == []
    rounds = min(len(seen[watch_id(c)]) for c in CASES)
    print(f"\n{len(CASES)} hostile watches, {rounds}+ checks each, peak RSS {peak / 1024:.0f} MB")
