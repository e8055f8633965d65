"""Relevance: which changes concern a watched jurisdiction, and the evidence why.

A change concerns a jurisdiction when
- its sentence names it, before or after the edit (the words that changed are in the
  change's segments), including a sentence that still names it but changed elsewhere;
- or a heading above it names it (a change inside the Hong Kong section);
- or the whole page is declared `about` it;
- or it is a table row whose header names it: then each changed cell is reported
  with the column it belongs to and, for numbers, the delta (202 → 0; 46 % → 0 %).
Separately, a jurisdiction's first appearance on the page, or its disappearance, is a
finding of its own. Moves are not wording changes and concern nobody.

Pure: no I/O, no clock; the matcher is built once by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from monitor.jurisdictions import Watching
from monitor.model import CellDelta, Change, Document, Finding

_NUMBER = re.compile(r"^[^\d\-+]*([-+]?\d[\d,.\s]*)\s*(%|‰)?[^\d]*$")


def assess(
    before: Document,
    after: Document,
    changes: Iterable[Change],
    matcher: Watching,
    *,
    about: str | None = None,
) -> list[Finding]:
    """Findings of one comparison, in reading order, presence findings last."""
    findings: list[Finding] = []
    for change in changes:
        if change.kind != "moved":
            findings.extend(_change_findings(change, after, matcher, about))
    findings.extend(_presence(before, after, matcher))
    return findings


def _names(matcher: Watching, text: str | None) -> dict[str, list[str]]:
    """Jurisdiction id -> the words that named it, in order, without repeats."""
    found: dict[str, list[str]] = {}
    for match in matcher.find(text or ""):
        terms = found.setdefault(match.jurisdiction, [])
        if match.term not in terms:
            terms.append(match.term)
    return found


def _merge(*sides: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for side in sides:
        for jid, terms in side.items():
            merged.setdefault(jid, []).extend(t for t in terms if t not in merged[jid])
    return merged


def _change_findings(
    change: Change, after: Document, matcher: Watching, about: str | None
) -> list[Finding]:
    in_text = _merge(_names(matcher, change.before), _names(matcher, change.after))
    findings = [_text_finding(change, jid, terms, after) for jid, terms in in_text.items()]
    headings = _merge(*(_names(matcher, h) for h in change.path_before + change.path_after))
    for jid, terms in headings.items():
        if jid not in in_text:
            findings.append(Finding(jid, "section_changed", "heading", tuple(terms), change))
    if about is not None and about not in in_text and about not in headings:
        findings.append(Finding(about, "page_about", "page", (), change))
    return findings


def _text_finding(change: Change, jid: str, terms: list[str], after: Document) -> Finding:
    if change.block_kind == "row":
        columns = _columns(after, change.index_after)
        cells = _cell_deltas(change.cells_before, change.cells_after, columns)
        return Finding(jid, "table_row", "row", tuple(terms), change, cells)
    kind = {"added": "sentence_added", "removed": "sentence_removed"}.get(
        change.kind, "sentence_modified"
    )
    return Finding(jid, kind, "sentence", tuple(terms), change)


def _columns(document: Document, index: int | None) -> tuple[str, ...]:
    """The header cells of the table a row belongs to: the first row of its run."""
    if index is None or index >= len(document):
        return ()
    start = index
    while start > 0 and document[start - 1].kind == "row":
        start -= 1
    return document[start].cells if start != index else ()


def _cell_deltas(
    before: tuple[str, ...], after: tuple[str, ...], columns: tuple[str, ...]
) -> tuple[CellDelta, ...]:
    deltas = []
    for i in range(max(len(before), len(after))):
        old = before[i] if i < len(before) else ""
        new = after[i] if i < len(after) else ""
        if old != new:
            column = columns[i] if i < len(columns) and columns[i] else f"#{i + 1}"
            deltas.append(CellDelta(column, old, new, number_delta(old, new)))
    return tuple(deltas)


def number_delta(before: str, after: str) -> float | None:
    """after - before when both cells hold one number (with the same unit), else None."""
    a, b = _number(before), _number(after)
    if a is None or b is None or a[1] != b[1]:
        return None
    return round(b[0] - a[0], 6)


def _number(cell: str) -> tuple[float, str] | None:
    match = _NUMBER.match(cell.strip())
    if not match:
        return None
    digits = re.sub(r"[,\s]", "", match[1])
    try:
        return float(digits), match[2] or ""
    except ValueError:
        return None


def _presence(before: Document, after: Document, matcher: Watching) -> list[Finding]:
    """A jurisdiction named on only one side of the comparison appeared or disappeared."""
    old, new = _page_names(before, matcher), _page_names(after, matcher)
    findings = [Finding(j, "appeared", "page", tuple(t)) for j, t in new.items() if j not in old]
    findings += [
        Finding(j, "disappeared", "page", tuple(t)) for j, t in old.items() if j not in new
    ]
    return findings


def _page_names(document: Document, matcher: Watching) -> dict[str, list[str]]:
    return _names(matcher, "\n".join(b.text for b in document))
