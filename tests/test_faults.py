"""Faults: the process killed at random, the disk full, the database locked, the
notification endpoint down for hours. Each test shows that nothing is left
half-written, no change is lost, and the ledger sends each alert once per destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from monitor import config
from monitor.alerting import destinations
from monitor.check import Context, check
from monitor.deliver import BACKOFF_CAP, Deliverer
from monitor.fetch import make_client
from monitor.messages import Message, note_message
from monitor.model import AlertRecord, CheckResult, Outcome
from monitor.notify import send
from monitor.pipeline import Matchers
from monitor.store import Store
from tests.conftest import LocalSite, Receiver
from tests.harness import ENV, query

PAGE = """<html><body><main><h1>Government requests</h1>
<p>We review every request for user data carefully.</p>
<p>{hk}</p>{filler}</main></body></html>"""


def sentence(watch: str, n: int) -> str:
    return f"Requests from the Hong Kong government to {watch} are answered in round {n}."


def page(watch: str, n: int, filler: str = "") -> str:
    return PAGE.format(hk=sentence(watch, n), filler=filler)


# --- SIGKILL at random points of check-and-deliver cycles -------------------------------

# Longer runs: FAULT_ROUNDS=100 (and another FAULT_SEED) pytest tests/test_faults.py
ITERATIONS = int(os.environ.get("FAULT_ROUNDS", "10"))
SEED = int(os.environ.get("FAULT_SEED", "20261129"))
WATCHES = ("meta", "x", "google")


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing_and_sends_each_alert_once_per_route(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Each round changes every page and runs `monitor check`, killed after a random
    delay (seeded) between its first write to the store and its end: while it fetches,
    records checks, or delivers alerts. The delays are stratified (one in each of
    FAULT_ROUNDS equal slices of that span, in a shuffled order), so a few rounds
    already kill in every phase. Each watch is on a host of its own, so the checks run
    at once, as in the daemon, instead of one politeness delay apart."""
    rng = random.Random(SEED)
    db = tmp_path / "m.db"
    with contextlib.ExitStack() as stack:
        sites = {
            w: stack.enter_context(LocalSite(f"127.0.0.{i + 2}")) for i, w in enumerate(WATCHES)
        }
        watchlist = tmp_path / "w.yaml"
        watchlist.write_text(
            "defaults:\n  routes: [desk, team]\nroutes:\n"
            f"  desk: ['json://127.0.0.1:{receiver.port}/desk']\n"
            f"  team: ['json://127.0.0.1:{receiver.port}/team']\nwatches:\n"
            + "".join(
                f"  - {{id: {w}, platform: P, name: N, url: '{sites[w].url('/p')}'}}\n"
                for w in WATCHES
            )
        )
        command = [
            sys.executable,
            "-m",
            "monitor",
            "check",
            "--watchlist",
            str(watchlist),
            "--db",
            str(db),
        ]

        def start(n: int) -> subprocess.Popen[bytes]:
            for w in WATCHES:
                sites[w]["/p"] = page(w, n)
            return subprocess.Popen(
                command, env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

        assert start(0).wait(60) == 0  # the baselines
        first_write, end = timeline(start(1), db)  # a whole cycle of changes and deliveries

        landed: Counter[str] = Counter()  # where the kills fell
        for n, delay in enumerate(kill_delays(rng, first_write - 0.05, end, ITERATIONS), 2):
            checks, posts = count(db, "checks"), len(receiver.posts)
            with start(n) as run:
                time.sleep(delay)
                killed = run.poll() is None
                run.kill()
            landed[_phase(killed, count(db, "checks") - checks, len(receiver.posts) - posts)] += 1
            assert sound(db) == [], f"after round {n}"

        assert start(ITERATIONS + 2).wait(60) == 0  # delivers whatever is pending
    assert sound(db) == []
    assert query(db, "SELECT DISTINCT status FROM deliveries") == [("sent",)]
    received = duplicates = 0
    for (sha,) in query(db, CHANGE_ALERT_SNAPSHOTS):
        for route in ("desk", "team"):
            copies = sum(
                f"after (SHA-256): {sha}" in p.json()["message"]
                for p in receiver.posts
                if p.path == f"/{route}"
            )
            assert copies >= 1, f"the alert for snapshot {sha[:12]} never reached {route}"
            received += 1
            duplicates += copies - 1
    assert received >= 2 * len(WATCHES) * 2  # the first cycle and the last got through
    # Only a kill between a send and its record resends, and at most as many deliveries
    # as were in flight at that instant: the deliverer sends `concurrency` at once.
    assert duplicates <= Deliverer.concurrency * landed["while delivering"]
    print(
        f"\n{ITERATIONS} rounds, kills {dict(landed)}, {received} deliveries, {duplicates} resent"
    )


def kill_delays(rng: random.Random, start: float, end: float, rounds: int) -> list[float]:
    """One random delay in each of `rounds` equal slices of [start, end], shuffled."""
    width = (end - start) / rounds
    delays = [start + width * (k + rng.random()) for k in range(rounds)]
    rng.shuffle(delays)
    return delays


def count(db: Path, table: str) -> int:
    return int(query(db, f"SELECT count(*) FROM {table}")[0][0])


def timeline(run: subprocess.Popen[bytes], db: Path) -> tuple[float, float]:
    """When a run first wrote a check to the store, and when it ended (seconds)."""
    started, before, first_write = time.monotonic(), count(db, "checks"), None
    while run.poll() is None:
        if first_write is None and count(db, "checks") > before:
            first_write = time.monotonic() - started
        time.sleep(0.01)
    assert run.returncode == 0 and first_write is not None
    return first_write, time.monotonic() - started


def _phase(killed: bool, checks: int, posts: int) -> str:
    if not killed:
        return "after the end"
    if posts:
        return "while delivering"
    return "while checking" if checks < len(WATCHES) else "between checks and deliveries"


CHANGE_ALERT_SNAPSHOTS = """
    SELECT s.body_sha256 FROM alerts a JOIN versions v ON v.id = a.version_id
    JOIN snapshots s ON s.id = v.snapshot_id WHERE a.kind = 'change'"""


def sound(db: Path) -> list[str]:
    """The store's own verification, plus the ledger's rule: one delivery per route."""
    store = Store.open(str(db))
    try:
        problems = store.verify()
    finally:
        store.close()
    ledger = query(
        db,
        "SELECT a.id, count(d.id) FROM alerts a LEFT JOIN deliveries d ON d.alert_id = a.id "
        "WHERE a.kind = 'change' GROUP BY a.id HAVING count(d.id) != 2",
    )
    return problems + [f"alert {aid}: {count} deliveries for 2 routes" for aid, count in ledger]


# --- a full disk and a locked database ---------------------------------------------------


class Checker:
    """Checks one watch in-process against `site`, on a real SQLite file."""

    def __init__(self, tmp_path: Path, site: LocalSite) -> None:
        self.store = Store.open(str(tmp_path / "m.db"))
        self.watchlist = config.loads(
            f"watches:\n  - {{id: meta, platform: Meta, name: N, url: '{site.url('/meta')}'}}\n",
            "w.yaml",
            env={},
        )
        self.matchers = Matchers(self.watchlist)
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def run(self) -> CheckResult:
        async def go() -> CheckResult:
            async with make_client() as client:
                ctx = Context(client, self.store, None, lambda: self.now, matchers=self.matchers)
                return await check(self.watchlist.watches[0], ctx)

        self.now += timedelta(hours=1)
        return asyncio.run(go())

    def rows(self) -> dict[str, int]:
        tables = ("bodies", "snapshots", "versions", "findings", "alerts", "checks")
        return {t: self.store.count(t) for t in tables}

    @contextlib.contextmanager
    def on_connect(self, *pragmas: str) -> Iterator[None]:
        """Run `pragmas` on every new connection of the store while in the block."""

        def apply(dbapi: Any, _record: Any) -> None:
            for pragma in pragmas:
                dbapi.execute(pragma)

        event.listen(self.store.engine, "connect", apply)
        self.store.engine.dispose()
        try:
            yield
        finally:
            event.remove(self.store.engine, "connect", apply)
            self.store.engine.dispose()


@pytest.fixture
def checker(tmp_path: Path, site: LocalSite) -> Iterator[Checker]:
    c = Checker(tmp_path, site)
    yield c
    c.store.close()


def incompressible(n: int, seed: int) -> str:
    """`n` paragraphs of random words: a body too big to fit in the store's free pages."""
    rng = random.Random(seed)
    words = (" ".join(f"w{rng.randrange(10**9)}" for _ in range(60)) for _ in range(n))
    return "".join(f"<p>{w}.</p>" for w in words)


def test_a_full_disk_fails_the_check_cleanly_and_the_next_check_records_the_change(
    checker: Checker, site: LocalSite
) -> None:
    site["/meta"] = page("meta", 1)
    assert checker.run().outcome is Outcome.NEW
    site["/meta"] = page("meta", 2, incompressible(300, seed=2))
    before = checker.rows()
    with checker.store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    with checker.on_connect(f"PRAGMA max_page_count = {pages}"):  # the disk is full
        full = checker.run()
    assert full.outcome is Outcome.FAILED and full.failure == "transient"
    assert "database or disk is full" in (full.message or "")
    assert not full.alerts and not full.version
    assert checker.rows() == before  # nothing half-written
    assert checker.store.verify() == []

    again = checker.run()  # space is back: the same change is found and alerted now
    assert again.outcome is Outcome.CHANGED and again.findings and again.alerts
    assert checker.rows()["alerts"] == before["alerts"] + 1
    assert checker.store.verify() == []


def test_a_locked_database_fails_the_check_cleanly_and_the_next_check_records_it(
    checker: Checker, site: LocalSite, tmp_path: Path
) -> None:
    site["/meta"] = page("meta", 1)
    checker.run()
    site["/meta"] = page("meta", 2)
    before = checker.rows()
    with (
        checker.on_connect("PRAGMA busy_timeout = 200"),
        contextlib.closing(sqlite3.connect(tmp_path / "m.db", isolation_level=None)) as other,
    ):
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        locked = checker.run()
        other.execute("ROLLBACK")
    assert locked.outcome is Outcome.FAILED and "database is locked" in (locked.message or "")
    assert checker.rows() == before
    again = checker.run()
    assert again.outcome is Outcome.CHANGED and again.alerts
    assert checker.store.verify() == []


# --- the notification endpoint down for hours ---------------------------------------------

OUTAGE = timedelta(hours=12)


def test_a_long_outage_backs_off_then_every_alert_arrives_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = Store.open(str(tmp_path / "m.db"))
    wl = config.loads(
        "routes:\n"
        f"  desk: ['json://127.0.0.1:{receiver.port}/desk', 'json://127.0.0.1:{receiver.port}/team']\n"
        "watches:\n  - {id: meta, platform: Meta, name: N, url: 'https://example.org/'}\n",
        "w.yaml",
        env={},
    )
    clock = [datetime(2026, 11, 1, tzinfo=UTC)]
    attempts: dict[tuple[str, str], list[datetime]] = {}

    async def send_and_count(url: str, message: Message, *, skip: int = 0) -> None:
        attempts.setdefault((url.rsplit("/", 1)[1], message.title), []).append(clock[0])
        await send(url, message)

    deliverer = Deliverer(store, wl.routes, send=send_and_count, now=lambda: clock[0])
    dests = destinations(wl.routes, ("desk",), "change", ("HK",), key=store.destination_key())
    for n in range(3):
        message = note_message(f"Alert {n}", f"Hong Kong wording changed, alert {n}.")
        alert = AlertRecord("meta", "change", message.title, message.to_json(), ("HK",), dests)
        store.add_alert(alert, clock[0])

    receiver.status = 503
    end = clock[0] + OUTAGE
    while (due := store.next_due()) is not None and due < end:
        clock[0] = max(clock[0], due)
        asyncio.run(deliverer.run())
    assert len(attempts) == 6  # 3 alerts x 2 destinations
    for times in attempts.values():
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert 8 <= len(times) <= 32  # neither every 15 s (2,880 times) nor given up
        assert gaps[:7] == sorted(gaps[:7])  # doubling while below the cap ...
        assert max(gaps) <= BACKOFF_CAP and min(gaps[7:]) >= BACKOFF_CAP / 2  # ... then capped

    counts = sorted(len(times) for times in attempts.values())
    print(f"\n{OUTAGE} outage: {counts[0]}-{counts[-1]} attempts per delivery")
    receiver.status = 200
    during = len(receiver.posts)
    clock[0] = end + timedelta(hours=1)
    asyncio.run(deliverer.run())
    asyncio.run(deliverer.run())  # a second pass sends nothing more
    arrived = sorted((p.path, p.json()["title"]) for p in receiver.posts[during:])
    assert arrived == sorted((path, f"Alert {n}") for n in range(3) for path in ("/desk", "/team"))
    assert query(tmp_path / "m.db", "SELECT DISTINCT status FROM deliveries") == [("sent",)]
    store.close()


def test_an_unreadable_store_fails_the_check_instead_of_crashing_it(
    checker: Checker, site: LocalSite, tmp_path: Path
) -> None:
    site["/meta"] = page("meta", 1)
    checker.store.engine.dispose()
    (tmp_path / "m.db").write_bytes(b"this is no database" * 512)  # a disk that lost it
    for name in ("m.db-wal", "m.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    result = checker.run()
    assert result.outcome is Outcome.FAILED and result.failure == "transient"
    assert "the store could not be read or written" in (result.message or "")
