"""The daemon's heartbeat: one `meta` key a running daemon refreshes.

`monitor health` and `/healthz` read it, so liveness is a fact in the store that a
probe can check from another process or container, not a log line to scrape.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from monitor.store.schema import get_meta, meta, set_meta

KEY = "heartbeat"


def beat(conn: Connection, now: datetime) -> None:
    set_meta(conn, KEY, now.astimezone(UTC).isoformat())


def clear(conn: Connection) -> None:
    """Forget the heartbeat: a daemon that stops cleanly is not alive."""
    conn.execute(meta.delete().where(meta.c.key == KEY))


def last(conn: Connection) -> datetime | None:
    value = get_meta(conn, KEY)
    return datetime.fromisoformat(value) if value else None
