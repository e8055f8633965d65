"""The store: snapshots, versions, per-watch state and the check log.

SQLite by default (one file, no server) through SQLAlchemy Core, so a PostgreSQL
URL works unchanged. Every write of a check happens in one transaction: a crash at
any point leaves either the whole check or none of it.

Raw bodies are the proof of what a page said, so every one is kept, compressed and
deduplicated by SHA-256. Consecutive bodies of one page differ in a timestamp or a
token, so each body is compressed with zstd against the watch's last *keyframe*
body as a dictionary: an unchanged page costs a few hundred bytes per check. A
watch's first body is compressed against a full body of the same site and is then
the watch's keyframe, so reading any body needs at most two others (no long chains).

The schema is versioned in the `meta` table and migrated forward on open.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zstandard
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.model import (
    AlertRecord,
    CellDelta,
    Change,
    CheckRecord,
    Delivery,
    Finding,
    History,
    RecentVersion,
    Snapshot,
    StoredFinding,
    StoredVersion,
    Validators,
    VersionKind,
    WatchState,
    document_hash,
    document_json,
    finding_data,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

bodies = Table(
    "bodies",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("codec", String(16), nullable=False),  # "zstd" or "zstd-dict"
    Column("base", String(64), ForeignKey("bodies.sha256"), nullable=True),
    Column("data", LargeBinary, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("watch_id", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("final_url", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("headers", Text, nullable=False),  # JSON list of [name, value]
    Column("body_sha256", String(64), ForeignKey("bodies.sha256"), nullable=False),
    Column("encoding", String(40), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("elapsed", Float, nullable=False),
    Index("ix_snapshots_watch", "watch_id", "id"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("watch_id", String(100), nullable=False),
    Column("snapshot_id", Integer, ForeignKey("snapshots.id"), nullable=False),
    Column("rules_hash", String(32), nullable=False),
    Column("doc_hash", String(64), nullable=False),
    Column("document", LargeBinary, nullable=False),  # zstd-compressed canonical JSON
    Column("kind", String(16), nullable=False),  # baseline | change | technical
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_versions_watch", "watch_id", "id"),
)

watch_state = Table(
    "watch_state",
    metadata,
    Column("watch_id", String(100), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_full_fetch", DateTime(timezone=True)),
    Column("last_body_sha256", String(64)),
    Column("keyframe_sha256", String(64)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_outcome", String(16)),
    Column("last_error", Text),
    Column("last_check_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("health_alerted", Boolean, nullable=False, default=False),
)

checks = Table(
    "checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("watch_id", String(100), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("elapsed", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("failure_kind", String(16)),
    Column("message", Text),
    Column("snapshot_id", Integer, ForeignKey("snapshots.id")),
    Column("version_id", Integer, ForeignKey("versions.id")),
    Column("technical", Boolean, nullable=False, default=False),
    Index("ix_checks_watch", "watch_id", "id"),
)


findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("watch_id", String(100), nullable=False),
    Column("jurisdiction", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", Text, nullable=False),  # JSON: where, terms, change, cells, note
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_findings_watch", "watch_id", "id"),
    Index("ix_findings_version", "version_id"),
)


alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("watch_id", String(100), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("kind", String(16), nullable=False),  # change | health
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),  # JSON: the structured message, every format
    Column("jurisdictions", Text, nullable=False),  # JSON list
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_alerts_watch", "watch_id", "id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("alerts.id"), nullable=False),
    Column("route", String(100), nullable=False),
    Column("destination", String(64), nullable=False),  # SHA-256 of the URL: no secret stored
    Column("label", Text, nullable=False),  # the redacted URL, for people
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("alert_id", "route", "destination", name="uq_delivery"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
)


def _migrate_1(conn: Connection) -> None:
    """Schema 1: bodies, snapshots, versions, per-watch state and the check log."""
    for table in (bodies, snapshots, versions, watch_state, checks):
        table.create(conn)


def _migrate_2(conn: Connection) -> None:
    """Schema 2: findings, stored with the version that produced them."""
    findings.create(conn)


def _migrate_3(conn: Connection) -> None:
    """Schema 3: the alert and delivery ledger; health alerts remembered per watch."""
    alerts.create(conn)
    deliveries.create(conn)
    columns = {c["name"] for c in inspect(conn).get_columns("watch_state")}
    if "health_alerted" not in columns:  # schema 1 created watch_state without it
        conn.execute(
            text("ALTER TABLE watch_state ADD COLUMN health_alerted BOOLEAN NOT NULL DEFAULT FALSE")
        )


MIGRATIONS: Sequence[Callable[[Connection], None]] = (_migrate_1, _migrate_2, _migrate_3)
SCHEMA_VERSION = len(MIGRATIONS)
KEYFRAME_RATIO = 0.5  # a delta larger than this share of a full encoding starts a new keyframe
DELTA_SHARE = 0.05  # a delta this small (share of the raw body) is kept without comparing
LEVEL = 3  # zstd level: 4x faster than 10 for ~10 % more bytes; deltas make the rest
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def database_url(value: str) -> str:
    """Accept a SQLAlchemy URL, or a plain path meaning a SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    """The monitor's persistent memory. Open with `Store.open(url)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, create or migrate the schema, and return a ready store."""
        try:
            engine = create_engine(database_url(url))
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            store = cls(engine)
            store.migrate()
        except (SQLAlchemyError, StoreError) as exc:
            raise StoreError(f"cannot open the store {redact_db(url)}: {_reason(exc)}") from exc
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(_reason(exc)) from exc

    # --- schema ---------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._tx() as conn:
            meta.create(conn, checkfirst=True)
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            value = row.scalar()
        return int(value) if value is not None else 0

    def migrate(self) -> None:
        """Apply every migration newer than the store, each in its own transaction."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {current}, newer than this monitor "
                f"({SCHEMA_VERSION}); upgrade monitor"
            )
        for number in range(current + 1, SCHEMA_VERSION + 1):
            with self._tx() as conn:
                MIGRATIONS[number - 1](conn)
                _set_meta(conn, "schema_version", str(number))

    # --- reads ----------------------------------------------------------------------

    def load(
        self,
        watch_id: str,
        wants_raw: Callable[[StoredVersion, WatchState], bool],
        *,
        recent: int = 10,
    ) -> History:
        """Everything a check compares a response with, read in one transaction.

        The latest version's raw body is read (and decompressed) only when
        `wants_raw` says the check may need it: most checks never do.
        """
        with self._tx() as conn:
            state = _read_state(conn, watch_id)
            known = [
                RecentVersion(r.id, r.doc_hash, VersionKind(r.kind))
                for r in conn.execute(_recent_query(watch_id, recent))
            ]
            if not known:
                return History(state)
            latest = _read_version(conn, known[0].id)
            raw = _read_snapshot(conn, latest.snapshot_id) if wants_raw(latest, state) else None
            sha = conn.execute(
                select(snapshots.c.body_sha256).where(snapshots.c.id == latest.snapshot_id)
            ).scalar()
        return History(state, latest, sha, tuple(known), raw)

    def state(self, watch_id: str) -> WatchState:
        with self._tx() as conn:
            return _read_state(conn, watch_id)

    def states(self) -> list[WatchState]:
        """Every watch's state in one query (for metrics: one scrape, one read)."""
        with self._tx() as conn:
            return [_state(r._mapping) for r in conn.execute(select(watch_state))]

    def latest_version(self, watch_id: str) -> StoredVersion | None:
        query = (
            select(versions)
            .where(versions.c.watch_id == watch_id)
            .order_by(versions.c.id.desc())
            .limit(1)
        )
        with self._tx() as conn:
            row = conn.execute(query).first()
        return _version(row._mapping) if row is not None else None

    def versions(self, watch_id: str) -> list[StoredVersion]:
        query = select(versions).where(versions.c.watch_id == watch_id).order_by(versions.c.id)
        with self._tx() as conn:
            return [_version(r._mapping) for r in conn.execute(query)]

    def version(self, version_id: int) -> StoredVersion:
        with self._tx() as conn:
            return _read_version(conn, version_id)

    def findings(
        self, *, watch_id: str | None = None, version_id: int | None = None, limit: int = 1000
    ) -> list[StoredFinding]:
        query = select(findings).order_by(findings.c.id).limit(limit)
        if watch_id is not None:
            query = query.where(findings.c.watch_id == watch_id)
        if version_id is not None:
            query = query.where(findings.c.version_id == version_id)
        with self._tx() as conn:
            return [_finding(r._mapping) for r in conn.execute(query)]

    def snapshot(self, snapshot_id: int) -> Snapshot:
        """A stored snapshot with its exact raw body, as the proof of what was served."""
        with self._tx() as conn:
            return _read_snapshot(conn, snapshot_id)

    def snapshot_sha(self, snapshot_id: int) -> str | None:
        """The SHA-256 of a snapshot's body: the proof an alert cites."""
        query = select(snapshots.c.body_sha256).where(snapshots.c.id == snapshot_id)
        with self._tx() as conn:
            value = conn.execute(query).scalar()
        return str(value) if value is not None else None

    def body(self, sha256: str) -> bytes:
        with self._tx() as conn:
            return _read_body(conn, sha256)

    def check_log(self, watch_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = select(checks).order_by(checks.c.id.desc()).limit(limit)
        if watch_id is not None:
            query = query.where(checks.c.watch_id == watch_id)
        with self._tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def count(self, table: str) -> int:
        with self._tx() as conn:
            value = conn.execute(select(func.count()).select_from(metadata.tables[table])).scalar()
        return int(value or 0)

    def verify(self) -> list[str]:
        """Every problem found in the store, or none: after a crash, a restore or a
        full disk, this says whether anything was left half-written or unreadable.

        It runs the database's own check (SQLite), reads every body back and hashes
        it, decodes every version, and checks that every version with findings has
        the alert that was written with it.
        """
        with self._tx() as conn:
            problems = _database_problems(conn)
            for (sha,) in conn.execute(select(bodies.c.sha256)):
                problems += _body_problems(conn, sha)
            for row in conn.execute(select(versions)):
                try:
                    _version(row._mapping).document  # noqa: B018  (decoding is the check)
                except (ValueError, zstandard.ZstdError) as exc:
                    problems.append(f"version {row.id}: cannot be decoded ({exc})")
            alerted = select(alerts.c.version_id).where(alerts.c.version_id.is_not(None))
            orphans = select(findings.c.version_id).where(findings.c.version_id.not_in(alerted))
            problems += [
                f"version {vid}: findings without their alert"
                for (vid,) in conn.execute(orphans.distinct())
            ]
        return problems

    # --- writes ---------------------------------------------------------------------

    def record(self, rec: CheckRecord) -> int | None:
        """Write one check (snapshot, version, state, log) atomically; return the version id."""
        with self._tx() as conn:
            prior = self._state_row(conn, rec.watch_id)
            snapshot_id, keyframe = None, prior.get("keyframe_sha256")
            if rec.snapshot is not None:
                snapshot_id, keyframe = _insert_snapshot(conn, rec.watch_id, rec.snapshot, keyframe)
            version_id = None
            if rec.document is not None and rec.version_kind is not None:
                if snapshot_id is None:
                    raise StoreError("a version needs the snapshot it was extracted from")
                version_id = _insert_version(conn, rec, snapshot_id)
                _insert_findings(conn, rec, version_id)
            for alert in rec.alerts:
                insert_alert(conn, alert, version_id, rec.started_at)
            conn.execute(
                insert(checks).values(
                    watch_id=rec.watch_id,
                    started_at=rec.started_at,
                    elapsed=rec.elapsed,
                    outcome=rec.outcome,
                    failure_kind=rec.failure_kind,
                    message=rec.message or rec.note,
                    snapshot_id=snapshot_id,
                    version_id=version_id,
                    technical=rec.technical,
                )
            )
            self._update_state(conn, rec, prior, keyframe)
        return version_id

    def _state_row(self, conn: Connection, watch_id: str) -> dict[str, Any]:
        row = conn.execute(select(watch_state).where(watch_state.c.watch_id == watch_id)).first()
        if row is None:
            conn.execute(insert(watch_state).values(watch_id=watch_id, consecutive_failures=0))
            return {"consecutive_failures": 0}
        return dict(row._mapping)

    def _update_state(
        self, conn: Connection, rec: CheckRecord, prior: dict[str, Any], keyframe: str | None
    ) -> None:
        values: dict[str, Any] = {
            "last_outcome": rec.outcome,
            "last_check_at": rec.started_at,
            "keyframe_sha256": keyframe,
        }
        if rec.outcome == "failed":
            values["consecutive_failures"] = prior["consecutive_failures"] + int(rec.counted)
            values["last_error"] = rec.message
        else:
            values["consecutive_failures"] = 0
            values["last_error"] = None
            values["last_success_at"] = rec.started_at
        if rec.snapshot is not None and rec.outcome != "failed":
            values["last_body_sha256"] = rec.snapshot.sha256
        if rec.validators is not None:
            values["etag"] = rec.validators.etag
            values["last_modified"] = rec.validators.last_modified
        if rec.full_fetch:
            values["last_full_fetch"] = rec.started_at
        if rec.health_alerted is not None:
            values["health_alerted"] = rec.health_alerted
        conn.execute(
            update(watch_state).where(watch_state.c.watch_id == rec.watch_id).values(**values)
        )

    # --- the alert and delivery ledger ---------------------------------------------

    def add_alert(self, alert: AlertRecord, now: datetime) -> int:
        """Write an alert that no check produced (e.g. a delivery that gave up)."""
        with self._tx() as conn:
            return insert_alert(conn, alert, None, now)

    def due_deliveries(self, now: datetime | None, limit: int = 100) -> list[Delivery]:
        """Pending deliveries due by `now`; with None, every pending one."""
        query = (
            select(
                deliveries,
                alerts.c.watch_id,
                alerts.c.title,
                alerts.c.message,
            )
            .join(alerts, alerts.c.id == deliveries.c.alert_id)
            .where(deliveries.c.status == "pending")
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
        )
        if now is not None:
            query = query.where(deliveries.c.next_attempt_at <= now)
        with self._tx() as conn:
            return [_delivery(r._mapping) for r in conn.execute(query)]

    def next_due(self) -> datetime | None:
        query = select(func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.status == "pending"
        )
        with self._tx() as conn:
            return _utc(conn.execute(query).scalar())

    def delivered(self, delivery_id: int, now: datetime) -> None:
        self._set_delivery(
            delivery_id,
            status="sent",
            sent_at=now,
            last_error=None,
            attempts=deliveries.c.attempts + 1,
        )

    def retry_later(self, delivery_id: int, error: str, at: datetime) -> None:
        self._set_delivery(
            delivery_id, next_attempt_at=at, last_error=error, attempts=deliveries.c.attempts + 1
        )

    def give_up(self, delivery_id: int, error: str) -> None:
        self._set_delivery(
            delivery_id, status="failed", last_error=error, attempts=deliveries.c.attempts + 1
        )

    def _set_delivery(self, delivery_id: int, **values: Any) -> None:
        with self._tx() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))

    def delivery_counts(self) -> dict[str, int]:
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        with self._tx() as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}

    def alerts(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest alerts with their deliveries; `status` keeps alerts with such a delivery."""
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if status is not None:
            having = select(deliveries.c.alert_id).where(deliveries.c.status == status)
            query = query.where(alerts.c.id.in_(having))
        with self._tx() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            for row in rows:
                found = conn.execute(
                    select(deliveries)
                    .where(deliveries.c.alert_id == row["id"])
                    .order_by(deliveries.c.id)
                )
                row["deliveries"] = [dict(d._mapping) for d in found]
        return rows

    def heartbeat(self, now: datetime) -> None:
        """Record that a daemon is alive; `monitor health` reads it."""
        with self._tx() as conn:
            _set_meta(conn, "heartbeat", now.astimezone(UTC).isoformat())

    def clear_heartbeat(self) -> None:
        with self._tx() as conn:
            conn.execute(meta.delete().where(meta.c.key == "heartbeat"))

    def last_heartbeat(self) -> datetime | None:
        with self._tx() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "heartbeat")).scalar()
        return datetime.fromisoformat(row) if row else None


# --- helpers --------------------------------------------------------------------------


def _read_state(conn: Connection, watch_id: str) -> WatchState:
    row = conn.execute(select(watch_state).where(watch_state.c.watch_id == watch_id)).first()
    return _state(row._mapping) if row is not None else WatchState(watch_id)


def _recent_query(watch_id: str, limit: int) -> Select[tuple[int, str, str]]:
    """The newest versions' identities, newest first: for revert detection."""
    return (
        select(versions.c.id, versions.c.doc_hash, versions.c.kind)
        .where(versions.c.watch_id == watch_id)
        .order_by(versions.c.id.desc())
        .limit(limit)
    )


def _read_version(conn: Connection, version_id: int) -> StoredVersion:
    row = conn.execute(select(versions).where(versions.c.id == version_id)).first()
    if row is None:
        raise StoreError(f"no version {version_id}")
    return _version(row._mapping)


def _read_snapshot(conn: Connection, snapshot_id: int) -> Snapshot:
    row = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).first()
    if row is None:
        raise StoreError(f"no snapshot {snapshot_id}")
    m = row._mapping
    body = _read_body(conn, m["body_sha256"])
    return Snapshot(
        url=m["url"],
        final_url=m["final_url"],
        status=m["status"],
        headers=tuple((k, v) for k, v in json.loads(m["headers"])),
        body=body,
        encoding=m["encoding"],
        fetched_at=_utc(m["fetched_at"]) or datetime.now(UTC),
        elapsed=m["elapsed"],
    )


def _set_meta(conn: Connection, key: str, value: str) -> None:
    done = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
    if done.rowcount == 0:
        conn.execute(insert(meta).values(key=key, value=value))


def _state(m: Any) -> WatchState:
    return WatchState(
        watch_id=m["watch_id"],
        validators=Validators(m["etag"], m["last_modified"]),
        last_full_fetch=_utc(m["last_full_fetch"]),
        last_body_sha256=m["last_body_sha256"],
        keyframe_sha256=m["keyframe_sha256"],
        consecutive_failures=m["consecutive_failures"],
        last_outcome=m["last_outcome"],
        last_error=m["last_error"],
        last_check_at=_utc(m["last_check_at"]),
        last_success_at=_utc(m["last_success_at"]),
        health_alerted=bool(m["health_alerted"]),
    )


def _get_meta(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
    return str(value) if value is not None else None


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite returns naive datetimes; we only write UTC


def _pack(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL).compress(data)


def _unpack(blob: bytes) -> bytes:
    """zstd frames (current), or zlib (versions written by schema 1 and 2)."""
    if blob[:4] == _ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompress(blob)
    return zlib.decompress(blob)


def _version(m: Any) -> StoredVersion:
    return StoredVersion(
        id=m["id"],
        watch_id=m["watch_id"],
        snapshot_id=m["snapshot_id"],
        rules_hash=m["rules_hash"],
        doc_hash=m["doc_hash"],
        document_json=_unpack(m["document"]).decode(),
        kind=VersionKind(m["kind"]),
        created_at=_utc(m["created_at"]) or datetime.now(UTC),
    )


def _insert_version(conn: Connection, rec: CheckRecord, snapshot_id: int) -> int:
    assert rec.document is not None and rec.version_kind is not None
    result = conn.execute(
        insert(versions).values(
            watch_id=rec.watch_id,
            snapshot_id=snapshot_id,
            rules_hash=rec.rules_hash,
            doc_hash=document_hash(rec.document),
            document=_pack(document_json(rec.document).encode()),
            kind=rec.version_kind,
            created_at=rec.started_at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def insert_alert(
    conn: Connection, alert: AlertRecord, version_id: int | None, now: datetime
) -> int:
    result = conn.execute(
        insert(alerts).values(
            watch_id=alert.watch_id,
            version_id=version_id,
            kind=alert.kind,
            title=alert.title,
            message=alert.message,
            jurisdictions=json.dumps(list(alert.jurisdictions)),
            created_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    alert_id = int(key[0])
    rows = [
        {
            "alert_id": alert_id,
            "route": route,
            "destination": dest,
            "label": label,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for route, dest, label in dict.fromkeys(alert.destinations)
    ]
    if rows:
        conn.execute(insert(deliveries), rows)
    return alert_id


def _delivery(m: Any) -> Delivery:
    return Delivery(
        id=m["id"],
        alert_id=m["alert_id"],
        watch_id=m["watch_id"],
        route=m["route"],
        destination=m["destination"],
        label=m["label"],
        attempts=m["attempts"],
        created_at=_utc(m["created_at"]) or datetime.now(UTC),
        title=m["title"],
        message=m["message"],
    )


def _insert_findings(conn: Connection, rec: CheckRecord, version_id: int) -> None:
    rows = [
        {
            "version_id": version_id,
            "watch_id": rec.watch_id,
            "jurisdiction": f.jurisdiction,
            "kind": f.kind,
            "data": json.dumps(finding_data(f), ensure_ascii=False),
            "created_at": rec.started_at,
        }
        for f in rec.findings
    ]
    if rows:
        conn.execute(insert(findings), rows)


def _finding(row: Any) -> StoredFinding:
    data = json.loads(row["data"])
    change = data.get("change")
    finding = Finding(
        jurisdiction=row["jurisdiction"],
        kind=row["kind"],
        where=data["where"],
        terms=tuple(data["terms"]),
        change=_change(change) if change else None,
        cells=tuple(CellDelta(**c) for c in data.get("cells", [])),
        note=data.get("note", ""),
    )
    return StoredFinding(row["id"], row["version_id"], row["watch_id"], finding)


def _change(data: dict[str, Any]) -> Change:
    tuples = ("path_before", "path_after", "cells_before", "cells_after")
    fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
    fields["segments"] = tuple((op, text) for op, text in data.get("segments", []))
    return Change(**fields)


def _insert_snapshot(
    conn: Connection, watch_id: str, snap: Snapshot, keyframe: str | None
) -> tuple[int, str | None]:
    keyframe = _store_body(conn, snap, keyframe)
    result = conn.execute(
        insert(snapshots).values(
            watch_id=watch_id,
            url=snap.url,
            final_url=snap.final_url,
            status=snap.status,
            headers=json.dumps([list(h) for h in snap.headers]),
            body_sha256=snap.sha256,
            encoding=snap.encoding,
            fetched_at=snap.fetched_at,
            elapsed=snap.elapsed,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0]), keyframe


def _store_body(conn: Connection, snap: Snapshot, keyframe: str | None) -> str | None:
    """Store a body once, compressed against a keyframe: the watch's own, or for its
    first body the latest of the same site (pages of a site share their template).
    Return the keyframe the watch keeps: a first body stored against its site's
    becomes the watch's own, since its next bodies differ from it by a timestamp and
    from the other page by a whole text (140 bytes against 10 KB a check)."""
    body, sha = snap.body, snap.sha256
    exists = conn.execute(select(bodies.c.sha256).where(bodies.c.sha256 == sha)).first()
    if exists is not None:
        return keyframe
    site = "keyframe:" + (urlsplit(snap.final_url).hostname or "")
    base_sha = keyframe or _get_meta(conn, site)
    if base_sha is not None:
        delta = _compressor(_read_body(conn, base_sha)).compress(body)
        good = len(delta) <= DELTA_SHARE * len(body)
        if good or len(delta) <= KEYFRAME_RATIO * len(_pack(body)):
            _insert_body(conn, sha, body, "zstd-dict", base_sha, delta)
            return keyframe or sha
    _insert_body(conn, sha, body, "zstd", None, _pack(body))
    _set_meta(conn, site, sha)
    return sha


def _insert_body(
    conn: Connection, sha: str, body: bytes, codec: str, base: str | None, data: bytes
) -> None:
    conn.execute(
        insert(bodies).values(sha256=sha, size=len(body), codec=codec, base=base, data=data)
    )


def _compressor(base: bytes) -> zstandard.ZstdCompressor:
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary)


def _read_body(conn: Connection, sha: str) -> bytes:
    row = conn.execute(select(bodies).where(bodies.c.sha256 == sha)).first()
    if row is None:
        raise StoreError(f"missing body {sha}")
    m = row._mapping
    if m["codec"] == "zstd":
        return zstandard.ZstdDecompressor().decompress(m["data"])
    base = _read_body(conn, m["base"])
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(m["data"])


def _database_problems(conn: Connection) -> list[str]:
    if conn.dialect.name != "sqlite":
        return []  # PostgreSQL checks its pages itself (amcheck is an extension)
    found = [f"sqlite: {r}" for (r,) in conn.exec_driver_sql("PRAGMA integrity_check")]
    keys = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    return [p for p in found if p != "sqlite: ok"] + [f"foreign key: {k}" for k in keys]


def _body_problems(conn: Connection, sha: str) -> list[str]:
    try:
        data = _read_body(conn, sha)
    except (StoreError, zstandard.ZstdError) as exc:
        return [f"body {sha[:12]}: unreadable ({exc})"]
    if hashlib.sha256(data).hexdigest() != sha:
        return [f"body {sha[:12]}: its content does not match its hash"]
    return []


def _reason(exc: Exception) -> str:
    """The driver's own message, without SQLAlchemy's statement dump and links."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def redact_db(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
