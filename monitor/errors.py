"""The one exception tree of monitor.

Every library exception is wrapped at the boundary of the stage that meets it, and
classified there once; nothing above the orchestrator sees an httpx, lxml or
SQLAlchemy exception.

    MonitorError
    ├── ConfigError        the watchlist is invalid (carries every problem found)
    ├── FetchError         the page could not be fetched (carries a FailureKind)
    ├── ExtractError       the page was fetched but yields no usable text
    │   ├── Incomplete     it lacks what the watch `expect`s: a partial read
    │   ├── UnreadableDocument  a damaged, encrypted or scanned (text-less) PDF
    │   └── DocumentTooLarge    too many pages, or a stream or ZIP member past its cap
    ├── StoreError         the store could not be read or written
    │   ├── Conflict       another writer recorded the watch since the check read it
    │   └── NotKept        a raw body the store knows by its hash but keeps no bytes of
    └── NotifyError        an alert could not be delivered
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The command line's exit codes (README, `monitor.cli`)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ALL_FAILED = 0, 1, 2, 3
EXIT_PIPE = 128 + 13  # SIGPIPE: the reader of our output went away


class UsageError(Exception):
    """A command was asked for something that does not exist (exit 2, not a traceback).
    Not a MonitorError: nothing is wrong with the watchlist, the pages or the store."""


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration file, located so a person can fix it."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigError(MonitorError):
    """The watchlist (or another configuration input) is invalid.

    All problems are collected before raising, so a user fixes them in one pass.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FailureKind(enum.StrEnum):
    """Why a fetch or extraction failed; decides retries and health alerts."""

    TRANSIENT = "transient"  # timeouts, connection errors, 5xx, 429: retry later
    PERMANENT = "permanent"  # 404, 410, DNS failure, bad scheme: the URL is wrong
    BLOCKED = "blocked"  # bot walls, challenge pages, 401/403
    TOO_LARGE = "too_large"  # the body exceeded the size cap
    WRONG_TYPE = "wrong_type"  # not HTML or plain text
    EXTRACTION = "extraction"  # selector matched nothing, or no text left
    CONTENT_LOST = "content_lost"  # most of the text vanished: an error page, not a change
    INCOMPLETE = "incomplete"  # what the watch `expect`s is missing: a partial read
    NEEDS_BROWSER = "needs_browser"  # the watch renders in Chromium, and none is installed
    BLOCKED_BY_POLICY = "blocked_by_policy"  # a hop the network policy refuses (netpolicy)


_BLOCKED_STATUSES = frozenset({401, 403, 451})
_TRANSIENT_STATUSES = frozenset({408, 429})  # and every 5xx


def status_failure(status: int) -> FailureKind:
    """What an HTTP error status (>= 400) of a page's main document means.

    One pure rule shared by the HTTP and browser fetchers, so a watch fails the same
    way whichever of them read it: 401/403/451 are a wall (BLOCKED), 408/429/5xx pass
    (TRANSIENT), and every other 4xx says the URL is wrong (PERMANENT).
    """
    if status in _BLOCKED_STATUSES:
        return FailureKind.BLOCKED
    if status in _TRANSIENT_STATUSES or status >= 500:
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


class FetchError(MonitorError):
    """A page could not be fetched; `kind` says what to do about it."""

    def __init__(
        self, kind: FailureKind, message: str, *, url: str, status: int | None = None
    ) -> None:
        self.kind = kind
        self.url = url
        self.status = status
        super().__init__(message)


class ExtractError(MonitorError):
    """A fetched page yields no usable text (e.g. a selector matched nothing)."""

    kind = FailureKind.EXTRACTION


class Incomplete(ExtractError):
    """The page lacks a text or element the watch `expect`s: read only in part (an app
    shell without its figures, a report without its Hong Kong row), never a change."""

    kind = FailureKind.INCOMPLETE


class UnreadableDocument(ExtractError):
    """A document that cannot be read: damaged, cut off, encrypted, or a scanned PDF
    without a text layer. Never an empty version."""


class DocumentTooLarge(ExtractError):
    """A document past what monitor reads: too many pages, a stream that inflates past
    its bound (a decompression bomb), or a file inside the response (a ZIP member)
    inflating past the watch's size cap; never read whole."""

    kind = FailureKind.TOO_LARGE


class StoreError(MonitorError):
    """The store could not be opened, migrated, read or written."""


class Conflict(StoreError):
    """Another process recorded this watch after the check read its history: nothing
    was written, and the check is evaluated again against the history as it is now."""


class NotKept(StoreError):
    """A raw body whose bytes the store did not keep (an unchanged check's, far from
    its keyframe) or no longer keeps (pruned by retention): only its hash and size."""


class NotifyError(MonitorError):
    """An alert could not be delivered to a destination. `sent`: how many parts of a
    split message the service had accepted before it failed (the next attempt goes on
    from there, so the start is never posted twice and the end is never lost)."""

    def __init__(self, message: str, *, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent
