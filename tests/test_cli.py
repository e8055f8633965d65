"""The command-line contract, run as a user runs it."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from monitor import __version__
from monitor.cli import COMMANDS, main
from tests.harness import monitor

BROKEN = """\
defaults:
  interval: often
watches:
  - id: a
    platform: A
    name: A
    url: ftp://example.org/a
  - id: b
    platform: B
    name: B
    url: https://example.org/b
    select: ['div[']
    jurisdictions: [HK, Narnia]
  - id: a
    platform: A
    name: A again
    url: https://example.org/a2
"""


def run_monitor(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return monitor(cwd or Path.cwd(), *args)


def test_validate_reports_five_mistakes_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    done = run_monitor("validate", "--watchlist", str(path))
    assert done.returncode == 1
    lines = [ln.strip() for ln in done.stderr.splitlines()[1:]]
    assert "5 problem(s)" in done.stderr
    assert (
        lines[0]
        == f"{path}:2: defaults.interval: 'often' is not a duration such as 30s, 15m, 6h or 1d"
    )
    assert lines[1].startswith(
        f"{path}:7: watches[0] (a).url: 'ftp://example.org/a' is not an http(s) URL"
    )
    assert lines[2].startswith(f"{path}:12: watches[1] (b).select[0]: invalid CSS selector 'div['")
    assert lines[3] == f"{path}:13: watches[1] (b).jurisdictions[1]: unknown jurisdiction 'Narnia'"
    assert (
        lines[4] == f"{path}:14: watches[2].id: duplicate watch id 'a' (first used by watches[0])"
    )


def test_validate_the_default_watchlist(tmp_path: Path) -> None:
    done = run_monitor("validate", cwd=tmp_path)  # no ./watchlist.yaml: the built-in one
    assert done.returncode == 0, done.stderr
    assert "OK, " in done.stdout and "watches over" in done.stdout


def test_version() -> None:
    done = run_monitor("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"monitor {__version__}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_explains_its_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: monitor {command}")
    if command not in ("health", "history", "alerts", "verify"):
        assert "--watchlist" in out


def test_unknown_watch_id_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--db", str(tmp_path / "m.db"), "no-such-watch"])
    assert code == 2
    assert "unknown watch id(s): no-such-watch" in capsys.readouterr().err


def test_health_without_a_daemon_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--db", str(tmp_path / "m.db")]) == 1
    assert "no daemon heartbeat" in capsys.readouterr().err


def test_unusable_store_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite" * 1000)
    assert main(["health", "--db", str(bad)]) == 1
    assert "cannot open the store" in capsys.readouterr().err


def test_verify_says_whether_the_store_is_sound(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    main(["health", "--db", str(db)])  # creates an empty store
    sound = run_monitor("verify", "--db", str(db))
    assert sound.returncode == 0 and sound.stdout.startswith("store sound: 0 bodies")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO bodies VALUES ('ab12', 3, 'zstd', NULL, x'00')")
    damaged = run_monitor("verify", "--db", str(db))
    assert damaged.returncode == 1
    assert "body ab12: unreadable" in damaged.stderr and "1 problem(s)" in damaged.stderr
