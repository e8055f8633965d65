"""Is the store sound? After a crash, a restore or a full disk, say what is damaged.

It runs the database's own check (SQLite), reads every kept body back and hashes it
(a body not kept, or pruned by retention, has only its hash and size),
decodes every version, and checks that every version with findings has the alert
that was written with it (they are written in one transaction, so one without the
other means damage, not a race).
"""

from __future__ import annotations

import hashlib

import zstandard
from sqlalchemy import Connection, func, select

from monitor.errors import StoreError
from monitor.store.bodies import NOT_KEPT, read_body
from monitor.store.schema import alerts, bodies, findings, metadata, versions
from monitor.store.versions import decode_version


def verify(conn: Connection) -> list[str]:
    """Every problem found in the store, or none."""
    problems = _database_problems(conn)
    kept = select(bodies.c.sha256).where(bodies.c.codec.not_in(list(NOT_KEPT)))
    for (sha,) in conn.execute(kept):
        problems += _body_problems(conn, sha)
    problems += _version_problems(conn)
    alerted = select(alerts.c.version_id).where(alerts.c.version_id.is_not(None))
    orphans = select(findings.c.version_id).where(findings.c.version_id.not_in(alerted))
    problems += [
        f"version {vid}: findings without their alert"
        for (vid,) in conn.execute(orphans.distinct())
    ]
    return problems


def count(conn: Connection, table: str) -> int:
    """Rows in one of the store's tables (by name), for `monitor verify` and tests."""
    value = conn.execute(select(func.count()).select_from(metadata.tables[table])).scalar()
    return int(value or 0)


def _database_problems(conn: Connection) -> list[str]:
    if conn.dialect.name != "sqlite":
        return []  # PostgreSQL checks its pages itself (amcheck is an extension)
    found = [f"sqlite: {r}" for (r,) in conn.exec_driver_sql("PRAGMA integrity_check")]
    keys = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    return [p for p in found if p != "sqlite: ok"] + [f"foreign key: {k}" for k in keys]


def _body_problems(conn: Connection, sha: str) -> list[str]:
    try:
        data = read_body(conn, sha)
    except (StoreError, zstandard.ZstdError) as exc:
        return [f"body {sha[:12]}: unreadable ({exc})"]
    if hashlib.sha256(data).hexdigest() != sha:
        return [f"body {sha[:12]}: its content does not match its hash"]
    return []


def _version_problems(conn: Connection) -> list[str]:
    problems = []
    for row in conn.execute(select(versions)):
        try:
            decode_version(conn, row._mapping).document  # noqa: B018  (decoding is the check)
        except (ValueError, zstandard.ZstdError, StoreError) as exc:
            problems.append(f"version {row.id}: cannot be decoded ({exc})")
    return problems
