"""Which PDF library monitor reads PDFs with: text quality, time and memory.

Four PDFs are generated with reportlab (the ``test`` extra), the kinds a
transparency report comes as:

- ``prose``: 40 pages of hard-wrapped paragraphs, words hyphenated at line ends,
  a ligature glyph (U+FB01 in DejaVu Sans), a two-column page, "Page N of 40" footers;
- ``table``: a per-country table of government requests (60 rows, ruled grid);
- ``cjk``: Traditional Chinese in Adobe's CID font STSong-Light (no embedded font):
  香港特別行政區 must come out as those characters;
- ``large``: 300 pages of prose (monitor's MAX_PAGES), for time and memory.

Every library reads every PDF in a fresh subprocess, so its peak resident memory
(``ru_maxrss``, the Python interpreter included) is its own. Quality checks:

- ``cjk``: 香港特別行政區 is found;
- ``ligature``: "financial" is found (the ligature decoded to "fi", NFKC aside);
- ``order``: on the two-column page the left column is read before the right one;
- ``table``: the Hong Kong row comes out as its cells (only pdfplumber finds tables).

``monitor`` is monitor's own extractor (``monitor.pdf``, on pdfplumber): its blocks,
after page footers are dropped, lines joined, columns and tables found.

Run with ``.venv/bin/python -m bench.pdf`` (about a minute).
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIBRARIES = ("pdfplumber", "pdfminer.six", "pypdf", "pypdfium2", "monitor")
_LIGATURE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_PROSE = (
    "The company reviews every government request for user data against applicable law "
    "and its own policies, and publishes the number of requests it received by country. "
    "Requests from the Hong Kong Special Administrative Region are reviewed under the same "
    "standards as requests from any other government."
)
_WORDS = _PROSE.split()


def _canvas(pages_out: io.BytesIO):  # type: ignore[no-untyped-def]
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    return canvas.Canvas(pages_out, pagesize=A4), A4


def prose_pdf(pages: int) -> bytes:
    """Hard-wrapped, hyphenated paragraphs; one two-column page; page footers."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont("DejaVu", _LIGATURE_FONT))
    out = io.BytesIO()
    pdf, (width, height) = _canvas(out)
    for number in range(1, pages + 1):
        pdf.setFont("DejaVu", 10)
        if number == 2:
            _two_columns(pdf, height)
        else:
            y = height - 72
            lines = _wrapped(number)
            for line in lines:
                pdf.drawString(72, y, line)
                y -= 13
        pdf.setFont("Helvetica", 8)
        pdf.drawString(width / 2 - 20, 30, f"Page {number} of {pages}")
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def _wrapped(number: int) -> list[str]:
    words = [*_WORDS[:9], "transpar-", "ency", *_WORDS[9:], "\ufb01nancial", f"p{number}."]
    lines, line = [], ""
    for word in words * 3:
        if len(line) + len(word) > 70 or line.endswith("-"):
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip() if not line.endswith("-") else line + word
    return [*lines, line]


def _two_columns(pdf, height: float) -> None:  # type: ignore[no-untyped-def]
    for index in range(12):
        y = height - 72 - 13 * index
        pdf.drawString(72, y, f"left column line {index} alpha")
        pdf.drawString(320, y, f"right column line {index} omega")


def table_pdf() -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate, Table, TableStyle

    rows = [["Country", "Period", "Requests", "Accounts", "Data produced"]]
    for index in range(60):
        rows.append([f"Country {index:02d}", "H2 2020", str(100 + index), str(7 * index), "50%"])
    rows[30] = ["Hong Kong", "H2 2020", "241", "312", "46%"]
    table = Table(rows)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4).build([table])
    return out.getvalue()


def cjk_pdf() -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    out = io.BytesIO()
    pdf, (_, height) = _canvas(out)
    pdf.setFont("STSong-Light", 12)
    pdf.drawString(72, height - 72, "政府要求報告")
    pdf.drawString(72, height - 100, "我們收到來自香港特別行政區政府的要求。")
    pdf.showPage()
    pdf.save()
    return out.getvalue()


# --- the readers, one per library ----------------------------------------------------


def read(library: str, path: str) -> dict[str, object]:
    """Read a PDF's text (and tables, where the library finds them)."""
    started = time.perf_counter()
    tables: list[list[str | None]] = []
    if library == "pdfplumber":
        import pdfplumber

        with pdfplumber.open(path) as pdf:
            texts = []
            for page in pdf.pages:
                texts.append(page.extract_text())
                tables += [row for table in page.extract_tables() for row in table]
                page.close()
        text = "\n".join(texts)
    elif library == "pdfminer.six":
        from pdfminer.high_level import extract_text

        text = extract_text(path)
    elif library == "pypdf":
        from pypdf import PdfReader

        text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    elif library == "monitor":  # monitor's whole PDF extractor, on pdfplumber
        from monitor.model import ExtractRules
        from monitor.pdf import pdf_document

        blocks = pdf_document(Path(path).read_bytes(), ExtractRules())
        text = "\n".join(block.text for block in blocks)
        tables = [list(block.cells) for block in blocks if block.cells]
    else:
        import pypdfium2

        document = pypdfium2.PdfDocument(path)
        text = "\n".join(page.get_textpage().get_text_range() for page in document)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return {"text": text, "tables": tables, "seconds": seconds, "peak_mb": peak}


def _quality(name: str, result: dict[str, object]) -> str:
    text = str(result["text"])
    if name == "cjk":
        return "ok" if "香港特別行政區" in text else "MISSING"
    if name == "table":
        rows = result["tables"]
        assert isinstance(rows, list)
        found = ["Hong Kong", "H2 2020", "241", "312", "46%"] in rows
        return "rows" if found else ("text only" if "Hong Kong" in text else "MISSING")
    left, right = text.find("left column line 11"), text.find("right column line 0")
    order = "columns" if -1 < left < right else "interleaved"
    ligature = "fi" if "financial" in text else ("U+FB01" if "\ufb01nancial" in text else "lost")
    hyphen = "transparency" if "transparency" in text else "transpar-/ency"
    return f"{order}, ligature {ligature}, {hyphen}"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--read":
        print(json.dumps(read(sys.argv[2], sys.argv[3]), ensure_ascii=False))
        return
    samples = {
        "prose": prose_pdf(40),
        "table": table_pdf(),
        "cjk": cjk_pdf(),
        "large": prose_pdf(300),  # MAX_PAGES: monitor reads no more
    }
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'pdf':6} {'KB':>5} {'library':13} {'seconds':>8} {'peak MB':>8}  quality")
        for name, data in samples.items():
            path = Path(folder) / f"{name}.pdf"
            path.write_bytes(data)
            for library in LIBRARIES:
                command = [sys.executable, "-m", "bench.pdf", "--read", library, str(path)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                result = json.loads(done.stdout)
                quality = _quality(name, result)
                print(
                    f"{name:6} {len(data) // 1024:5} {library:13} {result['seconds']:8.2f} "
                    f"{result['peak_mb']:8}  {quality}"
                )


if __name__ == "__main__":
    main()
