"""Hostile input that must neither freeze, flood nor leak: the watchlist, user regexes,
page text in chat, and the secrets of destinations and watched URLs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import pytest

from monitor import cli, config
from monitor.check import Context, check
from monitor.config import Watch
from monitor.errors import ConfigError, FailureKind
from monitor.extract import extract
from monitor.fetch import make_client
from monitor.jurisdictions import Watching
from monitor.messages import ZWSP, Message, Proof, Subject, change_message, health_message
from monitor.model import (
    AlertKind,
    AlertRecord,
    Change,
    ExtractRules,
    Finding,
    Outcome,
    destination_id,
)
from monitor.notify import redact, send
from monitor.pipeline import Matchers
from monitor.store import Store
from tests.conftest import LocalSite, Mailbox, Receiver, free_port, mailto, parts
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
        port = daemon.server.port
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


# --- mentions: page text in chat pings no one ------------------------------------------

PINGS = "@everyone @here <@123456789> <@&987654321> <!channel> <!here> <#42> @channel @all"
LIVE = re.compile(r"@(?:everyone|here|channel|all)\b|<[@!#]|@&?\d|!(?:here|channel|everyone)\b")
HOSTILE = Subject("Meta @everyone", "Requests <@&987654321>", "https://example.org/p", "meta")
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def hostile_change() -> Message:
    sentence = f"We respond to Hong Kong requests. {PINGS}"
    change = Change("added", "paragraph", after=sentence, path_after=("Requests",))
    finding = Finding("HK", "sentence_added", "sentence", ("Hong Kong",), change)
    proof = Proof(AT, "a" * 64, "b" * 64, 1, 2)
    return change_message(HOSTILE, (finding,), proof, jurisdiction_names={"HK": "Hong Kong"})


def hostile_health() -> Message:
    reason = f"HTTP 503 {PINGS}"  # a server's reason phrase, as the failure message shows it
    return health_message(
        HOSTILE, failing=True, reason="transient", message=reason, failures=3, since=AT, at=AT
    )


def live(text: str) -> list[str]:
    return LIVE.findall(text)


@pytest.fixture
def discord(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> str:
    """A Discord webhook URL whose posts reach the local receiver."""
    from apprise.plugins.discord import NotifyDiscord

    monkeypatch.setattr(NotifyDiscord, "notify_url", f"http://127.0.0.1:{receiver.port}/api")
    return "discord://1234567890/webhooktoken0123456789"


@pytest.mark.parametrize("options", ["", "?format=markdown"], ids=["content", "embeds"])
@pytest.mark.parametrize("message", [hostile_change, hostile_health])
def test_discord_gets_no_live_mention_and_no_allowed_mentions(
    discord: str, receiver: Receiver, options: str, message: Callable[[], Message]
) -> None:
    assert live(message().to_json())  # the message itself keeps the text
    asyncio.run(send(discord + options, message(), timeout=10))
    assert receiver.posts
    for post in receiver.posts:
        payload = post.json()
        assert live(json.dumps(payload, ensure_ascii=False)) == [], payload
        assert "allow_mentions" not in payload and "allowed_mentions" not in payload


@pytest.mark.parametrize("message", [hostile_change, hostile_health])
@pytest.mark.parametrize("scheme", ["mmost", "json", "form", "slack"])
def test_chat_and_webhooks_get_no_live_mention(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    message: Callable[[], Message],
) -> None:
    from apprise.plugins.slack import NotifySlack

    local = f"127.0.0.1:{receiver.port}"
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://{local}/services")
    url = {
        "mmost": f"mmost://{local}/hooktoken0123456789",
        "json": f"json://{local}/hook",
        "form": f"form://{local}/hook",
        "slack": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
    }[scheme]
    asyncio.run(send(url, message(), timeout=10))
    assert receiver.posts
    for post in receiver.posts:
        body = post.body.decode()
        if scheme == "form":
            body = unquote_plus(body)
        else:
            body = json.dumps(post.json(), ensure_ascii=False)
        assert live(body) == [], body
        assert "Hong Kong" in body or "HTTP 503" in body


def test_the_e_mail_keeps_the_text_verbatim(mailbox: Mailbox) -> None:
    asyncio.run(send(mailto(mailbox.port), hostile_change(), timeout=10))
    (mail,) = mailbox.messages
    assert "Meta @everyone" in str(mail["Subject"])
    text = parts(mail)["text/plain"]
    assert "@everyone @here" in text and ZWSP not in text


def test_a_defused_alert_stays_within_the_service_limit(discord: str, receiver: Receiver) -> None:
    """Defusing makes each mention a character longer: the split accounts for it."""
    change = Change("added", "paragraph", after="@everyone " * 400, path_after=("R",))
    finding = Finding("HK", "sentence_added", "sentence", ("Hong Kong",), change)
    message = change_message(
        HOSTILE, (finding,), Proof(AT, "a" * 64, "b" * 64, 1, 2), jurisdiction_names={}
    )
    asyncio.run(send(discord, message, timeout=10))
    for post in receiver.posts:
        _title, body = post.json()["content"].split("\r\n", 1)  # apprise puts the title first
        assert len(body) <= 2000
        assert live(post.json()["content"]) == []


# --- secrets: destinations are shown, logged and stored redacted --------------------------

SECRET = "s3cr3tT0ken"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"json://hooks.example.org/hook/{SECRET}?k=v", "json://hooks.example.org/***"),
        (
            f"jsons://me:{SECRET}@hooks.example.org:8443/x",
            "jsons://me:****@hooks.example.org:8443/***",
        ),
        (f"form://hooks.example.org/{SECRET}", "form://hooks.example.org/***"),
        (f"xml://hooks.example.org/a/{SECRET}/b", "xml://hooks.example.org/***"),
        (f"ntfys://ntfy.example.org/{SECRET}", "ntfys://ntfy.example.org/***"),
        (f"ntfy://{SECRET}", "ntfy://***"),
        (f"mmost://mattermost.example.org/{SECRET}", "mmost://mattermost.example.org/***"),
        (f"discord://1234567890/{SECRET}", "discord://***"),
        (f"slack://T1JJ3T3L2/A1BRTD4JD/{SECRET}/#desk", "slack://***"),
        (f"tgram://123456789:{SECRET}/12315544", "tgram://***"),
        (f"gotify://gotify.example.org/{SECRET}", "gotify://gotify.example.org/***"),
        (
            f"mailtos://desk:{SECRET}@smtp.example.org?to=desk@example.org",
            "mailtos://desk:****@smtp.example.org/desk%40example.org",
        ),
        (f"nosuch://{SECRET}@example.org", "nosuch://***"),
    ],
)
def test_redact_hides_the_whole_secret_of_each_scheme(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert SECRET.lower() not in redact(url).lower()
    assert "s3c" not in redact(url) and "...n" not in redact(url)  # not even apprise's a...b


@pytest.mark.parametrize("path", [f"/hook/{SECRET}", f"/{SECRET}"], ids=["json", "mmost-or-ntfy"])
def test_debug_logs_of_a_delivery_show_no_secret(
    receiver: Receiver, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    local = f"127.0.0.1:{receiver.port}"
    urls = (
        [f"json://{local}{path}", f"form://{local}{path}"]
        if path.startswith("/hook")
        else [f"mmost://{local}{path}", f"ntfy://{local}{path}?mode=private"]
    )
    for url in urls:
        asyncio.run(send(url, hostile_change(), timeout=10))
    assert len(receiver.posts) == 2
    logged = [r.getMessage() for r in caplog.records]
    assert any(r.name.startswith(("apprise", "urllib3")) for r in caplog.records)
    assert [line for line in logged if SECRET in line] == []


def test_destinations_are_keyed_with_the_store_s_own_random_key(tmp_path: Path) -> None:
    url = f"json://hooks.example.org/hook/{SECRET}"
    one, two = Store.open(str(tmp_path / "1.db")), Store.open(str(tmp_path / "2.db"))
    try:
        key = one.destination_key()
        assert len(key) == 32 and key != two.destination_key()
        assert destination_id(url, key) != destination_id(url, two.destination_key())
        assert hashlib.sha256(url.encode()).hexdigest() not in destination_id(url, key)
    finally:
        one.close()
        two.close()


def test_a_pending_delivery_of_an_older_store_is_re_keyed_and_still_delivered(
    tmp_path: Path, receiver: Receiver
) -> None:
    from sqlalchemy import create_engine, insert

    from monitor.deliver import Deliverer
    from monitor.messages import note_message
    from monitor.store import ledger, schema

    url = f"json://127.0.0.1:{receiver.port}/hook/{SECRET}"
    old_label = f"json://127.0.0.1:{receiver.port}/hook/{SECRET}"  # as redact() once showed it
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # a store as the release before the keyed ids left it
        schema.meta.create(conn)
        for migrate in schema.MIGRATIONS[:5]:  # schema 6 keyed the destinations
            migrate(conn)
        version = "5"
        conn.execute(insert(schema.meta).values(key="schema_version", value=version))
        sha = hashlib.sha256(url.encode()).hexdigest()
        alert = AlertRecord(
            "w",
            AlertKind.HEALTH,
            "t",
            note_message("t", "old alert").to_json(),
            (),
            (("desk", sha, old_label),),
        )
        ledger.insert_alert(conn, alert, (None, None), AT)
    engine.dispose()

    store = Store.open(str(path))
    try:
        wl = config.loads(
            f"routes:\n  desk: ['{url}']\nwatches:\n  - {{id: w, url: 'https://example.org/'}}\n",
            env={},
        )
        report = asyncio.run(Deliverer(store, wl.routes, 86400, now=lambda: AT).run())
    finally:
        store.close()
    assert report.sent == 1 and len(receiver.posts) == 1
    with sqlite3.connect(path) as db:
        ((destination, label, status),) = db.execute(
            "SELECT destination, label, status FROM deliveries"
        ).fetchall()
    assert status == "sent" and destination != sha and len(destination) == 64
    assert label == f"json://127.0.0.1:{receiver.port}/***"
    assert SECRET not in path.read_bytes().decode("latin-1")


# --- secrets of watched pages: ${VAR}s and credentials in a watch's URL -------------------

PASSWORD = "pa55-w0rd!"
API_KEY = "k3y-0123456789"


def secret_watchlist(url: str) -> str:
    return (
        "defaults:\n  headers: {X-Team: '${TEAM}'}\n"
        "watches:\n"
        f"  - id: w\n    url: '{url}'\n"
        "    headers: {X-Api-Key: '${API_KEY}'}\n"
    )


def test_watch_urls_and_headers_take_env_vars_and_never_show_them() -> None:
    env = {"PW": PASSWORD, "API_KEY": API_KEY, "TEAM": "research-desk"}
    text = secret_watchlist("https://reader:${PW}@example.org/p?key=${API_KEY}")
    (watch,) = config.loads(text, "w.yaml", env=env).watches
    assert watch.url == "https://reader:pa55-w0rd%21@example.org/p?key=k3y-0123456789"
    assert dict(watch.headers) == {"X-Team": "research-desk", "X-Api-Key": API_KEY}
    assert watch.shown_url == "https://reader:***@example.org/p?key=***"
    assert watch.shown(f"HTTP 500 from {watch.url} with {API_KEY}") == (
        "HTTP 500 from https://reader:***@example.org/p?key=*** with ***"
    )


def test_an_unset_env_var_of_a_watch_is_reported_with_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        config.loads(secret_watchlist("https://example.org/${NOPE}"), "w.yaml", env={})
    found = [str(p) for p in info.value.problems]
    assert any("watches[0] (w).url: environment variable NOPE is not set" in p for p in found)
    assert any("watches[0] (w).headers.X-Api-Key: environment variable API_KEY" in p for p in found)
    assert any("defaults.headers.X-Team: environment variable TEAM" in p for p in found)


def test_credentials_of_a_watch_url_reach_the_site_but_no_alert_store_or_listing(
    tmp_path: Path, site: LocalSite, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"PW": PASSWORD, "API_KEY": API_KEY, "TEAM": "desk"}
    url = site.url("/p").replace("http://", "http://reader:${PW}@")
    path = tmp_path / "w.yaml"
    path.write_text(secret_watchlist(url))
    wl = config.load(path, env=env)
    db = tmp_path / "m.db"
    store = Store.open(str(db))
    clock = [AT]

    async def go() -> list[str]:
        async with make_client() as client:
            ctx = Context(client, store, now=lambda: clock[0], matchers=Matchers(wl))
            messages = []
            for body in (page(HK_BEFORE), page(HK_AFTER)):
                site["/p"] = body
                clock[0] += timedelta(hours=1)
                result = await check(wl.watches[0], ctx)
                messages.append(f"{result.outcome} {result.message}")
            return messages

    try:
        said = asyncio.run(go())
        alerts = store.alerts()
    finally:
        store.close()
    assert said[-1].startswith("changed") and alerts
    _path, headers = site.requests[-1]
    assert headers.get("X-Api-Key") == API_KEY and "Authorization" in headers  # sent
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("m.db*"))
    assert PASSWORD.encode() not in stored and b"pa55-w0rd%21" not in stored
    assert API_KEY.encode() not in stored
    assert "reader:***@" in alerts[0].message
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        assert cli.main(["list", "--json", "--watchlist", str(path), "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    assert "reader:***@" in listed and PASSWORD not in listed and "pa55" not in listed


def test_preview_errors_show_no_credential_of_the_watch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(secret_watchlist(f"http://reader:${{PW}}@127.0.0.1:{free_port()}/p"))
    for name, value in {"PW": PASSWORD, "API_KEY": API_KEY, "TEAM": "desk"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["preview", "w", "--watchlist", str(path)]) != 0
    err = capsys.readouterr().err
    assert "reader:***@127.0.0.1" in err and "pa55" not in err
