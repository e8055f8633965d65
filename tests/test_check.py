"""The pipeline end to end against a real local HTTP server whose pages change."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from monitor import config
from monitor.check import Context, check, check_all
from monitor.errors import FailureKind
from monitor.fetch import make_client
from monitor.limits import HostLimiter
from monitor.model import CheckResult, FetchRequest, Outcome, Snapshot
from monitor.store import Store
from tests.conftest import LocalSite, Page

SHELL = """<!doctype html><html><head><title>Law Enforcement Guidelines</title>
<script>window.csrf = "{token}";</script></head><body>
<nav><a href="/">Home</a> <a href="/privacy">Privacy</a></nav>
<div class="cookie-banner">We use cookies. <button>Accept</button></div>
<main><h1>Law Enforcement Guidelines</h1>
<h2>Requests from outside the United States</h2>
{body}
</main>
<footer>Page rendered at {stamp}. <input type="hidden" name="csrf" value="{token}"></footer>
</body></html>"""

HK = "<p>We do not respond to data requests from the Hong Kong government at this time.</p>"
HK_CHANGED = "<p>We respond to data requests from the Hong Kong government as required by law.</p>"
OTHER = "<p>Requests must be sent through the mutual legal assistance treaty process.</p>" * 5


def page(body: str = HK + OTHER, stamp: str = "10:00", token: str = "a1") -> str:
    return SHELL.format(body=body, stamp=stamp, token=token)


def watchlist(site: LocalSite, **extra: str) -> config.Watchlist:
    lines = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    text = (
        "watches:\n  - id: tiktok-le\n    platform: TikTok\n    name: Law Enforcement Guidelines\n"
        f"    url: {site.url('/le')}\n{lines}"
    )
    return config.loads(text, "test.yaml", env={}, known_jurisdictions={"HK", "MO", "CN"})


class Harness:
    """Runs checks the way the daemon does, with a clock the test moves."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store.open(str(tmp_path / "monitor.db"))
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def run(self, wl: config.Watchlist) -> CheckResult:
        async def go() -> CheckResult:
            async with make_client() as client:
                ctx = Context(client, self.store, None, lambda: self.now)
                return await check(wl.watches[0], ctx)

        self.now += timedelta(hours=1)
        return asyncio.run(go())


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    yield h
    h.store.close()


def test_first_check_is_a_baseline_then_unchanged(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page()
    wl = watchlist(site)
    first = harness.run(wl)
    assert first.outcome is Outcome.NEW and first.version is not None
    version = harness.store.latest_version("tiktok-le")
    assert version is not None and version.kind == "baseline"
    texts = [b.text for b in version.document]
    assert any("Hong Kong government" in t for t in texts)
    assert not any("cookies" in t or "Home" in t or "rendered" in t for t in texts)
    second = harness.run(wl)
    assert second.outcome is Outcome.UNCHANGED and second.version is None


def test_noise_only_changes_are_unchanged(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page()
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = page(stamp="11:37", token="zz9")
    result = harness.run(wl)
    assert result.outcome is Outcome.UNCHANGED
    assert harness.store.count("versions") == 1
    assert harness.store.count("snapshots") == 2  # the new raw body is still kept as proof


def test_a_changed_sentence_makes_a_new_version(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page()
    wl = watchlist(site)
    base = harness.run(wl)
    site["/le"] = page(HK_CHANGED + OTHER, stamp="12:00")
    result = harness.run(wl)
    assert result.outcome is Outcome.CHANGED
    assert result.previous_version == base.version
    latest = harness.store.latest_version("tiktok-le")
    assert latest is not None and latest.kind == "change"
    assert any("as required by law" in b.text for b in latest.document)


def test_not_modified_uses_validators_and_skips_parsing(site: LocalSite, harness: Harness) -> None:
    site["/le"] = Page(page().encode(), headers={"Content-Type": "text/html", "ETag": '"v1"'})
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = Page(b"", 304, {"ETag": '"v1"'})
    result = harness.run(wl)
    assert result.outcome is Outcome.NOT_MODIFIED
    assert site.requests[-1][1].get("If-None-Match") == '"v1"'


def test_a_full_fetch_is_forced_once_a_day(site: LocalSite, harness: Harness) -> None:
    site["/le"] = Page(page().encode(), headers={"Content-Type": "text/html", "ETag": '"v1"'})
    wl = watchlist(site)
    harness.run(wl)
    harness.now += timedelta(days=1)
    harness.run(wl)
    assert "If-None-Match" not in site.requests[-1][1]


def test_a_missing_selector_is_a_failure_not_a_deletion(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page()
    harness.run(watchlist(site, select="['main']"))
    site["/le"] = "<html><body><div id='app'>Loading…</div></body></html>"
    wl = watchlist(site, select="['main']")
    for count in (1, 2):
        result = harness.run(wl)
        assert result.outcome is Outcome.FAILED and result.failure is FailureKind.EXTRACTION
        assert result.consecutive_failures == count
    assert harness.store.count("versions") == 1
    site["/le"] = page(stamp="13:00")
    assert harness.run(wl).outcome is Outcome.UNCHANGED
    assert harness.store.state("tiktok-le").consecutive_failures == 0


def test_an_error_page_that_lost_the_text_is_a_failure(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page()
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = page("<p>Something went wrong. Please try again later.</p>")
    result = harness.run(wl)
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.CONTENT_LOST
    assert harness.store.count("versions") == 1


def test_a_real_rewrite_that_shrinks_the_page_is_a_change(
    site: LocalSite, harness: Harness
) -> None:
    site["/le"] = page()
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = page(HK_CHANGED)
    assert harness.run(wl).outcome is Outcome.CHANGED


def test_a_page_cut_off_before_its_end_is_a_failure_then_recovers(
    site: LocalSite, harness: Harness
) -> None:
    whole = page()
    site["/le"] = whole
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = whole[: whole.index("Hong Kong")]  # the server died mid-page
    result = harness.run(wl)
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.TRANSIENT
    assert "cut off" in (result.message or "")
    assert not result.findings
    site["/le"] = page(HK_CHANGED)
    assert harness.run(wl).findings  # the whole page is back, with a real change


def test_a_page_that_drops_its_closing_tag_and_grows_still_changes(
    site: LocalSite, harness: Harness
) -> None:
    site["/le"] = page()
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = page(HK + OTHER + HK_CHANGED).replace("</html>", "")
    assert harness.run(wl).outcome is Outcome.CHANGED


def test_a_page_that_never_closed_its_html_still_changes(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page().replace("</html>", "")
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = page(HK_CHANGED).replace("</html>", "")
    assert harness.run(wl).outcome is Outcome.CHANGED


def test_an_app_shell_asking_for_javascript_is_blocked_not_empty(
    site: LocalSite, harness: Harness
) -> None:
    site["/le"] = (
        "<html><body><noscript>You need to enable JavaScript to run this app.</noscript>"
        "<div id='root'></div></body></html>"
    )
    result = harness.run(watchlist(site))
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.BLOCKED
    assert "JavaScript" in (result.message or "")


def test_a_page_with_text_and_a_noscript_banner_is_read(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page().replace(
        "<main>", "<main><noscript>Please enable JavaScript for the best experience.</noscript>"
    )
    assert harness.run(watchlist(site)).outcome is Outcome.NEW


def test_http_errors_are_classified_failures(site: LocalSite, harness: Harness) -> None:
    wl = watchlist(site)
    result = harness.run(wl)  # nothing served at /le yet: 404
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.PERMANENT
    assert harness.store.count("versions") == 0


def test_changed_rules_record_a_silent_technical_version(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page()
    harness.run(watchlist(site))
    result = harness.run(watchlist(site, ignore="['at this time']"))
    assert result.outcome is Outcome.UNCHANGED and result.technical
    latest = harness.store.latest_version("tiktok-le")
    assert latest is not None and latest.kind == "technical"
    assert not any("at this time" in b.text for b in latest.document)


def test_changed_rules_on_a_304_reextract_the_stored_snapshot(
    site: LocalSite, harness: Harness
) -> None:
    site["/le"] = Page(page().encode(), headers={"Content-Type": "text/html", "ETag": '"v1"'})
    harness.run(watchlist(site))
    site["/le"] = Page(b"", 304, {"ETag": '"v1"'})
    result = harness.run(watchlist(site, remove="['h2']"))
    assert result.outcome is Outcome.NOT_MODIFIED and result.technical
    latest = harness.store.latest_version("tiktok-le")
    assert latest is not None and latest.kind == "technical"
    assert not any(b.kind == "heading" and "United States" in b.text for b in latest.document)


def test_check_all_bounds_concurrency_and_keeps_order(tmp_path: Path) -> None:
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, html=f"<main><p>Page {request.url.path}</p></main>")

    text = "watches:\n" + "".join(
        f"  - {{id: w{i}, platform: P, name: N, url: 'https://h{i}.example/p{i}'}}\n"
        for i in range(12)
    )
    wl = config.loads(text, env={}, known_jurisdictions={"HK", "MO", "CN"})
    store = Store.open(str(tmp_path / "m.db"))

    async def go() -> list[CheckResult]:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            limiter = HostLimiter(delay=0, total=3)
            return await check_all(wl.watches, Context(client, store, limiter))

    results = asyncio.run(go())
    store.close()
    assert [r.watch for r in results] == [f"w{i}" for i in range(12)]
    assert all(r.outcome is Outcome.NEW for r in results)
    assert peak <= 3


def test_a_slow_site_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """Four watches of a slow site queue for its turn without taking the places
    that a fast site's watch, listed after them, can use at once."""
    finished: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2 if request.url.host == "slow.example" else 0)
        return httpx.Response(200, html=f"<main><p>Page {request.url}</p></main>")

    urls = [f"https://slow.example/{i}" for i in range(4)] + ["https://fast.example/"]
    text = "watches:\n" + "".join(
        f"  - {{id: w{i}, platform: P, name: N, url: '{url}'}}\n" for i, url in enumerate(urls)
    )
    wl = config.loads(text, env={}, known_jurisdictions={"HK", "MO", "CN"})
    store = Store.open(str(tmp_path / "m.db"))

    async def go() -> list[CheckResult]:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            ctx = Context(client, store, HostLimiter(per_host=1, delay=0, total=2))
            return await check_all(wl.watches, ctx, on_result=lambda r: finished.append(r.watch))

    assert all(r.outcome is Outcome.NEW for r in asyncio.run(go()))
    store.close()
    assert finished[0] == "w4"  # the fast site's watch, not after the slow site's queue


@pytest.mark.slow
def test_check_json_lines_contract(site: LocalSite, tmp_path: Path) -> None:
    site["/le"] = page()
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "watches:\n"
        f"  - {{id: good, platform: T, name: Good, url: '{site.url('/le')}'}}\n"
        f"  - {{id: gone, platform: T, name: Gone, url: '{site.url('/gone')}'}}\n"
    )
    args = ["check", "--json", "--watchlist", str(path), "--db", str(tmp_path / "m.db")]
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_watch = {line["watch"]: line for line in lines}
    assert all(line["type"] == "check" for line in lines)
    assert by_watch["good"]["outcome"] == "new" and by_watch["good"]["version"] == 1
    assert by_watch["gone"]["outcome"] == "failed"
    assert by_watch["gone"]["failure"] == "permanent" and "404" in by_watch["gone"]["message"]
    assert "1 new" in done.stderr and "1 failed" in done.stderr


def test_when_the_monitor_itself_is_offline_failures_are_not_held_against_watches(
    tmp_path: Path,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "up.example":
            return httpx.Response(200, html="<main><p>Reachable page.</p></main>")
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    text = "watches:\n" + "".join(
        f"  - {{id: w{i}, platform: P, name: N, url: 'https://h{i}.example/p'}}\n" for i in range(5)
    )
    wl = config.loads(text, env={}, known_jurisdictions={"HK", "MO", "CN"})
    store = Store.open(str(tmp_path / "m.db"))
    ctx_box: list[Context] = []

    async def go(watches: tuple[config.Watch, ...]) -> list[CheckResult]:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            if not ctx_box:
                ctx_box.append(Context(client, store, HostLimiter(delay=0, total=1)))
            ctx = replace(ctx_box[0], client=client)
            return await check_all(watches, ctx)

    first = asyncio.run(go(wl.watches))
    assert all(r.outcome is Outcome.FAILED for r in first)
    counted = [store.state(f"w{i}").consecutive_failures for i in range(5)]
    assert counted == [0, 0, 0, 0, 0]  # the first hosts of the outage too (issue 15, bug 2)
    assert "network looks down" in (first[0].message or "")
    asyncio.run(go(wl.watches))  # still offline: nobody's count grows
    assert [store.state(f"w{i}").consecutive_failures for i in range(5)] == counted
    store.close()


def test_one_unreachable_host_is_the_watchs_own_failure() -> None:
    from monitor.check import Connectivity

    async def go() -> tuple[list[bool], list[bool]]:
        seen = Connectivity(threshold=3)
        again = [await seen.counts("a.example") for _ in range(10)]  # the same host, alone
        seen.answered()
        return again, [await seen.counts(h) for h in ("a", "b", "c", "d")]

    again, hosts = asyncio.run(go())
    assert all(again)
    assert hosts == [True, True, False, False]  # one at a time, nothing else running to tell


class StoreTraffic:
    """Counts a store's transactions, its SQL statements, the stored snapshots it reads
    back whole (headers and body) and the versions' documents it reads, by SQL event.
    (Writing a body reads its keyframe to compress against it; that is the write's
    own business and not counted.)"""

    def __init__(self, store: Store) -> None:
        self.transactions = self.statements = self.body_reads = self.document_reads = 0
        sqlalchemy.event.listen(store.engine, "begin", self._begin)
        sqlalchemy.event.listen(store.engine, "before_cursor_execute", self._execute)

    def _begin(self, _conn: object) -> None:
        self.transactions += 1

    def _execute(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.statements += 1
        if statement.lstrip().upper().startswith("SELECT"):
            self.body_reads += "snapshots.headers" in statement
            self.document_reads += "versions.document" in statement

    def reset(self) -> None:
        self.transactions = self.statements = self.body_reads = self.document_reads = 0


@pytest.mark.parametrize(
    ("second", "transactions", "document_reads"),
    [
        pytest.param(page(stamp="11:00", token="b2"), 2, 0, id="noise-only-new-bytes"),
        pytest.param(page(HK_CHANGED + OTHER, stamp="12:00"), 3, 1, id="changed"),
        pytest.param(page(), 2, 0, id="same-bytes"),
    ],
)
def test_a_check_reads_the_store_once_and_writes_once(
    site: LocalSite, harness: Harness, second: str, transactions: int, document_reads: int
) -> None:
    """The watch's state and latest version's hashes before the fetch, that version's
    document only for new content (which may be a change; new bytes whose content has
    the version's digest are not), one write."""
    site["/le"] = page()
    wl = watchlist(site)
    harness.run(wl)
    traffic = StoreTraffic(harness.store)
    site["/le"] = second
    harness.run(wl)
    assert traffic.transactions == transactions
    assert traffic.document_reads == document_reads
    assert traffic.body_reads == 0  # a page with its </html> never needs the stored body


def test_a_304_reads_no_stored_body_nor_document(site: LocalSite, harness: Harness) -> None:
    """A 304 is decided on the latest version's hashes: one read (the watch's state,
    its versions' hashes), then the check log's row and the state's update."""
    site["/le"] = Page(page().encode(), headers={"Content-Type": "text/html", "ETag": '"v1"'})
    wl = watchlist(site)
    harness.run(wl)
    site["/le"] = Page(b"", 304, {"ETag": '"v1"'})
    traffic = StoreTraffic(harness.store)
    assert harness.run(wl).outcome is Outcome.NOT_MODIFIED
    assert (traffic.transactions, traffic.body_reads, traffic.document_reads) == (2, 0, 0)
    # read: state, versions; write: BEGIN IMMEDIATE, state and mark, log, state, COMMIT
    assert traffic.statements <= 7


def test_a_version_without_what_the_watch_expects_is_a_failure_not_a_change(
    site: LocalSite, harness: Harness
) -> None:
    """A server-rendered shell whose prose is there but whose Hong Kong figures are not."""
    wl = watchlist(site, expect='["Hong Kong", {css: "main h1"}]')
    site["/le"] = page(OTHER)  # no Hong Kong sentence yet: not even a baseline
    first = harness.run(wl)
    assert first.outcome is Outcome.FAILED and first.failure is FailureKind.INCOMPLETE
    assert "'Hong Kong'" in (first.message or "") and first.version is None
    site["/le"] = page()
    assert harness.run(wl).outcome is Outcome.NEW
    site["/le"] = page(OTHER, stamp="12:00")  # the figures did not load this time
    lost = harness.run(wl)
    assert lost.outcome is Outcome.FAILED and lost.failure is FailureKind.INCOMPLETE
    assert not lost.findings
    site["/le"] = page(HK_CHANGED + OTHER, stamp="13:00")
    assert harness.run(wl).findings  # compared with the last good version


# --- browser: never | auto | always, with a renderer standing in for Chromium -------------

APP_SHELL = """<!doctype html><html><head><title>Report</title></head><body>
<div id="root"></div><noscript>You need to enable JavaScript to run this app.</noscript>
<script src="/app.js"></script></body></html>"""


class FakeRenderer:
    """What a browser would make of the page: the DOM after its scripts ran."""

    def __init__(self, body: str = HK) -> None:
        self.body = body
        self.requests: list[FetchRequest] = []

    async def render(self, request: FetchRequest, *, limiter: object = None) -> Snapshot:
        self.requests.append(request)
        html = page(self.body).encode()
        headers = (("content-type", "text/html; charset=utf-8"), ("etag", '"shell"'))
        return Snapshot(request.url, request.url, 200, headers, html, "utf-8", T, 0.1, True)


T = datetime(2026, 11, 1, tzinfo=UTC)


def run_with(harness: Harness, wl: config.Watchlist, renderer: FakeRenderer | None) -> CheckResult:
    async def go() -> CheckResult:
        async with make_client() as client:
            ctx = Context(client, harness.store, None, lambda: harness.now, renderer=renderer)
            return await check(wl.watches[0], ctx)

    harness.now += timedelta(hours=1)
    return asyncio.run(go())


def test_browser_always_renders_and_alerts_like_any_page(site: LocalSite, harness: Harness) -> None:
    site["/le"] = APP_SHELL
    wl = watchlist(site, browser="always", wait_for='"main p"')
    renderer = FakeRenderer()
    assert run_with(harness, wl, renderer).outcome is Outcome.NEW
    renderer.body = HK_CHANGED
    changed = run_with(harness, wl, renderer)
    assert changed.outcome is Outcome.CHANGED and changed.findings
    assert {f.jurisdiction for f in changed.findings} == {"HK"}
    assert site.requests == []  # never fetched over plain HTTP
    assert renderer.requests[-1].wait_for == "main p"
    latest = harness.store.latest_version("tiktok-le")
    assert latest is not None and harness.store.snapshot(latest.snapshot_id).rendered


def test_browser_auto_renders_an_app_shell_and_a_partial_read(
    site: LocalSite, harness: Harness
) -> None:
    site["/le"] = APP_SHELL
    renderer = FakeRenderer()
    assert run_with(harness, watchlist(site), renderer).outcome is Outcome.NEW
    assert len(renderer.requests) == 1
    site["/le"] = page(OTHER)  # prose, but not the Hong Kong figures it expects
    wl = watchlist(site, expect='["Hong Kong"]')
    assert run_with(harness, wl, renderer).technical  # new rules: a silent re-read
    assert len(renderer.requests) == 2
    site["/le"] = page()  # a plain page that holds it all is read without a browser
    run_with(harness, wl, renderer)
    assert len(renderer.requests) == 2


def test_browser_auto_never_renders_data(site: LocalSite, harness: Harness) -> None:
    """A CSV without the row it `expect`s is a partial read: Chromium would not help."""
    site["/le"] = Page(b"Country,Requests\nMacau,2\n", headers={"Content-Type": "text/csv"})
    renderer = FakeRenderer()
    result = run_with(harness, watchlist(site, expect='["Hong Kong"]'), renderer)
    assert result.failure is FailureKind.INCOMPLETE and renderer.requests == []


def test_a_zip_bomb_fails_the_check_as_too_large(site: LocalSite, harness: Harness) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.csv", b"Country,Requests\n" + b"0" * 20_000_000)
    site["/le"] = Page(buffer.getvalue(), headers={"Content-Type": "application/zip"})
    result = harness.run(watchlist(site, max_size="5MB"))
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.TOO_LARGE
    assert "'bomb.csv' inflates to 20000017 bytes, past the 5000000-byte cap" in (
        result.message or ""
    )


def test_a_rendered_page_is_never_asked_for_with_its_validators(
    site: LocalSite, harness: Harness
) -> None:
    """The shell's ETag stays the same while the data its scripts load changes."""
    site["/le"] = Page(APP_SHELL.encode(), headers={"Content-Type": "text/html", "ETag": '"s"'})
    renderer = FakeRenderer()
    run_with(harness, watchlist(site), renderer)
    run_with(harness, watchlist(site), renderer)
    assert all("If-None-Match" not in headers for _, headers in site.requests)


@pytest.mark.parametrize(
    ("mode", "failure", "says"),
    [
        ("always", FailureKind.NEEDS_BROWSER, "needs a browser: install chromium"),
        (
            "auto",
            FailureKind.BLOCKED,
            "asks for JavaScript (a bot wall or an app shell) "
            "(a browser might read it: install chromium",
        ),
    ],
)
def test_without_a_browser_a_page_that_needs_one_says_so(
    site: LocalSite, harness: Harness, mode: str, failure: FailureKind, says: str
) -> None:
    site["/le"] = APP_SHELL
    result = run_with(harness, watchlist(site, browser=mode), None)
    assert result.outcome is Outcome.FAILED and result.failure is failure
    assert says in (result.message or "")


def test_browser_never_keeps_a_blocked_page_blocked(site: LocalSite, harness: Harness) -> None:
    site["/le"] = APP_SHELL
    renderer = FakeRenderer()
    result = run_with(harness, watchlist(site, browser="never"), renderer)
    assert result.failure is FailureKind.BLOCKED and renderer.requests == []


def test_the_first_unreachable_hosts_of_an_outage_are_not_counted_either() -> None:
    """Issue 15, bug 2: failures are held back until a host answers (they count) or
    `threshold` hosts are unreachable (an outage: none of them counts)."""
    from monitor.check import Connectivity

    async def go() -> tuple[list[bool], list[bool]]:
        offline, online = Connectivity(threshold=3), Connectivity(threshold=3)

        async def outage() -> list[bool]:
            with offline.checking(), offline.checking(), offline.checking():
                return list(await asyncio.gather(*(offline.counts(h) for h in "abc")))

        async def one_dead_host() -> list[bool]:
            with online.checking(), online.checking():
                dead = asyncio.ensure_future(online.counts("dead.example"))
                await asyncio.sleep(0)
                assert not dead.done()  # held: the other check may still show an outage
                online.answered()
                return [await dead]

        return await outage(), await one_dead_host()

    assert asyncio.run(go()) == ([False, False, False], [True])


def test_offline_check_all_never_counts_a_failure_or_raises_a_health_alert(
    tmp_path: Path,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    text = "defaults: {failures_before_alert: 1}\nwatches:\n" + "".join(
        f"  - {{id: w{i}, platform: P, name: N, url: 'https://h{i}.example/p'}}\n" for i in range(6)
    )
    wl = config.loads(text, env={}, known_jurisdictions={"HK", "MO", "CN"})

    async def go(store: Store) -> list[CheckResult]:
        async with make_client(transport=httpx.MockTransport(refuse)) as client:
            return await check_all(wl.watches, Context(client, store, HostLimiter(delay=0)))

    with Store.open(str(tmp_path / "m.db")) as store:
        for _ in range(3):  # `monitor check` three times
            results = asyncio.run(go(store))
            assert all(r.outcome is Outcome.FAILED and not r.alerts for r in results)
        assert [store.state(w.id).consecutive_failures for w in wl.watches] == [0] * 6
        assert store.alerts() == []


def test_a_dead_host_among_answering_ones_is_counted_against_its_watch(
    tmp_path: Path,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "dead.example":
            raise httpx.ConnectError("[Errno -2] Name or service not known")
        return httpx.Response(200, html="<main><p>Reachable page.</p></main>")

    text = "watches:\n" + "".join(
        f"  - {{id: {h}, platform: P, name: N, url: 'https://{h}.example/p'}}\n"
        for h in ("dead", "up1", "up2")
    )
    wl = config.loads(text, env={}, known_jurisdictions={"HK", "MO", "CN"})

    async def go(store: Store) -> list[CheckResult]:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            return await check_all(wl.watches, Context(client, store, HostLimiter(delay=0)))

    with Store.open(str(tmp_path / "m.db")) as store:
        results = asyncio.run(go(store))
        assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.NEW, Outcome.NEW]
        assert store.state("dead").consecutive_failures == 1


ZH = "<p>香港特別行政區，您的資料請求已暫停。</p>"
ZH_CHANGED = "<p>香港特別行政區，您的資料請求已恢復。</p>"


def test_alerts_and_versions_quote_the_page_verbatim(site: LocalSite, harness: Harness) -> None:
    site["/le"] = page(ZH + OTHER)
    wl = watchlist(site, jurisdictions="[HK]", routes="[]")
    harness.run(wl)
    site["/le"] = page(ZH_CHANGED + OTHER)
    result = harness.run(wl)
    assert result.outcome is Outcome.CHANGED
    [finding] = result.findings
    assert finding.change is not None
    assert finding.change.before == "香港特別行政區，您的資料請求已暫停。"
    assert finding.change.after == "香港特別行政區，您的資料請求已恢復。"
    assert ("-", "暫停") in finding.change.segments and ("+", "恢復") in finding.change.segments
    latest = harness.store.latest_version("tiktok-le")
    assert latest is not None
    assert any(b.verbatim == "香港特別行政區，您的資料請求已恢復。" for b in latest.document)


def test_a_change_of_punctuation_form_only_is_kept_silently(
    site: LocalSite, harness: Harness
) -> None:
    site["/le"] = page(ZH + OTHER)
    wl = watchlist(site, jurisdictions="[HK]")
    harness.run(wl)
    site["/le"] = page(ZH.replace("，", ",") + OTHER)  # the same words, an ASCII comma
    result = harness.run(wl)
    assert result.outcome is Outcome.UNCHANGED and result.technical and not result.findings
    latest = harness.store.latest_version("tiktok-le")
    assert latest is not None and latest.kind == "technical"
