"""Alerts that arrive exactly once: real SMTP and webhook servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor import config
from monitor.alerting import destinations
from monitor.cli import main
from monitor.deliver import Deliverer
from monitor.messages import Message, Proof, Subject, change_message
from monitor.model import AlertKind, AlertRecord, Change, Finding
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
    assert [str(n.kind) for n in notices] == ["notice"]  # `alerts --json` kind: notice
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
        before, after = store.versions("m")
        [alert] = [a for a in store.alerts() if a.kind == "change"]
    assert alert.version_id == after.id
    # Numbered per watch (issue 15, item 13): `o`'s version in between takes no number of m's.
    assert (before.number, after.number) == (1, 2) and alert.versions == (1, 2)
    text = Message.from_json(alert.message).text
    command = "monitor diff m --from 1 --to 2"
    assert "Versions: 1 → 2\n" in text and command in text
    seen = f"{before.created_at:%Y-%m-%d %H:%M} UTC"
    assert f"Before text seen: {seen} to {seen}\n" in text
    assert f"Changed between: {seen} and {after.created_at:%Y-%m-%d %H:%M} UTC\n" in text
    [mail] = mailbox.messages
    assert command in parts(mail)["text/plain"]
    capsys.readouterr()
    args = command.split()[1:]
    assert main([*args, "--watchlist", str(watchlist), "--db", str(tmp_path / "m.db")]) == 0
    assert "sentence modified" in capsys.readouterr().out


def test_a_split_alert_resumes_after_the_last_part_the_service_accepted(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Issue 14, row 2: a send failing part-way re-posted the first parts on every retry
    and never delivered the end."""
    url = f"mmost://127.0.0.1:{receiver.port}/hooktoken0123456789abcdef"
    routes = {"chat": config.Route("chat", (url,))}
    sentences = [f"Hong Kong sentence number {n} {'with some padding ' * 20}." for n in range(40)]
    findings = [
        Finding("HK", "sentence_removed", "sentence", ("Hong Kong",), Change("removed", "p", s))
        for s in sentences
    ]
    subject = Subject("Meta", "Requests", "https://example.org/", "w")
    message = change_message(
        subject, findings, Proof(datetime.now(UTC)), jurisdiction_names={}, limit=None
    )
    dests = destinations(routes, ("chat",), "change", ("HK",))
    with Store.open(str(tmp_path / "m.db")) as store:
        store.add_alert(
            AlertRecord("w", AlertKind.CHANGE, message.title, message.to_json(), ("HK",), dests),
            datetime.now(UTC),
        )
        deliverer = Deliverer(store, routes)
        receiver.statuses = [200, 200, 500]  # the third part fails
        first = asyncio.run(deliverer.run(everything=True))
        assert (first.sent, first.retrying, len(receiver.posts)) == (0, 1, 3)
        second = asyncio.run(deliverer.run(everything=True))
        assert second.sent == 1
    texts = [p.json()["text"] for p in receiver.posts]
    total = len(texts) - 1  # the rejected third part was posted twice
    assert total > 3
    assert [int(re.search(r"\((\d+)/\d+\)", t)[1]) for t in texts] == [
        1,
        2,
        3,
        *range(3, total + 1),
    ]
    accepted = "\n".join(texts[:2] + texts[3:])
    for sentence in sentences:
        assert accepted.count(sentence.split(" with")[0] + " ") == 1
