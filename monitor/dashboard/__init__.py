"""The read-only dashboard and Atom feeds: `monitor serve`, and `monitor run --http`.

Starlette routes the requests and Jinja2 renders the pages on the server: no
JavaScript at all, so every page works with scripts disabled and the
Content-Security-Policy can forbid scripts outright. Every route is GET (HEAD);
there is no mutating endpoint. Page text is untrusted: Jinja2 escapes everything
(`autoescape` on every template), links are only made from http(s) URLs, a raw
body is only served as a download, and a route's URL only ever appears redacted
(the ledger stores the redacted label, never the URL).

    /                                     every watch: status, last check, last finding, next due
    /watch/{id}                           a watch's versions, findings, checks and alerts
    /watch/{id}/diff?from=A&to=B          a change: findings first, both sides, the proof
    /alerts                               alerts with their deliveries
    /raw/{sha256}                         a stored raw body, as an attachment
    /feeds/all.atom                       every change alert
    /feeds/watch/{id}.atom                one watch's
    /feeds/jurisdiction/{code}.atom       one jurisdiction's (HK, TW, …)

Beyond a loopback address the dashboard needs a token (`guard.TokenGate`). The store
is read synchronously in Starlette's thread pool, never on the event loop that runs a
daemon's checks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from monitor.config import Watchlist
from monitor.dashboard import feeds, views
from monitor.dashboard.guard import CSP, SecurityHeaders, TokenGate, is_loopback
from monitor.errors import StoreError
from monitor.messages import KIND_LABELS
from monitor.pipeline import Matchers
from monitor.store import AlertRow, Store

__all__ = ["CSP", "app", "is_loopback"]

ATOM = "application/atom+xml; charset=utf-8"


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name: page text is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["href"] = views.safe_href
    env.filters["kind"] = lambda kind: KIND_LABELS.get(str(kind), str(kind))
    return Jinja2Templates(env=env)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


class Dashboard:
    """The pages and feeds over an open store and the current watchlist."""

    def __init__(
        self,
        store: Store,
        watchlist: Callable[[], Watchlist],
        network_down: Callable[[], str | None],
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.watchlist = watchlist
        self.network_down = network_down
        self.now = now
        self._matchers: tuple[Watchlist, Matchers] | None = None
        self.templates = _templates()
        static = resources.files("monitor.dashboard").joinpath("static")
        self.static = {
            "style.css": (static.joinpath("style.css").read_bytes(), "text/css"),
            "icon.svg": (static.joinpath("icon.svg").read_bytes(), "image/svg+xml"),
        }

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index),
            Route("/alerts", self.alerts),
            Route("/watch/{watch_id}", self.watch),
            Route("/watch/{watch_id}/diff", self.diff),
            Route("/raw/{sha}", self.raw),
            Route("/feeds/all.atom", self.feed_all),
            Route("/feeds/watch/{watch_id}.atom", self.feed_watch),
            Route("/feeds/jurisdiction/{code}.atom", self.feed_place),
            Route("/static/{name}", self.asset),
        ]

    def current(self) -> tuple[Watchlist, Matchers]:
        """The watchlist now, and its jurisdiction matchers: built once per watchlist
        (a reload gives a new one), not once per request."""
        watchlist = self.watchlist()
        known = self._matchers
        if known is None or known[0] is not watchlist:
            known = self._matchers = (watchlist, Matchers(watchlist))
        return known

    def page(self, request: Request, name: str, **context: Any) -> Response:
        context["network_down"] = self.network_down()
        return self.templates.TemplateResponse(request, name, context)

    def index(self, request: Request) -> Response:
        chosen = {k: request.query_params.get(k, "") for k in FILTERS}
        page = _int(request, "page") or 1
        data = views.index(self.store, *self.current(), chosen, page)
        return self.page(request, "index.html", page=data, statuses=views.STATUSES)

    def watch(self, request: Request) -> Response:
        data = views.watch_page(self.store, *self.current(), request.path_params["watch_id"])
        if data is None:
            raise HTTPException(404, "no such watch")
        return self.page(request, "watch.html", page=data)

    def diff(self, request: Request) -> Response:
        watch_id = request.path_params["watch_id"]
        asked = _int(request, "from"), _int(request, "to")
        try:
            data = views.diff_page(self.store, *self.current(), watch_id, asked)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        if data is None:
            raise HTTPException(404, "no versions of this watch")
        side = request.query_params.get("view") != "inline"
        return self.page(request, "diff.html", page=data, side_by_side=side)

    def alerts(self, request: Request) -> Response:
        return self.page(request, "alerts.html", alerts=views.alerts(self.store))

    def raw(self, request: Request) -> Response:
        """A stored body as a download, never rendered on this origin."""
        sha = request.path_params["sha"].lower()
        try:
            body = self.store.body(sha)
        except StoreError:
            raise HTTPException(404, "no raw body with this SHA-256") from None
        headers = {
            "content-disposition": f'attachment; filename="{sha}.raw"',
            "x-content-sha256": sha,
        }
        return Response(body, media_type="application/octet-stream", headers=headers)

    def feed(self, request: Request, rows: list[AlertRow], feed_id: str, title: str) -> Response:
        base = str(request.base_url).rstrip("/")
        token = request.query_params.get("token")  # a reader's token opens the links too
        carried = f"&token={quote(token, safe='')}" if token else ""

        def link(row: AlertRow) -> str:
            watch = quote(row.watch_id, safe="")
            return f"{base}/watch/{watch}/diff?to={row.version}{carried}"

        body = feeds.atom(
            rows,
            feed_id=feed_id,
            title=title,
            self_url=str(request.url),
            site_url=f"{base}/",
            link=link,
            now=self.now(),
        )
        return Response(body, media_type=ATOM)

    def feed_all(self, request: Request) -> Response:
        rows = feeds.change_alerts(self.store.alerts(limit=feeds.SCAN))
        return self.feed(request, rows, "all", "monitor: every change")

    def feed_watch(self, request: Request) -> Response:
        watch_id = request.path_params["watch_id"]
        rows = feeds.change_alerts(self.store.alerts(limit=feeds.SCAN, watch_id=watch_id))
        listed = any(w.id == watch_id for w in self.current()[0].watches)
        if not rows and not listed and self.store.state(watch_id).last_check_at is None:
            raise HTTPException(404, "no such watch")
        return self.feed(request, rows, f"watch/{watch_id}", f"monitor: {watch_id}")

    def feed_place(self, request: Request) -> Response:
        code = request.path_params["code"].upper()
        names = self.current()[1].names
        if code not in names:
            raise HTTPException(404, "no such jurisdiction")
        scanned = self.store.alerts(limit=feeds.SCAN)
        rows = feeds.change_alerts(scanned, lambda row: code in row.jurisdictions)
        return self.feed(request, rows, f"jurisdiction/{code}", f"monitor: {names[code]}")

    def asset(self, request: Request) -> Response:
        """The stylesheet and the icon: the only resources a page loads."""
        found = self.static.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404, "not found")
        body, kind = found
        return Response(body, media_type=kind, headers={"cache-control": "max-age=3600"})


FILTERS = ("jurisdiction", "platform", "status")


async def _error(_request: Request, exc: Exception) -> Response:
    """A plain-text answer: 404/400 with why, 503 with the store's one-line reason."""
    if isinstance(exc, HTTPException):
        return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code)
    reason = (str(exc).splitlines() or ["unknown error"])[0]
    return PlainTextResponse(f"store unavailable: {reason}\n", status_code=503)


def app(
    store: Store,
    watchlist: Callable[[], Watchlist],
    *,
    network_down: Callable[[], str | None] = lambda: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    token: str | None = None,
) -> ASGIApp:
    """The dashboard as an ASGI application: GET (and HEAD) only, every answer with the
    CSP; with a `token`, only for requests that carry it (`TokenGate`)."""
    routes = Dashboard(store, watchlist, network_down, now).routes()
    handlers = {HTTPException: _error, StoreError: _error}
    pages: ASGIApp = Starlette(routes=routes, exception_handlers=handlers)
    return SecurityHeaders(TokenGate(pages, token) if token else pages)


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    if not value:
        return None
    if not value.isdigit():
        raise HTTPException(400, f"{name} must be a number")
    return int(value)
