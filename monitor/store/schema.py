"""The store's tables, their migrations, and the `meta` key-value table.

The schema is versioned in `meta` (key `schema_version`) and migrated forward on
open, one migration per transaction. A change of any table here needs a new
migration appended to MIGRATIONS; existing stores are never rebuilt.

Every timestamp is written in UTC. SQLite hands datetimes back without a zone, so
reads go through `utc` (a nullable column) or `stamp` (a NOT NULL column: a NULL
read back is damage, reported with the row it was found in, never taken for "now").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

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
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    inspect,
    select,
    text,
    update,
)

from monitor.errors import StoreError
from monitor.model import rekeyed

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
    Column("codec", String(16), nullable=False),  # "zstd", "zstd-dict"; not kept: see bodies
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
    Column("rendered", Boolean, nullable=False, default=False),  # by a browser, not HTTP
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
    Column("kind", String(16), nullable=False),  # model.VersionKind
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The watch's own count, 1, 2, 3 …: what people see and type (schema 5).
    Column("number", Integer),
    # A digest of what the blocks were read from (extract.Extraction), so a page whose
    # content is the same is not walked again; NULL: not HTML, or older (schema 7).
    Column("content_digest", String(64)),
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
    Column("last_outcome", String(16)),  # model.Outcome
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
    Column("outcome", String(16), nullable=False),  # model.Outcome
    Column("failure_kind", String(16)),  # errors.FailureKind
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
    Column("kind", String(16), nullable=False),  # model.AlertKind
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
    # a keyed hash of the URL (model.destination_id, key in `meta`): no secret stored
    Column("destination", String(64), nullable=False),
    Column("label", Text, nullable=False),  # the redacted URL, for people
    Column("status", String(16), nullable=False),  # model.DeliveryStatus
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    # Parts of a split message the service accepted before an attempt failed (schema 5).
    Column("parts_sent", Integer, nullable=False, default=0, server_default="0"),
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


def _migrate_4(conn: Connection) -> None:
    """Schema 4: a snapshot says whether a browser rendered it."""
    columns = {c["name"] for c in inspect(conn).get_columns("snapshots")}
    if "rendered" not in columns:  # schema 1 created snapshots without it
        conn.execute(
            text("ALTER TABLE snapshots ADD COLUMN rendered BOOLEAN NOT NULL DEFAULT FALSE")
        )


def _migrate_5(conn: Connection) -> None:
    """Schema 5: versions are numbered per watch (1, 2, 3 …), not only by the store's
    global id, so a watch's history reads without gaps; a delivery remembers how many
    parts of a split message went out, so a retry goes on from there."""
    columns = {c["name"] for c in inspect(conn).get_columns("deliveries")}
    if "parts_sent" not in columns:  # schema 3 created deliveries without it
        conn.execute(
            text("ALTER TABLE deliveries ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0")
        )
    columns = {c["name"] for c in inspect(conn).get_columns("versions")}
    if "number" not in columns:  # schema 1 created versions without it
        conn.execute(text("ALTER TABLE versions ADD COLUMN number INTEGER"))
    conn.execute(
        text(
            "UPDATE versions SET number = (SELECT COUNT(*) FROM versions AS earlier"
            " WHERE earlier.watch_id = versions.watch_id AND earlier.id <= versions.id)"
        )
    )
    conn.execute(
        text("CREATE UNIQUE INDEX IF NOT EXISTS uq_versions_number ON versions (watch_id, number)")
    )


DESTINATION_KEY = "destination_key"  # `meta` key: hex of the store's random HMAC key


def _migrate_6(conn: Connection) -> None:
    """Schema 6: destinations are keyed with a random key kept in the store.

    A plain SHA-256 of a webhook URL is found again in a fraction of a second from a
    known template; an HMAC under a key that only the store holds is not. Every
    existing id (a SHA-256 of its URL) is re-keyed in place, so pending deliveries
    still find their URL, and their labels lose the path an older `redact` showed.
    """
    key = secrets.token_hex(32)
    set_meta(conn, DESTINATION_KEY, key)
    rows = conn.execute(select(deliveries.c.id, deliveries.c.destination, deliveries.c.label))
    for row in rows.all():
        values = {"destination": rekeyed(row.destination, bytes.fromhex(key))}
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == row.id)
            .values(**values, label=_relabel(row.label))
        )


def _relabel(label: str) -> str:
    """An older label without its path, query or private host: `json://host/***`."""
    parts = urlsplit(label)
    host = parts.hostname or ""
    server = ("." in host or ":" in host or host == "localhost") and "..." not in host
    if not parts.scheme or not server:
        return f"{parts.scheme}://***" if parts.scheme else "***"
    if parts.scheme in ("mailto", "mailtos"):
        return label  # recipients, as apprise shows them; the password was already ****
    rest = "/***" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{parts.netloc}{rest}"


def _migrate_7(conn: Connection) -> None:
    """Schema 7: a version keeps the digest of the content its blocks were read from,
    so a check whose page differs only outside that content (a footer's timestamp, a
    token) is recognised without extracting it. Older versions have none: the next
    check of each watch extracts as before."""
    columns = {c["name"] for c in inspect(conn).get_columns("versions")}
    if "content_digest" not in columns:  # schema 1 created versions without it
        conn.execute(text("ALTER TABLE versions ADD COLUMN content_digest VARCHAR(64)"))


MIGRATIONS: Sequence[Callable[[Connection], None]] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
)
SCHEMA_VERSION = len(MIGRATIONS)


def stored_version(conn: Connection) -> int:
    """The schema version a store has, 0 for none; reads only, so a command that
    only reads can tell an empty database from a store without creating anything."""
    if not inspect(conn).has_table("meta"):
        return 0
    value = get_meta(conn, "schema_version")
    return int(value) if value is not None else 0


def pending_migrations(current: int) -> range:
    """The migrations a store at `current` still needs; a newer store is refused,
    since this monitor would misread tables it does not know."""
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the store has schema version {current}, newer than this monitor "
            f"({SCHEMA_VERSION}); upgrade monitor"
        )
    return range(current + 1, SCHEMA_VERSION + 1)


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement:
    one process migrates (or prunes), the others wait and find the work done."""
    with _write_lock(engine, "SELECT pg_advisory_xact_lock(:a)", {"a": _LOCK_KEY}) as conn:
        yield conn


@contextmanager
def watch_lock(engine: Engine, watch_id: str) -> Iterator[Connection]:
    """A transaction that holds the write lock of one watch from its first statement,
    so what it reads of the watch no other writer can change before it commits."""
    digest = hashlib.sha256(watch_id.encode()).digest()
    key = {"a": _WATCH_LOCKS, "b": int.from_bytes(digest[:4], "big", signed=True)}
    with _write_lock(engine, "SELECT pg_advisory_xact_lock(:a, :b)", key) as conn:
        yield conn


@contextmanager
def _write_lock(engine: Engine, lock: str, key: dict[str, int]) -> Iterator[Connection]:
    """A transaction that holds a write lock from its first statement.

    SQLite: `BEGIN IMMEDIATE` (the database's one write lock) on a connection whose
    driver does not begin on its own, so the reads and DDL are inside the transaction
    too. PostgreSQL: the transaction-scoped advisory lock `lock` on `key`, so writers
    of other watches go on.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            conn.execute(text(lock), key)
            yield conn
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if getattr(conn.connection.dbapi_connection, "in_transaction", True):
                conn.exec_driver_sql("ROLLBACK")  # unless SQLite rolled back itself (disk full)
            raise
        conn.exec_driver_sql("COMMIT")


_LOCK_KEY = 0x6D6F6E69  # "moni": the advisory lock migrations take on PostgreSQL
_WATCH_LOCKS = 0x77617463  # "watc": a watch's lock is (this, a hash of its id); the
# two-key locks are a space of their own, apart from the migrations' one-key lock


def apply_migration(conn: Connection, number: int) -> None:
    """Run migration `number` and record it, in the caller's transaction."""
    meta.create(conn, checkfirst=True)
    MIGRATIONS[number - 1](conn)
    set_meta(conn, "schema_version", str(number))


def get_meta(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
    return str(value) if value is not None else None


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Insert or replace one key; portable (no dialect-specific upsert)."""
    done = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
    if done.rowcount == 0:
        conn.execute(insert(meta).values(key=key, value=value))


def utc(value: datetime | None) -> datetime | None:
    """A nullable timestamp read back, made zone-aware (we only ever write UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def stamp(value: datetime | None, where: str) -> datetime:
    """A NOT NULL timestamp read back; a NULL one is damage in row `where`."""
    aware = utc(value)
    if aware is None:
        raise StoreError(f"{where} has no timestamp: the store is damaged (see monitor verify)")
    return aware
