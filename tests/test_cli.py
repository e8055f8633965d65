"""The command-line contract, run as a user runs it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor import __version__
from monitor.cli import commands, main
from monitor.commands import IMPLEMENTATIONS
from monitor.messages import note_message
from monitor.model import (
    AlertKind,
    AlertRecord,
    CheckRecord,
    Finding,
    FindingKind,
    Outcome,
    VersionKind,
)
from monitor.store import Store
from tests.conftest import LocalSite
from tests.harness import ENV, monitor
from tests.test_store import DOC, T0, snap

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


@pytest.mark.slow
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


@pytest.mark.parametrize("command", ["validate", "run", "check"])
def test_a_route_url_apprise_rejects_stops_every_command_that_loads_the_watchlist(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "routes:\n  desk: ['nosuchservice://secret-token@example.org']\n"
        "watches:\n  - {id: a, platform: A, name: A, url: 'https://example.org/a'}\n"
    )
    args = [command, "--watchlist", str(path), "--db", str(tmp_path / "m.db")]
    assert main(args[:3] if command == "validate" else args) == 1
    err = capsys.readouterr().err
    assert "routes.desk[0]: apprise does not accept this URL: nosuchservice://***" in err
    assert "secret-token" not in err
    assert not (tmp_path / "m.db").exists()


@pytest.mark.slow
def test_validate_the_default_watchlist(tmp_path: Path) -> None:
    done = run_monitor("validate", cwd=tmp_path)  # no ./watchlist.yaml: the built-in one
    assert done.returncode == 0, done.stderr
    assert "OK, " in done.stdout and "watches over" in done.stdout


@pytest.mark.slow
def test_version() -> None:
    done = run_monitor("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"monitor {__version__}"


def test_every_command_the_parser_knows_has_its_code() -> None:
    assert sorted([*IMPLEMENTATIONS, "health"]) == sorted(commands())


@pytest.mark.parametrize("command", commands())
def test_every_command_explains_its_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: monitor {command}")
    if command not in ("health", "history", "alerts", "verify", "show", "verify-export"):
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
    Store.open(str(tmp_path / "m.db")).close()  # a store no daemon ever beat in
    assert main(["health", "--db", str(tmp_path / "m.db")]) == 1
    assert "no daemon heartbeat" in capsys.readouterr().err


READING = [
    ["health"],
    ["verify"],
    ["alerts"],
    ["history", "w"],
    ["diff", "w"],
    ["show", "1"],
    ["show", "--raw", "ab12"],
]


@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
def test_a_command_that_only_reads_never_creates_a_store(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the built-in watchlist, and a wrong --db
    db = tmp_path / "typo.db"
    assert main([*command, "--db", str(db)]) == 1
    assert capsys.readouterr().err == (
        f"monitor: no store at {db}: nothing has run with this --db yet\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A store where watch `w` has two versions and an alert that gave up."""
    url = str(tmp_path / "m.db")
    with Store.open(url) as store:
        for i, kind in enumerate((VersionKind.BASELINE, VersionKind.CHANGE)):
            store.record(
                CheckRecord(
                    "w",
                    T0,
                    0.1,
                    Outcome.NEW if i == 0 else Outcome.CHANGED,
                    snapshot=snap(f"page {i}"),
                    rules_hash="r",
                    document=DOC[: 2 - i],
                    version_kind=kind,
                )
            )
        alert = AlertRecord(
            "w", AlertKind.CHANGE, "W changed", "{}", ("HK",), (("desk", "ab12", "https://h/…"),)
        )
        store.add_alert(alert, T0)
        [due] = store.due_deliveries(None)
        store.give_up(due.id, "HTTP 500")
        store.add_alert(AlertRecord("w", AlertKind.HEALTH, "W failing", "{}"), T0)
    return url


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["history", "nope"], "unknown watch 'nope': the store has never checked it"),
        (["diff", "nope"], "unknown watch 'nope': the store has never checked it"),
        (["diff", "w", "--to", "99"], "no version 99 of 'w' (see monitor history w)"),
        (["diff", "w", "--from", "99"], "no version 99 of 'w' (see monitor history w)"),
        (["diff", "w", "--to", "1"], "'w' has no version before 1 to compare with"),
        (["show", "w", "99"], "no version 99 of 'w' (see monitor history w)"),
        (["show", "nosuch"], "unknown watch 'nosuch': the store has never checked it"),
        (["show"], "show needs WATCH_ID [VERSION], or --raw SHA256"),
        (["show", "--raw", "ab12"], "no raw body with SHA-256 ab12 in the store"),
    ],
    ids=[
        "history-watch", "diff-watch", "diff-to", "diff-from", "diff-first",
        "show-version", "show-watch", "show-nothing", "show-raw",
    ],
)  # fmt: skip
def test_an_unknown_watch_or_version_is_a_usage_error(
    command: list[str], message: str, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--db", db]) == 2
    assert capsys.readouterr().err == f"monitor: {message}\n"


def test_history_and_diff_of_a_known_watch(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "w", "--db", db]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[1] == ["1", "2026-11-01", "12:00:00", "baseline", "2", "0"]
    assert lines[2] == ["2", "2026-11-01", "12:00:00", "change", "1", "0"]
    assert main(["diff", "w", "--db", db, "--color", "never"]) == 0
    assert "version 1" in capsys.readouterr().out


def test_alerts_list_each_delivery_or_that_there_was_no_route(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "#2 2026-11-01 12:00 [health] W failing",
        "    stored   (no route)",
        "#1 2026-11-01 12:00 [change] W changed",
        "    failed   desk https://h/… (attempts: 1) - HTTP 500",
    ]
    assert main(["alerts", "--db", db, "--failed"]) == 0
    assert capsys.readouterr().out.startswith("#1 ")
    assert main(["alerts", "--db", db, "--pending"]) == 0
    assert capsys.readouterr().out == "no alerts with pending deliveries\n"


def test_unusable_store_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite" * 1000)
    assert main(["health", "--db", str(bad)]) == 1
    assert "cannot open the store" in capsys.readouterr().err


@pytest.mark.slow
def test_verify_says_whether_the_store_is_sound(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    Store.open(str(db)).close()  # an empty store
    sound = run_monitor("verify", "--db", str(db))
    assert sound.returncode == 0 and sound.stdout.startswith("store sound: 0 bodies")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO bodies VALUES ('ab12', 3, 'zstd', NULL, x'00')")
    damaged = run_monitor("verify", "--db", str(db))
    assert damaged.returncode == 1
    assert "body ab12: unreadable" in damaged.stderr and "1 problem(s)" in damaged.stderr


TAGGED = """\
watches:
  - {id: meta-hk, platform: Meta, name: HK report, url: 'https://example.org/m',
     kind: transparency-report, tags: [hk, reports], about: HK, jurisdictions: [HK]}
  - {id: tiktok-le, platform: TikTok, name: Guidelines, url: 'https://example.org/t',
     kind: law-enforcement-guidelines, tags: [guidelines]}
  - {id: apple-cn, platform: Apple, name: CN report, url: 'https://example.org/a',
     kind: transparency-report, jurisdictions: [CN]}
"""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], ["meta-hk", "tiktok-le", "apple-cn"]),
        (["--tag", "hk"], ["meta-hk"]),
        (["--kind", "transparency-report"], ["meta-hk", "apple-cn"]),
        (["--platform", "tiktok", "--platform", "APPLE"], ["tiktok-le", "apple-cn"]),
        (["--jurisdiction", "CN"], ["tiktok-le", "apple-cn"]),
        (["--kind", "transparency-report", "--jurisdiction", "HK"], ["meta-hk"]),
    ],
)
def test_list_selects_watches_by_tag_kind_platform_and_jurisdiction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: list[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(TAGGED)
    db = tmp_path / "m.db"
    assert main(["list", "--watchlist", str(path), "--db", str(db), "--json", *options]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == expected
    assert all(line["type"] == "watch" and line["last_outcome"] is None for line in lines)
    assert not db.exists()  # listing reads only


def test_list_shows_each_watchs_last_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(TAGGED)
    db = tmp_path / "m.db"
    with Store.open(str(db)) as store:
        store.record(CheckRecord("tiktok-le", T0, 0.1, Outcome.FAILED, message="HTTP 503"))
    assert main(["list", "--watchlist", str(path), "--db", str(db)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "transparency-report" in rows["meta-hk"] and "never checked" in rows["meta-hk"]
    assert "failed" in rows["tiktok-le"]


def test_check_runs_only_the_selected_watches(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("m", "t", "a"):
        site[f"/{name}"] = "<html><body><main><p>Requests from Hong Kong.</p></main></body></html>"
    path = tmp_path / "w.yaml"
    path.write_text(TAGGED.replace("https://example.org", site.url("")))
    args = ["check", "--watchlist", str(path), "--db", str(tmp_path / "m.db"), "--json"]
    assert main([*args, "--kind", "transparency-report", "--tag", "hk"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["watch"], line["outcome"]) for line in lines] == [("meta-hk", "new")]
    assert [requested for requested, _ in site.requests] == ["/m"]


def test_check_exits_3_when_every_check_failed_and_0_when_one_succeeded(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site["/m"] = "<html><body><main><p>Requests from Hong Kong.</p></main></body></html>"
    path = tmp_path / "w.yaml"
    path.write_text(TAGGED.replace("https://example.org", site.url("")))  # /t and /a: 404
    args = ["check", "--watchlist", str(path), "--db", str(tmp_path / "m.db")]
    assert main([*args, "tiktok-le", "apple-cn"]) == 3
    assert main(args) == 0
    assert main([*args, "--tag", "nosuch"]) == 0  # nothing to check: nothing failed
    assert "checked 2 watches: 0 new, 0 unchanged, 0 changed, 0 not modified, 2 failed" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("command", ["history", "alerts", "check"])
def test_a_postgresql_store_without_its_driver_says_what_to_install(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg: ModuleNotFoundError
    args = ["w"] if command == "history" else []
    assert main([command, "--db", "postgresql://u:secret@db.example/m", *args]) == 1
    err = capsys.readouterr().err
    assert "the PostgreSQL driver is not installed: pip install 'monitor[postgres]'" in err
    assert "Traceback" not in err and "secret" not in err


def test_output_piped_into_a_command_that_stops_reading_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store.open(str(db)) as store:
        message = note_message("W changed", "Hong Kong " * 200).to_json()
        for _ in range(200):  # far more than a pipe holds
            store.add_alert(AlertRecord("w", AlertKind.CHANGE, "W changed", message), T0)
    command = [sys.executable, "-m", "monitor", "alerts", "--show", "--limit", "200"]
    with subprocess.Popen(
        [*command, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(100)  # like `| head -c 100`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert err == ""
    assert code == 141  # as a Unix tool killed by SIGPIPE: the shell's 128 + 13


PAGE = """<html><body><main>
<h1>Data requests</h1><p>We answer requests from Hong Kong.</p>
<h2>Elsewhere</h2><p>Requests from Macao are rare.</p><p>Nothing here.</p>
<nav class="menu">Menu about Hong Kong</nav>
</main></body></html>"""


def test_preview_a_url_shows_blocks_paths_and_names_and_stores_nothing(
    tmp_path: Path,
    site: LocalSite,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the built-in watchlist's defaults, no store
    monkeypatch.delenv("MONITOR_WATCHLIST", raising=False)
    site["/p"] = PAGE
    assert main(["preview", site.url("/p"), "--remove", "nav", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[1] == {
        "type": "block",
        "kind": "paragraph",
        "text": "We answer requests from Hong Kong.",
        "path": ["Data requests"],
        "jurisdictions": ["HK"],
        "terms": ["Hong Kong"],
    }
    assert [(b["path"], b["jurisdictions"]) for b in lines[3:]] == [
        (["Data requests", "Elsewhere"], ["MO"]),
        (["Data requests", "Elsewhere"], []),
    ]
    assert not any("Menu" in b["text"] for b in lines)  # --remove applied
    assert main(["preview", site.url("/p"), "--select", "h2"]) == 0
    assert capsys.readouterr().out == "[heading] (top)\n    Elsewhere\n"  # selected alone
    assert list(tmp_path.iterdir()) == []  # no store opened or created


def test_preview_a_watch_uses_its_rules_and_jurisdictions(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site["/p"] = PAGE
    path = tmp_path / "w.yaml"
    path.write_text(
        f"watches:\n  - {{id: w, url: '{site.url('/p')}', remove: [nav], jurisdictions: [MO]}}\n"
    )
    assert main(["preview", "w", "--watchlist", str(path)]) == 0
    out = capsys.readouterr().out
    assert "    jurisdictions: MO ('Macao')" in out
    assert "HK" not in out and "Menu" not in out  # only MO is watched; nav removed
    assert main(["preview", "nosuch", "--watchlist", str(path)]) == 2
    assert "unknown watch id 'nosuch'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("page", "options", "reason"),
    [
        ("/missing", [], "permanent: HTTP 404"),
        ("/p", ["--select", "#nosuch"], "extraction: "),
    ],
    ids=["fetch", "extract"],
)
def test_preview_says_why_a_page_could_not_be_read(
    page: str,
    options: list[str],
    reason: str,
    site: LocalSite,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site["/p"] = PAGE
    assert main(["preview", site.url(page), *options]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"monitor: {site.url(page)}: {reason}"), err


def test_show_prints_a_versions_blocks_and_a_raw_body_by_its_hash(
    db: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    sha = snap("page 0").sha256
    assert main(["show", "w", "1", "--db", db]) == 0
    assert capsysbinary.readouterr().out.decode().splitlines() == [
        f"version 1 of w (baseline, 2026-11-01 12:00:00 UTC), raw body SHA-256 {sha}",
        "[heading] (top)",
        "    Requests",
        "[paragraph] Requests",
        "    Hong Kong: 12",
    ]
    assert main(["show", "w", "--db", db, "--json"]) == 0  # the latest
    lines = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert lines == [
        {
            "type": "version",
            "version": 2,
            "watch": "w",
            "kind": "change",
            "created_at": "2026-11-01T12:00:00+00:00",
            "blocks": 1,
            "sha256": snap("page 1").sha256,
        },
        {"type": "block", "kind": "heading", "text": "Requests", "path": [], "level": 1},
    ]
    assert main(["show", "--raw", sha, "--db", db]) == 0
    assert capsysbinary.readouterr().out == b"page 0"


def test_history_and_diff_print_json_lines(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "w", "--db", db, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {
            "type": "version",
            "version": i + 1,
            "watch": "w",
            "kind": kind,
            "created_at": "2026-11-01T12:00:00+00:00",
            "blocks": 2 - i,
            "findings": 0,
        }
        for i, kind in enumerate(("baseline", "change"))
    ]
    assert main(["diff", "w", "--db", db, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    changes = [line for line in lines if line["type"] == "change"]
    findings = [line for line in lines if line["type"] == "finding"]
    assert changes and all(c["from"] == 1 and c["to"] == 2 for c in changes)
    assert any(c["before"] == "Hong Kong: 12" and c["after"] is None for c in changes)
    assert findings and all(f["jurisdiction"] == "HK" and f["version"] == 2 for f in findings)
    assert findings[0]["before"] == "Hong Kong: 12"
    assert len(changes) + len(findings) == len(lines)


def test_alerts_json_has_the_issues_shape_and_alerts_watch_filters(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.open(db) as store:
        alert = AlertRecord("w", AlertKind.CHANGE, "W changed again", "{}", ("HK", "MO"))
        store.record(
            CheckRecord(
                "w",
                T0,
                0.1,
                Outcome.CHANGED,
                snapshot=snap("page 2"),
                rules_hash="r",
                document=DOC[1:],
                version_kind=VersionKind.CHANGE,
                alerts=(alert,),
            )
        )
        store.add_alert(AlertRecord("other", AlertKind.HEALTH, "Other failing", "{}"), T0)
    assert main(["alerts", "--db", db, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [4, 3, 2, 1]
    assert lines[1] == {
        "type": "alert",
        "id": 3,
        "watch": "w",
        "kind": "change",
        "title": "W changed again",
        "created_at": lines[1]["created_at"],
        "jurisdictions": ["HK", "MO"],
        "versions": [2, 3],
        "deliveries": [],
    }
    assert lines[3]["versions"] == [None, None]  # written without a version
    assert lines[3]["deliveries"] == [
        {"destination": "https://h/…", "status": "failed", "attempts": 1}
    ]
    assert main(["alerts", "--db", db, "--json", "--watch", "other"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["id"], line["kind"]) for line in lines] == [(4, "health")]
    assert main(["alerts", "--db", db, "--watch", "w", "--limit", "1"]) == 0
    assert capsys.readouterr().out.startswith("#3 ")


def test_a_disabled_watch_is_skipped_by_check_unless_named_and_listed_as_disabled(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("m", "t", "a"):
        site[f"/{name}"] = "<html><body><main><p>Requests from Hong Kong.</p></main></body></html>"
    path = tmp_path / "w.yaml"
    text = TAGGED.replace("https://example.org", site.url(""))
    path.write_text(text.replace("tags: [guidelines]", "tags: [guidelines], enabled: false"))
    db = str(tmp_path / "m.db")
    args = ["check", "--watchlist", str(path), "--db", db]
    assert main([*args, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["watch"] for line in lines] == ["meta-hk", "apple-cn"]
    assert [requested for requested, _ in site.requests] == ["/m", "/a"]

    assert main([*args, "tiktok-le"]) == 0  # named: it runs, and says it is disabled
    err = capsys.readouterr().err
    assert "tiktok-le is disabled (enabled: false); checking it because it was named" in err
    assert [requested for requested, _ in site.requests][-1] == "/t"

    assert main(["list", "--watchlist", str(path), "--db", db, "--json"]) == 0
    listed = {w["id"]: w for w in map(json.loads, capsys.readouterr().out.splitlines())}
    assert [listed[i]["enabled"] for i in ("meta-hk", "tiktok-le", "apple-cn")] == [
        True,
        False,
        True,
    ]
    assert main(["list", "--watchlist", str(path), "--db", db]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "disabled" in rows["tiktok-le"] and "disabled" not in rows["meta-hk"]


SCHEDULED = """\
watches:
  - {id: meta-hk, platform: Meta, name: HK report, url: 'https://example.org/m', interval: 6h}
  - {id: tiktok-le, platform: TikTok, name: Guidelines, url: 'https://example.org/t'}
  - {id: apple-cn, platform: Apple, name: CN report, url: 'https://example.org/a',
     cron: '30 */2 * * *'}
  - {id: paused, platform: X, name: Paused, url: 'https://example.org/o', enabled: false}
"""


def _checked(watch_id: str, at: datetime, body: str, *findings: Finding) -> CheckRecord:
    return CheckRecord(
        watch_id,
        at,
        0.1,
        Outcome.CHANGED if findings else Outcome.NEW,
        snapshot=snap(body, at),
        rules_hash="r",
        document=DOC,
        version_kind=VersionKind.CHANGE if findings else VersionKind.BASELINE,
        findings=findings,
    )


def test_list_shows_each_watchs_last_finding_and_next_due_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(SCHEDULED)
    db = tmp_path / "m.db"
    hk = Finding("HK", FindingKind.SENTENCE_ADDED, "sentence", ("Hong Kong",))
    cn = Finding("CN", FindingKind.APPEARED, "page", ("China",))
    later = T0 + timedelta(hours=1)
    with Store.open(str(db)) as store:
        store.record(_checked("meta-hk", T0, "one", hk))
        store.record(_checked("meta-hk", later, "two", cn))  # the newest finding: CN
        store.record(_checked("meta-hk", later + timedelta(minutes=5), "three"))  # none
        store.record(_checked("apple-cn", T0, "a"))
        newest = store.newest_findings()
    assert set(newest) == {"meta-hk"}
    finding, at = newest["meta-hk"]
    assert (finding.finding.jurisdiction, finding.finding.kind, at) == ("CN", "appeared", later)

    assert main(["list", "--watchlist", str(path), "--db", str(db), "--json"]) == 0
    rows = {w["id"]: w for w in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["meta-hk"]["last_finding"] == {
        "at": later.isoformat(),
        "jurisdiction": "CN",
        "kind": "appeared",
    }
    assert rows["meta-hk"]["next_due"] == (later + timedelta(hours=6, minutes=5)).isoformat()
    assert rows["apple-cn"]["next_due"] == (T0 + timedelta(minutes=30)).isoformat()
    assert rows["apple-cn"]["last_finding"] is None
    assert rows["tiktok-le"]["next_due"] is None and rows["tiktok-le"]["last_finding"] is None
    assert rows["paused"]["next_due"] is None

    assert main(["list", "--watchlist", str(path), "--db", str(db)]) == 0
    text = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "last finding 2026-11-01 13:00 CN appeared" in text["meta-hk"]
    assert "next due 2026-11-01 19:05" in text["meta-hk"]
    assert "next due 2026-11-01 12:30" in text["apple-cn"]
    assert "due now" in text["tiktok-le"] and "last finding" not in text["tiktok-le"]


def test_diff_and_list_run_without_the_desks_passwords(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading the history needs no route secret; `validate` still asks for it."""
    monkeypatch.delenv("MONITOR_TEST_SMTP_USER", raising=False)
    watchlist = tmp_path / "secret.yaml"
    watchlist.write_text(
        "defaults: {routes: [desk]}\n"
        'routes: {desk: ["mailto://${MONITOR_TEST_SMTP_USER}@mail.example.org"]}\n'
        "watches:\n  - {id: w, platform: Example, name: Requests, url: 'https://example.org/w'}\n"
    )
    common = ["--watchlist", str(watchlist), "--db", db]
    assert main(["diff", "w", *common]) == 0
    assert main(["list", *common]) == 0
    assert "not set" not in capsys.readouterr().err
    assert main(["validate", "--watchlist", str(watchlist)]) == 1


def test_the_command_line_loads_servers_warc_and_pdf_code_only_when_used() -> None:
    """`monitor check` (and every command) starts without importing the dashboard's,
    the endpoint's, the WARC writer's or the PDF reader's libraries: each costs start-up
    time and memory of every cron run (bench/ measures how much)."""
    heavy = ("starlette", "hypercorn", "jinja2", "feedgen", "warcio", "pdfplumber")
    code = f"import sys, monitor.cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


# What a check of a plain HTML page never uses, and what loads each when it is needed
NOT_FOR_A_PAGE = (
    "starlette",  # the dashboard and the /metrics endpoint: `serve`, `run --http`
    "hypercorn",
    "prometheus_client",  # `run --http`
    "apscheduler",  # the daemon's schedule: `run`, `health`
    "jinja2",  # the dashboard
    "feedgen",
    "warcio",  # `export`
    "monitor.export",
    "monitor.store.evidence",
    "monitor.store.verify",  # `verify`
    "monitor.store.retention",  # `prune`
    "apprise",  # sending an alert (there is none to send here)
    "playwright",  # a page that needs a browser
    "pdfplumber",  # a PDF
    "markdown_it",  # a Markdown file
    "monitor.tabular",  # CSV, TSV, JSON and ZIP files
    "jmespath",
    "charset_normalizer",  # a page that declares no charset
    "cssselect",  # a watch with `select`, `remove` or `expect: {css: ...}`
)


def test_checks_of_pages_that_did_not_change_never_read_the_catalog_of_names(
    tmp_path: Path, site: LocalSite
) -> None:
    """The catalog of jurisdiction names (16 ms and 7 MB to load) is read for a page
    whose text changed, to find which places the change names; a first check and an
    unchanged one validate the watchlist's jurisdictions by their ids alone."""
    path = tmp_path / "w.yaml"
    path.write_text(
        "defaults: {jurisdictions: [HK, MO]}\n"
        f"watches:\n  - {{id: p, platform: P, url: '{site.url('/p')}'}}\n"
    )
    args = ["check", "--watchlist", str(path), "--db", str(tmp_path / "m.db"), "--json"]
    code = (
        "from monitor.cli import main; from monitor import jurisdictions; "
        f"main({args!r}); print(jurisdictions._load.cache_info().currsize)"
    )
    read = {}
    for text in ("Requests from Hong Kong.", "Requests from Hong Kong.", "From Macau."):
        site["/p"] = f"<html><body><main><p>{text}</p></main></body></html>"
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True
        )
        *lines, loaded = run.stdout.splitlines()
        read[json.loads(lines[0])["outcome"]] = loaded
    assert read == {"new": "0", "unchanged": "0", "changed": "1"}


def test_a_check_of_a_page_loads_only_the_code_it_runs(tmp_path: Path, site: LocalSite) -> None:
    """A cron job that checks one page pays at every run for each library it imports:
    a first check and a changed one, with its diff and its findings, load none of the
    code of the other commands, of other formats, of rendering or of sending."""
    site["/p"] = "<html><body><main><p>Requests from Hong Kong.</p></main></body></html>"
    path = tmp_path / "w.yaml"
    path.write_text(f"watches:\n  - {{id: p, platform: P, url: '{site.url('/p')}'}}\n")
    args = ["check", "--watchlist", str(path), "--db", str(tmp_path / "m.db"), "--json"]
    code = (
        f"import sys; from monitor.cli import main; code = main({args!r}); "
        f"print(code, *(m for m in {NOT_FOR_A_PAGE!r} if m in sys.modules))"
    )
    outcomes = []
    for text in ("Requests from Hong Kong.", "Requests from Hong Kong and Macau."):
        site["/p"] = f"<html><body><main><p>{text}</p></main></body></html>"
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True
        )
        *lines, loaded = run.stdout.splitlines()
        outcomes.append(json.loads(lines[0])["outcome"])
        assert loaded.split() == ["0"]
    assert outcomes == ["new", "changed"]


# What answering without running a check never needs (about 0.6 s of a start-up)
NOT_FOR_AN_ANSWER = ("sqlalchemy", "httpx", "pydantic", "lxml", "yaml", "monitor.commands")


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        (["--version"], ()),
        (["check", "--help"], ()),
        (["check", "--no-such-option"], ()),  # a usage error
        (["health", "--db", "{db}"], ("sqlalchemy",)),  # the store alone
    ],
)
def test_the_command_line_loads_a_command_only_when_it_runs_it(
    tmp_path: Path, args: list[str], loaded: tuple[str, ...]
) -> None:
    """`monitor --help`, `--version` and a mistyped option answer without loading the
    store, the fetcher or the watchlist's models; `monitor health`, which a container
    probes every minute, loads the store and nothing of a check (0.7 s of CPU before)."""
    args = [a.format(db=tmp_path / "m.db") for a in args]
    code = (
        "import sys\nfrom monitor.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print(*(m for m in {NOT_FOR_AN_ANSWER!r} if m in sys.modules), file=sys.stderr)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert tuple(run.stderr.splitlines()[-1].split()) == loaded
