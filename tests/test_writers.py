"""One writer per watch: two processes checking the same watch on one store at once
(`monitor check` beside `monitor run`) record a change once and send it once.

The race is made certain, not likely: two `Store` objects on one database (as two
processes have), each in its own thread, meet after reading what they need, so both
have read the same history before either writes; two deliverers are started so that
the second comes while the first is sending. SQLite always; PostgreSQL when
MONITOR_TEST_POSTGRES is set.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import config
from monitor.check import Context, check
from monitor.deliver import Deliverer
from monitor.fetch import make_client
from monitor.model import CheckResult, Delivery, History, Outcome
from monitor.store import Store, Turn
from tests.conftest import LocalSite, Receiver
from tests.harness import ENV, monitor, query
from tests.test_postgres import URL as POSTGRES
from tests.test_postgres import empty_database

PAGE = """<html><body><main><h1>Government requests</h1>
<p>We review every request for user data carefully.</p>
<p>{hk}</p></main><footer>Generated {stamp}</footer></body></html>"""
BEFORE = "We do not respond to requests from the Hong Kong government."
AFTER = "We respond to requests from the Hong Kong government as the law requires."
T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Racing(Store):
    """A store whose first `load` waits at `gate` once the history is read, before it
    is used: two of them on one database both read before either writes."""

    gate: threading.Barrier | None = None

    def load(self, *args: Any, **kwargs: Any) -> History:
        history = super().load(*args, **kwargs)
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.wait(timeout=30)
        return history


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "monitor.db")
    if not POSTGRES:
        pytest.skip("MONITOR_TEST_POSTGRES is not set")
    empty_database()
    return POSTGRES


def watchlist(site: LocalSite, receiver: Receiver) -> config.Watchlist:
    text = (
        f"defaults: {{routes: [desk]}}\n"
        f"routes: {{desk: ['json://127.0.0.1:{receiver.port}/desk']}}\n"
        f"watches:\n  - {{id: meta-hk, platform: Meta, name: Requests, url: '{site.url('/p')}'}}\n"
    )
    return config.loads(text, "test.yaml", env={}, known_jurisdictions={"HK", "MO", "CN"})


def at_once(db: str, work: Callable[[Racing], Any]) -> list[Any]:
    """Run `work` in two threads, each with its own store on `db`, meeting once."""
    gate = threading.Barrier(2)
    results: list[Any] = [None, None]

    def one(i: int) -> None:
        with Racing.open(db) as store:
            store.gate = gate
            results[i] = work(store)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_check(wl: config.Watchlist, now: datetime) -> Callable[[Store], CheckResult]:
    def work(store: Store) -> CheckResult:
        async def go() -> CheckResult:
            async with make_client() as client:
                return await check(
                    wl.watches[0], Context(client, store, now=lambda: now, routes=wl.routes)
                )

        return asyncio.run(go())

    return work


def deliver(wl: config.Watchlist, now: datetime) -> Callable[[Store], int]:
    def work(store: Store) -> int:
        return asyncio.run(Deliverer(store, wl.routes, now=lambda: now).run(everything=True)).sent

    return work


@pytest.fixture
def checked(db: str, site: LocalSite, receiver: Receiver) -> Iterator[config.Watchlist]:
    """A watch with its baseline, whose page has just changed."""
    wl = watchlist(site, receiver)
    site["/p"] = PAGE.format(hk=BEFORE, stamp="1")
    with Store.open(db) as store:
        asyncio.run(_check_once(wl, store))
    site["/p"] = PAGE.format(hk=AFTER, stamp="2")
    yield wl


async def _check_once(wl: config.Watchlist, store: Store) -> None:
    async with make_client() as client:
        await check(wl.watches[0], Context(client, store, now=lambda: T0, routes=wl.routes))


def test_two_checks_of_one_change_at_once_record_it_once(
    db: str, checked: config.Watchlist
) -> None:
    results = at_once(db, run_check(checked, T0 + timedelta(hours=1)))
    assert sorted(r.outcome for r in results) == [Outcome.CHANGED, Outcome.UNCHANGED]
    with Store.open(db) as store:
        assert [v.kind for v in store.versions("meta-hk")] == ["baseline", "change"]
        [alert] = store.alerts()
        assert len(alert.deliveries) == 1
        assert store.count("findings") == len(results[0].findings or results[1].findings)
        assert store.verify() == []


def test_a_check_that_lost_the_race_compares_with_the_newer_version(
    db: str, checked: config.Watchlist, site: LocalSite
) -> None:
    """The page changed again between the two fetches (here: the second process
    reads it at another address): the second check is a change from the first one's
    version, not a second alert about the sentence the first one reported."""
    site["/q"] = PAGE.format(hk=AFTER + " Hong Kong requests are answered in 30 days.", stamp="3")
    other = replace(checked.watches[0], url=site.url("/q"))
    staged = iter([checked, replace(checked, watches=(other,))])
    lock = threading.Lock()

    def work(store: Store) -> CheckResult:
        with lock:
            wl = next(staged)
        return run_check(wl, T0 + timedelta(hours=1))(store)

    at_once(db, work)
    with Store.open(db) as store:
        versions = store.versions("meta-hk")
        assert [v.kind for v in versions] == ["baseline", "change", "change"]
        found = store.findings(version_id=versions[2].id)
        assert found and all(f.finding.change is not None for f in found)
        assert not any("do not respond" in str(f.finding.change) for f in found)
        assert [a.version_id for a in store.alerts()] == [versions[2].id, versions[1].id]
        assert store.verify() == []


class Senders:
    """Two deliverers of one store, each in its own thread: the second starts once the
    first has read what is due, and the first sends only once the second has read it
    too, or has been told to wait for its turn."""

    def __init__(self) -> None:
        self.first_read, self.second_there = threading.Event(), threading.Event()

    def store(self, db: str, first: bool) -> Store:
        senders = self

        class Racing(Store):
            def due_deliveries(self, now: datetime | None, limit: int = 100) -> list[Delivery]:
                due = super().due_deliveries(now, limit)
                if first:
                    senders.first_read.set()
                    senders.second_there.wait(timeout=30)
                else:
                    senders.second_there.set()
                return due

            def turn(self, name: str) -> Turn:
                return Waiting(self.engine, name, senders.second_there)

        return Racing.open(db)


class Waiting(Turn):
    """A turn that says when it was refused."""

    def __init__(self, engine: Any, name: str, refused: threading.Event) -> None:
        super().__init__(engine, name)
        self.refused = refused

    def take(self) -> bool:
        taken = super().take()
        if not taken:
            self.refused.set()
        return taken


def test_two_senders_of_one_pending_delivery_send_it_once(
    db: str, checked: config.Watchlist, receiver: Receiver
) -> None:
    with Store.open(db) as store:
        asyncio.run(_check_once(checked, store))  # the change: one alert, one delivery
    senders, sent = Senders(), [0, 0]

    def one(i: int) -> None:
        if i == 1:
            senders.first_read.wait(timeout=30)
        with senders.store(db, first=i == 0) as store:
            sent[i] = deliver(checked, T0 + timedelta(hours=1))(store)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sent == [1, 0]
    assert [p.path for p in receiver.posts] == ["/desk"]
    with Store.open(db) as store:
        [alert] = store.alerts()
        assert [d.status for d in alert.deliveries] == ["sent"]


@pytest.mark.slow
def test_two_monitor_check_processes_record_and_send_a_change_once(
    tmp_path: Path, site: LocalSite, receiver: Receiver
) -> None:
    """The race as users meet it: two `monitor check` processes started together, five
    times over. How they interleave is up to the machine; whichever way, one version,
    one alert and one message (before one writer per watch, 10 such rounds recorded
    18 versions and 18 alerts and sent 20 messages)."""
    wl = tmp_path / "w.yaml"
    wl.write_text(
        f"defaults: {{routes: [desk]}}\nroutes: {{desk: ['json://127.0.0.1:{receiver.port}/d']}}\n"
        f"watches:\n  - {{id: w, platform: P, name: N, url: '{site.url('/p')}'}}\n"
    )
    for n in range(5):
        db = tmp_path / f"m{n}.db"
        args = ("check", "--watchlist", str(wl), "--db", str(db))
        site["/p"] = PAGE.format(hk=BEFORE, stamp="1")
        assert monitor(tmp_path, *args).returncode == 0
        site["/p"], sent = PAGE.format(hk=AFTER, stamp="2"), len(receiver.posts)
        both = [
            subprocess.Popen([sys.executable, "-m", "monitor", *args], env=ENV, cwd=tmp_path)
            for _ in range(2)
        ]
        assert [p.wait(60) for p in both] == [0, 0]
        assert query(db, "SELECT kind FROM versions ORDER BY id") == [("baseline",), ("change",)]
        assert query(db, "SELECT count(*) FROM alerts") == [(1,)]
        assert len(receiver.posts) - sent == 1
