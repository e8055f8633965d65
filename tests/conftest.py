"""Shared fixtures: real servers on 127.0.0.1 (pages that change, SMTP, webhooks)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from hypothesis import HealthCheck, settings

# How often a test server looks for its shutdown: `shutdown()` waits up to this long,
# at the end of every test that uses one (the standard library's 0.5 s adds up).
POLL = 0.02

# Property tests check what holds, not how fast: on a loaded machine (CI, parallel
# workers) generating a document can take longer than Hypothesis's default 200 ms
# deadline and its "input generation is slow" health check allow, which says nothing
# about monitor. Speed is measured by the benchmarks in bench/.
settings.register_profile("monitor", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("monitor")


@dataclass
class Page:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"}
    )


class LocalSite:
    """Pages served on 127.0.0.1 (or another loopback address, to be another host);
    set `site[path] = Page(...)` or an HTML string."""

    def __init__(self, host: str = "127.0.0.1", *, keep_alive: bool = False) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections: list[int] = []  # each request's client port: its connection
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_GET(self) -> None:
                site.requests.append((self.path, dict(self.headers)))
                site.connections.append(self.client_address[1])
                page = site.pages.get(
                    self.path, Page(b"not found", 404, {"Content-Type": "text/plain"})
                )
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True)

    def __enter__(self) -> LocalSite:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __setitem__(self, path: str, page: Page | str) -> None:
        self.pages[path] = Page(page.encode()) if isinstance(page, str) else page

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite() as local:
        yield local


# --- a real SMTP server and a webhook receiver on 127.0.0.1 ------------------------------

PASSWORD = "s3cret-Pa55word"


@dataclass
class Mailbox:
    """What a local SMTP server received."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def authenticate(
    server: object, session: Session, envelope: Envelope, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"monitor",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 on failure


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticate,
        auth_require_tls=False,  # plain SMTP on loopback, as apprise's mode=insecure speaks
    )
    controller.start()
    yield box
    controller.stop()


def mailto(port: int, password: str = PASSWORD) -> str:
    return (
        f"mailto://monitor:{password}@127.0.0.1:{port}"
        "?to=desk@example.org&from=monitor@example.org&mode=insecure"
    )


def parts(message: EmailMessage) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = str(part.get_content())
    return found


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records POSTs and answers `status`."""

    def __init__(self) -> None:
        self.posts: list[Posted] = []
        self.status = 200
        self.statuses: list[int] = []  # answers to the next posts, in order, before `status`
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was received
                    self.close_connection = True
                    return
                receiver.posts.append(Posted(self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                reply = b"ok" if status < 400 else b"boom"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True)

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    local = Receiver()
    local.thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()
    local.thread.join(5)
