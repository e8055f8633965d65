"""Deliver one alert to one destination (an apprise URL); the only module that imports apprise.

A delivery either reaches the service or raises `NotifyError`: apprise's "nothing was
sent" (no service, an `optional` service that failed, a timeout) is a failure, never a
success, because the ledger marks a delivery sent only when `send` returns. Retries
are the ledger's (so a failing webhook never makes an e-mail go out twice): apprise's
own are switched off. Error messages name the destination by apprise's privacy form
of its URL only, never by a secret.

The body is rendered in the format the service reads (HTML for e-mail, Markdown for
chat services that render it, text otherwise) and split by `messages.fit` to the
service's own size limits, so a long alert never loses a finding to a cut.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from monitor.config import masked_url
from monitor.errors import NotifyError
from monitor.messages import ELLIPSIS, Message, fit, headless, headline

# Services that render Markdown although apprise declares them plain text: their
# body goes through apprise untouched (declared as text) and is read as Markdown.
MARKDOWN_NATIVE = frozenset({"mmost", "mmosts"})
NOTIFY_TYPES = {"info", "success", "warning", "failure"}
UNLIMITED = 1 << 30


def _apprise() -> Any:
    """apprise, imported on first use: it weighs 17 MB, and most checks send nothing.

    apprise logs the URLs it cannot read in full ("Unparseable URL mmost://TOKEN@…"):
    its logger masks every URL before any handler sees it.
    """
    import apprise

    apprise_log = logging.getLogger("apprise")
    if not any(isinstance(f, _MaskURLs) for f in apprise_log.filters):
        apprise_log.addFilter(_MaskURLs())
    return apprise


class _MaskURLs(logging.Filter):
    """Rewrites a log record so that no URL in it shows more than its scheme."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _URL.sub(lambda m: masked_url(m.group()), record.getMessage())
        record.args = None
        return True


_URL = re.compile(r"[A-Za-z][\w+.-]*://\S+")


DETAIL_MAX = 300  # characters of apprise's explanation kept in an error message
GRACE = 2.0  # seconds past the deadline before the wait itself is abandoned


async def send(url: str, message: Message, *, timeout: float = 30.0, skip: int = 0) -> None:
    """Deliver `message` to the one destination `url`, or raise NotifyError.

    `timeout` bounds the whole delivery, every part of a split message included;
    connect and read timeouts of the service are capped to it. The first `skip` parts
    were delivered by an earlier attempt and are not sent again; a NotifyError says
    how many parts the service has accepted in all (`sent`).
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    service = _service(url, timeout)
    label = redact(url)
    fmt = body_format(service, url)
    parts = _parts(service, message, fmt)
    manager = _apprise().Apprise(asset=service.asset)
    manager.add(service)
    declared = _declared(service)
    notify = partial(
        manager.async_notify,
        # the body is already in the service's format: apprise must not convert it
        body_format=fmt if fmt in declared else declared[0],
        notify_type=message.severity if message.severity in NOTIFY_TYPES else "info",
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for number, (title, body) in enumerate(parts, 1):
        if number <= skip:
            continue
        where = f" (part {number} of {len(parts)})" if len(parts) > 1 else ""
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NotifyError(f"{label}: timed out after {timeout:g}s{where}", sent=number - 1)
        outcome = await _notify(notify, service, title, body, remaining)
        if outcome:
            raise NotifyError(f"{label}: {outcome}{where}", sent=number - 1)


def redact(url: str) -> str:
    """The destination as it may be logged: apprise's privacy form without its options.

    Falls back to `scheme://***` for a URL apprise cannot read, so a typo never
    prints a token.
    """
    service: Any = _apprise().Apprise.instantiate(url)
    if service is None:
        return masked_url(url)
    return str(service.url(privacy=True)).split("?", 1)[0]


def validate(url: str) -> bool:
    """Whether apprise accepts `url`, so a typo fails at load time, not at 3 a.m."""
    return _apprise().Apprise.instantiate(url) is not None


def body_format(service: Any, url: str) -> str:
    """The format a service reads best: "html", "markdown" or "text".

    An explicit `?format=` wins; e-mail services (HTML, no Markdown) get HTML;
    chat services that declare Markdown get Markdown; pass-through webhooks that
    declare every format (json://, form://, xml://) get plain text, the easiest for
    a program to use.
    """
    declared = _declared(service)
    chosen = parse_qs(urlsplit(url).query).get("format", [""])[0].lower()
    if chosen in declared:
        return chosen
    if urlsplit(url).scheme.lower() in MARKDOWN_NATIVE:
        return "markdown"
    if {"text", "html", "markdown"} <= set(declared):
        return "text"
    if "html" in declared and "markdown" not in declared:
        return "html"
    return "markdown" if "markdown" in declared else "text"


def _service(url: str, timeout: float) -> Any:
    """The apprise plugin for `url`, made to fail fast, once, and loudly."""
    asset = _apprise().AppriseAsset(
        app_id="monitor",
        app_desc="monitor: alerts on platform policy pages",
        storage_mode="memory",
        service_timeout=timeout,
        interpret_emojis=False,  # page text like ":x:" stays as the page wrote it
        default_service_retry=0,
    )
    service: Any = _apprise().Apprise.instantiate(url, asset=asset)
    if service is None:
        raise NotifyError(f"{redact(url)}: apprise does not accept this URL")
    service.retry = 0  # our ledger retries; apprise's retries would send twice
    service.optional = False  # an "optional" failure would read as success
    service.socket_connect_timeout = min(float(service.socket_connect_timeout), timeout)
    service.socket_read_timeout = min(float(service.socket_read_timeout), timeout)
    return service


def _declared(service: Any) -> tuple[str, ...]:
    raw = service.notify_format
    items = raw if isinstance(raw, tuple | list) else (raw,)
    return tuple(str(getattr(item, "value", item)).lower() for item in items)


def _parts(service: Any, message: Message, fmt: str) -> list[tuple[str, str]]:
    """(title, body) of each part to send, within the service's limits."""
    body_max = int(service.body_maxlen) if int(service.body_maxlen) > 0 else UNLIMITED
    title_max = int(service.title_maxlen)
    if title_max > 0:
        chunks = fit(message, body_max, fmt)
        return [(_title(message.title, i, len(chunks), title_max), c) for i, c in _numbered(chunks)]
    # No title on this service: the title leads the body (apprise would add it unescaped),
    # in place of the head's first line, which it repeats.
    room = len(headline(_title(message.title, 9999, 9999, UNLIMITED), fmt)) + 1
    chunks = fit(headless(message), max(body_max - room, 1), fmt)
    glue = "" if fmt == "html" else "\n"
    return [
        ("", headline(_title(message.title, i, len(chunks), UNLIMITED), fmt) + glue + c)
        for i, c in _numbered(chunks)
    ]


def _numbered(chunks: list[str]) -> list[tuple[int, str]]:
    return list(enumerate(chunks, 1))


def _title(title: str, number: int, total: int, limit: int) -> str:
    """The title, numbered " (2/3)" when the alert is split, within the service's limit."""
    suffix = f" ({number}/{total})" if total > 1 else ""
    if len(title) + len(suffix) > limit:
        title = title[: max(limit - len(suffix) - 1, 0)].rstrip() + ELLIPSIS
    return title + suffix


async def _notify(
    notify: Callable[..., Awaitable[Any]], service: Any, title: str, body: str, remaining: float
) -> str:
    """Send one part; "" when the service accepted it, else what went wrong."""
    try:
        async with asyncio.timeout(remaining + GRACE):
            result = await notify(body=body, title=title, timeout=remaining)
    except TimeoutError:
        return f"no answer within {remaining:.0f}s"
    with result:
        if result:
            return ""
        return _explain(result, service)


def _explain(result: Any, service: Any) -> str:
    """Why apprise sent nothing, in its own words, without any secret of the URL."""
    status = str(getattr(result.status, "name", result.status)).lower()
    what = {
        "nomatch": "nothing was sent",
        "timeout": "timed out",
        "partial": "only partly delivered",
    }.get(status, "delivery failed")
    notes = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    detail = "; ".join(dict.fromkeys(notes))
    if detail:
        what += f": {_scrub(detail, service)[:DETAIL_MAX]}"
    return what


def _scrub(text: str, service: Any) -> str:
    """`text` without the parts of the URL that apprise's privacy form hides."""
    full, public = str(service.url(privacy=False)), str(service.url(privacy=True))
    for secret in sorted(_pieces(full) - _pieces(public), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _pieces(url: str) -> set[str]:
    """Every user, password, path segment and query value of a URL, raw and decoded."""
    split = urlsplit(url)
    pieces = {split.username or "", split.password or ""}
    pieces.update(split.path.split("/"))
    for values in parse_qs(split.query).values():
        pieces.update(values)
    return {p for p in pieces | {unquote(p) for p in pieces} if p}
