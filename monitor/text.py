"""Text: how every extractor (HTML, plain text, PDF, Markdown) turns the texts it
finds into blocks, so that the same words give the same blocks whatever the format.

`Builder` collects blocks in reading order with the heading stack that gives their
section path, each block's wording (`wording.normalize`) beside the text it shows,
with the watch's `ignore` patterns applied; `expect_texts` checks the watch's `expect`
texts against the result; `refuse_css` refuses CSS rules on a format without HTML.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from monitor.errors import ExtractError, Incomplete
from monitor.model import Block, ExtractRules
from monitor.wording import normalize, read, unnumbered

__all__ = ["Builder", "UserPattern", "compile_ignore", "expect_texts", "refuse_css", "user_regex"]


def expect_texts(blocks: Sequence[Block], expected: Sequence[str]) -> None:
    """Every `expect` text must be in the version's text (case and spacing aside)."""
    if not expected:
        return
    text = "\n".join(block.text for block in blocks).casefold()
    missing = [want for want in expected if normalize(want).casefold() not in text]
    if missing:
        raise Incomplete(f"expected text not found: {', '.join(map(repr, missing))}")


class UserPattern(Protocol):
    """A compiled user regex (RE2): what `ignore` patterns are used for."""

    def sub(self, repl: str, text: str) -> str: ...


RE2_LIMITS = (
    "patterns run on RE2, in time linear in the text: backreferences (\\1) and "
    "lookaround ((?=…), (?!…), (?<=…), (?<!…)) are not supported"
)


def user_regex(pattern: str) -> UserPattern:
    """`pattern` compiled by RE2, which never backtracks: a page of `aaaa…b` against
    `(a+)+$` takes linear time, where Python's `re` would run for ages holding the
    daemon. Raises ValueError, saying what RE2 refused, for a pattern it cannot take."""
    import re2

    options = re2.Options()
    options.log_errors = False  # the reason is in the exception; no stderr noise
    try:
        compiled: UserPattern = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"{reason} ({RE2_LIMITS})") from None
    return compiled


def compile_ignore(patterns: Sequence[str]) -> tuple[UserPattern, ...]:
    """The ignore patterns compiled by RE2; a bad one is the watch's fault. A watch's
    patterns are compiled once and remembered, not at every check (RE2's compiled
    patterns can be shared between threads)."""
    return _compiled_ignore(tuple(patterns))


@functools.lru_cache(maxsize=256)
def _compiled_ignore(patterns: tuple[str, ...]) -> tuple[UserPattern, ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(user_regex(pattern))
        except ValueError as exc:
            raise ExtractError(f"invalid ignore pattern {pattern!r}: {exc}") from exc
    return tuple(compiled)


@dataclass
class Builder:
    """Collects blocks in order and keeps the heading stack that gives their path."""

    ignore: tuple[UserPattern, ...]
    blocks: list[Block] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)
    path: tuple[str, ...] = ()

    def clean(self, raw: str, *, strip_numbering: bool) -> tuple[str, str]:
        """Normalise, then apply the watch's ignore patterns; return the text and its
        verbatim form (`wording.shown_as`)."""
        reading = read(raw)
        text = unnumbered(reading.wording) if strip_numbering else reading.wording
        if text and self.ignore:
            for pattern in self.ignore:
                text = pattern.sub("", text)
            text = " ".join(text.split())
        return text, reading.shown(text)

    def heading(self, level: int, raw: str) -> None:
        text, shown = self.clean(raw, strip_numbering=False)
        if not text:
            return
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        path = tuple(heading for _, heading in self.headings)
        self.blocks.append(Block("heading", text, path, level=level, shown=shown))
        self.headings.append((level, text))
        self.path = (*path, text)

    def text(self, kind: str, raw: str) -> str | None:
        """Add a block; return its text (None when nothing visible was left)."""
        if raw and not raw.isspace():
            text, shown = self.clean(raw, strip_numbering=True)
            if text:
                self.blocks.append(Block(kind, text, self.path, shown=shown))
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
        cleaned = [self.clean(raw, strip_numbering=False) for raw in raw_cells]
        cells = tuple(cell for cell, _ in cleaned)
        if any(cells):
            text = " | ".join(cells)
            shown = " | ".join(shown or cell for cell, shown in cleaned)
            shown = "" if shown == text else shown
            self.blocks.append(Block("row", text, self.path, cells=cells, shown=shown))


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
