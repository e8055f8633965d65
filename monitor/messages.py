"""Alerts as messages a journalist can act on from a phone.

One change alert per check of a watch groups its findings; health alerts (a watch
failing several checks in a row, and its recovery) are separate. A message is built
once as *parts* — a head (page, URL, time), one unit per finding, a foot (the proof) —
and rendered from them three ways:

- text: edits marked `[-removed-]{+added+}`, as `monitor diff` prints them;
- Markdown for chat: `~~removed~~` and `**added**`, page text backslash-escaped;
- HTML for e-mail: `<del>`/`<ins>`, every piece of text escaped, inline styles only.

Page text is untrusted and is escaped in every format. Because the parts are kept,
`fit` can split a long body for a service's size limit between findings, never
inside one, and shorten sentences (before escaping) only when one finding alone is
too long. Pure: no I/O, no clock.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from monitor.model import CellDelta, Change, Finding
from monitor.render import PATH_SEP, Style

FORMATS = ("text", "markdown", "html")
DOT = " \N{MIDDLE DOT} "
ARROW = " \N{RIGHTWARDS ARROW} "
DASH = " \N{EM DASH} "
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
MINUS = "\N{MINUS SIGN}"
TEXT_STYLE = Style(color=False)  # the markers of `monitor diff`, for consistency

KIND_LABELS = {
    "sentence_added": "sentence added",
    "sentence_removed": "sentence removed",
    "sentence_modified": "sentence modified",
    "section_changed": "section changed",
    "page_about": "page text changed",
    "appeared": "now named on the page",
    "disappeared": "no longer named on the page",
    "table_row": "table row changed",
    "revert": "reverted",
}
WHERE_LABELS = {
    "sentence": "named in the sentence",
    "heading": "named in the section heading",
    "row": "named in the table row",
    "page": "named on the page",
}
HINTS = {
    "blocked": "The site serves a bot wall or challenge page: try other headers "
    "(Accept-Language), a longer interval, or another URL of the same document.",
    "extraction": "The page changed its structure: fix `select`, or remove it to use the "
    "heuristics. Nothing was alerted as a deletion.",
    "content_lost": "The response lost most of its text and looks like an error page; "
    "it was not taken as a change. Check the page by hand.",
    "too_large": "Raise `max_size` if the page is legitimately this big.",
    "wrong_type": "The URL serves a PDF or another non-HTML type: watch the HTML page "
    "that links to it.",
    "blocked_by_policy": "The page or a redirect led to an address the network policy "
    "refuses (internal, link-local or cloud metadata); nothing from it was kept. If that "
    "address is meant, name it in `defaults.network.allow`.",
    "permanent": "The URL looks wrong (not found, gone, or no such host): check it.",
    "transient": "Timeouts, connection errors or server errors: usually passes by itself.",
}

Span = tuple[str, str]  # (op, text): "=" kept, "-" removed, "+" added, as Change.segments
# The version a check records gets its id from the store, after the alert is built: the
# alert holds a NEW_VERSION span, shown as "—" until `name_version` fills it in. Page text
# is only ever in "=", "-" and "+" spans, so it can never be mistaken for this slot.
NEW_VERSION = "#"
_UNFILLED = '["#",""]'  # an empty NEW_VERSION span as `Message.to_json` writes it


@dataclass(frozen=True)
class Subject:
    """What an alert is about: the watched page."""

    platform: str
    name: str
    url: str
    watch_id: str


@dataclass(frozen=True)
class Proof:
    """What proves a change: the check's time and the snapshots on either side."""

    at: datetime
    sha_before: str | None = None
    sha_after: str | None = None
    version_before: int | None = None
    version_after: int | None = None
    # When checks first and last saw the "before" text: the change happened after the
    # last of them and by `at`.
    before_seen: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Line:
    """One line of a part, in neutral form; renderers decide how it looks.

    style: lead (bold) | field (label: value) | quote (page text with edits) |
    link | note | code (hashes). `trim` marks page text `fit` may shorten.
    """

    style: str
    spans: tuple[Span, ...]
    label: str = ""
    trim: bool = False

    @property
    def plain(self) -> str:
        return "".join(_span_text(op, text) for op, text in self.spans)


@dataclass(frozen=True)
class Part:
    """A unit `fit` never splits: the head, one finding, or the foot."""

    role: str  # head | finding | detail | foot
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Message:
    """An alert rendered for every channel, with the parts it was rendered from.

    A Message rebuilt from stored strings alone (no parts) still fits: `fit` then
    splits between the rendered parts, and can only cut, not trim sentences.
    severity is an apprise notify type: info | success | warning | failure.
    """

    title: str
    text: str
    markdown: str
    html: str
    parts: tuple[Part, ...] = field(default=(), compare=False)
    severity: str = "info"

    def body(self, fmt: str) -> str:
        """The whole body in one format: "text", "markdown" or "html"."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        return {"text": self.text, "markdown": self.markdown, "html": self.html}[fmt]

    def to_json(self) -> str:
        """The message as JSON with its parts, for a store that wants `fit` to trim
        sentences (not only cut) when it delivers later. Renderings are not stored:
        `from_json` makes them again."""
        parts = [
            {"role": p.role, "lines": [_line_json(line) for line in p.lines]} for p in self.parts
        ]
        data = {"title": self.title, "severity": self.severity, "parts": parts}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Message:
        """A message `to_json` wrote, rendered again from its parts."""
        data = json.loads(text)
        parts = [
            Part(str(p["role"]), tuple(_json_line(line) for line in p["lines"]))
            for p in data["parts"]
        ]
        return build(str(data["title"]), parts, severity=str(data["severity"]))


def name_version(message_json: str, number: int) -> str:
    """A stored message (`Message.to_json`) naming the version its check recorded.

    The store calls this as it writes the version and the alert in one transaction;
    a message without the slot (a health alert, a note) is returned unchanged."""
    if _UNFILLED not in message_json:
        return message_json
    message = Message.from_json(message_json)
    filled = (
        Part(p.role, tuple(_fill_line(line, str(number)) for line in p.lines))
        for p in message.parts
    )
    return build(message.title, tuple(filled), severity=message.severity).to_json()


def _fill_line(line: Line, version: str) -> Line:
    spans = tuple((op, version if op == NEW_VERSION else text) for op, text in line.spans)
    return Line(line.style, spans, line.label, line.trim)


def _span_text(op: str, text: str) -> str:
    """A span's text; the new version's slot shows "—" until it is filled in."""
    return (text or "\N{EM DASH}") if op == NEW_VERSION else text


def _line_json(line: Line) -> dict[str, object]:
    spans = [[op, text] for op, text in line.spans]
    return {"style": line.style, "spans": spans, "label": line.label, "trim": line.trim}


def _json_line(data: dict[str, Any]) -> Line:
    spans = tuple((str(op), str(text)) for op, text in data["spans"])
    return Line(str(data["style"]), spans, str(data["label"]), bool(data["trim"]))


# ---------------------------------------------------------------- building messages


def change_message(
    subject: Subject,
    findings: Sequence[Finding],
    proof: Proof,
    *,
    jurisdiction_names: Mapping[str, str],
    limit: int | None = None,
) -> Message:
    """The one alert of a check: one entry per change (with every jurisdiction it
    concerns), the page, and the proof. Past `limit` entries, the rest are counted
    and the command that shows them all is given: a page rewritten whole makes one
    readable alert, not a thousand chat messages."""

    def name(code: str) -> str:
        return jurisdiction_names.get(code, code)

    grouped = entries(findings)
    shown = grouped if limit is None else grouped[:limit]
    title = f"{subject.platform}{DOT}{subject.name}{DOT}{_summary(grouped, name)}"
    parts = (
        _head(subject, proof.at),
        *(_entry_part(entry, name) for entry in shown),
        *([_more_part(subject, proof, len(grouped) - len(shown))] if shown != grouped else []),
        _proof_part(subject, proof),
    )
    return build(title, parts, severity="warning")


@dataclass(frozen=True)
class Entry:
    """What a reader counts as one change: the findings of one change (one per
    jurisdiction it concerns), or of the sentences of one paragraph added or removed
    together, or of one jurisdiction's appearance or disappearance on the page."""

    findings: tuple[Finding, ...]

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(dict.fromkeys(f.change for f in self.findings if f.change is not None))

    @property
    def jurisdictions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.jurisdiction for f in self.findings))

    @property
    def kind(self) -> str:
        """The most telling kind: what happened to the text, before where it stood."""
        kinds = [str(f.kind) for f in self.findings]
        told = [k for k in kinds if k not in _CONTEXT_KINDS]
        return (told or kinds)[0]


# Kinds that say where a change stood, not what it did to the text naming a place.
_CONTEXT_KINDS = frozenset({"section_changed", "page_about"})
_PLURAL_LABELS = {
    "sentence_added": "sentences added",
    "sentence_removed": "sentences removed",
    "section_changed": "sentences changed in the section",
    "page_about": "sentences changed",
}


def entries(findings: Sequence[Finding]) -> list[Entry]:
    """Findings grouped as a reader counts changes, in reading order."""
    groups: dict[object, list[Finding]] = {}
    for finding in findings:
        key = finding.change if finding.change is not None else str(finding.kind)
        groups.setdefault(key, []).append(finding)
    merged: list[list[Finding]] = []
    for group in groups.values():
        if merged and _same_paragraph(merged[-1][-1].change, group[0].change):
            merged[-1].extend(group)
        else:
            merged.append(group)
    return [Entry(tuple(group)) for group in merged]


def _same_paragraph(last: Change | None, this: Change | None) -> bool:
    """Two sentences added (or removed) together from the same block of prose."""
    if last is None or this is None or last.kind != this.kind:
        return False
    if this.kind == "added":
        index = (last.index_after, this.index_after)
    elif this.kind == "removed":
        index = (last.index_before, this.index_before)
    else:
        return False
    return index[0] is not None and index[0] == index[1] and this.block_kind not in _WHOLE


_WHOLE = frozenset({"row", "heading"})  # blocks diff never cuts into sentences


def health_message(
    subject: Subject,
    *,
    failing: bool,
    reason: str,
    message: str,
    failures: int,
    since: datetime | None,
    at: datetime,
) -> Message:
    """A watch failing `failures` checks in a row (with why), or its recovery."""
    label = _reason_label(reason)
    checks = f"{failures} check{'s' if failures != 1 else ''}"
    state = f"failing ({label}){DASH}{checks} in a row" if failing else "recovered"
    title = f"{subject.platform}{DOT}{subject.name}: {state}"
    if failing:
        lead = f"Failing: {label}{DASH}{checks} in a row"
    else:
        lead = f"Recovered after {failures} failed check{'s' if failures != 1 else ''} ({label})"
    lines = [Line("lead", _plain(lead))]
    if since is not None:
        lines.append(_field("Failing since" if failing else "Had failed since", _when(since)))
    if message:
        lines.append(Line("field", _plain(message), "Last error", True))
    if failing and reason in HINTS:
        lines.append(Line("note", _plain(HINTS[reason])))
    parts = (
        _head(subject, at),
        Part("detail", tuple(lines)),
        Part("foot", (_field("Watch", subject.watch_id),)),
    )
    return build(title, parts, severity="failure" if failing else "success")


def headless(message: Message) -> Message:
    """The message for a service without titles, whose headline (the title) leads the
    body: the head's first line (platform and page) would repeat it. A message rebuilt
    without its parts is returned as it is."""
    if not message.parts or message.parts[0].role != "head":
        return message
    head, *rest = message.parts
    if len(head.lines) < 2 or head.lines[0].style != "lead":
        return message
    trimmed = Part("head", head.lines[1:])
    return build(message.title, (trimmed, *rest), severity=message.severity)


def note_message(title: str, text: str, *, severity: str = "info") -> Message:
    """A message of one plain note: test alerts, undelivered-alert notices."""
    return build(title, [Part("head", (Line("note", (("=", text),)),))], severity=severity)


def build(title: str, parts: Sequence[Part], *, severity: str = "info") -> Message:
    """A message rendered from its parts in every format."""
    parts = tuple(parts)
    return Message(
        title=_clean(title),
        text=render(parts, "text"),
        markdown=render(parts, "markdown"),
        html=render(parts, "html"),
        parts=parts,
        severity=severity,
    )


def _summary(grouped: Sequence[Entry], name: Callable[[str], str]) -> str:
    """ "Hong Kong: sentence removed", "Hong Kong + China: 3 changes" …"""
    codes = dict.fromkeys(code for entry in grouped for code in entry.jurisdictions)
    where = names_line([name(code) for code in codes]) or "no jurisdiction"
    what = _entry_label(grouped[0]) if len(grouped) == 1 else f"{len(grouped)} changes"
    findings = [f for entry in grouped for f in entry.findings]
    if findings and all(f.note.startswith("revert") for f in findings):
        what += " (revert)"
    return f"{where}: {what}"


def names_line(names: Sequence[str], *, most: int = 3) -> str:
    """Places as a reader cannot misread them: "Hong Kong + China", never
    "Hong Kong, China" (which reads as one name); "+ 2 more" past `most`."""
    shown = " + ".join(names[:most])
    return shown + (f" + {len(names) - most} more" if len(names) > most else "")


def _entry_label(entry: Entry) -> str:
    count = len(entry.changes)
    if count > 1:
        return f"{count} {_PLURAL_LABELS.get(entry.kind, _kind_label(entry.kind))}"
    return _kind_label(entry.kind)


def _head(subject: Subject, at: datetime) -> Part:
    lines = (
        Line("lead", _plain(f"{subject.platform}{DOT}{subject.name}")),
        Line("link", _plain(subject.url)),
        _field("Checked", _when(at)),
    )
    return Part("head", lines)


def _entry_part(entry: Entry, name: Callable[[str], str]) -> Part:
    codes = entry.jurisdictions
    lines = [
        Line("lead", _plain(f"{names_line([name(c) for c in codes])}{DOT}{_entry_label(entry)}"))
    ]
    why = _why(entry, name)
    if why:
        lines.append(_field("Why", why))
    changes = entry.changes
    cells = next((f.cells for f in entry.findings if f.cells), ())
    if len(changes) == 1:
        lines.extend(_change_lines(changes[0], bool(cells)))
    elif changes:
        lines.extend(_paragraph_lines(changes))
    lines.extend(_cell_line(cell) for cell in cells)
    for note in dict.fromkeys(f.note for f in entry.findings if f.note):
        lines.append(Line("note", _plain(f"Note: {note}")))
    return Part("finding", tuple(lines))


def _why(entry: Entry, name: Callable[[str], str]) -> str:
    """Where each place was named and by which words; a place shown by a word that is
    not its name ("香港") gets its name beside it when the entry names several."""
    several = len(entry.jurisdictions) > 1
    reasons: dict[str, list[str]] = {}  # "named in the sentence: " -> what named each place
    for finding in entry.findings:
        if finding.terms:
            terms = ", ".join(finding.terms)
            label = name(finding.jurisdiction)
            shown = f"{terms} ({label})" if several and label not in finding.terms else terms
            lead = WHERE_LABELS.get(finding.where, finding.where) + ": "
        elif finding.kind == "page_about":
            lead, shown = "the page is about ", name(finding.jurisdiction)
        else:
            continue
        if shown not in reasons.setdefault(lead, []):
            reasons[lead].append(shown)
    return "; ".join(lead + ", ".join(shown) for lead, shown in reasons.items())


def _paragraph_lines(changes: Sequence[Change]) -> list[Line]:
    """Sentences added or removed together, quoted as the one passage they were."""
    first = changes[0]
    lines = [_field("Section", PATH_SEP.join(first.path))] if first.path else []
    if first.kind == "removed":
        text = " ".join(c.before or "" for c in changes)
        lines.append(Line("quote", (("-", text),), "Removed", True))
    else:
        text = " ".join(c.after or "" for c in changes)
        lines.append(Line("quote", (("+", text),), "Added", True))
    return lines


def _change_lines(change: Change, has_cells: bool) -> list[Line]:
    """Section, then the sentence before and after with the changed words marked."""
    lines = []
    if change.path:
        lines.append(_field("Section", PATH_SEP.join(change.path)))
    if change.kind == "modified" and change.segments:
        before = tuple(s for s in change.segments if s[0] in "=-")
        after = tuple(s for s in change.segments if s[0] in "=+")
        lines.append(Line("quote", before, "Before", True))
        lines.append(Line("quote", after, "After", True))
    elif has_cells:
        row = change.after if change.after is not None else change.before
        lines.append(Line("quote", _plain(row or ""), "Row", True))
    else:
        if change.before is not None:
            label = "Removed" if change.after is None else "Before"
            lines.append(Line("quote", (("-", change.before),), label, True))
        if change.after is not None:
            label = "Added" if change.before is None else "After"
            lines.append(Line("quote", (("+", change.after),), label, True))
    return lines


def _cell_line(cell: CellDelta) -> Line:
    """A changed cell as "Requests: 202 → 0 (-202)", the delta with a true minus sign."""
    value = f"{cell.before or '(empty)'}{ARROW}{cell.after or '(empty)'}"
    if cell.delta is not None:
        value += f" ({_signed(cell.delta)})"
    return _field(cell.column, value)


def _more_part(subject: Subject, proof: Proof, more: int) -> Part:
    """What an alert past its limit leaves out: how many changes, and where to see them."""
    lines = [Line("lead", _plain(f"{ELLIPSIS} and {more} more change{'s' if more != 1 else ''}"))]
    if proof.version_before is not None:
        command = f"monitor diff {subject.watch_id} --from {proof.version_before} --to "
        lines.append(Line("code", (("=", command), _new_version(proof.version_after)), "All"))
    return Part("detail", tuple(lines))


def _proof_part(subject: Subject, proof: Proof) -> Part:
    lines = [_field("Watch", subject.watch_id)]
    if proof.version_before is not None:
        after = _new_version(proof.version_after)
        lines.append(Line("field", (("=", f"{proof.version_before}{ARROW}"), after), "Versions"))
        command = f"monitor diff {subject.watch_id} --from {proof.version_before} --to "
        lines.append(Line("code", (("=", command), after), "Compare"))
        export = f"monitor export {subject.watch_id} --from {proof.version_before} --to "
        out = f" --out {subject.watch_id}-{proof.version_before}-"
        spans = (("=", export), after, ("=", out), after, ("=", ".warc.gz"))
        lines.append(Line("code", spans, "Evidence"))
    if proof.before_seen is not None:
        first, last = proof.before_seen
        lines.append(_field("Before text seen", f"{_when(first)} to {_when(last)}"))
        lines.append(_field("Changed between", f"{_when(last)} and {_when(proof.at)}"))
    if proof.sha_before:
        lines.append(Line("code", _plain(proof.sha_before), "Snapshot before (SHA-256)"))
    if proof.sha_after:
        lines.append(Line("code", _plain(proof.sha_after), "Snapshot after (SHA-256)"))
    return Part("foot", tuple(lines))


def _kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " "))


def _reason_label(reason: str) -> str:
    return reason.replace("_", " ") or "unknown"


def _signed(delta: float) -> str:
    """+12, -202 (a true minus sign), +0.5: signed, never in exponent notation."""
    text = f"{delta:+,.6f}".rstrip("0").rstrip(".")
    return text.replace("-", MINUS)


def _new_version(value: int | None) -> Span:
    """The new version's id, or its slot for the store to fill (`name_version`)."""
    return (NEW_VERSION, "" if value is None else str(value))


def _when(at: datetime) -> str:
    """A time a reader anywhere can place: UTC, to the minute."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _plain(text: str) -> tuple[Span, ...]:
    return (("=", text),)


def _field(label: str, value: str) -> Line:
    return Line("field", _plain(value), label)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def _clean(text: str) -> str:
    """Page text on one line: no control characters, so parts never contain a blank line."""
    return _CONTROL.sub(" ", text)


# ---------------------------------------------------------------------- rendering

HTML_OPEN = (
    "<div style=\"font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,"
    'Arial,sans-serif;font-size:15px;line-height:1.45;color:#1a1a1a;max-width:640px">'
)
HTML_CLOSE = "</div>"
_MUTED = "color:#5f6368"
_PART_STYLE = {
    "head": "margin:0 0 12px",
    "finding": "margin:0;padding:10px 0;border-top:1px solid #dadce0",
    "detail": "margin:0;padding:10px 0;border-top:1px solid #dadce0",
    "foot": f"margin:0;padding:10px 0 0;border-top:1px solid #dadce0;font-size:12px;{_MUTED}",
}
_LINE_STYLE = {
    "lead": "margin:0 0 4px;font-weight:600",
    "field": "margin:0 0 4px",
    "quote": "margin:6px 0;padding:6px 10px;border-left:3px solid #9aa0a6;background:#f5f5f5",
    "link": "margin:0 0 4px;word-break:break-all",
    "note": "margin:6px 0;font-style:italic",
    "code": "margin:0 0 2px",
}
# Hidden in HTML, kept by the HTML-to-text conversion that builds an e-mail's text part,
# so a text-only mail client still sees which words were removed and added.
_HIDDEN = '<span style="display:none;mso-hide:all">{}</span>'
_HIDE_DEL = (_HIDDEN.format("[-"), _HIDDEN.format("-]"))
_HIDE_INS = (_HIDDEN.format("{+"), _HIDDEN.format("+}"))
_DEL = '<del style="color:#a50e0e;background:#fce8e6">'
_INS = '<ins style="color:#0d652d;background:#e6f4ea;text-decoration:none;font-weight:600">'
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def render(parts: Sequence[Part], fmt: str, *, label: str = "") -> str:
    """The body of `parts` in one format; `label` ("(1/3)") goes first when given."""
    pieces = [render_part(p, fmt) for p in parts]
    return join(pieces, fmt, label=label)


def join(pieces: Sequence[str], fmt: str, *, label: str = "") -> str:
    """Rendered parts as one body. Parts are single-line in HTML and blank-line free
    in text and Markdown, so a body can be split back into them."""
    if label:
        pieces = [_label(label, fmt), *pieces]
    if fmt == "html":
        return "\n".join([HTML_OPEN, *pieces, HTML_CLOSE])
    return "\n\n".join(pieces)


def split(body: str, fmt: str) -> list[str]:
    """The rendered parts of a body `join` made (one piece for anything else)."""
    if fmt != "html":
        return [p for p in body.split("\n\n") if p]
    lines = body.split("\n")
    if len(lines) >= 2 and lines[0] == HTML_OPEN and lines[-1] == HTML_CLOSE:
        return lines[1:-1]
    return [body]


def render_part(part: Part, fmt: str) -> str:
    if fmt == "html":
        inner = "".join(_html_line(line) for line in part.lines)
        return f'<div style="{_PART_STYLE.get(part.role, "")}">{inner}</div>'
    render_line = _md_line if fmt == "markdown" else _text_line
    return "\n".join(render_line(line) for line in part.lines)


def headline(title: str, fmt: str) -> str:
    """A title as the first line of a body, for services that show no title."""
    if fmt == "html":
        return f'<p style="{_LINE_STYLE["lead"]}">{_esc(title)}</p>'
    if fmt == "markdown":
        return f"**{_md(title)}**"
    return _clean(title)


def _label(label: str, fmt: str) -> str:
    if fmt == "html":
        return f'<p style="margin:0 0 8px;font-size:12px;{_MUTED}">{_esc(label)}</p>'
    return label


def _text_line(line: Line) -> str:
    marked = "".join(_text_span(op, text) for op, text in line.spans)
    return f"{line.label}: {marked}" if line.label else marked


def _text_span(op: str, text: str) -> str:
    text = _clean(_span_text(op, text))
    if op == "-":
        return TEXT_STYLE.removed(text)
    if op == "+":
        return TEXT_STYLE.added(text)
    return text


def _md_line(line: Line) -> str:
    if line.style == "link":
        return f"<{_safe_url(line.plain)}>"
    if line.style == "code":
        return f"{_md(line.label)}: `{_clean(line.plain).replace('`', '')}`"
    marked = "".join(_md_span(op, text) for op, text in line.spans)
    if line.style == "lead":
        marked = f"**{marked}**"
    elif line.style == "note":
        marked = f"_{marked}_"
    return f"{_md(line.label)}: {marked}" if line.label else marked


def _md_span(op: str, text: str) -> str:
    text = _span_text(op, text)
    if op == "-":
        return _wrap(_md(text), lambda core: f"~~{core}~~")
    if op == "+":
        return _wrap(_md(text), lambda core: f"**{core}**")
    return _md(text)


def _html_line(line: Line) -> str:
    style = _LINE_STYLE.get(line.style, "margin:0")
    if line.style == "link":
        return f'<p style="{style}">{_html_link(line.plain)}</p>'
    content = "".join(_html_span(op, text) for op, text in line.spans)
    if line.style == "code":
        content = f'<code style="word-break:break-all">{content}</code>'
    if line.label:
        content = f'<span style="{_MUTED}">{_esc(line.label)}:</span> {content}'
    return f'<p style="{style}">{content}</p>'


def _html_span(op: str, text: str) -> str:
    text = _span_text(op, text)
    if op == "-":
        return _wrap(_esc(text), lambda core: f"{_DEL}{_HIDE_DEL[0]}{core}{_HIDE_DEL[1]}</del>")
    if op == "+":
        return _wrap(_esc(text), lambda core: f"{_INS}{_HIDE_INS[0]}{core}{_HIDE_INS[1]}</ins>")
    return _esc(text)


def _html_link(url: str) -> str:
    """A link only for http(s): a page URL is never a `javascript:` href."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return _esc(url)
    return f'<a href="{html.escape(_clean(url), quote=True)}">{_esc(url)}</a>'


def _wrap(text: str, mark: Callable[[str], str]) -> str:
    """Markers around the words, edge spaces outside them (`~~ x~~` would not render)."""
    core = text.strip()
    if not core:
        return text
    lead = text[: len(text) - len(text.lstrip())]
    tail = text[len(text.rstrip()) :]
    return f"{lead}{mark(core)}{tail}"


def _esc(text: str) -> str:
    return html.escape(_clean(text), quote=True)


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _clean(text))


def _safe_url(url: str) -> str:
    """A URL for a Markdown autolink: no spaces or angle brackets can end it early."""
    return re.sub(r"[\s<>]", lambda m: f"%{ord(m[0]):02X}", _clean(url))


# --------------------------------------------------------------------------- fitting

MIN_CAP = 8  # the shortest a trimmed sentence gets, ellipsis included
WORD_SLACK = 12  # characters given up to end a trimmed sentence at a word boundary


@dataclass(frozen=True)
class _Piece:
    """A part ready to pack: its full rendering, and how to render it shorter."""

    full: str
    shorter: Callable[[int], str]


def fit(message: Message, limit: int, fmt: str) -> list[str]:
    """The body split into chunks of at most `limit` characters, findings kept whole.

    Chunks break only between parts: the head (page, URL, time) opens the first
    chunk, the proof closes the last. A part too long for a chunk of its own has its
    sentences shortened with "…" (before escaping, so HTML stays well-formed); as a
    last resort, with a limit too small for that, it is cut as plain text. With
    several chunks each starts with "(i/n)".
    """
    body = message.body(fmt)
    if len(body) <= limit:
        return [body]
    pieces = _pieces(message, fmt)
    widest = f"({len(pieces)}/{len(pieces)})"  # there are never more chunks than parts

    def free(group: list[str]) -> int:
        """Characters left for one more part in a chunk holding `group`."""
        return limit - len(join([*group, ""], fmt, label=widest))

    groups = _pack(pieces, free)
    if len(groups) == 1:
        return [_cut(join(groups[0], fmt), limit, fmt)]
    total = len(groups)
    return [_cut(join(g, fmt, label=f"({i}/{total})"), limit, fmt) for i, g in enumerate(groups, 1)]


def _pieces(message: Message, fmt: str) -> list[_Piece]:
    if not message.parts:
        return [_Piece(p, partial(_cut, p, fmt=fmt)) for p in split(message.body(fmt), fmt)]
    return [
        _Piece(render_part(part, fmt), partial(_shrink, part, fmt=fmt)) for part in message.parts
    ]


def _pack(pieces: Sequence[_Piece], free: Callable[[list[str]], int]) -> list[list[str]]:
    """Greedy: a part joins the current chunk if it fits, else starts the next one.

    Only a part too long for a chunk of its own is shortened: to what is left of
    the current chunk when that is at least half a chunk, else to a whole chunk.
    """
    room = free([])
    groups: list[list[str]] = [[]]
    for piece in pieces:
        current = groups[-1]
        left = free(current)
        if len(piece.full) <= left:
            current.append(piece.full)
        elif len(piece.full) <= room:
            groups.append([piece.full])
        elif left >= room // 2:
            current.append(piece.shorter(left))
        else:
            groups.append([piece.shorter(room)])
    return groups


def _shrink(part: Part, room: int, fmt: str) -> str:
    """The part with its page text trimmed to the longest cap that fits `room`."""

    def rendered(cap: int) -> str:
        return render_part(_trim_part(part, cap), fmt)

    longest = max((len(line.plain) for line in part.lines if line.trim), default=0)
    low, high = MIN_CAP, longest
    if len(rendered(low)) > room:
        return _cut(rendered(low), room, fmt)
    while low < high:  # invariant: rendered(low) fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if len(rendered(mid)) <= room else (low, mid - 1)
    return rendered(low)


def _trim_part(part: Part, cap: int) -> Part:
    lines = tuple(
        Line(line.style, trim_spans(line.spans, cap), line.label, True) if line.trim else line
        for line in part.lines
    )
    return Part(part.role, lines)


def trim_spans(spans: Sequence[Span], cap: int) -> tuple[Span, ...]:
    """Spans shortened to about `cap` characters with "…", keeping the edits.

    Unchanged words around the edits go first (keeping the words next to them); the
    edits themselves are shortened only when they alone are longer than `cap`.
    """
    spans = tuple(spans)
    total = sum(len(text) for _, text in spans)
    if total <= cap:
        return spans
    edits = [t for op, t in spans if op != "="]
    kept = [t for op, t in spans if op == "="]
    edit_chars = sum(len(t) for t in edits)
    if not edits or edit_chars + len(kept) > cap:
        each = max(1, (cap - len(kept)) // max(len(edits), 1) - 1)
        keep_edit, keep_same = (each, 0) if edits else (0, max(1, cap - 1))
    else:
        keep_edit, keep_same = edit_chars, max(0, (cap - edit_chars) // len(kept) - 1)
    last = len(spans) - 1
    return tuple(
        (op, _shorten(t, keep_same if op == "=" else keep_edit, i, last, op))
        for i, (op, t) in enumerate(spans)
    )


def _shorten(text: str, keep: int, index: int, last: int, op: str) -> str:
    """Keep about `keep` characters of a span: the end of the first unchanged span,
    the start of the last one, both ends of one in the middle, the start of an edit."""
    if len(text) <= keep + 1:
        return text
    if op != "=" or index == 0 == last or (index == last and index != 0):
        return _start(text, keep) + ELLIPSIS + (" " if text[-1:] == " " else "")
    if index == 0:
        return (" " if text[:1] == " " else "") + ELLIPSIS + _end(text, keep)
    return _start(text, keep // 2) + ELLIPSIS + _end(text, keep - keep // 2)


def _start(text: str, keep: int) -> str:
    """The first `keep` characters, ending at a word boundary when one is near."""
    cut = text[:keep]
    space = cut.rfind(" ")
    if space > 0 and len(cut) - space <= WORD_SLACK and text[keep : keep + 1] != " ":
        cut = cut[:space]
    return cut.rstrip()


def _end(text: str, keep: int) -> str:
    """The last `keep` characters, starting at a word boundary when one is near."""
    cut = text[len(text) - keep :] if keep > 0 else ""
    space = cut.find(" ")
    if 0 <= space < WORD_SLACK and text[len(text) - keep - 1 : len(text) - keep] != " ":
        cut = cut[space + 1 :]
    return cut.lstrip()


def _cut(rendered: str, limit: int, fmt: str) -> str:
    """The last resort: a rendered piece cut to `limit` as plain text, still valid HTML."""
    if len(rendered) <= limit:
        return rendered
    if fmt != "html":
        return rendered[: max(0, limit - 1)].rstrip("\\") + ELLIPSIS
    text = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", rendered)).split())
    shell = "<p></p>"
    budget = max(0, limit - len(shell) - 1)
    out = ""
    for char in text:  # escaping lengthens text: add characters while they fit
        piece = html.escape(char, quote=True)
        if len(out) + len(piece) > budget:
            return f"<p>{out}{ELLIPSIS}</p>"
        out += piece
    return f"<p>{out}</p>"


# ---------------------------------------------------------------------- mentions

ZWSP = "\N{ZERO WIDTH SPACE}"
# `@everyone`, `@here`, `@channel`, `@all`, `@user` (Discord, Mattermost, Slack, Teams…);
# `<@id>`, `<@&role>`, `<#channel>` (Discord), `<!here>`, `<!subteam^id>` (Slack), and
# a bare `!here>`, which apprise's Slack plugin turns into `<!here>` itself
_MENTION = re.compile(r"(@)(?=[\w&!#])|(<)(?=[@!#])|(!)(?=\w)")
_MENTION_HTML = re.compile(r"(@)(?=[\w&!#])")  # in HTML, a `<` of the text is `&lt;`


def defuse(text: str, fmt: str) -> str:
    """A rendering for chat or a webhook in which no text can ping anyone.

    Page text, a server's reason phrase or a watch name may hold `@everyone` or
    `<@&role>`; a zero-width space after the sign keeps it readable and inert for
    every service (and for apprise, which would otherwise add Discord's pings to
    the message). The stored quote and e-mail keep the text verbatim.
    """
    pattern = _MENTION_HTML if fmt == "html" else _MENTION
    return pattern.sub(lambda m: (m[1] or m[2] or m[3]) + ZWSP, text)
