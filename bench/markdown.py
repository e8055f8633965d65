"""A small Markdown-to-HTML renderer, enough for the policy texts of the shared corpus.

It knows ATX and setext headings, paragraphs, nested bullet and numbered lists,
pipe tables, bold, italics, links, images and ``<br>``: what Open Terms Archive's
Markdown versions use. It exists so the benchmark needs no dependency; it is not a
general Markdown implementation.
"""

from __future__ import annotations

import html
import re

_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s*(=+|-{3,})\s*$")
_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$")
_TABLE_RULE = re.compile(r"^\|?[\s:|-]+\|?$")

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)[^)]*\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITALIC = re.compile(
    r"(?<![*\w])\*(?![\s*])(.+?)(?<![\s*])\*(?![*\w])|(?<!\w)_(?![\s_])(.+?)(?<![\s_])_(?!\w)"
)
_BREAK = re.compile(r"&lt;br\s*/?&gt;", re.IGNORECASE)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])")


def inline(text: str) -> str:
    """One line of Markdown inline markup as HTML."""
    out = html.escape(text.strip(), quote=False)
    out = _IMAGE.sub(lambda m: f'<img alt="{m[1]}" src="{m[2]}">', out)
    out = _LINK.sub(lambda m: f'<a href="{m[2]}">{m[1]}</a>', out)
    out = _BOLD.sub(lambda m: f"<strong>{m[1] or m[2]}</strong>", out)
    out = _ITALIC.sub(lambda m: f"<em>{m[1] or m[2]}</em>", out)
    out = _BREAK.sub("<br>", out)
    return _ESCAPE.sub(r"\1", out)


class _Renderer:
    """Walks the lines once and emits one HTML string per top-level block."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.para: list[str] = []
        self.items: list[tuple[int, bool, str]] = []  # indent, numbered, text
        self.rows: list[str] = []

    def line(self, raw: str) -> None:
        stripped = raw.strip()
        if not stripped:
            self.flush_para()
            return
        if self.rows and not stripped.startswith("|"):
            self.flush()
        if self.setext(stripped) or self.heading(stripped) or self.table(stripped):
            return
        if self.item(raw) or self.continuation(raw):
            return
        if self.items:
            self.flush()
        self.para.append(stripped)

    def setext(self, stripped: str) -> bool:
        if not _SETEXT.match(stripped):
            return False
        level = 1 if stripped.startswith("=") else 2
        if self.para:
            text, self.para = " ".join(self.para), []
            self.flush()
            self.blocks.append(f"<h{level}>{inline(text)}</h{level}>")
        elif self.items:
            indent, numbered, text = self.items[-1]
            self.items[-1] = (indent, numbered, f"<strong>{inline(text)}</strong>")
        return True

    def heading(self, stripped: str) -> bool:
        match = _ATX.match(stripped)
        if not match:
            return False
        self.flush()
        level = len(match[1])
        self.blocks.append(f"<h{level}>{inline(match[2])}</h{level}>")
        return True

    def table(self, stripped: str) -> bool:
        if not stripped.startswith("|"):
            return False
        self.flush_para()
        self.flush_list()
        if not _TABLE_RULE.match(stripped):
            self.rows.append(stripped)
        return True

    def item(self, raw: str) -> bool:
        match = _ITEM.match(raw)
        if not match:
            return False
        self.flush_para()
        indent = len(match[1].expandtabs(4))
        self.items.append((indent, match[2][0].isdigit(), inline(match[3])))
        return True

    def continuation(self, raw: str) -> bool:
        if not self.items or not raw.startswith((" ", "\t")) or self.para:
            return False
        indent, numbered, text = self.items[-1]
        self.items[-1] = (indent, numbered, f"{text}<br>{inline(raw)}")
        return True

    def flush_para(self) -> None:
        if self.para:
            self.blocks.append(f"<p>{inline(' '.join(self.para))}</p>")
            self.para = []

    def flush_list(self) -> None:
        if self.items:
            self.blocks.append(_list_html(self.items))
            self.items = []

    def flush_table(self) -> None:
        if self.rows:
            self.blocks.append(_table_html(self.rows))
            self.rows = []

    def flush(self) -> None:
        self.flush_para()
        self.flush_list()
        self.flush_table()


def _list_html(items: list[tuple[int, bool, str]]) -> str:
    """Nested <ul>/<ol> from (indent, numbered, html) items."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []  # indent, closing tag
    for indent, numbered, text in items:
        while stack and indent < stack[-1][0]:
            out.append(f"</li>{stack.pop()[1]}")
        if not stack or indent > stack[-1][0]:
            tag = "ol" if numbered else "ul"
            out.append(f"<{tag}>")
            stack.append((indent, f"</{tag}>"))
        else:
            out.append("</li>")
        out.append(f"<li>{text}")
    while stack:
        out.append(f"</li>{stack.pop()[1]}")
    return "".join(out)


def _table_html(rows: list[str]) -> str:
    """A pipe table; the first row is the header."""
    cells = [[inline(c) for c in row.strip().strip("|").split("|")] for row in rows]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(markdown: str) -> list[str]:
    """The Markdown text as a list of top-level HTML blocks (headings, paragraphs, ...)."""
    renderer = _Renderer()
    for raw in markdown.splitlines():
        renderer.line(raw)
    renderer.flush()
    return renderer.blocks
