"""The daemon behind `monitor run`: schedule every watch, check, keep a heartbeat.

One APScheduler job per watch, each with a stable id, `max_instances=1`,
coalescing, a misfire grace time and jitter; when each job first runs and what
counts as a fresh heartbeat are pure rules in `monitor.schedule`. SIGTERM / SIGINT
stop new checks, wait a bounded time for running ones, then close everything;
SIGHUP (or a change of the watchlist file) reloads the watchlist, keeping the
running one if the new file is invalid.

Every I/O seam is a constructor argument — the store, the HTTP client, the clock,
the random draw that spreads first runs, the sender of alerts, the metrics — so
each piece (scheduling, reload, heartbeat, a delivery pass, shutdown) runs in a
test in milliseconds against a real SQLite file and `httpx.MockTransport`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from starlette.types import ASGIApp

from monitor import memory, schedule
from monitor.app import check_context, deliverer
from monitor.browser import Renderer
from monitor.check import Context, check
from monitor.config import Watch, Watchlist
from monitor.deliver import BACKOFF_BASE, BACKOFF_CAP, Deliverer, Sender
from monitor.errors import ConfigError, StoreError
from monitor.fetch import make_client
from monitor.limits import HostLimiter
from monitor.metrics import Endpoint, Metrics, serve_http
from monitor.model import CheckResult, Outcome
from monitor.store import Store

log = logging.getLogger("monitor.daemon")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Knobs of the daemon, with defaults fit for a container."""

    concurrency: int = 8  # fetches at once, over all hosts
    per_host: int = 2
    host_delay: float = 1.0
    stop_grace: float = 30.0  # seconds SIGTERM waits for running checks
    heartbeat_every: float = schedule.HEARTBEAT_EVERY
    health_max_age: float = schedule.HEALTH_MAX_AGE  # /healthz, as `monitor health`
    deliver_every: float = 15.0  # seconds between passes over due deliveries
    backoff_base: float = BACKOFF_BASE  # seconds before a failed delivery's first retry
    backoff_cap: float = BACKOFF_CAP  # longest wait between two delivery attempts
    first_run_spread: float = schedule.FIRST_RUN_SPREAD
    http: tuple[str, int] | None = None  # serve /healthz and /metrics here
    http_token: str | None = None  # the dashboard's token ($MONITOR_HTTP_TOKEN)
    watch_file: float = 0.0  # seconds between looks at the watchlist's mtime; 0 = off
    misfire_grace: float = 300.0
    trim_every: float = 60.0  # seconds between hand-backs of freed heap (monitor.memory)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """A running monitor: its scheduler, its in-flight checks and its I/O objects.

    The daemon owns `client` (made with `make_client()` unless one is given) and
    closes it on stop; the store belongs to the caller. `draw` returns a number in
    [0, 1) that places a watch's first run within the spread window.
    """

    def __init__(
        self,
        watchlist: Watchlist,
        store: Store,
        *,
        reload: Callable[[], Watchlist],
        settings: Settings | None = None,
        client: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] = _utcnow,
        draw: Callable[[], float] = random.random,
        mtime: Callable[[], float] | None = None,
        send: Sender | None = None,
        on_result: Callable[[CheckResult], None] | None = None,
        metrics: Metrics | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.watchlist = watchlist
        self.store = store
        self.reload = reload
        self.now = now
        self.draw = draw
        self.mtime = mtime  # the watchlist file's, for reload on change
        self.send = send
        self.on_result = on_result
        self.metrics = metrics if metrics is not None else Metrics(store, self.watch_ids)
        self.client = client if client is not None else make_client()
        self.renderer = renderer if renderer is not None else Renderer()  # launched on first use
        self.limiter = HostLimiter(
            self.settings.per_host, self.settings.host_delay, total=self.settings.concurrency
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.server: Endpoint | None = None
        self.context = self._context(watchlist)
        self.deliverer = self._deliverer(watchlist)
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._seen_mtime: float | None = None
        self._failures: dict[str, int] = {}  # failed checks in a row, counted or not

    # --- lifecycle ----------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then finish running checks within the grace time."""
        await self.start()
        self.scheduler.resume()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Beat once, put every job in place and open the HTTP endpoint; the scheduler
        stays paused until `serve` resumes it, so a test can look before anything runs."""
        self.scheduler.start(paused=True)
        self.beat()
        self.scheduler.add_job(
            self.beat, IntervalTrigger(seconds=self.settings.heartbeat_every), id="heartbeat"
        )
        self.scheduler.add_job(
            memory.trim, IntervalTrigger(seconds=self.settings.trim_every), id="trim"
        )
        self.scheduler.add_job(
            self.deliver,
            IntervalTrigger(seconds=self.settings.deliver_every),
            id="deliver",
            max_instances=1,
            coalesce=True,
            next_run_time=self.now(),
        )
        self._schedule(self.watchlist.watches)
        self._watch_file()
        if self.settings.http is not None:
            host, port = self.settings.http
            self.server = await serve_http(host, port, self.metrics, self.healthy, self._pages())
        log.info(
            "monitor started: %d watches, %d routes",
            len(self.watchlist.watches),
            len(self.watchlist.routes),
        )

    def _pages(self) -> ASGIApp | None:
        """The dashboard for `--http`: on a loopback address, or anywhere with a token;
        else off (a warning says so), and `/healthz` and `/metrics` alone are served."""
        from monitor import dashboard  # only with --http: a daemon without it never loads it

        host, _port = self.settings.http or ("127.0.0.1", 0)
        token = self.settings.http_token
        if not token and not dashboard.is_loopback(host):
            log.warning("the dashboard is off on %s: set MONITOR_HTTP_TOKEN to serve it", host)
            return None
        return dashboard.app(
            self.store, lambda: self.watchlist, network_down=self.metrics.network_down, token=token
        )

    async def stop(self) -> None:
        """Start no new check, give running ones `stop_grace` seconds, then close."""
        self._stopping = True
        if self.server is not None:
            self.server.close()
        if self.scheduler.running:
            self.scheduler.pause()  # no new check or delivery pass starts from now on
        await self._finish_running()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # after the wait: it cancels running jobs
        self._forget_heartbeat()
        await self.client.aclose()
        await self.renderer.close()
        if self.server is not None:
            await self.server.wait_closed()
        log.info("monitor stopped")

    async def _finish_running(self) -> None:
        if not self._running:
            return
        log.info("stopping: waiting for %d running checks", len(self._running))
        _, late = await asyncio.wait(set(self._running), timeout=self.settings.stop_grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("stopping: cancelled %d checks that outlived the grace time", len(late))

    # --- heartbeat and health -----------------------------------------------------------

    def beat(self) -> None:
        """Record that this daemon is alive; `monitor health` and `/healthz` read it."""
        try:
            self.store.heartbeat(self.now())
        except Exception as exc:  # the heartbeat must never kill the daemon
            log.error("heartbeat failed: %s", exc)

    def healthy(self) -> bool:
        """Alive and not stopping, by the same threshold as `monitor health`."""
        beat = self.store.last_heartbeat()
        fresh = schedule.is_fresh(beat, self.now(), self.settings.health_max_age)
        return fresh and not self._stopping

    def _forget_heartbeat(self) -> None:
        """A daemon that stopped cleanly is not alive: `monitor health` says so at once."""
        try:
            self.store.clear_heartbeat()
        except Exception as exc:  # stopping goes on whatever the store says
            log.error("could not clear the heartbeat: %s", exc)

    # --- the watchlist ------------------------------------------------------------------

    def watch_ids(self) -> list[str]:
        """The ids of the running watchlist (metrics report only these)."""
        return [w.id for w in self.watchlist.watches]

    def reload_watchlist(self) -> None:
        """Swap in a new watchlist if it is valid; otherwise keep the running one."""
        try:
            new = self.reload()
        except ConfigError as exc:
            log.error("watchlist reload refused, keeping the running one:\n%s", exc)
            return
        old_ids = set(self.watch_ids())
        gone = old_ids - {w.id for w in new.watches}
        for watch_id in gone:
            self.scheduler.remove_job(f"watch:{watch_id}")
        changed = tuple(w for w in new.watches if w not in self.watchlist.watches)
        self._use(new)
        self._schedule(changed)
        log.info(
            "watchlist reloaded: %d watches (%d added or changed, %d removed)",
            len(new.watches),
            len(changed),
            len(gone),
        )

    def poll_file(self) -> None:
        """Reload when the watchlist file's modification time moved."""
        if self.mtime is None:
            return
        try:
            current = self.mtime()
        except OSError as exc:
            log.error("cannot read the watchlist: %s", exc)
            return
        if current != self._seen_mtime:
            self._seen_mtime = current
            log.info("the watchlist file changed: reloading")
            self.reload_watchlist()

    def _watch_file(self) -> None:
        if not self.settings.watch_file or self.mtime is None:
            return
        self._seen_mtime = self.mtime()
        self.scheduler.add_job(
            self.poll_file, IntervalTrigger(seconds=self.settings.watch_file), id="watch-file"
        )

    def _use(self, watchlist: Watchlist) -> None:
        """Build what checks and deliveries need from a (new) watchlist."""
        self.watchlist = watchlist
        self.context = self._context(watchlist)
        self.deliverer = self._deliverer(watchlist)

    def _context(self, watchlist: Watchlist) -> Context:
        """What a check needs, from the composition root."""
        return check_context(
            watchlist, self.store, self.client, self.limiter, now=self.now, renderer=self.renderer
        )

    def _deliverer(self, watchlist: Watchlist) -> Deliverer:
        return deliverer(
            watchlist,
            self.store,
            now=self.now,
            backoff_base=self.settings.backoff_base,
            backoff_cap=self.settings.backoff_cap,
            send=self.send,
        )

    # --- scheduling ---------------------------------------------------------------------

    def _schedule(self, watches: tuple[Watch, ...]) -> None:
        now = self.now()
        states = {s.watch_id: s for s in self.store.states()}
        for watch in watches:
            if not watch.enabled:  # `enabled: false`: no job; a reload may have just set it
                if self.scheduler.get_job(f"watch:{watch.id}") is not None:
                    self.scheduler.remove_job(f"watch:{watch.id}")
                continue
            state = states.get(watch.id)
            first = schedule.first_run(
                watch.schedule,
                state.last_check_at if state else None,
                now,
                spread=self.settings.first_run_spread,
                fraction=self.draw(),
                failed=state is not None and state.last_outcome is Outcome.FAILED,
            )
            self.scheduler.add_job(
                self.run_check,
                schedule.trigger(watch.schedule),
                args=[watch.id],
                id=f"watch:{watch.id}",
                name=watch.id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(self.settings.misfire_grace),
                next_run_time=first,
                replace_existing=True,
            )

    # --- jobs ---------------------------------------------------------------------------

    async def run_check(self, watch_id: str) -> None:
        """One scheduled check; a crash is logged, never raised into the scheduler."""
        watch = self.watchlist.watch(watch_id)
        if self._stopping:
            return
        if watch is None:  # its job fired just before a reload removed it
            log.info("%s: no longer in the watchlist, not checked", watch_id)
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            result = await check(watch, self.context)
            self._report(result)
            self._retry_if_failed(watch, result)
        except Exception:  # one broken watch must never take the daemon down
            log.exception("check of %s crashed", watch_id)
        finally:
            self._running.discard(task)

    def _retry_if_failed(self, watch: Watch, result: CheckResult) -> None:
        """A failed check is tried again soon, with back-off, not a whole interval later."""
        if result.outcome is not Outcome.FAILED:
            self._failures.pop(watch.id, None)
            return
        failures = self._failures[watch.id] = self._failures.get(watch.id, 0) + 1
        job = self.scheduler.get_job(f"watch:{watch.id}")
        if job is None or self._stopping:
            return
        now = self.now()
        at = schedule.retry_at(watch.schedule, failures, now, regular=job.next_run_time)
        if at is not None:
            self.scheduler.modify_job(job.id, next_run_time=at)
            log.info("%s: retrying in %s (failure %d in a row)", watch.id, at - now, failures)

    async def deliver(self) -> None:
        """One pass over due deliveries; a store that is unavailable skips the pass."""
        try:
            await self.deliverer.run()
        except StoreError as exc:  # locked or full: the next pass tries again
            log.error("delivery pass skipped, the store is unavailable: %s", exc)
        except Exception:  # a broken ledger read must not kill the daemon
            log.exception("delivery pass crashed")

    def _report(self, result: CheckResult) -> None:
        for title in result.alerts:
            watch = self.watchlist.watch(result.watch)
            where = "" if watch and watch.routes else " (no route: stored only)"
            log.warning("ALERT %s%s", title, where)
        if result.alerts:
            self._deliver_soon()
        level = logging.WARNING if result.outcome is Outcome.FAILED else logging.INFO
        log.log(
            level,
            "%s: %s%s",
            result.watch,
            result.outcome.value,
            f" ({result.failure}: {result.message})" if result.failure else "",
            extra=_fields(result),
        )
        if self.on_result is not None:
            self.on_result(result)
        self.metrics.observe(result)

    def _deliver_soon(self) -> None:
        """A new alert should not wait for the next delivery pass: run one now."""
        if not self._stopping and self.scheduler.get_job("deliver") is not None:
            self.scheduler.modify_job("deliver", next_run_time=self.now())


def _fields(result: CheckResult) -> dict[str, object]:
    """A check's log line as fields (`logs.FIELDS`), for `--log-format json`."""
    fields: dict[str, object] = {
        "watch": result.watch,
        "outcome": result.outcome.value,
        "elapsed": round(result.elapsed, 3),
        "findings": len(result.findings),
        "alerts": len(result.alerts),
    }
    if result.failure is not None:
        fields["failure"] = result.failure.value
    if result.version is not None:
        fields["version"] = result.version
    return fields


def run(daemon: Daemon) -> int:
    """Run the daemon in a fresh event loop until SIGTERM or SIGINT; return the exit code."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload_watchlist)
        await daemon.serve(stop)

    asyncio.run(main())
    return 0
