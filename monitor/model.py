"""Value types passed between pipeline stages.

Stages never import each other; they share only these frozen values, so each stage
can be tested on its own with plain data.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from monitor.errors import FailureKind
from monitor.netpolicy import NetworkPolicy


class Outcome(enum.StrEnum):
    """What a check found; the JSON-lines contract uses these values."""

    NEW = "new"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    NOT_MODIFIED = "not_modified"
    FAILED = "failed"


class VersionKind(enum.StrEnum):
    """Why a version was recorded."""

    BASELINE = "baseline"  # the first version of a watch: never alerted
    CHANGE = "change"  # the page's text changed
    TECHNICAL = "technical"  # re-extracted after the watch's rules changed: never alerted
    REVERT = "revert"  # back to a state of one of the last versions


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"
    MOVED = "moved"


class FindingKind(enum.StrEnum):
    SENTENCE_ADDED = "sentence_added"
    SENTENCE_REMOVED = "sentence_removed"
    SENTENCE_MODIFIED = "sentence_modified"
    SECTION_CHANGED = "section_changed"
    PAGE_ABOUT = "page_about"
    APPEARED = "appeared"
    DISAPPEARED = "disappeared"
    TABLE_ROW = "table_row"


class Format(enum.StrEnum):
    """How a response is read: the watch's `format:`, or decided from its content type
    and magic bytes (`auto`)."""

    AUTO = "auto"
    HTML = "html"
    TEXT = "text"
    MARKDOWN = "markdown"
    CSV = "csv"
    TSV = "tsv"
    JSON = "json"
    ZIP = "zip"
    PDF = "pdf"


class AlertKind(enum.StrEnum):
    CHANGE = "change"  # findings of one check
    HEALTH = "health"  # a watch failing or recovering
    NOTICE = "notice"  # about the monitor itself: an alert that could not be delivered


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # given up


@dataclass(frozen=True)
class Snapshot:
    """The raw response as served: the proof of what the page said."""

    url: str
    final_url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    encoding: str  # the charset the body decodes with (header, <meta>, or detected)
    fetched_at: datetime
    elapsed: float  # seconds from request to last byte
    rendered: bool = False  # the body is the DOM that headless Chromium rendered

    @functools.cached_property
    def sha256(self) -> str:
        """Computed once: fetch, the store and alerts all cite it."""
        return hashlib.sha256(self.body).hexdigest()

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


@dataclass(frozen=True)
class NotModified:
    """The server answered 304 to a conditional request: the page is unchanged."""

    url: str
    fetched_at: datetime
    elapsed: float


@dataclass(frozen=True)
class Validators:
    """Conditional-request validators remembered from the last full response."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchRequest:
    """Everything fetch needs to know about one watch's page."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    validators: Validators = field(default_factory=Validators)
    max_bytes: int = 10_000_000
    deadline: float = 60.0  # overall seconds for the whole fetch, retries included
    retries: int = 2
    wait_for: str | None = None  # a rendered page counts once this CSS selector has text
    format: Format = Format.AUTO  # the watch's `format:`: which bodies are accepted
    network: NetworkPolicy = field(default_factory=NetworkPolicy)  # where each hop may connect


@dataclass(frozen=True)
class ExtractRules:
    """How to turn a page into text: the watch's select / remove / ignore, and what a
    good version must hold (`expect`: texts, and CSS selectors that must match); for
    data, how it is read (`format`), which ZIP member (`member`, a glob), which JSON
    (`query`, JMESPath), which columns identify a row (`key`) and which rows are kept
    (`rows`: column -> accepted values)."""

    select: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    expect_text: tuple[str, ...] = ()
    expect_css: tuple[str, ...] = ()
    format: Format = Format.AUTO
    member: str | None = None
    query: str | None = None
    key: tuple[str, ...] = ()
    rows: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def digest(self) -> str:
        """A stable hash of the rules: a change of rules means re-extraction.

        Expectations and data rules count only when there are some, so watches
        without them keep the digest they always had (and are not re-extracted on
        upgrade)."""
        parts: list[object] = [self.select, self.remove, self.ignore]
        if self.expect_text or self.expect_css:
            parts += [self.expect_text, self.expect_css]
        if data := self._data_rules():
            parts.append(data)
        payload = json.dumps(parts, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _data_rules(self) -> dict[str, object]:
        """The data rules that differ from their defaults."""
        data: dict[str, object] = {
            "format": str(self.format) if self.format != Format.AUTO else None,
            "member": self.member,
            "query": self.query,
            "key": list(self.key),
            "rows": [[column, list(values)] for column, values in self.rows],
        }
        return {name: value for name, value in data.items() if value}


@dataclass(frozen=True)
class Block:
    """One unit of extracted text with the headings above it.

    kind is one of: heading, paragraph, item, row, term, definition.
    For rows, `cells` holds the cell texts and `text` joins them with " | ". A row
    read from data (CSV, JSON) also knows its table's `columns` (its header) and its
    `key`: the cells that identify it, so that a changed row is paired with itself.
    `text` is the wording versions are compared on (see `monitor.wording`); `shown`
    is the text as the page showed it, kept only when it differs (full-width
    punctuation, typographic quotes), for quotes that are verbatim.
    """

    kind: str
    text: str
    path: tuple[str, ...] = ()
    level: int = 0  # heading level 1-6 for headings, else 0
    cells: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    shown: str = ""

    @property
    def verbatim(self) -> str:
        return self.shown or self.text

    def to_json(self) -> dict[str, object]:
        """The block as canonical JSON holds it: keys in this order, empty ones left out."""
        data: dict[str, object] = {"kind": self.kind, "text": self.text, "path": list(self.path)}
        if self.level:
            data["level"] = self.level
        if self.cells:
            data["cells"] = list(self.cells)
        if self.columns:
            data["columns"] = list(self.columns)
        if self.key:
            data["key"] = list(self.key)
        if self.shown:
            data["shown"] = self.shown
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Block:
        get = data.get
        level = get("level", 0)
        assert isinstance(level, int)
        return cls(
            str(data["kind"]),
            str(data["text"]),
            _strings(get("path")),
            level,
            _strings(get("cells")),
            _strings(get("columns")),
            _strings(get("key")),
            str(get("shown", "")),
        )


def _strings(value: object) -> tuple[str, ...]:
    """A list of strings from JSON as a tuple (most blocks have no cells, columns or key)."""
    if not value:
        return ()
    assert isinstance(value, list)
    return tuple(map(str, value))


Document = tuple[Block, ...]


def document_json(document: Document) -> str:
    """Canonical JSON of a document: byte-identical for identical documents."""
    return _encoded(document)[0]


def document_hash(document: Document) -> str:
    """The SHA-256 of `document_json`: what versions are compared and verified by."""
    return _encoded(document)[1]


_ENCODED_KEPT = 4  # documents remembered: a check hashes, compares and stores the same one
# (a page's document can take megabytes as objects: enough for the checks evaluated at once)
_encoded_documents: dict[int, tuple[Document, str, str]] = {}
_encoded_lock = threading.Lock()


def _encoded(document: Document) -> tuple[str, str]:
    """The JSON and hash of a document, encoded once: a check hashes, compares and
    stores the same document object, so it is remembered by identity (the entry
    holds the document, so its id is not reused while remembered). An equal
    document that is another object is encoded again, which is as correct."""
    with _encoded_lock:
        hit = _encoded_documents.get(id(document))
    if hit is not None and hit[0] is document:
        return hit[1], hit[2]
    text = json.dumps([b.to_json() for b in document], ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    with _encoded_lock:
        _encoded_documents[id(document)] = (document, text, digest)
        while len(_encoded_documents) > _ENCODED_KEPT:
            del _encoded_documents[next(iter(_encoded_documents))]
    return text, digest


def destination_id(url: str, key: bytes) -> str:
    """What the ledger stores for a destination: a keyed hash of its URL, never the URL.

    The key is the store's own (random, kept in the store), so the id cannot be
    brute-forced from a known URL template the way a plain SHA-256 could.
    """
    return rekeyed(hashlib.sha256(url.encode()).hexdigest(), key)


def rekeyed(url_sha256: str, key: bytes) -> str:
    """The destination id of a URL whose SHA-256 is `url_sha256` (what older stores
    kept): the store's migration turns every old id into its keyed one."""
    return hmac.new(key, url_sha256.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Change:
    """One difference between two versions, at the finest useful grain.

    For prose the unit is a sentence; for table rows, headings, terms and short list
    items it is the whole block. `segments` is the word-level (characters for CJK)
    edit script of a modification: ("=", text) kept, ("-", text) removed, ("+", text)
    added, in reading order.
    """

    kind: ChangeKind
    block_kind: str
    before: str | None = None
    after: str | None = None
    path_before: tuple[str, ...] = ()
    path_after: tuple[str, ...] = ()
    cells_before: tuple[str, ...] = ()
    cells_after: tuple[str, ...] = ()
    segments: tuple[tuple[str, str], ...] = ()
    index_before: int | None = None  # block index in the before document
    index_after: int | None = None  # block index in the after document

    @property
    def path(self) -> tuple[str, ...]:
        return self.path_after if self.after is not None else self.path_before


@dataclass(frozen=True)
class CellDelta:
    """A changed cell of a table row, with a numeric delta when both sides are numbers."""

    column: str  # the column's header text, or its position as "#3"
    before: str
    after: str
    delta: float | None = None


@dataclass(frozen=True)
class Finding:
    """A change that concerns a watched jurisdiction, and the evidence why.

    where: sentence | heading | row | page  (where the jurisdiction's name was found)
    """

    jurisdiction: str
    kind: FindingKind
    where: str
    terms: tuple[str, ...]
    change: Change | None = None
    cells: tuple[CellDelta, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class WatchState:
    """What the store remembers about a watch between checks."""

    watch_id: str
    validators: Validators = field(default_factory=Validators)
    last_full_fetch: datetime | None = None
    last_body_sha256: str | None = None
    keyframe_sha256: str | None = None
    consecutive_failures: int = 0
    last_outcome: Outcome | None = None
    last_error: str | None = None
    last_check_at: datetime | None = None
    last_success_at: datetime | None = None
    health_alerted: bool = False


@dataclass(frozen=True)
class StoredVersion:
    """A version read back from the store."""

    id: int
    watch_id: str
    snapshot_id: int
    rules_hash: str
    doc_hash: str
    kind: VersionKind
    created_at: datetime
    number: int = 0  # the watch's own count: 1, 2, 3 … (what people see and type)
    # what its blocks were read from (`extract.Extraction.digest`); None: not HTML
    content_digest: str | None = None
    # the document's canonical JSON from the stored bytes; None: read without them
    read_document: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def document_json(self) -> str:
        """Decompressed on first use: a check whose response is a 304, the same bytes
        or the same content never needs it."""
        if self.read_document is None:
            raise LookupError(f"version {self.id} of {self.watch_id} was read without its text")
        return self.read_document()

    @functools.cached_property
    def document(self) -> Document:
        """Decoded on first use: most checks only need the hash."""
        return tuple(Block.from_json(b) for b in json.loads(self.document_json))


@dataclass(frozen=True)
class RecentVersion:
    """A recent version's identity, enough to recognise a page returning to it."""

    id: int
    doc_hash: str
    kind: VersionKind
    number: int = 0


@dataclass(frozen=True)
class History:
    """What a check needs of the watch's past, read from the store in one go."""

    state: WatchState
    latest: StoredVersion | None = None
    latest_sha: str | None = None  # SHA-256 of the body the latest version came from
    recent: tuple[RecentVersion, ...] = ()  # newest first, the latest included
    raw: Snapshot | None = None  # that body itself, when `pipeline.needs` asked for it

    @property
    def mark(self) -> tuple[int | None, int, bool]:
        """What another writer of the watch would have changed since this was read:
        its latest version, its failure count and whether a health alert is out. The
        store refuses a check whose history no longer has this mark (`Conflict`)."""
        latest = self.latest.id if self.latest is not None else None
        return latest, self.state.consecutive_failures, self.state.health_alerted


@dataclass(frozen=True)
class AlertRecord:
    """An alert to write with its deliveries: one per (route, destination)."""

    watch_id: str
    kind: AlertKind
    title: str
    message: str  # the structured message as JSON (messages.Message.to_json)
    jurisdictions: tuple[str, ...] = ()
    destinations: tuple[tuple[str, str, str], ...] = ()  # (route, destination_id, redacted url)


@dataclass(frozen=True)
class Delivery:
    """A delivery that is due, with the alert it carries."""

    id: int
    alert_id: int
    watch_id: str
    route: str
    destination: str
    label: str
    attempts: int
    created_at: datetime
    title: str
    message: str
    kind: AlertKind = AlertKind.CHANGE
    parts_sent: int = 0  # parts of a split message an earlier attempt delivered


@dataclass(frozen=True)
class StoredFinding:
    """A finding read back from the store, with the version it belongs to."""

    id: int
    version_id: int
    watch_id: str
    finding: Finding


@dataclass(frozen=True)
class CheckRecord:
    """Everything one check writes, applied in a single transaction."""

    watch_id: str
    started_at: datetime
    elapsed: float
    outcome: Outcome
    snapshot: Snapshot | None = None
    document: Document | None = None
    version_kind: VersionKind | None = None  # when the check records a new version
    rules_hash: str = ""
    failure_kind: FailureKind | None = None
    message: str | None = None
    validators: Validators | None = None
    full_fetch: bool = False
    technical: bool = False
    findings: tuple[Finding, ...] = ()
    note: str | None = None
    alerts: tuple[AlertRecord, ...] = ()
    health_alerted: bool | None = None  # set the watch's health-alert flag to this
    counted: bool = True  # False: a failure that is the monitor's own, not the watch's
    # what the blocks were read from (`extract.Extraction`): stored with the version
    # written, or, unchanged, given to the latest version when it has none yet
    content_digest: str | None = None


def finding_data(finding: Finding) -> dict[str, Any]:
    """The JSON form of a finding (also what `check --json` prints)."""
    data = asdict(finding)
    if finding.change is None:
        data.pop("change")
    return data


@dataclass(frozen=True)
class CheckResult:
    """The value a check returns; everything else follows from it."""

    watch: str
    outcome: Outcome
    started_at: datetime
    elapsed: float
    version: int | None = None  # the number of the version this check recorded
    previous_version: int | None = None
    sha256: str | None = None
    blocks: int | None = None
    failure: FailureKind | None = None
    message: str | None = None
    technical: bool = False
    consecutive_failures: int = 0
    findings: tuple[Finding, ...] = ()
    note: str | None = None
    alerts: tuple[str, ...] = ()  # titles of the alerts this check raised

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "type": "check",
            "watch": self.watch,
            "outcome": self.outcome.value,
            "at": self.started_at.isoformat(),
            "elapsed": round(self.elapsed, 3),
        }
        optional = {
            "version": self.version,
            "previous_version": self.previous_version,
            "sha256": self.sha256,
            "blocks": self.blocks,
            "failure": self.failure.value if self.failure else None,
            "message": self.message,
            "consecutive_failures": self.consecutive_failures or None,
            "findings": len(self.findings) or None,
            "alerts": list(self.alerts) or None,
            "note": self.note,
        }
        data |= {k: v for k, v in optional.items() if v is not None}
        if self.technical:
            data["technical"] = True
        return data

    def finding_lines(self) -> list[dict[str, object]]:
        """One JSON object per finding, per the DESIGN.md contract."""
        lines = []
        for finding in self.findings:
            change = finding.change
            line: dict[str, object] = {
                "type": "finding",
                "watch": self.watch,
                "version": self.version,
                "jurisdiction": finding.jurisdiction,
                "kind": finding.kind,
                "change": change.kind if change else None,
                "before": change.before if change else None,
                "after": change.after if change else None,
                "section": list(change.path) if change else [],
            }
            data = finding_data(finding)
            line |= {k: data[k] for k in ("where", "terms", "cells", "note") if data[k]}
            if change and change.segments:
                line["segments"] = [list(s) for s in change.segments]
            lines.append(line)
        return lines
