"""The store: snapshots, versions, findings, the alert ledger and the check log.

SQLite by default (one file, no server) through SQLAlchemy Core, so a PostgreSQL
URL works unchanged. Every write of a check happens in one transaction: a crash at
any point leaves either the whole check or none of it.

`Store` is the one object the rest of monitor holds: it owns the engine and the
transactions, and each method runs one function of the module that owns the concern:

    schema.py      tables, migrations, the `meta` table, timestamp contracts
    connection.py  URLs, engines, read-only opening, SQLAlchemy errors → StoreError
    bodies.py      raw bodies: zstd, deduplicated, delta-encoded against keyframes
    versions.py    `record` (the write of a check) and what checks leave behind:
                   snapshots, versions, findings, per-watch state, the check log
    ledger.py      alerts and their deliveries (pending → sent | failed)
    heartbeat.py   the daemon's heartbeat
    verify.py      `monitor verify`: is anything damaged?
    evidence.py    what `monitor export` reads, one body at a time
    retention.py   `monitor prune`: what is past `defaults.keep`, never what alerts cite
    turns.py       what one process at a time may do (deliver), released if it dies

Those functions take an open `Connection`, so a method that needs several reads
(or a read and a write) can run them in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.model import (
    AlertRecord,
    CheckRecord,
    Delivery,
    DeliveryStatus,
    History,
    Snapshot,
    StoredFinding,
    StoredVersion,
    WatchState,
)
from monitor.store import bodies, heartbeat, ledger, schema, versions
from monitor.store.connection import MissingStore, connect, database_url, reason, redact_db
from monitor.store.ledger import AlertRow, DeliveryRow, insert_alert
from monitor.store.schema import SCHEMA_VERSION
from monitor.store.turns import Turn
from monitor.store.versions import CheckLogEntry

if TYPE_CHECKING:  # imported by the methods that use them: a check never loads them
    from monitor.store.evidence import SnapshotRef, VersionRef
    from monitor.store.retention import Pruned

__all__ = [
    "SCHEMA_VERSION",
    "AlertRow",
    "CheckLogEntry",
    "DeliveryRow",
    "MissingStore",
    "Store",
    "Turn",
    "database_url",
    "insert_alert",
    "redact_db",
]


class Store:
    """The monitor's persistent memory. Open with `with Store.open(url) as store:`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._destination_key: bytes | None = None

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Connect, create or migrate the schema, and return a ready store.

        With `create=False` (commands that only read) a store that does not exist yet
        is a StoreError and nothing is created; an older store is still migrated."""
        try:
            store = cls(connect(url, create=create))
            store._prepare(url, create=create)
        except MissingStore:
            raise
        except (SQLAlchemyError, StoreError) as exc:
            raise StoreError(f"cannot open the store {redact_db(url)}: {reason(exc)}") from exc
        return store

    def _prepare(self, url: str, *, create: bool) -> None:
        try:
            if not create and self.schema_version() == 0:
                raise MissingStore(url)
            self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(reason(exc)) from exc

    # --- schema (schema.py) ---------------------------------------------------------

    def schema_version(self) -> int:
        with self._tx() as conn:
            return schema.stored_version(conn)

    def migrate(self) -> None:
        """Bring the store to this monitor's schema, in one transaction.

        Several processes may open a new or older store at once (two daemons on one
        PostgreSQL store, `monitor check` beside `monitor run`): the migration takes
        the database's write lock first and reads the version again under it, so one
        process migrates and the others find the work done.
        """
        if not schema.pending_migrations(self.schema_version()):
            return
        try:
            with schema.migration_lock(self.engine) as conn:
                for number in schema.pending_migrations(schema.stored_version(conn)):
                    schema.apply_migration(conn, number)
        except SQLAlchemyError as exc:
            raise StoreError(reason(exc)) from exc

    def destination_key(self) -> bytes:
        """The store's random key of destination ids (`model.destination_id`), made by
        its migration: it never leaves the store, and no watchlist derives it."""
        if self._destination_key is None:
            with self._tx() as conn:
                value = schema.get_meta(conn, schema.DESTINATION_KEY)
            if value is None:
                raise StoreError("the store has no destination key: it was not migrated")
            self._destination_key = bytes.fromhex(value)
        return self._destination_key

    # --- checks: versions, snapshots, findings, state, log (versions.py) ------------

    def record(self, rec: CheckRecord, seen: History | None = None) -> int | None:
        """Write one check (snapshot, version, state, log) atomically; return the version id.

        One writer per watch: the write holds the watch's lock (SQLite `BEGIN
        IMMEDIATE`, a PostgreSQL advisory lock per watch) and, given the `History` the
        check was evaluated against, first reads the watch again under it. When
        another process recorded the watch since (`monitor check` beside `monitor
        run`), nothing is written and `Conflict` is raised: the caller evaluates the
        response again against the history as it is now.
        """
        try:
            with schema.watch_lock(self.engine, rec.watch_id) as conn:
                return versions.record(conn, rec, seen)
        except SQLAlchemyError as exc:
            raise StoreError(reason(exc)) from exc

    def load(self, watch_id: str, *, recent: int = 10) -> History:
        """What a check knows of a watch before it reads a response, in one
        transaction: its state (validators, failures), its latest version without
        the document, and its `recent` versions' hashes (for reverts)."""
        with self._tx() as conn:
            return versions.load(conn, watch_id, recent)

    def complete(self, history: History, *, document: bool, raw: bool) -> History:
        """`history` with the latest version's document and/or the raw body it came
        from, for a response that may need them (`pipeline.needs`): most checks (a
        304, the same bytes) never do."""
        with self._tx() as conn:
            return versions.complete(conn, history, document=document, raw=raw)

    def state(self, watch_id: str) -> WatchState:
        with self._tx() as conn:
            return versions.state(conn, watch_id)

    def states(self) -> list[WatchState]:
        """Every watch's state in one query (for metrics: one scrape, one read)."""
        with self._tx() as conn:
            return versions.states(conn)

    def latest_version(self, watch_id: str) -> StoredVersion | None:
        with self._tx() as conn:
            return versions.latest_version(conn, watch_id)

    def versions(self, watch_id: str) -> list[StoredVersion]:
        with self._tx() as conn:
            return versions.all_versions(conn, watch_id)

    def version(self, version_id: int) -> StoredVersion:
        with self._tx() as conn:
            return versions.version(conn, version_id)

    def findings(
        self, *, watch_id: str | None = None, version_id: int | None = None, limit: int = 1000
    ) -> list[StoredFinding]:
        with self._tx() as conn:
            return versions.stored_findings(
                conn, watch_id=watch_id, version_id=version_id, limit=limit
            )

    def newest_findings(self) -> dict[str, tuple[StoredFinding, datetime]]:
        """Each watch's newest finding with its version's time, in one query."""
        with self._tx() as conn:
            return versions.newest_findings(conn)

    def snapshot(self, snapshot_id: int) -> Snapshot:
        """A stored snapshot with its exact raw body, as the proof of what was served."""
        with self._tx() as conn:
            return versions.snapshot(conn, snapshot_id)

    def snapshot_sha(self, snapshot_id: int) -> str | None:
        """The SHA-256 of a snapshot's body: the proof an alert cites."""
        with self._tx() as conn:
            return versions.snapshot_sha(conn, snapshot_id)

    def check_log(self, watch_id: str | None = None, limit: int = 100) -> list[CheckLogEntry]:
        with self._tx() as conn:
            return versions.check_log(conn, watch_id, limit)

    # --- raw bodies (bodies.py) -----------------------------------------------------

    def body(self, sha256: str) -> bytes:
        with self._tx() as conn:
            return bodies.read_body(conn, sha256)

    # --- the alert and delivery ledger (ledger.py) ----------------------------------

    def add_alert(self, alert: AlertRecord, now: datetime) -> int:
        """Write an alert that no check produced (e.g. a delivery that gave up)."""
        with self._tx() as conn:
            return ledger.insert_alert(conn, alert, (None, None), now)

    def due_deliveries(self, now: datetime | None, limit: int = 100) -> list[Delivery]:
        """Pending deliveries due by `now`; with None, every pending one."""
        with self._tx() as conn:
            return ledger.due_deliveries(conn, now, limit)

    def next_due(self) -> datetime | None:
        with self._tx() as conn:
            return ledger.next_due(conn)

    def turn(self, name: str) -> Turn:
        """One process at a time: of a daemon and a `monitor check` beside it, one
        delivers the ledger while the other waits its turn (see turns.py)."""
        return Turn(self.engine, name)

    def delivered(self, delivery_id: int, now: datetime) -> None:
        with self._tx() as conn:
            ledger.delivered(conn, delivery_id, now)

    def retry_later(
        self, delivery_id: int, error: str, at: datetime, *, parts_sent: int = 0
    ) -> None:
        """Try a delivery again at `at`, from the part after the `parts_sent` the
        service has accepted so far."""
        with self._tx() as conn:
            ledger.retry_later(conn, delivery_id, error, at, parts_sent)

    def give_up(self, delivery_id: int, error: str) -> None:
        with self._tx() as conn:
            ledger.give_up(conn, delivery_id, error)

    def delivery_counts(self) -> dict[str, int]:
        with self._tx() as conn:
            return ledger.delivery_counts(conn)

    def alerts(
        self,
        status: DeliveryStatus | str | None = None,
        limit: int = 50,
        *,
        watch_id: str | None = None,
    ) -> list[AlertRow]:
        """Newest alerts with their deliveries; `status` keeps alerts with such a
        delivery, `watch_id` one watch's."""
        with self._tx() as conn:
            return ledger.alert_rows(conn, status, limit, watch_id)

    # --- heartbeat (heartbeat.py) ---------------------------------------------------

    def heartbeat(self, now: datetime) -> None:
        """Record that a daemon is alive; `monitor health` reads it."""
        with self._tx() as conn:
            heartbeat.beat(conn, now)

    def clear_heartbeat(self) -> None:
        with self._tx() as conn:
            heartbeat.clear(conn)

    def last_heartbeat(self) -> datetime | None:
        with self._tx() as conn:
            return heartbeat.last(conn)

    # --- retention (retention.py) -----------------------------------------------------

    def prune(
        self, versions_before: datetime | None, raw_before: datetime | None, *, dry_run: bool
    ) -> Pruned:
        """Remove versions and raw bodies past retention, in one transaction under the
        store's write lock; a dry run rolls it back and says what it would remove."""
        from monitor.store import retention

        try:
            with schema.migration_lock(self.engine) as conn:
                pruned = retention.prune(conn, versions_before, raw_before)
                if dry_run:
                    raise _DryRun(pruned)
        except _DryRun as done:
            return done.pruned
        except SQLAlchemyError as exc:
            raise StoreError(reason(exc)) from exc
        return pruned

    # --- verify (verify.py) ---------------------------------------------------------

    def count(self, table: str) -> int:
        from monitor.store import verify

        with self._tx() as conn:
            return verify.count(conn, table)

    def verify(self) -> list[str]:
        """Every problem found in the store, or none (see verify.py for what is checked)."""
        from monitor.store import verify

        with self._tx() as conn:
            return verify.verify(conn)

    # --- evidence export (evidence.py) ----------------------------------------------

    def snapshot_refs(self, watch_id: str) -> list[SnapshotRef]:
        """A watch's snapshots without their bodies, oldest first (`snapshot` reads one)."""
        from monitor.store import evidence

        with self._tx() as conn:
            return evidence.snapshot_refs(conn, watch_id)

    def version_refs(self, watch_id: str) -> list[VersionRef]:
        """A watch's versions without their documents, oldest first (`version` reads one)."""
        from monitor.store import evidence

        with self._tx() as conn:
            return evidence.version_refs(conn, watch_id)

    def alert(self, alert_id: int) -> AlertRow:
        from monitor.store import evidence

        with self._tx() as conn:
            return evidence.alert(conn, alert_id)

    def version_alerts(self, version_id: int) -> list[AlertRow]:
        from monitor.store import evidence

        with self._tx() as conn:
            return evidence.version_alerts(conn, version_id)


class _DryRun(Exception):
    """Rolls back a prune that was only asked what it would remove."""

    def __init__(self, pruned: Pruned) -> None:
        super().__init__("dry run")
        self.pruned = pruned
