"""The alert ledger: alerts, and one delivery per (alert, route, destination).

An alert is written in the transaction of the check that caused it (`insert_alert`,
called by `versions.record`), then its deliveries move pending → sent, or pending →
failed after their retries; the unique (alert, route, destination) key is what keeps
a failing webhook from making an e-mail go out twice. Destinations are stored as the
SHA-256 of their URL plus a redacted label: no secret reaches the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from monitor.messages import name_version
from monitor.model import AlertKind, AlertRecord, Delivery, DeliveryStatus
from monitor.store.schema import alerts, deliveries, stamp, utc, versions


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery of an alert as the ledger holds it (for `monitor alerts`)."""

    id: int
    alert_id: int
    route: str
    destination: str  # SHA-256 of the URL
    label: str  # the redacted URL
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class AlertRow:
    """An alert as stored, with its deliveries (none when it had no route)."""

    id: int
    watch_id: str
    version_id: int | None
    kind: AlertKind
    title: str
    message: str  # the structured message as JSON (messages.Message.from_json)
    jurisdictions: tuple[str, ...]
    created_at: datetime
    deliveries: tuple[DeliveryRow, ...] = ()
    version: int | None = None  # the number (per watch) of the version it was raised with

    @property
    def versions(self) -> tuple[int | None, int | None]:
        """(before, after) by number: the watch's versions are numbered without gaps."""
        if self.version is None:
            return None, None
        return (self.version - 1 if self.version > 1 else None), self.version


def insert_alert(
    conn: Connection,
    alert: AlertRecord,
    version: tuple[int | None, int | None],
    now: datetime,
) -> int:
    """Write an alert and its pending deliveries; return the alert's id. `version` is
    the (id, number) of the version the same check wrote, if any: the message names
    it by its number."""
    version_id, number = version
    result = conn.execute(
        insert(alerts).values(
            watch_id=alert.watch_id,
            version_id=version_id,
            kind=alert.kind,
            title=alert.title,
            message=alert.message if number is None else name_version(alert.message, number),
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
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for route, dest, label in dict.fromkeys(alert.destinations)
    ]
    if rows:
        conn.execute(insert(deliveries), rows)
    return alert_id


def due_deliveries(conn: Connection, now: datetime | None, limit: int = 100) -> list[Delivery]:
    """Pending deliveries due by `now`, oldest due first; with None, every pending one."""
    query = (
        select(deliveries, alerts.c.watch_id, alerts.c.title, alerts.c.message, alerts.c.kind)
        .join(alerts, alerts.c.id == deliveries.c.alert_id)
        .where(deliveries.c.status == DeliveryStatus.PENDING)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    if now is not None:
        query = query.where(deliveries.c.next_attempt_at <= now)
    return [_delivery(r._mapping) for r in conn.execute(query)]


def next_due(conn: Connection) -> datetime | None:
    """When the next pending delivery is due: the daemon sleeps until then."""
    query = select(func.min(deliveries.c.next_attempt_at)).where(
        deliveries.c.status == DeliveryStatus.PENDING
    )
    return utc(conn.execute(query).scalar())


def delivered(conn: Connection, delivery_id: int, now: datetime) -> None:
    _set_delivery(
        conn,
        delivery_id,
        status=DeliveryStatus.SENT,
        sent_at=now,
        last_error=None,
        attempts=deliveries.c.attempts + 1,
    )


def retry_later(
    conn: Connection, delivery_id: int, error: str, at: datetime, parts_sent: int = 0
) -> None:
    _set_delivery(
        conn,
        delivery_id,
        next_attempt_at=at,
        last_error=error,
        attempts=deliveries.c.attempts + 1,
        parts_sent=parts_sent,
    )


def give_up(conn: Connection, delivery_id: int, error: str) -> None:
    _set_delivery(
        conn,
        delivery_id,
        status=DeliveryStatus.FAILED,
        last_error=error,
        attempts=deliveries.c.attempts + 1,
    )


def delivery_counts(conn: Connection) -> dict[str, int]:
    """Deliveries per status (for metrics)."""
    query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
    return {str(status): int(n) for status, n in conn.execute(query)}


def alert_rows(
    conn: Connection,
    status: DeliveryStatus | str | None = None,
    limit: int = 50,
    watch_id: str | None = None,
) -> list[AlertRow]:
    """Newest alerts with their deliveries and their version's number; `status` keeps
    alerts with such a delivery, `watch_id` one watch's."""
    query = (
        select(alerts, versions.c.number)
        .outerjoin(versions, versions.c.id == alerts.c.version_id)
        .order_by(alerts.c.id.desc())
        .limit(limit)
    )
    if watch_id is not None:
        query = query.where(alerts.c.watch_id == watch_id)
    if status is not None:
        having = select(deliveries.c.alert_id).where(deliveries.c.status == status)
        query = query.where(alerts.c.id.in_(having))
    rows = [r._mapping for r in conn.execute(query)]
    found = _deliveries_of(conn, [r["id"] for r in rows])
    return [_alert(r, found.get(r["id"], ())) for r in rows]


def _deliveries_of(conn: Connection, alert_ids: list[int]) -> dict[int, tuple[DeliveryRow, ...]]:
    """The deliveries of these alerts in one query, grouped by alert, in id order."""
    if not alert_ids:
        return {}
    query = select(deliveries).where(deliveries.c.alert_id.in_(alert_ids)).order_by(deliveries.c.id)
    grouped: dict[int, list[DeliveryRow]] = {}
    for r in conn.execute(query):
        row = _delivery_row(r._mapping)
        grouped.setdefault(row.alert_id, []).append(row)
    return {alert_id: tuple(rows) for alert_id, rows in grouped.items()}


def _set_delivery(conn: Connection, delivery_id: int, **values: Any) -> None:
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


def _delivery(m: RowMapping) -> Delivery:
    return Delivery(
        id=m["id"],
        alert_id=m["alert_id"],
        watch_id=m["watch_id"],
        route=m["route"],
        destination=m["destination"],
        label=m["label"],
        attempts=m["attempts"],
        created_at=stamp(m["created_at"], f"delivery {m['id']}"),
        title=m["title"],
        message=m["message"],
        kind=AlertKind(m["kind"]),
        parts_sent=m["parts_sent"] or 0,
    )


def _delivery_row(m: RowMapping) -> DeliveryRow:
    where = f"delivery {m['id']}"
    return DeliveryRow(
        id=m["id"],
        alert_id=m["alert_id"],
        route=m["route"],
        destination=m["destination"],
        label=m["label"],
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        next_attempt_at=stamp(m["next_attempt_at"], where),
        last_error=m["last_error"],
        created_at=stamp(m["created_at"], where),
        sent_at=utc(m["sent_at"]),
    )


def _alert(m: RowMapping, found: tuple[DeliveryRow, ...]) -> AlertRow:
    return AlertRow(
        id=m["id"],
        watch_id=m["watch_id"],
        version_id=m["version_id"],
        kind=AlertKind(m["kind"]),
        title=m["title"],
        message=m["message"],
        jurisdictions=tuple(json.loads(m["jurisdictions"])),
        created_at=stamp(m["created_at"], f"alert {m['id']}"),
        deliveries=found,
        version=m.get("number"),
    )
