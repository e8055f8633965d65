"""Cheap checks: a page that did not change costs little, and is still judged right.

A 304 or the same bytes again is decided on the latest version's hashes, without its
document; a page whose chosen content is the same as the latest version's (only its
head, footer or tokens changed) is recognised by the content's digest, without
walking it into blocks. Real local HTTP server, real SQLite file; the walks of
content are counted by a spy.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import extract
from monitor.errors import FailureKind, StoreError
from monitor.model import Outcome
from monitor.store import Store
from tests.conftest import LocalSite, Page
from tests.test_check import HK, HK_CHANGED, OTHER, Harness, page, watchlist

WATCH = "tiktok-le"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.store.close()


class Walks:
    """Counts the walks of chosen content into blocks (`extract._walk_roots`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        walk: Callable[..., Any] = extract._walk_roots

        def counted(*args: Any) -> Any:
            self.count += 1
            return walk(*args)

        monkeypatch.setattr(extract, "_walk_roots", counted)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Walks:
    return Walks(monkeypatch)


def html(text: str, headers: dict[str, str] | None = None) -> Page:
    return Page(text.encode(), headers={"Content-Type": "text/html", **(headers or {})})


def test_a_304_and_the_same_bytes_never_read_the_latest_document(
    site: LocalSite, harness: Harness, tmp_path: Path
) -> None:
    """Both are decided on hashes alone: even a damaged stored document (which
    `monitor verify` reports, and reading the version's text fails on) does not
    get in their way."""
    site["/le"] = html(page(), {"ETag": '"v1"'})
    wl = watchlist(site)
    assert harness.run(wl).outcome is Outcome.NEW
    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        conn.execute("UPDATE versions SET document = x'00'")
    site["/le"] = Page(b"", 304, {"ETag": '"v1"'})
    assert harness.run(wl).outcome is Outcome.NOT_MODIFIED
    harness.now += timedelta(days=1)  # a full fetch, once a day: the same bytes
    site["/le"] = html(page(), {"ETag": '"v1"'})
    assert harness.run(wl).outcome is Outcome.UNCHANGED
    with pytest.raises(StoreError, match="version 1: its stored document is damaged"):
        harness.store.latest_version(WATCH)  # reading the version's text does fail


def test_new_bytes_with_the_same_content_never_read_the_latest_document(
    site: LocalSite, harness: Harness, tmp_path: Path
) -> None:
    """Only the footer's time and the tokens changed: the content's digest decides,
    before the store is asked for the document (a damaged one is not in the way)."""
    site["/le"] = page()
    wl = watchlist(site)
    assert harness.run(wl).outcome is Outcome.NEW
    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        conn.execute("UPDATE versions SET document = x'00'")
    site["/le"] = page(stamp="11:00", token="t1")
    assert harness.run(wl).outcome is Outcome.UNCHANGED
    site["/le"] = page(HK_CHANGED + OTHER, "12:00")  # new content is compared with it
    result = harness.run(wl)  # a failed check, not a crash; recorded nothing
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.TRANSIENT
    assert "version 1: its stored document is damaged" in (result.message or "")
    assert harness.store.count("versions") == 1


def test_a_page_whose_content_is_the_same_is_unchanged_without_a_walk(
    site: LocalSite, harness: Harness, walks: Walks
) -> None:
    """The footer's time and the head's and footer's tokens change on every fetch."""
    site["/le"] = page()
    wl = watchlist(site)
    assert harness.run(wl).outcome is Outcome.NEW
    assert walks.count == 1
    for n in range(3):
        site["/le"] = page(stamp=f"11:0{n}", token=f"t{n}")
        assert harness.run(wl).outcome is Outcome.UNCHANGED
    assert walks.count == 1
    assert harness.store.count("versions") == 1


PROMO = '<p class="promo">Sign up for our newsletter: offer {n}.</p>'
UPDATED = "<p>Updated {n}.</p>"


@pytest.mark.parametrize(
    ("rules", "first", "second", "outcome", "walked"),
    [
        pytest.param({}, page(), page(HK_CHANGED + OTHER, "11:00"), "changed", True, id="a-word"),
        pytest.param(
            {},
            page(),
            page(stamp="11:00").replace("<title>Law", "<title>New: Law"),
            "unchanged",  # the head is never read: no text of it is in a version
            False,
            id="title",
        ),
        pytest.param(
            {},
            page(),
            page(stamp="11:00").replace("<html>", '<html lang="zh-HK">'),
            "unchanged",
            False,
            id="lang",
        ),
        pytest.param(
            {},
            page(),
            page(stamp="11:00").replace("<h1>", '<h1 data-build="7">'),
            "unchanged",  # the content differs (not its text): walked, then compared
            True,
            id="attribute-in-main",
        ),
        pytest.param(
            {"remove": "['.promo']"},
            page(HK + PROMO.format(n=1) + OTHER),
            page(HK + PROMO.format(n=2) + OTHER, "11:00"),
            "unchanged",
            False,
            id="removed-part",
        ),
        pytest.param(
            {"remove": "['.promo']"},
            page(HK + PROMO.format(n=1) + OTHER),
            page(HK_CHANGED + PROMO.format(n=2) + OTHER, "11:00"),
            "changed",
            True,
            id="removed-part-and-a-word",
        ),
        pytest.param(
            {"ignore": "['Updated \\d+']"},
            page(HK + UPDATED.format(n=1) + OTHER),
            page(HK + UPDATED.format(n=2) + OTHER, "11:00"),
            "unchanged",  # the ignored words are in the content: walked, then ignored
            True,
            id="ignored-words",
        ),
        pytest.param(
            {"select": "['main p']"},
            page(),
            page(stamp="11:00").replace("<h2>", "<h2>Now: "),
            "unchanged",  # the heading is outside what is selected
            False,
            id="outside-select",
        ),
        pytest.param(
            {},
            page().replace("<main>", "<div>").replace("</main>", "</div>"),
            page(stamp="11:00").replace("<main>", "<div>").replace("</main>", "</div>"),
            "unchanged",  # the body, without its nav, banner and footer
            False,
            id="no-main",
        ),
        pytest.param(
            {},
            page().replace("<main>", "<div>").replace("</main>", "</div>"),
            page(HK_CHANGED + OTHER, "11:00")
            .replace("<main>", "<div>")
            .replace("</main>", "</div>"),
            "changed",
            True,
            id="no-main-a-word",
        ),
    ],
)
def test_the_content_digest_never_hides_what_the_walk_would_find(
    site: LocalSite,
    harness: Harness,
    walks: Walks,
    rules: dict[str, str],
    first: str,
    second: str,
    outcome: str,
    walked: bool,
) -> None:
    wl = watchlist(site, **rules)
    site["/le"] = first
    assert harness.run(wl).outcome is Outcome.NEW
    before = walks.count
    site["/le"] = second
    assert harness.run(wl).outcome == outcome
    assert (walks.count > before) is walked


def test_what_the_watch_expects_outside_its_content_is_still_checked(
    site: LocalSite, harness: Harness, walks: Walks
) -> None:
    """The content is the same, but the footer the watch expects is gone."""
    wl = watchlist(site, expect='[{css: "footer"}]')
    site["/le"] = page()
    assert harness.run(wl).outcome is Outcome.NEW
    site["/le"] = re.sub("<footer>.*</footer>", "", page(stamp="11:00"), flags=re.DOTALL)
    result = harness.run(wl)
    assert result.outcome is Outcome.FAILED and result.failure is FailureKind.INCOMPLETE


def test_changed_rules_walk_the_page_again(site: LocalSite, harness: Harness, walks: Walks) -> None:
    """The rules are part of the digest: new rules re-extract into a technical version."""
    site["/le"] = page(HK + PROMO.format(n=1) + OTHER)
    assert harness.run(watchlist(site)).outcome is Outcome.NEW
    site["/le"] = page(HK + PROMO.format(n=1) + OTHER, "11:00")
    result = harness.run(watchlist(site, remove="['.promo']"))
    assert result.outcome is Outcome.UNCHANGED and result.technical
    assert walks.count == 2
    latest = harness.store.latest_version(WATCH)
    assert latest is not None and not any("newsletter" in b.text for b in latest.document)


def test_a_store_from_before_digests_gets_them_from_its_next_unchanged_check(
    site: LocalSite, harness: Harness, walks: Walks, tmp_path: Path
) -> None:
    """Schema 7 adds the digest; older versions have none: the first check after the
    upgrade walks the page and gives its version the digest, the next is not walked."""
    db = tmp_path / "monitor.db"
    wl = watchlist(site)
    site["/le"] = page()
    assert harness.run(wl).outcome is Outcome.NEW
    harness.store.close()
    with sqlite3.connect(db) as conn:  # the store as schema 6 left it
        conn.execute("ALTER TABLE versions DROP COLUMN content_digest")
        conn.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    harness.store = Store.open(str(db))
    assert harness.store.schema_version() == 7
    latest = harness.store.latest_version(WATCH)
    assert latest is not None and latest.content_digest is None
    walked = walks.count
    site["/le"] = page(stamp="11:00")
    assert harness.run(wl).outcome is Outcome.UNCHANGED
    assert walks.count == walked + 1
    latest = harness.store.latest_version(WATCH)
    assert latest is not None and latest.content_digest is not None
    site["/le"] = page(stamp="12:00")
    assert harness.run(wl).outcome is Outcome.UNCHANGED
    assert walks.count == walked + 1
    site["/le"] = page(HK_CHANGED + OTHER, "13:00")
    assert harness.run(wl).outcome is Outcome.CHANGED


class Lookups:
    """Every search for a module that is not imported yet (first on `sys.meta_path`)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.names.append(name)


def test_checks_that_repeat_search_for_no_module(site: LocalSite, harness: Harness) -> None:
    """A module a check imports is imported once; one that is missing would be
    searched for on the whole `sys.path` at every request (httpcore asks for sniffio
    six times a check: 0.2 ms each time it is not installed)."""
    site["/le"] = html(page(), {"ETag": '"v1"'})
    wl = watchlist(site)
    assert harness.run(wl).outcome is Outcome.NEW
    site["/le"] = Page(b"", 304, {"ETag": '"v1"'})
    assert harness.run(wl).outcome is Outcome.NOT_MODIFIED  # what a 304 imports, imported
    lookups = Lookups()
    sys.meta_path.insert(0, lookups)
    try:
        outcomes = [harness.run(wl).outcome for _ in range(3)]
    finally:
        sys.meta_path.remove(lookups)
    assert outcomes == [Outcome.NOT_MODIFIED] * 3
    assert lookups.names == []
