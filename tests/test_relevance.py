"""Relevance: the right jurisdiction, the right kind, and the evidence."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.jurisdictions import Match, Watching, catalog, matcher_for
from monitor.model import Block, Change, Document, Finding
from monitor.relevance import assess, number_delta


@pytest.fixture(scope="module")
def matcher() -> Watching:
    return matcher_for(["HK", "MO", "CN", "TW"], catalog())


def p(text: str, *path: str) -> Block:
    return Block("paragraph", text, path)


HK_LINE = "We do not respond to requests from the Hong Kong government."
DOC = (p("Intro."), p(HK_LINE, "Requests"))


def kinds(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.jurisdiction, f.kind, f.where) for f in findings]


def test_added_sentence_naming_hk(matcher: Watching) -> None:
    change = Change("added", "paragraph", after="Requests from Hong Kong SAR are paused.")
    after = (*DOC, p(change.after or ""))
    found = assess(DOC, after, [change], matcher)
    assert kinds(found) == [("HK", "sentence_added", "sentence")]
    assert found[0].terms == ("Hong Kong SAR",)


def test_removed_sentence_and_disappearance(matcher: Watching) -> None:
    change = Change("removed", "paragraph", before=HK_LINE, path_before=("Requests",))
    found = assess(DOC, DOC[:1], [change], matcher)
    assert kinds(found) == [("HK", "sentence_removed", "sentence"), ("HK", "disappeared", "page")]


def test_modified_sentence_that_still_names_hk_elsewhere(matcher: Watching) -> None:
    after_text = "We now respond to requests from the Hong Kong government."
    change = Change(
        "modified",
        "paragraph",
        before=HK_LINE,
        after=after_text,
        segments=(("=", "We "), ("-", "do not"), ("+", "now"), ("=", " respond …")),
    )
    found = assess(DOC, (DOC[0], p(after_text)), [change], matcher)
    assert kinds(found) == [("HK", "sentence_modified", "sentence")]


def test_change_inside_a_section_whose_heading_names_hk(matcher: Watching) -> None:
    change = Change(
        "modified",
        "paragraph",
        before="Response rate: 46%.",
        after="Response rate: 0%.",
        path_before=("Hong Kong",),
        path_after=("Hong Kong",),
    )
    found = assess(DOC, DOC, [change], matcher)
    assert kinds(found) == [("HK", "section_changed", "heading")]


def test_any_change_on_a_page_about_hk(matcher: Watching) -> None:
    change = Change("added", "paragraph", after="Requests are reviewed by our legal team.")
    assert kinds(assess(DOC, DOC, [change], matcher, about="HK")) == [("HK", "page_about", "page")]


def test_unrelated_change_is_no_finding(matcher: Watching) -> None:
    change = Change("added", "paragraph", after="We updated our cookie settings.")
    assert assess(DOC, DOC, [change], matcher) == []


def test_moves_concern_nobody(matcher: Watching) -> None:
    change = Change("moved", "paragraph", before=HK_LINE, after=HK_LINE)
    assert assess(DOC, DOC, [change], matcher) == []


def test_first_appearance_of_macao(matcher: Watching) -> None:
    text = "Users in Macao are served by TikTok Pte. Ltd."
    change = Change("added", "paragraph", after=text)
    found = assess(DOC, (*DOC, p(text)), [change], matcher)
    assert kinds(found) == [("MO", "sentence_added", "sentence"), ("MO", "appeared", "page")]


def test_chinese_taipei_is_taiwan_not_china(matcher: Watching) -> None:
    change = Change("added", "paragraph", after="Requests from Chinese Taipei: 3.")
    assert [f.jurisdiction for f in assess(DOC, DOC, [change], matcher)] == ["TW"]


def test_table_row_with_cell_deltas(matcher: Watching) -> None:
    header = Block(
        "row", "Country | Requests | Data produced", cells=("Country", "Requests", "Data produced")
    )
    old = Block("row", "Hong Kong | 202 | 46 %", cells=("Hong Kong", "202", "46 %"))
    new = Block("row", "Hong Kong | 0 | 0 %", cells=("Hong Kong", "0", "0 %"))
    change = Change(
        "modified",
        "row",
        before=old.text,
        after=new.text,
        cells_before=old.cells,
        cells_after=new.cells,
        index_before=1,
        index_after=1,
    )
    found = assess((header, old), (header, new), [change], matcher)
    assert kinds(found) == [("HK", "table_row", "row")]
    cells = found[0].cells
    assert [(c.column, c.before, c.after, c.delta) for c in cells] == [
        ("Requests", "202", "0", -202.0),
        ("Data produced", "46 %", "0 %", -46.0),
    ]


def test_chinese_text(matcher: Watching) -> None:
    change = Change(
        "modified",
        "paragraph",
        before="我們不回應香港政府的要求。",
        after="我們回應香港特區政府的要求。",
    )
    found = assess(DOC, DOC, [change], matcher)
    assert kinds(found) == [("HK", "sentence_modified", "sentence")]
    assert found[0].terms == ("香港", "香港特區") or "香港" in found[0].terms


@pytest.mark.parametrize(
    ("before", "after", "delta"),
    [
        ("202", "0", -202),
        ("1,234", "1,300", 66),
        ("46%", "0%", -46),
        ("12.5", "13", 0.5),
        ("46%", "12", None),
        ("n/a", "3", None),
        ("2020", "2021 H1", None),
        ("<10", "27", None),  # a bound is no number: a delta of 17 would be made up
        ("12", "> 1000", None),
    ],
)
def test_number_delta(before: str, after: str, delta: float | None) -> None:
    assert number_delta(before, after) == delta


def test_text_moving_out_of_the_hong_kong_section_is_a_finding(matcher: Watching) -> None:
    change = Change(
        "moved",
        "paragraph",
        before="Requests are paused.",
        after="Requests are paused.",
        path_before=("Hong Kong",),
        path_after=("Singapore",),
    )
    found = assess(DOC, DOC, [change], matcher)
    assert kinds(found) == [("HK", "section_changed", "heading")]


def test_text_moving_within_the_hong_kong_section_is_no_finding(matcher: Watching) -> None:
    change = Change(
        "moved",
        "paragraph",
        before="Requests are paused.",
        after="Requests are paused.",
        path_before=("Hong Kong", "Old"),
        path_after=("Hong Kong", "New"),
    )
    assert assess(DOC, DOC, [change], matcher) == []


# --- presence: only the text that differs is read --------------------------------------


class Reading(Watching):
    """The matcher, counting the characters it is given to read."""

    def __init__(self, inner: Watching) -> None:
        super().__init__(inner.matcher, inner.ids)
        self.read = 0

    def find(self, text: str) -> list[Match]:
        self.read += len(text)
        return super().find(text)


def test_a_change_that_names_the_same_places_never_reads_the_pages_whole(
    matcher: Watching,
) -> None:
    filler = [p(f"Paragraph {n}: we review each request for legality.") for n in range(400)]
    before = (*filler, p("We received 12 requests from Hong Kong."), p("China is listed."))
    after = (*filler, p("We received 14 requests from Hong Kong."), p("China is listed."))
    change = Change("modified", "paragraph", before=before[400].text, after=after[400].text)
    reading = Reading(matcher)
    found = assess(before, after, [change], reading)
    assert kinds(found) == [("HK", "sentence_modified", "sentence")]
    page = sum(len(b.text) for b in after)
    assert reading.read < page // 10  # the changed sentences and blocks, not 2 x 25 KB

    # a place that disappears with the change still reads both pages, and is found
    gone = (*filler, p("We received 14 requests."), p("China is listed."))
    removed = Change("modified", "paragraph", before=before[400].text, after=gone[400].text)
    found = assess(before, gone, [removed], matcher)
    assert ("HK", "disappeared", "page") in kinds(found)


def test_a_language_label_in_the_next_block_does_not_hide_a_place(matcher: Watching) -> None:
    """A page that adds "(English)" below a block ending in Macao still names Macao."""
    before = (p("Offices: Hong Kong, Macao"),)
    after = (*before, p("(English)"))
    assert assess(before, after, [], matcher) == []


def _presence_of_whole_pages(before: Document, after: Document, matcher: Watching) -> set[str]:
    """What the pages say about presence, every block of both read: the reference."""

    def named(document: Document) -> set[str]:
        return {m.jurisdiction for b in document for m in matcher.find(b.text)}

    old, new = named(before), named(after)
    return {f"appeared {j}" for j in new - old} | {f"disappeared {j}" for j in old - new}


PIECES = st.sampled_from(
    [
        "Hong Kong",
        "Hong Kong SAR",
        "Macao",
        "China",
        "Chinese (Hong Kong)",
        "Hong Kong (English)",
        "Papua New Guinea",
        "New Mexico",
        "requests",
        "we answered none",
        "(English)",
        "中文（香港）",
        "香港",
        ".",
    ]
)
BLOCK_TEXTS = st.lists(PIECES, min_size=1, max_size=4).map(" ".join)
PAGES = st.lists(BLOCK_TEXTS, max_size=8)


@given(PAGES, PAGES)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_presence_read_from_the_differing_blocks_is_what_the_whole_pages_say(
    matcher: Watching, old: list[str], new: list[str]
) -> None:
    before, after = tuple(map(p, old)), tuple(map(p, new))
    found = assess(before, after, [], matcher)
    presence = {f"{f.kind} {f.jurisdiction}" for f in found}
    assert presence == _presence_of_whole_pages(before, after, matcher)
