"""The same store on PostgreSQL, for teams and several daemons sharing one store.

Runs when MONITOR_TEST_POSTGRES holds a database URL (`.ci/run` starts a local server
and sets it); skipped otherwise. Each test starts from an empty database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from monitor import config
from monitor.check import Context, check
from monitor.fetch import make_client
from monitor.model import AlertRecord, Block, Change, CheckRecord, Finding, Outcome
from monitor.store import MissingStore, Store
from tests.test_store import DOC, T0, snap

URL = os.environ.get("MONITOR_TEST_POSTGRES", "")
pytestmark = pytest.mark.skipif(not URL, reason="MONITOR_TEST_POSTGRES is not set")


def empty_database() -> None:
    engine = create_engine(URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def store() -> Iterator[Store]:
    empty_database()
    with Store.open(URL) as opened:
        yield opened


def test_a_command_that_only_reads_creates_no_tables() -> None:
    empty_database()
    with pytest.raises(MissingStore, match="no store at postgresql://postgres"):
        Store.open(URL, create=False)
    engine = create_engine(URL)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_versions_findings_and_the_ledger_round_trip(store: Store) -> None:
    store.record(
        CheckRecord(
            "w",
            T0,
            0.1,
            "new",
            snapshot=snap("one"),
            rules_hash="r",
            document=DOC,
            version_kind="baseline",
        )
    )
    finding = Finding(
        "HK",
        "sentence_added",
        "sentence",
        ("Hong Kong",),
        Change("added", "paragraph", after="Hong Kong: 13"),
    )
    alert = AlertRecord("w", "change", "t", "{}", ("HK",), (("desk", "d" * 64, "json://h"),))
    vid = store.record(
        CheckRecord(
            "w",
            T0,
            0.1,
            "changed",
            snapshot=snap("two"),
            rules_hash="r",
            document=DOC[:1],
            version_kind="change",
            findings=(finding,),
            alerts=(alert,),
        )
    )
    assert store.latest_version("w").document == DOC[:1]  # type: ignore[union-attr]
    assert [f.finding for f in store.findings(version_id=vid)] == [finding]
    [due] = store.due_deliveries(datetime.now(UTC))
    store.delivered(due.id, datetime.now(UTC))
    assert store.delivery_counts() == {"sent": 1}
    assert store.body(snap("two").sha256) == b"two"
    store.heartbeat(T0)
    assert store.last_heartbeat() == T0
    Store.open(URL).close()  # reopening migrates nothing and breaks nothing


def test_a_check_end_to_end_on_postgres(store: Store) -> None:
    pages = iter(
        [
            "<main><p>Hong Kong requests: 12.</p></main>",
            "<main><p>Hong Kong requests: 0.</p></main>",
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html=next(pages))

    wl = config.loads(
        "watches:\n  - {id: w, platform: P, name: N, url: 'https://h.example/p'}\n", env={}
    )

    async def go() -> list[Outcome]:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            ctx = Context(client, store)
            return [(await check(wl.watches[0], ctx)).outcome for _ in range(2)]

    assert asyncio.run(go()) == [Outcome.NEW, Outcome.CHANGED]
    assert [b.text for b in store.latest_version("w").document] == ["Hong Kong requests: 0."]  # type: ignore[union-attr]
    assert store.findings(watch_id="w")[0].finding.jurisdiction == "HK"
    assert store.verify() == []  # bodies, versions and the alert of the finding, on PostgreSQL


def test_blocks_survive_unicode(store: Store) -> None:
    doc = (Block("paragraph", "香港特別行政區 · «Chine continentale»", ("私隱政策",)),)
    store.record(
        CheckRecord(
            "z",
            T0,
            0.1,
            "new",
            snapshot=snap("z"),
            rules_hash="r",
            document=doc,
            version_kind="baseline",
        )
    )
    assert store.latest_version("z").document == doc  # type: ignore[union-attr]
