"""When checks run and when a daemon counts as alive: plain values in, times out.

The rules in `monitor.schedule` read no clock and touch no store, so every case here
is a few microseconds; one test at the end holds `/healthz` and `monitor health` to
the same threshold through their real code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor import cli, config
from monitor.config import Schedule
from monitor.daemon import Daemon
from monitor.schedule import (
    HEALTH_MAX_AGE,
    first_run,
    heartbeat_age,
    is_fresh,
    retry_at,
    retry_delay,
    trigger,
)
from monitor.store import Store

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --- triggers -------------------------------------------------------------------------


def test_an_interval_watch_runs_every_interval_with_its_jitter() -> None:
    fired = trigger(Schedule(interval=HOUR, jitter=300)).get_next_fire_time(NOW, NOW)
    assert at(HOUR) <= fired <= at(HOUR + 300)


def test_a_cron_watch_keeps_its_jitter() -> None:
    """A cron schedule used to lose `jitter`: every such check fired on the minute."""
    cron = trigger(Schedule(interval=None, cron="0 */6 * * *", jitter=600))
    fired = [cron.get_next_fire_time(None, NOW) for _ in range(50)]
    assert all(at(0) <= t <= at(600) for t in fired)
    assert len(set(fired)) > 1  # spread out, not all at 12:00:00


def test_a_cron_watch_without_jitter_fires_on_its_slot() -> None:
    cron = trigger(Schedule(interval=None, cron="30 */6 * * *"))
    assert cron.get_next_fire_time(None, NOW) == at(30 * 60)


def test_a_crontab_with_the_wrong_number_of_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 5"):
        trigger(Schedule(interval=None, cron="0 */6 * *"))


# --- first runs after a start ----------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "last", "fraction", "first"),
    [
        pytest.param(Schedule(interval=HOUR), None, 0.5, at(30), id="never-checked-spread"),
        pytest.param(Schedule(interval=10), None, 0.5, at(5), id="spread-within-interval"),
        pytest.param(Schedule(interval=HOUR), at(-600), 0.5, at(3000), id="resumes-rhythm"),
        pytest.param(Schedule(interval=HOUR), at(-2 * HOUR), 0.25, at(15), id="overdue-spread"),
        pytest.param(Schedule(interval=HOUR), at(-HOUR), 0.0, at(0), id="due-now"),
        pytest.param(
            Schedule(interval=None, cron="0 */6 * * *"), None, 0.5, at(30), id="cron-never-checked"
        ),
        pytest.param(
            Schedule(interval=None, cron="30 */6 * * *", jitter=600),
            at(-60),
            0.5,
            at(30 * 60 + 300),
            id="cron-next-slot-with-jitter",
        ),
    ],
)
def test_first_run(
    schedule: Schedule, last: datetime | None, fraction: float, first: datetime
) -> None:
    assert first_run(schedule, last, NOW, spread=60, fraction=fraction) == first


def test_a_restart_spreads_overdue_watches_instead_of_firing_all_at_once() -> None:
    overdue = Schedule(interval=HOUR)
    firsts = {first_run(overdue, at(-5 * HOUR), NOW, spread=60, fraction=n / 10) for n in range(10)}
    assert len(firsts) == 10 and max(firsts) < at(60)


# --- retries of a failed check (issue 15, bug 4) -------------------------------------


@pytest.mark.parametrize(
    ("failures", "interval", "delay"),
    [
        pytest.param(1, 6 * HOUR, 300, id="first-retry-in-5-minutes"),
        pytest.param(2, 6 * HOUR, 600, id="doubles"),
        pytest.param(4, 6 * HOUR, 2400, id="doubles-again"),
        pytest.param(8, 6 * HOUR, 6 * HOUR, id="never-longer-than-the-interval"),
        pytest.param(10_000, 24 * HOUR, 24 * HOUR, id="no-overflow"),
        pytest.param(1, 120, 120, id="short-interval"),
        pytest.param(3, None, 1200, id="cron"),
    ],
)
def test_a_failed_check_is_retried_sooner_with_back_off(
    failures: int, interval: float | None, delay: float
) -> None:
    assert retry_delay(failures, interval) == delay


def test_a_retry_replaces_the_next_run_only_when_it_comes_sooner() -> None:
    daily = Schedule(interval=24 * HOUR)
    assert retry_at(daily, 1, NOW, regular=at(24 * HOUR)) == at(300)
    assert retry_at(daily, 1, NOW, regular=at(60)) is None  # the regular run is sooner
    assert retry_at(daily, 1, NOW, regular=None) == at(300)
    cron = Schedule(interval=None, cron="0 */6 * * *")
    assert retry_at(cron, 1, NOW, regular=at(6 * HOUR)) == at(300)
    assert retry_at(cron, 9, NOW, regular=at(6 * HOUR)) is None


@pytest.mark.parametrize(
    ("schedule", "last"),
    [
        pytest.param(Schedule(interval=24 * HOUR), at(-600), id="interval"),
        pytest.param(Schedule(interval=None, cron="0 0 * * *"), at(-600), id="cron"),
    ],
)
def test_after_a_restart_a_watch_whose_last_check_failed_is_due_soon(
    schedule: Schedule, last: datetime
) -> None:
    assert first_run(schedule, last, NOW, spread=60, fraction=0.5, failed=True) == at(30)


# --- the health threshold ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "fresh"),
    [(0, True), (HEALTH_MAX_AGE - 1, True), (HEALTH_MAX_AGE, True), (HEALTH_MAX_AGE + 1, False)],
)
def test_a_heartbeat_is_fresh_up_to_the_threshold(age: float, fresh: bool) -> None:
    assert is_fresh(at(-age), NOW) is fresh


def test_no_heartbeat_is_never_fresh() -> None:
    assert heartbeat_age(None, NOW) == float("inf")
    assert not is_fresh(None, NOW)


@pytest.mark.parametrize("age", [10, 100, 110, 130, 600])
def test_healthz_and_monitor_health_agree(
    tmp_path: Path, age: float, capsys: pytest.CaptureFixture[str]
) -> None:
    """They used to disagree between 90 s and 120 s: an orchestrator restarted a daemon
    that `monitor health` still called healthy."""
    now = datetime.now(UTC)
    db = str(tmp_path / "m.db")
    store = Store.open(db)
    store.heartbeat(now - timedelta(seconds=age))
    text = "watches:\n  - {id: a, platform: P, name: N, url: 'https://example.org/'}\n"
    wl = config.loads(text, "w.yaml", env={})
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(404)))
    daemon = Daemon(wl, store, reload=lambda: wl, client=client, now=lambda: now)
    try:
        healthz = daemon.healthy()
    finally:
        store.close()
    command = cli.main(["health", "--db", db]) == 0
    assert healthz is command, capsys.readouterr()
