"""Tests of the extract stage.

Golden pages first: each tests/golden/extract/NAME.html is a realistic policy page,
beside NAME.json holding the watch's rules and the blocks expected from it. After a
deliberate change of behaviour, regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_extract.py

and read the diff of the JSON files before committing: a golden file is a reviewed
statement of what the page says, not a snapshot of whatever the code did.

Unit tests of each rule follow, then property tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.errors import ExtractError, FailureKind
from monitor.extract import extract, normalize
from monitor.model import Block, Document, ExtractRules, document_json
from monitor.wording import read, shown_as

GOLDEN = Path(__file__).parent / "golden" / "extract"
PAGES = sorted(path.stem for path in GOLDEN.glob("*.html"))
NO_RULES = ExtractRules()


def _load(name: str) -> tuple[str, ExtractRules, dict[str, object]]:
    html = (GOLDEN / f"{name}.html").read_text(encoding="utf-8")
    spec = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    rules = ExtractRules(**{key: tuple(value) for key, value in spec["rules"].items()})
    return html, rules, spec


def _texts(document: Document) -> list[str]:
    return [block.text for block in document]


def _one(html: str, rules: ExtractRules = NO_RULES) -> Block:
    (block,) = extract(html, rules)
    return block


# --- golden pages --------------------------------------------------------------------


def test_there_are_golden_pages() -> None:
    assert len(PAGES) >= 6


@pytest.mark.parametrize("name", PAGES, ids=PAGES)
def test_golden_page(name: str) -> None:
    html, rules, spec = _load(name)
    actual = [block.to_json() for block in extract(html, rules)]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        spec["blocks"] = actual
        text = json.dumps(spec, ensure_ascii=False, indent=2) + "\n"
        (GOLDEN / f"{name}.json").write_text(text, encoding="utf-8")
    assert actual == spec["blocks"]


@pytest.mark.parametrize("name", PAGES, ids=PAGES)
def test_golden_page_has_no_page_noise(name: str) -> None:
    """Whatever the page, scripts, tokens, banners and link targets never leak."""
    html, rules, _ = _load(name)
    text = "\n".join(_texts(extract(html, rules)))
    for noise in ("csrf", "function(", "window.", "http", "Accept all", "cookies from Meta"):
        assert noise not in text


@pytest.mark.parametrize("name", PAGES, ids=PAGES)
def test_golden_blocks_are_well_formed(name: str) -> None:
    html, rules, _ = _load(name)
    for block in extract(html, rules):
        assert block.kind in {"heading", "paragraph", "item", "row", "term", "definition"}
        assert block.text
        assert block.text == normalize(block.text, strip_numbering=False)
        assert (block.level > 0) == (block.kind == "heading")
        assert bool(block.cells) == (block.kind == "row")
        assert Block.from_json(block.to_json()) == block


@pytest.mark.parametrize("name", PAGES, ids=PAGES)
def test_golden_page_is_deterministic(name: str) -> None:
    html, rules, _ = _load(name)
    assert document_json(extract(html, rules)) == document_json(extract(html, rules))


def test_transparency_report_keeps_hong_kong_rows_and_drops_the_chrome() -> None:
    html, rules, _ = _load("meta-transparency-hong-kong")
    document = extract(html, rules)
    rows = [block for block in document if block.kind == "row"]
    assert (
        Block(
            "row",
            "Hong Kong | 47 | 4.26%",
            (
                "Government Requests for User Data",
                "Hong Kong",
                "Compared with other jurisdictions in the region",
            ),
            cells=("Hong Kong", "47", "4.26%"),
        )
        in rows
    )
    text = "\n".join(_texts(document))
    for chrome in (
        "Last updated",
        "Skip to main content",
        "Related reports",
        "Breadcrumb",
        "Loading",
    ):
        assert chrome not in text


# --- choosing the content ------------------------------------------------------------


def test_select_matching_nothing_names_the_selector() -> None:
    with pytest.raises(ExtractError, match=r"select '#policy' matched nothing") as caught:
        extract("<main><p>Text</p></main>", ExtractRules(select=("main", "#policy")))
    assert caught.value.kind is FailureKind.EXTRACTION


def test_invalid_selector_is_an_extract_error() -> None:
    with pytest.raises(ExtractError, match=r"invalid CSS selector 'p\['"):
        extract("<p>Text</p>", ExtractRules(remove=("p[",)))


def test_remove_matching_nothing_is_fine() -> None:
    assert _one("<p>Text</p>", ExtractRules(remove=(".absent",))).text == "Text"


def test_select_is_a_union_in_document_order_with_nested_matches_once() -> None:
    html = """<div id="b"><p>first</p><div class="x"><p>nested</p></div></div>
        <p>outside</p><div class="x"><p>last</p></div>"""
    document = extract(html, ExtractRules(select=(".x", "#b")))
    assert _texts(document) == ["first", "nested", "last"]


def test_remove_happens_before_select() -> None:
    html = "<div id='c'><p>keep</p><p class='ad'>advert</p></div>"
    rules = ExtractRules(select=("#c",), remove=(".ad",))
    assert _texts(extract(html, rules)) == ["keep"]


def test_main_wins_over_the_rest_of_the_page() -> None:
    html = "<header><p>Brand</p></header><main><p>Policy</p></main><p>Outside</p>"
    assert _texts(extract(html, NO_RULES)) == ["Policy"]


def test_role_main_is_used_without_a_main_element() -> None:
    html = "<div><p>Outside</p></div><div role='main'><p>Policy</p></div>"
    assert _texts(extract(html, NO_RULES)) == ["Policy"]


def test_several_articles_give_their_common_content_without_chrome() -> None:
    html = """<body><header>Site</header><div id="stream"><h1>News</h1>
        <article><p>One</p></article><article><p>Two</p></article></div>
        <aside>Side</aside><footer>Foot</footer></body>"""
    assert _texts(extract(html, NO_RULES)) == ["News", "One", "Two"]


def test_empty_main_falls_back_to_the_body() -> None:
    html = "<header>Site</header><main></main><div><p>Loaded text</p></div>"
    assert _texts(extract(html, NO_RULES)) == ["Loaded text"]


def test_a_cookie_policy_is_not_a_cookie_banner() -> None:
    html = """<body><div class="cookie-banner">We use cookies. OK</div>
        <main class="privacy-cookie-policy"><p>How we use cookies.</p></main></body>"""
    assert _texts(extract(html, NO_RULES)) == ["How we use cookies."]


@pytest.mark.parametrize(
    "banner",
    [
        '<div id="onetrust-consent-sdk"><p>Banner</p></div>',
        '<div class="cookie-consent"><p>Banner</p></div>',
        '<div id="CybotCookiebotDialog"><p>Banner</p></div>',
        '<section class="gdpr-modal"><p>Banner</p></section>',
        '<div class="cc-window cc-banner"><p>Banner</p></div>',
    ],
)
def test_consent_banners_are_dropped_from_the_body(banner: str) -> None:
    html = f"<body>{banner}<div><p>Policy text</p></div></body>"
    assert _texts(extract(html, NO_RULES)) == ["Policy text"]


def test_a_cookie_notice_holding_the_page_title_is_content() -> None:
    html = """<body><nav>Menu</nav><div id="cookie-notice" class="cookie-notice-page">
        <h1>Cookie Notice</h1><p>We use cookies.</p></div></body>"""
    assert _texts(extract(html, NO_RULES)) == ["Cookie Notice", "We use cookies."]


def test_content_sections_named_after_cookies_are_kept() -> None:
    html = """<body><div class="cookie-policy"><h1>Cookie Policy</h1></div>
        <section id="consent"><p>Your consent</p></section>
        <div class="cookies-table"><p>Cookie list</p></div></body>"""
    assert _texts(extract(html, NO_RULES)) == ["Cookie Policy", "Your consent", "Cookie list"]


# --- what a reader never sees --------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        "<p hidden>Secret</p>",
        '<p aria-hidden="true">Secret</p>',
        '<p style="display: none">Secret</p>',
        '<p style="color:red;VISIBILITY:hidden">Secret</p>',
        "<script>var secret = 1;</script>",
        "<style>.secret{}</style>",
        "<template><p>Secret</p></template>",
        "<noscript><p>Secret</p></noscript>",
        "<svg><title>Secret</title></svg>",
        "<iframe>Secret</iframe>",
        "<object>Secret</object>",
        "<!-- Secret -->",
        "<dialog><p>Secret</p></dialog>",
        '<select><option>Secret</option></select><input type="hidden" value="Secret">',
    ],
)
def test_invisible_content_is_dropped(hidden: str) -> None:
    document = extract(f"<main>{hidden}<p>Visible text</p>{hidden}</main>", NO_RULES)
    assert _texts(document) == ["Visible text"]


@pytest.mark.parametrize(
    "hidden",
    [
        "<span hidden>Secret</span>",
        '<span aria-hidden="true">Secret</span>',
        '<span style="display:none">Secret</span>',
        "<script>secret()</script>",
        '<svg viewBox="0 0 1 1"><title>Secret</title></svg>',
    ],
)
def test_invisible_inline_content_is_dropped_and_the_text_after_it_kept(hidden: str) -> None:
    assert _one(f"<p>Visible {hidden}text</p>").text == "Visible text"


def test_hidden_until_found_is_findable_text() -> None:
    assert _one('<main><p hidden="until-found">Collapsed answer</p></main>').text == (
        "Collapsed answer"
    )


def test_link_targets_are_not_text() -> None:
    block = _one('<p>See <a href="https://example.com/hk" title="tip">our policy</a>.</p>')
    assert block.text == "See our policy."


def test_head_and_title_are_not_text() -> None:
    html = "<html><head><title>Title</title></head><body><p>Body</p></body></html>"
    assert _texts(extract(html, NO_RULES)) == ["Body"]


# --- blocks --------------------------------------------------------------------------


def test_headings_give_the_path_of_the_blocks_below_them() -> None:
    html = """<h1>Policy</h1><p>a</p><h2>Requests</h2><h3>Hong Kong</h3><p>b</p>
        <h2>Notice</h2><p>c</p><div role="heading" aria-level="4">Aria</div><p>d</p>"""
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text, b.path, b.level) for b in document] == [
        ("heading", "Policy", (), 1),
        ("paragraph", "a", ("Policy",), 0),
        ("heading", "Requests", ("Policy",), 2),
        ("heading", "Hong Kong", ("Policy", "Requests"), 3),
        ("paragraph", "b", ("Policy", "Requests", "Hong Kong"), 0),
        ("heading", "Notice", ("Policy",), 2),
        ("paragraph", "c", ("Policy", "Notice"), 0),
        ("heading", "Aria", ("Policy", "Notice"), 4),
        ("paragraph", "d", ("Policy", "Notice", "Aria"), 0),
    ]


def test_headings_keep_their_numbers_items_lose_theirs() -> None:
    document = extract("<h2>1. Basic Requirements</h2><ul><li>1. First</li></ul>", NO_RULES)
    assert _texts(document) == ["1. Basic Requirements", "First"]


def test_nested_lists_give_one_item_per_li_with_its_own_text() -> None:
    html = """<ul><li>Details of the authority:
          <ul><li>Name</li><li>Officer<ol><li>Badge</li></ol></li></ul>
        </li><li><p>Account</p><p>details</p></li></ul>"""
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text) for b in document] == [
        ("item", "Details of the authority:"),
        ("item", "Name"),
        ("item", "Officer"),
        ("item", "Badge"),
        ("paragraph", "Account"),  # an item made of paragraphs keeps them apart
        ("paragraph", "details"),
    ]


def test_definition_lists_give_terms_and_definitions() -> None:
    html = "<dl><dt>Content data</dt><dd>Videos <ul><li>Comments</li></ul></dd></dl>"
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text) for b in document] == [
        ("term", "Content data"),
        ("definition", "Videos"),
        ("item", "Comments"),
    ]


def test_table_rows_hold_their_cells_header_cells_included() -> None:
    html = """<table><caption>Requests</caption>
        <tr><th>Country</th><th>Requests</th><th>Notes</th></tr>
        <tr><th scope="row">Hong&nbsp;Kong</th><td>1,234</td><td></td></tr>
        <tr><td>Macao<br>SAR</td><td>—</td><td><a href="/mo">See note</a></td></tr>
        <tr><td> </td><td></td><td></td></tr></table>"""
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text, b.cells) for b in document] == [
        ("paragraph", "Requests", ()),
        ("row", "Country | Requests | Notes", ("Country", "Requests", "Notes")),
        ("row", "Hong Kong | 1,234 | ", ("Hong Kong", "1,234", "")),
        ("row", "Macao SAR | - | See note", ("Macao SAR", "-", "See note")),
    ]


def test_a_layout_table_is_walked_as_content() -> None:
    html = """<table><tr><td><a href="/">Home</a></td>
        <td><h1>Policy</h1><p>Text</p></td></tr></table>"""
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text) for b in document] == [
        ("paragraph", "Home"),
        ("heading", "Policy"),
        ("paragraph", "Text"),
    ]


def test_loose_text_between_blocks_is_not_lost() -> None:
    html = "<main><div>Intro <b>bold</b> text<p>Para</p>tail <a href='#'>link</a></div></main>"
    assert _texts(extract(html, NO_RULES)) == ["Intro bold text", "Para", "tail link"]


def test_inline_elements_flow_and_br_is_a_space() -> None:
    html = "<p>A<span>b</span><em>c</em> <code>d</code><br>e<sup>1</sup><br/>f</p>"
    assert _one(html).text == "Abc d e1 f"


def test_a_link_wrapping_blocks_is_not_inline() -> None:
    html = "<main><a href='/x'><h3>Card title</h3><p>Card text</p></a></main>"
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text) for b in document] == [
        ("heading", "Card title"),
        ("paragraph", "Card text"),
    ]


def test_empty_blocks_are_dropped() -> None:
    html = "<main><p> </p><p>&nbsp;</p><li>\u200b</li><h2></h2><p>Text</p></main>"
    assert _texts(extract(html, NO_RULES)) == ["Text"]


def test_traditional_chinese_survives_nfkc_only() -> None:
    html = "<p>香港特別行政區「個人資料（私隱）條例」第４８６章。</p>"
    assert _one(html).text == "香港特別行政區「個人資料(私隱)條例」第486章。"


def test_deep_markup_is_walked() -> None:
    html = "<div><section>" * 120 + "<p>Deep</p>" + "</section></div>" * 120
    assert _texts(extract(html, NO_RULES)) == ["Deep"]


# --- ignore --------------------------------------------------------------------------


def test_ignore_removes_matches_and_drops_emptied_blocks() -> None:
    html = "<p>Last updated: 14 May 2021</p><p>Policy text (opens in a new tab)</p>"
    rules = ExtractRules(ignore=(r"Last updated: .*", r"\(opens in a new tab\)"))
    assert _texts(extract(html, rules)) == ["Policy text"]


def test_ignore_applies_to_each_cell_of_a_row() -> None:
    html = "<table><tr><td>Hong Kong</td><td>47*</td></tr></table>"
    block = _one(html, ExtractRules(ignore=(r"\*$",)))
    assert (block.text, block.cells) == ("Hong Kong | 47", ("Hong Kong", "47"))


def test_ignore_applies_to_headings_and_their_path() -> None:
    html = "<h2>Requests [beta]</h2><p>Text</p>"
    document = extract(html, ExtractRules(ignore=(r"\[beta\]",)))
    assert [(b.text, b.path) for b in document] == [("Requests", ()), ("Text", ("Requests",))]


def test_invalid_ignore_pattern_is_an_extract_error() -> None:
    with pytest.raises(ExtractError, match=r"invalid ignore pattern '\('"):
        extract("<p>Text</p>", ExtractRules(ignore=("(",)))


# --- inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   \n ",
        "<html><head><title>T</title></head><body></body></html>",
        "<script>x()</script>",
    ],
)
def test_a_page_without_text_is_an_extract_error(html: str) -> None:
    with pytest.raises(ExtractError, match="no text found"):
        extract(html, NO_RULES)


def test_xml_encoding_declaration_is_tolerated() -> None:
    html = '<?xml version="1.0" encoding="UTF-8"?>\n<html><body><p>XHTML</p></body></html>'
    assert _one(html).text == "XHTML"


def test_a_lone_surrogate_does_not_lose_the_rest_of_the_page() -> None:
    html = "\ufeff<?xml version='1.0'?><p>Hong\udcff Kong</p><p>SAR</p>"
    assert _texts(extract(html, NO_RULES)) == ["Hong? Kong", "SAR"]


def test_a_declared_or_meta_charset_does_not_override_the_decoded_text() -> None:
    html = '<?xml version="1.0" encoding="ISO-8859-1"?><meta charset="big5"><p>香港 café</p>'
    assert _one(html).text == "香港 café"


def test_plain_text_is_split_into_paragraphs_on_blank_lines() -> None:
    text = (
        "Law Enforcement Guidelines\n\n1. Requests from\nHong Kong\r\n \r\n\n- Emergency <b>x</b>\n"
    )
    document = extract(text, NO_RULES, content_type="text/plain; charset=utf-8")
    assert [(b.kind, b.text) for b in document] == [
        ("paragraph", "Law Enforcement Guidelines"),
        ("paragraph", "Requests from Hong Kong"),
        ("paragraph", "Emergency <b>x</b>"),
    ]


def test_extraction_is_deterministic() -> None:
    html = (GOLDEN / "meta-transparency-hong-kong.html").read_text(encoding="utf-8")
    documents = {document_json(extract(html, NO_RULES)) for _ in range(5)}
    assert len(documents) == 1


# --- normalize -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "\u2018single\u2019 \u201cdouble\u201d \u201alow\u201b \u201elow\u201f",
            "'single' \"double\" 'low' \"low\"",
        ),
        ("5\u2032 10\u2033", "5' 10\""),
        ("a\u2010b\u2011c\u2012d\u2013e\u2014f\u2015g\u2212h", "a-b-c-d-e-f-g-h"),
        ("wait\u2026", "wait..."),
        ("Hong\u00a0Kong\u202fSAR\u2009now\u3000here", "Hong Kong SAR now here"),
        ("zero\u200bwidth\u200c\u200d\u2060\ufeffjoin", "zerowidthjoin"),
        ("sub\u00adsidiary", "subsidiary"),
        ("  many \t\n spaces  ", "many spaces"),
        ("\uff28\uff2b\uff33\uff21\uff32 \ufb01le", "HKSAR file"),
        ("1. First", "First"),
        ("12) Twelfth", "Twelfth"),
        ("2.3. Sub-section", "Sub-section"),
        ("(4) Fourth", "Fourth"),
        ("(a) is prohibited", "is prohibited"),
        ("b. second", "second"),
        ("iv. fourth", "fourth"),
        ("(xii) twelfth", "twelfth"),
        ("IX. ninth", "ninth"),
        ("\u2022 bullet", "bullet"),
        ("\u00b7 middle dot", "middle dot"),
        ("- dash", "dash"),
        ("* star", "star"),
        ("1. (a) both", "both"),
        ("一、我們收集的資料", "我們收集的資料"),
        ("（二）查閱資料", "查閱資料"),
        ("1.5 million requests", "1.5 million requests"),
        ("2020 was the year", "2020 was the year"),
        ("2020. The year", "2020. The year"),
        ("e.g. this", "e.g. this"),
        ("A. Smith", "A. Smith"),
        ("1.", "1."),
        ("-5 degrees", "-5 degrees"),
        ("香港特別行政區", "香港特別行政區"),
        ("Hong Kong\x1b[2J\x1b]0;pwned\x07 text", "Hong Kong[2J]0;pwned text"),  # no escapes
        ("香港\x9b31m 政府\x00", "香港31m 政府"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_can_keep_numbering() -> None:
    assert normalize("1. Basic\u00a0Requirements", strip_numbering=False) == "1. Basic Requirements"


@settings(max_examples=500)
@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    kept = normalize(text, strip_numbering=False)
    assert normalize(kept, strip_numbering=False) == kept


_MARKERS = st.sampled_from(
    ["1.", "(a)", "iv.", "\u2022", "-", " ", "\u00a0", "\u200b", "\u00ad", "\u2019", "\u2033",
     "e\u0301", "\u0301", "\uff11\uff0e", "\u2474", "一、", "x", "Hong Kong", "\n"]
)  # fmt: skip


@settings(max_examples=500)
@given(st.lists(_MARKERS, max_size=12).map("".join))
def test_normalize_is_idempotent_on_tricky_prefixes(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_wording_drops_controls_and_collapses_whitespace(text: str) -> None:
    controls = "".join(map(chr, [*range(0x09), *range(0x0E, 0x1C), 0x7F]))
    expected = " ".join(text.translate(dict.fromkeys(map(ord, controls))).split())
    assert normalize(text, strip_numbering=False) == expected


_READ_TRICKS = st.sampled_from(
    ["e", "\u0301", "\x01", "\x85", "\u1100", "\u1161", " ", "\n", "\u00a0", "\u3000", "\u200b",
     "\u2019", "\u00a8", "1.", "\u2474", "香"]
)  # fmt: skip


@settings(max_examples=1000)
@given(st.one_of(st.text(), st.lists(_READ_TRICKS, max_size=12).map("".join)))
@example("e\x01\u0301")  # a control character blocks a composition in the raw text only
def test_a_block_reads_as_its_text_normalised(raw: str) -> None:
    """A block's wording and the verbatim text quoted beside it are what normalising
    the page's text gives (extraction reads each text once where that is the same)."""
    reading = read(raw)
    assert reading.wording == normalize(raw, strip_numbering=False)
    for wording in (reading.wording, normalize(raw), reading.wording[1:]):
        assert reading.shown(wording) == shown_as(raw, wording)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("<>/=\"' abpdivlurtxh1&;#\u00a0\u200b香")), max_size=80)
)
def test_extract_returns_blocks_or_raises_extract_error(html: str) -> None:
    """Whatever the markup, nothing but an ExtractError escapes the stage."""
    try:
        document = extract(html, NO_RULES)
    except ExtractError:
        return
    assert all(block.text for block in document)


def test_answers_carry_their_question_in_the_path() -> None:
    html = """<main><h2>FAQ</h2>
    <dl><dt>Do you answer requests from Hong Kong?</dt><dd>No, we do not.</dd></dl>
    <details><summary>And from Macao?</summary><p>Yes, with a court order.</p></details>
    <p>After the questions.</p></main>"""
    document = extract(html, NO_RULES)
    assert [(b.kind, b.text, b.path) for b in document] == [
        ("heading", "FAQ", ()),
        ("term", "Do you answer requests from Hong Kong?", ("FAQ",)),
        ("definition", "No, we do not.", ("FAQ", "Do you answer requests from Hong Kong?")),
        ("term", "And from Macao?", ("FAQ",)),
        ("paragraph", "Yes, with a court order.", ("FAQ", "And from Macao?")),
        ("paragraph", "After the questions.", ("FAQ",)),
    ]


def nested(depth: int) -> str:
    return (
        "<html><body><main><p>Requests are reviewed.</p>"
        + "<div>" * depth
        + "<p>Hong Kong requests are answered.</p>"
        + "</div>" * depth
        + "<p>Requests from Macao are answered too.</p></main></body></html>"
    )


def test_a_page_nested_300_deep_is_read_whole() -> None:
    """libxml2's default stops at 256 levels and silently drops the rest of the page."""
    texts = [b.text for b in extract(nested(300), ExtractRules())]
    assert texts == [
        "Requests are reviewed.",
        "Hong Kong requests are answered.",
        "Requests from Macao are answered too.",
    ]


@pytest.mark.parametrize("depth", [1500, 5000])
def test_a_page_nested_too_deep_to_read_whole_is_an_error_not_half_a_page(depth: int) -> None:
    with pytest.raises(ExtractError, match="nests its elements deeper than"):
        extract(nested(depth), ExtractRules())


# --- expectations: what a good version must hold ----------------------------------------

REPORT = """<html><body><main><h1>Government requests</h1>
<p>Requests by country for the period.</p>
<table class="requests"><tr><th>Country</th><th>Requests</th></tr>{rows}</table>
</main></body></html>"""
HK_ROW = "<tr><td>Hong Kong</td><td>202</td></tr>"


def test_a_page_with_what_is_expected_is_read() -> None:
    rules = ExtractRules(expect_text=("HONG  kong",), expect_css=("table.requests td",))
    assert any("Hong Kong" in b.text for b in extract(REPORT.format(rows=HK_ROW), rules))


@pytest.mark.parametrize(
    ("rules", "missing"),
    [
        (ExtractRules(expect_text=("Hong Kong", "Requests by")), "'Hong Kong'"),
        (ExtractRules(expect_css=("table.requests td",)), "'table.requests td'"),
        (ExtractRules(expect_css=("table.requests",)), None),  # the table has its header
    ],
)
def test_a_page_without_what_is_expected_is_incomplete(
    rules: ExtractRules, missing: str | None
) -> None:
    """An app shell's empty table, or a report without its Hong Kong row, is a partial read."""
    page = REPORT.format(rows="")
    if missing is None:
        assert extract(page, rules)
        return
    with pytest.raises(ExtractError) as info:
        extract(page, rules)
    assert info.value.kind is FailureKind.INCOMPLETE and missing in str(info.value)


def test_expectations_change_the_rules_digest_only_when_given() -> None:
    plain = ExtractRules(select=("main",))
    as_stored = hashlib.sha256(json.dumps([["main"], [], []]).encode()).hexdigest()[:16]
    assert plain.digest() == as_stored  # stores written before `expect` keep their rules
    assert plain.digest() == ExtractRules(select=("main",), expect_text=()).digest()
    assert plain.digest() != ExtractRules(select=("main",), expect_text=("Hong Kong",)).digest()


def test_a_block_keeps_its_verbatim_text_unless_ignore_took_words_out_of_it() -> None:
    page = "<main><p>香港特別行政區，您的請求（更新於 2026-01-02）已暫停。</p></main>"
    [block] = extract(page, ExtractRules())
    assert block.text == "香港特別行政區,您的請求(更新於 2026-01-02)已暫停。"
    assert block.verbatim == "香港特別行政區，您的請求（更新於 2026-01-02）已暫停。"
    [ignored] = extract(page, ExtractRules(ignore=(r"\(更新於 [0-9-]+\)",)))
    assert ignored.text == "香港特別行政區,您的請求已暫停。"
    assert ignored.shown == ""  # a verbatim quote would show what the watch ignores
