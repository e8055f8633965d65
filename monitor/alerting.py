"""Which alerts a check raises: one change alert grouping its findings, and health
alerts when a watch starts failing for good or recovers.

A health alert goes out once when a watch reaches its `failures_before_alert`
consecutive failures, and once when it next succeeds; never on every failed check.
Pure: it decides from the check's record and the watch's remembered state; the
alerts are written by the store in the same transaction as the check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.config import Route, Watch
from monitor.messages import Proof, Subject, change_message, health_message
from monitor.model import AlertKind, AlertRecord, CheckRecord, StoredVersion, WatchState
from monitor.notify import redact


@dataclass(frozen=True)
class Decision:
    """The alerts to write with a check, and the watch's new health-alert flag."""

    alerts: tuple[AlertRecord, ...] = ()
    health_alerted: bool | None = None  # None: leave the flag as it is


def decide(
    watch: Watch,
    state: WatchState,
    record: CheckRecord,
    *,
    previous: StoredVersion | None,
    previous_sha: str | None,
    routes: Mapping[str, Route],
    names: Mapping[str, str],
) -> Decision:
    """The alerts of one check (change and/or health), in the order they happen."""
    subject = Subject(watch.platform, watch.name, watch.url, watch.id)
    alerts: list[AlertRecord] = []
    flag: bool | None = None
    failed = record.outcome == "failed"
    if not failed and state.health_alerted:
        alerts.append(_health(subject, watch, state, record, routes, failing=False))
        flag = False
    if record.findings:
        proof = Proof(
            at=record.started_at,
            sha_before=previous_sha,
            sha_after=record.snapshot.sha256 if record.snapshot else None,
            version_before=previous.number if previous else None,
            before_seen=_seen(previous, state),
        )
        message = change_message(
            subject, record.findings, proof, jurisdiction_names=names, limit=watch.max_changes
        )
        jurisdictions = tuple(dict.fromkeys(f.jurisdiction for f in record.findings))
        dests = destinations(routes, watch.routes, "change", jurisdictions)
        alerts.append(
            AlertRecord(
                watch.id, AlertKind.CHANGE, message.title, message.to_json(), jurisdictions, dests
            )
        )
    reached = state.consecutive_failures + 1 >= watch.failures_before_alert and record.counted
    if failed and reached and not state.health_alerted:
        alerts.append(_health(subject, watch, state, record, routes, failing=True))
        flag = True
    return Decision(tuple(alerts), flag)


def _seen(previous: StoredVersion | None, state: WatchState) -> tuple[datetime, datetime] | None:
    """When checks first and last saw the version a change replaces: it was recorded
    at the first, and every successful check since (the last one included) saw it."""
    if previous is None:
        return None
    last = state.last_success_at or previous.created_at
    return previous.created_at, max(last, previous.created_at)


def _health(
    subject: Subject,
    watch: Watch,
    state: WatchState,
    record: CheckRecord,
    routes: Mapping[str, Route],
    *,
    failing: bool,
) -> AlertRecord:
    message = health_message(
        subject,
        failing=failing,
        reason=(record.failure_kind if failing else "recovered") or "unknown",
        message=(record.message if failing else state.last_error) or "",
        failures=state.consecutive_failures + (1 if failing else 0),
        since=state.last_success_at,
        at=record.started_at,
    )
    dests = destinations(routes, watch.routes, "health", ())
    return AlertRecord(watch.id, AlertKind.HEALTH, message.title, message.to_json(), (), dests)


def destination_id(url: str) -> str:
    """What the ledger stores for a destination: its URL's hash, never the URL."""
    return hashlib.sha256(url.encode()).hexdigest()


def destinations(
    routes: Mapping[str, Route], names: tuple[str, ...], kind: str, jurisdictions: tuple[str, ...]
) -> tuple[tuple[str, str, str], ...]:
    """(route, destination id, redacted URL) for every URL of the routes that want this alert."""
    out: list[tuple[str, str, str]] = []
    for name in names:
        route = routes.get(name)
        if route is not None and route.accepts(kind, jurisdictions):
            out.extend((name, destination_id(u), redact(u)) for u in route.urls)
    return tuple(out)
