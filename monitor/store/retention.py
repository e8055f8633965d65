"""Retention: what `monitor prune` removes past `defaults.keep`, and what it never does.

Versions older than `keep.versions` are removed, except a watch's latest version and
every version an alert or a finding refers to (the proof of what was reported).
Raw bodies older than `keep.raw` are removed: a snapshot that no version was made of
goes with its body; a version's snapshot stays, with its body `pruned` (its SHA-256
and size are kept, its bytes are not; the version's document, compressed against
that body, is compressed on its own first). Never removed: the bodies of the versions
kept above, what a watch's next check compares with (its last body, its keyframe),
the sites' keyframes that new watches are compressed against, and any body a kept
body is a delta of. So `monitor verify` stays sound, and every body that is still
there reads back.

It runs in one transaction; a dry run is the same transaction rolled back, so what
it says it would remove is what a real run removes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Select,
    String,
    Table,
    delete,
    exists,
    func,
    insert,
    select,
    union,
    update,
)

from monitor.store.bodies import (
    NOT_KEPT,
    PRUNED,
    needs_body,
    pack,
    read_body,
    unpack_document,
)
from monitor.store.schema import alerts, bodies, checks, findings, meta, snapshots, versions
from monitor.store.schema import watch_state as state


@dataclass(frozen=True)
class Pruned:
    """What one prune removed (or, in a dry run, would remove)."""

    versions: int = 0
    version_bytes: int = 0  # their stored documents
    snapshots: int = 0  # responses no version was made of, removed with their bodies
    bodies: int = 0  # raw bodies removed or emptied
    body_bytes: int = 0  # their stored (compressed) bytes
    raw_bytes: int = 0  # their size as served


def prune(
    conn: Connection, versions_before: datetime | None, raw_before: datetime | None
) -> Pruned:
    """Remove versions made before `versions_before` and raw bodies fetched before
    `raw_before` (None: keep all), in the caller's transaction."""
    removed = _prune_versions(conn, versions_before) if versions_before else Pruned()
    if raw_before is None:
        return removed
    snapshots_removed = _prune_snapshots(conn, raw_before)
    count, stored, raw = _prune_bodies(conn, raw_before)
    return Pruned(removed.versions, removed.version_bytes, snapshots_removed, count, stored, raw)


def _kept_versions() -> list[Select[Any]]:
    """Versions retention never removes: latest of each watch, alerted, with findings."""
    latest = select(func.max(versions.c.id)).group_by(versions.c.watch_id)
    alerted = select(alerts.c.version_id).where(alerts.c.version_id.is_not(None))
    return [latest, alerted, select(findings.c.version_id)]


def _prune_versions(conn: Connection, before: datetime) -> Pruned:
    condition = [versions.c.created_at < before]
    condition += [versions.c.id.not_in(q) for q in _kept_versions()]
    doomed = select(versions.c.id).where(*condition)
    count, size = conn.execute(
        select(func.count(), func.coalesce(func.sum(func.length(versions.c.document)), 0)).where(
            *condition
        )
    ).one()
    conn.execute(update(checks).where(checks.c.version_id.in_(doomed)).values(version_id=None))
    conn.execute(delete(versions).where(versions.c.id.in_(doomed.scalar_subquery())))
    return Pruned(versions=int(count), version_bytes=int(size))


def _prune_snapshots(conn: Connection, before: datetime) -> int:
    """Old snapshots no version was made of (the responses of unchanged checks)."""
    condition = [
        snapshots.c.fetched_at < before,
        snapshots.c.id.not_in(select(versions.c.snapshot_id)),
    ]
    doomed = select(snapshots.c.id).where(*condition)
    count = conn.execute(select(func.count()).where(*condition)).scalar() or 0
    conn.execute(update(checks).where(checks.c.snapshot_id.in_(doomed)).values(snapshot_id=None))
    conn.execute(delete(snapshots).where(snapshots.c.id.in_(doomed.scalar_subquery())))
    return int(count)


def _prune_bodies(conn: Connection, before: datetime) -> tuple[int, int, int]:
    """Empty the old bodies a kept snapshot names, delete those none names; return
    how many, their stored bytes and their size as served."""
    keep = _needed_bodies(conn, before)
    condition = [bodies.c.sha256.not_in(select(keep.c.sha256)), bodies.c.codec != PRUNED]
    stored = func.coalesce(func.sum(func.length(bodies.c.data)), 0)
    served = func.coalesce(func.sum(bodies.c.size), 0)
    count, size, raw = conn.execute(select(func.count(), stored, served).where(*condition)).one()
    named = exists().where(snapshots.c.body_sha256 == bodies.c.sha256)
    _repack_documents(conn, select(bodies.c.sha256).where(*condition, named))
    conn.execute(update(bodies).where(*condition, named).values(codec=PRUNED, base=None, data=b""))
    conn.execute(delete(bodies).where(*condition, ~named))
    conn.execute(delete(bodies).where(bodies.c.codec.in_(list(NOT_KEPT)), ~named))
    keep.drop(conn)
    return int(count), int(size), int(raw)


def _repack_documents(conn: Connection, doomed: Select[Any]) -> None:
    """Documents compressed against a body about to be pruned are compressed on their
    own first, so every version kept still reads back without its raw body."""
    query = (
        select(versions.c.id, versions.c.document, snapshots.c.body_sha256)
        .join(snapshots, snapshots.c.id == versions.c.snapshot_id)
        .where(snapshots.c.body_sha256.in_(doomed))
    )
    for row in conn.execute(query).all():
        if needs_body(row.document):
            document = unpack_document(row.document, partial(read_body, conn, row.body_sha256))
            repacked = update(versions).where(versions.c.id == row.id)
            conn.execute(repacked.values(document=pack(document)))


def _needed_bodies(conn: Connection, before: datetime) -> Table:
    """A temporary table of the bodies to keep, with every body they are deltas of."""
    keep = Table(
        "prune_keep",
        MetaData(),
        Column("sha256", String(64), primary_key=True),
        prefixes=["TEMPORARY"],
    )
    keep.create(conn)
    kept_versions = union(*_kept_versions())
    needed = union(
        select(snapshots.c.body_sha256).where(snapshots.c.fetched_at >= before),
        select(snapshots.c.body_sha256).where(
            snapshots.c.id.in_(
                select(versions.c.snapshot_id).where(versions.c.id.in_(kept_versions))
            )
        ),
        select(state.c.last_body_sha256).where(state.c.last_body_sha256.is_not(None)),
        select(state.c.keyframe_sha256).where(state.c.keyframe_sha256.is_not(None)),
        select(meta.c.value).where(meta.c.key.like("keyframe:%")),
    )
    conn.execute(insert(keep).from_select(["sha256"], needed))
    for _ in range(HOPS):  # a body is read through its keyframe, and that one through its site's
        bases = (
            select(bodies.c.base)
            .distinct()
            .where(
                bodies.c.sha256.in_(select(keep.c.sha256)),
                bodies.c.base.is_not(None),
                bodies.c.base.not_in(select(keep.c.sha256)),
            )
        )
        conn.execute(insert(keep).from_select(["sha256"], bases))
    return keep


HOPS = 2  # the longest chain of keyframes a body is read through (see bodies.py)
