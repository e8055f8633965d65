"""Text: the wording of a version, shared by every extractor (HTML, plain text, PDF,
Markdown), so that the same words give the same blocks whatever the format.

`normalize` reduces a text to its wording; `Builder` collects blocks in reading order
with the heading stack that gives their section path, applying the watch's `ignore`
patterns; `expect_texts` checks the watch's `expect` texts against the result.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from monitor.errors import ExtractError, Incomplete
from monitor.model import Block, ExtractRules

__all__ = ["Builder", "compile_ignore", "expect_texts", "normalize", "refuse_css"]

# --- normalisation -------------------------------------------------------------------

# Characters that do not change the wording: invisible ones (zero-width, soft hyphen,
# bidi controls) go, and typographic quotes and dashes, which editors swap freely,
# become ASCII. (str.translate with a mapping is slow on long non-ASCII texts.)
_INVISIBLE = (
    "\u00ad\u034f\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_TYPOGRAPHY = {
    **dict.fromkeys(_INVISIBLE, ""),
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
}
_TYPOGRAPHIC = re.compile("[" + "".join(_TYPOGRAPHY) + "]")
# Control characters are no wording either, and page text must never smuggle a
# terminal escape sequence into `monitor diff` (the whitespace ones become spaces).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x9f]")
# A list marker typed into the text ("1.", "(a)", "iv.", "•"): renumbering a list
# must not change every item after the insertion point. Latin markers need a space
# after them, so "1.5 million", "2024" and "e.g." survive; Chinese enumerators
# ("一、", "(二)") are followed directly by text.
_NUMBERING = re.compile(
    r"""
    (?:
        (?: \d{1,3}(?:\.\d{1,3})*[.)]           # 1.  1)  2.3.
          | \(\d{1,3}\)                         # (1)
          | [a-z][.)] | [A-Z]\) | \([a-zA-Z]\)  # a.  a)  B)  (c)
          | (?i: \(? (?=[ivx]) x{0,2}(?:ix|iv|v?i{0,3}) [.)] )  # iv.  (xii)  IX)
          | [\u2022\u00b7\u2023\u25e6\u25aa\u25cf\u25cb\u25a0\u25a1\u30fb*+-]  # • · * -
        )\s+
      | \(?[一二三四五六七八九十]{1,3}[、)]\s*  # 一、  (二)
    )
    """,
    re.VERBOSE,
)


def normalize(text: str, *, strip_numbering: bool = True) -> str:
    """Reduce a text to its wording, so that only a change of wording is a change.

    Invisible and control characters (zero-width, soft hyphen, bidi marks, escapes)
    go; NFKC unifies compatibility forms (full-width ASCII, ligatures, non-breaking
    spaces, "…"); typographic quotes and dashes become ASCII; whitespace runs become
    one space; list markers at the start go unless ``strip_numbering`` is false
    (headings and table cells keep their numbers: there they are content).
    """
    if not text.isascii():
        # Invisible characters go before NFKC, so that they cannot block a
        # composition; NFKC can make typographic characters ("\u2033" is two primes),
        # so the mapping runs again after it.
        text = _plain(text)
        if not unicodedata.is_normalized("NFKC", text):
            text = _plain(unicodedata.normalize("NFKC", text))
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    text = " ".join(text.split())
    if strip_numbering:
        while match := _NUMBERING.match(text):
            text = text[match.end() :]
    return text


def _plain(text: str) -> str:
    """Map invisible and typographic characters (one str.replace per distinct one
    found: a substitution with a callback per match is ten times slower)."""
    for char in set(_TYPOGRAPHIC.findall(text)):
        text = text.replace(char, _TYPOGRAPHY[char])
    return text


def expect_texts(blocks: Sequence[Block], expected: Sequence[str]) -> None:
    """Every `expect` text must be in the version's text (case and spacing aside)."""
    if not expected:
        return
    text = "\n".join(block.text for block in blocks).casefold()
    missing = [want for want in expected if normalize(want).casefold() not in text]
    if missing:
        raise Incomplete(f"expected text not found: {', '.join(map(repr, missing))}")


def compile_ignore(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Compile the ignore patterns once per call; a bad one is the watch's fault."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ExtractError(f"invalid ignore pattern {pattern!r}: {exc}") from exc
    return tuple(compiled)


@dataclass
class Builder:
    """Collects blocks in order and keeps the heading stack that gives their path."""

    ignore: tuple[re.Pattern[str], ...]
    blocks: list[Block] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)
    path: tuple[str, ...] = ()

    def clean(self, raw: str, *, strip_numbering: bool) -> str:
        """Normalise, then apply the watch's ignore patterns."""
        text = normalize(raw, strip_numbering=strip_numbering)
        if text and self.ignore:
            for pattern in self.ignore:
                text = pattern.sub("", text)
            text = " ".join(text.split())
        return text

    def heading(self, level: int, raw: str) -> None:
        text = self.clean(raw, strip_numbering=False)
        if not text:
            return
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        path = tuple(heading for _, heading in self.headings)
        self.blocks.append(Block("heading", text, path, level=level))
        self.headings.append((level, text))
        self.path = (*path, text)

    def text(self, kind: str, raw: str) -> str | None:
        """Add a block; return its text (None when nothing visible was left)."""
        if raw and not raw.isspace():
            text = self.clean(raw, strip_numbering=True)
            if text:
                self.blocks.append(Block(kind, text, self.path))
                return text
        return None

    @contextmanager
    def under(self, label: str) -> Iterator[None]:
        """Blocks added inside carry `label` as the last part of their path."""
        saved = self.path
        self.path = (*saved, label)
        try:
            yield
        finally:
            self.path = saved

    def row(self, raw_cells: Sequence[str]) -> None:
        """A row keeps its empty cells, so that a value moving to another column is a
        change; ignore patterns apply to each cell, so that text and cells agree."""
        cells = tuple(self.clean(raw, strip_numbering=False) for raw in raw_cells)
        if any(cells):
            self.blocks.append(Block("row", " | ".join(cells), self.path, cells=cells))


def refuse_css(rules: ExtractRules, document: str) -> None:
    """CSS selectors (select, remove, expect css) only apply to HTML: on a PDF or a
    Markdown file they would silently match nothing, so the watch says so instead."""
    named = (("select", rules.select), ("remove", rules.remove), ("expect css", rules.expect_css))
    used = [name for name, value in named if value]
    if used:
        raise ExtractError(
            f"{' and '.join(used)} use CSS selectors, which apply to HTML pages only; "
            f"this is {document}: remove them from the watch (ignore and expect texts apply)"
        )
