"""A hostile web on 127.0.0.1: every way a page server misbehaves, in one test server.

Each path of `HostileWeb` is one misbehaviour, and `CASES` says what the monitor must
make of it, check after check: the outcome (or the classified failure), whether the
check carries findings, and what the stored text must say. The same table drives the
in-process suite (`tests/test_hostile.py`) and the daemon run against it.

Everything is bounded: a dripping or silent server gives up after `HANG_LIMIT`
seconds, and a big body is generated piece by piece and stops as soon as the client
hangs up, so a monitor that misbehaves fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_LIMIT = 30  # seconds a dripping or silent response may last at most
BIG = 50 * 1024 * 1024  # the 50 MB body
BOMB = 256 * 1024 * 1024  # what the gzip bomb inflates to: 256 MiB
PIECE = 64 * 1024

HK_SENTENCE = "We do not respond to requests from the Hong Kong government."
PAGE = """<!DOCTYPE html><html><head><title>Government requests</title></head>
<body><nav>Home · Reports · Help</nav><main><h1>Government requests for user data</h1>
<p>We review every request for user data carefully and push back when it is too broad.</p>
<p>Requests must come through the proper legal channels of the requesting country.</p>
<p>{hk}</p>
<p>We publish the number of requests we receive twice a year in this report.</p>
<p>Emergency requests are answered around the clock by a dedicated team.</p>
</main><footer>© Example Platform</footer></body></html>"""
XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def page(hk: str = HK_SENTENCE) -> bytes:
    return PAGE.format(hk=hk).encode()


# --- the misbehaviours -------------------------------------------------------------------

Serve = Callable[["Handler", int], None]  # (handler, how many times this path was asked)


def _html(body: bytes, status: int = 200, **headers: str) -> Serve:
    def serve(h: Handler, _n: int) -> None:
        h.reply(status, body, {"Content-Type": "text/html; charset=utf-8", **headers})

    return serve


def _by_request(*bodies: bytes) -> Serve:
    """The n-th request gets the n-th body; the last one is served from then on."""

    def serve(h: Handler, n: int) -> None:
        h.reply(200, bodies[min(n, len(bodies)) - 1], {"Content-Type": "text/html"})

    return serve


def _alternating(a: bytes, b: bytes) -> Serve:
    def serve(h: Handler, n: int) -> None:
        h.reply(200, a if n % 2 else b, {"Content-Type": "text/html"})

    return serve


def _cut_transfer(h: Handler, _n: int) -> None:
    """Promise the whole page, send half of it, hang up."""
    body = page()
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body[: len(body) // 2])
    h.close_connection = True


def _big(*, announce: bool) -> Serve:
    """50 MB of HTML, with or without saying so in Content-Length."""

    def serve(h: Handler, _n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        if announce:
            h.send_header("Content-Length", str(BIG))
        h.end_headers()
        h.close_connection = True
        filler = (b"<p>" + HK_SENTENCE.encode() + b"</p>\n") * (PIECE // 70)
        h.stream(filler for _ in range(BIG // len(filler)))

    return serve


@cache
@cache
def _bomb() -> bytes:
    """256 MiB of zeros, gzipped to about 260 KB: made once (seconds of CPU), before the
    server starts, so a check's deadline never waits for the server making it."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    return b"".join([*(packer.compress(zeros) for _ in range(BOMB // len(zeros))), packer.flush()])


def _gzip_bomb(h: Handler, _n: int) -> None:
    h.reply(200, _bomb(), {"Content-Type": "text/html", "Content-Encoding": "gzip"})


def _drip(h: Handler, _n: int) -> None:
    """Headers at once, then one byte a second."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.end_headers()
    h.close_connection = True
    h.stream(_slowly(page()[:HANG_LIMIT], 1.0))


def _slowly(body: bytes, pause: float) -> Iterator[bytes]:
    for byte in body:
        time.sleep(pause)
        yield bytes([byte])


def _silent(h: Handler, _n: int) -> None:
    """Accept the connection and never answer (until the client gives up)."""
    h.close_connection = True
    h.connection.settimeout(HANG_LIMIT)
    with contextlib.suppress(OSError):  # the time limit
        h.connection.recv(1)  # returns when the client closes


def _redirect(location: str) -> Serve:
    def serve(h: Handler, _n: int) -> None:
        h.reply(302, b"", {"Location": location})

    return serve


def _huge_header(h: Handler, _n: int) -> None:
    h.reply(200, page(), {"Content-Type": "text/html", "X-Padding": "x" * 200_000})


def _not_http(h: Handler, _n: int) -> None:
    """Answer with bytes that are no HTTP response at all."""
    h.close_connection = True
    h.wfile.write(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n" * 10)


def _endless_redirects(h: Handler, n: int) -> None:
    """Every URL redirects to a new one: no loop to spot, only a count to exceed."""
    h.reply(302, b"", {"Location": f"/endless-redirects?step={n}"})


def _retry_after_once(status: int, seconds: str) -> Serve:
    """Odd requests are refused with Retry-After, even ones get the page."""

    def serve(h: Handler, n: int) -> None:
        if n % 2:
            h.reply(status, b"slow down", {"Content-Type": "text/plain", "Retry-After": seconds})
        else:
            h.reply(200, page(), {"Content-Type": "text/html"})

    return serve


MALFORMED = (
    b"<html><head><title>Requests</title><body><main><h1>Government requests"
    b"<p>We review every request for user data carefully.<div><p>"
    + HK_SENTENCE.encode()
    + b"</span></table><p>Unclosed <b>bold <i>and italic</b> text &bogus; &#xD800; &#99999999;"
    b"\x00 with a NUL</i><p>Requests must come through the proper legal channels.</main></html"
)
TRUNCATED = page()[: page().index(HK_SENTENCE.encode()) + 10]  # cut off mid-sentence
INVALID_UTF8 = page(HK_SENTENCE + " Caf\xe9 \x93quotes\x94").replace(
    "Caf\xe9 \x93quotes\x94".encode(), b"Caf\xe9 \x93quotes\x94\xff\xfe"
)
CHINESE = page("我們不回應香港政府的資料要求。")
PDF = (
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + bytes(range(256)) * 64
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64
CHALLENGE_403 = b"""<html><head><title>Just a moment...</title></head><body>
<h1>Verify you are human</h1><p>Checking your browser before accessing the site.</p>
</body></html>"""
CHALLENGE_200 = b"""<html><head><title>Example</title></head><body>
<noscript>Please enable JavaScript to continue.</noscript><div id="root"></div></body></html>"""
ERROR_PAGE = b"""<html><body><main><h1>Something went wrong</h1>
<p>Please try again later.</p></main></body></html>"""
NESTED_300 = page("<div>" * 300 + f"<p>{HK_SENTENCE}</p>" + "</div>" * 300 + "Requests are logged.")
NESTED_5000 = page("<div>" * 5000 + f"<p>{HK_SENTENCE}</p>" + "</div>" * 5000)
ALTERNATE = page("We respond to requests from the Hong Kong government since 2021.")
ESCAPE = "\x1b]0;pwned\x07\x1b[2J"  # a terminal title change and screen clear
WITH_XSS = page(f"Requests from Hong Kong: {XSS.replace('<', '&lt;')}{ESCAPE} are answered.")

ROUTES: dict[str, Serve] = {
    "/malformed": _html(MALFORMED),
    "/cut-transfer": _cut_transfer,
    "/truncated": _by_request(page(), TRUNCATED),
    "/big-announced": _big(announce=True),
    "/big-streamed": _big(announce=False),
    "/gzip-bomb": _gzip_bomb,
    "/pdf-as-html": _html(PDF),
    "/binary-as-html": _html(PNG),
    "/invalid-utf8": _html(INVALID_UTF8),
    "/lying-charset": _html(CHINESE, **{"Content-Type": "text/html; charset=iso-8859-1"}),
    "/redirect-loop": _redirect("/redirect-loop-2"),
    "/redirect-loop-2": _redirect("/redirect-loop"),
    "/redirect-ftp": _redirect("ftp://127.0.0.1/policy.html"),
    "/redirect-file": _redirect("file:///etc/passwd"),
    "/endless-redirects": _endless_redirects,
    "/huge-header": _huge_header,
    "/not-http": _not_http,
    "/drip": _drip,
    "/silent": _silent,
    "/429-then-page": _retry_after_once(429, "1"),
    "/503-for-an-hour": _html(b"down", 503, **{"Retry-After": "3600"}),
    "/challenge-403": _html(CHALLENGE_403, 403),
    "/challenge-200": _html(CHALLENGE_200),
    "/empty-200": _html(b""),
    "/nested-300": _html(NESTED_300),
    "/nested-5000": _html(NESTED_5000),
    "/lost-then-back": _by_request(page(), ERROR_PAGE, page()),
    "/alternating": _alternating(page(), ALTERNATE),
    "/xss": _by_request(page(), WITH_XSS),
}


@dataclass(frozen=True)
class Case:
    """A hostile path and what each successive check of it must give.

    `expect` holds one entry per check: an outcome (`new`, `unchanged`, `changed`) or
    `failed:<kind>`; a trailing entry repeats. `findings` marks the checks (by index)
    that carry findings: no other check may. `text` must be in the stored text.
    """

    path: str
    expect: tuple[str, ...]
    findings: frozenset[int] = frozenset()
    text: str | None = None

    def outcome(self, index: int) -> str:
        return self.expect[min(index, len(self.expect) - 1)]


CASES = (
    Case("/malformed", ("new", "unchanged"), text=HK_SENTENCE),
    Case("/cut-transfer", ("failed:transient",)),
    Case("/truncated", ("new", "failed:transient")),
    Case("/big-announced", ("failed:too_large",)),
    Case("/big-streamed", ("failed:too_large",)),
    Case("/gzip-bomb", ("failed:too_large",)),
    Case("/pdf-as-html", ("failed:extraction",)),  # read as a PDF: a damaged one
    Case("/binary-as-html", ("failed:wrong_type",)),
    Case("/invalid-utf8", ("new", "unchanged"), text=HK_SENTENCE),
    Case("/lying-charset", ("new", "unchanged"), text="香港政府"),
    Case("/redirect-loop", ("failed:permanent",)),
    Case("/redirect-ftp", ("failed:permanent",)),
    Case("/redirect-file", ("failed:permanent",)),
    Case("/endless-redirects", ("failed:permanent",)),
    Case("/huge-header", ("failed:transient",)),
    Case("/not-http", ("failed:transient",)),
    Case("/drip", ("failed:transient",)),
    Case("/silent", ("failed:transient",)),
    Case("/429-then-page", ("new", "unchanged"), text=HK_SENTENCE),
    Case("/503-for-an-hour", ("failed:transient",)),
    Case("/challenge-403", ("failed:blocked",)),
    Case("/challenge-200", ("failed:blocked",)),
    Case("/empty-200", ("failed:extraction",)),
    Case("/nested-300", ("new", "unchanged"), text="Requests are logged."),
    Case("/nested-5000", ("failed:extraction",)),
    Case("/lost-then-back", ("new", "failed:content_lost", "unchanged")),
    # a real change, its revert (reported once), then flapping recorded silently
    Case("/alternating", ("new", "changed"), findings=frozenset({1, 2})),
    Case("/xss", ("new", "changed", "unchanged"), findings=frozenset({1}), text="<script>"),
)


# --- the server ---------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    web: HostileWeb

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.web.lock:
            self.web.requests[path] += 1
            n = self.web.requests[path]
        serve = ROUTES.get(path)
        if serve is None:
            self.reply(404, b"not found", {"Content-Type": "text/plain"})
            return
        try:
            serve(self, n)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the monitor hung up: exactly what it should do

    def reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, pieces: Iterable[bytes]) -> None:
        """Write pieces until done, the client hangs up, or HANG_LIMIT passes."""
        path, started = self.path, time.monotonic()
        for piece in pieces:
            if time.monotonic() - started > HANG_LIMIT:
                break
            self.wfile.write(piece)
            with self.web.lock:
                self.web.sent[path] += len(piece)

    def log_message(self, *_args: object) -> None:
        pass


class HostileWeb:
    """The hostile server on a loopback address (127.0.0.1 unless told another of
    127.0.0.0/8, for a test that needs many hosts); `requests` and `sent` (bytes
    streamed) are counted per path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        handler = type("BoundHandler", (Handler,), {"web": self})
        self.server = ThreadingHTTPServer((host, 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def __enter__(self) -> HostileWeb:
        _bomb()
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
