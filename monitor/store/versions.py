"""What checks leave behind: snapshots, versions, findings, per-watch state, the check log.

`record` writes everything one check produced — snapshot (its body through
`bodies`), version, findings, alerts (through `ledger`), the check log line and the
watch's state — in the caller's single transaction, so a crash at any point leaves
the whole check or none of it. The readers below are what a check, the daemon and
the command line ask back; each takes an open connection, so several reads can share
one transaction.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

import zstandard
from sqlalchemy import (
    Connection,
    Integer,
    RowMapping,
    Select,
    String,
    bindparam,
    func,
    insert,
    select,
    update,
)

from monitor.errors import Conflict, FailureKind, StoreError
from monitor.model import (
    CellDelta,
    Change,
    ChangeKind,
    CheckRecord,
    Finding,
    FindingKind,
    History,
    Outcome,
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
from monitor.store.bodies import (
    Held,
    pack_document,
    read_body,
    site_key,
    store_body,
    unpack_document,
)
from monitor.store.ledger import insert_alert
from monitor.store.schema import (
    bodies,
    checks,
    findings,
    meta,
    snapshots,
    stamp,
    utc,
    versions,
    watch_state,
)


@dataclass(frozen=True)
class CheckLogEntry:
    """One line of the check log: what one check of one watch found."""

    id: int
    watch_id: str
    started_at: datetime
    elapsed: float
    outcome: Outcome
    failure_kind: FailureKind | None
    message: str | None
    snapshot_id: int | None
    version_id: int | None
    technical: bool


# --- the write of a check -------------------------------------------------------------


def record(conn: Connection, rec: CheckRecord, seen: History | None = None) -> int | None:
    """Write one check (snapshot, version, findings, alerts, log, state); return the
    new version's number (the watch's own count). The caller's transaction makes it
    all-or-nothing. Given the `History` the check was evaluated against, raise
    `Conflict` (writing nothing) when another writer recorded the watch since.

    Everything the write needs to know is read in one query first (`_prior`); the
    rest are inserts and one update: 8 statements for a check with a new version."""
    prior = _prior(conn, rec)
    if seen is not None and prior.mark != seen.mark:
        raise Conflict(f"{rec.watch_id} was recorded by another process meanwhile")
    snapshot_id, keyframe = None, prior.state.get("keyframe_sha256")
    if rec.snapshot is not None:
        optional = rec.outcome == Outcome.UNCHANGED and rec.document is None
        snapshot_id, keyframe = _insert_snapshot(conn, rec, keyframe, prior.held, optional)
    version_id = number = None
    if rec.document is not None and rec.version_kind is not None:
        if snapshot_id is None:
            raise StoreError("a version needs the snapshot it was extracted from")
        number = prior.number + 1
        version_id = _insert_version(conn, rec, snapshot_id, number)
        _insert_findings(conn, rec, version_id)
    elif rec.content_digest is not None and prior.latest_id is not None:
        _keep_digest(conn, prior.latest_id, rec.content_digest)
    for alert in rec.alerts:
        insert_alert(conn, alert, (version_id, number), rec.started_at)
    conn.execute(
        _INSERT["checks"],
        {
            "watch_id": rec.watch_id,
            "started_at": rec.started_at,
            "elapsed": rec.elapsed,
            "outcome": rec.outcome,
            "failure_kind": rec.failure_kind,
            "message": rec.message or rec.note,
            "snapshot_id": snapshot_id,
            "version_id": version_id,
            "technical": rec.technical,
        },
    )
    _update_state(conn, rec, prior.state, keyframe)
    return number


@dataclass(frozen=True)
class _Prior:
    """What a check's write reads before it writes, in one query."""

    state: dict[str, Any]  # the watch's state row; empty when the watch has none yet
    latest_id: int | None  # its latest version's id (store-wide), None without versions
    number: int  # its latest version's number, 0 without versions
    held: Held  # what the store holds for the snapshot's body (see bodies.store_body)

    @property
    def mark(self) -> tuple[int | None, int, bool]:
        """As `History.mark`: what another writer of the watch would have changed."""
        failures = self.state.get("consecutive_failures", 0)
        return self.latest_id, failures, bool(self.state.get("health_alerted", False))


def _prior(conn: Connection, rec: CheckRecord) -> _Prior:
    """The watch's state, its latest version's id and number, and, with a snapshot,
    whether its body is stored already and the keyframe of its site: one statement."""
    params = {"prior_watch": rec.watch_id}
    if rec.snapshot is not None:
        params |= {"prior_sha": rec.snapshot.sha256, "prior_site": site_key(rec.snapshot)}
    row = conn.execute(_PRIOR if rec.snapshot is None else _PRIOR_BODY, params).one()
    named = len(watch_state.c)
    state = dict(zip(watch_state.c.keys(), row[2 : 2 + named], strict=True))
    held = Held(row[2 + named], row[3 + named]) if rec.snapshot is not None else Held(None, None)
    return _Prior(state if state["watch_id"] else {}, row[0], int(row[1] or 0), held)


def _prior_query(*, body: bool) -> Select[Any]:
    """`_prior`'s statement, built once (building one costs more than running it)."""
    watch = bindparam("prior_watch", type_=String())
    latest = (
        select(
            func.max(versions.c.id).label("latest_id"),
            func.max(versions.c.number).label("latest_number"),
        )
        .where(versions.c.watch_id == watch)
        .subquery()
    )
    columns: list[Any] = [latest.c.latest_id, latest.c.latest_number, *watch_state.c]
    if body:
        codec = select(bodies.c.codec).where(bodies.c.sha256 == bindparam("prior_sha"))
        keyframe = select(meta.c.value).where(meta.c.key == bindparam("prior_site"))
        columns += [codec.scalar_subquery(), keyframe.scalar_subquery()]
    joined = latest.outerjoin(watch_state, watch_state.c.watch_id == watch)
    return select(*columns).select_from(joined)


_PRIOR, _PRIOR_BODY = _prior_query(body=False), _prior_query(body=True)
_INSERT = {t.name: insert(t) for t in (checks, snapshots, versions, watch_state)}
_UPDATE_STATE = update(watch_state).where(watch_state.c.watch_id == bindparam("state_watch"))


def _keep_digest(conn: Connection, version_id: int, digest: str) -> None:
    """Give the latest version the digest of the content an unchanged check read it
    from again, when it has none (a version written before schema 7)."""
    query = update(versions).where(versions.c.id == version_id, versions.c.content_digest.is_(None))
    conn.execute(query.values(content_digest=digest))


def _update_state(
    conn: Connection, rec: CheckRecord, prior: dict[str, Any], keyframe: str | None
) -> None:
    values: dict[str, Any] = {
        "last_outcome": rec.outcome,
        "last_check_at": rec.started_at,
        "keyframe_sha256": keyframe,
    }
    if rec.outcome == Outcome.FAILED:
        values["consecutive_failures"] = prior.get("consecutive_failures", 0) + int(rec.counted)
        values["last_error"] = rec.message
    else:
        values["consecutive_failures"] = 0
        values["last_error"] = None
        values["last_success_at"] = rec.started_at
    if rec.snapshot is not None and rec.outcome != Outcome.FAILED:
        values["last_body_sha256"] = rec.snapshot.sha256
    if rec.validators is not None:
        values["etag"] = rec.validators.etag
        values["last_modified"] = rec.validators.last_modified
    if rec.full_fetch:
        values["last_full_fetch"] = rec.started_at
    if rec.health_alerted is not None:
        values["health_alerted"] = rec.health_alerted
    if not prior:  # the watch's first check: its row is written whole
        conn.execute(_INSERT["watch_state"], {"watch_id": rec.watch_id, **values})
        return
    conn.execute(_UPDATE_STATE, {"state_watch": rec.watch_id, **values})


def _insert_snapshot(
    conn: Connection, rec: CheckRecord, keyframe: str | None, held: Held, optional: bool
) -> tuple[int, str | None]:
    snap = rec.snapshot
    assert snap is not None
    keyframe = store_body(conn, snap, keyframe, held, optional=optional)
    result = conn.execute(
        _INSERT["snapshots"],
        {
            "watch_id": rec.watch_id,
            "url": snap.url,
            "final_url": snap.final_url,
            "status": snap.status,
            "headers": json.dumps([list(h) for h in snap.headers]),
            "body_sha256": snap.sha256,
            "encoding": snap.encoding,
            "fetched_at": snap.fetched_at,
            "elapsed": snap.elapsed,
            "rendered": snap.rendered,
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0]), keyframe


def _insert_version(conn: Connection, rec: CheckRecord, snapshot_id: int, number: int) -> int:
    """The new version's id. Its document is serialised and hashed once, and
    compressed against the snapshot's body (`bodies.pack_document`)."""
    assert rec.document is not None and rec.snapshot is not None
    assert rec.version_kind is not None
    result = conn.execute(
        _INSERT["versions"],
        {
            "watch_id": rec.watch_id,
            "snapshot_id": snapshot_id,
            "rules_hash": rec.rules_hash,
            "doc_hash": document_hash(rec.document),
            "document": pack_document(document_json(rec.document).encode(), rec.snapshot.body),
            "content_digest": rec.content_digest,
            "kind": rec.version_kind,
            "created_at": rec.started_at,
            "number": number,
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


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


# --- reads ----------------------------------------------------------------------------


def state(conn: Connection, watch_id: str) -> WatchState:
    """A watch's state; a watch never checked has the default (empty) state."""
    row = conn.execute(_STATE, {"state_of": watch_id}).first()
    return decode_state(row._mapping) if row is not None else WatchState(watch_id)


# the statements every check runs, built once: building one costs more than running it
_STATE = select(watch_state).where(watch_state.c.watch_id == bindparam("state_of"))


def states(conn: Connection) -> list[WatchState]:
    """Every watch's state in one query (for metrics: one scrape, one read)."""
    return [decode_state(r._mapping) for r in conn.execute(select(watch_state))]


def latest_version(conn: Connection, watch_id: str) -> StoredVersion | None:
    query = (
        select(versions)
        .where(versions.c.watch_id == watch_id)
        .order_by(versions.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return decode_version(conn, row._mapping) if row is not None else None


def all_versions(conn: Connection, watch_id: str) -> list[StoredVersion]:
    """Every version of a watch, oldest first."""
    query = select(versions).where(versions.c.watch_id == watch_id).order_by(versions.c.id)
    return [decode_version(conn, r._mapping) for r in conn.execute(query)]


_METADATA = tuple(c for c in versions.c if c.name != "document")
_RECENT = (
    select(*_METADATA, snapshots.c.body_sha256)
    .join(snapshots, snapshots.c.id == versions.c.snapshot_id)
    .where(versions.c.watch_id == bindparam("recent_of"))
    .order_by(versions.c.id.desc())
    .limit(bindparam("recent", type_=Integer()))
)


def load(conn: Connection, watch_id: str, recent: int) -> History:
    """What a check needs to know of a watch before its response is read: its state,
    its latest version without the document, and its `recent` versions' hashes. Two
    queries; the document and the raw body are read by `complete`, when needed."""
    current = state(conn, watch_id)
    rows = conn.execute(_RECENT, {"recent_of": watch_id, "recent": recent}).all()
    if not rows:
        return History(current)
    known = tuple(RecentVersion(r.id, r.doc_hash, VersionKind(r.kind), r.number) for r in rows)
    latest = decode_version(conn, rows[0]._mapping)
    return History(current, latest, rows[0].body_sha256, known)


def complete(conn: Connection, history: History, *, document: bool, raw: bool) -> History:
    """`history` with what evaluating a response needs besides: the latest version's
    document (decompressed here, with the body it may be compressed against; decoded
    on first use) and the raw body it came from. What it already holds is not read
    again."""
    latest = history.latest
    if latest is None:
        return history
    body = history.raw
    if raw and body is None:
        body = snapshot(conn, latest.snapshot_id)
    if document and latest.read_document is None:
        query = select(versions.c.document).where(versions.c.id == latest.id)
        stored: bytes = conn.execute(query).scalar_one()
        held = body
        source = (
            partial(_body_of, conn, latest.id, latest.snapshot_id, history.latest_sha)
            if held is None
            else lambda: held.body
        )
        latest = replace(latest, read_document=_reader(latest.id, stored, source))
    return replace(history, latest=latest, raw=body)


def version(conn: Connection, version_id: int) -> StoredVersion:
    row = conn.execute(select(versions).where(versions.c.id == version_id)).first()
    if row is None:
        raise StoreError(f"no version {version_id}")
    return decode_version(conn, row._mapping)


def stored_findings(
    conn: Connection,
    *,
    watch_id: str | None = None,
    version_id: int | None = None,
    limit: int = 1000,
) -> list[StoredFinding]:
    query = select(findings).order_by(findings.c.id).limit(limit)
    if watch_id is not None:
        query = query.where(findings.c.watch_id == watch_id)
    if version_id is not None:
        query = query.where(findings.c.version_id == version_id)
    return [_finding(r._mapping) for r in conn.execute(query)]


def newest_findings(conn: Connection) -> dict[str, tuple[StoredFinding, datetime]]:
    """Each watch's newest finding with its version's time, for every watch in ONE
    query (`monitor list`); a watch without findings is absent."""
    newest = select(func.max(findings.c.id).label("id")).group_by(findings.c.watch_id).subquery()
    query = (
        select(findings, versions.c.created_at.label("version_at"))
        .join(newest, newest.c.id == findings.c.id)
        .join(versions, versions.c.id == findings.c.version_id)
    )
    return {
        r.watch_id: (_finding(r._mapping), stamp(r.version_at, f"version {r.version_id}"))
        for r in conn.execute(query)
    }


def snapshot(conn: Connection, snapshot_id: int) -> Snapshot:
    """A stored snapshot with its exact raw body, as the proof of what was served."""
    row = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).first()
    if row is None:
        raise StoreError(f"no snapshot {snapshot_id}")
    m = row._mapping
    return Snapshot(
        url=m["url"],
        final_url=m["final_url"],
        status=m["status"],
        headers=tuple((k, v) for k, v in json.loads(m["headers"])),
        body=read_body(conn, m["body_sha256"]),
        encoding=m["encoding"],
        fetched_at=stamp(m["fetched_at"], f"snapshot {snapshot_id}"),
        elapsed=m["elapsed"],
        rendered=bool(m["rendered"]),
    )


def snapshot_sha(conn: Connection, snapshot_id: int) -> str | None:
    """The SHA-256 of a snapshot's body: the proof an alert cites."""
    query = select(snapshots.c.body_sha256).where(snapshots.c.id == snapshot_id)
    value = conn.execute(query).scalar()
    return str(value) if value is not None else None


def check_log(
    conn: Connection, watch_id: str | None = None, limit: int = 100
) -> list[CheckLogEntry]:
    """The newest checks first, of one watch or of all."""
    query = select(checks).order_by(checks.c.id.desc()).limit(limit)
    if watch_id is not None:
        query = query.where(checks.c.watch_id == watch_id)
    return [_check_entry(r._mapping) for r in conn.execute(query)]


# --- rows to values -------------------------------------------------------------------


def decode_state(m: RowMapping) -> WatchState:
    outcome = m["last_outcome"]
    return WatchState(
        watch_id=m["watch_id"],
        validators=Validators(m["etag"], m["last_modified"]),
        last_full_fetch=utc(m["last_full_fetch"]),
        last_body_sha256=m["last_body_sha256"],
        keyframe_sha256=m["keyframe_sha256"],
        consecutive_failures=m["consecutive_failures"],
        last_outcome=Outcome(outcome) if outcome else None,
        last_error=m["last_error"],
        last_check_at=utc(m["last_check_at"]),
        last_success_at=utc(m["last_success_at"]),
        health_alerted=bool(m["health_alerted"]),
    )


def decode_version(conn: Connection, m: RowMapping) -> StoredVersion:
    """A version row as a value; its document (when the row has it) is decompressed
    here, with its snapshot's body when it was compressed against it, and decoded on
    first use."""
    stored = m.get("document")
    return StoredVersion(
        id=m["id"],
        watch_id=m["watch_id"],
        snapshot_id=m["snapshot_id"],
        rules_hash=m["rules_hash"],
        doc_hash=m["doc_hash"],
        kind=VersionKind(m["kind"]),
        created_at=stamp(m["created_at"], f"version {m['id']}"),
        number=m["number"],
        content_digest=m["content_digest"],
        read_document=_reader(
            m["id"],
            stored,
            partial(_body_of, conn, m["id"], m["snapshot_id"], m.get("body_sha256")),
        )
        if stored is not None
        else None,
    )


def _reader(version_id: int, stored: bytes, body: Callable[[], bytes]) -> Callable[[], str]:
    """What reads a stored document's JSON: decompressed now, while the connection that
    reads the body it may have been compressed against is open; decoded on first use.
    A document that cannot be decompressed is damage, named as such."""
    try:
        text = unpack_document(stored, body).decode()
    except (zlib.error, zstandard.ZstdError, UnicodeDecodeError) as exc:
        raise StoreError(
            f"version {version_id}: its stored document is damaged ({exc}); see monitor verify"
        ) from exc
    return lambda: text


def _body_of(conn: Connection, version_id: int, snapshot_id: int, sha: str | None) -> bytes:
    """The raw body of a version's snapshot (`sha`: its hash, when already known)."""
    sha = sha or snapshot_sha(conn, snapshot_id)
    if sha is None:
        raise StoreError(f"version {version_id}: no snapshot {snapshot_id}")
    return read_body(conn, sha, recent=True)


def _check_entry(m: RowMapping) -> CheckLogEntry:
    failure = m["failure_kind"]
    return CheckLogEntry(
        id=m["id"],
        watch_id=m["watch_id"],
        started_at=stamp(m["started_at"], f"check {m['id']}"),
        elapsed=m["elapsed"],
        outcome=Outcome(m["outcome"]),
        failure_kind=FailureKind(failure) if failure else None,
        message=m["message"],
        snapshot_id=m["snapshot_id"],
        version_id=m["version_id"],
        technical=bool(m["technical"]),
    )


def _finding(m: RowMapping) -> StoredFinding:
    data = json.loads(m["data"])
    change = data.get("change")
    finding = Finding(
        jurisdiction=m["jurisdiction"],
        kind=FindingKind(m["kind"]),
        where=data["where"],
        terms=tuple(data["terms"]),
        change=_change(change) if change else None,
        cells=tuple(CellDelta(**c) for c in data.get("cells", [])),
        note=data.get("note", ""),
    )
    return StoredFinding(m["id"], m["version_id"], m["watch_id"], finding)


def _change(data: dict[str, Any]) -> Change:
    tuples = ("path_before", "path_after", "cells_before", "cells_after")
    fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
    fields["segments"] = tuple((op, text) for op, text in data.get("segments", []))
    fields["kind"] = ChangeKind(fields["kind"])
    return Change(**fields)
