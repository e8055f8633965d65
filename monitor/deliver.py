"""Deliver pending alerts from the ledger, retrying with back-off across restarts.

Every (alert, route, destination) is one delivery row: pending until a send
succeeds (then `sent`), retried with exponential back-off and jitter while it fails,
and `failed` once it has failed for longer than the give-up time — said loudly in the
log and, for the watch's other health destinations, as an alert of its own.

A delivery is marked sent only after the service accepted it. If the process dies
between the two, that one delivery is sent again on restart: a rare duplicate, never
a loss. One process delivers a store at a time (`Store.turn`), so a daemon and a
`monitor check` beside it never send the same delivery twice. Destinations are
stored as an HMAC of their URL under the store's own key, so the store holds no
secret; the URL is looked up in the running watchlist when it is time to send.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from monitor.alerting import destinations
from monitor.config import Route
from monitor.errors import NotifyError, StoreError
from monitor.messages import Message, note_message
from monitor.model import AlertKind, AlertRecord, Delivery, destination_id
from monitor.notify import send
from monitor.store import Store

log = logging.getLogger("monitor.deliver")

BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0  # never wait longer than this between attempts
TURN_POLL = 0.1  # seconds between tries for the delivery turn another process holds


class Sender(Protocol):
    """Delivers a message to one destination URL, from its part `skip` + 1 on."""

    def __call__(self, url: str, message: Message, *, skip: int = 0) -> Awaitable[None]: ...


def backoff(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after the n-th failed attempt: exponential, capped, jittered so
    that destinations which failed together do not all retry at the same moment."""
    ceiling = min(cap, base * 2 ** max(attempts, 0))
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class Report:
    """What one delivery pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Deliverer:
    """Sends what is due. `send` is injected so tests can count calls."""

    store: Store
    routes: Mapping[str, Route]
    give_up_after: float = 2 * 86400.0
    send: Sender = send
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    concurrency: int = 4
    backoff_base: float = BACKOFF_BASE  # seconds before the first retry
    backoff_cap: float = BACKOFF_CAP  # longest wait between two attempts

    async def run(self, *, everything: bool = False) -> Report:
        """Deliver every due delivery once (with `everything`, every pending one, as a
        one-off `monitor check` does); never raises for a failing destination.

        One process delivers a store at a time: a pass waits for its turn (a daemon's
        pass beside a `monitor check`'s), then reads what is due, so of two processes
        that saw one alert, one sends it and the other finds it sent."""
        turn = self.store.turn("deliver")
        while not turn.take():
            await asyncio.sleep(TURN_POLL)
        try:
            return await self._pass(everything=everything)
        finally:
            turn.release()

    async def _pass(self, *, everything: bool) -> Report:
        report = Report()
        due = self.store.due_deliveries(None if everything else self.now())
        gate = asyncio.Semaphore(self.concurrency)

        async def one(delivery: Delivery) -> None:
            async with gate:
                await self._deliver(delivery, report)

        await asyncio.gather(*(one(d) for d in due))
        return report

    async def _deliver(self, delivery: Delivery, report: Report) -> None:
        url = self._url(delivery)
        try:
            if url is None:
                raise NotifyError(f"{delivery.label}: no longer in route {delivery.route!r}")
            await self.send(url, _message(delivery), skip=delivery.parts_sent)
        except NotifyError as exc:
            sent = max(exc.sent, delivery.parts_sent)
            self._failed(delivery, str(exc), report, final=url is None, sent=sent)
            return
        try:
            self.store.delivered(delivery.id, self.now())
        except StoreError as exc:  # sent but not recorded: the rare duplicate, said so
            log.error(
                "alert %d was delivered to %s but the store could not record it (%s): "
                "it will be sent again",
                delivery.alert_id,
                delivery.label,
                exc,
            )
            return
        report.sent += 1
        log.info("alert %d delivered to %s (%s)", delivery.alert_id, delivery.label, delivery.route)

    def _url(self, delivery: Delivery) -> str | None:
        route = self.routes.get(delivery.route)
        urls = route.urls if route is not None else ()
        key = self.store.destination_key()
        return next((u for u in urls if destination_id(u, key) == delivery.destination), None)

    def _failed(
        self, delivery: Delivery, error: str, report: Report, *, final: bool, sent: int = 0
    ) -> None:
        now = self.now()
        report.errors.append(error)
        if final or now - delivery.created_at >= timedelta(seconds=self.give_up_after):
            self.store.give_up(delivery.id, error)
            report.failed += 1
            log.error(
                "GAVE UP delivering alert %d to %s after %d attempts: %s",
                delivery.alert_id,
                delivery.label,
                delivery.attempts + 1,
                error,
            )
            self._notice(delivery, error)
            return
        wait = backoff(delivery.attempts, base=self.backoff_base, cap=self.backoff_cap)
        self.store.retry_later(delivery.id, error, now + timedelta(seconds=wait), parts_sent=sent)
        report.retrying += 1
        log.warning(
            "delivery of alert %d to %s failed (%s); retrying in %.0fs",
            delivery.alert_id,
            delivery.label,
            error,
            wait,
        )

    def _notice(self, delivery: Delivery, error: str) -> None:
        """Tell the other health destinations that an alert could not be delivered."""
        if delivery.kind is AlertKind.NOTICE or delivery.title.startswith("Undelivered alert"):
            return  # never a notice about a notice (stores of old wrote them as health)
        others = tuple(
            d
            for d in destinations(
                self.routes, tuple(self.routes), "health", (), key=self.store.destination_key()
            )
            if d[1] != delivery.destination
        )
        title = f"Undelivered alert: {delivery.title}"
        text = (
            f"An alert could not be delivered to {delivery.label} (route "
            f"{delivery.route}) and was given up: {error}"
        )
        message = note_message(title, text, severity="failure")
        notice = AlertRecord(
            delivery.watch_id, AlertKind.NOTICE, title, message.to_json(), (), others
        )
        self.store.add_alert(notice, self.now())


def _message(delivery: Delivery) -> Message:
    return Message.from_json(delivery.message)
