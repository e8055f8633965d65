"""The store keeps exact proof, compactly, and never half a check."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import sys
import threading
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, insert, inspect, text

from monitor.errors import FailureKind, StoreError
from monitor.model import (
    AlertKind,
    AlertRecord,
    Block,
    CellDelta,
    Change,
    CheckRecord,
    DeliveryStatus,
    Finding,
    Outcome,
    Snapshot,
    Validators,
    document_hash,
    document_json,
)
from monitor.store import MissingStore, Store, database_url, redact_db, schema
from monitor.store import versions as versions_mod
from monitor.store.connection import connect
from monitor.store.schema import SCHEMA_VERSION

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PAGE = "<html><body><main>{}</main><footer>Rendered at {}</footer></body></html>"
POLICY = " ".join(
    f"Sentence {i} about data requests from Hong Kong authorities." for i in range(400)
)


def snap(body: str, at: datetime = T0) -> Snapshot:
    return Snapshot(
        url="https://example.org/p",
        final_url="https://example.org/p/",
        status=200,
        headers=(("content-type", "text/html; charset=utf-8"), ("etag", '"abc"')),
        body=body.encode(),
        encoding="utf-8",
        fetched_at=at,
        elapsed=0.25,
    )


DOC = (Block("heading", "Requests", (), 1), Block("paragraph", "Hong Kong: 12", ("Requests",)))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(str(tmp_path / "monitor.db"))
    yield opened
    opened.close()


def record(store: Store, body: str, outcome: str = "new", **kw: object) -> int | None:
    rec = CheckRecord(
        "w",
        kw.pop("at", T0),
        0.3,
        outcome,
        snapshot=snap(body),
        rules_hash="r1",
        **kw,  # type: ignore[arg-type]
    )
    return store.record(rec)


def test_a_version_round_trips_with_its_exact_snapshot(store: Store) -> None:
    body = PAGE.format(POLICY, "10:00")
    vid = record(
        store,
        body,
        document=DOC,
        version_kind="baseline",
        validators=Validators('"abc"', None),
        full_fetch=True,
    )
    version = store.latest_version("w")
    assert version is not None and version.id == vid
    assert version.document == DOC and version.doc_hash == document_hash(DOC)
    assert version.kind == "baseline"
    proof = store.snapshot(version.snapshot_id)
    assert proof.body == body.encode() and proof.final_url == "https://example.org/p/"
    assert proof.header("etag") == '"abc"' and proof.fetched_at == T0
    state = store.state("w")
    assert state.validators.etag == '"abc"' and state.last_full_fetch == T0
    assert state.last_body_sha256 == proof.sha256


def test_bodies_are_deduplicated_and_near_duplicates_cost_little(store: Store) -> None:
    first = PAGE.format(POLICY, "10:00")
    record(store, first)
    record(store, first, outcome="unchanged")
    assert store.count("bodies") == 1 and store.count("snapshots") == 2
    for minute in range(1, 20):
        record(store, PAGE.format(POLICY, f"10:{minute:02}"), outcome="unchanged")
    with sqlite3.connect(store.engine.url.database) as db:  # type: ignore[arg-type]
        rows = db.execute("SELECT codec, length(data), size FROM bodies").fetchall()
    full = [r for r in rows if r[0] == "zstd"]
    deltas = [r for r in rows if r[0] == "zstd-dict"]
    assert len(full) == 1 and len(deltas) == 19
    assert all(length < 200 for _, length, _ in deltas), deltas
    for minute in (1, 19):  # every body reads back exactly
        body = PAGE.format(POLICY, f"10:{minute:02}").encode()
        assert store.body(snap(body.decode()).sha256) == body


def test_failures_count_up_and_reset_on_success(store: Store) -> None:
    record(store, "x", document=DOC, version_kind="baseline")
    for i in range(3):
        store.record(
            CheckRecord(
                "w",
                T0 + timedelta(hours=i),
                0.1,
                "failed",
                failure_kind="blocked",
                message="challenge page",
            )
        )
    state = store.state("w")
    assert state.consecutive_failures == 3 and state.last_error == "challenge page"
    record(store, "x", outcome="unchanged")
    assert store.state("w").consecutive_failures == 0
    assert [c.outcome for c in store.check_log("w")][:2] == [Outcome.UNCHANGED, Outcome.FAILED]


def test_a_failed_snapshot_is_kept_as_evidence_but_is_not_the_last_good_body(store: Store) -> None:
    record(store, "good", document=DOC, version_kind="baseline")
    good = store.state("w").last_body_sha256
    record(store, "<h1>Error</h1>", outcome="failed", failure_kind="extraction")
    assert store.state("w").last_body_sha256 == good
    assert store.count("snapshots") == 2


def test_a_crash_inside_a_check_writes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(store, "before", document=DOC, version_kind="baseline")

    def boom(*_args: object) -> int:
        raise RuntimeError("power cut")

    monkeypatch.setattr(versions_mod, "_insert_version", boom)
    with pytest.raises(RuntimeError):
        record(store, "after", outcome="changed", document=DOC[:1], version_kind="change")
    assert store.count("snapshots") == 1 and store.count("bodies") == 1
    assert store.count("checks") == 1 and store.state("w").last_outcome == "new"


def test_schema_is_versioned_and_reopening_is_idempotent(tmp_path: Path) -> None:
    url = str(tmp_path / "m.db")
    Store.open(url).close()
    again = Store.open(url)
    assert again.schema_version() == schema.SCHEMA_VERSION
    again.close()


def test_an_unversioned_database_gets_the_schema_and_keeps_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('kept')")
    opened = Store.open(str(path))
    assert opened.schema_version() == schema.SCHEMA_VERSION
    opened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT text FROM notes").fetchall() == [("kept",)]
        assert db.execute("SELECT count(*) FROM versions").fetchone() == (0,)


def test_a_schema_1_store_is_upgraded_keeping_its_history(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # a store as the first release of monitor left it
        schema.meta.create(conn)
        schema.MIGRATIONS[0](conn)
        conn.execute(text("ALTER TABLE watch_state DROP COLUMN health_alerted"))  # added in 3
        conn.execute(insert(schema.meta).values(key="schema_version", value="1"))
        conn.execute(
            text("INSERT INTO watch_state (watch_id, consecutive_failures) VALUES ('w', 2)")
        )
        snapshot = snap("old page")
        body = zstandard.ZstdCompressor().compress(snapshot.body)
        conn.execute(
            insert(schema.bodies).values(
                sha256=snapshot.sha256, size=8, codec="zstd", base=None, data=body
            )
        )
        conn.execute(
            insert(schema.snapshots).values(
                watch_id="w",
                url="u",
                final_url="u",
                status=200,
                headers="[]",
                body_sha256=snapshot.sha256,
                encoding="utf-8",
                fetched_at=T0,
                elapsed=0.1,
            )
        )
        conn.execute(text("ALTER TABLE snapshots DROP COLUMN rendered"))  # added in 4
        conn.execute(
            insert(schema.versions).values(
                watch_id="w",
                snapshot_id=1,
                rules_hash="r1",
                doc_hash=document_hash(DOC),
                document=zlib.compress(document_json(DOC).encode()),
                kind="baseline",
                created_at=T0,
            )
        )
    engine.dispose()
    assert not inspect(create_engine(f"sqlite:///{path}")).has_table("findings")

    upgraded = Store.open(str(path))
    assert upgraded.schema_version() == schema.SCHEMA_VERSION == len(schema.MIGRATIONS)
    version = upgraded.latest_version("w")
    assert version is not None and version.document == DOC
    assert upgraded.snapshot(version.snapshot_id).body == b"old page"
    assert upgraded.snapshot(version.snapshot_id).rendered is False
    state = upgraded.state("w")
    assert state.consecutive_failures == 2 and state.health_alerted is False
    finding = Finding(
        "HK",
        "sentence_added",
        "sentence",
        ("Hong Kong",),
        Change("added", "paragraph", after="Hong Kong: 12"),
    )
    rec = CheckRecord(
        "w",
        T0,
        0.1,
        "changed",
        snapshot=snap("new page"),
        rules_hash="r1",
        document=DOC[:1],
        version_kind="change",
        findings=(finding,),
    )
    vid = upgraded.record(rec)
    assert [f.finding for f in upgraded.findings(version_id=vid)] == [finding]
    upgraded.close()


def test_a_newer_store_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "new.db")
    Store.open(url).close()
    with sqlite3.connect(tmp_path / "new.db") as db:
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer than this monitor"):
        Store.open(url)


def test_an_unusable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(str(tmp_path / "garbage.db"))


def test_findings_round_trip_with_cells_and_segments(store: Store) -> None:
    change = Change(
        "modified",
        "row",
        before="Hong Kong | 202",
        after="Hong Kong | 0",
        path_after=("Requests",),
        cells_before=("Hong Kong", "202"),
        cells_after=("Hong Kong", "0"),
        segments=(("=", "Hong Kong | "), ("-", "202"), ("+", "0")),
        index_before=3,
        index_after=3,
    )
    finding = Finding(
        "HK",
        "table_row",
        "row",
        ("Hong Kong",),
        change,
        (CellDelta("Requests", "202", "0", -202.0),),
        "note",
    )
    rec = CheckRecord(
        "w",
        T0,
        0.1,
        "new",
        snapshot=snap("p"),
        rules_hash="r",
        document=DOC,
        version_kind="baseline",
        findings=(finding,),
    )
    store.record(rec)
    assert [f.finding for f in store.findings(watch_id="w")] == [finding]


def test_heartbeat(store: Store) -> None:
    assert store.last_heartbeat() is None
    store.heartbeat(T0)
    assert store.last_heartbeat() == T0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("monitor.db", "sqlite:///"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgresql://u:p@h/db", "postgresql://u:p@h/db"),
    ],
)
def test_database_url(value: str, expected: str) -> None:
    assert database_url(value).startswith(expected)


def test_redact_db_hides_the_password() -> None:
    assert redact_db("postgresql://user:hunter2@db:5432/m") == "postgresql://user:***@db:5432/m"


def test_the_first_body_of_a_watch_reuses_its_sites_template(store: Store) -> None:
    shell = "<html><head>" + "<script>var x = 1;</script>" * 400 + "</head><body>{}</body></html>"
    record(store, shell.format(POLICY))
    other = CheckRecord(
        "w2", T0, 0.1, "new", snapshot=snap(shell.format("Another page.")), rules_hash="r1"
    )
    store.record(other)
    with sqlite3.connect(store.engine.url.database) as db:  # type: ignore[arg-type]
        codecs = [r[0] for r in db.execute("SELECT codec FROM bodies ORDER BY rowid")]
    assert codecs == ["zstd", "zstd-dict"]
    assert (
        store.body(snap(shell.format("Another page.")).sha256)
        == shell.format("Another page.").encode()
    )


def test_a_watch_first_stored_against_its_site_then_keys_on_its_own_body(store: Store) -> None:
    """Its next bodies differ from its own first one by a timestamp, not by a whole text."""
    record(store, PAGE.format("Another page of the site. " * 50, "09:00"))  # the site's keyframe
    first, second = (PAGE.format(POLICY, stamp) for stamp in ("10:00", "11:00"))
    for body in (first, second):
        store.record(CheckRecord("w2", T0, 0.1, "new", snapshot=snap(body), rules_hash="r1"))
    with sqlite3.connect(store.engine.url.database) as db:  # type: ignore[arg-type]
        rows = db.execute("SELECT sha256, codec, base, length(data) FROM bodies ORDER BY rowid")
        site, own, later = rows.fetchall()
    assert own[1:3] == ("zstd-dict", site[0])
    assert later[1:3] == ("zstd-dict", own[0])  # two hops to read, at most
    assert later[3] < 200  # bytes: the timestamp, where the site's page cost kilobytes
    assert store.body(snap(second).sha256) == second.encode()
    assert store.verify() == []


def test_verify_finds_nothing_wrong_in_a_sound_store(store: Store) -> None:
    record(store, PAGE.format(POLICY, 1), document=DOC, version_kind="baseline")
    record(
        store, PAGE.format(POLICY, 2), outcome="changed", document=DOC[:1], version_kind="change"
    )
    assert store.count("bodies") == 2
    assert store.verify() == []


def test_verify_names_a_damaged_body_and_a_version_without_its_alert(
    store: Store, tmp_path: Path
) -> None:
    record(store, PAGE.format(POLICY, 1), document=DOC, version_kind="baseline")
    test_findings_round_trip_with_cells_and_segments(store)  # a version with a finding ...
    with sqlite3.connect(tmp_path / "monitor.db") as db:  # ... and no alert: never written so
        sha = db.execute("SELECT sha256 FROM bodies LIMIT 1").fetchone()[0]
        db.execute("UPDATE bodies SET data = ? WHERE sha256 = ?", (b"garbage", sha))
    problems = store.verify()
    assert any(p.startswith(f"body {sha[:12]}: unreadable") for p in problems), problems
    assert any(p.endswith("findings without their alert") for p in problems), problems


def test_verify_names_a_version_whose_document_is_damaged(store: Store, tmp_path: Path) -> None:
    record(store, PAGE.format(POLICY, 1), document=DOC, version_kind="baseline")
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        db.execute("UPDATE versions SET document = x'00'")
    [problem] = store.verify()
    assert problem.startswith("version 1: cannot be decoded (version 1: its stored document")


def test_a_store_opened_in_a_with_block_is_closed_after_it(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "m.db")) as store:
        assert store.count("bodies") == 0
        assert store.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    assert store.engine.pool.checkedin() == 0  # type: ignore[attr-defined]  (disposed)


def test_opening_to_read_never_creates_a_store(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(MissingStore, match=f"no store at {path}"):
        Store.open(str(path), create=False)
    path.touch()  # an empty file is not a store either, and is left as it was
    with pytest.raises(MissingStore):
        Store.open(str(path), create=False)
    assert path.read_bytes() == b""
    Store.open(str(path)).close()
    with Store.open(str(path), create=False) as store:
        assert store.schema_version() == schema.SCHEMA_VERSION


def test_the_check_log_and_the_ledger_read_back_as_typed_rows(store: Store) -> None:
    record(store, "x", document=DOC, version_kind="baseline")
    store.record(CheckRecord("w", T0, 0.1, Outcome.FAILED, failure_kind="blocked", message="m"))
    failed, new = store.check_log("w")
    assert failed.outcome is Outcome.FAILED and failed.failure_kind is FailureKind.BLOCKED
    assert new.outcome is Outcome.NEW and new.version_id == 1 and new.started_at == T0
    alert = AlertRecord("w", AlertKind.CHANGE, "t", "{}", ("HK",), (("desk", "d1", "label"),))
    store.add_alert(alert, T0)
    [row] = store.alerts()
    assert (row.kind, row.jurisdictions, row.created_at) == (AlertKind.CHANGE, ("HK",), T0)
    [delivery] = row.deliveries
    assert delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at == T0
    store.delivered(delivery.id, T0)
    assert store.alerts(DeliveryStatus.PENDING) == []
    assert store.alerts(DeliveryStatus.SENT)[0].deliveries[0].sent_at == T0


def test_a_missing_timestamp_is_damage_not_now() -> None:
    """NOT NULL columns cannot hold NULL in a sound store; reading one back names the row
    instead of pretending the version was recorded at the moment it was read."""
    row = {
        "id": 7,
        "watch_id": "w",
        "snapshot_id": 1,
        "rules_hash": "r",
        "doc_hash": document_hash(DOC),
        "document": zlib.compress(document_json(DOC).encode()),
        "kind": "baseline",
        "created_at": None,
    }
    with pytest.raises(StoreError, match="version 7 has no timestamp"):
        versions_mod.decode_version(None, row)  # type: ignore[arg-type]


OPEN_AND_REPORT = """
import sys
from monitor.store import Store
with Store.open(sys.argv[1]) as store:
    print(store.schema_version())
"""


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_processes_creating_one_store_at_once_all_get_it_whole(
    tmp_path: Path, attempt: int
) -> None:
    """Two daemons, or `check` beside `run`, started together on a new store."""
    db = tmp_path / f"new-{attempt}.db"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_REPORT, str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [process.communicate(timeout=120) for process in starts]
    failed = [err for (_, err), process in zip(outputs, starts, strict=True) if process.returncode]
    if failed:  # the whole traceback: which statement found the database locked
        pytest.fail("\n".join(failed), pytrace=False)
    assert {out.strip() for out, _ in outputs} == {str(SCHEMA_VERSION)}
    with Store.open(str(db)) as store:
        assert store.verify() == []


def _open_at_once(url: str, openers: int) -> list[str]:
    """What went wrong when `openers` connections open the store at `url` at once."""
    engines = [connect(url, create=True) for _ in range(openers)]
    together = threading.Barrier(openers)
    problems: list[str] = []

    def open_one(engine: Engine) -> None:
        together.wait()
        try:
            with engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                if mode != "wal":
                    problems.append(f"journal mode {mode}")
        except Exception as exc:  # every failure is the test's finding
            problems.append(str(exc).splitlines()[0])
        finally:
            engine.dispose()

    threads = [threading.Thread(target=open_one, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


def test_many_openers_of_a_new_store_all_find_it_in_wal_mode(tmp_path: Path) -> None:
    """Sixteen connections opening one new file at once, a hundred times: SQLite does
    not wait for the switch to WAL (it answered 'database is locked' at once in about
    one start in thirty), so the openers take turns until one has switched it."""
    for attempt in range(100):
        problems = _open_at_once(str(tmp_path / f"new-{attempt}.db"), 16)
        assert problems == [], f"start {attempt}: {problems}"


def test_a_store_that_cannot_be_in_wal_mode_opens_in_the_mode_it_keeps() -> None:
    """SQLite answers a switch it cannot make (an in-memory database, a file system
    without shared memory) with the mode it keeps: that is no lock to wait out."""
    with Store.open("sqlite://") as store:  # it was refused after 10 s of retries
        assert store.schema_version() == SCHEMA_VERSION
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"


def test_versions_are_numbered_per_watch_and_old_stores_are_numbered_on_upgrade(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "m.db")
    with Store.open(url) as store:
        for n, watch in enumerate(("a", "b", "a", "b", "a")):
            rec = CheckRecord(
                watch,
                T0,
                0.1,
                "new",
                snapshot=snap(f"p{n}"),
                rules_hash="r",
                document=DOC,
                version_kind="baseline",
            )
            store.record(rec)
        assert [v.number for v in store.versions("a")] == [1, 2, 3]
        assert [v.number for v in store.versions("b")] == [1, 2]
        assert [v.id for v in store.versions("a")] == [1, 3, 5]
    # A store of schema 4 had no numbers: the migration gives them, in order, per watch.
    engine = create_engine(f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX uq_versions_number"))
        conn.execute(text("UPDATE versions SET number = NULL"))
        schema.MIGRATIONS[4](conn)
    engine.dispose()
    with Store.open(url) as store:
        assert [v.number for v in store.versions("a")] == [1, 2, 3]
        assert [v.number for v in store.versions("b")] == [1, 2]


# --- file modes -----------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277], ids=["000", "022", "277"])
def test_a_new_store_and_its_wal_files_are_private_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    db = tmp_path / "monitor.db"
    previous = os.umask(umask)
    try:
        with Store.open(str(db)) as store:
            store.record(CheckRecord("w", T0, 0.1, Outcome.NEW, snapshot=snap("<p>x</p>")))
            files = [db, tmp_path / "monitor.db-wal", tmp_path / "monitor.db-shm"]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    finally:
        os.umask(previous)
    assert modes == {p.name: 0o600 for p in files}


def test_an_existing_store_others_can_read_is_warned_about_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "monitor.db"
    Store.open(str(db)).close()
    db.chmod(0o644)  # as monitor created stores before, with the usual umask
    with caplog.at_level("WARNING", logger="monitor.store"), Store.open(str(db), create=False):
        pass
    assert f"{db} can be read by other users (mode 0644): chmod 600 {db}" in caplog.text
    assert stat.S_IMODE(db.stat().st_mode) == 0o644
    db.chmod(0o600)
    caplog.clear()
    with caplog.at_level("WARNING", logger="monitor.store"), Store.open(str(db)):
        pass
    assert "can be read by other users" not in caplog.text


def prose(seed: int, words: int) -> list[str]:
    """Sentences of seeded random words: text that compresses as prose does (about 3x)."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)
    ]
    return [" ".join(rng.choices(vocabulary, k=18)).capitalize() + "." for _ in range(words // 18)]


def policy_page(sentences: list[str], stamp: str) -> tuple[str, tuple[Block, ...]]:
    """A 200 KB page (a script bundle, the policy in <main>) and its document."""
    paragraphs = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
    bundle = (
        "<script>" + " ".join(f"var v{i} = {i * 7919 % 10007};" for i in range(4000)) + "</script>"
    )
    main = "".join(f"<p>{p}</p>" for p in paragraphs)
    page = f"<html><head>{bundle}</head><body><main>{main}</main>{stamp}</body></html>"
    return page, tuple(Block("paragraph", p, ("Privacy policy",)) for p in paragraphs)


def stored_document_bytes(store: Store) -> list[int]:
    with sqlite3.connect(store.engine.url.database) as db:  # type: ignore[arg-type]
        return [n for (n,) in db.execute("SELECT length(document) FROM versions ORDER BY id")]


def test_a_versions_text_is_not_stored_twice_beside_the_body_it_was_read_from(
    store: Store,
) -> None:
    """The body holds the document's text: a version costs its structure, a fraction
    of its document compressed alone, and reads back exactly."""
    page, document = policy_page(prose(1, 13_000), "10:00")
    assert len(page) > 150_000
    record(store, page, document=document, version_kind="baseline")
    alone = len(zstandard.ZstdCompressor(level=3).compress(document_json(document).encode()))
    (stored,) = stored_document_bytes(store)
    assert stored < alone / 4, (stored, alone)
    version = store.latest_version("w")
    assert version is not None and version.document_json == document_json(document)
    assert version.document == document and store.verify() == []


def test_a_second_page_of_a_site_is_stored_against_the_first_when_that_is_smaller(
    store: Store,
) -> None:
    """Pages of a site share their template (here an 80 KB script bundle) but not
    their text: the second page's first body is the difference, not a whole page."""
    first, _ = policy_page(prose(1, 13_000), "10:00")
    second, _ = policy_page(prose(2, 13_000), "10:00")
    record(store, first)
    store.record(CheckRecord("w2", T0, 0.1, "new", snapshot=snap(second), rules_hash="r1"))
    with sqlite3.connect(store.engine.url.database) as db:  # type: ignore[arg-type]
        rows = db.execute("SELECT codec, length(data) FROM bodies ORDER BY rowid").fetchall()
    alone = len(zstandard.ZstdCompressor(level=3).compress(second.encode()))
    assert rows[1][0] == "zstd-dict" and rows[1][1] < alone, (rows, alone)
    assert store.body(snap(second).sha256) == second.encode()


@given(
    body=st.binary(min_size=0, max_size=3000),
    texts=st.lists(st.text(min_size=1, max_size=200), min_size=1, max_size=8),
    edits=st.lists(st.binary(max_size=40), min_size=1, max_size=3),
)
@settings(max_examples=25)
def test_bodies_and_documents_read_back_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, texts: list[str], edits: list[bytes]
) -> None:
    """Whatever the bytes: a body stored whole, as a delta of its keyframe or of its
    site's, and a document compressed against its body, read back exactly."""
    path = tmp_path_factory.mktemp("roundtrip") / "monitor.db"
    with Store.open(str(path)) as store:
        bodies, at = [body + e for e in [b"", *edits]], T0
        for i, raw in enumerate(bodies):
            document = tuple(Block("paragraph", t, ("§", t[:3])) for t in texts[: i + 1])
            kind = "baseline" if i == 0 else "change"
            shot = replace(snap(""), body=raw, fetched_at=at)
            rec = CheckRecord(f"w{i % 2}", at, 0.1, "new", snapshot=shot, rules_hash="r")
            store.record(replace(rec, document=document, version_kind=kind))
            assert store.body(shot.sha256) == raw
            version = store.latest_version(f"w{i % 2}")
            assert version is not None and version.document_json == document_json(document)
            assert version.doc_hash == document_hash(document)
            at += timedelta(minutes=1)
        assert store.verify() == []


def test_a_check_is_written_in_a_bounded_number_of_statements(store: Store) -> None:
    """One query reads what the write needs; then one insert a row (and one update of
    the watch's state): the write does not grow with what it looks up."""
    statements: list[str] = []

    def counted(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", counted)
    per_check = []
    for outcome, minute, document in (
        ("new", 0, DOC),
        ("unchanged", 1, None),
        ("changed", 2, DOC[:1]),
    ):
        kind = {"new": "baseline", "changed": "change"}.get(outcome)
        seen = store.load("w")
        statements.clear()
        rec = CheckRecord(
            "w", T0, 0.3, outcome, snapshot=snap(PAGE.format(POLICY, minute)), rules_hash="r1"
        )
        store.record(replace(rec, document=document, version_kind=kind), seen)  # type: ignore[arg-type]
        per_check.append(len(statements))
    event.remove(store.engine, "before_cursor_execute", counted)
    # BEGIN, the read, body, snapshot, (version,) check log, state, COMMIT; + the site's keyframe
    # for the first, + the keyframe's bytes for the others (unless the process has them)
    assert per_check[0] <= 9 and per_check[1] <= 8 and per_check[2] <= 9, per_check
