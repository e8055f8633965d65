"""The daemon behind `monitor run`: schedule every watch, check, keep a heartbeat.

One APScheduler job per watch, each with a stable id, `max_instances=1`,
coalescing, a misfire grace time and jitter. On start a watch's first run follows
from its last check in the store, spread out so a restart never fires every check
at once. SIGTERM / SIGINT stop new checks, wait a bounded time for running ones,
then close everything; SIGHUP reloads the watchlist, keeping the running one if the
new file is invalid.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.check import Context, check
from monitor.config import Watch, Watchlist
from monitor.deliver import Deliverer
from monitor.errors import ConfigError, StoreError
from monitor.fetch import HostLimiter, make_client
from monitor.metrics import Metrics, serve_http
from monitor.model import CheckResult, Outcome
from monitor.pipeline import Matchers
from monitor.store import Store

log = logging.getLogger("monitor.daemon")

HEARTBEAT_EVERY = 30.0  # seconds; `monitor health` allows a few missed beats
FIRST_RUN_SPREAD = 60.0  # seconds over which never-checked or overdue watches start


@dataclass
class Settings:
    """Knobs of the daemon, with defaults fit for a container."""

    concurrency: int = 8  # fetches at once, over all hosts
    per_host: int = 2
    host_delay: float = 1.0
    stop_grace: float = 30.0
    heartbeat_every: float = HEARTBEAT_EVERY
    deliver_every: float = 15.0  # seconds between passes over due deliveries
    first_run_spread: float = FIRST_RUN_SPREAD
    http: tuple[str, int] | None = None  # serve /healthz and /metrics here
    watch_file: float = 0.0  # seconds between looks at the watchlist's mtime; 0 = off
    misfire_grace: float = 300.0


@dataclass
class Daemon:
    """A running monitor: its scheduler, its in-flight checks and its I/O objects."""

    watchlist: Watchlist
    store: Store
    reload: Callable[[], Watchlist]
    settings: Settings = field(default_factory=Settings)
    mtime: Callable[[], float] | None = None  # the watchlist file's, for reload on change
    on_result: Callable[[CheckResult], None] | None = None
    metrics: Metrics | None = None
    _running: set[asyncio.Task[Any]] = field(default_factory=set)
    _stopping: bool = False

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then finish running checks within the grace time."""
        client = make_client()
        self._limiter = HostLimiter(
            self.settings.per_host, self.settings.host_delay, total=self.settings.concurrency
        )
        self._client = client
        self._use(self.watchlist)
        scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler = scheduler
        scheduler.start()
        self._beat()
        scheduler.add_job(
            self._beat, IntervalTrigger(seconds=self.settings.heartbeat_every), id="heartbeat"
        )
        scheduler.add_job(
            self._deliver,
            IntervalTrigger(seconds=self.settings.deliver_every),
            id="deliver",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self._schedule(self.watchlist.watches)
        self._watch_file(scheduler)
        server = await self._serve_http()
        log.info(
            "monitor started: %d watches, %d routes",
            len(self.watchlist.watches),
            len(self.watchlist.routes),
        )
        try:
            await stop.wait()
        finally:
            if server is not None:
                server.close()
            await self._shutdown(client)

    async def _serve_http(self) -> asyncio.Server | None:
        if self.settings.http is None:
            return None
        self.metrics = Metrics(self.store, lambda: [w.id for w in self.watchlist.watches])
        host, port = self.settings.http
        return await serve_http(host, port, self.metrics, self._healthy)

    def _forget_heartbeat(self) -> None:
        """A daemon that stopped cleanly is not alive: `monitor health` says so at once."""
        try:
            self.store.clear_heartbeat()
        except Exception as exc:  # stopping goes on whatever the store says
            log.error("could not clear the heartbeat: %s", exc)

    def _healthy(self) -> bool:
        beat = self.store.last_heartbeat()
        age = (datetime.now(UTC) - beat).total_seconds() if beat else float("inf")
        return not self._stopping and age < 3 * self.settings.heartbeat_every

    def _watch_file(self, scheduler: AsyncIOScheduler) -> None:
        if not self.settings.watch_file or self.mtime is None:
            return
        self._seen = self.mtime()
        scheduler.add_job(
            self._poll_file, IntervalTrigger(seconds=self.settings.watch_file), id="watch-file"
        )

    def _poll_file(self) -> None:
        assert self.mtime is not None
        try:
            current = self.mtime()
        except OSError as exc:
            log.error("cannot read the watchlist: %s", exc)
            return
        if current != self._seen:
            self._seen = current
            log.info("the watchlist file changed: reloading")
            self.reload_watchlist()

    async def _shutdown(self, client: Any) -> None:
        self._stopping = True
        self._scheduler.pause()  # no new check or delivery pass starts from now on
        if self._running:
            log.info("stopping: waiting for %d running checks", len(self._running))
            _, late = await asyncio.wait(set(self._running), timeout=self.settings.stop_grace)
            for task in late:
                task.cancel()
        self._scheduler.shutdown(wait=False)  # after the wait: it cancels running jobs
        self._forget_heartbeat()
        await client.aclose()
        log.info("monitor stopped")

    def _use(self, watchlist: Watchlist) -> None:
        """Build what checks and deliveries need from a (new) watchlist."""
        self.watchlist = watchlist
        self._ctx = Context(
            self._client,
            self.store,
            self._limiter,
            matchers=Matchers(watchlist),
            routes=watchlist.routes,
        )
        self._deliverer = Deliverer(self.store, watchlist.routes, watchlist.defaults.give_up_after)

    async def _deliver(self) -> None:
        try:
            await self._deliverer.run()
        except StoreError as exc:  # locked or full: the next pass tries again
            log.error("delivery pass skipped, the store is unavailable: %s", exc)
        except Exception:  # a broken ledger read must not kill the daemon
            log.exception("delivery pass crashed")

    def _beat(self) -> None:
        try:
            self.store.heartbeat(datetime.now(UTC))
        except Exception as exc:  # the heartbeat must never kill the daemon
            log.error("heartbeat failed: %s", exc)

    def _schedule(self, watches: tuple[Watch, ...]) -> None:
        now = datetime.now(UTC)
        last_checks = {s.watch_id: s.last_check_at for s in self.store.states()}
        for watch in watches:
            self._scheduler.add_job(
                self._job,
                _trigger(watch),
                args=[watch.id],
                id=f"watch:{watch.id}",
                name=watch.id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(self.settings.misfire_grace),
                next_run_time=self._first_run(watch, last_checks.get(watch.id), now),
                replace_existing=True,
            )

    def _first_run(self, watch: Watch, last: datetime | None, now: datetime) -> datetime:
        """Resume the rhythm from the watch's last check; spread overdue watches over a
        minute (or their interval, if shorter)."""
        window = min(self.settings.first_run_spread, watch.schedule.interval or float("inf"))
        spread = timedelta(seconds=random.uniform(0, window))
        if last is None or watch.schedule.interval is None:
            return now + spread if last is None else _next_cron(watch, now)
        due = last + timedelta(seconds=watch.schedule.interval)
        return due if due > now else now + spread

    async def _job(self, watch_id: str) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            result = await check(self.watchlist.watch(watch_id), self._ctx)
            self._report(result)
        except Exception:  # one broken watch must never take the daemon down
            log.exception("check of %s crashed", watch_id)
        finally:
            self._running.discard(task)

    def _report(self, result: CheckResult) -> None:
        for title in result.alerts:
            where = "" if self.watchlist.watch(result.watch).routes else " (no route: stored only)"
            log.warning("ALERT %s%s", title, where)
        if result.alerts and not self._stopping:
            self._scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))
        level = logging.WARNING if result.outcome is Outcome.FAILED else logging.INFO
        log.log(
            level,
            "%s: %s%s",
            result.watch,
            result.outcome.value,
            f" ({result.failure}: {result.message})" if result.failure else "",
        )
        if self.on_result is not None:
            self.on_result(result)
        if self.metrics is not None:
            self.metrics.observe(result)

    def reload_watchlist(self) -> None:
        """Swap in a new watchlist if it is valid; otherwise keep the running one."""
        try:
            new = self.reload()
        except ConfigError as exc:
            log.error("watchlist reload refused, keeping the running one:\n%s", exc)
            return
        old_ids = {w.id for w in self.watchlist.watches}
        new_ids = {w.id for w in new.watches}
        for gone in old_ids - new_ids:
            self._scheduler.remove_job(f"watch:{gone}")
        changed = tuple(w for w in new.watches if w not in self.watchlist.watches)
        self._use(new)
        self._schedule(changed)
        log.info(
            "watchlist reloaded: %d watches (%d added or changed, %d removed)",
            len(new.watches),
            len(changed),
            len(old_ids - new_ids),
        )


def _trigger(watch: Watch) -> IntervalTrigger | CronTrigger:
    jitter = int(watch.schedule.jitter) or None
    if watch.schedule.cron:
        return CronTrigger.from_crontab(watch.schedule.cron, timezone=UTC)
    return IntervalTrigger(seconds=watch.schedule.interval or 6 * 3600, jitter=jitter)


def _next_cron(watch: Watch, now: datetime) -> datetime:
    fire = _trigger(watch).get_next_fire_time(None, now)
    return fire if fire is not None else now


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
