"""Hostile input that must neither freeze, flood nor leak: the watchlist, user regexes,
page text in chat, and the secrets of destinations and watched URLs."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from monitor import cli, config
from monitor.check import Context, check
from monitor.config import Watch
from monitor.errors import ConfigError, FailureKind
from monitor.extract import extract
from monitor.fetch import make_client
from monitor.jurisdictions import Watching
from monitor.model import ExtractRules, Outcome
from monitor.pipeline import Matchers
from monitor.store import Store
from tests.conftest import LocalSite, free_port
from tests.harness import running
from tests.test_daemon import HK_AFTER, HK_BEFORE, Clock, World, messages, page, run, watchlist_text
from tests.test_daemon import store as store
from tests.test_daemon import world as world


def billion_laughs(levels: int = 9) -> str:
    """The nested-aliases bomb: 9 levels of 9 aliases expand to 9**9 strings."""
    names = "abcdefghijklmnopqrstuvwxyz"[:levels]
    lines = ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for prev, cur in pairwise(names):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# --- the watchlist: size and alias bounds ---------------------------------------------


@pytest.mark.parametrize(
    "text", [billion_laughs(), "a: &a [*a, *a]\n"], ids=["nested", "recursive"]
)
def test_the_alias_bomb_is_a_clear_config_error(text: str) -> None:
    assert len(text.encode()) < 400
    with pytest.raises(ConfigError, match="aliases") as info:
        config.loads(text, "w.yaml", env={})
    assert str(info.value.problems[0]).startswith("w.yaml:1:")


def test_a_few_aliases_are_fine() -> None:
    text = (
        "defaults: &d {interval: 1h}\n"
        "watches:\n"
        "  - {id: a, platform: A, name: A, url: 'https://example.org/a'}\n"
    )
    assert config.loads(text, env={}, check_url=None).defaults.interval == 3600.0


def test_a_watchlist_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("# padding\n" * (config.MAX_WATCHLIST_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="larger than"):
        config.load(path, env={})


def test_validate_refuses_the_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(billion_laughs())
    assert cli.main(["validate", "--watchlist", str(path)]) == 1
    assert "aliases" in capsys.readouterr().err


def test_a_reload_refuses_the_bomb_and_keeps_the_old_watchlist(
    world: World,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.file.write_text(watchlist_text({"one": "/one"}))

    async def go() -> None:
        daemon = world.daemon(store)
        await daemon.start()
        world.file.write_text(billion_laughs())
        daemon.reload_watchlist()
        assert daemon.watch_ids() == ["one"] and daemon.healthy()
        await daemon.stop()

    run(go)
    refused = [m for m in messages(caplog) if "watchlist reload refused" in m]
    assert refused and "aliases" in refused[0]


# --- user regexes: linear time, refused at load when RE2 cannot take them ---------------

RUNAWAY = "(a+)+$"  # catastrophic backtracking in Python's `re` on `aaaa…b`


def test_a_runaway_ignore_pattern_takes_linear_time() -> None:
    text = "a" * 2_000_000 + "b"
    document = extract(f"<p>{text}</p>", ExtractRules(ignore=(RUNAWAY,)))
    assert [b.text for b in document] == [text]


@pytest.mark.parametrize(
    ("pattern", "words"),
    [("(a)\\1", "backreferences"), ("(?<=x)y", "lookaround"), ("(", "missing )")],
)
def test_a_pattern_re2_cannot_take_is_refused_naming_the_watch_and_key(
    pattern: str, words: str
) -> None:
    text = (
        f"watches:\n  - id: meta\n    url: 'https://example.org/'\n    ignore: ['x', '{pattern}']\n"
    )
    with pytest.raises(ConfigError) as info:
        config.loads(text, "w.yaml", env={})
    (problem,) = info.value.problems
    assert str(problem).startswith("w.yaml:4: watches[0] (meta).ignore[1]: invalid regular")
    assert words in str(problem)


@pytest.mark.slow
def test_a_runaway_pattern_holds_up_no_other_watch_nor_healthz(
    tmp_path: Path, site: LocalSite
) -> None:
    site["/aaa"] = "<html><body><p>" + "a" * 1_000_000 + "b</p></body></html>"
    site["/p"] = page(HK_BEFORE)
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        "defaults: {interval: 1h}\nwatches:\n"
        f"  - {{id: runaway, url: '{site.url('/aaa')}', ignore: ['{RUNAWAY}']}}\n"
        f"  - {{id: other, url: '{site.url('/p')}'}}\n"
    )
    port = free_port()
    with running(
        tmp_path, watchlist, "daemon", "--spread", "0", "--http", f"127.0.0.1:{port}"
    ) as daemon:
        daemon.wait_log("runaway: new")
        daemon.wait_log("other: new")
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert daemon.stop() == 0
    assert daemon.problems() == []


# --- heavy stages run off the event loop, with a deadline ----------------------------------


class SlowMatchers(Matchers):
    """Jurisdiction matchers whose relevance step for one watch waits for the test: an
    evaluation as slow as the test wants, without a clock."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow = slow
        self.entered = threading.Event()
        self.release = threading.Event()

    def for_watch(self, watch: Watch) -> Watching:
        if watch.id == self.slow:
            self.entered.set()
            self.release.wait(30)  # on the event loop this would hold everything up
        return super().for_watch(watch)


def test_a_slow_evaluation_holds_up_no_other_check_nor_healthz(world: World, store: Store) -> None:
    world.site.pages |= {"/slow": page(HK_BEFORE), "/fast": page(HK_BEFORE)}
    world.file.write_text(watchlist_text({"slow": "/slow", "fast": "/fast"}))
    slow = SlowMatchers("slow")
    world.clock = Clock(datetime.now(UTC))  # /healthz compares the heartbeat with real time

    async def go() -> None:
        daemon = world.daemon(store, settings={"http": ("127.0.0.1", 0)})
        await daemon.start()
        assert daemon.server is not None
        port = daemon.server.sockets[0].getsockname()[1]
        await daemon.run_check("slow")
        await daemon.run_check("fast")
        daemon.context = replace(daemon.context, matchers=slow)
        world.site.pages |= {"/slow": page(HK_AFTER), "/fast": page(HK_AFTER)}
        evaluating = asyncio.create_task(daemon.run_check("slow"))
        assert await asyncio.to_thread(slow.entered.wait, 30)
        async with httpx.AsyncClient(trust_env=False) as client:
            healthz = await client.get(f"http://127.0.0.1:{port}/healthz")
        await daemon.run_check("fast")
        assert not evaluating.done()
        slow.release.set()
        await evaluating
        await daemon.stop()
        assert healthz.status_code == 200 and healthz.text.startswith("ok"), healthz.text

    run(go)
    assert world.outcomes("fast") == ["new", "changed"]
    assert world.outcomes("slow") == ["new", "changed"]


def test_an_evaluation_past_its_deadline_fails_the_check_clearly(
    world: World, store: Store
) -> None:
    world.site.pages["/slow"] = page(HK_BEFORE)
    world.file.write_text(watchlist_text({"slow": "/slow"}))
    watch = world.load().watches[0]
    slow = SlowMatchers("slow")

    async def go() -> None:
        async with make_client(transport=httpx.MockTransport(world.site.handle)) as client:
            ctx = Context(client, store, now=world.clock, matchers=slow, evaluation_deadline=0.2)
            assert (await check(watch, ctx)).outcome is Outcome.NEW
            world.site.pages["/slow"] = page(HK_AFTER)
            world.clock.advance(3600)
            failed = await check(watch, ctx)
            slow.release.set()
            assert failed.outcome is Outcome.FAILED
            assert failed.failure is FailureKind.TOO_LARGE
            assert "took longer than 0.2s to extract and compare" in failed.message
            world.clock.advance(3600)
            assert (await check(watch, ctx)).outcome is Outcome.CHANGED

    run(go)
