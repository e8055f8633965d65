"""The network policy and the per-watch cookie jar, against real servers on loopback.

Every site here is on 127.0.0.0/8 (Linux routes all of it to lo), so "a public page"
is played by 127.0.0.1 under a policy whose `internal` ranges name only the other
loopback addresses: the fetch takes exactly the path it takes on the internet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from monitor.check import Context, check
from monitor.cli import main
from monitor.config import loads
from monitor.errors import FailureKind, FetchError
from monitor.fetch import MAX_COOKIE_BYTES, MAX_COOKIES, CookieJar, fetch, make_client
from monitor.model import FetchRequest, Outcome, Snapshot
from monitor.netpolicy import AddressClass, Hop, IPAddress, NetworkPolicy, resolve
from monitor.socksgate import Gate
from monitor.store import Store
from tests.conftest import POLL, LocalSite, Page
from tests.harness import query

T = TypeVar("T")
HTML = (
    "<html><body><main><p>Hong Kong: the internal admin page says secret.</p></main></body></html>"
)
# 127.0.0.1 plays a public host; the rest of 127/8 stays internal
PUBLIC_LOOPBACK = NetworkPolicy(
    internal=(ipaddress.ip_network("127.0.0.2/31"), ipaddress.ip_network("127.0.0.4/30"))
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fetched(request: FetchRequest, **kwargs: Any) -> Snapshot:
    async def go() -> Snapshot:
        async with make_client(**kwargs) as client:
            result = await fetch(client, request, sleep=_no_sleep)
            assert isinstance(result, Snapshot)
            return result

    return run(go())


def refused(request: FetchRequest, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetched(replace(request, retries=0), **kwargs)
    return caught.value


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def inside() -> Iterator[LocalSite]:
    """The internal server: 127.0.0.3, an admin page nobody outside may read."""
    with LocalSite("127.0.0.3") as local:
        local["/admin"] = HTML
        yield local


@pytest.fixture
def outside() -> Iterator[LocalSite]:
    with LocalSite("127.0.0.1") as local:
        yield local


def redirect(location: str) -> Page:
    return Page(b"", 302, {"Location": location})


# --- the policy, hop by hop -------------------------------------------------------------


def test_a_public_page_cannot_redirect_inside(outside: LocalSite, inside: LocalSite) -> None:
    outside["/policy"] = redirect(inside.url("/admin"))

    error = refused(FetchRequest(outside.url("/policy"), network=PUBLIC_LOOPBACK))

    assert error.kind is FailureKind.BLOCKED_BY_POLICY
    assert "127.0.0.3" in str(error) and "loopback" in str(error)
    assert "secret" not in str(error)
    assert inside.requests == []  # refused before connecting


@pytest.mark.parametrize(
    "host",
    ["2130706435", "0x7f000003", "[::ffff:127.0.0.3]", "127.0.0.3", "127.3", "localhost"],
)
def test_numeric_and_ipv6_forms_are_judged_by_their_address(
    outside: LocalSite, inside: LocalSite, host: str
) -> None:
    port = inside.server.server_address[1]
    outside["/policy"] = redirect(f"http://{host}:{port}/admin")
    policy = NetworkPolicy(internal=(ipaddress.ip_network("127.0.0.2/31"), *policy_v6()))
    if host == "localhost":  # resolves to 127.0.0.1 (the "public" one) or ::1
        policy = replace(PUBLIC_LOOPBACK, deny=(ipaddress.ip_network("127.0.0.1/32"),))

    error = refused(FetchRequest(outside.url("/policy"), network=policy))

    assert error.kind is FailureKind.BLOCKED_BY_POLICY
    assert inside.requests == []


def policy_v6() -> tuple[ipaddress.IPv6Network, ...]:
    return (ipaddress.ip_network("::1/128"),)


def test_an_octal_host_is_no_url_at_all(outside: LocalSite, inside: LocalSite) -> None:
    port = inside.server.server_address[1]
    outside["/policy"] = redirect(f"http://0177.0.0.3:{port}/admin")

    error = refused(FetchRequest(outside.url("/policy"), network=PUBLIC_LOOPBACK))

    assert error.kind is FailureKind.PERMANENT
    assert inside.requests == []


def test_an_intranet_page_may_redirect_within_the_intranet(
    outside: LocalSite, inside: LocalSite
) -> None:
    outside["/policy"] = redirect(inside.url("/admin"))  # 127.0.0.1 is internal by default

    snapshot = fetched(FetchRequest(outside.url("/policy")))

    assert snapshot.final_url == inside.url("/admin")


def test_allow_lets_a_public_page_redirect_to_a_named_block(
    outside: LocalSite, inside: LocalSite
) -> None:
    outside["/policy"] = redirect(inside.url("/admin"))
    policy = replace(PUBLIC_LOOPBACK, allow=(ipaddress.ip_network("127.0.0.3/32"),))

    snapshot = fetched(FetchRequest(outside.url("/policy"), network=policy))

    assert snapshot.final_url == inside.url("/admin")


def test_deny_refuses_even_the_watch_s_own_url(inside: LocalSite) -> None:
    policy = NetworkPolicy(deny=(ipaddress.ip_network("127.0.0.0/8"),))

    error = refused(FetchRequest(inside.url("/admin"), network=policy))

    assert error.kind is FailureKind.BLOCKED_BY_POLICY
    assert "defaults.network.deny" in str(error)
    assert inside.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
    ],
)
def test_metadata_and_link_local_addresses_are_refused_before_connecting(url: str) -> None:
    error = refused(FetchRequest(url))

    assert error.kind is FailureKind.BLOCKED_BY_POLICY


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", AddressClass.RESTRICTED),
        ("fe80::1", AddressClass.RESTRICTED),
        ("fd00:ec2::254", AddressClass.RESTRICTED),
        ("100.100.100.200", AddressClass.RESTRICTED),
        ("64:ff9b::a9fe:a9fe", AddressClass.RESTRICTED),  # NAT64 of 169.254.169.254
        ("::ffff:10.1.2.3", AddressClass.INTERNAL),
        ("2002:7f00:1::1", AddressClass.INTERNAL),  # 6to4 of 127.0.0.1
        ("192.168.1.10", AddressClass.INTERNAL),
        ("fd12::1", AddressClass.INTERNAL),
        ("93.184.215.14", AddressClass.PUBLIC),
        ("2606:4700::1111", AddressClass.PUBLIC),
    ],
)
def test_every_address_falls_in_one_class(address: str, kind: AddressClass) -> None:
    assert NetworkPolicy().classify(ipaddress.ip_address(address)) is kind


def test_allow_overrides_the_built_in_ranges_and_deny_overrides_allow() -> None:
    metadata = ipaddress.ip_address("169.254.169.254")
    allowed = NetworkPolicy(allow=(ipaddress.ip_network("169.254.169.254/32"),))
    both = replace(allowed, deny=(ipaddress.ip_network("169.254.0.0/16"),))

    assert Hop(allowed, internal_ok=False).refusal([metadata]) is None
    assert Hop(both).refusal([metadata]) is not None


def test_a_name_that_resolves_anew_to_an_internal_address_is_refused(
    outside: LocalSite,
) -> None:
    """DNS rebinding: the check saw a public address, the connection reached inside."""
    outside["/policy"] = HTML
    port = outside.server.server_address[1]

    async def public_first(host: str, port: int) -> tuple[IPAddress, ...]:
        return (ipaddress.ip_address("127.0.0.5"),)  # public under the policy below

    policy = NetworkPolicy(internal=(ipaddress.ip_network("127.0.0.1/32"),))
    request = FetchRequest(f"http://localhost:{port}/policy", network=policy)
    error = refused(request, resolver=public_first)

    assert error.kind is FailureKind.BLOCKED_BY_POLICY
    assert "resolved anew" in str(error)


def test_the_network_policy_is_validated_with_clear_messages() -> None:
    text = """
defaults:
  network: {allow: [10.0.0.5/8, nonsense, 100.100.100.200], deny: 192.168.0.0/16}
watches:
  - {id: a, url: 'http://intranet.example/'}
"""
    with pytest.raises(Exception, match=r"allow\[0\]: '10.0.0.5/8' is not a CIDR block") as e:
        loads(text, "w.yaml")
    assert "allow[1]: 'nonsense' is not a CIDR block" in str(e.value)

    good = loads(text.replace("10.0.0.5/8, nonsense, ", ""), "w.yaml")
    policy = good.watches[0].network
    assert policy.allow == (ipaddress.ip_network("100.100.100.200/32"),)
    assert policy.deny == (ipaddress.ip_network("192.168.0.0/16"),)


# --- headers --------------------------------------------------------------------------


def test_watch_headers_never_leave_the_watch_s_origin() -> None:
    secret = (("X-Api-Key", "k-123"), ("Authorization", "Bearer t-456"), ("Cookie", "s=1"))
    with LocalSite("127.0.0.1") as first, LocalSite("127.0.0.1") as other:
        first["/policy"] = redirect("/moved")
        first["/moved"] = redirect(other.url("/landing"))
        other["/landing"] = HTML

        fetched(FetchRequest(first.url("/policy"), headers=secret))

        for _path, headers in first.requests:  # the same origin, after a redirect too
            assert headers["X-Api-Key"] == "k-123"
        assert len(first.requests) == 2
        [(_, seen)] = other.requests
        lowered = {name.lower() for name in seen}
        assert not lowered & {"x-api-key", "authorization", "cookie"}


# --- cookies ---------------------------------------------------------------------------


class CookieFlood:
    """A server that sets 40 new cookies with every answer, and answers 431 to a
    request whose Cookie header is over 8 KB (as many servers do)."""

    def __init__(self) -> None:
        self.cookie_headers: list[str] = []
        flood = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cookie = self.headers.get("Cookie", "")
                flood.cookie_headers.append(cookie)
                n = len(flood.cookie_headers)
                status = 431 if len(cookie) > 8192 else 200
                body = HTML.encode() if status == 200 else b"too large"
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                for i in range(40):
                    self.send_header("Set-Cookie", f"c{n}_{i}={'v' * 90}; Path=/")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def flood() -> Iterator[CookieFlood]:
    server = CookieFlood()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_cookie_flood_never_breaks_the_watch(flood: CookieFlood) -> None:
    jar = CookieJar()

    async def go() -> None:
        async with make_client() as client:
            for _ in range(6):
                await fetch(client, FetchRequest(flood.url("/p")), cookies=jar)
                assert len(jar) <= MAX_COOKIES and jar.size() <= MAX_COOKIE_BYTES

    run(go())

    assert max(len(header) for header in flood.cookie_headers) <= MAX_COOKIE_BYTES + 2 * MAX_COOKIES


def test_each_watch_has_its_own_jar_emptied_when_a_check_fails(
    flood: CookieFlood, tmp_path: Any
) -> None:
    text = f"""
defaults: {{browser: never}}
watches:
  - {{id: a, url: '{flood.url("/a")}'}}
  - {{id: b, url: '{flood.url("/b")}'}}
"""
    watchlist = loads(text, "w.yaml")
    a, b = watchlist.watches

    async def go() -> None:
        async with make_client() as client:
            ctx = Context(client, Store.open(str(tmp_path / "m.db")))
            assert (await check(a, ctx)).outcome is Outcome.NEW
            assert len(ctx.cookies.of("a")) == 40
            assert (await check(b, ctx)).outcome is Outcome.NEW
            assert flood.cookie_headers[1] == ""  # b never sees a's cookies
            await check(a, ctx)  # the jar is the watch's, kept between its checks
            assert flood.cookie_headers[2].count("c1_") == 40
            failed = await check(replace(a, url="http://127.0.0.1:1/"), ctx)
            assert failed.outcome is Outcome.FAILED
            assert "a" not in ctx.cookies.jars

    run(go())


def test_monitor_preview_obeys_the_watchlist_s_policy(
    inside: LocalSite, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "defaults: {network: {deny: [127.0.0.3]}}\n"
        f"watches:\n  - {{id: w, url: '{inside.url('/admin')}'}}\n"
    )

    assert main(["preview", "w", "--watchlist", str(path)]) == 1
    assert main(["preview", inside.url("/admin"), "--watchlist", str(path)]) == 1

    assert capsys.readouterr().err.count("blocked_by_policy") == 2
    assert inside.requests == []


def test_requests_through_an_environment_proxy_obey_the_policy(
    monkeypatch: pytest.MonkeyPatch, outside: LocalSite, inside: LocalSite
) -> None:
    """The proxy (a loopback server that records what it is asked) gets the requests
    the policy lets through, never a refused one; NO_PROXY hosts go direct."""
    monkeypatch.setenv("HTTP_PROXY", outside.base)
    monkeypatch.setenv("NO_PROXY", "127.0.0.3")
    monkeypatch.delenv("no_proxy", raising=False)
    outside["http://policy.invalid/p"] = HTML  # resolves only on the proxy's side

    metadata = refused(FetchRequest("http://169.254.169.254/latest/meta-data/"))
    through = fetched(FetchRequest("http://policy.invalid/p"))
    direct = fetched(FetchRequest(inside.url("/admin")))

    assert metadata.kind is FailureKind.BLOCKED_BY_POLICY
    assert [path for path, _ in outside.requests] == ["http://policy.invalid/p"]
    assert through.final_url == "http://policy.invalid/p"
    assert direct.final_url == inside.url("/admin")
    assert [path for path, _ in inside.requests] == ["/admin"]


# --- the browser's gate, spoken to as Chromium does -----------------------------------


async def _socks_connect(proxy: str, host: str, port: int) -> tuple[int, bytes]:
    """A SOCKS5 CONNECT by name through `proxy`, then one HTTP GET: (reply code, answer)."""
    gate_port = int(proxy.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", gate_port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    name = host.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
    reply = await reader.readexactly(10)
    answer = b""
    if reply[1] == 0:
        writer.write(f"GET /admin HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        answer = await reader.read()
    writer.close()
    return reply[1], answer


def test_the_gate_refuses_before_connecting_and_relays_what_it_allows(
    inside: LocalSite,
) -> None:
    port = inside.server.server_address[1]

    async def go() -> tuple[tuple[int, bytes], tuple[int, bytes], list[str]]:
        public = Gate(Hop(PUBLIC_LOOPBACK, internal_ok=False), resolve)
        intranet = Gate(Hop(NetworkPolicy()), resolve)
        try:
            refused = await _socks_connect(await public.open(), "127.0.0.3", port)
            allowed = await _socks_connect(await intranet.open(), "127.0.0.3", port)
        finally:
            await public.close()
            await intranet.close()
        return refused, allowed, public.refusals

    refused, allowed, refusals = run(go())

    assert refused == (2, b"")  # "connection not allowed by ruleset"
    assert "127.0.0.3" in refusals[0]
    assert allowed[0] == 0 and b"internal admin page" in allowed[1]
    assert [path for path, _ in inside.requests] == ["/admin"]  # only the allowed one


def test_a_blocked_hop_stores_nothing_and_its_health_alert_carries_no_page_text(
    outside: LocalSite, inside: LocalSite, tmp_path: Any
) -> None:
    outside["/policy"] = redirect(inside.url("/admin"))
    text = f"""
defaults: {{browser: never, failures_before_alert: 1}}
watches:
  - {{id: leak, url: '{outside.url("/policy")}'}}
"""
    watch = replace(loads(text, "w.yaml").watches[0], network=PUBLIC_LOOPBACK)
    db = tmp_path / "m.db"

    async def go() -> Any:
        async with make_client() as client:
            return await check(watch, Context(client, Store.open(str(db))))

    result = run(go())

    assert result.outcome is Outcome.FAILED
    assert result.failure is FailureKind.BLOCKED_BY_POLICY
    assert query(db, "SELECT count(*) FROM snapshots") == [(0,)]
    assert query(db, "SELECT count(*) FROM versions") == [(0,)]
    alerts = query(db, "SELECT kind, title, message FROM alerts")
    assert [kind for kind, _, _ in alerts] == ["health"]
    assert all("secret" not in title + message for _, title, message in alerts)
    assert "blocked_by_policy" in alerts[0][2] or "network policy" in alerts[0][2]
    assert inside.requests == []
