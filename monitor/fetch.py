"""Fetch stage: one policy page over HTTP into a Snapshot, or a classified FetchError.

Everything a broken or hostile server can do to a check is contained here, so the
stages after it only ever see a bounded, decodable HTML or text body:

- the body is capped at ``request.max_bytes`` *decoded* bytes while it streams (a gzip
  bomb is stopped as it inflates, never more than the cap plus one piece is held), and
  an oversized ``Content-Length`` is refused before any byte is read;
- one overall deadline covers every attempt, back-off sleep and slowly dripping body;
- only what `formats` can name is accepted (HTML, text, Markdown, CSV/TSV, JSON, ZIP,
  PDF, by content type, magic bytes and the watch's `format:`); images, video and
  unknown types are refused without downloading them, and text bodies are sniffed
  for binary bytes in case the content type lies;
- bot walls and challenge pages are recognised on any status, including 200;
- transient failures are retried with full-jitter back-off, honouring Retry-After;
- redirects are followed here, hop by hop: every hop's host is resolved and judged by
  the network policy (``netpolicy``) before a connection is made, and the address
  actually connected to is judged again (``_GuardedTransport``); the watch's own
  headers go to the watch's own origin only; cookies live in the watch's own bounded
  jar (``CookieJar``), never in the shared client.

Every failure is classified once, here, into ``FetchError.kind``:

    TRANSIENT    timeouts, connection errors, 5xx, 408, 429, corrupt compression,
                 the overall deadline
    PERMANENT    404, 410 and other 4xx, DNS name not found, invalid URL or scheme,
                 too many redirects or a redirect to a non-HTTP URL
    BLOCKED      401, 403, 451, and challenge pages (Cloudflare, Akamai, DataDome ...)
    TOO_LARGE    the body exceeds the cap
    WRONG_TYPE   a type monitor does not read, or an encoding fetch cannot bound
    BLOCKED_BY_POLICY  a hop to an address the network policy refuses

The HTTP client, per-host limiter, sleep and clock are parameters, so tests run
against ``httpx.MockTransport`` or respx without network or real waiting.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.utils
import http.cookiejar
import ipaddress
import logging
import random
import re
import socket
import time
import urllib.request
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn, cast

import httpx

from monitor import __version__, formats
from monitor.errors import FailureKind, FetchError, status_failure
from monitor.limits import HostLimiter
from monitor.model import FetchRequest, Format, NotModified, Snapshot
from monitor.netpolicy import Hop, IPAddress, resolve

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Now = Callable[[], datetime]
Resolve = Callable[[str, int], Awaitable[tuple[IPAddress, ...]]]

DEFAULT_USER_AGENT = (
    f"monitor/{__version__} (+https://github.com/monitor-policy/monitor; "
    "policy-page change monitor)"
)

_ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"
_ACCEPT_ENCODING = "gzip, deflate"  # exactly what _BodyDecoder inflates with bounded output
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HOP = "monitor.hop"  # request extension: the netpolicy.Hop this request is judged by
_INTERNAL = "monitor.internal"  # response extension: whether the hop reached inside
MAX_COOKIES = 50  # cookies one watch's jar holds at most ...
MAX_COOKIE_BYTES = 8192  # ... and bytes of names and values: far below servers' 8-16 KB
_BACKOFF_BASE = 1.0
_BACKOFF_CAP = 30.0

_PIECE = 64 * 1024  # most bytes one inflate step may produce
_SNIFF_BYTES = formats.SNIFF_BYTES  # where magic bytes, binary bytes and HTML tags are sniffed
_BINARY_ENCODING = "latin-1"  # a ZIP or PDF is no text: any byte decodes, none is read so
_CONTROL_BYTES = bytes({*range(32), 127} - {9, 10, 12, 13})  # not in any text
_META_BYTES = 4096  # where <meta charset> must appear
_HEAD_BYTES = 16 * 1024  # where challenge markers are looked for
_TEXT_SCAN_BYTES = 1024 * 1024  # how much is scanned to measure visible text
_LITTLE_TEXT = 2048  # below this much visible text a page may be a bot wall
_DETECT_BYTES = 1024 * 1024  # sample given to charset detection

_UNICODE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class ChallengeMarker:
    """Lower-case words that, all present, identify a bot wall or challenge page.

    ``weak`` markers are words that real policy pages also use, even in their titles
    (Google's "reCAPTCHA" terms), so they count only in the ``<title>`` of a page
    with little text.
    """

    words: tuple[str, ...]
    weak: bool = False

    def found_in(self, text: str) -> bool:
        return all(word in text for word in self.words)


CHALLENGE_MARKERS: tuple[ChallengeMarker, ...] = (
    ChallengeMarker(("just a moment...",)),  # Cloudflare interstitial
    ChallengeMarker(("cf-chl",)),  # Cloudflare challenge form and script ids
    ChallengeMarker(("attention required! | cloudflare",)),
    ChallengeMarker(("verify you are human",)),
    ChallengeMarker(("please enable javascript and cookies to continue",)),
    ChallengeMarker(("access denied", "reference #")),  # Akamai
    ChallengeMarker(("captcha-delivery.com",)),  # DataDome
    ChallengeMarker(("px-captcha",)),  # PerimeterX / HUMAN
    ChallengeMarker(("request unsuccessful. incapsula",)),  # Imperva Incapsula
    ChallengeMarker(("captcha",), weak=True),
)
"""What bot walls say, so they are reported as BLOCKED instead of becoming a version.

A page is a challenge if a (strong) marker is in its ``<title>``, or if it has little
visible text (under ~2 KB) and a strong marker is in its first 16 KB or a weak one in
its title. Long real policy pages that merely discuss captchas, bot checks or access
denials are therefore never mistaken for walls.
"""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- client ---------------------------------------------------------


def make_client(
    *,
    user_agent: str = DEFAULT_USER_AGENT,
    timeout: float = 30.0,
    max_redirects: int = 5,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolve = resolve,
) -> httpx.AsyncClient:
    """Build the HTTP client a daemon shares across all its checks.

    The User-Agent is honest and names the project so site operators can reach us.
    Proxies come from the environment because monitors often run behind an egress
    proxy. Only gzip and deflate are requested, because fetch can inflate those with
    a bounded output (a brotli or zstd bomb could not be stopped mid-chunk).

    Every network transport, the proxies' too, is guarded by the network policy
    (``_GuardedTransport``); a ``transport`` given by a test is used as it is. The
    client follows no redirect and keeps no cookie: ``fetch`` does both, per watch.
    """
    return httpx.AsyncClient(
        headers={
            "User-Agent": user_agent,
            "Accept": _ACCEPT,
            "Accept-Encoding": _ACCEPT_ENCODING,
        },
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
        timeout=httpx.Timeout(timeout),
        limits=_LIMITS,
        follow_redirects=False,
        max_redirects=max_redirects,
        trust_env=True,
        transport=transport
        or _GuardedTransport(httpx.AsyncHTTPTransport(limits=_LIMITS), resolver),
        mounts=None if transport else _proxy_mounts(resolver),
    )


_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=8)


def _proxy_mounts(resolver: Resolve) -> dict[str, httpx.AsyncBaseTransport | None]:
    """The environment's proxies, mounted as httpx mounts them, each behind the policy.

    httpx reads the environment only when it builds its own transport, so this does
    what it would (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, and ``NO_PROXY``
    read as curl does: hosts, addresses, ``.suffixes``, ``*``); a host that bypasses
    the proxy gets the guarded default transport (``None``).
    """
    proxies = urllib.request.getproxies()
    no_proxy = [host.strip() for host in proxies.get("no", "").split(",") if host.strip()]
    if "*" in no_proxy:
        return {}
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        f"{scheme}://": _GuardedTransport(
            httpx.AsyncHTTPTransport(proxy=_proxy_url(proxies[scheme]), limits=_LIMITS),
            resolver,
            proxied=True,
        )
        for scheme in ("http", "https", "all")
        if proxies.get(scheme)
    }
    for host in no_proxy:
        mounts[_bypass_pattern(host)] = None
    return mounts


def _proxy_url(value: str) -> str:
    return value if "://" in value else f"http://{value}"


def _bypass_pattern(host: str) -> str:
    """The httpx mount pattern of one ``NO_PROXY`` entry."""
    if "://" in host:
        return host
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"all://{host}" if host.lower() == "localhost" else f"all://*{host}"
    return f"all://[{address}]" if address.version == 6 else f"all://{address}"


class PolicyRefusal(httpx.TransportError):
    """A hop the network policy refuses; fetch classifies it BLOCKED_BY_POLICY."""


class _GuardedTransport(httpx.AsyncBaseTransport):
    """A network transport that lets no request reach an address the policy refuses.

    Before a request is sent, its host is resolved and every address judged by the
    request's ``Hop`` (the ``HOP`` extension; the default policy for a request fetch did
    not make). Once connected, the peer's address is judged too: httpx resolves the
    name again when it connects, and an answer that changed in between (DNS rebinding)
    is refused before a byte of the response is read. Behind a proxy the proxy
    connects, so only the addresses the name resolves to here are judged.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, resolver: Resolve, *, proxied: bool = False
    ) -> None:
        self._inner = inner
        self._resolve = resolver
        self._proxied = proxied

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hop = request.extensions.get(HOP)
        hop = hop if isinstance(hop, Hop) else Hop()
        addresses = await self._addresses(request.url)
        refusal = hop.refusal(addresses)
        if refusal is not None:
            raise PolicyRefusal(refusal, request=request)
        response = await self._inner.handle_async_request(request)
        peer = None if self._proxied else _peer(response)
        refusal = hop.peer_refusal(peer, addresses) if peer is not None else None
        if refusal is not None:
            await response.aclose()
            raise PolicyRefusal(refusal, request=request)
        response.extensions[_INTERNAL] = hop.internal(addresses)
        return response

    async def _addresses(self, url: httpx.URL) -> tuple[IPAddress, ...]:
        """The host's addresses; a failed lookup reads as httpcore's own would.

        Behind a proxy a name may resolve only on the proxy's side: it is left to the
        proxy (and a redirect from it counts as one from a public address).
        """
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            return await self._resolve(url.host, port)
        except (socket.gaierror, UnicodeError) as exc:
            if self._proxied:
                return ()
            raise httpx.ConnectError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


def _peer(response: httpx.Response) -> IPAddress | None:
    """The address the response came from, where the connection says so."""
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    if not isinstance(address, tuple) or not address:
        return None
    try:
        return ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:
        return None


class CookieJar:
    """One watch's cookies, kept between its checks, within MAX_COOKIES and
    MAX_COOKIE_BYTES: a server that sets more is answered with none (its answers stay
    readable, and no Cookie header ever grows into a 431). Cleared when a check fails,
    so a bad session never sticks."""

    def __init__(self) -> None:
        self._cookies = httpx.Cookies()

    def __len__(self) -> int:
        return len(self._cookies.jar)

    def size(self) -> int:
        return sum(len(c.name) + len(c.value or "") for c in self._cookies.jar)

    def clear(self) -> None:
        self._cookies.clear()

    def add_to(self, request: httpx.Request) -> None:
        self._cookies.set_cookie_header(request)

    def take_from(self, response: httpx.Response) -> None:
        self._cookies.extract_cookies(response)
        if len(self) > MAX_COOKIES or self.size() > MAX_COOKIE_BYTES:
            log.info(
                "fetch %s: %d cookies (%d bytes) exceed the jar's bounds; cleared",
                response.url.host,
                len(self),
                self.size(),
            )
            self.clear()


# --- fetch ---------------------------------------------------------------------------


class _RetryLater(FetchError):
    """A TRANSIENT status error that carries the server's Retry-After, in seconds."""

    def __init__(self, message: str, *, url: str, status: int, retry_after: float | None) -> None:
        super().__init__(FailureKind.TRANSIENT, message, url=url, status=status)
        self.retry_after = retry_after


async def fetch(
    client: httpx.AsyncClient,
    request: FetchRequest,
    *,
    limiter: HostLimiter | None = None,
    sleep: Sleep = asyncio.sleep,
    now: Now = _utcnow,
    cookies: CookieJar | None = None,
) -> Snapshot | NotModified:
    """Fetch one watched page within its deadline, or raise a classified FetchError.

    The deadline covers retries, back-off and slow bodies so that no server can stall
    a check; nothing but FetchError escapes, so the orchestrator never handles httpx.
    It starts when the host's turn comes: waiting behind other watches of the same
    site is the monitor's politeness, not the page's slowness, and must not fail it.
    ``cookies`` is the watch's own jar (none: cookies last one fetch).
    """
    url = _checked_url(request.url)
    jar = cookies if cookies is not None else CookieJar()
    async with limiter.slot(url.host) if limiter else contextlib.nullcontext():
        deadline_at = asyncio.get_running_loop().time() + request.deadline
        try:
            async with asyncio.timeout_at(deadline_at):
                return await _with_retries(client, request, jar, (sleep, now), deadline_at)
        except TimeoutError:
            message = f"deadline of {request.deadline:g}s exceeded"
            raise FetchError(FailureKind.TRANSIENT, message, url=request.url) from None


async def _with_retries(
    client: httpx.AsyncClient,
    request: FetchRequest,
    jar: CookieJar,
    clock: tuple[Sleep, Now],
    deadline_at: float,
) -> Snapshot | NotModified:
    """Retry transient failures while retries and the deadline allow, then give up."""
    loop = asyncio.get_running_loop()
    sleep, now = clock
    attempt = 0
    while True:
        try:
            return await _attempt(client, request, jar, now)
        except FetchError as error:
            delay = _retry_delay(error, attempt, request.retries, deadline_at - loop.time())
            if delay is None:
                raise
            attempt += 1
            log.info(
                "fetch %s: %s; retry %d/%d in %.1fs",
                httpx.URL(request.url).host,
                error,
                attempt,
                request.retries,
                delay,
            )
            await sleep(delay)


def _retry_delay(error: FetchError, attempt: int, retries: int, remaining: float) -> float | None:
    """Seconds to wait before the next attempt, or None to give up now.

    Full jitter spreads the retries of many checks hitting one platform; a Retry-After
    that does not fit in the remaining deadline means waiting would be pointless.
    """
    if error.kind is not FailureKind.TRANSIENT or attempt >= retries:
        return None
    retry_after = error.retry_after if isinstance(error, _RetryLater) else None
    if retry_after is not None:
        delay = retry_after
    else:
        delay = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
    return delay if delay < remaining else None


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from now; it may be delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def _attempt(
    client: httpx.AsyncClient, request: FetchRequest, jar: CookieJar, now: Now
) -> Snapshot | NotModified:
    """One HTTP exchange; httpx exceptions become classified FetchErrors here.

    An error after the status line (a body cut off, a read timing out) keeps the
    status: the server did answer, so it is no sign of the monitor's network being down.
    """
    started, status = time.monotonic(), None
    try:
        async with _followed(client, request, jar) as response:
            status = response.status_code
            return await _receive(response, request, started, now)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
        error = _from_exception(exc, request.url)
        if status is not None:
            error = FetchError(
                error.kind, f"HTTP {status}: {error}", url=request.url, status=status
            )
        raise error from exc


@contextlib.asynccontextmanager
async def _followed(
    client: httpx.AsyncClient, request: FetchRequest, jar: CookieJar
) -> AsyncIterator[httpx.Response]:
    """The last response of the redirect chain, each hop judged by the network policy.

    The first hop is the watch's own URL and may be internal; a later one may be
    internal only if the hop that redirected to it was. The watch's own headers go to
    its own origin (scheme, host, port) only, wherever the chain leads.
    """
    url, hop = httpx.URL(request.url), Hop(request.network)
    own_origin = _origin(url)
    for _ in range(client.max_redirects + 1):
        headers = _request_headers(request, own=_origin(url) == own_origin)
        sent = client.build_request("GET", url, headers=headers, extensions={HOP: hop})
        jar.add_to(sent)
        response = await client.send(sent, stream=True)
        try:
            jar.take_from(response)
            location = _location(response)
            if location is None:
                yield response
                return
        finally:
            await _release(response)
        internal = response.extensions.get(_INTERNAL, True)
        url, hop = location, Hop(request.network, internal_ok=bool(internal))
    raise httpx.TooManyRedirects("too many redirects", request=sent)


async def _release(response: httpx.Response) -> None:
    """Close a response; one that has no body left to read (a 304, a 204, a
    `Content-Length: 0`) is read to its end first, so its connection goes back to the
    pool for the next check of the host instead of being closed (the network policy
    still judges every request, and the peer of every response)."""
    empty = response.status_code in (204, 304) or response.headers.get("content-length") == "0"
    if empty and not response.is_stream_consumed:
        with contextlib.suppress(httpx.HTTPError):
            async for _ in response.aiter_raw():
                break  # nothing is left: the end of the message alone
    await response.aclose()


def _location(response: httpx.Response) -> httpx.URL | None:
    """Where a redirect leads, or None if the response is no redirect to follow."""
    location = response.headers.get("location")
    if response.status_code not in _REDIRECT_STATUSES or not location:
        return None
    try:
        url = response.url.join(location)
    except (httpx.InvalidURL, httpx.HTTPError):
        raise httpx.UnsupportedProtocol("redirected to an invalid URL") from None
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol("redirected to a non-HTTP URL", request=response.request)
    return url


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _checked_url(raw: str) -> httpx.URL:
    """Refuse what is not an absolute http(s) URL before any connection is made."""
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL:
        raise FetchError(FailureKind.PERMANENT, "invalid URL", url=raw) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchError(FailureKind.PERMANENT, "not an absolute http(s) URL", url=raw)
    return url


def _request_headers(request: FetchRequest, *, own: bool = True) -> list[tuple[str, str]]:
    """The watch's own headers (``own``: to its own origin only) plus the validators
    that make the request conditional."""
    headers = list(request.headers) if own else []
    if request.validators.etag:
        headers.append(("If-None-Match", request.validators.etag))
    if request.validators.last_modified:
        headers.append(("If-Modified-Since", request.validators.last_modified))
    return headers


_DNS_FAILURES = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo",
    "no address associated",
)


def _from_exception(exc: httpx.HTTPError | httpx.InvalidURL, url: str) -> FetchError:
    """Classify a library exception once; the message never contains the URL."""
    if isinstance(exc, PolicyRefusal):
        what = f"blocked by the network policy: {exc}"
        return FetchError(FailureKind.BLOCKED_BY_POLICY, what, url=url)
    if isinstance(exc, httpx.RemoteProtocolError) and "location header" in str(exc):
        return FetchError(FailureKind.PERMANENT, "redirected to an invalid URL", url=url)
    if isinstance(exc, httpx.UnsupportedProtocol) and "non-HTTP" in str(exc):
        return FetchError(FailureKind.PERMANENT, "redirected to a non-HTTP URL", url=url)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return FetchError(FailureKind.PERMANENT, "invalid URL or unsupported scheme", url=url)
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchError(FailureKind.PERMANENT, "too many redirects", url=url)
    if isinstance(exc, httpx.ConnectError) and _is_dns_failure(str(exc)):
        return FetchError(FailureKind.PERMANENT, "DNS lookup failed: no such host", url=url)
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(FailureKind.TRANSIENT, f"timed out ({type(exc).__name__})", url=url)
    detail = str(exc)[:120] or type(exc).__name__
    return FetchError(FailureKind.TRANSIENT, f"connection failed: {detail}", url=url)


def _is_dns_failure(message: str) -> bool:
    """A name that does not resolve is permanent; a resolver hiccup is not."""
    message = message.lower()
    if "temporary failure" in message:  # EAI_AGAIN: the resolver, not the name
        return False
    return any(marker in message for marker in _DNS_FAILURES)


# --- the response ----------------------------------------------------------------------


async def _receive(
    response: httpx.Response, request: FetchRequest, started: float, now: Now
) -> Snapshot | NotModified:
    """Turn one response into a Snapshot, checking type and size before reading."""
    if response.status_code == 304:
        return NotModified(url=request.url, fetched_at=now(), elapsed=time.monotonic() - started)
    if not response.is_success:
        await _raise_for_status(response, request.url, now)
    if response.url.scheme not in ("http", "https"):
        raise _error(FailureKind.PERMANENT, response, "redirected to a non-HTTP URL", request)
    content_type = response.headers.get("content-type", "")
    if not formats.may_read(content_type, request.format):
        what = formats.refusal(content_type)
        raise _error(FailureKind.WRONG_TYPE, response, what, request)
    _check_content_length(response, request)
    body = await _read_body(response, request)
    read_as = _check_body(body, content_type, response, request)
    return Snapshot(
        url=request.url,
        final_url=str(response.url),
        status=response.status_code,
        headers=tuple((name.lower(), value) for name, value in response.headers.multi_items()),
        body=body,
        encoding=_BINARY_ENCODING
        if read_as in formats.BINARY
        else detect_encoding(body, content_type),
        fetched_at=now(),
        elapsed=time.monotonic() - started,
    )


def _error(
    kind: FailureKind, response: httpx.Response, what: str, request: FetchRequest
) -> FetchError:
    """A FetchError whose message says what happened and with which status."""
    message = f"HTTP {response.status_code}: {what}"
    return FetchError(kind, message, url=request.url, status=response.status_code)


async def _raise_for_status(response: httpx.Response, url: str, now: Now) -> NoReturn:
    """Classify an error status, reading only the head of the body for a bot wall.

    Cloudflare serves its challenge with 403 or 503: retrying a 503 wall would only
    look more like a bot, so a wall is BLOCKED whatever the status.
    """
    status = response.status_code
    what = f"HTTP {status} {response.reason_phrase}".rstrip()
    if _is_challenge(await _read_head(response)):
        raise FetchError(FailureKind.BLOCKED, f"{what}: challenge page", url=url, status=status)
    kind = status_failure(status)
    if kind is FailureKind.TRANSIENT:
        header = response.headers.get("retry-after") if status in _RETRY_AFTER_STATUSES else None
        retry_after = _parse_retry_after(header, now())
        raise _RetryLater(what, url=url, status=status, retry_after=retry_after)
    raise FetchError(kind, what, url=url, status=status)


async def _read_head(response: httpx.Response) -> bytes:
    """Up to 16 KB of an error body; an undecodable one simply has no head."""
    decoder = _BodyDecoder.for_encoding(response.headers.get("content-encoding", ""))
    if decoder is None:
        return b""
    try:
        pieces, _ = await _read_limited(response, _HEAD_BYTES, decoder)
    except zlib.error:
        return b""
    return b"".join(pieces)[:_HEAD_BYTES]


def _check_content_length(response: httpx.Response, request: FetchRequest) -> None:
    """Refuse a declared oversize body before reading a byte of it."""
    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > request.max_bytes:
        what = f"Content-Length {length} exceeds the {request.max_bytes}-byte cap"
        raise _error(FailureKind.TOO_LARGE, response, what, request)


async def _read_body(response: httpx.Response, request: FetchRequest) -> bytes:
    """The decoded body, refused as soon as it grows past the cap."""
    decoder = _BodyDecoder.for_encoding(response.headers.get("content-encoding", ""))
    if decoder is None:
        encoding = response.headers.get("content-encoding", "")
        raise _error(FailureKind.WRONG_TYPE, response, f"content-encoding {encoding}", request)
    try:
        pieces, truncated = await _read_limited(response, request.max_bytes, decoder)
    except zlib.error:
        raise _error(FailureKind.TRANSIENT, response, "corrupt compressed body", request) from None
    if truncated:
        what = f"body exceeds the {request.max_bytes}-byte cap"
        raise _error(FailureKind.TOO_LARGE, response, what, request)
    return b"".join(pieces)


async def _read_limited(
    response: httpx.Response, limit: int, decoder: _BodyDecoder
) -> tuple[list[bytes], bool]:
    """The decoded body as pieces, stopping once past ``limit``; and whether it was.

    Reading stops at the limit, so an oversized body costs the limit plus one piece;
    pieces are joined by the caller only when kept, so refusing one copies nothing.
    """
    pieces: list[bytes] = []
    size = 0
    async with contextlib.aclosing(_decoded_pieces(response, decoder)) as stream:
        async for piece in stream:
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                return pieces, True
    return pieces, False


async def _decoded_pieces(
    response: httpx.Response, decoder: _BodyDecoder
) -> AsyncGenerator[bytes, None]:
    """The body in decoded pieces of bounded size, inflated here rather than by httpx.

    httpx's ``aiter_bytes`` inflates a whole network chunk at once (64 KB of gzip can
    become 64 MB); reading raw bytes and inflating step by step keeps the cap honest.
    A response built with in-memory ``content=`` (mock transports) is already read.
    """
    if response.is_stream_consumed:
        async for chunk in response.aiter_bytes():
            yield chunk
        return
    raw = cast("AsyncGenerator[bytes, None]", response.aiter_raw())  # typed as an iterator
    async with contextlib.aclosing(raw) as chunks:
        async for chunk in chunks:
            for piece in decoder.feed(chunk):
                yield piece
    tail = decoder.flush()
    if tail:
        yield tail


class _BodyDecoder:
    """Content-Encoding decoding that never produces more than one piece per step."""

    def __init__(self, wbits: int | None, *, raw_fallback: bool = False) -> None:
        self._inflater = None if wbits is None else zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback

    @classmethod
    def for_encoding(cls, content_encoding: str) -> _BodyDecoder | None:
        """A decoder for the response's Content-Encoding, or None if fetch cannot bound it."""
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not codings:
            return cls(None)
        if codings in (["gzip"], ["x-gzip"]):
            return cls(zlib.MAX_WBITS | 16)
        if codings == ["deflate"]:  # zlib-wrapped by the RFC, raw deflate in practice too
            return cls(zlib.MAX_WBITS, raw_fallback=True)
        return None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflater is None:
            if data:
                yield data
            return
        while True:
            out = self._inflate(data)
            data = self._inflater.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < _PIECE:
                return

    def _inflate(self, data: bytes) -> bytes:
        assert self._inflater is not None
        try:
            out = self._inflater.decompress(data, _PIECE)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflater.decompress(data, _PIECE)
        self._raw_fallback = False
        return out

    def flush(self) -> bytes:
        return b"" if self._inflater is None else self._inflater.flush()


# --- sniffing ------------------------------------------------------------------------

_HTML_TAG = re.compile(rb"<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
# Each alternative always matches once started (unclosed runs end at \Z), so the scan
# stays linear even on malformed markup.
_HIDDEN = re.compile(
    rb"<script\b.*?(?:</script\s*>|\Z)|<style\b.*?(?:</style\s*>|\Z)"
    rb"|<!--.*?(?:-->|\Z)|<[^>]*(?:>|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_SPACE = re.compile(rb"\s+")


def _check_body(
    body: bytes, content_type: str, response: httpx.Response, request: FetchRequest
) -> Format:
    """The format the body will be read as; refuses bodies whose content type lies
    (binaries, non-HTML without a type) and bot walls. ZIPs and PDFs are known by
    their magic bytes and are not text: only their size was checked."""
    head = body[:_SNIFF_BYTES]
    read_as = formats.decide(content_type, head, declared=request.format, url=str(response.url))
    if read_as is None:
        what = formats.refusal(content_type, request.format)
        raise _error(FailureKind.WRONG_TYPE, response, what, request)
    if read_as in formats.BINARY:
        return read_as
    if _looks_binary(head):
        raise _error(FailureKind.WRONG_TYPE, response, "body is binary (control bytes)", request)
    if not formats.mime(content_type) and read_as is Format.HTML and not _HTML_TAG.search(head):
        raise _error(FailureKind.WRONG_TYPE, response, "no content type, not HTML", request)
    if _is_challenge(body):
        raise _error(FailureKind.BLOCKED, response, "challenge page", request)
    return read_as


_ASKS_FOR_JAVASCRIPT = re.compile(
    rb"(?:enable|turn on|activate|allow) javascript|javascript (?:is )?(?:required|disabled)"
    rb"|(?:requires|needs) javascript",
    re.IGNORECASE,
)


def asks_for_javascript(body: bytes) -> bool:
    """Whether a page says it needs JavaScript to show anything.

    Only meaningful for a page in which extraction found no text: then it is a bot
    wall or an app shell that a plain fetch cannot read, a *blocked* page. Many real
    pages carry such a <noscript> line beside their text, so it is no marker alone.
    """
    return _ASKS_FOR_JAVASCRIPT.search(body[:_HEAD_BYTES]) is not None


def _looks_binary(head: bytes) -> bool:
    """More than 1 byte in 20 is a control character: an image, archive or executable.

    A stray NUL or two, which broken CMSes do leave in real pages, is still text.
    """
    if head.startswith(_UNICODE_BOMS):
        return False
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls * 20 > len(head)


def _is_challenge(body: bytes) -> bool:
    """Whether the page is a bot wall, by CHALLENGE_MARKERS (see there for the rule)."""
    head = body[:_HEAD_BYTES].decode("utf-8", "replace").lower()
    match = _TITLE.search(head)
    title = match.group(1) if match else ""
    if any(not marker.weak and marker.found_in(title) for marker in CHALLENGE_MARKERS):
        return True
    if not any(marker.found_in(title if marker.weak else head) for marker in CHALLENGE_MARKERS):
        return False  # the common case, decided without measuring the text
    return _visible_text_length(body[:_TEXT_SCAN_BYTES]) < _LITTLE_TEXT


def _visible_text_length(html: bytes) -> int:
    """Roughly how many bytes of text a reader would see: no tags, scripts or styles."""
    text = _HIDDEN.sub(b" ", html)
    return len(_SPACE.sub(b" ", text).strip())


# --- character encoding ------------------------------------------------------------

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';,\s]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Labels that browsers (WHATWG Encoding) decode with a superset; pages declaring them
# routinely contain the superset's extra characters (curly quotes, HKSCS hanzi).
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "shift-jis": "cp932",
    "euc-kr": "cp949",
}

# Python text codecs that are no web charset: escapes, IDNA, and UTF-7 (which browsers
# refuse because it smuggles markup past filters).
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "utf-7", "undefined"}
)


def detect_encoding(body: bytes, content_type: str) -> str:
    """The Python codec the page's author meant, so its text is compared, not mojibake.

    In order: a byte-order mark (unambiguous, and browsers let it win over the header);
    the Content-Type charset; a ``<meta>`` charset in the first 4 KB; UTF-8 if the
    body is valid UTF-8; charset detection; UTF-8. A declared charset that cannot
    decode the body is a lie and is skipped. Names are returned hyphenated
    ("euc-jp"), which both Python and libxml2 accept.
    """
    return (
        _bom_codec(body)
        or _fitting(_header_charset(content_type), body)
        or _fitting(_meta_charset(body[:_META_BYTES]), body)
        or _fitting("utf-8", body)
        or _detected_codec(body)
        or "utf-8"
    )


def _bom_codec(body: bytes) -> str | None:
    return next((codec for bom, codec in _BOMS if body.startswith(bom)), None)


def _header_charset(content_type: str) -> str | None:
    match = _HEADER_CHARSET.search(content_type)
    return match.group(1) if match else None


def _meta_charset(head: bytes) -> str | None:
    """The <meta charset> or http-equiv charset; a UTF-16 one is impossible in ASCII."""
    match = _META_CHARSET.search(head)
    if not match:
        return None
    label = match.group(1).decode("ascii")
    return "utf-8" if label.lower().startswith(("utf-16", "utf16", "utf-32", "utf32")) else label


def _fitting(label: str | None, body: bytes) -> str | None:
    """The codec for ``label`` if it exists and decodes the whole body."""
    codec = _codec(label)
    if codec is None:
        return None
    try:
        body.decode(codec)
    except UnicodeDecodeError:
        return None
    return codec


def _codec(label: str | None) -> str | None:
    """A canonical text codec name for a charset label, or None if Python has none."""
    if not label:
        return None
    try:
        name = codecs.lookup(label).name.replace("_", "-")
        "".encode(name)  # rejects bytes-to-bytes codecs such as base64 or zlib
    except (LookupError, UnicodeError, ValueError):
        return None
    if name in _NOT_CHARSETS:
        return None
    return _SUPERSETS.get(name, name)


def _detected_codec(body: bytes) -> str | None:
    import charset_normalizer  # only for a body that declares no charset

    best = charset_normalizer.from_bytes(body[:_DETECT_BYTES]).best()
    return _codec(best.encoding) if best else None
