"""The shell of a check: one read, the pure middle, one write.

    store.load ─▶ fetch ─▶ (store.complete) ─▶ pipeline.evaluate ─▶ store.record

It is the only module that does a check's I/O: it reads the watch's state and its
versions' hashes (no document: a check queued for minutes behind its host holds
next to nothing), fetches the page, reads what else the response needs of the
watch's past (`pipeline.needs`: nothing for a 304 or the same bytes, the latest
version's document for new bytes), lets the pure pipeline decide what the response
means, and writes the resulting `CheckRecord` in one transaction. The result of a
check is a value (`CheckResult` with an `Outcome`); what follows from it (logs, JSON
lines, metrics) is decided by the caller from that value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from monitor import formats
from monitor.browser import NEEDS_BROWSER
from monitor.config import Route, Watch
from monitor.errors import Conflict, FailureKind, FetchError, StoreError
from monitor.fetch import CookieJar, fetch
from monitor.limits import HostLimiter
from monitor.model import (
    CheckRecord,
    CheckResult,
    FetchRequest,
    Format,
    History,
    Outcome,
    Snapshot,
    Validators,
    WatchState,
)
from monitor.pipeline import (
    REVERT_WINDOW,
    Failure,
    Fetched,
    Matchers,
    Needs,
    Setting,
    evaluate,
    needs,
    new_content,
    read_new,
)
from monitor.store import Store

FULL_FETCH_EVERY = timedelta(hours=24)  # ignore validators this often: servers lie about 304
EVALUATION_DEADLINE = 120.0  # seconds one check's extract, diff and relevance may take


@dataclass
class Connectivity:
    """Tells a watch's failure from the monitor's own.

    When the hosts of `threshold` different watches in a row give no HTTP answer at
    all (DNS, connection, timeout) and nothing answered since, the monitor's own
    network is down, and none of those failures counts against its watch: a cut
    cable never pages anyone about 87 pages at once.

    So a failure without an answer is held back until the evidence is in: a host
    answers (the network works: it counts), `threshold` hosts are unreachable (an
    outage: it does not count, nor do the ones held with it), or no other check is
    running that could tell (it counts, as a lone dead host does).
    """

    threshold: int = 3
    unreached: set[str] = field(default_factory=set)
    running: int = 0
    held: list[asyncio.Future[bool]] = field(default_factory=list)

    def answered(self) -> None:
        self.unreached.clear()
        self._release(counts=True)

    async def counts(self, host: str) -> bool:
        """Record an unreachable host; whether its failure counts against its watch."""
        self.unreached.add(host)
        if len(self.unreached) >= self.threshold:
            self._release(counts=False)
            return False
        loop = asyncio.get_running_loop()
        held: asyncio.Future[bool] = loop.create_future()
        self.held.append(held)
        loop.call_soon(self._settle)  # after the checks started with this one are running
        return await held

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Around a check: while it runs, it may still show whether the network works."""
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            if self.held:
                asyncio.get_running_loop().call_soon(self._settle)

    def _settle(self) -> None:
        """Held failures count when every running check is held: no one else can tell."""
        self.held = [f for f in self.held if not f.done()]  # a cancelled check waits no more
        if self.held and self.running <= len(self.held):
            self._release(counts=True)

    def _release(self, *, counts: bool) -> None:
        held, self.held = self.held, []
        for future in held:
            if not future.done():
                future.set_result(counts)


@dataclass
class Cookies:
    """Each watch's own cookie jar (bounded, see `fetch.CookieJar`), kept between its
    checks and emptied when one fails: no watch sees another's cookies, and a flood
    of cookies or a bad session never outlives the failure it caused."""

    jars: dict[str, CookieJar] = field(default_factory=dict)

    def of(self, watch_id: str) -> CookieJar:
        return self.jars.setdefault(watch_id, CookieJar())

    def reset(self, watch_id: str) -> None:
        self.jars.pop(watch_id, None)


class Renderer(Protocol):
    """A browser fetcher (`monitor.browser.Renderer`): same request, a rendered snapshot."""

    async def render(
        self, request: FetchRequest, *, limiter: HostLimiter | None = None
    ) -> Snapshot: ...


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
    renderer: Renderer | None = None  # None: no browser on this machine
    # extract, diff, relevance and alert texts run in a worker thread, so the event loop
    # (other checks, deliveries, /healthz) goes on; past this deadline the check fails
    evaluation_deadline: float = EVALUATION_DEADLINE
    cookies: Cookies = field(default_factory=Cookies)

    @property
    def setting(self) -> Setting:
        return Setting(self.matchers, self.routes, self.store.destination_key())


async def check(watch: Watch, ctx: Context) -> CheckResult:
    """Run the pipeline once for a watch, record it, and say what happened.

    A store that cannot be read or written fails the check (transient): nothing is
    recorded, so the next check finds the same change again.
    """
    with ctx.connectivity.checking():
        return await _check(watch, ctx)


async def _check(watch: Watch, ctx: Context) -> CheckResult:
    started, clock = ctx.now(), time.monotonic()
    try:
        history = ctx.store.load(watch.id, recent=REVERT_WINDOW)
        full = _full_fetch_due(history.state, started) or watch.browser == "always"
        (fetched, hint), evaluated = await _read(watch, ctx, started, full, history)
        for _ in range(WRITE_TRIES):
            history, record = evaluated
            record = replace(record, elapsed=time.monotonic() - clock, full_fetch=full)
            record = _shown(watch, record)
            if record.outcome is Outcome.FAILED:
                ctx.cookies.reset(watch.id)
            try:
                return _result(record, ctx.store.record(record, seen=history), history)
            except Conflict:  # another process recorded the watch: decide again
                history = ctx.store.load(watch.id, recent=REVERT_WINDOW)
                evaluated = await _evaluated(watch, ctx, history, fetched, started, hint)
        raise StoreError(f"other processes kept recording {watch.id} ({WRITE_TRIES} tries)")
    except StoreError as exc:
        return CheckResult(
            watch.id,
            Outcome.FAILED,
            started,
            time.monotonic() - clock,
            failure=FailureKind.TRANSIENT,
            message=f"the store could not be read or written: {exc}",
        )


WRITE_TRIES = 3  # a check evaluated again this often when other writers record its watch


Read = tuple[tuple[Fetched, str | None], tuple[History, CheckRecord]]


async def _read(
    watch: Watch, ctx: Context, started: datetime, full: bool, history: History
) -> Read:
    """The response (plain, or rendered when the watch needs it) with a hint for a
    failure, and what they mean."""
    if watch.browser == "always":
        fetched = await _render(watch, ctx)
    else:
        validators = Validators() if full else history.state.validators
        fetched = await _fetch(watch, ctx, validators)
    evaluated = await _evaluated(watch, ctx, history, fetched, started)
    if watch.browser == "auto" and _browser_could_read(watch, evaluated[1]):
        return await _read_rendered(watch, ctx, started, (fetched, evaluated))
    return (fetched, None), evaluated


async def _evaluated(
    watch: Watch,
    ctx: Context,
    history: History,
    fetched: Fetched,
    started: datetime,
    hint: str | None = None,
) -> tuple[History, CheckRecord]:
    """What the pipeline makes of this response, against `history` with what the
    response needs of the store besides (`pipeline.needs`: nothing for a 304, the
    same bytes or the same content; the latest version's document for new content).
    New bytes are read (`pipeline.read_new`) before the store is asked for it.

    Run again, on a fresh history, when the store refuses the write because another
    process recorded the watch meanwhile: a page that process already stored is
    unchanged, and one that changed again is compared with its newest version."""
    judge = partial(evaluate, watch, started=started, setting=ctx.setting)
    if not isinstance(fetched, Snapshot):  # a 304 or a failure: nothing to read, no thread
        history = _completed(ctx, history, needs(fetched, watch.rules.digest(), history))
        return history, _hinted(judge(history, fetched), hint)
    try:
        async with asyncio.timeout(ctx.evaluation_deadline):
            read = await asyncio.to_thread(read_new, watch, history, fetched)
            history = _completed(ctx, history, needs(fetched, watch.rules.digest(), history, read))
            compare = partial(judge, history, fetched, read=read)  # diff and assess: CPU
            record = await asyncio.to_thread(compare) if new_content(read) else compare()
    except TimeoutError:
        message = (
            f"the page took longer than {ctx.evaluation_deadline:g}s to extract and compare "
            "(too large or too complex to evaluate)"
        )
        record = judge(history, Failure(FailureKind.TOO_LARGE, message))
    return history, _hinted(record, hint)


def _completed(ctx: Context, history: History, wanted: Needs) -> History:
    if not wanted:
        return history
    return ctx.store.complete(history, document=wanted.document, raw=wanted.raw)


def _hinted(record: CheckRecord, hint: str | None) -> CheckRecord:
    if hint is not None and record.outcome is Outcome.FAILED:
        return replace(record, message=f"{record.message} ({hint})")
    return record


def _shown(watch: Watch, record: CheckRecord) -> CheckRecord:
    """The record as it may be stored and shown: no password or ${VAR} value of the
    watch in its URLs or its message."""
    snapshot = record.snapshot
    if snapshot is not None:
        url, final_url = watch.shown(snapshot.url), watch.shown(snapshot.final_url)
        snapshot = replace(snapshot, url=url, final_url=final_url)
    message = watch.shown(record.message) if record.message else record.message
    return replace(record, snapshot=snapshot, message=message)


_BROWSER_READS = (FailureKind.BLOCKED, FailureKind.INCOMPLETE)


def _browser_could_read(watch: Watch, record: CheckRecord) -> bool:
    """A plain response that is an app shell, asks for JavaScript, is a challenge
    page, or lacks what the watch expects: `browser: auto` renders it instead. Never
    data (a CSV, JSON, ZIP or PDF): a browser shows nothing more of it."""
    if record.outcome is not Outcome.FAILED or record.failure_kind not in _BROWSER_READS:
        return False
    snapshot = record.snapshot
    if snapshot is None:
        return True
    head = snapshot.body[: formats.SNIFF_BYTES]
    url = snapshot.final_url
    read_as = formats.decide(snapshot.content_type, head, declared=watch.rules.format, url=url)
    return read_as in (Format.HTML, None)


async def _read_rendered(
    watch: Watch,
    ctx: Context,
    started: datetime,
    plain: tuple[Fetched, tuple[History, CheckRecord]],
) -> Read:
    """`browser: auto` on a page a plain fetch could not read. With no browser on this
    machine the failure stays the page's own, with a hint of what would help."""
    rendered = await _render(watch, ctx)
    fetched, (history, record) = plain
    if isinstance(rendered, Failure) and rendered.kind is FailureKind.NEEDS_BROWSER:
        hinted = replace(record, message=f"{record.message} ({MIGHT_READ})")
        return (fetched, MIGHT_READ), (history, hinted)
    return (rendered, None), await _evaluated(watch, ctx, history, rendered, started)


async def _render(watch: Watch, ctx: Context) -> Fetched:
    """The page as a headless browser renders it, or the failure as a value."""
    if ctx.renderer is None:
        return Failure(FailureKind.NEEDS_BROWSER, NEEDS_BROWSER)
    try:
        snapshot = await ctx.renderer.render(_request(watch, Validators()), limiter=ctx.limiter)
    except FetchError as exc:
        return await _failure(watch, exc, ctx.connectivity)
    ctx.connectivity.answered()
    return snapshot


MIGHT_READ = "a browser might read it: install chromium, see README"


def _request(watch: Watch, validators: Validators) -> FetchRequest:
    return FetchRequest(
        url=watch.url,
        headers=watch.headers,
        validators=validators,
        max_bytes=watch.max_size,
        deadline=watch.timeout,
        wait_for=watch.wait_for,
        format=watch.rules.format,
        network=watch.network,
    )


async def _fetch(watch: Watch, ctx: Context, validators: Validators) -> Fetched:
    """The response, or the failure as a value; tells the connectivity watcher."""
    try:
        fetched = await fetch(
            ctx.client,
            _request(watch, validators),
            limiter=ctx.limiter,
            now=ctx.now,
            cookies=ctx.cookies.of(watch.id),
        )
    except FetchError as exc:
        return await _failure(watch, exc, ctx.connectivity)
    ctx.connectivity.answered()
    return fetched


_NETWORK = (FailureKind.TRANSIENT, FailureKind.PERMANENT)


async def _failure(watch: Watch, exc: FetchError, connectivity: Connectivity) -> Failure:
    unreachable = exc.status is None and exc.kind in _NETWORK
    said = watch.shown(str(exc))  # the health alert quotes it
    if not unreachable:
        connectivity.answered()  # the host answered, even if badly
        return Failure(exc.kind, said)
    if await connectivity.counts(urlsplit(watch.url).hostname or ""):
        return Failure(exc.kind, said)
    message = f"{said} (the monitor's own network looks down: not counted against the watch)"
    return Failure(exc.kind, message, counted=False)


def _full_fetch_due(state: WatchState, now: datetime) -> bool:
    last = state.last_full_fetch
    return last is None or now - last >= FULL_FETCH_EVERY


def _result(record: CheckRecord, version: int | None, history: History) -> CheckResult:
    failed = record.outcome == Outcome.FAILED
    previous = history.latest
    consecutive = history.state.consecutive_failures + int(record.counted) if failed else 0
    return CheckResult(
        watch=record.watch_id,
        outcome=record.outcome,
        started_at=record.started_at,
        elapsed=record.elapsed,
        version=version,
        previous_version=previous.number if previous and version else None,
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
