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
from monitor.messages import ELLIPSIS, Message, defuse, fit, headless, headline

# Services that render Markdown although apprise declares them plain text: their
# body goes through apprise untouched (declared as text) and is read as Markdown.
MARKDOWN_NATIVE = frozenset({"mmost", "mmosts"})
NOTIFY_TYPES = {"info", "success", "warning", "failure"}
UNLIMITED = 1 << 30


def _apprise() -> Any:
    """apprise, imported on first use: it weighs 17 MB, and most checks send nothing.

    apprise (and urllib3 under it) log URLs, paths and payloads at debug level
    ("Unparseable URL mmost://TOKEN@…", `POST /hook/TOKEN`, `{'topic': 'TOPIC'}`):
    their loggers pass every record through `_Redacting` before any handler sees it.
    """
    import apprise

    _redacting()
    return apprise


def _redacting() -> _Redacting:
    """The one redacting filter of apprise's and urllib3's loggers."""
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    found = next((f for f in loggers[0].filters if isinstance(f, _Redacting)), None)
    redacting = found or _Redacting()
    for library in loggers:
        if redacting not in library.filters:
            library.addFilter(redacting)
    return redacting


_LIBRARY_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.util.retry")


class _Redacting(logging.Filter):
    """Rewrites a log record so that no URL in it shows more than its scheme, and no
    secret of a destination used in this process shows at all."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def hide(self, url: str) -> None:
        self.secrets |= secrets(url)

    def filter(self, record: logging.LogRecord) -> bool:
        text = _URL.sub(lambda m: masked_url(m.group()), record.getMessage())
        record.msg, record.args = _hidden(text, self.secrets), None
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
    _redacting().hide(url)  # apprise's and urllib3's debug lines about it, too
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
        outcome = await _notify(notify, url, title, body, remaining)
        if outcome:
            raise NotifyError(f"{label}: {outcome}{where}", sent=number - 1)


def redact(url: str) -> str:
    """The destination as it may be shown, logged or stored: its service and server only.

    Kept: the scheme, and the user and host when apprise's privacy form shows them
    as they are and the host is a server name (`json://hooks.example.org/***`).
    Hidden whole: passwords; whatever apprise marks private (tokens, keys, webhook
    ids), even in the user or host place (`discord://***`, `tgram://***`); and every
    path, query and fragment, where webhook tokens and ntfy topics live, which
    apprise shows. E-mail keeps its recipients, as apprise shows them. A URL apprise
    cannot read is `scheme://***`, so a typo never prints a token.
    """
    service: Any = _apprise().Apprise.instantiate(url)
    if service is None:
        return masked_url(url)
    full = urlsplit(str(service.url(privacy=False)))
    public = urlsplit(str(service.url(privacy=True)))
    scheme = urlsplit(url).scheme.lower()
    if full.hostname is None or public.hostname != full.hostname or not _server(full.hostname):
        return f"{scheme}://***"
    user = full.username or ""
    if user and public.username != user:
        user = "***"
    password = ":****" if full.password else ""
    at = f"{user}{password}@" if user or password else ""
    host = f"[{full.hostname}]" if ":" in full.hostname else full.hostname
    port = f":{full.port}" if full.port else ""
    own = urlsplit(url)
    rest = "/***" if (own.path.strip("/") or own.query or own.fragment) else ""
    if _is_mail(service) and public.path == full.path:
        rest = public.path  # the recipients, when nothing private sits among them
    return f"{scheme}://{at}{host}{port}{rest}"


def _server(host: str) -> bool:
    """A host that names a server, not a token or topic in the host's place."""
    return "." in host or ":" in host or host == "localhost"


def secrets(url: str) -> set[str]:
    """Every piece of `url` that `redact` hides (tokens, passwords, topics, path
    segments, query values), raw and percent-decoded: what must be scrubbed from
    any text about it."""
    service: Any = _apprise().Apprise.instantiate(url)
    pieces = _pieces(url)
    if service is not None:  # what apprise itself marks private, where it put it
        pieces |= _pieces(str(service.url(privacy=False))) - _pieces(str(service.url(privacy=True)))
    shown = _pieces(redact(url)) - {"***", "****"}
    return {p for p in pieces - shown if len(p) >= SECRET_MIN}


SECRET_MIN = 4  # shorter pieces ("x", "hook") are scrubbed nowhere: they would eat words


def _hidden(text: str, hidden: set[str]) -> str:
    """`text` with each of the `hidden` pieces replaced by `***`, longest first."""
    for piece in sorted(hidden, key=len, reverse=True):
        if piece in text:
            text = text.replace(piece, "***")
    return text


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
    chat = not _is_mail(service)
    title = defuse(message.title, "text") if chat else message.title
    if title_max > 0:
        chunks = _fit(message, body_max, fmt, chat=chat)
        return [(_title(title, i, len(chunks), title_max), c) for i, c in _numbered(chunks)]
    # No title on this service: the title leads the body (apprise would add it unescaped),
    # in place of the head's first line, which it repeats.
    room = len(headline(_title(title, 9999, 9999, UNLIMITED), fmt)) + 1
    chunks = _fit(headless(message), max(body_max - room, 1), fmt, chat=chat)
    glue = "" if fmt == "html" else "\n"
    return [
        ("", headline(_title(title, i, len(chunks), UNLIMITED), fmt) + glue + c)
        for i, c in _numbered(chunks)
    ]


def _is_mail(service: Any) -> bool:
    """E-mail services read HTML and no Markdown (mailto, SES, SendGrid…); a mention
    means nothing there, so their text stays verbatim."""
    declared = _declared(service)
    return "html" in declared and "markdown" not in declared


def _fit(message: Message, limit: int, fmt: str, *, chat: bool) -> list[str]:
    """`fit`; in chat and webhooks with every mention defused, each chunk still
    within `limit` (a defused mention is one character longer)."""
    room = limit
    while True:
        chunks = fit(message, room, fmt)
        if not chat:
            return chunks
        chunks = [defuse(chunk, fmt) for chunk in chunks]
        over = max(map(len, chunks), default=0) - limit
        if over <= 0 or room == 1:
            return chunks
        room = max(room - over, 1)


def _numbered(chunks: list[str]) -> list[tuple[int, str]]:
    return list(enumerate(chunks, 1))


def _title(title: str, number: int, total: int, limit: int) -> str:
    """The title, numbered " (2/3)" when the alert is split, within the service's limit."""
    suffix = f" ({number}/{total})" if total > 1 else ""
    if len(title) + len(suffix) > limit:
        title = title[: max(limit - len(suffix) - 1, 0)].rstrip() + ELLIPSIS
    return title + suffix


async def _notify(
    notify: Callable[..., Awaitable[Any]], url: str, title: str, body: str, remaining: float
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
        return _explain(result, url)


def _explain(result: Any, url: str) -> str:
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
        what += f": {_scrub(detail, url)[:DETAIL_MAX]}"
    return what


def _scrub(text: str, url: str) -> str:
    """`text` without the parts of the URL that `redact` hides."""
    return _hidden(text, secrets(url))


def _pieces(url: str) -> set[str]:
    """Every user, password, host, path segment and query value of a URL, raw and decoded."""
    split = urlsplit(url)
    host = split.netloc.rpartition("@")[2]  # as written: `hostname` is lowercased
    pieces = {split.username or "", split.password or "", host, host.split(":")[0]}
    pieces.update(split.path.split("/"))
    pieces.add(split.fragment)
    for values in parse_qs(split.query).values():
        pieces.update(values)
    return {p for p in pieces | {unquote(p) for p in pieces} if p}
