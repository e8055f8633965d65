"""The composition root: the watchlist a command loads, with or without route secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app import load_watchlist
from monitor.errors import ConfigError

WATCHLIST = """\
defaults: {routes: [desk]}
routes:
  desk: ["mailto://${MONITOR_TEST_SMTP_USER}:${MONITOR_TEST_SMTP_PASS}@mail.example.org"]
watches:
  - {id: w, platform: Example, name: Requests, url: 'https://example.org/w'}
"""


@pytest.fixture
def watchlist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MONITOR_TEST_SMTP_USER", raising=False)
    monkeypatch.delenv("MONITOR_TEST_SMTP_PASS", raising=False)
    path = tmp_path / "w.yaml"
    path.write_text(WATCHLIST)
    return path


def test_sending_needs_the_route_secrets(watchlist: Path) -> None:
    with pytest.raises(ConfigError, match="MONITOR_TEST_SMTP_USER is not set"):
        load_watchlist(watchlist)


def test_reading_needs_no_route_secret(watchlist: Path) -> None:
    assert [w.id for w in load_watchlist(watchlist, sending=False).watches] == ["w"]
