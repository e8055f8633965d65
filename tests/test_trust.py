"""Hostile input that must neither freeze, flood nor leak: the watchlist, user regexes,
page text in chat, and the secrets of destinations and watched URLs."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from monitor import cli, config
from monitor.errors import ConfigError
from monitor.store import Store
from tests.test_daemon import World, messages, run, watchlist_text
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
