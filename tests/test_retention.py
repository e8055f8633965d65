"""What the store keeps: no page's worth of bytes per unchanged check, and retention
(`defaults.keep`, `monitor prune`) that never removes what an alert refers to."""

from __future__ import annotations

import base64
import os
import sqlite3
from dataclasses import replace

import pytest

from monitor.errors import StoreError
from monitor.model import CheckRecord, Outcome, VersionKind
from monitor.store import Store
from tests.test_store import DOC, PAGE, POLICY, T0, record, snap
from tests.test_store import store as store  # the fixture


def noise() -> str:
    """A comment of random text, different every time: nothing compresses it."""
    return "<!-- " + base64.b64encode(os.urandom(750_000)).decode() + " -->"


def stored_bytes(store: Store) -> int:
    with sqlite3.connect(store.engine.url.database) as db:  # type: ignore[arg-type]
        return int(db.execute("SELECT coalesce(sum(length(data)), 0) FROM bodies").fetchone()[0])


def test_random_markup_in_an_unchanged_page_does_not_grow_the_store_by_a_page(
    store: Store,
) -> None:
    record(store, PAGE.format(POLICY, noise()), document=DOC, version_kind="baseline")
    first = stored_bytes(store)
    bodies = [PAGE.format(POLICY, noise()) for _ in range(10)]
    for body in bodies:
        record(store, body, outcome="unchanged")
    assert stored_bytes(store) - first < 1000  # was 10 x 750 KB
    assert store.count("snapshots") == 11  # every check still names what it was served
    with pytest.raises(StoreError, match="not kept"):
        store.body(snap(bodies[3]).sha256)
    assert store.verify() == []


def test_a_body_not_kept_is_kept_once_a_version_is_made_of_it(store: Store) -> None:
    record(store, PAGE.format(POLICY, noise()), document=DOC, version_kind="baseline")
    body = PAGE.format(POLICY, noise())
    record(store, body, outcome="unchanged")
    rules = CheckRecord("w", T0, 0.1, Outcome.UNCHANGED, snapshot=snap(body), rules_hash="r2")
    store.record(replace(rules, document=DOC, version_kind=VersionKind.TECHNICAL))
    assert store.body(snap(body).sha256) == body.encode()
    assert store.verify() == []
