"""Wording: what counts as the same words, and the page's own text beside it.

Versions are compared on their *wording* (``normalize``): invisible characters go,
compatibility forms are unified (NFKC: full-width ASCII, ligatures, ideographic
spaces), typographic quotes and dashes become ASCII, whitespace runs become one space,
list markers go. That is right for deciding *whether* something changed, and wrong for
showing *what the page said*: a Chinese sentence must be quoted with its full-width
commas (U+FF0C), not the ASCII ones its wording has. So a block also keeps its
``verbatim`` text (only invisible and control characters removed, whitespace
collapsed) as `Block.shown` when that differs from its wording, and ``Alignment``
maps a stretch of the wording back to the verbatim text it came from.

Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Alignment", "Reading", "normalize", "read", "shown_as", "unnumbered", "verbatim"]


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
    text = _spaced(text)
    return unnumbered(text) if strip_numbering else text


def _spaced(text: str) -> str:
    """The text without control characters, whitespace runs made one space. Most texts
    are already spaced so once their ends are stripped, which is quicker to see than
    to split them into words: control characters and every whitespace character but
    the space are not printable (categories Cc, Zs, Zl and Zp)."""
    stripped = text.strip()
    if stripped.isprintable() and "  " not in stripped:
        return stripped
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    return " ".join(text.split())


def unnumbered(text: str) -> str:
    """A normalised text without the list markers it starts with."""
    while match := _NUMBERING.match(text):
        text = text[match.end() :]
    return text


def _plain(text: str) -> str:
    """Map invisible and typographic characters (one str.replace per distinct one
    found: a substitution with a callback per match is ten times slower)."""
    for char in set(_TYPOGRAPHIC.findall(text)):
        text = text.replace(char, _TYPOGRAPHY[char])
    return text


def verbatim(text: str) -> str:
    """The text as the page shows it: only invisible and control characters removed and
    whitespace runs made one space (what a reader cannot see is no evidence)."""
    if not text.isascii():
        for char in set(_INVISIBLE_CHARS.findall(text)):
            text = text.replace(char, "")
    return _spaced(text)


_INVISIBLE_CHARS = re.compile(f"[{_INVISIBLE}]")


def shown_as(raw: str, wording: str) -> str:
    """The verbatim form to keep beside a block's wording: "" when it shows the same
    (always for ASCII text), or when the wording is not the verbatim text normalised
    (the watch's `ignore` patterns took something out), so the quote would show what
    the watch ignores. Checked by normalising once more, not by aligning: extraction
    runs on every page, the alignment only for the sentences a diff quotes (which
    falls back to the wording when it cannot align them)."""
    if raw.isascii():
        return ""
    shown = verbatim(raw)
    if shown == wording or not normalize(shown, strip_numbering=False).endswith(wording):
        return ""
    return shown


class Reading(NamedTuple):
    """A text read once for a block: its wording with any numbering kept
    (``normalize(raw, strip_numbering=False)``), its verbatim form ("" for ASCII text,
    which shows as its wording) and that verbatim form's own wording. (A named tuple:
    one is made for every block of every page, and a frozen dataclass costs three
    times as much to make.)"""

    wording: str
    verbatim: str
    verbatim_wording: str

    def shown(self, wording: str) -> str:
        """`shown_as` for the block whose final wording is ``wording``."""
        if not self.verbatim or self.verbatim == wording:
            return ""
        return self.verbatim if self.verbatim_wording.endswith(wording) else ""


def read(raw: str) -> Reading:
    """Read a block's text with one normalisation where one is enough.

    Without control characters, the verbatim form normalises to the same wording as
    the text itself (verbatim only drops invisible characters, which normalising drops
    too, and collapses whitespace, which NFKC neither composes across nor makes out of
    other characters), so the verbatim form is normalised, once, for both. A control
    character between a letter and a combining mark blocks their composition in the
    raw text and not in the verbatim one, so then both are normalised."""
    if raw.isascii():
        wording = _spaced(raw)  # all that normalising does to ASCII text
        return Reading(wording, "", wording)
    shown = verbatim(raw)
    shown_wording = normalize(shown, strip_numbering=False)
    if _CONTROL.search(raw):
        return Reading(normalize(raw, strip_numbering=False), shown, shown_wording)
    return Reading(shown_wording, shown, shown_wording)


@dataclass(frozen=True)
class Alignment:
    """Where each character of a text's wording comes from in its verbatim form.

    ``starts[k]`` is the verbatim offset of the character (or character cluster) that
    gave wording character k; a list marker the wording dropped is skipped. A stretch
    [a, b) of the wording shows as ``verbatim[at(a):at(b)]``, so consecutive stretches
    share their boundaries and together show the verbatim text once, in full.
    """

    verbatim: str
    starts: tuple[int, ...]

    @classmethod
    def of(cls, shown: str, wording: str) -> Alignment | None:
        """The alignment of ``wording`` with ``shown``, or None when ``wording`` is
        not what ``normalize`` makes of ``shown``."""
        pieces, starts = [], []
        for start, end in _clusters(shown):
            piece = _fold(shown[start:end])
            pieces.append(piece)
            starts.extend([start] * len(piece))
        full = "".join(pieces)
        if full != normalize(shown, strip_numbering=False) or not full.endswith(wording):
            return None
        skipped = len(full) - len(wording)
        return cls(shown, tuple(starts[skipped:]))

    def at(self, offset: int) -> int:
        return self.starts[offset] if offset < len(self.starts) else len(self.verbatim)

    def show(self, start: int, end: int) -> str:
        """The verbatim text of the wording's stretch [start, end)."""
        return self.verbatim[self.at(start) : self.at(end)].strip()


def _fold(cluster: str) -> str:
    """A character cluster's wording (spaces already single in verbatim text)."""
    if cluster.isascii():
        return cluster
    text = _plain(cluster)
    return _plain(unicodedata.normalize("NFKC", text)) if text else text


def _clusters(text: str) -> list[tuple[int, int]]:
    """Spans of a base character with the combining marks after it (NFKC composes
    across them, so they are normalised together)."""
    spans: list[tuple[int, int]] = []
    for index, char in enumerate(text):
        if spans and not char.isascii() and unicodedata.combining(char):
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    return spans
