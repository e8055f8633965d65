"""The shell of a check: one read, the pure middle, one write.

    fetch ─▶ store.load ─▶ pipeline.evaluate ─▶ store.record

It is the only module that does a check's I/O: it fetches the page, reads what the
pipeline needs of the watch's past from the store in one go (after the fetch, so a
check queued for minutes behind its host holds no stored version in memory), lets
the pure pipeline decide what the response means, and writes the resulting
`CheckRecord` in one transaction. The result of a check is a value (`CheckResult`
with an `Outcome`); what follows from it (logs, JSON lines, metrics) is decided by
the caller from that value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

import httpx

from monitor.config import Route, Watch
from monitor.errors import FailureKind, FetchError, StoreError
from monitor.fetch import fetch
from monitor.limits import HostLimiter
from monitor.model import (
    CheckRecord,
    CheckResult,
    FetchRequest,
    History,
    Outcome,
    Validators,
    WatchState,
)
from monitor.pipeline import (
    REVERT_WINDOW,
    Failure,
    Fetched,
    Matchers,
    Setting,
    evaluate,
    needs_raw,
)
from monitor.store import Store

FULL_FETCH_EVERY = timedelta(hours=24)  # ignore validators this often: servers lie about 304


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

    @property
    def setting(self) -> Setting:
        return Setting(self.matchers, self.routes)


async def check(watch: Watch, ctx: Context) -> CheckResult:
    """Run the pipeline once for a watch, record it, and say what happened.

    A store that cannot be read or written fails the check (transient): nothing is
    recorded, so the next check finds the same change again.
    """
    started, clock = ctx.now(), time.monotonic()
    try:
        state = ctx.store.state(watch.id)
        full = _full_fetch_due(state, started)
        fetched = await _fetch(watch, ctx, Validators() if full else state.validators)
        wants_raw = partial(needs_raw, fetched, watch.rules.digest())
        history = ctx.store.load(watch.id, wants_raw, recent=REVERT_WINDOW)
        record = evaluate(watch, history, fetched, started=started, setting=ctx.setting)
        record = replace(record, elapsed=time.monotonic() - clock, full_fetch=full)
        return _result(record, ctx.store.record(record), history)
    except StoreError as exc:
        return CheckResult(
            watch.id,
            Outcome.FAILED,
            started,
            time.monotonic() - clock,
            failure=FailureKind.TRANSIENT,
            message=f"the store could not be read or written: {exc}",
        )


async def _fetch(watch: Watch, ctx: Context, validators: Validators) -> Fetched:
    """The response, or the failure as a value; tells the connectivity watcher."""
    request = FetchRequest(
        url=watch.url,
        headers=watch.headers,
        validators=validators,
        max_bytes=watch.max_size,
        deadline=watch.timeout,
    )
    try:
        fetched = await fetch(ctx.client, request, limiter=ctx.limiter, now=ctx.now)
    except FetchError as exc:
        return _failure(watch, exc, ctx.connectivity)
    ctx.connectivity.answered()
    return fetched


_NETWORK = (FailureKind.TRANSIENT, FailureKind.PERMANENT)


def _failure(watch: Watch, exc: FetchError, connectivity: Connectivity) -> Failure:
    unreachable = exc.status is None and exc.kind in _NETWORK
    if not unreachable:
        connectivity.answered()  # the host answered, even if badly
        return Failure(exc.kind, str(exc))
    if not connectivity.failed(urlsplit(watch.url).hostname or ""):
        return Failure(exc.kind, str(exc))
    message = f"{exc} (the monitor's own network looks down: not counted against the watch)"
    return Failure(exc.kind, message, counted=False)


def _full_fetch_due(state: WatchState, now: datetime) -> bool:
    last = state.last_full_fetch
    return last is None or now - last >= FULL_FETCH_EVERY


def _result(record: CheckRecord, version_id: int | None, history: History) -> CheckResult:
    failed = record.outcome == Outcome.FAILED
    previous = history.latest
    consecutive = history.state.consecutive_failures + int(record.counted) if failed else 0
    return CheckResult(
        watch=record.watch_id,
        outcome=record.outcome,
        started_at=record.started_at,
        elapsed=record.elapsed,
        version_id=version_id,
        previous_version_id=previous.id if previous and version_id else None,
        sha256=record.snapshot.sha256 if record.snapshot else None,
        blocks=len(record.document) if record.document is not None else None,
        failure=record.failure_kind,
        message=record.message,
        technical=record.technical,
        consecutive_failures=consecutive,
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
