"""The read-only dashboard and its Atom feeds, over a store built by real checks.

One store per module: `monitor check` runs twice against pages on 127.0.0.1 (a
baseline, then a Hong Kong change whose page text is hostile: a `<script>`, an
`<img onerror>` and a `javascript:` link), delivering to a local webhook whose route
URL carries a password. The routes and escaping are tested in-process (Starlette's
Client); the end-to-end test runs `monitor serve` and a real headless Chromium.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from lxml import etree
from starlette.types import ASGIApp

from monitor import dashboard
from monitor.app import load_watchlist
from monitor.browser import CHROMIUM_ARGS, sandbox_default
from monitor.cli import main
from monitor.config import loads
from monitor.dashboard import CSP
from monitor.metrics import Metrics
from monitor.metrics import app as endpoint_app
from monitor.store import Store
from tests.conftest import LocalSite, Receiver
from tests.harness import ENV, query
from tests.test_browser import CHROMIUM, MISSING

PAGE = """<html><body><main><h1>Government requests</h1>
<p>We review every request for user data carefully.</p>
<p>{hk}</p></main></body></html>"""
HK_BEFORE = "We do not respond to requests from the Hong Kong government."
HOSTILE = (
    "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt; "
    '<a href="javascript:alert(3)">javascript:alert(3)</a>'
)
HK_AFTER = f"We respond to requests from the Hong Kong government. {HOSTILE}"
TW_PAGE = "<html><body><main><p>Requests from Taiwan are reviewed.</p></main></body></html>"
SECRET = "t0pS3cretW0rd"
ATOM = "{http://www.w3.org/2005/Atom}"


class Client:
    """Requests to an ASGI application in-process (httpx's ASGI transport), synchronously."""

    def __init__(self, asgi: ASGIApp) -> None:
        self.transport = httpx.ASGITransport(app=asgi)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            base = "http://dashboard.test"
            async with httpx.AsyncClient(transport=self.transport, base_url=base) as client:
                return await client.request(method, path, **options)

        return asyncio.run(go())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


@dataclass(frozen=True)
class Stored:
    db: Path
    watchlist: Path

    def client(self, **options: Any) -> Iterator[Client]:
        store = Store.open(str(self.db), create=False)
        wl = load_watchlist(str(self.watchlist), sending=False)
        try:
            yield Client(dashboard.app(store, lambda: wl, **options))
        finally:
            store.close()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """Watch meta-hk: a baseline then a Hong Kong change, delivered; tw-only: a baseline."""
    folder = tmp_path_factory.mktemp("dashboard")
    receiver = Receiver()
    receiver.thread.start()
    with LocalSite() as site:
        watchlist = folder / "w.yaml"
        watchlist.write_text(
            "defaults:\n  routes: [desk]\n"
            f"routes:\n  desk: ['json://robot:{SECRET}@127.0.0.1:{receiver.port}/hook']\n"
            "watches:\n"
            f"  - {{id: meta-hk, platform: Meta, name: Government requests,"
            f" url: '{site.url('/p')}', jurisdictions: [HK]}}\n"
            f"  - {{id: tw-only, platform: Line, name: Taiwan page,"
            f" url: '{site.url('/tw')}', jurisdictions: [TW]}}\n"
        )
        db = folder / "m.db"
        site["/p"] = PAGE.format(hk=HK_BEFORE)
        site["/tw"] = TW_PAGE
        args = ["check", "--watchlist", str(watchlist), "--db", str(db)]
        assert main(args) == 0
        site["/p"] = PAGE.format(hk=HK_AFTER)
        assert main([*args, "meta-hk"]) == 0
    receiver.server.shutdown()
    receiver.server.server_close()
    assert len(receiver.posts) == 1  # the change was delivered, once
    ids = "SELECT id, number FROM versions WHERE watch_id = 'meta-hk'"
    assert query(db, ids) == [(1, 1), (3, 2)]  # ids in the store, numbers per watch
    yield Stored(db, watchlist)


@pytest.fixture
def client(stored: Stored) -> Iterator[Client]:
    yield from stored.client()


def sha_of_version(db: Path, version: int) -> str:
    [(sha,)] = query(
        db,
        "SELECT s.body_sha256 FROM versions v JOIN snapshots s ON s.id = v.snapshot_id"
        f" WHERE v.id = {version}",
    )
    return str(sha)


def test_the_index_lists_every_watch_with_its_status_and_filters(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Meta — Government requests" in page.text and "Line — Taiwan page" in page.text
    assert 'href="/watch/meta-hk">HK · sentence modified</a>' in page.text
    assert page.headers["content-security-policy"] == dashboard.CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    taiwan = client.get("/", params={"jurisdiction": "TW"}).text
    assert "Taiwan page" in taiwan and "Government requests" not in taiwan
    assert "No watch matches." in client.get("/", params={"status": "failing"}).text


def test_a_watch_page_shows_versions_findings_and_redacted_deliveries(
    client: Client,
) -> None:
    page = client.get("/watch/meta-hk")
    assert page.status_code == 200
    text = page.text
    assert "version 1</strong> · baseline" in text and "version 2</strong> · change" in text
    assert 'href="/watch/meta-hk/diff?from=1&amp;to=2"' in text
    assert ">sent</span> desk" in text
    assert SECRET not in text and "robot" in text  # the route's URL, redacted
    alerts = client.get("/alerts").text
    assert "Meta · Government requests · Hong Kong: sentence modified</a>" in alerts
    assert ">sent</span> desk" in alerts and SECRET not in alerts


def test_a_watch_no_longer_listed_keeps_its_history_on_the_dashboard(stored: Stored) -> None:
    store = Store.open(str(stored.db), create=False)
    wl = loads("watches:\n  - {id: other, platform: X, name: X, url: 'https://e.org/'}\n", "w")
    try:
        client = Client(dashboard.app(store, lambda: wl))
        page = client.get("/watch/meta-hk").text
        assert "No longer in the watchlist; its history is kept." in page
        assert "<mark>Hong Kong</mark>" in client.get("/watch/meta-hk/diff").text
    finally:
        store.close()


def test_the_change_page_marks_words_names_and_shows_the_proof(
    client: Client, stored: Stored
) -> None:
    page = client.get("/watch/meta-hk/diff")
    assert page.status_code == 200
    text = page.text
    assert text.index('id="findings"') < text.index('id="changes"')  # findings first
    assert "<mark>Hong Kong</mark>" in text
    assert "<del>not</del>" in text or "<del>do not</del>" in text
    for version in (1, 3):
        sha = sha_of_version(stored.db, version)
        assert f"<code>{sha}</code>" in text and f'href="/raw/{sha}"' in text
    assert "monitor diff meta-hk --from 1 --to 2" in text
    assert "monitor show meta-hk 2" in text
    assert "monitor export meta-hk --from 1 --to 2 --out meta-hk-1-2.warc.gz" in text
    inline = client.get("/watch/meta-hk/diff", params={"from": 1, "to": 2, "view": "inline"})
    assert "<ins>" in inline.text and 'class="sides"' not in inline.text


def test_hostile_page_text_is_escaped_everywhere(client: Client) -> None:
    for path in ("/", "/watch/meta-hk", "/watch/meta-hk/diff", "/alerts"):
        text = client.get(path).text
        assert "<script" not in text.lower() and "<img" not in text.lower()
        assert not re.search(r"href=\"\s*javascript", text, re.IGNORECASE)
    diff = client.get("/watch/meta-hk/diff").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in diff
    assert "&lt;img src=x onerror=alert(2)&gt;" in diff


def test_a_raw_body_is_only_a_download_with_its_hash(client: Client, stored: Stored) -> None:
    sha = sha_of_version(stored.db, 3)
    raw = client.get(f"/raw/{sha}")
    assert raw.status_code == 200
    assert raw.headers["content-disposition"] == f'attachment; filename="{sha}.raw"'
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["x-content-sha256"] == sha
    assert hashlib.sha256(raw.content).hexdigest() == sha
    assert client.get("/raw/" + "0" * 64).status_code == 404


def test_nothing_can_be_changed_and_unknown_things_are_404(client: Client) -> None:
    assert client.post("/").status_code == 405
    assert client.post("/watch/meta-hk").status_code == 405
    assert client.get("/watch/nope").status_code == 404
    assert client.get("/watch/meta-hk/diff", params={"to": 99}).status_code == 404
    assert client.get("/watch/meta-hk/diff", params={"to": "x"}).status_code == 400
    assert client.get("/feeds/jurisdiction/XX.atom").status_code == 404
    missing = client.get("/watch/nope")
    assert missing.headers["content-security-policy"] == dashboard.CSP


def atom_entries(body: bytes) -> list[etree._Element]:
    """The entries of a valid Atom feed: the feed and every entry have what RFC 4287 requires."""
    root = etree.fromstring(body)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    assert root.find(f"{ATOM}link[@rel='self']") is not None
    entries = root.findall(f"{ATOM}entry")
    for entry in entries:
        for name in ("id", "title", "updated", "link"):
            assert entry.find(f"{ATOM}{name}") is not None, name
    return entries


def test_feeds_have_one_entry_per_change_alert_with_stable_ids(client: Client) -> None:
    for path in ("/feeds/all.atom", "/feeds/jurisdiction/HK.atom", "/feeds/watch/meta-hk.atom"):
        answer = client.get(path)
        assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
        [entry] = atom_entries(answer.content)
        assert entry.findtext(f"{ATOM}id") == "tag:monitor,2026:alert/1"
        parsed = feedparser.parse(answer.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        [item] = parsed.entries
        assert item.link.endswith("/watch/meta-hk/diff?to=2")
        content = item.content[0].value
        assert "Hong Kong" in content and "&lt;script&gt;" in content
        assert "<script" not in content
    again = client.get("/feeds/all.atom").content
    assert atom_entries(again)[0].findtext(f"{ATOM}id") == "tag:monitor,2026:alert/1"
    assert atom_entries(client.get("/feeds/jurisdiction/tw.atom").content) == []
    assert atom_entries(client.get("/feeds/watch/tw-only.atom").content) == []
    assert client.get("/feeds/watch/nope.atom").status_code == 404


def test_a_listed_watch_never_checked_has_an_empty_feed_to_subscribe_to(stored: Stored) -> None:
    store = Store.open(str(stored.db), create=False)
    text = stored.watchlist.read_text() + (
        "  - {id: later, platform: X, name: Later, url: 'https://example.org/later'}\n"
    )
    wl = loads(text, "w.yaml")
    try:
        answer = Client(dashboard.app(store, lambda: wl)).get("/feeds/watch/later.atom")
        assert answer.status_code == 200 and atom_entries(answer.content) == []
    finally:
        store.close()


def test_run_http_serves_the_dashboard_beside_healthz_and_metrics(stored: Stored) -> None:
    store = Store.open(str(stored.db), create=False)
    wl = load_watchlist(str(stored.watchlist), sending=False)
    down = "no page answered since 2026-12-01T09:30:00+00:00: the monitor's network looks down"
    pages = dashboard.app(store, lambda: wl, network_down=lambda: down)
    try:
        c = Client(endpoint_app(Metrics(store, lambda: ["meta-hk"]), lambda: True, pages))
        assert c.get("/healthz").text.startswith("ok ")
        assert "monitor_checks" in c.get("/metrics").text
        index = c.get("/")
        assert "Government requests" in index.text
        assert f'role="alert">{down}</p>' in index.text.replace("&#39;", "'")
    finally:
        store.close()


# --- end to end: `monitor serve` and a real headless Chromium ---------------------------


@pytest.fixture(scope="module")
def served(stored: Stored) -> Iterator[str]:
    """`monitor serve` on a free port of 127.0.0.1: its base URL."""
    command = [sys.executable, "-m", "monitor", "serve", "--http", "127.0.0.1:0"]
    command += ["--db", str(stored.db), "--watchlist", str(stored.watchlist)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert found, line
            yield found.group()
        finally:
            process.terminate()
            _out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err  # SIGTERM stops it cleanly


@pytest.mark.slow
def test_monitor_serve_answers_over_http_and_feeds_parse(served: str) -> None:
    with httpx.Client(base_url=served) as http:
        index = http.get("/")
        assert index.status_code == 200 and "Government requests" in index.text
        feed = http.get("/feeds/jurisdiction/HK.atom")
        [entry] = atom_entries(feed.content)
        assert entry.find(f"{ATOM}link").get("href") == f"{served}watch/meta-hk/diff?to=2"
        assert http.get("/healthz").status_code == 404  # serve is not the daemon


def test_serve_never_creates_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "typo.db"
    assert main(["serve", "--db", str(db), "--http", "127.0.0.1:0"]) == 1
    assert "no store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["serve", "--db", str(db), "--http", "nope"]) == 2


@pytest.mark.slow
def test_in_chromium_from_the_index_to_the_hong_kong_change(served: str, tmp_path: Path) -> None:
    """A reader's path, in a real headless Chromium on a phone-sized screen: the index,
    the watch, its change; the hostile text is read as text and nothing runs."""
    if MISSING:
        pytest.skip(MISSING)
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("MONITOR_DASHBOARD_SHOTS") or tmp_path)  # README's pictures
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=list(CHROMIUM_ARGS),
            chromium_sandbox=sandbox_default(os.environ),
        )
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            answer = page.goto(served)
            assert answer is not None and answer.headers["content-security-policy"] == CSP
            page.screenshot(path=shots / "dashboard-index.png", full_page=True)
            page.get_by_role("link", name="Meta — Government requests").click()
            page.wait_for_url("**/watch/meta-hk")
            assert page.locator("h1").inner_text() == "Meta — Government requests"
            page.get_by_role("link", name="changes from version 1").click()
            page.wait_for_url("**/watch/meta-hk/diff?from=1&to=2")
            finding = page.locator("article.finding")
            assert finding.locator("h3").inner_text() == "Hong Kong (HK) · sentence modified"
            assert finding.locator(".before del").inner_text() == "do not"
            after = finding.locator(".after .quote")
            assert after.locator("mark").inner_text() == "Hong Kong"
            assert "<script>alert(1)</script> <img src=x onerror=alert(2)>" in after.inner_text()
            assert page.locator("main script, main img").count() == 0
            assert page.locator('a[href^="javascript:" i]').count() == 0
            page.screenshot(path=shots / "dashboard-diff.png", full_page=True)
            still = browser.new_context(java_script_enabled=False).new_page()
            still.goto(page.url)  # every page works with scripts off: it has none
            assert "Snapshot SHA-256" in still.locator("main").inner_text()
        finally:
            browser.close()
    assert dialogs == [] and errors == []


def test_a_long_index_is_paged_keeping_its_filters(stored: Stored) -> None:
    store = Store.open(str(stored.db), create=False)
    many = "".join(
        f"  - {{id: p{i:03}, platform: {'Big' if i % 2 else 'Small'}, name: N{i:03},"
        f" url: 'https://example.org/{i}'}}\n"
        for i in range(450)
    )
    wl = loads(stored.watchlist.read_text() + many, "w.yaml")
    try:
        client = Client(dashboard.app(store, lambda: wl))
        first = client.get("/").text
        assert "452 watches · page 1 of 3" in first and 'href="?page=2" rel="next"' in first
        assert "N197" in first and "N198" not in first
        last = client.get("/", params={"page": 3}).text
        assert "N449" in last and "N001" not in last and 'href="?page=2" rel="prev"' in last
        big = client.get("/", params={"platform": "Big"}).text
        assert "225 watches · page 1 of 2" in big
        assert 'href="?platform=Big&amp;page=2" rel="next"' in big
        assert "page 3 of 3" in client.get("/", params={"page": 99}).text
    finally:
        store.close()


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False),
     ("192.168.1.20", False)],
)  # fmt: skip
def test_only_a_loopback_address_is_this_machine_alone(host: str, local: bool) -> None:
    assert dashboard.is_loopback(host) is local


def test_serve_beyond_this_machine_needs_a_token_or_says_it_goes_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MONITOR_HTTP_TOKEN", raising=False)
    db = tmp_path / "typo.db"
    assert main(["serve", "--db", str(db), "--http", "0.0.0.0:0"]) == 2
    assert "beyond this machine the dashboard needs a token" in capsys.readouterr().err
    # with --insecure-no-auth (or a token) it goes on, here to the missing store
    assert main(["serve", "--db", str(db), "--http", "0.0.0.0:0", "--insecure-no-auth"]) == 1
    monkeypatch.setenv("MONITOR_HTTP_TOKEN", "x" * 32)
    assert main(["serve", "--db", str(db), "--http", "0.0.0.0:0"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_with_a_token_every_page_and_feed_needs_it(stored: Stored) -> None:
    token = "correct-horse-battery-staple"
    for client in stored.client(token=token):
        refused = client.get("/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"]
        assert refused.headers["content-security-policy"] == CSP
        assert client.get("/feeds/all.atom", params={"token": "wrong"}).status_code == 401
        bearer = {"authorization": f"Bearer {token}"}
        assert client.get("/watch/meta-hk", headers=bearer).status_code == 200
        feed = client.get("/feeds/jurisdiction/HK.atom", params={"token": token})
        [entry] = atom_entries(feed.content)
        link = entry.find(f"{ATOM}link")
        assert link is not None and link.get("href", "").endswith(f"?to=2&token={token}")
        visit = client.get("/", params={"token": token})  # a browser's first visit
        cookie = visit.headers["set-cookie"]
        assert cookie.startswith(f"monitor_token={token};") and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        later = {"cookie": f"monitor_token={token}"}
        assert client.get("/watch/meta-hk/diff", headers=later).status_code == 200
