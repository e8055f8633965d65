"""Browser fetch stage: one JavaScript-rendered page into a Snapshot, or a classified FetchError.

Many transparency reports are JavaScript applications: a plain fetch reads an empty
shell. ``Renderer.render`` loads such a page in headless Chromium (driven by
Playwright, launched from the system's executable, never a downloaded build) and
snapshots the DOM the scripts built, marked ``rendered``. Everything a hostile page
can do to a check is contained here, as ``fetch`` does for HTTP:

- one overall deadline (``request.deadline``) covers launching, loading, waiting and
  reading; a page that never finishes loading still yields its DOM once the bounded
  wait for network idle ends, but a ``wait_for`` element that never gets text fails;
- the rendered DOM is capped at ``request.max_bytes`` bytes (UTF-8);
- at most ``max_pages`` renders run at once; each gets a fresh browser context (no
  cookies, storage or cache carried between watches), closed afterwards;
- downloads are refused, popups closed at once, service workers blocked, and every
  request the page makes is routed here: anything but http(s) is aborted, so no
  ``file:`` or ``data:`` URL is loaded; the watch's own headers go to its host only;
- every request of the page (the document, its redirects, subresources, scripts'
  fetches, frames, web sockets) is judged by the network policy (``netpolicy``)
  after resolving its host, twice: by the routing here, and by the render's SOCKS5
  gate (``socksgate``), through which Chromium makes every connection, to the
  address that was checked. A page on a public address can make the browser load
  nothing internal, link-local or cloud-metadata; a refused main document (or a
  redirect of it) is BLOCKED_BY_POLICY, a refused subresource is simply not loaded;
- one Chromium process is shared, launched on first use, and relaunched when it died
  or after ``restart_every`` renders, so a leaking renderer cannot grow forever.

Every failure is classified once, here, into ``FetchError.kind``:

    NEEDS_BROWSER  no Chromium executable, or Playwright not installed
    TRANSIENT      timeouts, connection errors, 5xx, 408, 429, a browser that crashed,
                   a ``wait_for`` element that did not appear
    PERMANENT      404, 410 and other 4xx, DNS name not found, invalid URL or scheme,
                   too many redirects, an invalid ``wait_for`` selector
    BLOCKED        401, 403, 451 (the status of the main document)
    TOO_LARGE      the rendered DOM exceeds the cap
    WRONG_TYPE     the URL is a download or not a page (PDF, JSON, image)
    BLOCKED_BY_POLICY  the watch's URL or a redirect of it leads where the network
                   policy refuses

Status codes are classified by ``errors.status_failure``, the rule the HTTP fetcher
uses, so a watch fails the same way whichever fetcher read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from monitor import __version__
from monitor.errors import FailureKind, FetchError, status_failure
from monitor.limits import HostLimiter
from monitor.model import FetchRequest, Snapshot
from monitor.netpolicy import Hop, IPAddress, resolve
from monitor.socksgate import BYPASS, Gate

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
        Playwright,
        Response,
        Route,
        WebSocketRoute,
    )
    from playwright.async_api import Request as PlaywrightRequest

log = logging.getLogger(__name__)

Now = Callable[[], datetime]
Resolve = Callable[[str, int], Awaitable[tuple[IPAddress, ...]]]

NEEDS_BROWSER = "needs a browser: install chromium (and pip install 'monitor[browser]'), see README"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")

CHROMIUM_ARGS = (
    "--headless=new",
    "--disable-gpu",  # no GPU in servers and containers
    "--disable-dev-shm-usage",  # Docker's 64 MB /dev/shm crashes renderers
    # Chromium's own traffic (updates, sync, field trials, safe browsing lists) would
    # leave the monitor's network policy and hammer a closed network at every start.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",  # one protocol stack to reason about, as the HTTP fetcher has
)
"""The switches Chromium is launched with (Playwright adds its own automation ones).

``--no-sandbox`` is added only when the sandbox is off (see ``Renderer``)."""

RENDERED_CONTENT_TYPE = "text/html; charset=utf-8"
SERVED_CONTENT_TYPE = "x-served-content-type"  # the header the main document came with

_RENDERABLE = frozenset({"", "text/html", "application/xhtml+xml", "text/plain"})
_NOT_DOM_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})
_CLOSE_WAIT = 5.0  # seconds a context or browser gets to close before it is left
_LAUNCH_WAIT = 30.0  # seconds Chromium gets to start, within the render's deadline
_NET_ERROR = re.compile(r"net::(ERR_[A-Z_]+)")
_PERMANENT_NET_ERRORS = frozenset(
    {
        "ERR_NAME_NOT_RESOLVED",
        "ERR_INVALID_URL",
        "ERR_UNKNOWN_URL_SCHEME",
        "ERR_DISALLOWED_URL_SCHEME",
        "ERR_TOO_MANY_REDIRECTS",
        "ERR_UNSAFE_REDIRECT",
        "ERR_BLOCKED_BY_CLIENT",
    }
)
_CLOSED_MARKERS = ("has been closed", "target crashed", "connection closed", "page crashed")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sandbox_default(env: Mapping[str, str]) -> bool:
    """Whether Chromium keeps its sandbox: `$MONITOR_CHROMIUM_SANDBOX`, else not as root."""
    setting = env.get("MONITOR_CHROMIUM_SANDBOX", "").strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False
    if setting in ("1", "on", "true", "yes"):
        return True
    return os.geteuid() != 0


def find_chromium(env: Mapping[str, str] = os.environ) -> str | None:
    """The Chromium to launch: ``$MONITOR_CHROMIUM``, else the first known name on PATH.

    The override is returned as given, even if it does not exist, so that a typo in it
    surfaces as "needs a browser" instead of silently launching another browser.
    """
    override = env.get("MONITOR_CHROMIUM", "").strip()
    if override:
        return override
    path = env.get("PATH", os.defpath)
    return next(filter(None, (shutil.which(name, path=path) for name in CHROMIUM_NAMES)), None)


@dataclass(eq=False)
class _Instance:
    """One launched browser, with how many renders it started and how many still run."""

    browser: Browser
    started: int = 0
    active: int = 0


class Renderer:
    """One headless Chromium shared by every check; a fresh context (no cookies) per render.

    The browser is launched lazily, so a daemon with no browser watch never starts
    one, and a machine without Chromium fails only the watches that need it, each
    with a NEEDS_BROWSER error. Use one Renderer per event loop and ``close`` it at
    shutdown.

    The sandbox: Chromium's sandbox needs user namespaces or a setuid helper, which a
    process running as root, or inside a container under Docker's default seccomp
    profile, cannot use. ``sandbox=None`` follows ``$MONITOR_CHROMIUM_SANDBOX``
    (``0``/``off`` or ``1``/``on``; the Docker image sets ``0``), else turns it off
    (``--no-sandbox``) when running as root and keeps it otherwise. That
    is acceptable only because of what the renderer does: every page is untrusted but
    merely rendered, in a throwaway context that holds no cookies or credentials, with
    no ``file:`` access, no downloads and no popups, and the process holds nothing but
    the page. Run the daemon as a non-root user where the sandbox works.
    """

    def __init__(
        self,
        *,
        executable: str | None = None,
        max_pages: int = 2,
        restart_every: int = 200,
        idle_wait: float = 5.0,
        sandbox: bool | None = None,
        user_agent: str | None = None,
        now: Now = _utcnow,
        resolver: Resolve = resolve,
    ) -> None:
        if max_pages < 1 or restart_every < 1 or idle_wait < 0:
            raise ValueError("max_pages and restart_every must be >= 1 and idle_wait >= 0")
        self._executable = executable
        self._pages = asyncio.Semaphore(max_pages)
        self._restart_every = restart_every
        self._idle_wait = idle_wait
        self._sandbox = sandbox if sandbox is not None else sandbox_default(os.environ)
        self._user_agent = user_agent
        self._now = now
        self._resolve = resolver
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._current: _Instance | None = None
        self._instances: set[_Instance] = set()
        self.launches = 0  # browsers launched so far: relaunches show in metrics and tests

    @property
    def connected(self) -> bool:
        """Whether a browser is up now (it is launched at the first render)."""
        return self._current is not None and self._current.browser.is_connected()

    async def render(
        self, request: FetchRequest, *, limiter: HostLimiter | None = None
    ) -> Snapshot:
        """Render one watched page within its deadline, or raise a classified FetchError.

        The host's politeness slot is taken first, then one of the ``max_pages``; the
        deadline starts once both are held, because waiting behind other checks is the
        monitor's queue, not the page's slowness. Nothing but FetchError escapes.
        """
        host = _checked_host(request.url)
        async with limiter.slot(host) if limiter else contextlib.nullcontext(), self._pages:
            deadline = _Deadline.start(request.deadline)
            try:
                async with asyncio.timeout_at(deadline.at):
                    return await self._render(request, deadline)
            except FetchError:
                raise
            except TimeoutError:
                message = f"deadline of {request.deadline:g}s exceeded"
                raise FetchError(FailureKind.TRANSIENT, message, url=request.url) from None
            except Exception as exc:  # a library error, classified once here
                raise _from_browser_error(exc, request) from exc

    async def close(self) -> None:
        """Close every browser and the Playwright driver; a later render starts anew."""
        async with self._lock:
            for instance in list(self._instances):
                await self._close_instance(instance)
            self._current = None
            if self._playwright is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._playwright.stop(), _CLOSE_WAIT)
                self._playwright = None

    async def _render(self, request: FetchRequest, deadline: _Deadline) -> Snapshot:
        started = time.monotonic()
        instance = await self._acquire(request.url)  # first: no Chromium is NEEDS_BROWSER
        gate: Gate | None = None
        try:
            hop = await self._page_hop(request)
            proxied = _proxied_by_environment()
            router = _Router(_checked_host(request.url), dict(request.headers), hop, self._resolve)
            router.proxied = proxied
            gate = None if proxied else Gate(hop, self._resolve)
            proxy = await gate.open() if gate is not None else None
            context = await self._new_context(instance.browser, request, router, proxy)
            try:
                page = await _open_page(context)
                page.on("request", router.seen)
                snapshot = await _load(page, request, deadline, self._idle_wait)
                await router.raise_refusal(request)
            except Exception as exc:
                await router.raise_refusal(request)
                _raise_gate_refusal(gate, exc, request)
                raise
            finally:
                await _quietly(context.close())
            return replace(snapshot, fetched_at=self._now(), elapsed=time.monotonic() - started)
        finally:
            if gate is not None:
                await gate.close()
            await self._release(instance)

    async def _page_hop(self, request: FetchRequest) -> Hop:
        """What every request of this render is judged by: the watch's own URL may be
        internal, and then so may the page's requests; a public page's may not."""
        url = urlsplit(request.url)
        hop = Hop(request.network)
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = await self._resolve(url.hostname or "", port)
        except socket.gaierror as exc:
            if not _proxied_by_environment():
                raise _dns_failure(exc, request) from None
            addresses = ()  # it may resolve on the proxy's side: left to the proxy
        except (OSError, UnicodeError, ValueError):
            raise FetchError(FailureKind.PERMANENT, "invalid URL", url=request.url) from None
        refusal = hop.refusal(addresses)
        if refusal is not None:
            what = f"blocked by the network policy: {refusal}"
            raise FetchError(FailureKind.BLOCKED_BY_POLICY, what, url=request.url)
        return Hop(request.network, internal_ok=hop.internal(addresses))

    # --- the browser's life ---------------------------------------------------------

    async def _acquire(self, url: str) -> _Instance:
        """The browser to render in: launched now if none is up, or if it died or is due."""
        async with self._lock:
            current = self._current
            if current is not None and self._worn_out(current):
                self._current = None
                if current.active == 0:
                    await self._close_instance(current)
                current = None
            if current is None:
                current = self._current = _Instance(await self._launch(url))
                self._instances.add(current)
            current.started += 1
            current.active += 1
            return current

    def _worn_out(self, instance: _Instance) -> bool:
        if not instance.browser.is_connected():
            log.warning("browser: Chromium disconnected (crashed or killed); relaunching")
            return True
        return instance.started >= self._restart_every

    async def _release(self, instance: _Instance) -> None:
        """One render less on ``instance``; a retired browser closes with its last render."""
        async with self._lock:
            instance.active -= 1
            if instance is not self._current and instance.active == 0:
                await self._close_instance(instance)

    async def _close_instance(self, instance: _Instance) -> None:
        self._instances.discard(instance)
        await _quietly(instance.browser.close())

    async def _launch(self, url: str) -> Browser:
        """Start Chromium; a missing executable or Playwright is NEEDS_BROWSER."""
        executable = self._executable or find_chromium()
        if not executable or not os.access(executable, os.X_OK):
            raise FetchError(FailureKind.NEEDS_BROWSER, NEEDS_BROWSER, url=url)
        playwright = await self._driver(url)
        try:
            browser = await playwright.chromium.launch(
                executable_path=executable,
                args=list(CHROMIUM_ARGS),
                headless=True,
                chromium_sandbox=self._sandbox,
                handle_sigint=False,  # the daemon's shutdown closes the browser, not a signal
                handle_sigterm=False,
                handle_sighup=False,
                timeout=_LAUNCH_WAIT * 1000,
            )
        except Exception as exc:  # a broken executable, or a driver that died: start over
            self._playwright = None
            await _quietly(playwright.stop())
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            what = f"Chromium did not start ({type(exc).__name__}: {first})"
            raise FetchError(FailureKind.TRANSIENT, what, url=url) from exc
        self.launches += 1
        log.info("browser: launched Chromium %s (%s)", browser.version, executable)
        return browser

    async def _driver(self, url: str) -> Playwright:
        """Playwright's driver process, started once and kept for every browser."""
        if self._playwright is None:
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                raise FetchError(FailureKind.NEEDS_BROWSER, NEEDS_BROWSER, url=url) from None
            self._playwright = await async_playwright().start()
        return self._playwright

    async def _new_context(
        self, browser: Browser, request: FetchRequest, router: _Router, proxy: str | None
    ) -> BrowserContext:
        """A throwaway context: no cookies, no downloads, no service workers, all routed,
        every connection through the render's gate (``proxy``)."""
        own_headers = dict(request.headers)
        user_agent = _pop_header(own_headers, "user-agent") or self._default_user_agent(browser)
        context = await browser.new_context(
            accept_downloads=False,
            service_workers="block",  # they could fetch past the route below
            user_agent=user_agent,
            proxy={"server": proxy, "bypass": BYPASS} if proxy else None,
        )
        await context.route("**/*", router)
        await context.route_web_socket("**/*", router.web_socket)
        return context

    def _default_user_agent(self, browser: Browser) -> str:
        """A real Chrome's UA that also names the project, as the HTTP fetcher's does.

        Headless Chromium says "HeadlessChrome", which bot walls refuse on sight; the
        pages need a browser, and the monitor stays honest about being one.
        """
        if self._user_agent:
            return self._user_agent
        major = browser.version.split(".", 1)[0]
        return (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{major}.0.0.0 Safari/537.36 "
            f"monitor/{__version__} (+https://github.com/monitor-policy/monitor)"
        )


# --- one render --------------------------------------------------------------------


@dataclass(frozen=True)
class _Deadline:
    """The render's overall deadline, on the event loop's clock."""

    at: float
    seconds: float

    @classmethod
    def start(cls, seconds: float) -> _Deadline:
        return cls(asyncio.get_running_loop().time() + seconds, seconds)

    def left_ms(self, *, cap: float | None = None, reserve: float = 0.0) -> float:
        """Milliseconds left (at least 1: Playwright reads 0 as "no timeout")."""
        left = self.at - asyncio.get_running_loop().time() - reserve
        if cap is not None:
            left = min(left, cap)
        return max(1.0, left * 1000)

    @property
    def reserve(self) -> float:
        """Time kept back from waiting, to read the DOM once the wait ends."""
        return min(1.0, self.seconds * 0.2)


class _Router:
    """Every request of a page: http(s) goes on if the network policy lets this page
    reach its host's addresses, with the watch's headers to its own host only (an
    Authorization header must not reach a third-party script's host); anything else
    (``file:``, ``data:``, ``chrome:``, ``ftp:`` ...) is aborted. Web sockets obey the
    same policy."""

    def __init__(self, host: str, headers: Mapping[str, str], hop: Hop, resolver: Resolve) -> None:
        self._host = host
        self._headers = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
        self._hop = hop
        self._resolve = resolver
        self._addresses: dict[tuple[str, int], tuple[IPAddress, ...]] = {}
        self.refusal: str | None = None  # why the main document was refused, if it was
        self.redirected: list[str] = []  # URLs reached by redirects, which bypass routing
        self.proxied = False  # behind an egress proxy, a name may resolve only there

    async def __call__(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        with contextlib.suppress(Exception):  # the page may be closing: nothing to route
            if url.scheme not in ("http", "https"):
                log.info("browser: blocked a %s: request of a rendered page", url.scheme)
                await route.abort("blockedbyclient")
                return
            refusal = await self._refusal(route.request.url)
            if refusal == _UNRESOLVED and self.proxied:
                refusal = None  # the proxy may know the name: left to it
            if refusal == _UNRESOLVED:
                await route.abort("namenotresolved")
            elif refusal is not None:
                self._refused(route, refusal)
                await route.abort("blockedbyclient")
            elif self._headers and (url.hostname or "").lower() == self._host:
                headers = await route.request.all_headers()
                await route.continue_(headers=headers | self._headers)
            else:
                await route.continue_()

    async def web_socket(self, socket: WebSocketRoute) -> None:
        """A page's web socket connects only where its requests may go."""
        with contextlib.suppress(Exception):
            if await self._refusal(socket.url) is None:
                socket.connect_to_server()
            else:
                log.info("browser: blocked a web socket of a rendered page")
                await socket.close()

    async def _refusal(self, raw: str) -> str | None:
        """Why the policy refuses this URL's host, _UNRESOLVED, or None."""
        url = urlsplit(raw)
        secure = url.scheme in ("https", "wss")
        key = ((url.hostname or "").lower(), url.port or (443 if secure else 80))
        if key not in self._addresses:
            try:
                self._addresses[key] = await self._resolve(*key)
            except (OSError, UnicodeError, ValueError):
                return _UNRESOLVED
        return self._hop.refusal(self._addresses[key])

    def _refused(self, route: Route, refusal: str) -> None:
        request = route.request
        main = request.is_navigation_request() and request.frame.parent_frame is None
        log.info("browser: the network policy refused a request of a rendered page: %s", refusal)
        if main and self.refusal is None:
            self.refusal = refusal

    def seen(self, request: PlaywrightRequest) -> None:
        """Note a request that a redirect made: Playwright routes only the first request
        of a redirect chain, so these are judged after the fact (``raise_refusal``)."""
        if request.redirected_from is not None:
            self.redirected.append(request.url)

    async def raise_refusal(self, request: FetchRequest) -> None:
        """Raise BLOCKED_BY_POLICY if the main document was refused, or if any redirect
        of the page led where the policy refuses: then nothing of the render is kept."""
        for url in self.redirected:
            refusal = await self._refusal(url)
            if refusal is not None and refusal != _UNRESOLVED:
                self.refusal = self.refusal or f"a redirect led where it may not: {refusal}"
        if self.refusal is not None:
            what = f"blocked by the network policy: {self.refusal}"
            raise FetchError(FailureKind.BLOCKED_BY_POLICY, what, url=request.url)


_UNRESOLVED = "unresolved"


async def _open_page(context: BrowserContext) -> Page:
    """The render's one page; any other page (a popup, a target=_blank) is closed at once."""
    page = await context.new_page()

    async def close_others(other: Page) -> None:
        if other != page:
            log.info("browser: closed a popup of a rendered page")
            await _quietly(other.close())

    context.on("page", close_others)
    return page


class _MainDocument:
    """The latest response of the page's main frame: a challenge page that passes
    navigates to the real one, whose status is the one that counts."""

    def __init__(self, page: Page) -> None:
        self.response: Response | None = None
        self._page = page
        page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == self._page.main_frame:
            self.response = response


async def _load(page: Page, request: FetchRequest, deadline: _Deadline, idle: float) -> Snapshot:
    """Navigate, wait until the page is rendered, check the status, read the DOM."""
    main = _MainDocument(page)
    timeout = deadline.left_ms(reserve=deadline.reserve)
    main.response = await page.goto(request.url, wait_until="domcontentloaded", timeout=timeout)
    _check_status(main.response, request, final=False)
    try:
        await _settle(page, request, deadline, idle)
    except FetchError:
        _check_status(main.response, request)  # a 403 or a 503 says more than the wait
        raise
    response = _check_status(main.response, request)
    return Snapshot(
        url=request.url,
        final_url=page.url,
        status=response.status,
        headers=await _headers(response, request),
        body=await _dom(page, request),
        encoding="utf-8",
        fetched_at=datetime.min.replace(tzinfo=UTC),  # stamped by Renderer once closed
        elapsed=0.0,
        rendered=True,
    )


def _check_status(
    response: Response | None, request: FetchRequest, *, final: bool = True
) -> Response:
    """Raise for an error status of the main document; early on, only for permanent ones
    (a 403 or 503 challenge page may still pass and navigate to the real page)."""
    if response is None:
        raise FetchError(FailureKind.TRANSIENT, "the page gave no response", url=request.url)
    status = response.status
    if status >= 400:
        kind = status_failure(status)
        if final or kind is FailureKind.PERMANENT:
            what = f"HTTP {status} {response.status_text}".rstrip()
            raise FetchError(kind, what, url=request.url, status=status)
    return response


async def _settle(page: Page, request: FetchRequest, deadline: _Deadline, idle: float) -> None:
    """Wait until the page counts as rendered.

    With ``wait_for``: until that element exists and has text (a missing one fails:
    the page did not render). Without: until the network is idle, for ``idle``
    seconds at most, since pages that poll or stream never go idle.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    if request.wait_for:
        element = page.locator(f"css={request.wait_for}").filter(has_text=re.compile(r"\S"))
        try:
            await element.first.wait_for(
                state="attached", timeout=deadline.left_ms(reserve=deadline.reserve)
            )
        except PlaywrightTimeout:
            what = f"{request.wait_for!r} did not appear within {request.deadline:g}s"
            raise FetchError(FailureKind.TRANSIENT, what, url=request.url) from None
        return
    with contextlib.suppress(PlaywrightTimeout):
        timeout = deadline.left_ms(cap=idle, reserve=deadline.reserve)
        await page.wait_for_load_state("networkidle", timeout=timeout)


async def _dom(page: Page, request: FetchRequest) -> bytes:
    """The rendered DOM as UTF-8, refused past the cap.

    Its length in UTF-16 units is measured inside the browser first (a UTF-8 encoding
    is never shorter), so an oversized DOM is refused without being copied over.
    """
    length = await page.evaluate("() => document.documentElement?.outerHTML.length ?? 0")
    body = b"" if length > request.max_bytes else (await page.content()).encode("utf-8")
    if length > request.max_bytes or len(body) > request.max_bytes:
        what = f"rendered page exceeds the {request.max_bytes}-byte cap"
        raise FetchError(FailureKind.TOO_LARGE, what, url=request.url)
    return body


async def _headers(response: Response, request: FetchRequest) -> tuple[tuple[str, str], ...]:
    """The main document's headers, but describing the body we keep: the rendered DOM.

    The served Content-Type is kept as ``x-served-content-type``; a main document that
    is no page (a PDF, JSON, an image) is refused, as the HTTP fetcher would.
    """
    served = [(h["name"].lower(), h["value"]) for h in await response.headers_array()]
    served_type = next((value for name, value in served if name == "content-type"), "")
    mime = served_type.split(";", 1)[0].strip().lower()
    if mime not in _RENDERABLE:
        what = f"content type {mime} is not a page to render"
        raise FetchError(FailureKind.WRONG_TYPE, what, url=request.url, status=response.status)
    kept = tuple((name, value) for name, value in served if name not in _NOT_DOM_HEADERS)
    own: tuple[tuple[str, str], ...] = (("content-type", RENDERED_CONTENT_TYPE),)
    if served_type:
        own += ((SERVED_CONTENT_TYPE, served_type),)
    return own + kept


# --- errors and helpers -----------------------------------------------------------


def _checked_host(raw: str) -> str:
    """Refuse what is not an absolute http(s) URL before the browser sees it."""
    try:
        url = urlsplit(raw)
        host = url.hostname
    except ValueError:
        raise FetchError(FailureKind.PERMANENT, "invalid URL", url=raw) from None
    if url.scheme not in ("http", "https") or not host:
        raise FetchError(FailureKind.PERMANENT, "not an absolute http(s) URL", url=raw)
    return host.lower()


def _from_browser_error(exc: Exception, request: FetchRequest) -> FetchError:
    """Classify a Playwright error once; the message never contains the URL."""
    message = str(exc)
    url = request.url
    net = _NET_ERROR.search(message)
    if type(exc).__name__ == "TimeoutError":  # Playwright's own, not the builtin
        what = f"page did not load within {request.deadline:g}s"
        return FetchError(FailureKind.TRANSIENT, what, url=url)
    if "Download is starting" in message:
        return FetchError(FailureKind.WRONG_TYPE, "the URL is a download, not a page", url=url)
    if "while parsing css selector" in message.lower():
        return FetchError(FailureKind.PERMANENT, "wait_for is not a valid CSS selector", url=url)
    if net and net.group(1) in _PERMANENT_NET_ERRORS:
        return FetchError(FailureKind.PERMANENT, f"navigation failed: {net.group(1)}", url=url)
    if net:
        return FetchError(FailureKind.TRANSIENT, f"navigation failed: {net.group(1)}", url=url)
    if any(marker in message.lower() for marker in _CLOSED_MARKERS):
        what = "the browser closed or crashed; it is relaunched for the next render"
        return FetchError(FailureKind.TRANSIENT, what, url=url)
    log.warning("browser: unclassified error: %s", message.splitlines()[0] if message else exc)
    return FetchError(FailureKind.TRANSIENT, f"browser error ({type(exc).__name__})", url=url)


def _proxied_by_environment() -> bool:
    """Whether an egress proxy is configured: then Chromium must use it, not the gate,
    and the routing alone holds the page to the policy."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def _dns_failure(exc: socket.gaierror, request: FetchRequest) -> FetchError:
    """The watch's host does not resolve: permanent, unless the resolver itself failed."""
    if exc.errno == socket.EAI_AGAIN:
        what = "navigation failed: DNS lookup failed for now (ERR_NAME_RESOLUTION_FAILED)"
        return FetchError(FailureKind.TRANSIENT, what, url=request.url)
    what = "navigation failed: ERR_NAME_NOT_RESOLVED"
    return FetchError(FailureKind.PERMANENT, what, url=request.url)


def _raise_gate_refusal(gate: Gate | None, exc: Exception, request: FetchRequest) -> None:
    """A navigation the gate refused (a redirect inside) is BLOCKED_BY_POLICY."""
    if gate is not None and gate.refusals and "ERR_SOCKS_CONNECTION_FAILED" in str(exc):
        what = f"blocked by the network policy: {gate.refusals[0]}"
        raise FetchError(FailureKind.BLOCKED_BY_POLICY, what, url=request.url)


def _pop_header(headers: dict[str, str], name: str) -> str | None:
    for key in list(headers):
        if key.lower() == name:
            return headers.pop(key)
    return None


async def _quietly(closing: Awaitable[None]) -> None:
    """Close something of the browser's, bounded; one that is already gone is fine."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, _CLOSE_WAIT)
