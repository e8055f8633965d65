"""Alerts that arrive exactly once: real SMTP and webhook servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor import config
from monitor.cli import main
from monitor.deliver import Deliverer
from monitor.messages import Message
from monitor.store import Store
from tests.conftest import LocalSite, Mailbox, Receiver, mailto, parts

PAGE = """<html><body><nav>Home</nav><main><h1>Government requests</h1>
<p>We review every request for user data carefully.</p>
<p>{hk}</p></main><footer>Generated {stamp}</footer></body></html>"""
HK_BEFORE = "We do not respond to requests from the Hong Kong government."
HK_AFTER = (
    "We respond to requests from the Hong Kong government &lt;script&gt;alert(1)&lt;/script&gt;."
)


def write_watchlist(path: Path, site: LocalSite, routes: str, *, failures: int = 3) -> Path:
    path.write_text(
        f"defaults:\n  routes: [desk]\n  failures_before_alert: {failures}\n"
        f"routes:\n  desk: {routes}\n"
        "watches:\n"
        f"  - {{id: meta-hk, platform: Meta, name: Government requests, url: '{site.url('/p')}'}}\n"
    )
    return path


def check(tmp_path: Path, watchlist: Path) -> int:
    return main(["check", "--watchlist", str(watchlist), "--db", str(tmp_path / "m.db")])


def test_a_hong_kong_change_reaches_the_desk_by_email_once(
    tmp_path: Path, site: LocalSite, mailbox: Mailbox
) -> None:
    watchlist = write_watchlist(tmp_path / "w.yaml", site, f"['{mailto(mailbox.port)}']")
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    assert check(tmp_path, watchlist) == 0
    assert mailbox.messages == []  # a baseline never alerts
    site["/p"] = PAGE.format(hk=HK_AFTER, stamp="2")
    assert check(tmp_path, watchlist) == 0
    site["/p"] = PAGE.format(hk=HK_AFTER, stamp="3")
    assert check(tmp_path, watchlist) == 0  # unchanged: nothing more is sent
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert "Meta" in mail["Subject"] and "Hong Kong" in mail["Subject"]
    body = parts(mail)
    assert "do not" in body["text/plain"] and "Hong Kong" in body["text/plain"]
    assert "&lt;script&gt;" in body["text/html"] and "<script" not in body["text/html"]


def test_a_failing_webhook_gets_the_alert_once_after_recovery_and_restarts(
    tmp_path: Path, site: LocalSite, receiver: Receiver
) -> None:
    url = f"json://127.0.0.1:{receiver.port}/hook"
    watchlist = write_watchlist(tmp_path / "w.yaml", site, f"['{url}']")
    wl = config.load(watchlist)
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    check(tmp_path, watchlist)
    receiver.status = 500
    site["/p"] = PAGE.format(hk=HK_AFTER, stamp="2")
    check(tmp_path, watchlist)  # the alert is created; its delivery fails
    assert [p.path for p in receiver.posts] == ["/hook"]

    clock = datetime.now(UTC)

    def deliver_once() -> None:  # a fresh process each time: new store, new deliverer
        store = Store.open(str(tmp_path / "m.db"))
        try:
            asyncio.run(Deliverer(store, wl.routes, 86400, now=lambda: clock).run())
        finally:
            store.close()

    port = receiver.port
    receiver.server.shutdown()
    receiver.server.server_close()  # now connections are refused
    clock += timedelta(hours=2)
    deliver_once()
    store = Store.open(str(tmp_path / "m.db"))
    pending = store.alerts("pending")
    store.close()
    assert len(pending) == 1 and pending[0].deliveries[0].attempts == 2

    revived = ThreadingHTTPServer(("127.0.0.1", port), receiver.server.RequestHandlerClass)
    receiver.status = 200
    with revived:
        thread = threading.Thread(target=revived.serve_forever, daemon=True)
        thread.start()
        deliver_once()  # not due yet: back-off holds it
        assert len(receiver.posts) == 1
        clock += timedelta(hours=2)
        deliver_once()
        clock += timedelta(hours=2)
        deliver_once()  # nothing left to send
        revived.shutdown()
    assert len(receiver.posts) == 2
    assert "Hong Kong" in receiver.posts[-1].json()["message"]
    store = Store.open(str(tmp_path / "m.db"))
    assert store.alerts("pending") == [] and len(store.alerts("sent")) == 1
    store.close()


def test_health_alerts_once_when_failing_and_once_on_recovery(
    tmp_path: Path, site: LocalSite, receiver: Receiver
) -> None:
    watchlist = write_watchlist(
        tmp_path / "w.yaml", site, f"['json://127.0.0.1:{receiver.port}/ops']", failures=2
    )
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    check(tmp_path, watchlist)
    site.pages.pop("/p")  # now 404
    for _ in range(4):
        check(tmp_path, watchlist)
    titles = [p.json()["title"] for p in receiver.posts]
    assert len(titles) == 1 and "failing (permanent)" in titles[0]
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="9")
    check(tmp_path, watchlist)
    check(tmp_path, watchlist)
    titles = [p.json()["title"] for p in receiver.posts]
    assert len(titles) == 2 and "recovered" in titles[1]


def test_without_routes_alerts_go_to_the_store(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        f"watches:\n  - {{id: m, platform: Meta, name: N, url: '{site.url('/p')}'}}\n"
    )
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    check(tmp_path, watchlist)
    site["/p"] = PAGE.format(hk="Hong Kong requests are no longer answered.", stamp="2")
    check(tmp_path, watchlist)
    capsys.readouterr()
    assert main(["alerts", "--db", str(tmp_path / "m.db"), "--show"]) == 0
    out = capsys.readouterr().out
    assert "[change] Meta" in out and "(no route)" in out and "no longer answered" in out


def test_a_delivery_that_keeps_failing_gives_up_loudly(
    tmp_path: Path, site: LocalSite, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    hook = f"json://127.0.0.1:{receiver.port}"
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        "defaults:\n  routes: [desk, ops]\n  give_up_after: 1h\n"
        f"routes:\n  desk: ['{hook}/desk']\n  ops: {{urls: ['{hook}/ops'], kinds: [health]}}\n"
        f"watches:\n  - {{id: m, platform: Meta, name: N, url: '{site.url('/p')}'}}\n"
    )
    wl = config.load(watchlist)
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    check(tmp_path, watchlist)
    site["/p"] = PAGE.format(hk=HK_AFTER, stamp="2")
    check(tmp_path, watchlist)
    store = Store.open(str(tmp_path / "m.db"))
    later = datetime.now(UTC) + timedelta(hours=2)
    asyncio.run(Deliverer(store, wl.routes, wl.defaults.give_up_after, now=lambda: later).run())
    failed = store.alerts("failed")
    notices = [a for a in store.alerts("pending") if a.title.startswith("Undelivered alert")]
    store.close()
    assert len(failed) == 1 and failed[0].deliveries[0].status == "failed"
    assert len(notices) == 1 and notices[0].deliveries[0].route == "ops"
    assert "GAVE UP" in caplog.text
    message = Message.from_json(notices[0].message)
    assert "gave up" in message.text or "given up" in message.text


def test_history_and_diff_show_the_change_with_its_findings(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        f"watches:\n  - {{id: m, platform: Meta, name: N, url: '{site.url('/p')}'}}\n"
    )
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    check(tmp_path, watchlist)
    site["/p"] = PAGE.format(hk=HK_BEFORE.replace("do not respond", "respond"), stamp="2")
    check(tmp_path, watchlist)
    db = ["--db", str(tmp_path / "m.db")]
    capsys.readouterr()
    assert main(["history", *db, "m"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in history[1:]] == ["baseline", "change"]
    assert main(["diff", "--watchlist", str(watchlist), *db, "--color", "never", "m"]) == 0
    out = capsys.readouterr().out
    assert "1 finding(s):" in out and "HK · sentence modified" in out
    assert "We [-do not-] respond" in out or "[-do not -]" in out
    assert main(["diff", *db, "--watchlist", str(watchlist), "--to", "99", "m"]) == 2


def test_a_change_alert_names_both_versions_and_the_diff_that_shows_them(
    tmp_path: Path, site: LocalSite, mailbox: Mailbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15, bug 3: the new version was never filled in (`Versions: 12 → —`)."""
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        f"routes:\n  desk: ['{mailto(mailbox.port)}']\n"
        "defaults: {routes: [desk]}\nwatches:\n"
        f"  - {{id: m, platform: Meta, name: N, url: '{site.url('/p')}'}}\n"
        f"  - {{id: o, platform: Other, name: O, url: '{site.url('/o')}'}}\n"
    )
    site["/o"] = PAGE.format(hk="Nothing here.", stamp="1")
    site["/p"] = PAGE.format(hk=HK_BEFORE, stamp="1")
    check(tmp_path, watchlist)
    site["/o"] = PAGE.format(hk="Nothing here at all.", stamp="2")  # a version of `o` between
    site["/p"] = PAGE.format(hk=HK_BEFORE.replace("do not respond", "respond"), stamp="2")
    check(tmp_path, watchlist)
    with Store.open(str(tmp_path / "m.db")) as store:
        before, after = (v.id for v in store.versions("m"))
        [alert] = [a for a in store.alerts() if a.kind == "change"]
    assert alert.version_id == after
    text = Message.from_json(alert.message).text
    command = f"monitor diff m --from {before} --to {after}"
    assert f"Versions: {before} → {after}\n" in text and command in text
    [mail] = mailbox.messages
    assert command in parts(mail)["text/plain"]
    capsys.readouterr()
    args = command.split()[1:]
    assert main([*args, "--watchlist", str(watchlist), "--db", str(tmp_path / "m.db")]) == 0
    assert "sentence modified" in capsys.readouterr().out
