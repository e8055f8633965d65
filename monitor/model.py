"""Value types passed between pipeline stages.

Stages never import each other; they share only these frozen values, so each stage
can be tested on its own with plain data.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime


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


@dataclass(frozen=True)
class ExtractRules:
    """How to turn a page into text: the watch's select / remove / ignore."""

    select: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def digest(self) -> str:
        """A stable hash of the rules: a change of rules means re-extraction."""
        payload = json.dumps([self.select, self.remove, self.ignore], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Block:
    """One unit of extracted text with the headings above it.

    kind is one of: heading, paragraph, item, row, term, definition.
    For rows, `cells` holds the cell texts and `text` joins them with " | ".
    """

    kind: str
    text: str
    path: tuple[str, ...] = ()
    level: int = 0  # heading level 1-6 for headings, else 0
    cells: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"kind": self.kind, "text": self.text, "path": list(self.path)}
        if self.level:
            data["level"] = self.level
        if self.cells:
            data["cells"] = list(self.cells)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Block:
        path = data.get("path", [])
        cells = data.get("cells", [])
        level = data.get("level", 0)
        assert isinstance(path, list) and isinstance(cells, list) and isinstance(level, int)
        return cls(
            kind=str(data["kind"]),
            text=str(data["text"]),
            path=tuple(str(p) for p in path),
            level=level,
            cells=tuple(str(c) for c in cells),
        )


Document = tuple[Block, ...]


@functools.lru_cache(maxsize=32)
def document_json(document: Document) -> str:
    """Canonical JSON of a document: byte-identical for identical documents.

    Remembered for the last few documents: a check hashes, compares and stores the
    same document, and encoding a 600-block page costs more than looking it up."""
    return json.dumps([b.to_json() for b in document], ensure_ascii=False, separators=(",", ":"))


def document_hash(document: Document) -> str:
    return hashlib.sha256(document_json(document).encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    """One difference between two versions, at the finest useful grain.

    kind: added | removed | modified | moved.
    For prose the unit is a sentence; for table rows, headings, terms and short list
    items it is the whole block. `segments` is the word-level (characters for CJK)
    edit script of a modification: ("=", text) kept, ("-", text) removed, ("+", text)
    added, in reading order.
    """

    kind: str
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

    kind: sentence_added | sentence_removed | sentence_modified | section_changed |
          page_about | appeared | disappeared | table_row | revert
    where: sentence | heading | row | page  (where the jurisdiction's name was found)
    """

    jurisdiction: str
    kind: str
    where: str
    terms: tuple[str, ...]
    change: Change | None = None
    cells: tuple[CellDelta, ...] = ()
    note: str = ""
