"""The pure middle of a check: what a fetched response means for a watch.

    response ─▶ extract ─▶ version ─▶ detect (compare ─▶ assess) ─▶ alerts ─▶ CheckRecord

No I/O and no clock. The shell (`monitor.check`) fetches, reads the watch's `History`
from the store in one go, reads new bytes into blocks (`read_new`), asks the store for
what comparing them `needs` (the latest version's document, only when their content
changed), calls `evaluate`, and hands the `CheckRecord` it returns to the store, which
writes it in one transaction. `detect` is the one detection step:
checks, `monitor diff` and the golden tests all call it.

Rules that keep a failure from ever looking like a change:
- the first version of a watch is a baseline (`new`), never a change;
- a fetch or extraction failure is a failed check, counted in the watch's
  consecutive failures, and never becomes the latest version;
- a response that lost most of its text and looks like an error page is a failure,
  and so is a page that shrank and stops before the `</html>` its last version had;
- changed extraction rules re-extract the stored raw body into a silent
  (`technical`) version: editing the watchlist never pages anyone;
- a page flipping back to one of its recent states is a revert, alerted once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, TypeVar

from monitor import formats
from monitor.alerting import decide
from monitor.config import Route, Watch, Watchlist
from monitor.errors import ExtractError, FailureKind
from monitor.extract import Extraction, extract, extract_unless, markdown_document
from monitor.fetch import asks_for_javascript
from monitor.jurisdictions import ExtraSpec, Jurisdiction, Watching, catalog, extend, matcher_for
from monitor.model import (
    Change,
    CheckRecord,
    Document,
    ExtractRules,
    FetchRequest,
    Finding,
    Format,
    History,
    NotModified,
    Outcome,
    RecentVersion,
    Snapshot,
    StoredVersion,
    Validators,
    VersionKind,
    document_hash,
)
from monitor.relevance import assess
from monitor.text import expect_texts

LOST_SHARE = 0.5  # text shrinking below this share of the last version is suspicious
MAX_BYTES = FetchRequest.max_bytes  # the size cap when a caller has none of its own
REVERT_WINDOW = 10  # versions back in which a page returning to a state is a revert
_HTML_END = re.compile(r"</html\b", re.IGNORECASE)
_HTML_END_BYTES = re.compile(rb"</html\b", re.IGNORECASE)  # no decoding on the hot path
_ERROR_WORDS = re.compile(
    r"\b(error|not found|unavailable|something went wrong|try again|access denied|"
    r"forbidden|temporarily|maintenance)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Failure:
    """A check that failed for a classified reason, as a value."""

    kind: FailureKind
    message: str
    snapshot: Snapshot | None = None
    counted: bool = True  # False: the monitor's own outage, not the watch's


Fetched = Snapshot | NotModified | Failure


@dataclass(frozen=True)
class Detection:
    """What changed between two versions, and which of it concerns a jurisdiction."""

    changes: tuple[Change, ...]
    findings: tuple[Finding, ...]


class Matchers:
    """Jurisdiction matchers, built once per distinct set of watched jurisdictions.

    The catalog of names is read when a matcher or a name is first asked for: a pass
    over pages that did not change never loads it."""

    def __init__(self, watchlist: Watchlist | None = None) -> None:
        self._extra = {
            jid: ExtraSpec(spec.name, tuple(spec.terms), tuple(spec.drop), tuple(spec.drop_kinds))
            for jid, spec in (watchlist.jurisdictions if watchlist else {}).items()
        }
        self.names: Mapping[str, str] = _Names(self)
        self._cache: dict[tuple[str, ...], Watching] = {}

    @functools.cached_property
    def jurisdictions(self) -> dict[str, Jurisdiction]:
        return extend(catalog(), self._extra)

    def for_watch(self, watch: Watch) -> Watching:
        return self.for_ids((*watch.jurisdictions, *([watch.about] if watch.about else [])))

    def for_ids(self, ids: Iterable[str]) -> Watching:
        key = tuple(sorted(set(ids)))
        if key not in self._cache:
            self._cache[key] = matcher_for(key, self.jurisdictions)
        return self._cache[key]


class _Names(Mapping[str, str]):
    """Each jurisdiction's display name by id, read from the catalog on first use."""

    def __init__(self, matchers: Matchers) -> None:
        self._matchers = matchers

    @functools.cached_property
    def _names(self) -> dict[str, str]:
        return {jid: place.name for jid, place in self._matchers.jurisdictions.items()}

    def __getitem__(self, jid: str) -> str:
        return self._names[jid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass(frozen=True)
class Setting:
    """What a check is evaluated against besides the watch and its history."""

    matchers: Matchers = field(default_factory=Matchers)
    routes: Mapping[str, Route] = field(default_factory=dict)
    destination_key: bytes = b""  # the store's key of destination ids


class _Failed(Exception):
    """Internal: evaluation stopped on a classified failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def detect(before: Document, after: Document, matcher: Watching, about: str | None) -> Detection:
    """The one detection step: the changes from `before` to `after`, and the findings."""
    from monitor.diff import compare  # its regexes compile in 30 ms: changed pages only

    changes = compare(before, after)
    findings = assess(before, after, changes, matcher, about=about)
    return Detection(tuple(changes), tuple(findings))


def compare_versions(
    watchlist: Watchlist,
    watch_id: str,
    before: Document,
    after: Document,
    matchers: Matchers | None = None,
) -> Detection:
    """`detect` between two stored versions of a watch, with its jurisdictions (the
    watchlist's defaults for a watch no longer listed): `monitor diff` and the dashboard
    (which keeps its `Matchers` from one request to the next)."""
    watch = next((w for w in watchlist.watches if w.id == watch_id), None)
    matchers = matchers or Matchers(watchlist)
    matcher = (
        matchers.for_watch(watch) if watch else matchers.for_ids(watchlist.defaults.jurisdictions)
    )
    return detect(before, after, matcher, watch.about if watch else None)


def version_pair(
    versions: Sequence[StoredVersion], watch_id: str, older: int | None, newer: int | None
) -> tuple[StoredVersion, StoredVersion]:
    """The (older, newer) versions a diff compares, by the watch's version numbers:
    the ones asked for, else `newer` (or the latest) and the version before it.
    A LookupError says what is missing (`monitor diff` and the dashboard)."""
    new = numbered(versions, watch_id, newer)
    if older:
        return numbered(versions, watch_id, older), new
    earlier = [v for v in versions if v.number < new.number]
    if not earlier:
        raise LookupError(f"{watch_id!r} has no version before {new.number} to compare with")
    return earlier[-1], new


class _Numbered(Protocol):
    @property
    def number(self) -> int: ...


_V = TypeVar("_V", bound=_Numbered)


def numbered(versions: Sequence[_V], watch_id: str, number: int | None) -> _V:
    """A watch's version (stored, or its reference) by its number, or its latest; a
    LookupError when it has none."""
    if number is None and versions:
        return versions[-1]
    for version in versions:
        if version.number == number:
            return version
    raise LookupError(f"no version {number} of {watch_id!r} (see monitor history {watch_id})")


@dataclass(frozen=True)
class Needs:
    """What evaluating a response may need of the store besides the `History` read
    before the fetch (`Store.complete` reads it)."""

    document: bool = False  # the latest version's document, to compare with
    raw: bool = False  # the raw body the latest version came from

    def __bool__(self) -> bool:
        return self.document or self.raw


def needs(
    fetched: Fetched, rules_hash: str, history: History, read: Reading | None = None
) -> Needs:
    """What evaluating `fetched` may need besides `history`; `read`: what `read_new`
    made of it, when it was asked first.

    A 304, a failure and the same bytes again need nothing: the check is decided on
    the latest version's hashes; so do new bytes whose content has the latest
    version's digest (only their noise changed), or that could not be read. Other
    new bytes may be a change, compared with the latest version's document; those
    without `</html>` may have been cut off, which the body the latest version came
    from tells. A 304 after the watch's rules changed re-extracts that body. (A site
    that never closes its `</html>` pays for one body read per check whose content
    changed.)
    """
    version = history.latest
    if version is None or isinstance(fetched, Failure):
        return Needs()
    if isinstance(fetched, NotModified):
        return Needs(raw=version.rules_hash != rules_hash)
    if version.rules_hash != rules_hash or fetched.sha256 == history.state.last_body_sha256:
        return Needs()
    if read is not None and not new_content(read):
        return Needs()
    return Needs(document=True, raw=not _HTML_END_BYTES.search(fetched.body))


Reading = Extraction | Failure  # what `read_new` makes of a response's bytes


def new_content(read: Reading) -> bool:
    """Whether `read_new` read blocks to compare: not the same bytes or content again,
    nor bytes that could not be read."""
    return not isinstance(read, Failure) and read.document is not None


def read_new(watch: Watch, history: History, fetched: Snapshot) -> Reading:
    """The first half of evaluating a response: its bytes read into blocks, before
    the store is asked for the latest version's document (`needs`), which a page
    whose content has the latest version's digest never needs. The same bytes again,
    or the same content, give no document; bytes that cannot be read, a Failure."""
    rules = watch.rules.digest()
    previous = history.latest
    same_rules = previous is not None and previous.rules_hash == rules
    if same_rules and fetched.sha256 == history.state.last_body_sha256:
        return Extraction(None, None)  # the same bytes: no need to extract them again
    known = previous.content_digest if previous is not None and same_rules else None
    try:
        return _extract(watch, fetched, known)
    except _Failed as failed:
        return failed.failure


def evaluate(
    watch: Watch,
    history: History,
    fetched: Fetched,
    *,
    started: datetime,
    setting: Setting,
    read: Reading | None = None,
) -> CheckRecord:
    """The record of one check: outcome, version to write, findings and alerts;
    `read`: `read_new`'s answer for `fetched`, when the caller asked it first."""
    try:
        record = _interpret(watch, history, fetched, started, setting, read)
    except _Failed as failed:
        record = _failed(watch, started, failed.failure)
    decision = decide(
        watch,
        history.state,
        record,
        previous=history.latest,
        previous_sha=history.latest_sha,
        routes=setting.routes,
        names=setting.matchers.names,
        key=setting.destination_key,
    )
    return replace(record, alerts=decision.alerts, health_alerted=decision.health_alerted)


def _interpret(
    watch: Watch,
    history: History,
    fetched: Fetched,
    started: datetime,
    setting: Setting,
    read: Reading | None,
) -> CheckRecord:
    if isinstance(fetched, Failure):
        raise _Failed(fetched)
    rules = watch.rules.digest()
    if isinstance(fetched, NotModified):
        return _not_modified(watch, history, started, rules)
    read_now = read_new(watch, history, fetched) if read is None else read
    if isinstance(read_now, Failure):
        raise _Failed(read_now)
    base = CheckRecord(
        watch.id,
        started,
        0.0,
        Outcome.UNCHANGED,
        snapshot=fetched,
        rules_hash=rules,
        validators=_validators(fetched),
    )
    if read_now.document is None:
        return base  # the same bytes or content: the same blocks, not walked again
    previous, document = history.latest, read_now.document
    record = _compare(previous, document, fetched, replace(base, content_digest=read_now.digest))
    if record.version_kind != VersionKind.CHANGE or previous is None:
        return record
    _refuse_cut_off(fetched, document, previous, history.raw)
    return _relevant(watch, previous, history.recent, record, setting)


def _validators(snapshot: Snapshot) -> Validators:
    """What the next request may send to learn that nothing changed. None for a
    rendered page: its document can stay the same (and answer 304) while the data
    its scripts load changes."""
    if snapshot.rendered:
        return Validators()
    return Validators(snapshot.header("etag"), snapshot.header("last-modified"))


def _failed(watch: Watch, started: datetime, failure: Failure) -> CheckRecord:
    return CheckRecord(
        watch.id,
        started,
        0.0,
        Outcome.FAILED,
        snapshot=failure.snapshot,
        failure_kind=failure.kind,
        message=failure.message,
        counted=failure.counted,
    )


def _not_modified(watch: Watch, history: History, started: datetime, rules: str) -> CheckRecord:
    base = CheckRecord(watch.id, started, 0.0, Outcome.NOT_MODIFIED, rules_hash=rules)
    previous, raw = history.latest, history.raw
    if previous is None or previous.rules_hash == rules or raw is None:
        return base
    extracted = _extract(watch, raw, known=None)
    return replace(
        base,
        snapshot=raw,
        document=extracted.document,
        content_digest=extracted.digest,
        version_kind=VersionKind.TECHNICAL,
        technical=True,
    )


def read(snapshot: Snapshot, rules: ExtractRules, *, max_bytes: int = MAX_BYTES) -> Document:
    """A snapshot's blocks, read by the extractor its format calls for (`formats.decide`:
    content type, magic bytes, the watch's `format:`); raises ExtractError. The one
    place that picks the extractor: checks and `monitor preview`. `max_bytes` caps
    what a ZIP member may inflate to."""
    return _read(snapshot, rules, _format(snapshot, rules), max_bytes)


def read_unless(
    snapshot: Snapshot, rules: ExtractRules, known: str | None, *, max_bytes: int = MAX_BYTES
) -> Extraction:
    """`read`, with the digest of an HTML page's content; a page whose content has the
    digest `known` is not walked again (`extract.extract_unless`): no document."""
    fmt = _format(snapshot, rules)
    if fmt in _NOT_HTML:
        return Extraction(None, _read(snapshot, rules, fmt, max_bytes))
    return extract_unless(snapshot.text(), rules, known)


def _format(snapshot: Snapshot, rules: ExtractRules) -> Format | None:
    head = snapshot.body[: formats.SNIFF_BYTES]
    url = snapshot.final_url
    return formats.decide(snapshot.content_type, head, declared=rules.format, url=url)


def _read(snapshot: Snapshot, rules: ExtractRules, fmt: Format | None, max_bytes: int) -> Document:
    if fmt in _DATA:
        assert fmt is not None
        from monitor.tabular import tabulate  # jmespath and csv: data files only

        document = tabulate(
            snapshot.body, fmt, rules, encoding=snapshot.encoding, max_bytes=max_bytes
        )
        expect_texts(document, rules.expect_text)
        return document
    if fmt is Format.PDF:
        from monitor.pdf import pdf_document  # pdfplumber is loaded by the first PDF read

        return pdf_document(snapshot.body, rules)
    if fmt is Format.MARKDOWN:
        return markdown_document(snapshot.text(), rules)
    plain = fmt is Format.TEXT
    return extract(snapshot.text(), rules, content_type="text/plain" if plain else "text/html")


_DATA = frozenset({Format.CSV, Format.TSV, Format.JSON, Format.ZIP})
_NOT_HTML = _DATA | {Format.PDF, Format.MARKDOWN, Format.TEXT}


def _extract(watch: Watch, snapshot: Snapshot, known: str | None) -> Extraction:
    try:
        return read_unless(snapshot, watch.rules, known, max_bytes=watch.max_size)
    except ExtractError as exc:
        if exc.kind is FailureKind.EXTRACTION and asks_for_javascript(snapshot.body):
            message = f"{exc}: the page asks for JavaScript (a bot wall or an app shell)"
            raise _Failed(Failure(FailureKind.BLOCKED, message, snapshot)) from exc
        raise _Failed(Failure(exc.kind, str(exc), snapshot)) from exc


def _compare(
    previous: StoredVersion | None, document: Document, snapshot: Snapshot, base: CheckRecord
) -> CheckRecord:
    if previous is None:
        return replace(
            base, outcome=Outcome.NEW, document=document, version_kind=VersionKind.BASELINE
        )
    if previous.rules_hash != base.rules_hash:
        return replace(base, document=document, version_kind=VersionKind.TECHNICAL, technical=True)
    if document_hash(document) == previous.doc_hash:
        # The same blocks: this content's digest is the version's, if it has none yet
        # (written before digests were kept), so its next check is not walked.
        return base if previous.content_digest is None else replace(base, content_digest=None)
    if same_wording(previous.document, document):
        # Only how the page shows its words changed (full-width or typographic
        # punctuation): kept as evidence, never a change.
        return replace(base, document=document, version_kind=VersionKind.TECHNICAL, technical=True)
    if content_lost(previous.document, document, snapshot):
        message = (
            f"the page lost most of its text ({_size(document)} of {_size(previous.document)} "
            "characters left) and looks like an error page"
        )
        raise _Failed(Failure(FailureKind.CONTENT_LOST, message, snapshot))
    return replace(
        base, outcome=Outcome.CHANGED, document=document, version_kind=VersionKind.CHANGE
    )


def _refuse_cut_off(
    snapshot: Snapshot, document: Document, previous: StoredVersion, raw: Snapshot | None
) -> None:
    """A page that shrank and stops before the `</html>` its last version had was cut off.

    A server that dies half-way through rendering, or a proxy that times out mid-body,
    still frames the response correctly; without this, the missing half would be
    reported as removed text. (A redesign that merely drops the optional tag without
    losing text is still a change.)
    """
    if _size(document) >= _size(previous.document) or _HTML_END.search(snapshot.text()):
        return
    if raw is not None and _HTML_END.search(raw.text()):
        raise _Failed(
            Failure(
                FailureKind.TRANSIENT,
                "the page stops before its closing </html> tag, which its last version had: "
                "cut off in transit",
                snapshot,
            )
        )


def _relevant(
    watch: Watch,
    previous: StoredVersion,
    recent: tuple[RecentVersion, ...],
    record: CheckRecord,
    setting: Setting,
) -> CheckRecord:
    """Attach the findings of a change; a flip back to a recent state is a revert."""
    assert record.document is not None
    matcher = setting.matchers.for_watch(watch)
    found = detect(previous.document, record.document, matcher, watch.about).findings
    new_hash = document_hash(record.document)
    earlier = [v.number for v in recent[1:] if v.doc_hash == new_hash]
    if not earlier:
        return replace(record, findings=found)
    if any(v.kind == VersionKind.REVERT for v in recent):
        note = f"flapping: back to version {earlier[0]} again; not alerted"
        return replace(record, version_kind=VersionKind.REVERT, findings=(), note=note)
    note = f"revert: the page is back to its state of version {earlier[0]}"
    return replace(
        record,
        version_kind=VersionKind.REVERT,
        note=note,
        findings=tuple(replace(f, note=note) for f in found),
    )


def content_lost(before: Document, after: Document, snapshot: Snapshot) -> bool:
    """True when `after` is most likely an error page standing in for `before`.

    A real rewrite can shrink a page; an error page shrinks it *and* says so, or is
    served with an error status.
    """
    if _size(after) >= LOST_SHARE * _size(before):
        return False
    if snapshot.status >= 400:
        return True
    text = " ".join(b.text for b in after[:20])
    return len(text) < 2000 and _ERROR_WORDS.search(text) is not None


def same_wording(before: Document, after: Document) -> bool:
    """Whether two versions say the same words, however they show them."""
    return len(before) == len(after) and all(
        a.text == b.text and a.kind == b.kind and a.path == b.path and a.cells == b.cells
        for a, b in zip(before, after, strict=True)
    )


def _size(document: Document) -> int:
    return sum(len(b.text) for b in document)
