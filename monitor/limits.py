"""Politeness shared by every fetcher: the per-host limiter.

It sits below the fetch stages (HTTP and browser) so that both take the same host's
turn from one object: a watch rendered in Chromium and a watch fetched over HTTP on
the same site never start at once, and the site sees one polite client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass
class _HostState:
    semaphore: asyncio.Semaphore
    next_start: float = float("-inf")


class HostLimiter:
    """Politeness per host: few fetches at once, and a pause between their starts;
    and, with ``total``, a bound on fetches at once over all hosts.

    Platforms rate-limit and block aggressive clients; a monitor that gets blocked
    stops seeing the page it exists to watch. One limiter is shared by every check
    of a daemon; ``clock`` and ``sleep`` are injectable so tests need no real time.
    A fetch takes one of the ``total`` places only once its host's turn has come, so
    checks queued behind one slow site never hold places that other sites could use.
    """

    def __init__(
        self,
        per_host: int = 2,
        delay: float = 1.0,
        *,
        total: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_host < 1 or delay < 0 or (total is not None and total < 1):
            raise ValueError("per_host and total must be >= 1 and delay >= 0")
        self._per_host = per_host
        self._delay = delay
        self._total = asyncio.Semaphore(total) if total else None
        self._clock = clock
        self._sleep = sleep
        self._hosts: dict[str, _HostState] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's slots, starting no sooner than ``delay`` after the last."""
        state = self._state(host.lower())
        async with state.semaphore:
            await self._space_out(state)
            async with self._total or contextlib.nullcontext():
                yield

    def _state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _HostState(asyncio.Semaphore(self._per_host))
        return state

    async def _space_out(self, state: _HostState) -> None:
        # Reserve the start time before sleeping (no await in between), so concurrent
        # waiters queue up one delay apart instead of all waking at once.
        now = self._clock()
        start = max(now, state.next_start)
        state.next_start = start + self._delay
        if start > now:
            await self._sleep(start - now)
