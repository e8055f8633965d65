"""What `monitor export` reads: a watch's snapshots and versions as small references,
so an export of a store of several GB reads one raw body and one document at a time.

`Store.snapshot(id)` and `Store.version(id)` read the body or the document each
reference points to; nothing here decompresses anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, select

from monitor.errors import StoreError
from monitor.model import VersionKind
from monitor.store import ledger
from monitor.store.schema import alerts, snapshots, stamp, versions


@dataclass(frozen=True)
class SnapshotRef:
    """A stored snapshot without its body."""

    id: int
    fetched_at: datetime
    sha256: str
    rendered: bool


@dataclass(frozen=True)
class VersionRef:
    """A stored version without its document."""

    id: int
    number: int
    snapshot_id: int
    kind: VersionKind
    created_at: datetime
    rules_hash: str
    doc_hash: str


def snapshot_refs(conn: Connection, watch_id: str) -> list[SnapshotRef]:
    """Every snapshot of a watch, oldest first."""
    c = snapshots.c
    query = (
        select(c.id, c.fetched_at, c.body_sha256, c.rendered)
        .where(c.watch_id == watch_id)
        .order_by(c.id)
    )
    return [
        SnapshotRef(r.id, stamp(r.fetched_at, f"snapshot {r.id}"), r.body_sha256, bool(r.rendered))
        for r in conn.execute(query)
    ]


def version_refs(conn: Connection, watch_id: str) -> list[VersionRef]:
    """Every version of a watch, oldest first."""
    query = (
        select(
            versions.c.id,
            versions.c.number,
            versions.c.snapshot_id,
            versions.c.kind,
            versions.c.created_at,
            versions.c.rules_hash,
            versions.c.doc_hash,
        )
        .where(versions.c.watch_id == watch_id)
        .order_by(versions.c.id)
    )
    return [
        VersionRef(
            r.id,
            r.number,
            r.snapshot_id,
            VersionKind(r.kind),
            stamp(r.created_at, f"version {r.id}"),
            r.rules_hash,
            r.doc_hash,
        )
        for r in conn.execute(query)
    ]


def alert(conn: Connection, alert_id: int) -> ledger.AlertRow:
    """One alert by its id (without its deliveries)."""
    rows = _alert_rows(conn, alerts.c.id == alert_id)
    if not rows:
        raise StoreError(f"no alert {alert_id}")
    return rows[0]


def version_alerts(conn: Connection, version_id: int) -> list[ledger.AlertRow]:
    """The alerts raised with one version (without their deliveries), oldest first."""
    return _alert_rows(conn, alerts.c.version_id == version_id)


def _alert_rows(conn: Connection, where: ColumnElement[bool]) -> list[ledger.AlertRow]:
    query = (
        select(alerts, versions.c.number)
        .outerjoin(versions, versions.c.id == alerts.c.version_id)
        .where(where)
        .order_by(alerts.c.id)
    )
    return [ledger._alert(r._mapping, ()) for r in conn.execute(query)]
