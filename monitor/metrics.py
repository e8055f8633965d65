"""Operational metrics and an optional HTTP endpoint: `/healthz` and `/metrics`.

Off by default; `monitor run --http 127.0.0.1:9130` turns it on (localhost unless an
address says otherwise). Starlette routes the requests and Hypercorn serves them: a
well-kept ASGI stack with request-size limits and timeouts (`server_config`); the
dashboard and feeds answer every other path. Counters follow the daemon's check
results; the ledger and per-watch figures are read from the store at scrape time, so
they are right even after a restart. prometheus_client writes the exposition format;
the registry is an instance, never the library's global one.

When the store cannot be read (locked, damaged, gone), both endpoints answer `503`
with a one-line reason: an orchestrator or a scraper sees why, instead of an empty
reply and a traceback in the daemon's log. `/healthz` also answers `503` while the
last `UNANSWERED_WINDOW` finished checks all failed without any HTTP answer (DNS,
connection, timeout): the daemon is alive, but its network looks down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from hypercorn.asyncio import serve
from hypercorn.config import Config
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from monitor.errors import FailureKind, StoreError
from monitor.model import CheckResult, Outcome
from monitor.store import Store

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

log = logging.getLogger("monitor.metrics")

MAX_REQUEST_HEAD = 8192  # bytes of request line and headers; more is answered 431
UNANSWERED_WINDOW = 10  # finished checks in a row without an HTTP answer: network down
_NO_ANSWER_KINDS = (FailureKind.TRANSIENT, FailureKind.PERMANENT)


def answered(result: CheckResult) -> bool:
    """Whether a page's host gave any HTTP answer (even an error status) to the check.

    A failure without one is transient or permanent (DNS, connection, timeout) and has
    no `HTTP <status>` message, which fetch and the browser give every status failure.
    """
    if result.outcome is not Outcome.FAILED or result.failure not in _NO_ANSWER_KINDS:
        return True
    return (result.message or "").startswith("HTTP ")


class _StoreCollector(Collector):
    """Figures read from the store when scraped: the ledger and each watch's state."""

    def __init__(self, store: Store, watch_ids: Callable[[], Iterable[str]]) -> None:
        self.store = store
        self.watch_ids = watch_ids

    def collect(self) -> Iterable[Metric]:
        counts = self.store.delivery_counts()
        deliveries = GaugeMetricFamily(
            "monitor_deliveries", "Deliveries in the ledger by status", labels=["status"]
        )
        for status in ("pending", "sent", "failed"):
            deliveries.add_metric([status], counts.get(status, 0))
        yield deliveries
        failing = GaugeMetricFamily("monitor_watches_failing", "Watches whose last check failed")
        success = GaugeMetricFamily(
            "monitor_last_success_timestamp_seconds",
            "Time of each watch's last successful check",
            labels=["watch"],
        )
        watched = set(self.watch_ids())
        states = [s for s in self.store.states() if s.watch_id in watched]
        failing.add_metric([], sum(1 for s in states if s.consecutive_failures > 0))
        for state in states:
            if state.last_success_at is not None:
                success.add_metric([state.watch_id], state.last_success_at.timestamp())
        yield failing
        yield success


class Metrics:
    """The daemon's metrics; `observe` is called with every check result."""

    def __init__(self, store: Store, watch_ids: Callable[[], Iterable[str]]) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter(
            "monitor_checks", "Checks by outcome", ["outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "monitor_check_seconds",
            "Duration of a check (fetch, extract, compare, store)",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.findings = Counter(
            "monitor_findings", "Findings by jurisdiction", ["jurisdiction"], registry=self.registry
        )
        self.registry.register(_StoreCollector(store, watch_ids))
        self.unanswered = 0  # finished checks in a row without an HTTP answer
        self.unanswered_since: datetime | None = None  # the first of them began then

    def observe(self, result: CheckResult) -> None:
        if answered(result):
            self.unanswered, self.unanswered_since = 0, None
        else:
            self.unanswered += 1
            self.unanswered_since = self.unanswered_since or result.started_at
        self.checks.labels(result.outcome.value).inc()
        self.latency.observe(result.elapsed)
        for finding in result.findings:
            self.findings.labels(finding.jurisdiction).inc()

    def network_down(self) -> str | None:
        """Why `/healthz` fails although the daemon is alive, or None."""
        if self.unanswered < UNANSWERED_WINDOW or self.unanswered_since is None:
            return None
        since = self.unanswered_since.isoformat()
        return f"no page answered since {since}: the monitor's network looks down"

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def parse_address(value: str) -> tuple[str, int]:
    """`9130` or `:9130` → localhost; `0.0.0.0:9130` binds every interface."""
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{value!r} is not a port or HOST:PORT")
    return host or "127.0.0.1", int(port)


class Endpoint:
    """The running HTTP server: the socket it listens on, and how to stop it."""

    def __init__(
        self, address: tuple[str, int], task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        self.host, self.port = address
        self.address = address
        self._task = task
        self._stop = stop

    def close(self) -> None:
        """Stop accepting; `wait_closed` waits for the server to finish."""
        self._stop.set()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def app(
    metrics: Metrics, healthy: Callable[[], bool], dashboard: ASGIApp | None = None
) -> Starlette:
    """The endpoints as an ASGI application: GET (and HEAD) `/metrics` and `/healthz`;
    every other path goes to the dashboard when one is given."""

    async def answer(request: Request) -> Response:
        status, body, kind = _respond(request.url.path, metrics, healthy)
        return Response(body, status_code=int(status.split(" ", 1)[0]), media_type=kind)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found\n", status_code=404)

    routes: list[BaseRoute] = [Route("/metrics", answer), Route("/healthz", answer)]
    if dashboard is not None:
        routes.append(Mount("/", app=dashboard))
    return Starlette(routes=routes, exception_handlers={404: not_found})


def server_config(log_to: logging.Logger = log) -> Config:
    """Hypercorn's settings: small request limits (a request line or header block over
    8 KB is answered 431 without reaching the application, with no traceback), short
    timeouts, no access log, errors to the monitor's own log."""
    config = Config()
    config.h11_max_incomplete_size = MAX_REQUEST_HEAD
    config.h2_max_inbound_frame_size = MAX_REQUEST_HEAD * 2
    config.keep_alive_timeout = 5.0
    config.read_timeout = 10
    config.accesslog = None
    config.errorlog = log_to.getChild("server")  # its startup line repeats ours: INFO off
    config.errorlog.setLevel(logging.WARNING)
    config.graceful_timeout = 1.0
    return config


async def serve_http(
    host: str,
    port: int,
    metrics: Metrics,
    healthy: Callable[[], bool],
    dashboard: ASGIApp | None = None,
) -> Endpoint:
    """Serve the read-only endpoints (and the dashboard, when given) until closed."""
    endpoint = await serve_asgi(host, port, app(metrics, healthy, dashboard))
    log.info("metrics and health on http://%s:%d/metrics and /healthz", *endpoint.address)
    return endpoint


async def serve_asgi(host: str, port: int, asgi: ASGIApp) -> Endpoint:
    """Serve an ASGI application with Hypercorn (`server_config`) until closed.

    The socket is bound here, so a port already taken fails `monitor run` at once,
    and port 0 picks a free one (`Endpoint.port` says which). Hypercorn owns the
    socket from then on, and closes it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    bound = sock.getsockname()
    config = server_config()
    config.bind = [f"fd://{sock.detach()}"]
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(cast("ASGIFramework", asgi), config, shutdown_trigger=stop.wait)
    )
    return Endpoint((bound[0], bound[1]), task, stop)


def _respond(path: str, metrics: Metrics, healthy: Callable[[], bool]) -> tuple[str, bytes, str]:
    """Answer one request; a store that fails is a 503 with its reason, never a hang-up."""
    try:
        return _route(path, metrics, healthy)
    except StoreError as exc:
        reason = (str(exc).splitlines() or ["unknown error"])[0]
        log.warning("%s: the store is unavailable: %s", path, reason)
        return "503 Service Unavailable", f"store unavailable: {reason}\n".encode(), "text/plain"


def _route(path: str, metrics: Metrics, healthy: Callable[[], bool]) -> tuple[str, bytes, str]:
    if path == "/metrics":
        return "200 OK", metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8"
    if path == "/healthz":
        ok = healthy()
        down = metrics.network_down() if ok else None
        if down is not None:
            return "503 Service Unavailable", f"{down}\n".encode(), "text/plain"
        stamp = datetime.now(UTC).isoformat()
        body = f"{'ok' if ok else 'unhealthy'} {stamp}\n".encode()
        return ("200 OK" if ok else "503 Service Unavailable"), body, "text/plain"
    return "404 Not Found", b"not found\n", "text/plain"
