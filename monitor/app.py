"""The composition root: where the real parts are built and wired together.

`monitor check` and `monitor run` build their watchlist, their checks' context and
their deliverer here and nowhere else, so both run exactly the same parts: the
watchlist validated with apprise's own URL check, jurisdiction matchers built once per
watchlist, one HTTP client and one per-host limiter shared by every check, and the
alert ledger's worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import httpx

from monitor import config, notify
from monitor.check import Connectivity, Context, Renderer
from monitor.config import Watchlist
from monitor.deliver import BACKOFF_BASE, BACKOFF_CAP, Deliverer, Sender
from monitor.errors import FailureKind, FetchError
from monitor.fetch import fetch, make_client
from monitor.limits import HostLimiter
from monitor.model import Document, ExtractRules, FetchRequest, Snapshot
from monitor.pipeline import Matchers, read
from monitor.store import Store


def load_watchlist(path: str | os.PathLike[str], *, sending: bool = True) -> Watchlist:
    """The watchlist at `path`, with route URLs checked by apprise itself.

    A command that sends nothing (`diff`, `list`, `preview`) needs no notification
    secret: with `sending=False` an unset `${VAR}` stands for a placeholder and route
    URLs are not checked, so a researcher can read the history without the desk's
    passwords."""
    if sending:
        return config.load(path, check_url=notify.validate)
    return config.load(path, env=_Unset(os.environ))


class _Unset(Mapping[str, str]):
    """The environment, where every variable that is not set reads as a placeholder."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ.get(name, "unset")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def check_context(
    watchlist: Watchlist,
    store: Store,
    client: httpx.AsyncClient,
    limiter: HostLimiter,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    connectivity: Connectivity | None = None,
    renderer: Renderer | None = None,
) -> Context:
    """What every check of this watchlist needs; rebuilt when the watchlist changes.

    The client, limiter and renderer (one headless Chromium, launched when a page first
    needs it) outlive the context: their owner closes them."""
    return Context(
        client,
        store,
        limiter,
        now=now,
        matchers=Matchers(watchlist),
        routes=watchlist.routes,
        connectivity=connectivity or Connectivity(),
        renderer=renderer,
    )


def deliverer(
    watchlist: Watchlist,
    store: Store,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    backoff_base: float = BACKOFF_BASE,
    backoff_cap: float = BACKOFF_CAP,
    send: Sender | None = None,
) -> Deliverer:
    """The worker that delivers this watchlist's pending alerts through its routes."""
    built = Deliverer(
        store,
        watchlist.routes,
        watchlist.defaults.give_up_after,
        now=now,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
    )
    if send is not None:
        built.send = send
    return built


async def preview(request: FetchRequest, rules: ExtractRules) -> Document:
    """Fetch a page once over plain HTTP and extract it with `rules`: `monitor preview`.

    Nothing is stored. Raises FetchError or ExtractError, each with its `kind`. The
    extractor is picked by `pipeline.read`, as for a check."""
    async with make_client() as client:
        fetched = await fetch(client, request)
    if not isinstance(fetched, Snapshot):  # no validators were sent: cannot happen
        raise FetchError(FailureKind.TRANSIENT, "the server answered 304", url=request.url)
    return read(fetched, rules, max_bytes=request.max_bytes)
