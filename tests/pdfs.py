"""Test PDFs, generated with reportlab at test time from a small description.

A description is a list of pages; a page is a list of parts:

    [h1, Title] [h2, Section]        headings, set in 18 and 14 pt
    [b1, Title] [b2, Section]        headings set like body text, with a bookmark
                                     (an outline entry) at level 1 or 2
    [p, text]                        a paragraph in 10 pt, wrapped to the page width
                                     ("\n" in the text forces a line break there, so
                                     a test can hyphenate a word at a line end)
    [table, [[head, ...], [cell, ...], ...]]   a ruled table
    [columns, [left, right]]         two paragraphs side by side in two columns

Every page gets the running header "Example transparency report" and the footer
"Page N of M", as real reports have. ``regenerated=True`` makes the same text a
different file: a new creation date and /ID, another producer, and its objects in
another order (a font used first that was not before).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Table, TableStyle

WIDTH, HEIGHT = A4
MARGIN = 72
SIZES = {"h1": 18, "h2": 14, "p": 10, "b1": 10, "b2": 10}
CJK_FONT = "STSong-Light"  # Adobe's CID font: no font file needed, none is embedded

Page = Sequence[Sequence[Any]]


def pdf(pages: Sequence[Page], *, regenerated: bool = False, encrypt: str | None = None) -> bytes:
    """A text PDF of the described pages."""
    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=not regenerated, encrypt=encrypt)
    canvas.setCreator("regenerated" if regenerated else "monitor tests")
    for number, page in enumerate(pages, 1):
        if regenerated:
            canvas.setFont("Times-Roman", 10)  # a font object before the others
        _running_lines(canvas, number, len(pages))
        y = HEIGHT - MARGIN - 20
        for kind, content in page:
            if kind in ("b1", "b2"):
                _bookmark(canvas, content, int(kind[1]) - 1)
            if kind == "columns":
                y = _columns(canvas, content, y)
            elif kind == "table":
                y = _table(canvas, content, y)
            else:
                y = _text(canvas, kind, content, y)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def scanned_pdf(pages: int) -> bytes:
    """Pages holding only an image, as a scanner makes them: no text layer."""
    from PIL import Image

    image = ImageReader(Image.new("L", (200, 280), color=200))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    for _ in range(pages):
        canvas.drawImage(image, 0, 0, WIDTH, HEIGHT)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def _font(text: str) -> str:
    return "Helvetica" if text.isascii() else CJK_FONT


def _running_lines(canvas: Canvas, number: int, count: int) -> None:
    canvas.setFont("Helvetica", 8)
    canvas.drawString(MARGIN, HEIGHT - 40, "Example transparency report")
    canvas.drawString(WIDTH / 2 - 20, 30, f"Page {number} of {count}")


def _text(canvas: Canvas, kind: str, text: str, y: float) -> float:
    size = SIZES[kind]
    font = _font(text)
    canvas.setFont(font, size)
    lines = text.split("\n") if "\n" in text else _wrap(text, font, size)
    for line in lines:
        canvas.drawString(MARGIN, y, line)
        y -= size * 1.3
    return y - size


def _wrap(text: str, font: str, size: int) -> list[str]:
    if font == CJK_FONT:  # CJK text breaks anywhere: 40 characters a line
        return [text[i : i + 40] for i in range(0, len(text), 40)]
    lines: list[str] = simpleSplit(text, font, size, WIDTH - 2 * MARGIN)
    return lines


def _table(canvas: Canvas, rows: Sequence[Sequence[str]], y: float) -> float:
    table = Table([list(row) for row in rows])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    _, height = table.wrapOn(canvas, WIDTH - 2 * MARGIN, y)
    table.drawOn(canvas, MARGIN, y - height)
    return y - height - 20


def _bookmark(canvas: Canvas, title: str, level: int) -> None:
    key = f"b{id(title)}-{title}"
    canvas.bookmarkPage(key)
    canvas.addOutlineEntry(title, key, level=level)


def _columns(canvas: Canvas, texts: Sequence[str], y: float) -> float:
    width = (WIDTH - 2 * MARGIN - 20) / 2
    canvas.setFont("Helvetica", 10)
    ends = []
    for x, text in zip((MARGIN, MARGIN + width + 20), texts, strict=True):
        line_y = y
        for line in simpleSplit(text, "Helvetica", 10, width):
            canvas.drawString(x, line_y, line)
            line_y -= 13
        ends.append(line_y)
    return min(ends) - 10
