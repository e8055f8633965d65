"""The optional HTTP endpoint: /healthz for orchestrators, /metrics for Prometheus."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.errors import FailureKind
from monitor.metrics import Metrics, parse_address, serve_http
from monitor.model import AlertRecord, CheckRecord, CheckResult, Finding, Outcome
from monitor.store import Store

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(str(tmp_path / "m.db"))
    yield opened
    opened.close()


def fetch(
    metrics: Metrics, healthy: bool | Callable[[], bool], *paths: str
) -> list[httpx.Response]:
    """GET `paths` from a real endpoint on 127.0.0.1 serving `metrics`."""
    alive = healthy if callable(healthy) else lambda: healthy

    async def go() -> list[httpx.Response]:
        server = await serve_http("127.0.0.1", 0, metrics, alive)
        port = server.port
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                return [await client.get(p) for p in paths]
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(go())


def test_metrics_count_checks_findings_and_read_the_ledger(store: Store) -> None:
    store.record(CheckRecord("a", NOW, 0.2, "failed", failure_kind="blocked", message="wall"))
    store.record(CheckRecord("b", NOW, 0.2, "unchanged"))
    alert = AlertRecord("b", "change", "t", "{}", ("HK",), (("desk", "d" * 64, "json://h"),))
    store.add_alert(alert, NOW)
    metrics = Metrics(store, lambda: ["a", "b"])
    finding = Finding("HK", "sentence_removed", "sentence", ("Hong Kong",))
    metrics.observe(CheckResult("b", Outcome.CHANGED, NOW, 0.3, findings=(finding,)))
    metrics.observe(CheckResult("a", Outcome.FAILED, NOW, 1.5))
    [response] = fetch(metrics, True, "/metrics")
    text = response.text
    assert response.status_code == 200 and "text/plain" in response.headers["content-type"]
    assert 'monitor_checks_total{outcome="changed"} 1.0' in text
    assert 'monitor_checks_total{outcome="failed"} 1.0' in text
    assert 'monitor_findings_total{jurisdiction="HK"} 1.0' in text
    assert 'monitor_deliveries{status="pending"} 1.0' in text
    assert "monitor_watches_failing 1.0" in text
    assert 'monitor_last_success_timestamp_seconds{watch="b"}' in text
    assert "monitor_check_seconds_count 2.0" in text


def test_healthz_follows_the_daemon_and_unknown_paths_are_404(store: Store) -> None:
    metrics = Metrics(store, list)
    ok, missing = fetch(metrics, True, "/healthz", "/nope")
    assert ok.status_code == 200 and ok.text.startswith("ok")
    assert missing.status_code == 404
    [bad] = fetch(metrics, False, "/healthz")
    assert bad.status_code == 503


def test_a_store_that_fails_answers_503_with_the_reason(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to answer 0 bytes and log an asyncio traceback."""
    metrics = Metrics(store, lambda: ["a"])
    for path in tmp_path.glob("m.db*"):  # the file and its WAL, garbage as a broken disk
        path.write_bytes(b"garbage!" * (path.stat().st_size // 8 + 1))
    alive = lambda: store.last_heartbeat() is not None  # noqa: E731
    scraped, health = fetch(metrics, alive, "/metrics", "/healthz")
    for response in (scraped, health):
        assert response.status_code == 503
        assert response.text == "store unavailable: file is not a database\n"
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("9130", ("127.0.0.1", 9130)),
        (":9130", ("127.0.0.1", 9130)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_address_defaults_to_localhost(value: str, address: tuple[str, int]) -> None:
    assert parse_address(value) == address


def test_parse_address_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="not a port"):
        parse_address("localhost")


def test_healthz_is_503_while_no_page_answered_in_the_last_checks(store: Store) -> None:
    metrics = Metrics(store, list)
    down = CheckResult(
        "a",
        Outcome.FAILED,
        NOW,
        5.0,
        failure=FailureKind.TRANSIENT,
        message="connection failed: [Errno 101] Network is unreachable",
    )
    for _ in range(9):
        metrics.observe(down)
    [still_ok] = fetch(metrics, True, "/healthz")
    assert still_ok.status_code == 200  # nine are not yet the window
    metrics.observe(down)
    [bad] = fetch(metrics, True, "/healthz")
    assert bad.status_code == 503
    assert bad.text.startswith(f"no page answered since {NOW.isoformat()}")
    assert "network looks down" in bad.text
    # an HTTP error is an answer: the network works, the page is the problem
    metrics.observe(
        CheckResult(
            "b",
            Outcome.FAILED,
            NOW,
            0.2,
            failure=FailureKind.TRANSIENT,
            message="HTTP 503: server error",
        )
    )
    [ok] = fetch(metrics, True, "/healthz")
    assert ok.status_code == 200 and ok.text.startswith("ok")


def test_an_oversized_request_head_is_answered_431_without_a_traceback(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A 70 KB request line (or header) used to log an asyncio traceback per request."""
    metrics = Metrics(store, list)
    caplog.set_level(logging.DEBUG)

    def raw(port: int, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer

    async def go() -> list[bytes]:
        server = await serve_http("127.0.0.1", 0, metrics, lambda: True)
        try:
            line = b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n"
            return [await asyncio.to_thread(raw, server.port, data) for data in (line, header)]
        finally:
            server.close()
            await server.wait_closed()

    for answer in asyncio.run(go()):
        assert answer.startswith(b"HTTP/1.1 431")
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [ok] = fetch(metrics, True, "/healthz")
    assert ok.status_code == 200
