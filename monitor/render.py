"""Render changes and findings for people: a terminal first.

Word-level edits are marked `[-removed-]{+added+}` (as `git diff --word-diff` does)
or, on a colour terminal, in red and green. Findings come first, because they are
why anyone reads the diff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.model import Change, Finding

RED, GREEN, BOLD, DIM, RESET = "\033[31m", "\033[32m", "\033[1m", "\033[2m", "\033[0m"
PATH_SEP = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "
SIGNS = {"added": "+", "removed": "-", "modified": "~", "moved": ">"}


@dataclass(frozen=True)
class Style:
    """How to mark edits: plain text markers, or ANSI colours."""

    color: bool = False

    def removed(self, text: str) -> str:
        return f"{RED}{text}{RESET}" if self.color else f"[-{text}-]"

    def added(self, text: str) -> str:
        return f"{GREEN}{text}{RESET}" if self.color else f"{{+{text}+}}"

    def strong(self, text: str) -> str:
        return f"{BOLD}{text}{RESET}" if self.color else text

    def dim(self, text: str) -> str:
        return f"{DIM}{text}{RESET}" if self.color else text


def inline(change: Change, style: Style) -> str:
    """The edit of a modified change as one line with the changed words marked."""
    parts = []
    for op, text in change.segments:
        if op == "-":
            parts.append(style.removed(text))
        elif op == "+":
            parts.append(style.added(text))
        else:
            parts.append(text)
    return "".join(parts)


def change_lines(change: Change, style: Style) -> list[str]:
    section = PATH_SEP.join(change.path) or "(top of page)"
    lines = [style.dim(f"{SIGNS.get(change.kind, '?')} {change.kind} in {section}")]
    if change.kind == "modified" and change.segments:
        lines.append(f"    {inline(change, style)}")
    elif change.kind == "moved":
        old = PATH_SEP.join(change.path_before) or "(top of page)"
        lines.append(f"    {change.after or change.before}  {style.dim(f'(from {old})')}")
    else:
        if change.before is not None:
            lines.append(f"    {style.removed(change.before)}")
        if change.after is not None:
            lines.append(f"    {style.added(change.after)}")
    return lines


def finding_lines(finding: Finding, style: Style) -> list[str]:
    terms = ", ".join(finding.terms)
    head = f"{finding.jurisdiction} · {finding.kind.replace('_', ' ')}"
    where = f" (named in the {finding.where}: {terms})" if terms else f" ({finding.where})"
    lines = [style.strong(head) + where]
    for cell in finding.cells:
        delta = f" ({cell.delta:+g})" if cell.delta is not None else ""
        lines.append(f"    {cell.column}: {cell.before} → {cell.after}{delta}")
    if finding.note:
        lines.append(f"    {finding.note}")
    return lines


def render_diff(
    title: str, changes: Sequence[Change], findings: Sequence[Finding], style: Style
) -> str:
    """The whole report of one comparison, findings first."""
    lines = [style.strong(title), ""]
    if findings:
        lines.append(f"{len(findings)} finding(s):")
        for finding in findings:
            lines.extend(finding_lines(finding, style))
        lines.append("")
    else:
        lines.extend(["No finding: nothing here concerns the watched jurisdictions.", ""])
    lines.append(f"{len(changes)} change(s):" if changes else "No change in the text.")
    for change in changes:
        lines.extend(change_lines(change, style))
    return "\n".join(lines) + "\n"
