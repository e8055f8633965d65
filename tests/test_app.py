"""The composition root: the watchlist a command loads, with or without route secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import cli
from monitor.app import load_watchlist
from monitor.errors import ConfigError
from monitor.model import CheckRecord, Outcome, VersionKind
from monitor.store import Store
from tests.test_store import DOC, T0, snap

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


def test_diff_and_list_run_without_the_desks_passwords(
    watchlist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    with Store.open(str(db)) as store:
        for i, (document, kind) in enumerate(
            ((DOC[:1], VersionKind.BASELINE), (DOC, VersionKind.CHANGE))
        ):
            store.record(
                CheckRecord(
                    "w",
                    T0,
                    0.1,
                    Outcome.NEW if i == 0 else Outcome.CHANGED,
                    snapshot=snap(f"page {i}"),
                    document=document,
                    version_kind=kind,
                    rules_hash="r",
                )
            )
    common = ["--watchlist", str(watchlist), "--db", str(db)]
    assert cli.main(["diff", "w", *common]) == 0
    assert cli.main(["list", *common]) == 0
    assert "not set" not in capsys.readouterr().err
    assert cli.main(["validate", "--watchlist", str(watchlist)]) == 1  # validate still asks
