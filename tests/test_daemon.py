"""The daemon, in process: scheduling, checks, delivery, reload, heartbeat, shutdown.

Each test builds a `Daemon` against a real SQLite file in `tmp_path`, pages served by
`httpx.MockTransport`, a clock the test moves and a sender that records (or refuses)
alerts. `start()` leaves the scheduler paused, so a test runs the daemon's jobs itself
— `run_check`, `deliver`, `beat`, `reload_watchlist`, `poll_file` — and then `stop()`.
One test lets the scheduler run for real; the two at the end start `monitor run` as a
process, for what only a process shows: signals, the command line, exit codes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor import cli, config
from monitor.daemon import Daemon, Settings
from monitor.errors import NotifyError
from monitor.fetch import make_client
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.model import CheckResult
from monitor.store import Store
from tests.conftest import LocalSite, free_port
from tests.harness import monitor, query, running

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0
PAGE = """<html><body><nav>Home</nav><main><h1>Government requests</h1>
<p>We review every request for user data carefully.</p>
<p>{hk}</p></main></body></html>"""
HK_BEFORE = "We do not respond to requests from the Hong Kong government."
HK_AFTER = "We respond to requests from the Hong Kong government."
HOOK = "json://desk.example.org/hook"


def page(hk: str) -> str:
    return PAGE.format(hk=hk)


class Clock:
    """The daemon's `now`, moved by the test."""

    def __init__(self, start: datetime = NOW) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class Site:
    """Pages by path behind `httpx.MockTransport`; `hold()` keeps the next request
    waiting until `release()`, so a check can be caught in flight."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.requests = 0
        self.held = asyncio.Event()
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self._gate is not None:
            self.held.set()
            await self._gate.wait()
        html = self.pages.get(request.url.path)
        return httpx.Response(200, html=html) if html else httpx.Response(404, text="no")


class Outbox:
    """The daemon's alert sender: records each send, or fails while `down`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.attempts = 0
        self.down = False

    async def send(self, url: str, message: Message, *, skip: int = 0) -> None:
        self.attempts += 1
        if self.down:
            raise NotifyError("HTTP 500 from the webhook")
        self.sent.append((url, message))


def watchlist_text(watches: dict[str, str], *, route: bool = True, extra: str = "") -> str:
    """Hourly watches `id: path` on https://example.org, alerting HOOK."""
    lines = ["defaults:", "  interval: 1h", "  jitter: 0"]
    if route:
        lines += ["  routes: [desk]", "routes:", f"  desk: ['{HOOK}']"]
    lines.append("watches:")
    lines += [
        f"  - {{id: {wid}, platform: Meta, name: Government requests, "
        f"url: 'https://example.org{path}'}}"
        for wid, path in watches.items()
    ]
    return "\n".join(lines) + "\n" + extra


class World:
    """Everything a daemon talks to, shared by the daemons one test starts."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "m.db"
        self.file = tmp_path / "w.yaml"
        self.clock = Clock()
        self.site = Site()
        self.outbox = Outbox()
        self.results: list[CheckResult] = []

    def load(self) -> config.Watchlist:
        return config.load(self.file, env={})

    def daemon(self, store: Store, **options: Any) -> Daemon:
        settings = Settings(**({"host_delay": 0.0} | options.pop("settings", {})))
        defaults: dict[str, Any] = {
            "client": make_client(transport=httpx.MockTransport(self.site.handle)),
            "now": self.clock,
            "draw": lambda: 0.0,
            "send": self.outbox.send,
            "on_result": self.results.append,
        }
        return Daemon(
            self.load(), store, reload=self.load, settings=settings, **(defaults | options)
        )

    def outcomes(self, watch_id: str | None = None) -> list[str]:
        return [r.outcome.value for r in self.results if watch_id in (None, r.watch)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def store(world: World) -> Iterator[Store]:
    opened = Store.open(str(world.db))
    yield opened
    opened.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="monitor")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("monitor")]


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


# --- a change reaches the desk, once --------------------------------------------------


def test_a_hong_kong_change_is_alerted_and_delivered_once(
    world: World, store: Store, logs: pytest.LogCaptureFixture
) -> None:
    world.site.pages["/p"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"meta-hk": "/p"}))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        for hk in (HK_BEFORE, HK_BEFORE, HK_AFTER, HK_AFTER):
            world.site.pages["/p"] = page(hk)
            await daemon.run_check("meta-hk")
            await daemon.deliver()
            world.clock.advance(HOUR)
        await daemon.stop()

    run(go)
    assert world.outcomes() == ["new", "unchanged", "changed", "unchanged"]
    [(url, message)] = world.outbox.sent
    assert url == HOOK and "Hong Kong" in message.title and "Meta" in message.title
    assert any(m.startswith("ALERT Meta") for m in messages(logs))
    assert query(world.db, "SELECT status, attempts FROM deliveries") == [("sent", 1)]


def test_an_alert_asks_for_a_delivery_pass_at_once(world: World, store: Store) -> None:
    world.site.pages["/p"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"meta-hk": "/p"}))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        await daemon.run_check("meta-hk")
        world.clock.advance(HOUR)
        daemon.scheduler.modify_job("deliver", next_run_time=world.clock() + timedelta(hours=9))
        world.site.pages["/p"] = page(HK_AFTER)
        await daemon.run_check("meta-hk")
        assert daemon.scheduler.get_job("deliver").next_run_time == world.clock()
        await daemon.stop()

    run(go)
    assert world.outcomes() == ["new", "changed"]


# --- delivery retries with back-off, across a restart --------------------------------------


def test_a_pending_delivery_survives_a_crash_and_is_sent_once_after_restart(
    world: World, store: Store
) -> None:
    world.site.pages["/p"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"meta-hk": "/p"}))
    world.outbox.down = True

    async def first_life() -> None:  # ends without stop(), as under kill -9
        daemon = world.daemon(store, settings={"backoff_base": 10.0})
        await daemon.start()
        await daemon.run_check("meta-hk")
        world.site.pages["/p"] = page(HK_AFTER)
        world.clock.advance(HOUR)
        await daemon.run_check("meta-hk")
        await daemon.deliver()
        await daemon.client.aclose()

    run(first_life)
    assert world.outbox.attempts == 1 and world.outbox.sent == []
    [(status, attempts, retry_at)] = query(
        world.db, "SELECT status, attempts, next_attempt_at FROM deliveries"
    )
    assert (status, attempts) == ("pending", 1)
    wait = datetime.fromisoformat(retry_at).replace(tzinfo=UTC) - world.clock()
    assert timedelta(seconds=5) <= wait <= timedelta(seconds=10)  # the configured back-off
    store.close()

    world.outbox.down = False
    world.clock.advance(10)
    restarted = Store.open(str(world.db))

    async def second_life() -> None:
        daemon = world.daemon(restarted)
        await daemon.start()
        await daemon.deliver()
        await daemon.deliver()  # nothing more is due
        await daemon.stop()

    try:
        run(second_life)
    finally:
        restarted.close()
    assert world.outbox.attempts == 2 and len(world.outbox.sent) == 1
    assert "Hong Kong" in world.outbox.sent[0][1].title
    assert query(world.db, "SELECT status, attempts FROM deliveries") == [("sent", 2)]
    assert query(world.db, "SELECT count(*) FROM alerts") == [(1,)]
    assert query(world.db, "PRAGMA integrity_check") == [("ok",)]


# --- shutdown -------------------------------------------------------------------------------


def test_stop_lets_a_running_check_finish_and_starts_no_new_one(
    world: World, store: Store, logs: pytest.LogCaptureFixture
) -> None:
    world.site.pages["/slow"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"slow": "/slow"}, route=False))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        await daemon.run_check("slow")
        world.clock.advance(HOUR)
        world.site.hold()
        in_flight = asyncio.create_task(daemon.run_check("slow"))
        await world.site.held.wait()
        stopping = asyncio.create_task(daemon.stop())
        await asyncio.sleep(0)  # stop() is now waiting for the check
        requests = world.site.requests
        await daemon.run_check("slow")  # a job that fires now does nothing
        assert world.site.requests == requests
        world.site.release()
        await stopping
        await in_flight

    run(go)
    said = messages(logs)
    stopping = said.index("stopping: waiting for 1 running checks")
    assert said.index("slow: unchanged") > stopping  # finished, not cancelled
    assert said[-1] == "monitor stopped"
    assert not [r for r in logs.records if r.exc_info]
    assert store.last_heartbeat() is None

    db = world.db
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "PRAGMA foreign_key_check") == []
    checks = query(db, "SELECT outcome, snapshot_id FROM checks ORDER BY id")
    assert [outcome for outcome, _ in checks] == ["new", "unchanged"]
    assert all(snapshot is not None for _, snapshot in checks)
    assert query(db, "SELECT count(*) FROM versions") == [(1,)]
    state = query(
        db,
        "SELECT last_outcome, consecutive_failures, last_check_at = "
        "(SELECT max(started_at) FROM checks) FROM watch_state",
    )
    assert state == [("unchanged", 0, 1)]


def test_stop_cancels_a_check_that_outlives_the_grace_time(
    world: World, store: Store, logs: pytest.LogCaptureFixture
) -> None:
    world.site.pages["/stuck"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"stuck": "/stuck"}, route=False))

    async def go() -> None:
        daemon = world.daemon(store, settings={"stop_grace": 0.0})
        await daemon.start()
        world.site.hold()  # and never released
        in_flight = asyncio.create_task(daemon.run_check("stuck"))
        await world.site.held.wait()
        await daemon.stop()
        with pytest.raises(asyncio.CancelledError):
            await in_flight

    run(go)
    said = messages(logs)
    assert "stopping: cancelled 1 checks that outlived the grace time" in said
    assert said[-1] == "monitor stopped"
    assert query(world.db, "SELECT count(*) FROM checks") == [(0,)]
    assert store.last_heartbeat() is None


# --- reload ---------------------------------------------------------------------------------


def test_reload_refuses_a_broken_watchlist_and_applies_a_valid_one(
    world: World, store: Store, logs: pytest.LogCaptureFixture
) -> None:
    world.site.pages["/one"] = page(HK_BEFORE)
    world.site.pages["/two"] = page(HK_AFTER)
    world.file.write_text(watchlist_text({"one": "/one"}))

    def job_ids(daemon: Daemon) -> set[str]:
        return {j.id for j in daemon.scheduler.get_jobs() if j.id.startswith("watch:")}

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        await daemon.run_check("one")
        world.file.write_text(world.file.read_text().replace("interval: 1h", "interval: often"))
        daemon.reload_watchlist()
        refused = next(m for m in messages(logs) if "watchlist reload refused" in m)
        assert f"{world.file}:2: defaults.interval" in refused
        assert job_ids(daemon) == {"watch:one"} and daemon.healthy()
        world.clock.advance(HOUR)
        await daemon.run_check("one")  # still checking, on the old watchlist

        world.file.write_text(watchlist_text({"one": "/one", "two": "/two"}))
        daemon.reload_watchlist()
        assert "watchlist reloaded: 2 watches (1 added or changed, 0 removed)" in messages(logs)
        assert job_ids(daemon) == {"watch:one", "watch:two"}
        await daemon.run_check("two")

        world.file.write_text(watchlist_text({"two": "/two"}))
        daemon.reload_watchlist()
        assert "watchlist reloaded: 1 watches (0 added or changed, 1 removed)" in messages(logs)
        assert job_ids(daemon) == {"watch:two"}
        await daemon.stop()

    run(go)
    assert world.outcomes("one") == ["new", "unchanged"]
    assert world.outcomes("two") == ["new"]


def test_a_watch_removed_while_its_check_runs_or_waits_is_no_crash(
    world: World, store: Store, logs: pytest.LogCaptureFixture
) -> None:
    """A reload can drop a watch whose check is in flight, or whose job already fired."""
    world.site.pages["/one"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"one": "/one", "two": "/two"}))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        world.site.hold()
        running = asyncio.create_task(daemon.run_check("one"))
        await world.site.held.wait()
        world.file.write_text(watchlist_text({"two": "/two"}))
        daemon.reload_watchlist()
        world.site.release()
        await running
        await daemon.run_check("one")  # a job that fired before the reload removed it
        await daemon.stop()

    run(go)
    assert world.outcomes("one") == ["new"]
    assert not [r for r in logs.records if r.levelno >= logging.ERROR], messages(logs)
    assert "one: no longer in the watchlist, not checked" in messages(logs)


def test_a_changed_watchlist_file_is_reloaded_when_watched(world: World, store: Store) -> None:
    world.file.write_text(watchlist_text({"one": "/one"}))
    mtime = [1.0]

    async def go() -> None:
        daemon = world.daemon(store, mtime=lambda: mtime[0], settings={"watch_file": 5.0})
        await daemon.start()
        assert daemon.scheduler.get_job("watch-file") is not None
        world.file.write_text(watchlist_text({"one": "/one", "two": "/two"}))
        daemon.poll_file()  # same mtime: not looked at
        assert daemon.watch_ids() == ["one"]
        mtime[0] = 2.0
        daemon.poll_file()
        assert daemon.watch_ids() == ["one", "two"]
        await daemon.stop()

    run(go)


# --- scheduling -----------------------------------------------------------------------------


def test_first_runs_follow_the_last_checks_in_the_store(world: World, store: Store) -> None:
    world.site.pages["/p"] = page(HK_BEFORE)
    cron = (
        "  - {id: cron, platform: M, name: N, url: 'https://example.org/p', cron: '30 * * * *'}\n"
    )
    world.file.write_text(
        watchlist_text({"seen": "/p", "fresh": "/p"}).replace("jitter: 0", "jitter: 5m") + cron
    )

    async def go() -> None:
        daemon = world.daemon(store, draw=lambda: 0.5)
        await daemon.run_check("seen")
        checked = world.clock()
        world.clock.advance(600)
        await daemon.start()
        jobs = {j.id: j for j in daemon.scheduler.get_jobs()}
        assert jobs["watch:seen"].next_run_time == checked + timedelta(hours=1)
        assert jobs["watch:fresh"].next_run_time == world.clock() + timedelta(seconds=30)
        assert jobs["watch:cron"].trigger.jitter == 300  # cron keeps the watchlist's jitter
        for job in (jobs["watch:seen"], jobs["watch:fresh"], jobs["watch:cron"]):
            assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 300)
        assert jobs["heartbeat"].trigger.interval == timedelta(seconds=30)
        assert jobs["trim"].trigger.interval == timedelta(seconds=60)  # freed heap back
        await daemon.stop()

    run(go)


def test_the_scheduler_runs_a_due_check(world: World, store: Store) -> None:
    """The one test with the real clock: a never-checked watch (spread 0) runs at once."""
    world.site.pages["/p"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"meta-hk": "/p"}))
    stop = asyncio.Event()

    async def go() -> None:
        daemon = world.daemon(store, now=lambda: datetime.now(UTC), on_result=lambda _: stop.set())
        await asyncio.wait_for(daemon.serve(stop), timeout=30)  # a hang fails, not a time

    run(go)
    assert query(world.db, "SELECT outcome FROM checks") == [("new",)]
    assert store.last_heartbeat() is None


# --- heartbeat, health and the HTTP endpoint -----------------------------------------------


def test_health_follows_the_heartbeat(
    world: World, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    world.clock = Clock(datetime.now(UTC))  # `monitor health` reads the real clock
    world.file.write_text(watchlist_text({"one": "/one"}))
    db = str(world.db)
    assert cli.main(["health", "--db", db]) == 1
    assert "no daemon heartbeat" in capsys.readouterr().err

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        assert store.last_heartbeat() == world.clock()
        assert cli.main(["health", "--db", db]) == 0
        assert capsys.readouterr().out.startswith("healthy")
        world.clock.advance(121)
        assert not daemon.healthy()  # four beats missed
        daemon.beat()
        assert daemon.healthy()
        await daemon.stop()
        assert not daemon.healthy()

    run(go)
    assert cli.main(["health", "--db", db]) == 1  # a clean stop clears the heartbeat
    assert "no daemon heartbeat" in capsys.readouterr().err


def test_the_endpoint_serves_the_injected_metrics_and_503_when_the_store_fails(
    world: World, store: Store
) -> None:
    world.site.pages["/p"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"meta-hk": "/p"}))
    metrics = Metrics(store, lambda: ["meta-hk"])
    world.clock = Clock(datetime.now(UTC))

    async def go() -> None:
        daemon = world.daemon(store, metrics=metrics, settings={"http": ("127.0.0.1", 0)})
        await daemon.start()
        assert daemon.metrics is metrics and daemon.server is not None
        port = daemon.server.port
        await daemon.run_check("meta-hk")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as c:
            scraped = await c.get("/metrics")
            healthz = await c.get("/healthz")
            pages = await c.get("/watch/meta-hk")  # `run --http` serves the dashboard too
            spoil(world.db)
            broken = await c.get("/healthz")
            broken_page = await c.get("/")
        await daemon.stop()
        assert pages.status_code == 200 and "version 1</strong> · baseline" in pages.text
        assert broken_page.status_code == 503
        assert broken_page.text.startswith("store unavailable: ")
        assert 'monitor_checks_total{outcome="new"} 1.0' in scraped.text
        assert healthz.status_code == 200 and healthz.text.startswith("ok")
        assert broken.status_code == 503
        assert broken.text == "store unavailable: file is not a database\n"

    run(go)


def test_the_dashboard_is_served_beyond_loopback_only_with_a_token(
    world: World, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    world.file.write_text(watchlist_text({"meta-hk": "/p"}))
    open_to_all = world.daemon(store, settings={"http": ("0.0.0.0", 9130)})
    assert open_to_all._pages() is None  # /healthz and /metrics only
    assert "the dashboard is off on 0.0.0.0: set MONITOR_HTTP_TOKEN" in caplog.text
    with_token = {"http": ("0.0.0.0", 9130), "http_token": "t" * 32}
    assert world.daemon(store, settings=with_token)._pages() is not None
    assert world.daemon(store, settings={"http": ("127.0.0.1", 9130)})._pages() is not None


def spoil(db: Path) -> None:
    """Overwrite a SQLite store (and its WAL) with garbage, as a broken disk would."""
    for path in db.parent.glob(db.name + "*"):
        path.write_bytes(b"garbage!" * (path.stat().st_size // 8 + 1))


# --- as a process: signals, the command line, exit codes -----------------------------------


def process_watchlist(tmp_path: Path, site: LocalSite, *ids: str) -> Path:
    path = tmp_path / "w.yaml"
    lines = ["defaults:", "  interval: 1h", "watches:"]
    lines += [f"  - {{id: {i}, platform: Meta, name: N, url: '{site.url('/p')}'}}" for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_monitor_run_checks_serves_healthz_and_exits_0_on_sigterm(
    tmp_path: Path, site: LocalSite
) -> None:
    site["/p"] = page(HK_BEFORE)
    watchlist = process_watchlist(tmp_path, site, "meta-hk")
    db = str(tmp_path / "m.db")
    port = free_port()
    options = ("--spread", "0", "--http", f"127.0.0.1:{port}")
    with running(tmp_path, watchlist, "daemon", *options) as daemon:
        daemon.wait_log("meta-hk: new")
        with httpx.Client(trust_env=False) as client:
            healthz = client.get(f"http://127.0.0.1:{port}/healthz")
        assert healthz.status_code == 200 and healthz.text.startswith("ok")
        alive = monitor(tmp_path, "health", "--db", db)
        assert alive.returncode == 0 and alive.stdout.startswith("healthy"), alive.stderr
        assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.lines()[-1]["message"] == "monitor stopped"
    assert daemon.problems() == []
    stopped = monitor(tmp_path, "health", "--db", db)  # a clean stop clears the heartbeat
    assert stopped.returncode == 1 and "no daemon heartbeat" in stopped.stderr


@pytest.mark.slow
def test_sighup_refuses_a_broken_watchlist_and_applies_a_valid_one(
    tmp_path: Path, site: LocalSite
) -> None:
    site["/p"] = page(HK_BEFORE)
    watchlist = process_watchlist(tmp_path, site, "one")
    with running(tmp_path, watchlist) as daemon:
        watchlist.write_text(watchlist.read_text().replace("interval: 1h", "interval: often"))
        mark = daemon.mark()
        daemon.process.send_signal(signal.SIGHUP)
        refused = daemon.wait_log("watchlist reload refused", after=mark)
        assert f"{watchlist}:2: defaults.interval" in daemon.lines()[refused]["message"]
        process_watchlist(tmp_path, site, "one", "two")
        mark = daemon.mark()
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_log("watchlist reloaded: 2 watches (1 added or changed, 0 removed)", after=mark)
        assert daemon.stop() == 0
    assert daemon.problems() == []


def test_a_failed_check_is_retried_with_back_off_and_soon_after_a_restart(
    world: World, store: Store
) -> None:
    """Issue 15, bug 4: a failed check waited for its next full interval (1 d)."""
    world.file.write_text(watchlist_text({"daily": "/gone"}).replace("1h", "1d"))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        job = daemon.scheduler.get_job("watch:daily")
        waits = []
        for _ in range(3):
            await daemon.run_check("daily")  # 404
            waits.append(job.next_run_time - world.clock())
            world.clock.advance(waits[-1].total_seconds())
        assert waits == [timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20)]
        world.site.pages["/gone"] = page(HK_BEFORE)
        await daemon.run_check("daily")  # a success leaves the job's own rhythm alone
        assert job.next_run_time == world.clock()
        world.site.pages.clear()
        await daemon.run_check("daily")  # and the back-off starts over
        assert job.next_run_time - world.clock() == timedelta(minutes=5)
        await daemon.stop()
        world.clock.advance(HOUR)
        again = world.daemon(store)  # restarted an hour after the failure
        await again.start()
        restarted = again.scheduler.get_job("watch:daily").next_run_time
        assert restarted == world.clock()  # due at once (draw 0 of the spread), not in 23 h
        await again.stop()

    run(go)
    assert world.outcomes() == ["failed", "failed", "failed", "new", "failed"]


# --- a check's log line carries structured fields ----------------------------------------


def test_a_checks_log_line_carries_its_fields_for_json_logs(
    world: World, store: Store, logs: pytest.LogCaptureFixture
) -> None:
    import json

    from monitor.logs import JsonFormatter

    world.site.pages["/p"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"meta-hk": "/p", "gone": "/missing"}))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        await daemon.run_check("meta-hk")
        await daemon.run_check("gone")
        await daemon.stop()

    run(go)
    lines = [
        json.loads(JsonFormatter().format(r))
        for r in logs.records
        if r.name == "monitor.daemon" and getattr(r, "watch", None)
    ]
    new, failed = lines
    assert new["message"] == "meta-hk: new" and new["outcome"] == "new"
    assert new["watch"] == "meta-hk" and isinstance(new["elapsed"], float)
    assert isinstance(new["version"], int) and new["findings"] == 0 and new["alerts"] == 0
    assert "failure" not in new
    assert failed["watch"] == "gone" and failed["outcome"] == "failed"
    assert failed["failure"] == "permanent" and "version" not in failed


def test_a_disabled_watch_gets_no_job_also_after_a_reload(world: World, store: Store) -> None:
    world.file.write_text(
        watchlist_text({"one": "/one", "two": "/two"}).replace(
            "url: 'https://example.org/two'}", "url: 'https://example.org/two', enabled: false}"
        )
    )

    def job_ids(daemon: Daemon) -> set[str]:
        return {j.id for j in daemon.scheduler.get_jobs() if j.id.startswith("watch:")}

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        assert job_ids(daemon) == {"watch:one"}
        world.file.write_text(watchlist_text({"one": "/one", "two": "/two"}))
        daemon.reload_watchlist()  # enabled again: scheduled
        assert job_ids(daemon) == {"watch:one", "watch:two"}
        world.file.write_text(
            watchlist_text({"one": "/one", "two": "/two"}).replace(
                "url: 'https://example.org/one'}", "url: 'https://example.org/one', enabled: false}"
            )
        )
        daemon.reload_watchlist()  # disabled: its job is removed
        assert job_ids(daemon) == {"watch:two"}
        await daemon.stop()

    run(go)
