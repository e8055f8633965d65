"""PDF and Markdown: golden pairs through the production `pipeline.detect`, and the
PDFs monitor refuses to read (a scan, a cut-off, encrypted, too large or bomb PDF).

Each tests/golden/documents/NAME/ is one case, as in tests/golden/pairs (see
tests/test_golden_pairs.py for expected.yaml's keys; `regenerated: true` renders the
after side as a regenerated file):

- before.md and after.md: two versions of a raw Markdown file, or
- before.yaml and after.yaml: two PDFs, described as tests/pdfs.py reads them and
  generated at test time;
- blocks.json: the blocks the after side is read into (the extractor's golden file).

Regenerate with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_documents.py`` and read
the diff of every expected.yaml and blocks.json before committing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.errors import DocumentTooLarge, ExtractError, FailureKind, UnreadableDocument
from monitor.extract import markdown_document
from monitor.model import Document, ExtractRules, Snapshot
from monitor.pdf import MAX_PAGES, MAX_STREAM_BYTES, pdf_document
from monitor.pipeline import detect, read
from tests.conftest import LocalSite, Page
from tests.harness import query
from tests.pdfs import pdf, scanned_pdf
from tests.test_golden_pairs import _explain, _watch, canonical, change_counts, dump, finding_dict

CASES = Path(__file__).parent / "golden" / "documents"
NAMES = sorted(path.name for path in CASES.iterdir() if path.is_dir())
CASE_KEYS = {"description", "watch", "regenerated", "changes", "findings"}
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def read_side(name: str, side: str, rules: ExtractRules, spec: dict[str, Any]) -> Document:
    folder = CASES / name
    markdown = folder / f"{side}.md"
    if markdown.exists():
        return markdown_document(markdown.read_text("utf-8"), rules)
    pages = yaml.safe_load((folder / f"{side}.yaml").read_text("utf-8"))
    regenerated = side == "after" and bool(spec.get("regenerated"))
    return pdf_document(pdf(pages, regenerated=regenerated), rules)


@pytest.mark.parametrize("name", NAMES)
def test_golden_document_pair(name: str) -> None:
    path = CASES / name / "expected.yaml"
    spec: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
    assert set(spec) <= CASE_KEYS, f"unknown keys {set(spec) - CASE_KEYS}"
    watch, matchers = _watch(yaml.safe_dump(spec.get("watch") or {}, sort_keys=True))
    before, after = (read_side(name, side, watch.rules, spec) for side in ("before", "after"))
    detection = detect(before, after, matchers.for_watch(watch), watch.about)
    actual = json.loads(json.dumps(canonical([finding_dict(f) for f in detection.findings])))
    counts = change_counts(detection.changes)
    blocks_path = CASES / name / "blocks.json"
    blocks = [block.to_json() for block in after]
    if UPDATE:
        spec["findings"] = actual
        if "changes" in spec:
            spec["changes"] = counts
        path.write_text(dump(spec), "utf-8")
        blocks_path.write_text(json.dumps(blocks, ensure_ascii=False, indent=1) + "\n", "utf-8")
    expected = canonical(spec.get("findings") or [])
    if actual != expected:
        pytest.fail(_explain(name, expected, actual, detection.changes), pytrace=False)
    if "changes" in spec:
        assert counts == spec["changes"], f"{name}: diff's changes {counts}"
    assert blocks == json.loads(blocks_path.read_text("utf-8"))


# --- PDFs that cannot be read whole ----------------------------------------------------

PAGES = [[["h1", "Report"], ["p", "Requests from Hong Kong are reviewed like any other."]]]


def refused(body: bytes) -> ExtractError:
    with pytest.raises(ExtractError) as caught:
        pdf_document(body, ExtractRules())
    return caught.value


def test_a_scan_without_a_text_layer_is_a_classified_failure() -> None:
    error = refused(scanned_pdf(4))
    assert isinstance(error, UnreadableDocument) and error.kind is FailureKind.EXTRACTION
    assert str(error) == ("the PDF has 4 pages but no text layer (a scan); monitor cannot read it")


def test_a_truncated_pdf_is_a_classified_failure() -> None:
    body = pdf(PAGES)
    error = refused(body[: len(body) // 2])
    assert isinstance(error, UnreadableDocument)
    assert "cut off or damaged" in str(error)


def test_a_damaged_pdf_is_a_classified_failure() -> None:
    error = refused(b"%PDF-1.4\n" + b"garbage " * 100 + b"\n%%EOF\n")
    assert isinstance(error, UnreadableDocument)
    assert str(error).startswith("the PDF is damaged and cannot be read")


def test_an_encrypted_pdf_is_a_classified_failure() -> None:
    error = refused(pdf(PAGES, encrypt="secret"))
    assert isinstance(error, UnreadableDocument)
    assert str(error) == "the PDF is encrypted; monitor cannot read it"


def test_a_pdf_of_too_many_pages_is_refused_before_reading_them() -> None:
    error = refused(pdf([[["p", "x"]]] * (MAX_PAGES + 1)))
    assert isinstance(error, DocumentTooLarge) and error.kind is FailureKind.TOO_LARGE
    assert f"more than {MAX_PAGES} pages" in str(error)


def test_a_decompression_bomb_stream_is_refused() -> None:
    import zlib

    bomb = zlib.compress(b"\0" * (MAX_STREAM_BYTES + 1), 9)
    body = (
        b"%PDF-1.4\n1 0 obj\n<< /Length "
        + str(len(bomb)).encode()
        + b" /Filter /FlateDecode >>"
        + b"\nstream\n"
        + bomb
        + b"\nendstream\nendobj\n%%EOF\n"
    )
    error = refused(body)
    assert isinstance(error, DocumentTooLarge)
    assert "decompression bomb" in str(error)


def test_page_footers_and_running_headers_are_not_text() -> None:
    blocks = pdf_document(pdf([PAGES[0], PAGES[0]]), ExtractRules())
    texts = [block.text for block in blocks]
    assert not any("Page" in text or "Example transparency report" in text for text in texts)
    assert [block.path[-1] for block in blocks if block.kind == "paragraph"] == [
        "page 1",
        "page 2",
    ]


def test_a_page_inserted_shifts_no_footer_into_a_change() -> None:
    """ "Page 2 of 2" becoming "Page 3 of 3" is not a change; the inserted page is."""
    extra = [["p", "An inserted page about data centres in Singapore."]]
    before = pdf_document(pdf([PAGES[0], PAGES[0]]), ExtractRules())
    after = pdf_document(pdf([PAGES[0], extra, PAGES[0]]), ExtractRules())
    _, matchers = _watch(yaml.safe_dump({}))
    changes = detect(before, after, matchers.for_ids(["HK"]), None).changes
    assert [(change.kind, change.after) for change in changes] == [
        ("added", "An inserted page about data centres in Singapore.")
    ]


# --- end to end: `monitor check` against PDFs and Markdown served on 127.0.0.1 -------

HK_BEFORE = [[["h1", "Government requests"], ["p", "We review requests from Hong Kong."]]]
HK_AFTER = [[["h1", "Government requests"], ["p", "We no longer answer Hong Kong requests."]]]
NOTICE = "Notice\n======\n\n## Content\n\nThe repositories below are unlawful.\n{extra}\n"


def check_twice(tmp_path: Path, site: LocalSite, path: str, pages: tuple[Page, Page]) -> list[Any]:
    """Check the watch on `path` before and after its change; the lines `--json` printed."""
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        f"watches:\n  - {{id: r, platform: Example, name: Report, url: '{site.url(path)}'}}\n"
    )
    args = ["check", "--watchlist", str(watchlist), "--db", str(tmp_path / "m.db"), "--json"]
    lines = []
    for page in pages:
        site[path] = page
        with contextlib.redirect_stdout(io.StringIO()) as out:
            main(args)
        lines += [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if line["type"] == "check"]


def change_alerts(tmp_path: Path) -> list[tuple[Any, ...]]:
    return query(tmp_path / "m.db", "SELECT watch_id FROM alerts WHERE kind = 'change'")


@pytest.mark.parametrize("content_type", ["application/pdf", "text/html; charset=utf-8"])
def test_a_pdf_change_about_hong_kong_is_one_alert(
    tmp_path: Path, site: LocalSite, content_type: str
) -> None:
    headers = {"Content-Type": content_type}
    pages = (Page(pdf(HK_BEFORE), headers=headers), Page(pdf(HK_AFTER), headers=headers))
    lines = check_twice(tmp_path, site, "/report.pdf", pages)
    assert [line["outcome"] for line in lines] == ["new", "changed"]
    assert change_alerts(tmp_path) == [("r",)]


def test_a_scanned_pdf_fails_the_check_saying_so(tmp_path: Path, site: LocalSite) -> None:
    scan = Page(scanned_pdf(2), headers={"Content-Type": "application/pdf"})
    [line] = check_twice(tmp_path, site, "/scan.pdf", (scan,))[:1]
    assert line["outcome"] == "failed" and line["failure"] == "extraction"
    assert "no text layer (a scan)" in line["message"]


def test_a_raw_markdown_file_change_about_hong_kong_is_one_alert(
    tmp_path: Path, site: LocalSite
) -> None:
    """GitHub serves raw files as text/plain: a .md path is read as Markdown."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    before = NOTICE.format(extra="").encode()
    after = NOTICE.format(extra="\nThey are also blocked in Hong Kong.\n").encode()
    pages = (Page(before, headers=headers), Page(after, headers=headers))
    lines = check_twice(tmp_path, site, "/China/2021/notice.md", pages)
    assert [line["outcome"] for line in lines] == ["new", "changed"]
    assert change_alerts(tmp_path) == [("r",)]


def test_bookmarks_are_headings_even_in_the_body_font() -> None:
    """A PDF's outline names its sections: those lines are headings at their level."""
    pages = [
        [["b1", "Government requests"], ["p", "We review every request."]],
        [["b2", "Hong Kong"], ["p", "Requests from Hong Kong are paused."]],
    ]
    blocks = pdf_document(pdf(pages), ExtractRules())
    assert [(b.kind, b.level, b.text) for b in blocks if b.kind == "heading"] == [
        ("heading", 1, "Government requests"),
        ("heading", 2, "Hong Kong"),
    ]
    assert blocks[-1].path == ("Government requests", "Hong Kong", "page 2")


def test_markdown_code_blocks_are_text_and_setext_levels_count() -> None:
    text = "Title\n=====\n\nPart\n----\n\n    indented code about Hong Kong\n\n```\nfenced\n```\n"
    blocks = markdown_document(text, ExtractRules())
    assert [(b.kind, b.level, b.text, b.path) for b in blocks] == [
        ("heading", 1, "Title", ()),
        ("heading", 2, "Part", ("Title",)),
        ("paragraph", 0, "indented code about Hong Kong", ("Title", "Part")),
        ("paragraph", 0, "fenced", ("Title", "Part")),
    ]


def test_an_empty_markdown_file_is_an_extraction_failure() -> None:
    with pytest.raises(ExtractError, match="no text found in the Markdown file"):
        markdown_document("\n\n", ExtractRules())


def test_random_damage_is_read_or_refused_never_a_crash() -> None:
    """Bytes changed at random in a good PDF: each is read, or is an ExtractError."""
    good = pdf([[["h1", "Report"], ["p", "Requests from Hong Kong."], ["table", [["A"], ["1"]]]]])
    rng = random.Random(13)
    for _ in range(60):
        body = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        with contextlib.suppress(ExtractError):
            pdf_document(bytes(body), ExtractRules())


@pytest.mark.parametrize(
    "rules",
    [
        ExtractRules(select=("main",)),
        ExtractRules(remove=("nav",)),
        ExtractRules(expect_css=("td",)),
    ],
    ids=["select", "remove", "expect-css"],
)
def test_css_rules_on_a_pdf_or_markdown_fail_the_check_instead_of_matching_nothing(
    rules: ExtractRules,
) -> None:
    with pytest.raises(ExtractError, match="apply to HTML pages only; this is a PDF"):
        pdf_document(pdf(PAGES), rules)
    with pytest.raises(ExtractError, match="this is a Markdown file"):
        markdown_document("# Notice\n\nHong Kong.\n", rules)


def test_ignore_and_expect_texts_apply_to_a_pdf() -> None:
    rules = ExtractRules(ignore=(r"like any other\.",), expect_text=("Hong Kong",))
    blocks = pdf_document(pdf(PAGES), rules)
    assert blocks[-1].text == "Requests from Hong Kong are reviewed"
    with pytest.raises(ExtractError, match="expected text not found: 'Macau'"):
        pdf_document(pdf(PAGES), ExtractRules(expect_text=("Macau",)))


def test_two_columns_are_read_left_then_right_then_what_lies_below() -> None:
    left = "The left column says that requests from Hong Kong are reviewed. " * 4
    right = "The right column says that no user data was produced for Macau. " * 4
    below = "A full-width paragraph after the columns."
    pages = [[["h1", "Two columns"], ["columns", [left, right]], ["p", below]]]
    text = " ".join(block.text for block in pdf_document(pdf(pages), ExtractRules()))
    assert text.index("left column") < text.index("right column") < text.index(below)
    assert text.count("The left column says") == 4 and text.count("The right column") == 4


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("md-china-notice-hk-paragraph-added", ("Notice of removal", "Content concerned")),
        ("pdf-hk-paragraph-edited", ("Government requests report", "Hong Kong", "page 1")),
        ("pdf-country-table-hk-row", ("Government requests by country", "page 1")),
    ],
)
def test_a_finding_carries_its_heading_path(name: str, path: tuple[str, ...]) -> None:
    """The alert says where the change is: the file's headings (and the PDF's page)."""
    watch, matchers = _watch(yaml.safe_dump({}))
    spec = yaml.safe_load((CASES / name / "expected.yaml").read_text("utf-8"))
    before, after = (read_side(name, side, watch.rules, spec) for side in ("before", "after"))
    findings = detect(before, after, matchers.for_watch(watch), None).findings
    changed = [f.change.path_after for f in findings if f.change is not None]
    assert changed == [path]


def test_raw_html_in_markdown_shows_its_text_as_github_renders_it() -> None:
    text = (
        "<!-- internal note: do not publish -->\n\n| Place | Note |\n|---|---|\n"
        "| Hong<br>Kong | <b>blocked</b> |\n\n<details><summary>Scope</summary>\n\n"
        "Also in Macau.\n\n</details>\n\n<script>track('Hong Kong')</script>\n"
    )
    blocks = markdown_document(text, ExtractRules())
    assert [(b.kind, b.text) for b in blocks] == [
        ("row", "Place | Note"),
        ("row", "Hong Kong | blocked"),
        ("paragraph", "Scope"),
        ("paragraph", "Also in Macau."),
    ]


def snapshot(url: str, content_type: str, body: bytes) -> Snapshot:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    headers = (("content-type", content_type),)
    return Snapshot(url, url, 200, headers, body, "utf-8", at, 0.1)


@pytest.mark.parametrize(
    ("url", "content_type", "kinds"),
    [
        ("https://x.org/n.md", "text/plain; charset=utf-8", ["heading", "paragraph"]),
        ("https://x.org/n", "text/markdown", ["heading", "paragraph"]),
        ("https://x.org/n.txt", "text/plain", ["paragraph", "paragraph"]),
    ],
)
def test_read_picks_markdown_by_type_or_by_a_md_url(
    url: str, content_type: str, kinds: list[str]
) -> None:
    body = b"# Notice\n\nBlocked in Hong Kong.\n"
    assert [b.kind for b in read(snapshot(url, content_type, body), ExtractRules())] == kinds


@pytest.mark.parametrize("content_type", ["application/pdf", "text/html", ""])
def test_read_picks_the_pdf_reader_by_type_or_by_its_first_bytes(content_type: str) -> None:
    blocks = read(snapshot("https://x.org/r", content_type, pdf(PAGES)), ExtractRules())
    assert blocks[-1].text == "Requests from Hong Kong are reviewed like any other."
