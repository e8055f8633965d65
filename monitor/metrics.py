"""Operational metrics and an optional HTTP endpoint: `/healthz` and `/metrics`.

Off by default; `monitor run --http 127.0.0.1:9130` turns it on (localhost unless an
address says otherwise). Counters follow the daemon's check results; the ledger and
per-watch figures are read from the store at scrape time, so they are right even
after a restart. prometheus_client writes the exposition format; the registry is an
instance, never the library's global one.

When the store cannot be read (locked, damaged, gone), both endpoints answer `503`
with a one-line reason: an orchestrator or a scraper sees why, instead of an empty
reply and a traceback in the daemon's log. `/healthz` also answers `503` while the
last `UNANSWERED_WINDOW` finished checks all failed without any HTTP answer (DNS,
connection, timeout): the daemon is alive, but its network looks down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.errors import FailureKind, StoreError
from monitor.model import CheckResult, Outcome
from monitor.store import Store

log = logging.getLogger("monitor.metrics")

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


async def serve_http(
    host: str, port: int, metrics: Metrics, healthy: Callable[[], bool]
) -> asyncio.Server:
    """A minimal HTTP/1.0 server for the two read-only endpoints."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            path = request.decode("latin-1").split(" ")[1] if request.count(b" ") >= 2 else ""
            status, body, kind = _respond(path, metrics, healthy)
            head = f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    log.info("metrics and health on http://%s:%d/metrics and /healthz", host, port)
    return server


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
