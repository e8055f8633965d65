"""What guards every answer of the dashboard: its security headers and its token.

`SecurityHeaders` adds a strict Content-Security-Policy (no script at all, styles and
images from the dashboard only, no frames, no form to elsewhere) and its companions to
every response, errors included. `TokenGate` lets a request through only with the
token (`$MONITOR_HTTP_TOKEN`); beyond a loopback address the dashboard is only
served with one (`is_loopback`), unless `monitor serve --insecure-no-auth`.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


COOKIE = "monitor_token"


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only: without a token, the
    dashboard listens nowhere else."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class TokenGate:
    """Lets a request through only with the token: `Authorization: Bearer TOKEN`, or
    `?token=TOKEN` (feed readers; a page visited so also gets it as an HttpOnly,
    SameSite=Strict cookie, so its links work), or that cookie. Anything else is 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest((given or "").encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        in_query = request.query_params.get("token")
        if self._valid(bearer if scheme.lower() == "bearer" else None) or self._valid(
            request.cookies.get(COOKIE)
        ):
            await self.app(scope, receive, send)
        elif self._valid(in_query):
            await self.app(scope, receive, self._with_cookie(send))
        else:
            answer = PlainTextResponse(
                "a token is needed (Authorization: Bearer, or ?token=)\n",
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="monitor"'},
            )
            await answer(scope, receive, send)

    def _with_cookie(self, send: Send) -> Send:
        cookie = f"{COOKIE}={self.token.decode()}; HttpOnly; SameSite=Strict; Path=/"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
                message = {**message, "headers": headers}
            await send(message)

        return sending


class SecurityHeaders:
    """Adds the CSP and its companions to every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.decode() not in HEADERS]
                raw += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, with_headers)
