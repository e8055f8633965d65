"""The orchestrator: one check of one watch, composed from the pipeline's stages.

    fetch ─▶ snapshot ─▶ extract ─▶ version ─▶ (compare) ─▶ store

It is the only module that knows every stage; the stages know only `model`. The
result of a check is a value (`CheckResult` with an `Outcome`); what follows from it
(logs, JSON lines, alerts) is decided by the caller from that value.

Rules that keep a failure from ever looking like a change:
- the first version of a watch is a baseline (`new`), never a change;
- a fetch or extraction failure is a failed check, counted in the watch's
  consecutive failures, and never becomes the latest version;
- a response that lost most of its text and looks like an error page is a failure;
- changed extraction rules re-extract the stored raw body into a silent
  (`technical`) version: editing the watchlist never pages anyone.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from monitor.alerting import decide
from monitor.config import Route, Watch, Watchlist
from monitor.diff import compare
from monitor.errors import ExtractError, FailureKind, FetchError, StoreError
from monitor.extract import extract
from monitor.fetch import HostLimiter, asks_for_javascript, fetch
from monitor.jurisdictions import ExtraSpec, Jurisdiction, Watching, catalog, extend, matcher_for
from monitor.model import (
    CheckRecord,
    CheckResult,
    Document,
    FetchRequest,
    NotModified,
    Outcome,
    Snapshot,
    StoredVersion,
    Validators,
    VersionKind,
    WatchState,
    document_hash,
)
from monitor.relevance import assess
from monitor.store import Store

FULL_FETCH_EVERY = timedelta(hours=24)  # ignore validators this often: servers lie about 304
LOST_SHARE = 0.5  # text shrinking below this share of the last version is suspicious
REVERT_WINDOW = 10  # versions back in which a page returning to a state is a revert
_HTML_END = re.compile(r"</html\b", re.IGNORECASE)
_ERROR_WORDS = re.compile(
    r"\b(error|not found|unavailable|something went wrong|try again|access denied|"
    r"forbidden|temporarily|maintenance)\b",
    re.IGNORECASE,
)


@dataclass
class Connectivity:
    """Tells a watch's failure from the monitor's own.

    When the hosts of `threshold` different watches in a row give no HTTP answer at
    all (DNS, connection, timeout) and nothing answered since, the monitor's own
    network is down: further such failures are recorded but not counted against the
    watches, so a cut cable never pages anyone about 87 pages at once.
    """

    threshold: int = 3
    unreached: set[str] = field(default_factory=set)

    def answered(self) -> None:
        self.unreached.clear()

    def failed(self, host: str) -> bool:
        """Record an unreachable host; True when the monitor itself looks offline."""
        offline = len(self.unreached - {host}) >= self.threshold
        self.unreached.add(host)
        return offline


class Matchers:
    """Jurisdiction matchers, built once per distinct set of watched jurisdictions."""

    def __init__(self, watchlist: Watchlist | None = None) -> None:
        extra = {
            jid: ExtraSpec(spec.name, tuple(spec.terms))
            for jid, spec in (watchlist.jurisdictions if watchlist else {}).items()
        }
        self.jurisdictions: dict[str, Jurisdiction] = extend(catalog(), extra)
        self.names = {jid: place.name for jid, place in self.jurisdictions.items()}
        self._cache: dict[tuple[str, ...], Watching] = {}

    def for_watch(self, watch: Watch) -> Watching:
        ids = tuple(sorted({*watch.jurisdictions, *([watch.about] if watch.about else [])}))
        if ids not in self._cache:
            self._cache[ids] = matcher_for(ids, self.jurisdictions)
        return self._cache[ids]


@dataclass(frozen=True)
class Context:
    """The I/O objects a check uses; injected so tests pass real fakes."""

    client: httpx.AsyncClient
    store: Store
    limiter: HostLimiter | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    matchers: Matchers = field(default_factory=Matchers)
    routes: Mapping[str, Route] = field(default_factory=dict)
    connectivity: Connectivity = field(default_factory=Connectivity)


class _Failed(Exception):
    """Internal: a check failed for a classified reason."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        snapshot: Snapshot | None = None,
        *,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.snapshot = snapshot
        self.unreachable = unreachable  # no HTTP answer at all (DNS, connection, timeout)


async def check(watch: Watch, ctx: Context) -> CheckResult:
    """Run the pipeline once for a watch, record it, and say what happened.

    A store that cannot be read or written fails the check (transient): nothing is
    recorded, so the next check finds the same change again.
    """
    started, clock = ctx.now(), time.monotonic()
    try:
        return await _check(watch, ctx, started, clock)
    except StoreError as exc:
        return CheckResult(
            watch.id,
            Outcome.FAILED,
            started,
            time.monotonic() - clock,
            failure=FailureKind.TRANSIENT,
            message=f"the store could not be read or written: {exc}",
        )


async def _check(watch: Watch, ctx: Context, started: datetime, clock: float) -> CheckResult:
    state = ctx.store.state(watch.id)
    full = _full_fetch_due(state, started)
    request = _request(watch, Validators() if full else state.validators)
    previous: StoredVersion | None = None
    try:
        fetched = await _fetch(ctx, request)
        ctx.connectivity.answered()
        previous = ctx.store.latest_version(watch.id)  # read after the wait for the host
        record = _assess(watch, state, previous, fetched, ctx)
    except _Failed as failed:
        record = _failure(watch, started, failed, ctx.connectivity)
    record = replace(record, started_at=started, elapsed=time.monotonic() - clock, full_fetch=full)
    record = _with_alerts(watch, state, previous, record, ctx)
    return _result(record, ctx.store.record(record), previous, state)


def _with_alerts(
    watch: Watch,
    state: WatchState,
    previous: StoredVersion | None,
    record: CheckRecord,
    ctx: Context,
) -> CheckRecord:
    sha = ctx.store.snapshot_sha(previous.snapshot_id) if previous and record.findings else None
    decision = decide(
        watch,
        state,
        record,
        previous=previous,
        previous_sha=sha,
        routes=ctx.routes,
        names=ctx.matchers.names,
    )
    return replace(record, alerts=decision.alerts, health_alerted=decision.health_alerted)


async def _fetch(ctx: Context, request: FetchRequest) -> Snapshot | NotModified:
    try:
        return await fetch(ctx.client, request, limiter=ctx.limiter, now=ctx.now)
    except FetchError as exc:
        unreachable = exc.status is None and exc.kind in _NETWORK
        if not unreachable:
            ctx.connectivity.answered()  # the host answered, even if badly
        raise _Failed(exc.kind, str(exc), unreachable=unreachable) from exc


_NETWORK = (FailureKind.TRANSIENT, FailureKind.PERMANENT)


def _failure(
    watch: Watch, started: datetime, failed: _Failed, connectivity: Connectivity
) -> CheckRecord:
    offline = failed.unreachable and connectivity.failed(urlsplit(watch.url).hostname or "")
    message = str(failed)
    if offline:
        message += " (the monitor's own network looks down: not counted against the watch)"
    return CheckRecord(
        watch.id,
        started,
        0.0,
        Outcome.FAILED,
        snapshot=failed.snapshot,
        failure_kind=failed.kind.value,
        message=message,
        counted=not offline,
    )


def _request(watch: Watch, validators: Validators) -> FetchRequest:
    return FetchRequest(
        url=watch.url,
        headers=watch.headers,
        validators=validators,
        max_bytes=watch.max_size,
        deadline=watch.timeout,
    )


def _full_fetch_due(state: WatchState, now: datetime) -> bool:
    last = state.last_full_fetch
    return last is None or now - last >= FULL_FETCH_EVERY


def _assess(
    watch: Watch,
    state: WatchState,
    previous: StoredVersion | None,
    fetched: Snapshot | NotModified,
    ctx: Context,
) -> CheckRecord:
    """Decide what a fetched response means for the watch, without writing anything."""
    rules_hash = watch.rules.digest()
    base = CheckRecord(watch.id, datetime.now(UTC), 0.0, Outcome.FAILED, rules_hash=rules_hash)
    if isinstance(fetched, NotModified):
        return _not_modified(watch, state, previous, ctx.store, base)
    base = replace(base, snapshot=fetched, validators=_validators(fetched))
    same_rules = previous is not None and previous.rules_hash == rules_hash
    if same_rules and fetched.sha256 == state.last_body_sha256:
        return replace(base, outcome=Outcome.UNCHANGED)  # same bytes: no re-extraction
    document = _extract(watch, fetched)
    record = _compare(previous, document, fetched, base)
    if record.version_kind != VersionKind.CHANGE or previous is None:
        return record
    _refuse_cut_off(fetched, document, previous, ctx.store)
    return _relevant(watch, previous, record, ctx)


def _refuse_cut_off(
    snapshot: Snapshot, document: Document, previous: StoredVersion, store: Store
) -> None:
    """A page that shrank and stops before the `</html>` its last version had was cut off.

    A server that dies half-way through rendering, or a proxy that times out mid-body,
    still frames the response correctly; without this, the missing half would be
    reported as removed text. (A redesign that merely drops the optional tag without
    losing text is still a change.) Only a changed page pays for reading the last body.
    """
    if _size(document) >= _size(previous.document) or _HTML_END.search(snapshot.text()):
        return
    if _HTML_END.search(store.snapshot(previous.snapshot_id).text()):
        raise _Failed(
            FailureKind.TRANSIENT,
            "the page stops before its closing </html> tag, which its last version had: "
            "cut off in transit",
            snapshot,
        )


def _not_modified(
    watch: Watch,
    state: WatchState,
    previous: StoredVersion | None,
    store: Store,
    base: CheckRecord,
) -> CheckRecord:
    if previous is None or previous.rules_hash == base.rules_hash:
        return replace(base, outcome=Outcome.NOT_MODIFIED)
    snapshot_id = store.latest_snapshot_id(watch.id)
    if snapshot_id is None:
        return replace(base, outcome=Outcome.NOT_MODIFIED)
    snapshot = store.snapshot(snapshot_id)
    document = _extract(watch, snapshot)
    return replace(
        base,
        outcome=Outcome.NOT_MODIFIED,
        snapshot=snapshot,
        document=document,
        version_kind=VersionKind.TECHNICAL,
        technical=True,
    )


def _extract(watch: Watch, snapshot: Snapshot) -> Document:
    content_type = snapshot.content_type.split(";")[0].strip() or "text/html"
    try:
        return extract(snapshot.text(), watch.rules, content_type=content_type)
    except ExtractError as exc:
        if asks_for_javascript(snapshot.body):
            message = f"{exc}: the page asks for JavaScript (a bot wall or an app shell)"
            raise _Failed(FailureKind.BLOCKED, message, snapshot) from exc
        raise _Failed(FailureKind.EXTRACTION, str(exc), snapshot) from exc


def _compare(
    previous: StoredVersion | None, document: Document, snapshot: Snapshot, base: CheckRecord
) -> CheckRecord:
    if previous is None:
        return replace(
            base, outcome=Outcome.NEW, document=document, version_kind=VersionKind.BASELINE
        )
    if previous.rules_hash != base.rules_hash:
        return replace(
            base,
            outcome=Outcome.UNCHANGED,
            document=document,
            version_kind=VersionKind.TECHNICAL,
            technical=True,
        )
    if document_hash(document) == previous.doc_hash:
        return replace(base, outcome=Outcome.UNCHANGED)
    if content_lost(previous.document, document, snapshot):
        raise _Failed(
            FailureKind.CONTENT_LOST,
            f"the page lost most of its text ({_size(document)} of {_size(previous.document)} "
            "characters left) and looks like an error page",
            snapshot,
        )
    return replace(
        base, outcome=Outcome.CHANGED, document=document, version_kind=VersionKind.CHANGE
    )


def _relevant(
    watch: Watch, previous: StoredVersion, record: CheckRecord, ctx: Context
) -> CheckRecord:
    """Attach the findings of a change; a flip back to a recent state is a revert."""
    assert record.document is not None
    changes = compare(previous.document, record.document)
    matcher = ctx.matchers.for_watch(watch)
    found = assess(previous.document, record.document, changes, matcher, about=watch.about)
    recent = ctx.store.recent_versions(watch.id, REVERT_WINDOW)
    new_hash = document_hash(record.document)
    earlier = [vid for vid, doc_hash, _ in recent[1:] if doc_hash == new_hash]
    if not earlier:
        return replace(record, findings=tuple(found))
    if any(kind == VersionKind.REVERT for _, _, kind in recent):
        note = f"flapping: back to version {earlier[0]} again; not alerted"
        return replace(record, version_kind=VersionKind.REVERT, findings=(), note=note)
    note = f"revert: the page is back to its state of version {earlier[0]}"
    return replace(
        record,
        version_kind=VersionKind.REVERT,
        note=note,
        findings=tuple(replace(f, note=note) for f in found),
    )


def content_lost(before: Document, after: Document, snapshot: Snapshot) -> bool:
    """True when `after` is most likely an error page standing in for `before`.

    A real rewrite can shrink a page; an error page shrinks it *and* says so, or is
    served with an error status.
    """
    if _size(after) >= LOST_SHARE * _size(before):
        return False
    if snapshot.status >= 400:
        return True
    text = " ".join(b.text for b in after[:20])
    return len(text) < 2000 and _ERROR_WORDS.search(text) is not None


def _size(document: Document) -> int:
    return sum(len(b.text) for b in document)


def _validators(snapshot: Snapshot) -> Validators:
    return Validators(snapshot.header("etag"), snapshot.header("last-modified"))


def _result(
    record: CheckRecord,
    version_id: int | None,
    previous: StoredVersion | None,
    state: WatchState,
) -> CheckResult:
    failed = record.outcome == Outcome.FAILED
    return CheckResult(
        watch=record.watch_id,
        outcome=Outcome(record.outcome),
        started_at=record.started_at,
        elapsed=record.elapsed,
        version_id=version_id,
        previous_version_id=previous.id if previous and version_id else None,
        sha256=record.snapshot.sha256 if record.snapshot else None,
        blocks=len(record.document) if record.document is not None else None,
        failure=FailureKind(record.failure_kind) if record.failure_kind else None,
        message=record.message,
        technical=record.technical,
        consecutive_failures=state.consecutive_failures + int(record.counted) if failed else 0,
        findings=record.findings,
        note=record.note,
        alerts=tuple(a.title for a in record.alerts),
    )


async def check_all(
    watches: Iterable[Watch],
    ctx: Context,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Check many watches at once, as the context's limiter allows; results in
    watchlist order."""

    async def one(watch: Watch) -> CheckResult:
        result = await check(watch, ctx)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(w) for w in watches)))
