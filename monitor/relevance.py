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
from collections import Counter
from collections.abc import Iterable

from monitor.jurisdictions import Watching
from monitor.model import CellDelta, Change, ChangeKind, Document, Finding, FindingKind

_BOUNDS = ("<", ">", "\u2264", "\u2265", "~", "\u2248")  # < > ≤ ≥ ~ ≈
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
        if change.kind == ChangeKind.MOVED:
            findings.extend(_moved_findings(change, matcher))
        else:
            findings.extend(_change_findings(change, before, after, matcher, about))
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
    change: Change, before: Document, after: Document, matcher: Watching, about: str | None
) -> list[Finding]:
    cells = _row_cells(change, before, after)
    in_text = _merge(_names(matcher, change.before), _names(matcher, change.after))
    findings = [_text_finding(change, jid, terms, cells) for jid, terms in in_text.items()]
    headings = _merge(*(_names(matcher, h) for h in change.path_before + change.path_after))
    for jid, terms in headings.items():
        if jid not in in_text:
            findings.append(
                Finding(jid, FindingKind.SECTION_CHANGED, "heading", tuple(terms), change, cells)
            )
    if about is not None and about not in in_text and about not in headings:
        findings.append(Finding(about, FindingKind.PAGE_ABOUT, "page", (), change, cells))
    return findings


def _moved_findings(change: Change, matcher: Watching) -> list[Finding]:
    """Text that moved into or out of a section naming a jurisdiction changed what
    it says about that place ("requests are paused" leaving the Hong Kong section)."""
    old = _merge(*(_names(matcher, h) for h in change.path_before))
    new = _merge(*(_names(matcher, h) for h in change.path_after))
    moved = {j: t for j, t in _merge(old, new).items() if (j in old) != (j in new)}
    return [
        Finding(j, FindingKind.SECTION_CHANGED, "heading", tuple(t), change)
        for j, t in moved.items()
    ]


def _text_finding(
    change: Change, jid: str, terms: list[str], cells: tuple[CellDelta, ...]
) -> Finding:
    if change.block_kind == "row":
        return Finding(jid, FindingKind.TABLE_ROW, "row", tuple(terms), change, cells)
    kind = {
        ChangeKind.ADDED: FindingKind.SENTENCE_ADDED,
        ChangeKind.REMOVED: FindingKind.SENTENCE_REMOVED,
    }.get(change.kind, FindingKind.SENTENCE_MODIFIED)
    where = "heading" if change.block_kind == "heading" else "sentence"
    return Finding(jid, kind, where, tuple(terms), change)


def _row_cells(change: Change, before: Document, after: Document) -> tuple[CellDelta, ...]:
    """The changed cells of a table row, named by their column headers."""
    if change.block_kind != "row":
        return ()
    if change.index_after is not None:
        width = len(change.cells_after)
        columns = _columns(after, change.index_after, width)
    else:
        columns = _columns(before, change.index_before, len(change.cells_before))
    return _cell_deltas(change.cells_before, change.cells_after, columns)


def _columns(document: Document, index: int | None, width: int) -> tuple[str, ...]:
    """The header of the table a row belongs to: the one a data row carries, else the
    nearest row above it, in the same run of rows, that has as many cells and no
    number in them."""
    if index is None or index >= len(document):
        return ()
    if document[index].columns:
        return document[index].columns
    row = index - 1
    while row >= 0 and document[row].kind == "row":
        cells = document[row].cells
        if len(cells) == width and not any(_number(c) for c in cells if c):
            return cells
        row -= 1
    return ()


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


_GROUPED = re.compile(r"\d{1,3}(?:([.,\s'\u2019])\d{3})(?:\1\d{3})*")


def _number(cell: str) -> tuple[float, str] | None:
    """A cell's number and unit, reading both "1,019.5" and "1.019,5" (and "46,5 %").
    A bound ("<10", "> 1000", "~50") is no number: its delta would be made up."""
    if cell.lstrip().startswith(_BOUNDS):
        return None
    match = _NUMBER.match(cell.strip())
    if not match:
        return None
    digits, unit = match[1].strip(), match[2] or ""
    sign = "-" if digits.startswith("-") else ""
    digits = digits.lstrip("+-")
    if _GROUPED.fullmatch(digits):
        value = re.sub(r"\D", "", digits)  # 1.019 / 1,019 / 1 019: thousands
    elif "," in digits and "." in digits:
        decimal = max(digits.rfind(","), digits.rfind("."))
        value = re.sub(r"\D", "", digits[:decimal]) + "." + digits[decimal + 1 :]
    else:
        value = re.sub(r"\s", "", digits).replace(",", ".")
    try:
        return float(sign + value), unit
    except ValueError:
        return None


def _presence(before: Document, after: Document, matcher: Watching) -> list[Finding]:
    """A jurisdiction named on only one side of the comparison appeared or disappeared.

    Names are read block by block, as a change's are: a newline ends a name, and a
    language label in the next block ("(English)") is not this block's. So only the
    blocks found on one side only can make a name appear or disappear, and the blocks
    both sides share are read only when those name a place the others do not: a
    change on a page of 100 KB of text reads the changed blocks, not both pages."""
    old_texts, new_texts = _texts(before), _texts(after)
    old = _names_in((old_texts - new_texts).elements(), matcher)
    new = _names_in((new_texts - old_texts).elements(), matcher)
    if old.keys() == new.keys():
        return []
    shared = _names_in((old_texts & new_texts).elements(), matcher)
    findings = [
        Finding(j, FindingKind.APPEARED, "page", tuple(t))
        for j, t in new.items()
        if j not in old and j not in shared
    ]
    findings += [
        Finding(j, FindingKind.DISAPPEARED, "page", tuple(t))
        for j, t in old.items()
        if j not in new and j not in shared
    ]
    return findings


def _texts(document: Document) -> Counter[str]:
    """A document's block texts, counted: subtracting one side's from the other's
    leaves the blocks only that side has (a block more often there counts too), in
    reading order."""
    return Counter(b.text for b in document)


def _names_in(texts: Iterable[str], matcher: Watching) -> dict[str, list[str]]:
    return _merge(*(_names(matcher, text) for text in texts))
