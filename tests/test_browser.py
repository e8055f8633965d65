"""Tests of the browser fetch stage: real headless Chromium against pages on 127.0.0.1.

One Renderer (one Chromium) serves the module's tests from one event loop in a
thread, as one serves a daemon's checks, so a test costs a render, not a launch.
The tests that need Chromium are skipped, with the reason shown, where Chromium or
Playwright is missing; those about finding it run everywhere.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import json
import os
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitor.browser import (
    NEEDS_BROWSER,
    SERVED_CONTENT_TYPE,
    Renderer,
    find_chromium,
    sandbox_default,
)
from monitor.errors import FailureKind, FetchError
from monitor.limits import HostLimiter
from monitor.model import FetchRequest, Snapshot
from monitor.netpolicy import IPAddress, NetworkPolicy
from tests.conftest import LocalSite, Receiver
from tests.harness import monitor, query
from tests.jsite import HANG, JSite, Resource

T = TypeVar("T")
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
SENTENCE = "We no longer answer data requests from the Hong Kong authorities."
CHROMIUM = find_chromium()
MISSING = (
    "Playwright is not installed (pip install '.[browser]')"
    if importlib.util.find_spec("playwright") is None
    else None
    if CHROMIUM and os.access(CHROMIUM, os.X_OK)
    else "no Chromium on PATH or in $MONITOR_CHROMIUM (apt-get install chromium)"
)


class Loop:
    """An event loop in a thread: the tests' stand-in for the daemon's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Browser:
    """The shared Renderer, used from synchronous tests."""

    def __init__(self, loop: Loop, renderer: Renderer) -> None:
        self.loop = loop
        self.renderer = renderer

    def render(self, url: str, **request: Any) -> Snapshot:
        limiter = request.pop("limiter", None)
        fetch_request = FetchRequest(url, **{"deadline": 10.0, **request})
        return self.loop.run(self.renderer.render(fetch_request, limiter=limiter))

    def fails(self, url: str, **request: Any) -> FetchError:
        with pytest.raises(FetchError) as caught:
            self.render(url, **request)
        return caught.value


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def browser(loop: Loop) -> Iterator[Browser]:
    if MISSING:
        pytest.skip(MISSING)
    renderer = Renderer(executable=CHROMIUM, idle_wait=2.0, now=lambda: NOW)
    yield Browser(loop, renderer)
    loop.run(renderer.close())


@pytest.fixture
def site() -> Iterator[JSite]:
    with JSite() as site:
        yield site


def page(body: str, script: str = "") -> str:
    """An HTML page; ``script`` runs at the end of its body."""
    tag = f"<script>{script}</script>" if script else ""
    return f"<!doctype html><html><head><title>Report</title></head><body>{body}{tag}</body></html>"


# --- rendering ---------------------------------------------------------------------


def test_a_page_written_by_javascript_from_json_is_read(browser: Browser, site: JSite) -> None:
    site["/data.json"] = Resource(
        json.dumps({"sentence": SENTENCE}).encode(), 200, "application/json"
    )
    site["/report"] = page(
        "<main><h1>Government requests</h1></main>",
        "fetch('/data.json').then(r => r.json()).then(d => {"
        " document.querySelector('main')"
        ".insertAdjacentHTML('beforeend', `<p>${d.sentence}</p>`) })",
    )
    snapshot = browser.render(site.url("/report"), limiter=HostLimiter(delay=0))
    assert SENTENCE in snapshot.text()
    assert snapshot.rendered and snapshot.status == 200
    assert snapshot.final_url == snapshot.url == site.url("/report")
    assert snapshot.encoding == "utf-8" and snapshot.fetched_at == NOW
    assert snapshot.content_type == "text/html; charset=utf-8"
    assert snapshot.header(SERVED_CONTENT_TYPE) == "text/html; charset=utf-8"
    assert snapshot.header("content-length") is None  # it described the served bytes
    assert 0 < snapshot.elapsed < 10


def test_an_app_shell_is_read_once_wait_for_has_text(browser: Browser, site: JSite) -> None:
    site["/app"] = page(
        '<div id="app"><table class="requests"></table></div>',
        "setTimeout(() => { document.querySelector('table.requests').innerHTML ="
        " '<tr><td>Hong' + ' Kong</td><td>241</td></tr>' }, 500)",
    )
    snapshot = browser.render(site.url("/app"), wait_for="table.requests")
    assert "<td>Hong Kong</td><td>241</td>" in snapshot.text()


@pytest.mark.slow
def test_a_wait_for_that_never_appears_fails_within_the_deadline(
    browser: Browser, site: JSite
) -> None:
    site["/shell"] = page('<div id="app"><table class="requests"></table></div>')
    started = time.monotonic()
    error = browser.fails(site.url("/shell"), wait_for="table.requests", deadline=2.0)
    assert error.kind is FailureKind.TRANSIENT
    assert "'table.requests' did not appear within 2s" in str(error)
    assert time.monotonic() - started < 2.5


def test_an_invalid_wait_for_selector_is_permanent(browser: Browser, site: JSite) -> None:
    site["/shell"] = page("<p>text</p>")
    error = browser.fails(site.url("/shell"), wait_for="table[", deadline=3.0)
    assert error.kind is FailureKind.PERMANENT


def test_a_page_whose_script_throws_renders_what_is_there(browser: Browser, site: JSite) -> None:
    site["/broken"] = page(
        "<p>Requests from Hong Kong are reviewed.</p>",
        "document.body.insertAdjacentHTML('beforeend', '<p>Written ' + 'before the error.</p>');"
        "undefinedFunction(); document.body.insertAdjacentHTML('beforeend', '<p>Nev' + 'er.</p>')",
    )
    text = browser.render(site.url("/broken")).text()
    assert "Requests from Hong Kong are reviewed." in text
    assert "Written before the error." in text and "Never." not in text


@pytest.mark.slow
def test_a_page_that_never_finishes_loading_yields_its_dom_within_the_deadline(
    browser: Browser, site: JSite
) -> None:
    site["/slow"] = page(
        f'<p>Hong Kong figures follow.</p><img src="{HANG}">',
        f"fetch('{HANG}?data');document.body.insertAdjacentHTML('beforeend', '<p>Dra' + 'wn.</p>')",
    )
    started = time.monotonic()
    snapshot = browser.render(site.url("/slow"), deadline=3.0)
    assert time.monotonic() - started < 3.0
    assert "Hong Kong figures follow." in snapshot.text() and "Drawn." in snapshot.text()


def test_the_watch_headers_go_to_its_host_only(browser: Browser, site: JSite) -> None:
    other_host = site.url("/pixel").replace("127.0.0.1", "localhost")
    site["/pixel"] = Resource(b"", 204, "image/gif")
    site["/page"] = page(f'<p>text</p><img src="{other_host}">')
    headers = (("User-Agent", "policy-desk/1.0"), ("Authorization", "Bearer watch-token"))
    browser.render(site.url("/page"), headers=headers)
    (main,) = site.headers_of("/page")
    assert main["user-agent"] == "policy-desk/1.0"
    assert main["authorization"] == "Bearer watch-token"
    (third_party,) = site.headers_of("/pixel")
    assert "authorization" not in third_party
    assert third_party["user-agent"] == "policy-desk/1.0"


def test_the_default_user_agent_is_chrome_and_names_the_monitor(
    browser: Browser, site: JSite
) -> None:
    site["/page"] = page("<p>text</p>")
    browser.render(site.url("/page"))
    agent = site.headers_of("/page")[0]["user-agent"]
    assert "Chrome/" in agent and "HeadlessChrome" not in agent and "monitor/" in agent


# --- what a page may not do ----------------------------------------------------------


def test_popups_are_closed_and_downloads_refused(
    browser: Browser, site: JSite, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"monitor-test-download-{os.getpid()}-{time.monotonic_ns()}.bin"
    site["/popup"] = page("<p>popup</p>", "setInterval(() => fetch('/alive?' + Date.now()), 50)")
    site["/file"] = Resource(
        b"\x00" * 4096,
        200,
        "application/octet-stream",
        {"Content-Disposition": f'attachment; filename="{name}"'},
    )
    site["/page"] = page(
        '<p>Hong Kong</p><a id="tab" href="/popup" target="_blank">new tab</a>',
        "window.open('/popup'); document.getElementById('tab').click();"
        f"const a = document.createElement('a'); a.href = '/file'; a.download = '{name}';"
        "document.body.append(a); a.click();"
        "setInterval(() => fetch('/busy?' + Date.now()), 200);",  # never idle: 2 s of wait
    )
    caplog.set_level("INFO", logger="monitor.browser")
    snapshot = browser.render(site.url("/page"))
    assert "Hong Kong" in snapshot.text()
    assert "closed a popup" in caplog.text
    # the page keeps the render waiting its whole idle wait (2 s): two popups left open
    # would poll about 40 times each in it; closed at once, a few times on a busy machine
    assert len(site.headers_of("/busy")) >= 5
    assert len(site.headers_of("/alive")) < 25
    places = [Path.home() / "Downloads", Path.cwd(), *Path("/tmp").glob("playwright-*")]
    assert not [hit for place in places if place.is_dir() for hit in place.rglob(name)]


def test_file_urls_are_never_loaded(browser: Browser, site: JSite, tmp_path: Path) -> None:
    secret = tmp_path / "secret.html"
    secret.write_text("<p>LOCAL-SECRET-7f3a</p>")
    local = secret.as_uri()
    site["/page"] = page(
        f'<p>Hong Kong</p><iframe src="{local}"></iframe><img src="{local}">',
        f"fetch('{local}').then(r => r.text())"
        ".then(t => document.body.append(t)).catch(() => {});"
        f"setTimeout(() => {{ location.href = '{local}' }}, 50)",
    )
    snapshot = browser.render(site.url("/page"))
    assert "LOCAL-SECRET" not in snapshot.text()
    assert snapshot.final_url.startswith("http://127.0.0.1:")
    error = browser.fails(local)
    assert error.kind is FailureKind.PERMANENT and "http(s)" in str(error)


@pytest.mark.slow
def test_no_cookie_is_carried_between_renders(browser: Browser, site: JSite) -> None:
    site["/login"] = Resource(
        page("<p>Hong Kong</p>", "document.cookie = 'script=1; path=/'").encode(),
        headers={"Set-Cookie": "server=1; Path=/"},
    )
    browser.render(site.url("/login"))
    browser.render(site.url("/login"))
    first, second = site.headers_of("/login")
    assert "cookie" not in first and "cookie" not in second


def test_a_rendered_page_over_the_cap_is_too_large(browser: Browser, site: JSite) -> None:
    site["/big"] = page("<p>Hong Kong</p>", "document.body.append('x'.repeat(200000))")
    error = browser.fails(site.url("/big"), max_bytes=100_000)
    assert error.kind is FailureKind.TOO_LARGE
    assert "100000-byte cap" in str(error)


def test_a_main_document_that_is_not_a_page_is_the_wrong_type(
    browser: Browser, site: JSite
) -> None:
    site["/data.json"] = Resource(b'{"HK": 1}', 200, "application/json")
    assert browser.fails(site.url("/data.json")).kind is FailureKind.WRONG_TYPE


# --- classified failures -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, FailureKind.PERMANENT),
        (410, FailureKind.PERMANENT),
        (403, FailureKind.BLOCKED),
        (503, FailureKind.TRANSIENT),
        (429, FailureKind.TRANSIENT),
    ],
    ids=["404", "410", "403", "503", "429"],
)
def test_an_error_status_of_the_main_document_is_classified(
    browser: Browser, site: JSite, status: int, kind: FailureKind
) -> None:
    site["/gone"] = Resource(page("<p>Sorry.</p>").encode(), status)
    error = browser.fails(site.url("/gone"))
    assert (error.kind, error.status) == (kind, status)
    assert str(error).startswith(f"HTTP {status}")


def test_a_name_that_does_not_resolve_is_permanent(browser: Browser) -> None:
    error = browser.fails("http://no-such-host.invalid/report", deadline=5.0)
    assert error.kind is FailureKind.PERMANENT
    assert "ERR_NAME_NOT_RESOLVED" in str(error) and "invalid/report" not in str(error)


def test_a_refused_connection_is_transient(browser: Browser) -> None:
    with JSite() as closed:
        url = closed.url("/report")
    error = browser.fails(url, deadline=5.0)
    assert error.kind is FailureKind.TRANSIENT and error.status is None


# --- the browser's life --------------------------------------------------------------


def _chromium_pids() -> list[int]:
    """The browser processes this test process started (through Playwright's driver),
    top-most first: killing the first kills the browser."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(stat.parent.name)
        names[pid] = text[text.index("(") + 1 : text.rindex(")")]
        parents[pid] = int(text[text.rindex(")") + 2 :].split()[1])

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    ours = [pid for pid, name in names.items() if "chrom" in name and descends(pid)]
    return [pid for pid in ours if names.get(parents[pid], "").find("chrom") < 0]


@pytest.mark.slow
def test_a_killed_browser_is_relaunched_at_the_next_render(loop: Loop, site: JSite) -> None:
    if MISSING:
        pytest.skip(MISSING)
    renderer = Renderer(executable=CHROMIUM)
    own = Browser(loop, renderer)
    site["/page"] = page("<p>Hong Kong</p>", "document.body.append('ren' + 'dered')")
    try:
        assert "rendered" in own.render(site.url("/page")).text()
        for pid in _chromium_pids():
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not renderer.connected:
                break
            time.sleep(0.05)
        assert "rendered" in own.render(site.url("/page")).text()
        assert renderer.launches == 2
    finally:
        loop.run(renderer.close())


@pytest.mark.slow
def test_the_browser_is_restarted_after_restart_every_renders(loop: Loop, site: JSite) -> None:
    if MISSING:
        pytest.skip(MISSING)
    renderer = Renderer(executable=CHROMIUM, restart_every=2)
    own = Browser(loop, renderer)
    site["/page"] = page("<p>Hong Kong</p>")
    try:
        for _ in range(3):
            own.render(site.url("/page"))
        assert renderer.launches == 2
    finally:
        loop.run(renderer.close())


# --- finding Chromium (runs everywhere) ---------------------------------------------


def test_find_chromium_takes_the_environment_override_first(tmp_path: Path) -> None:
    assert find_chromium({"MONITOR_CHROMIUM": "/opt/chrome/chrome", "PATH": ""}) == (
        "/opt/chrome/chrome"
    )


def test_find_chromium_searches_path_in_order(tmp_path: Path) -> None:
    assert find_chromium({"PATH": str(tmp_path)}) is None
    for name in ("google-chrome", "chromium-headless-shell"):
        exe = tmp_path / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert find_chromium({"PATH": str(tmp_path)}) == str(tmp_path / "chromium-headless-shell")


def test_a_missing_chromium_is_needs_browser(loop: Loop) -> None:
    renderer = Renderer(executable="/nonexistent/chromium")
    request = FetchRequest("https://transparency.example.com/report")
    with pytest.raises(FetchError) as caught:
        loop.run(renderer.render(request))
    assert caught.value.kind is FailureKind.NEEDS_BROWSER
    assert str(caught.value) == NEEDS_BROWSER
    assert "install chromium" in NEEDS_BROWSER and "README" in NEEDS_BROWSER
    loop.run(renderer.close())


# --- end to end: a JavaScript-only page checked, alerted and diffed like any other ---------

APP = """<!doctype html><html><head><title>Government requests</title></head><body>
<div id="root"></div><noscript>You need to enable JavaScript to run this app.</noscript>
<script>fetch('/data.json').then(r => r.json()).then(d => {
  document.getElementById('root').innerHTML =
    `<main><h1>Government requests</h1><h2>Hong Kong</h2><p>${d.sentence}</p>` +
    `<p>Requests are reviewed by our legal team.</p></main>`;
});</script></body></html>"""
BEFORE = "We do not answer data requests from the Hong Kong government."


def data(sentence: str) -> Resource:
    return Resource(json.dumps({"sentence": sentence}).encode(), 200, "application/json")


AFTER = "We answer data requests from the Hong Kong government as the law requires."


@pytest.mark.slow
def test_a_javascript_only_page_is_checked_alerted_and_diffed(
    site: JSite, receiver: Receiver, tmp_path: Path
) -> None:
    if MISSING:
        pytest.skip(MISSING)
    site["/report"] = APP
    site["/data.json"] = Resource(
        json.dumps({"sentence": BEFORE}).encode(), 200, "application/json"
    )
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        "defaults: {jurisdictions: [HK], routes: [desk]}\n"
        f"routes: {{desk: ['json://127.0.0.1:{receiver.port}/hook']}}\n"
        "watches:\n"
        f"  - {{id: report, platform: Example, name: Requests, url: '{site.url('/report')}',\n"
        "     wait_for: main, expect: ['Hong Kong']}\n"
    )
    db = tmp_path / "m.db"
    args = ("check", "--watchlist", str(watchlist), "--db", str(db), "--json")

    def outcome() -> list[dict[str, Any]]:
        done = monitor(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    first = outcome()
    assert first[0]["outcome"] == "new", first  # the plain read was an app shell: rendered
    site["/data.json"] = data(AFTER)
    second = outcome()
    assert second[0]["outcome"] == "changed", second
    findings = [line for line in second if line["type"] == "finding"]
    assert [(f["jurisdiction"], f["before"], f["after"]) for f in findings] == [
        ("HK", BEFORE, AFTER)
    ]
    assert len(receiver.posts) == 1 and "as the law requires" in receiver.posts[0].body.decode()
    assert query(db, "SELECT rendered FROM snapshots") == [(1,), (1,)]
    diff = monitor(tmp_path, "diff", "report", "--watchlist", str(watchlist), "--db", str(db))
    assert diff.returncode == 0 and "as the law requires" in diff.stdout, diff.stderr


@pytest.mark.parametrize(
    ("setting", "expected"), [("0", False), ("off", False), ("1", True), ("on", True)]
)
def test_the_sandbox_follows_the_environment(setting: str, expected: bool) -> None:
    """The Docker image turns it off: Docker's seccomp profile leaves Chromium none."""
    assert sandbox_default({"MONITOR_CHROMIUM_SANDBOX": setting}) is expected
    assert sandbox_default({}) is (os.geteuid() != 0)


# --- the network policy ------------------------------------------------------------

# 127.0.0.1 plays a public host; 127.0.0.2-7 stay internal
PUBLIC_LOOPBACK = NetworkPolicy(
    internal=(ipaddress.ip_network("127.0.0.2/31"), ipaddress.ip_network("127.0.0.4/30"))
)


def test_a_public_page_cannot_make_the_browser_fetch_inside(browser: Browser, site: JSite) -> None:
    with LocalSite("127.0.0.3") as inside:
        inside["/secret"] = "<p>internal secret</p>"
        secret = inside.url("/secret")
        script = f"fetch({secret!r}).then(r => r.text()).then(t => {{ p.textContent = t; }})"
        site["/page"] = page(
            f'<p id="p">{SENTENCE}</p><img src="{secret}"><iframe src="{secret}"></iframe>',
            script="const p = document.getElementById('p');" + script,
        )

        snapshot = browser.render(site.url("/page"), network=PUBLIC_LOOPBACK)

        assert inside.requests == []
        assert "internal secret" not in snapshot.text() and SENTENCE in snapshot.text()


def test_a_redirect_of_the_page_inside_is_blocked_by_policy(browser: Browser, site: JSite) -> None:
    with LocalSite("127.0.0.3") as inside:
        inside["/admin"] = "<p>internal admin</p>"
        site["/page"] = Resource(b"", 302, headers={"Location": inside.url("/admin")})

        error = browser.fails(site.url("/page"), network=PUBLIC_LOOPBACK)

        assert error.kind is FailureKind.BLOCKED_BY_POLICY
        assert "127.0.0.3" in str(error)
        assert inside.requests == []  # the gate refused the connection: nothing was asked


def test_a_metadata_address_is_never_rendered(browser: Browser) -> None:
    error = browser.fails("http://169.254.169.254/latest/meta-data/")
    assert error.kind is FailureKind.BLOCKED_BY_POLICY
    assert "link-local" in str(error)


def test_an_intranet_page_still_loads_its_intranet_resources(browser: Browser, site: JSite) -> None:
    with LocalSite("127.0.0.3") as inside:
        inside["/figures"] = "<p>figures</p>"
        site["/page"] = page(f'<p>{SENTENCE}</p><img src="{inside.url("/figures")}">')
        browser.render(site.url("/page"))  # 127.0.0.1 is internal by default
        assert [path for path, _ in inside.requests] == ["/figures"]


def test_the_browser_connects_only_to_the_address_the_policy_checked(
    loop: Loop, site: JSite
) -> None:
    """Chromium cannot resolve `intranet.test`; the gate resolves it (here to the
    site's 127.0.0.1), judges that address and connects to it: no second lookup."""
    if MISSING:
        pytest.skip(MISSING)
    site["/page"] = page(f"<p>{SENTENCE}</p>")

    async def intranet(host: str, port: int) -> tuple[IPAddress, ...]:
        assert host in ("intranet.test", "127.0.0.1")
        return (ipaddress.ip_address("127.0.0.1"),)

    renderer = Renderer(executable=CHROMIUM, idle_wait=1.0, resolver=intranet)
    url = site.url("/page").replace("127.0.0.1", "intranet.test")
    try:
        snapshot = loop.run(renderer.render(FetchRequest(url, deadline=20.0)))
    finally:
        loop.run(renderer.close())
    assert SENTENCE in snapshot.text()


def test_behind_an_environment_proxy_chromium_uses_it_within_the_policy(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An egress proxy (a loopback server that records what it is asked) gets the
    page, even a name that resolves only on its side, and never a refused address."""
    if MISSING:
        pytest.skip(MISSING)
    with LocalSite("127.0.0.1") as proxy:
        proxy["http://policy.invalid/p"] = page(f"<p>{SENTENCE}</p>")
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.base)
        renderer = Renderer(executable=CHROMIUM, idle_wait=1.0)
        try:
            snapshot = loop.run(renderer.render(FetchRequest("http://policy.invalid/p")))
            with pytest.raises(FetchError) as caught:
                loop.run(renderer.render(FetchRequest("http://169.254.169.254/latest/")))
        finally:
            loop.run(renderer.close())
        assert SENTENCE in snapshot.text()
        assert caught.value.kind is FailureKind.BLOCKED_BY_POLICY
        assert [path for path, _ in proxy.requests] == ["http://policy.invalid/p"]
