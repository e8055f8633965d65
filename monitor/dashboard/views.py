"""What each dashboard page shows, read from the store and the watchlist.

Each function returns plain values for one template; nothing here knows HTTP. Page
text stays text: the templates escape it (Jinja2's autoescape), and the only markup
added to it is the marking of changed words and of jurisdiction names, done here as
(marked, text) pieces the templates wrap in `<del>`, `<ins>` and `<mark>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from monitor.config import Watch, Watchlist
from monitor.messages import KIND_LABELS, WHERE_LABELS
from monitor.model import Change, Finding, Outcome, StoredFinding, StoredVersion, WatchState
from monitor.pipeline import Matchers, compare_versions, version_pair
from monitor.render import PATH_SEP
from monitor.schedule import next_due
from monitor.store import AlertRow, CheckLogEntry, Store

STATUSES = ("ok", "failing", "never", "disabled")
RECENT_CHECKS = 20  # checks shown on a watch's page
PAGE_ALERTS = 100  # alerts on the alerts page and on a watch's page
PAGE_VERSIONS = 200  # versions on a watch's page, newest first
PAGE_WATCHES = 200  # watches on one page of the index


def safe_href(url: str | None) -> str | None:
    """A URL fit for an href: http(s) only, so page text never becomes `javascript:`."""
    if not url or urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return url


def status_of(watch: Watch, state: WatchState) -> str:
    """ok | failing | never | disabled: one word to filter and to read at a glance."""
    if not watch.enabled:
        return "disabled"
    if state.last_outcome is None:
        return "never"
    return "failing" if state.last_outcome is Outcome.FAILED else "ok"


@dataclass(frozen=True)
class WatchRow:
    """One line of the index."""

    watch: Watch
    state: WatchState
    status: str
    next_due: datetime | None
    last_finding: StoredFinding | None
    last_finding_at: datetime | None


@dataclass(frozen=True)
class Index:
    rows: tuple[WatchRow, ...]  # this page's
    platforms: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    chosen: dict[str, str]
    names: Mapping[str, str]
    matching: int = 0  # watches that match the filters, over every page
    page: int = 1
    pages: int = 1


def index(
    store: Store, watchlist: Watchlist, matchers: Matchers, chosen: dict[str, str], page: int = 1
) -> Index:
    """The watches of the watchlist with their state, filtered by what `chosen` asks,
    PAGE_WATCHES to a page (two queries, whatever the page)."""
    states = {s.watch_id: s for s in store.states()}
    newest = store.newest_findings()
    rows = []
    for watch in watchlist.watches:
        state = states.get(watch.id, WatchState(watch.id))
        found = newest.get(watch.id)
        row = WatchRow(
            watch,
            state,
            status_of(watch, state),
            next_due(watch, state),
            found[0] if found else None,
            found[1] if found else None,
        )
        if _wanted(row, chosen):
            rows.append(row)
    pages = max(1, -(-len(rows) // PAGE_WATCHES))
    page = min(max(page, 1), pages)
    return Index(
        tuple(rows[(page - 1) * PAGE_WATCHES : page * PAGE_WATCHES]),
        tuple(sorted({w.platform for w in watchlist.watches})),
        tuple(sorted({j for w in watchlist.watches for j in w.jurisdictions})),
        chosen,
        matchers.names,
        len(rows),
        page,
        pages,
    )


def _wanted(row: WatchRow, chosen: dict[str, str]) -> bool:
    return (
        chosen.get("platform", "") in ("", row.watch.platform)
        and chosen.get("status", "") in ("", row.status)
        and chosen.get("jurisdiction", "") in ("", *row.watch.jurisdictions)
    )


@dataclass(frozen=True)
class VersionRow:
    version: StoredVersion
    findings: tuple[Finding, ...]
    previous: int | None  # the version before it, which its diff compares with


@dataclass(frozen=True)
class WatchPage:
    watch_id: str
    watch: Watch | None  # None: no longer in the watchlist, its history is still shown
    state: WatchState
    status: str
    next_due: datetime | None
    versions: tuple[VersionRow, ...]
    checks: tuple[CheckLogEntry, ...]
    alerts: tuple[AlertRow, ...]
    names: Mapping[str, str]


def watch_page(
    store: Store, watchlist: Watchlist, matchers: Matchers, watch_id: str
) -> WatchPage | None:
    """A watch's timeline (newest first), or None when neither watchlist nor store knows it."""
    watch = next((w for w in watchlist.watches if w.id == watch_id), None)
    state = store.state(watch_id)
    if watch is None and state.last_check_at is None:
        return None
    versions = store.versions(watch_id)
    found: dict[int, list[Finding]] = {}
    for stored in store.findings(watch_id=watch_id):
        found.setdefault(stored.version_id, []).append(stored.finding)
    rows = [
        VersionRow(v, tuple(found.get(v.id, ())), versions[i - 1].number if i else None)
        for i, v in enumerate(versions)
    ]
    return WatchPage(
        watch_id,
        watch,
        state,
        status_of(watch, state) if watch else "removed",
        next_due(watch, state) if watch else None,
        tuple(reversed(rows[-PAGE_VERSIONS:])),
        tuple(store.check_log(watch_id, RECENT_CHECKS)),
        tuple(store.alerts(limit=PAGE_ALERTS, watch_id=watch_id)),
        matchers.names,
    )


Pieces = tuple[tuple[bool, str], ...]  # (is a jurisdiction's name, text)


@dataclass(frozen=True)
class Side:
    """One side of a change (before or after): its spans, each split into pieces."""

    spans: tuple[tuple[str, Pieces], ...]  # op: "=" kept, "-" removed, "+" added


@dataclass(frozen=True)
class ChangeView:
    kind: str
    section: str
    section_before: str
    before: Side | None
    after: Side | None
    inline: Side | None  # the edit as one line (modified changes)


@dataclass(frozen=True)
class FindingView:
    jurisdiction: str
    name: str
    label: str
    where: str
    terms: tuple[str, ...]
    change: ChangeView | None
    finding: Finding


@dataclass(frozen=True)
class Proof:
    version: StoredVersion
    sha256: str
    fetched_at: datetime
    final_url: str
    href: str | None
    status: int


@dataclass(frozen=True)
class DiffPage:
    watch_id: str
    watch: Watch | None
    old: Proof
    new: Proof
    findings: tuple[FindingView, ...]
    changes: tuple[ChangeView, ...]


def diff_page(
    store: Store,
    watchlist: Watchlist,
    matchers: Matchers,
    watch_id: str,
    asked: tuple[int | None, int | None],
) -> DiffPage | None:
    """Two versions compared as `monitor diff` compares them, with their proof.
    None when the watch has no such versions; a LookupError says which is missing."""
    versions = store.versions(watch_id)
    if not versions:
        return None
    old, new = version_pair(versions, watch_id, *asked)
    found = compare_versions(watchlist, watch_id, old.document, new.document, matchers)
    names = matchers.names
    marks = _pattern(t for f in found.findings for t in f.terms)
    return DiffPage(
        watch_id,
        next((w for w in watchlist.watches if w.id == watch_id), None),
        _proof(store, old),
        _proof(store, new),
        tuple(_finding_view(f, names, marks) for f in found.findings),
        tuple(change_view(c, marks) for c in found.changes),
    )


def _proof(store: Store, version: StoredVersion) -> Proof:
    snap = store.snapshot(version.snapshot_id)
    return Proof(
        version,
        snap.sha256,
        snap.fetched_at,
        snap.final_url,
        safe_href(snap.final_url),
        snap.status,
    )


def _finding_view(
    finding: Finding, names: Mapping[str, str], marks: re.Pattern[str] | None
) -> FindingView:
    return FindingView(
        finding.jurisdiction,
        names.get(finding.jurisdiction, finding.jurisdiction),
        KIND_LABELS.get(finding.kind, str(finding.kind)),
        WHERE_LABELS.get(finding.where, finding.where),
        finding.terms,
        change_view(finding.change, marks) if finding.change else None,
        finding,
    )


def change_view(change: Change, marks: re.Pattern[str] | None) -> ChangeView:
    """A change as both sides, changed words marked, jurisdiction names as pieces."""
    segments = change.segments
    before = after = inline = None
    if segments:
        before = _side(segments, "=-", marks)
        after = _side(segments, "=+", marks)
        inline = _side(segments, "=-+", marks)
    else:
        if change.before is not None:
            before = Side((("-" if change.kind != "moved" else "=", pieces(change.before, marks)),))
        if change.after is not None:
            after = Side((("+" if change.kind != "moved" else "=", pieces(change.after, marks)),))
    return ChangeView(
        str(change.kind),
        PATH_SEP.join(change.path) or "(top of page)",
        PATH_SEP.join(change.path_before),
        before,
        after,
        inline,
    )


def _side(segments: Iterable[tuple[str, str]], ops: str, marks: re.Pattern[str] | None) -> Side:
    """The segments of `ops`, each edit's edge spaces left outside its marking."""
    spans: list[tuple[str, Pieces]] = []
    for op, text in segments:
        if op not in ops:
            continue
        core = text.strip()
        if op == "=" or not core:
            spans.append(("=", pieces(text, marks)))
            continue
        lead, tail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
        spans += [("=", ((False, lead),)), (op, pieces(core, marks)), ("=", ((False, tail),))]
    return Side(tuple(spans))


def _pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)


def pieces(text: str, marks: re.Pattern[str] | None) -> Pieces:
    """`text` split where a jurisdiction's name occurs: (True, name) pieces are marked."""
    if marks is None:
        return ((False, text),)
    out: list[tuple[bool, str]] = []
    at = 0
    for m in marks.finditer(text):
        if m.start() > at:
            out.append((False, text[at : m.start()]))
        out.append((True, m.group()))
        at = m.end()
    if at < len(text):
        out.append((False, text[at:]))
    return tuple(out)


def alerts(store: Store, limit: int = PAGE_ALERTS) -> Sequence[AlertRow]:
    return store.alerts(limit=limit)
