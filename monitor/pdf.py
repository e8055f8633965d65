"""PDF: turn a PDF's text layer into a version's blocks, the same kinds HTML gives.

Read with pdfplumber (on pdfminer.six): the one library measured that finds tables,
and whose characters carry their font size, so headings can be told from body text
(``python -m bench.pdf`` has the figures). Pure, like ``extract``: bytes in, blocks out.

How a PDF becomes blocks:

1. Refuse what cannot be read whole, before parsing: a body that does not start
   with ``%PDF`` or lacks the ``%%EOF`` at its end (cut off), a compressed stream
   that inflates past ``MAX_STREAM_BYTES`` (a decompression bomb), more than
   ``MAX_PAGES`` pages, an encrypted PDF, and one pdfminer cannot parse.
2. A page whose body text has a white strip down its middle is read in two columns,
   the left one first (its top and bottom margins, running headers and footers, stay
   whole). On every page, ruled tables (pdfplumber's table finder) become row blocks, one
   per table row, the header row first, so a changed cell is a per-column delta;
   their text is not read again as prose.
3. The rest is read line by line. Running headers and footers go: page numbers
   ("Page 3 of 12", "- 3 -", "3") and any line at the top or bottom of a page that
   recurs on other pages with only its digits changed, so pages shifting is no change.
4. Lines that are the titles of the PDF's bookmarks (its outline) are headings at
   their bookmark's level; so are lines set larger than the body text (the size most
   characters have), their level given by their size. Lines separated by more than
   half a line of space start a new paragraph; a line starting with a bullet or number
   starts an item. Hard-wrapped lines are joined, words hyphenated at a line end are
   rejoined, and Chinese, Japanese or Korean lines run on without a space.
5. Every block's path is its headings, then its page ("page 3"). Diff aligns blocks
   by their text, not their path, so a paragraph moving to the next page is no change.

A PDF whose pages hold no text at all is a scan, a classified failure, never an empty
version.
"""

from __future__ import annotations

import io
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

import pdfplumber
from pdfminer.pdfdocument import PDFEncryptionError
from pdfminer.pdfexceptions import PDFException
from pdfminer.pdfpage import PDFPage
from pdfminer.psexceptions import PSException
from pdfplumber.page import Page
from pdfplumber.pdf import PDF
from pdfplumber.utils.exceptions import MalformedPDFException, PdfminerException

from monitor.errors import DocumentTooLarge, ExtractError, UnreadableDocument
from monitor.model import Document, ExtractRules
from monitor.text import Builder, compile_ignore, expect_texts, refuse_css

__all__ = ["MAX_PAGES", "MAX_STREAM_BYTES", "is_pdf", "pdf_document"]

MAX_PAGES = 300  # about 7 s of reading at the measured 23 ms a page
MAX_STREAM_BYTES = 64_000_000  # what one compressed stream may inflate to
_EOF_WINDOW = 2048  # where %%EOF must be: the end, give or take trailing junk
_MARGIN = 0.1  # the share of a page's height at its top and bottom holding running lines
_HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading
_STREAM = re.compile(rb"stream\r?\n")
# What pdfminer and pdfplumber raise on a broken PDF (random bytes changed in a good
# one make them raise all of these, from parsing the cross-reference table to closing).
_BROKEN = (
    PdfminerException,
    MalformedPDFException,
    PSException,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    AssertionError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
)


def is_pdf(body: bytes) -> bool:
    """Whether a body is a PDF, whatever its content type says."""
    return body[:1024].lstrip().startswith(b"%PDF")


def pdf_document(body: bytes, rules: ExtractRules) -> Document:
    """A PDF's text as blocks; raises ExtractError (a scan, a damaged, encrypted or
    too large PDF) when it cannot be read whole."""
    refuse_css(rules, "a PDF")
    _check_whole(body)
    ignore = compile_ignore(rules.ignore)
    try:
        with pdfplumber.open(io.BytesIO(body)) as pdf:
            count = _page_count(pdf)
            headings = _Headings(outline=_outline(pdf))
            blocks = _read(pdf.pages, Builder(ignore), count, headings)
    except _BROKEN as exc:
        raise _unreadable(exc) from None
    expect_texts(blocks, rules.expect_text)
    return tuple(blocks)


# --- refusing what cannot be read whole ----------------------------------------------


def _check_whole(body: bytes) -> None:
    if not is_pdf(body):
        raise UnreadableDocument("the body is not a PDF (no %PDF header)")
    if b"%%EOF" not in body[-_EOF_WINDOW:]:
        raise UnreadableDocument("the PDF is cut off or damaged: it does not end with %%EOF")
    for match in _STREAM.finditer(body):
        _check_inflated(body, match.end())


def _check_inflated(body: bytes, start: int) -> None:
    """A Flate stream must inflate to at most MAX_STREAM_BYTES (other streams pass:
    they fail zlib's header check at once)."""
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(body[start : start + MAX_STREAM_BYTES], MAX_STREAM_BYTES)
    except zlib.error:
        return
    if inflater.unconsumed_tail:
        raise DocumentTooLarge(
            f"a stream of the PDF inflates to more than {MAX_STREAM_BYTES:,} bytes "
            "(a decompression bomb?); monitor does not read it"
        )


def _page_count(pdf: PDF) -> int:
    """The number of pages, refusing more than MAX_PAGES without listing them all."""
    if pdf.doc.encryption is not None:
        raise UnreadableDocument("the PDF is encrypted; monitor cannot read it")
    count = sum(1 for _ in islice(PDFPage.create_pages(pdf.doc), MAX_PAGES + 1))
    if count > MAX_PAGES:
        raise DocumentTooLarge(f"the PDF has more than {MAX_PAGES} pages; monitor reads at most")
    return count


def _unreadable(exc: Exception) -> ExtractError:
    cause = exc.args[0] if isinstance(exc, PdfminerException) and exc.args else exc
    if isinstance(cause, PDFEncryptionError):
        return UnreadableDocument("the PDF is encrypted; monitor cannot read it")
    return UnreadableDocument(f"the PDF is damaged and cannot be read ({cause!r:.200})")


# --- reading pages -------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One line of text on a page, or one table row (with its cells), in page order."""

    text: str
    top: float
    bottom: float
    size: float  # the font size of most of its characters (0 for a table row)
    cells: tuple[str, ...] = ()
    region: int = 0  # reading order on the page: top margin, left column, right, bottom

    @property
    def key(self) -> str:
        """The line with its numbers masked: a running header recurs with this key."""
        return re.sub(r"\d+", "#", self.text.casefold())


def _read(pages: Sequence[Page], out: Builder, count: int, headings: _Headings) -> list[Any]:
    read = [_read_page(page) for page in pages]
    if not any(read):
        raise UnreadableDocument(_no_text(pages, count))
    running = _running_keys(pages, read)
    kept = [
        [line for line in lines if line.cells or not (line.key in running or _page_number(line))]
        for lines in read
    ]
    headings = headings.with_sizes([line for lines in kept for line in lines])
    for number, lines in enumerate(kept, 1):
        _add_page(out, lines, headings, f"page {number}")
    return out.blocks


def _no_text(pages: Sequence[Page], count: int) -> str:
    if not count:
        return "the PDF has no pages"
    has = f"the PDF has {count} page{'s' if count > 1 else ''}"
    if any(page.images for page in pages):
        return f"{has} but no text layer (a scan); monitor cannot read it"
    return f"{has} and no text"


def _read_page(page: Page) -> list[_Line]:
    """The page's lines of text and table rows, in reading order."""
    try:
        tables = page.find_tables()
        prose = page
        for table in tables:
            prose = prose.outside_bbox(table.bbox)
        regions = _Regions.of(prose)
        lines = [
            _line(found, region)
            for region in regions.present
            for found in prose.filter(regions.test(region)).extract_text_lines()
        ]
        for table in tables:
            x0, top, x1, bottom = table.bbox
            region = regions.of_object({"x0": x0, "x1": x1, "top": top, "bottom": bottom})
            rows = [tuple(cell or "" for cell in row) for row in table.extract()]
            lines += [_Line(" | ".join(row), top, bottom, 0.0, row, region) for row in rows]
    finally:
        page.close()
    kept = [line for line in lines if line.text.strip()]
    return sorted(kept, key=lambda line: (line.region, line.top))  # stable: rows keep order


@dataclass(frozen=True)
class _Regions:
    """A page's reading order. On a two-column page: what lies above the columns (a
    running header, a title), the left column, the right column, then what lies below
    them (a full-width paragraph, the footer); on any other page, one region."""

    gutter: float | None = None  # the x of the white strip between two columns
    top: float = 0.0  # where the columns start and end on the page
    bottom: float = 0.0

    @classmethod
    def of(cls, page: Page) -> _Regions:
        found = _gutter(page)
        return cls() if found is None else cls(*found)

    @property
    def present(self) -> tuple[int, ...]:
        return (0,) if self.gutter is None else (0, 1, 2, 3)

    def of_object(self, obj: dict[str, Any]) -> int:
        if self.gutter is None:
            return 0
        middle = (obj["top"] + obj["bottom"]) / 2
        if middle < self.top:
            return 0
        if middle > self.bottom:
            return 3
        return 1 if (obj["x0"] + obj["x1"]) / 2 < self.gutter else 2

    def test(self, region: int) -> Any:
        return lambda obj: self.of_object(obj) == region


_MIN_COLUMN_CHARS = 200  # a page with fewer body characters is read as one column
_MIN_GUTTER = 6.0  # points of white between two columns


def _gutter(page: Page) -> tuple[float, float, float] | None:
    """The x of the widest vertical white strip in the middle of the page's body text
    (the characters in its most common size, top and bottom margins aside), when a
    quarter of them at least lie on either side; and where the right column (margins
    included) starts and ends."""
    top, bottom = page.height * _MARGIN, page.height * (1 - _MARGIN)
    body = Counter(round(c["size"], 1) for c in page.chars).most_common(1)
    all_body = [c for c in page.chars if body and round(c["size"], 1) == body[0][0]]
    chars = [c for c in all_body if top < c["top"] and c["bottom"] < bottom]
    if len(chars) < _MIN_COLUMN_CHARS:
        return None
    width = int(page.width) + 1
    covered = bytearray(width + 1)
    for char in chars:
        start, end = max(0, int(char["x0"])), min(width, int(char["x1"]) + 1)
        covered[start:end] = b"\x01" * max(0, end - start)
    strip = _widest_white(covered, int(page.width * 0.3), int(page.width * 0.7))
    if strip is None:
        return None
    middle = (strip[0] + strip[1]) / 2
    right = sum(1 for c in chars if c["x0"] >= middle)
    if min(right, len(chars) - right) < len(chars) / 4:
        return None
    column = [c for c in all_body if c["x0"] >= middle]  # margins included
    return middle, min(c["top"] for c in column), max(c["bottom"] for c in column)


def _widest_white(covered: bytearray, start: int, end: int) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    run = None
    for x in range(start, end + 1):
        if x < end and not covered[x]:
            run = x if run is None else run
            continue
        if run is not None and x - run >= _MIN_GUTTER and (not best or x - run > best[1] - best[0]):
            best = (run, x)
        run = None
    return best


def _line(found: dict[str, Any], region: int) -> _Line:
    sizes = Counter(round(char["size"], 1) for char in found["chars"])
    size = sizes.most_common(1)[0][0] if sizes else 0.0
    return _Line(found["text"], found["top"], found["bottom"], size, region=region)


@dataclass(frozen=True)
class _Headings:
    """Which lines are headings: the PDF's bookmarks (outline) where it has them, by
    their text, and lines set larger than the body text, by their size."""

    outline: dict[str, int]
    sizes: dict[float, int] = field(default_factory=dict)

    def with_sizes(self, lines: Sequence[_Line]) -> _Headings:
        """Font sizes larger than the body text's (the size most characters are set
        in) are headings, largest first, as levels 1 to 6."""
        chars: Counter[float] = Counter()
        for line in lines:
            chars[line.size] += len(line.text) if not line.cells else 0
        body = chars.most_common(1)[0][0] if chars else 0.0
        larger = sorted((size for size in chars if size >= body * _HEADING_RATIO), reverse=True)
        return replace(self, sizes={size: min(6, n) for n, size in enumerate(larger, 1)})

    def bookmarked(self, line: _Line) -> bool:
        return _title_key(line.text) in self.outline

    def level(self, line: _Line) -> int:
        """The line's heading level, 0 when it is no heading."""
        return self.outline.get(_title_key(line.text)) or self.sizes.get(line.size, 0)


_MAX_BOOKMARKS = 10_000


def _outline(pdf: PDF) -> dict[str, int]:
    """The bookmarks' titles and levels (1 to 6); none when the outline is missing or
    broken (a broken outline does not keep the text from being read)."""
    try:
        entries = list(islice(pdf.doc.get_outlines(), _MAX_BOOKMARKS))
    except (PDFException, PSException, RecursionError, TypeError, ValueError):
        return {}
    titles: dict[str, int] = {}
    for level, title, *_ in entries:
        if isinstance(title, str) and _title_key(title):
            titles.setdefault(_title_key(title), max(1, min(6, level)))
    return titles


def _title_key(text: str) -> str:
    return " ".join(text.split()).casefold()


# Page numbers: "3", "- 3 -", "Page 3", "page 3 of 12", "3 / 12", "第 3 頁", "iv".
_PAGE_NUMBER = re.compile(
    r"^[-\u2013\u2014\s]*(?:(?:page|p\.|seite|página|第)\s*)?(?:\d+|[ivxlc]+)"
    r"(?:\s*(?:of|/|von|de|頁|页)\s*\d*)?[-\u2013\u2014\s頁页]*$",
    re.IGNORECASE,
)


def _page_number(line: _Line) -> bool:
    return _PAGE_NUMBER.match(line.text.strip()) is not None


def _running_keys(pages: Sequence[Page], read: Sequence[Sequence[_Line]]) -> set[str]:
    """Keys of lines in the top or bottom margin that recur on two pages or more."""
    seen: Counter[str] = Counter()
    for page, lines in zip(pages, read, strict=True):
        top, bottom = page.height * _MARGIN, page.height * (1 - _MARGIN)
        margins = {line.key for line in lines if line.bottom <= top or line.top >= bottom}
        seen.update(margins)
    return {key for key, pages_with in seen.items() if pages_with >= 2}


# --- lines into blocks ---------------------------------------------------------------

_ITEM = re.compile(
    r"^(?:[\u2022\u25cf\u25aa\u25e6\u2023\u00b7*+-]|\d{1,3}[.)]|\([a-z0-9]{1,3}\))\s"
)
_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")


def _add_page(out: Builder, lines: Sequence[_Line], headings: _Headings, page: str) -> None:
    for kind, text, level, cells in _blocks(lines, headings):
        if kind == "heading":
            out.heading(level, text)
            continue
        with out.under(page):
            if cells:
                out.row(cells)
            else:
                out.text(kind, text)


_Raw = tuple[str, str, int, tuple[str, ...]]  # kind, text, heading level, row cells


def _blocks(lines: Sequence[_Line], headings: _Headings) -> Iterator[_Raw]:
    """Each table row, heading, item or paragraph of a page, in order."""
    kind, text, level, previous = "", "", 0, None
    for line in lines:
        if line.cells:
            if text:
                yield kind, text, level, ()
            yield "row", line.text, 0, line.cells
            previous, text = None, ""
            continue
        line_level = headings.level(line)
        line_kind = "heading" if line_level else ("item" if _ITEM.match(line.text) else "")
        if headings.bookmarked(line):
            line_kind = "bookmark"  # a heading of its own, never joined to the next line
        if previous is None or _starts_block(previous, line, line_kind, line_level, level):
            if text:
                yield kind, text, level, ()
            kind, text, level = _KINDS.get(line_kind, "paragraph"), line.text.strip(), line_level
        else:
            text = _join(text, line.text.strip())
        previous = line
    if text:
        yield kind, text, level, ()


def _starts_block(previous: _Line, line: _Line, kind: str, level: int, open_level: int) -> bool:
    """A heading, an item, a change of heading size or a gap starts a new block."""
    gap = line.top - previous.bottom
    new_kind = kind in ("item", "bookmark")
    return new_kind or level != open_level or gap > 0.5 * max(previous.size, 1.0)


_KINDS = {"heading": "heading", "bookmark": "heading", "item": "item"}


def _join(text: str, more: str) -> str:
    """Join a hard-wrapped line: a word hyphenated at the line end is rejoined, and
    Chinese, Japanese or Korean text runs on without a space."""
    if re.search(r"[a-z][-\u00ad]$", text) and more[:1].islower():
        return text[:-1] + more
    if _CJK.match(text[-1:]) and _CJK.match(more[:1]):
        return text + more
    return f"{text} {more}"
