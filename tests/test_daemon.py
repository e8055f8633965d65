"""The daemon end to end: `monitor run` as a subprocess, against servers on 127.0.0.1.

Each test starts the real command through `tests/harness.py`. The daemon spreads the
first run of a never-checked (or overdue) watch over up to a minute, so each test
first records a baseline with `monitor check`: the daemon's next run of that watch is
then due one `INTERVAL` after it.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import LocalSite, Mailbox, Receiver, mailto
from tests.harness import STOP_GRACE, monitor, query, running, wait_for

pytestmark = pytest.mark.slow

INTERVAL = 3  # seconds between checks; the daemon must start within it after a baseline
DELIVER_EVERY = 15  # seconds between the daemon's passes over due deliveries
PAGE = """<html><body><nav>Home</nav><main><h1>Government requests</h1>
<p>We review every request for user data carefully.</p>
<p>{hk}</p></main></body></html>"""
HK_BEFORE = "We do not respond to requests from the Hong Kong government."
HK_AFTER = "We respond to requests from the Hong Kong government."


def page(hk: str) -> str:
    return PAGE.format(hk=hk)


def write_watchlist(path: Path, watches: dict[str, str], route: str | None = None) -> Path:
    """A watchlist checking each `id: url` every INTERVAL seconds, alerting `route`."""
    lines = ["defaults:", f"  interval: {INTERVAL}s", "  jitter: 0"]
    if route is not None:
        lines += ["  routes: [desk]", "routes:", f"  desk: ['{route}']"]
    lines.append("watches:")
    lines += [
        f"  - {{id: {wid}, platform: Meta, name: Government requests, url: '{url}'}}"
        for wid, url in watches.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def baseline(tmp_path: Path, watchlist: Path, *watch_ids: str) -> None:
    """Record a first version with `monitor check`, so the daemon's next run is due soon."""
    args = ("--watchlist", str(watchlist), "--db", str(tmp_path / "m.db"), "--json")
    done = monitor(tmp_path, "check", *args, *watch_ids)
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line)["outcome"] for line in done.stdout.splitlines()]
    assert outcomes and set(outcomes) == {"new"}, done.stdout


# --- 1. a change while the daemon runs reaches the desk ----------------------------------


def test_a_hong_kong_change_while_running_is_mailed_once(
    tmp_path: Path, site: LocalSite, mailbox: Mailbox
) -> None:
    site["/p"] = page(HK_BEFORE)
    watchlist = write_watchlist(
        tmp_path / "w.yaml", {"meta-hk": site.url("/p")}, mailto(mailbox.port)
    )
    baseline(tmp_path, watchlist)
    with running(tmp_path, watchlist) as daemon:
        seen = daemon.wait_log("meta-hk: unchanged")  # the daemon keeps its rhythm
        site["/p"] = page(HK_AFTER)
        changed = daemon.wait_log("meta-hk: changed", after=seen)
        wait_for("the e-mail", lambda: len(mailbox.messages) > 0, timeout=15)
        sent = daemon.wait_log("alert 1 delivered", after=changed)
        daemon.wait_log("meta-hk: unchanged", after=sent)  # one more check: nothing new
        assert daemon.stop() == 0
    assert len(mailbox.messages) == 1
    subject = mailbox.messages[0]["Subject"]
    assert "Hong Kong" in subject and "Meta" in subject
    assert any(line["message"].startswith("ALERT Meta") for line in daemon.lines())
    assert query(tmp_path / "m.db", "SELECT status, attempts FROM deliveries") == [("sent", 1)]
    assert daemon.problems() == []


# --- 2. SIGTERM while a check is in flight ------------------------------------------------


class SlowPage:
    """A page on 127.0.0.1 whose body trickles out over `seconds`, keeping a check busy."""

    def __init__(self) -> None:
        self.body = page(HK_BEFORE).encode()
        self.seconds = 0.0
        self.requests = 0
        slow = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                slow.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(slow.body)))
                self.end_headers()
                chunks = [slow.body[i : i + 64] for i in range(0, len(slow.body), 64)]
                try:
                    for chunk in chunks:
                        time.sleep(slow.seconds / len(chunks))
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: that is its business

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/slow"


@pytest.fixture
def slow_page() -> Iterator[SlowPage]:
    local = SlowPage()
    local.thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()
    local.thread.join(5)


def test_sigterm_during_a_check_lets_it_finish_and_exits_0(
    tmp_path: Path, slow_page: SlowPage
) -> None:
    watchlist = write_watchlist(tmp_path / "w.yaml", {"slow": slow_page.url})
    baseline(tmp_path, watchlist)
    slow_page.seconds = 4.0
    with running(tmp_path, watchlist) as daemon:
        wait_for("the daemon's fetch", lambda: slow_page.requests >= 2, timeout=2 * INTERVAL + 5)
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        took = time.monotonic() - started
    assert took < STOP_GRACE, f"exit took {took:.1f}s"
    messages = [line["message"] for line in daemon.lines()]
    stopping = messages.index("stopping: waiting for 1 running checks")
    assert messages.index("slow: unchanged") > stopping  # finished, not cancelled
    assert messages[-1] == "monitor stopped"
    assert daemon.problems() == []

    db = tmp_path / "m.db"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "PRAGMA foreign_key_check") == []
    checks = query(db, "SELECT outcome, snapshot_id FROM checks ORDER BY id")
    assert [outcome for outcome, _ in checks] == ["new", "unchanged"]
    assert all(snapshot is not None for _, snapshot in checks)
    assert query(db, "SELECT count(*) FROM versions") == [(1,)]
    state = query(
        db,
        "SELECT last_outcome, consecutive_failures, last_check_at = "
        "(SELECT max(started_at) FROM checks) FROM watch_state",
    )
    assert state == [("unchanged", 0, 1)]


# --- 3. kill -9 with an alert pending, then restart ---------------------------------------


def test_kill_9_then_restart_delivers_the_pending_alert_once(
    tmp_path: Path, site: LocalSite, receiver: Receiver
) -> None:
    hook = f"json://127.0.0.1:{receiver.port}/hook"
    site["/p"] = page(HK_BEFORE)
    watchlist = write_watchlist(tmp_path / "w.yaml", {"meta-hk": site.url("/p")}, hook)
    baseline(tmp_path, watchlist)
    receiver.status = 500
    site["/p"] = page(HK_AFTER)
    with running(tmp_path, watchlist, "first") as daemon:
        changed = daemon.wait_log("meta-hk: changed")
        failed = daemon.wait_log("delivery of alert 1 to", after=changed)
        retry = re.search(r"retrying in (\d+)s", daemon.lines()[failed]["message"])
        assert retry is not None
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    db = tmp_path / "m.db"
    assert len(receiver.posts) == 1
    assert query(db, "SELECT status, attempts FROM deliveries") == [("pending", 1)]

    receiver.status = 200
    with running(tmp_path, watchlist, "second") as daemon:
        due_within = int(retry.group(1)) + DELIVER_EVERY + 5
        wait_for("the delivery", lambda: len(receiver.posts) == 2, timeout=due_within)
        daemon.wait_log("alert 1 delivered")
        assert daemon.stop() == 0
    assert len(receiver.posts) == 2
    assert "Hong Kong" in receiver.posts[1].json()["title"]
    assert query(db, "SELECT status, attempts FROM deliveries") == [("sent", 2)]
    assert query(db, "SELECT count(*) FROM alerts") == [(1,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert daemon.problems() == []


# --- 4. SIGHUP reloads the watchlist, or refuses a broken one ----------------------------


def test_sighup_refuses_a_broken_watchlist_and_adds_a_watch_from_a_valid_one(
    tmp_path: Path, site: LocalSite
) -> None:
    site["/one"] = page(HK_BEFORE)
    site["/two"] = page(HK_AFTER)
    db = str(tmp_path / "m.db")
    watchlist = write_watchlist(tmp_path / "w.yaml", {"one": site.url("/one")})
    baseline(tmp_path, watchlist)
    with running(tmp_path, watchlist) as daemon:
        daemon.wait_log("one: unchanged")
        watchlist.write_text(watchlist.read_text().replace("interval: 3s", "interval: often"))
        mark = daemon.mark()
        daemon.process.send_signal(signal.SIGHUP)
        refused = daemon.wait_log("watchlist reload refused", after=mark)
        assert f"{watchlist}:2: defaults.interval" in daemon.lines()[refused]["message"]
        daemon.wait_log("one: unchanged", after=refused)  # still checking, on the old one
        health = monitor(tmp_path, "health", "--db", db)
        assert health.returncode == 0, health.stderr

        write_watchlist(watchlist, {"one": site.url("/one"), "two": site.url("/two")})
        baseline(tmp_path, watchlist, "two")  # else its first run is up to a minute away
        mark = daemon.mark()
        daemon.process.send_signal(signal.SIGHUP)
        reloaded = daemon.wait_log(
            "watchlist reloaded: 2 watches (1 added or changed, 0 removed)", after=mark
        )
        daemon.wait_log("two: unchanged", after=reloaded)
        assert daemon.stop() == 0
    assert query(tmp_path / "m.db", "SELECT count(*) FROM checks WHERE watch_id = 'two'")[0][0] >= 2
    assert daemon.problems() == []


# --- 5. the heartbeat ---------------------------------------------------------------------


def test_health_follows_the_heartbeat(tmp_path: Path, site: LocalSite) -> None:
    site["/p"] = page(HK_BEFORE)
    watchlist = write_watchlist(tmp_path / "w.yaml", {"meta-hk": site.url("/p")})
    db = str(tmp_path / "m.db")
    before = monitor(tmp_path, "health", "--db", db)  # reads only: creates no store
    assert before.returncode == 1 and "no store at" in before.stderr
    with running(tmp_path, watchlist) as daemon:
        alive = monitor(tmp_path, "health", "--db", db, "--max-age", "10")
        assert alive.returncode == 0 and alive.stdout.startswith("healthy"), alive.stderr
        assert daemon.stop() == 0
    stopped = monitor(tmp_path, "health", "--db", db)  # a clean stop clears the heartbeat
    assert stopped.returncode == 1 and "no daemon heartbeat" in stopped.stderr
    assert daemon.problems() == []
