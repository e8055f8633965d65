"""When checks run and when a daemon counts as alive: pure rules, no clock, no I/O.

The daemon asks three questions, and each answer follows from plain values alone
(`now` is always passed in, never read), so the rules are tested in milliseconds:

- which trigger runs a watch: its interval or its cron expression, either one with
  the watchlist's `jitter` (random delay up to that many seconds on every run);
- when a watch runs first after a start: its rhythm resumes from its last check in
  the store, and a never-checked or overdue watch starts at a point spread over a
  short window, so a restart never fires every check at once;
- when a failed check is tried again: sooner than its next regular run, 5 minutes
  after the failure, doubling with each failure in a row up to its interval; and after
  a restart, a watch whose last check failed is due within the spread window;
- whether a heartbeat is fresh: ONE threshold, used by `/healthz` and by
  `monitor health` alike, so an orchestrator and a script never disagree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # APScheduler loads with the first trigger: `monitor check` never needs one
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from monitor.config import Schedule, Watch  # for types: `monitor health` loads no config
    from monitor.model import WatchState

HEARTBEAT_EVERY = 30.0  # seconds between the daemon's heartbeats
HEALTH_MAX_AGE = 4 * HEARTBEAT_EVERY  # a heartbeat older than this: the daemon is gone
FIRST_RUN_SPREAD = 60.0  # seconds over which never-checked or overdue watches start
DEFAULT_INTERVAL = 6 * 3600.0  # a schedule with neither interval nor cron
RETRY_FIRST = 300.0  # seconds from a failed check to its first retry; doubles after that

Trigger: TypeAlias = "IntervalTrigger | CronTrigger"


def trigger(schedule: Schedule) -> Trigger:
    """The APScheduler trigger of a watch; cron runs get the same jitter as intervals.

    APScheduler 3's `CronTrigger.from_crontab` takes no jitter, so the five crontab
    fields are passed to the constructor the same way it does (weekday 0 is Monday,
    as in every 3.x release).
    """
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    jitter = int(schedule.jitter) or None
    if schedule.cron:
        fields = schedule.cron.split()
        if len(fields) != 5:
            raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
        minute, hour, day, month, day_of_week = fields
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=UTC,
            jitter=jitter,
        )
    return IntervalTrigger(seconds=schedule.interval or DEFAULT_INTERVAL, jitter=jitter)


def first_run(
    schedule: Schedule,
    last: datetime | None,
    now: datetime,
    *,
    spread: float = FIRST_RUN_SPREAD,
    fraction: float = 0.0,
    failed: bool = False,
) -> datetime:
    """When a watch runs first after a (re)start.

    An interval watch resumes its rhythm: one interval after its last check. A
    never-checked or overdue watch, or one whose last check `failed`, starts at
    `fraction` (a random draw in [0, 1) the caller makes) of the spread window — the
    window is never longer than the interval itself. A cron watch that was checked
    before waits for its next slot, delayed by the same fraction of its jitter as
    every later run.
    """
    window = min(spread, schedule.interval or float("inf"))
    spread_start = now + timedelta(seconds=fraction * window)
    if last is None or failed:
        return spread_start
    if schedule.interval is None:
        return _next_cron(schedule, now) + timedelta(seconds=fraction * schedule.jitter)
    due = last + timedelta(seconds=schedule.interval)
    return due if due > now else spread_start


def retry_delay(failures: int, interval: float | None) -> float:
    """Seconds from the `failures`-th failed check in a row to the next try: 5 minutes,
    doubling with each failure, never longer than the interval (6 h for a cron watch;
    its next slot comes first anyway when it is sooner)."""
    longest = interval or DEFAULT_INTERVAL
    doublings = min(max(failures - 1, 0), 32)  # 5 min times 2**32 outlasts any interval
    return min(RETRY_FIRST * float(2**doublings), longest)


def retry_at(
    schedule: Schedule, failures: int, now: datetime, *, regular: datetime | None
) -> datetime | None:
    """When to try a failed watch again, or None when its `regular` next run (if it
    has one still to come) is as soon."""
    at = now + timedelta(seconds=retry_delay(failures, schedule.interval))
    if regular is not None and now < regular <= at:
        return None
    return at


def _next_cron(schedule: Schedule, now: datetime) -> datetime:
    fire = _cron_slots(schedule).get_next_fire_time(None, now)
    return fire if fire is not None else now


def _cron_slots(schedule: Schedule) -> Trigger:
    """The trigger of the schedule's cron times themselves, without jitter."""
    return trigger(replace(schedule, interval=None, jitter=0.0))


def heartbeat_age(beat: datetime | None, now: datetime) -> float:
    """Seconds since the last heartbeat; infinite when there is none."""
    return (now - beat).total_seconds() if beat is not None else float("inf")


def is_fresh(beat: datetime | None, now: datetime, max_age: float = HEALTH_MAX_AGE) -> bool:
    """Whether a daemon with this last heartbeat counts as alive (at most `max_age` old)."""
    return heartbeat_age(beat, now) <= max_age


def next_due(watch: Watch, state: WatchState) -> datetime | None:
    """When the watch's schedule next asks for a check after its last one: one interval
    later, or the next cron time after it; None when never checked (due now) or disabled.
    Jitter and the daemon's retries of failed checks are not counted."""
    last = state.last_check_at
    if last is None or not watch.enabled:
        return None
    if watch.schedule.cron is None:
        return last + timedelta(seconds=watch.schedule.interval or DEFAULT_INTERVAL)
    fire: datetime | None = _cron_slots(watch.schedule).get_next_fire_time(
        None, last + timedelta(seconds=1)
    )
    return fire
