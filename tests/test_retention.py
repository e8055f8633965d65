"""What the store keeps: no page's worth of bytes per unchanged check, and retention
(`defaults.keep`, `monitor prune`) that never removes what an alert refers to."""

from __future__ import annotations

import base64
import os
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import config
from monitor.cli import main
from monitor.errors import ConfigError, NotKept, StoreError
from monitor.model import (
    AlertKind,
    AlertRecord,
    Block,
    CheckRecord,
    Finding,
    FindingKind,
    Outcome,
    VersionKind,
)
from monitor.store import Store
from monitor.store.retention import Pruned
from tests.test_postgres import URL as POSTGRES
from tests.test_postgres import empty_database
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


# --- retention: defaults.keep and monitor prune ---------------------------------------

DAY = timedelta(days=1)
NOW = T0 + 300 * DAY
HK_FINDING = Finding("HK", FindingKind.SENTENCE_ADDED, "sentence", ("Hong Kong",), note="n")


def history(store: Store, now: datetime = NOW) -> dict[str, int]:
    """A watch's past, oldest first: a baseline and a change that was alerted long
    ago, unchanged checks, an unalerted change, and the latest version; the ids of
    the versions by name."""
    at = {"baseline": now - 200 * DAY, "alerted": now - 150 * DAY, "unchanged": now - 140 * DAY}
    at |= {"unalerted": now - 100 * DAY, "latest": now - 10 * DAY}
    for name, when in at.items():
        body = PAGE.format(POLICY, name)
        rec = CheckRecord("w", when, 0.1, Outcome.CHANGED, snapshot=snap(body, when))
        rec = replace(rec, rules_hash="r1", document=(*DOC, Block("paragraph", name)))
        rec = replace(rec, version_kind=VersionKind.CHANGE)
        if name == "alerted":
            alert = AlertRecord("w", AlertKind.CHANGE, "HK", "{}", ("HK",))
            rec = replace(rec, findings=(HK_FINDING,), alerts=(alert,))
        if name == "unchanged":
            rec = replace(rec, outcome=Outcome.UNCHANGED, document=None, version_kind=None)
        store.record(rec)
    made = ("baseline", "alerted", "unalerted", "latest")
    return {name: v.id for name, v in zip(made, store.versions("w"), strict=True)}


def sha(name: str) -> str:
    return snap(PAGE.format(POLICY, name)).sha256


def counts(store: Store) -> dict[str, int]:
    return {t: store.count(t) for t in ("versions", "snapshots", "bodies", "checks", "alerts")}


def test_a_dry_run_says_what_a_prune_removes_and_removes_nothing(store: Store) -> None:
    history(store)
    before = counts(store)
    would = store.prune(NOW - 90 * DAY, NOW - 90 * DAY, dry_run=True)
    assert counts(store) == before
    assert store.prune(NOW - 90 * DAY, NOW - 90 * DAY, dry_run=False) == would
    assert would.versions == 2 and would.snapshots == 3 and would.bodies == 2  # keyframe kept
    assert would.body_bytes > 0 and would.raw_bytes > would.body_bytes


def test_raw_retention_keeps_versions_and_what_alerts_and_next_checks_need(store: Store) -> None:
    ids = history(store)
    pruned = store.prune(None, NOW - 90 * DAY, dry_run=False)
    assert pruned.versions == 0 and pruned.snapshots == 1  # the unchanged check's response
    assert len(store.versions("w")) == 4  # versions: all
    for kept in ("alerted", "latest", "baseline"):  # cited, compared with, the keyframe
        assert store.body(sha(kept)) == PAGE.format(POLICY, kept).encode()
    with pytest.raises(NotKept, match="removed by retention"):
        store.body(sha("unalerted"))
    unalerted = store.version(ids["unalerted"])
    assert store.snapshot_sha(unalerted.snapshot_id) == sha("unalerted")  # the hash stays
    assert unalerted.document  # its document, stored against that body, was re-packed first
    assert store.verify() == []
    assert store.prune(None, NOW - 90 * DAY, dry_run=False) == Pruned()  # nothing twice


def test_version_retention_never_removes_an_alerted_or_the_latest_version(store: Store) -> None:
    ids = history(store)
    store.prune(NOW - 90 * DAY, None, dry_run=False)
    assert [v.id for v in store.versions("w")] == [ids["alerted"], ids["latest"]]
    assert [a.version_id for a in store.alerts()] == [ids["alerted"]]
    logged = {e.version_id for e in store.check_log("w")}
    assert logged == {ids["alerted"], ids["latest"], None}
    assert store.verify() == []


def test_a_body_pruned_then_served_again_by_a_change_is_kept_again(store: Store) -> None:
    history(store)
    store.prune(None, NOW - 90 * DAY, dry_run=False)
    body = PAGE.format(POLICY, "unalerted")
    rec = CheckRecord("w", NOW, 0.1, Outcome.CHANGED, snapshot=snap(body, NOW), rules_hash="r1")
    store.record(replace(rec, document=DOC, version_kind=VersionKind.REVERT))
    assert store.body(sha("unalerted")) == body.encode()
    assert store.verify() == []


def test_prune_on_postgresql_keeps_what_alerts_cite() -> None:
    if not POSTGRES:
        pytest.skip("MONITOR_TEST_POSTGRES is not set")
    empty_database()
    with Store.open(POSTGRES) as store:
        ids = history(store)
        pruned = store.prune(NOW - 90 * DAY, NOW - 90 * DAY, dry_run=False)
        assert (pruned.versions, pruned.snapshots, pruned.bodies) == (2, 3, 2)
        assert [v.id for v in store.versions("w")] == [ids["alerted"], ids["latest"]]
        assert store.body(sha("alerted")) == PAGE.format(POLICY, "alerted").encode()
        assert store.verify() == []


def test_monitor_prune_reads_defaults_keep_and_says_what_it_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    with Store.open(str(db)) as store:
        history(store, datetime.now(UTC))
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        "defaults:\n  keep: {versions: all, raw: 1d}\n"
        "watches:\n  - {id: w, url: 'https://example.org/p'}\n"
    )
    args = ["prune", "--watchlist", str(watchlist), "--db", str(db)]
    assert main([*args, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "would remove 0 versions (0 B)" in dry
    assert "would remove 1 snapshot and 2 raw bodies (" in dry and " KB as served)" in dry
    assert main(args) == 0
    assert dry.replace("would remove", "removed") == capsys.readouterr().out
    assert main(["show", "--raw", sha("unalerted"), "--db", str(db)]) == 2
    assert "is not kept (removed by retention" in capsys.readouterr().err
    assert main(["verify", "--db", str(db)]) == 0


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ("{raw: 90}", "90 is less than a day: write `all` or a duration such as 90d"),
        ("{raw: forever}", "'forever' is neither `all` nor a duration such as 90d or 52w"),
        ("{versions: -1d}", "is neither `all` nor a duration"),
        ("{rows: 9d}", "rows"),
    ],
)
def test_defaults_keep_is_validated_with_clear_messages(keep: str, message: str) -> None:
    text = f"defaults:\n  keep: {keep}\nwatches:\n  - {{id: w, url: 'https://example.org/p'}}\n"
    with pytest.raises(ConfigError, match="defaults") as info:
        config.loads(text, "w.yaml", env={})
    assert message in str(info.value), str(info.value)


def test_defaults_keep_reads_all_and_durations() -> None:
    text = "defaults:\n  keep: {versions: all, raw: 90d}\nwatches:\n  - {id: w, url: 'https://e.org'}\n"
    keep = config.loads(text, "w.yaml", env={}).defaults.keep
    assert keep.versions is None and keep.raw == 90 * 86400
