"""Alert messages: wording, escaping in every format, and fitting to service limits."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from html import escape
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.messages import (
    FORMATS,
    Message,
    Proof,
    Subject,
    change_message,
    fit,
    headline,
    health_message,
    join,
    name_version,
    render_part,
    trim_spans,
)
from monitor.model import CellDelta, Change, Finding

NAMES = {"HK": "Hong Kong", "CN": "China", "MO": "Macao"}
META = Subject(
    "Meta",
    "Government requests for user data — Hong Kong",
    "https://transparency.meta.com/reports/government-data-requests/country/HK/",
    "meta-gov-requests-hk",
)
TIKTOK = Subject(
    "TikTok",
    "Law Enforcement Guidelines",
    "https://www.tiktok.com/legal/page/global/law-enforcement/en",
    "tiktok-law-enforcement",
)
AT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PROOF = Proof(AT, "a" * 64, "b" * 64, 9, 12)
PAUSED = "We have paused the review of data requests from Hong Kong authorities."


def removed(sentence: str = PAUSED, jurisdiction: str = "HK", note: str = "") -> Finding:
    change = Change("removed", "paragraph", before=sentence, path_before=("Requests", "Hong Kong"))
    return Finding(jurisdiction, "sentence_removed", "sentence", ("Hong Kong",), change, note=note)


def modified(tail: str = " respond to requests from Hong Kong authorities.") -> Finding:
    change = Change(
        "modified",
        "paragraph",
        before=f"We do not{tail}",
        after=f"We now{tail}",
        path_before=("Requests",),
        path_after=("Requests",),
        segments=(("=", "We "), ("-", "do not"), ("+", "now"), ("=", tail)),
    )
    return Finding("HK", "sentence_modified", "sentence", ("Hong Kong",), change)


def row(jurisdiction: str = "HK", name: str = "Hong Kong") -> Finding:
    change = Change(
        "modified",
        "row",
        before=f"{name} | 202 | 46%",
        after=f"{name} | 0 | 0%",
        path_before=("Requests by country",),
        path_after=("Requests by country",),
        cells_before=(name, "202", "46%"),
        cells_after=(name, "0", "0%"),
    )
    cells = (CellDelta("Requests", "202", "0", -202.0), CellDelta("Rate", "46%", "0%", -46.0))
    return Finding(jurisdiction, "table_row", "row", (name,), change, cells)


def message(*findings: Finding, subject: Subject = META) -> Message:
    return change_message(subject, findings, PROOF, jurisdiction_names=NAMES)


# ------------------------------------------------------------------------- wording


def test_sentence_removed_in_hong_kong() -> None:
    alert = message(removed())
    assert alert.title == (
        "Meta · Government requests for user data — Hong Kong · Hong Kong: sentence removed"
    )
    assert alert.severity == "warning"
    assert alert.text == (
        "Meta · Government requests for user data — Hong Kong\n"
        "https://transparency.meta.com/reports/government-data-requests/country/HK/\n"
        "Checked: 2024-05-01 08:00 UTC\n"
        "\n"
        "Hong Kong · sentence removed\n"
        "Why: named in the sentence: Hong Kong\n"
        "Section: Requests › Hong Kong\n"
        f"Removed: [-{PAUSED}-]\n"
        "\n"
        "Watch: meta-gov-requests-hk\n"
        "Versions: 9 → 12\n"
        "Compare: monitor diff meta-gov-requests-hk --from 9 --to 12\n"
        f"Snapshot before (SHA-256): {'a' * 64}\n"
        f"Snapshot after (SHA-256): {'b' * 64}"
    )
    assert f"Removed: ~~{PAUSED}~~" in alert.markdown
    assert "**Hong Kong · sentence removed**" in alert.markdown
    assert "<https://transparency.meta.com/reports/government-data-requests/country/HK/>" in (
        alert.markdown
    )
    assert f"{PAUSED}<span" in alert.html and "<del " in alert.html


def test_modified_sentence_marks_the_changed_words_before_and_after() -> None:
    alert = message(modified())
    assert alert.title.endswith("· Hong Kong: sentence modified")
    tail = "respond to requests from Hong Kong authorities."
    assert f"Before: We [-do not-] {tail}\nAfter: We {{+now+}} {tail}" in alert.text
    assert f"Before: We ~~do not~~ {tail}\nAfter: We **now** {tail}" in alert.markdown
    assert re.search(r"We <del [^>]*>.*do not.*</del> respond", alert.html)
    assert re.search(r"We <ins [^>]*>.*now.*</ins> respond", alert.html)


def test_edit_markers_keep_spaces_outside_so_markdown_renders_them() -> None:
    change = Change(
        "modified",
        "paragraph",
        before="a b",
        after="a c",
        segments=(("=", "a"), ("-", " b"), ("+", " c")),
    )
    alert = message(Finding("HK", "sentence_modified", "sentence", ("HK",), change))
    assert "Before: a ~~b~~" in alert.markdown
    assert "After: a **c**" in alert.markdown


def test_table_row_shows_cell_deltas() -> None:
    alert = message(row())
    assert alert.title.endswith("· Hong Kong: table row changed")
    assert "Section: Requests by country" in alert.text
    assert "Row: Hong Kong | 0 | 0%" in alert.text
    assert "Requests: 202 → 0 (−202)\nRate: 46% → 0% (−46)" in alert.text
    assert "Row: Hong Kong \\| 0 \\| 0%" in alert.markdown
    assert "Requests:</span> 202 → 0 (−202)" in alert.html


@pytest.mark.parametrize(
    ("delta", "shown"),
    [(12.0, "+12"), (-202.0, "−202"), (0.5, "+0.5"), (-1234567.0, "−1,234,567"), (0.0, "+0")],
)
def test_deltas_are_signed_and_never_in_exponent_notation(delta: float, shown: str) -> None:
    finding = Finding("HK", "table_row", "row", ("HK",), None, (CellDelta("#2", "a", "b", delta),))
    assert f"#2: a → b ({shown})" in message(finding).text


def test_several_findings_across_jurisdictions() -> None:
    alert = message(removed(), modified(), row("CN", "China"))
    assert alert.title == (
        "Meta · Government requests for user data — Hong Kong · Hong Kong + China: 3 changes"
    )
    assert alert.text.count("\n\n") == 4  # head, three findings, proof
    assert alert.text.index("Hong Kong · sentence removed") < alert.text.index(
        "China · table row changed"
    )
    many = message(removed(), row("CN", "China"), removed(jurisdiction="MO"), row("TW", "Taiwan"))
    assert many.title.endswith("· Hong Kong + Macao + China + 1 more: 3 changes")


def test_one_change_is_one_entry_naming_every_place_it_concerns() -> None:
    sentence = "香港特別行政區，您的資料請求已暫停。"
    change = Change("removed", "paragraph", before=sentence, path_before=("中國",))
    hk = Finding("HK", "sentence_removed", "sentence", ("香港特別行政區",), change)
    cn = Finding("CN", "section_changed", "heading", ("中國",), change)
    alert = message(hk, cn)
    assert alert.title.endswith("· Hong Kong + China: sentence removed")
    assert alert.text.count(sentence) == 1
    assert "Hong Kong + China · sentence removed" in alert.text
    assert (
        "Why: named in the sentence: 香港特別行政區 (Hong Kong); "
        "named in the section heading: 中國 (China)"
    ) in alert.text


def test_a_paragraph_removed_whole_is_one_entry_not_one_per_sentence() -> None:
    section = ("Requests", "Hong Kong")
    heading = Change("removed", "heading", before="Hong Kong", path_before=section[:1])
    sentences = ["We paused requests.", "We review each case.", "Appeals go to Dublin."]
    removals = [
        Change("removed", "paragraph", before=s, path_before=section, index_before=7)
        for s in sentences
    ]
    findings = [
        Finding(j, "sentence_removed", "heading", ("Hong Kong",), heading) for j in ("HK", "CN")
    ]
    for change in removals:
        findings += [Finding("HK", "section_changed", "heading", ("Hong Kong",), change)]
    findings.append(Finding("HK", "disappeared", "page", ("Hong Kong",)))
    alert = message(*findings)
    assert alert.title.endswith(": 3 changes")
    assert "Hong Kong · 3 sentences changed in the section" in alert.text
    assert f"Removed: [-{' '.join(sentences)}-]" in alert.text
    assert "Hong Kong · no longer named on the page" in alert.text


def test_a_revert_says_so() -> None:
    note = "revert: the page is back to its state of version 9"
    alert = message(removed(note=note), modified())
    assert not alert.title.endswith("(revert)")  # only one finding carries the note
    alert = message(removed(note=note))
    assert alert.title.endswith("Hong Kong: sentence removed (revert)")
    assert f"Note: {note}" in alert.text
    assert f"_Note: {note}_" in alert.markdown
    assert f'font-style:italic">Note: {note}</p>' in alert.html


def test_page_level_findings() -> None:
    gone = Finding("HK", "disappeared", "page", ("Hong Kong", "HKSAR"))
    about = Finding("HK", "page_about", "page", (), Change("added", "paragraph", after="New."))
    alert = message(gone, about)
    assert "Hong Kong · no longer named on the page" in alert.text
    assert "Why: named on the page: Hong Kong, HKSAR" in alert.text
    assert "Why: the page is about Hong Kong" in alert.text
    assert "Added: {+New.+}" in alert.text


def test_unknown_jurisdiction_codes_are_shown_as_they_are() -> None:
    alert = change_message(META, [removed(jurisdiction="XJ")], PROOF, jurisdiction_names={})
    assert alert.title.endswith("· XJ: sentence removed")


def test_times_are_utc_whatever_zone_they_come_in() -> None:
    hong_kong = timezone(timedelta(hours=8))
    proof = Proof(datetime(2024, 5, 1, 16, 0, tzinfo=hong_kong))
    alert = change_message(META, [removed()], proof, jurisdiction_names=NAMES)
    assert "Checked: 2024-05-01 08:00 UTC" in alert.text
    assert "Snapshot" not in alert.text  # no hashes known, none invented


def test_health_failing() -> None:
    alert = health_message(
        TIKTOK,
        failing=True,
        reason="blocked",
        message="HTTP 403: a challenge page",
        failures=3,
        since=AT,
        at=AT + timedelta(hours=2),
    )
    assert (
        alert.title == "TikTok · Law Enforcement Guidelines: failing (blocked) — 3 checks in a row"
    )
    assert alert.severity == "failure"
    assert "Failing: blocked" in alert.text
    assert "Failing since: 2024-05-01 08:00 UTC" in alert.text
    assert "Last error: HTTP 403: a challenge page" in alert.text
    assert "bot wall" in alert.text
    assert "Checked: 2024-05-01 10:00 UTC" in alert.text
    assert "Watch: tiktok-law-enforcement" in alert.text


def test_health_failing_reason_words() -> None:
    alert = health_message(
        TIKTOK, failing=True, reason="too_large", message="", failures=1, since=None, at=AT
    )
    assert alert.title.endswith("failing (too large) — 1 check in a row")


def test_health_recovered() -> None:
    alert = health_message(
        TIKTOK, failing=False, reason="blocked", message="", failures=4, since=AT, at=AT
    )
    assert alert.title == "TikTok · Law Enforcement Guidelines: recovered"
    assert alert.severity == "success"
    assert "Recovered after 4 failed checks (blocked)" in alert.text
    assert "bot wall" not in alert.text


# ------------------------------------------------------------------------ escaping

SCRIPT = "<script>alert(1)</script> Hong Kong"


def test_page_text_is_escaped_in_html() -> None:
    hostile = Subject('<b onmouseover="x">Meta</b>', "Policy & <i>terms</i>", META.url, "w")
    change = Change(
        "modified",
        "row",
        before="<img src=x onerror=alert(1)> | 1",
        after="<img src=x onerror=alert(1)> | 2",
        path_before=("<h1>Requests</h1>",),
        path_after=("<h1>Requests</h1>",),
    )
    cells = (CellDelta("<th>Count</th>", "1", "<b>2</b>", 1.0),)
    findings = [
        removed(SCRIPT),
        Finding("HK", "table_row", "row", ("<HK>",), change, cells, note="<u>note</u>"),
    ]
    alert = change_message(hostile, findings, PROOF, jurisdiction_names={"HK": "<em>HK</em>"})
    html = alert.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Hong Kong" in html
    assert "<script" not in html
    for raw in ("<b ", "<i>", "<img", "<h1>", "<th>", "<b>2", "<u>", "<em>", "<HK>"):
        assert raw not in html
    assert "&lt;b onmouseover=&quot;x&quot;&gt;Meta&lt;/b&gt;" in html
    assert "Policy &amp; &lt;i&gt;terms&lt;/i&gt;" in html
    assert_well_formed(html)


def test_only_http_urls_become_links_and_attributes_are_quoted() -> None:
    evil = Subject("X", "Y", "javascript:alert(1)", "w")
    html = message(removed(), subject=evil).html
    assert "href" not in html
    quoted = Subject("X", "Y", 'https://example.org/?a="><script>', "w")
    html = message(removed(), subject=quoted).html
    assert 'href="https://example.org/?a=&quot;&gt;&lt;script&gt;"' in html
    assert "<script" not in html


def test_markdown_special_characters_in_page_text_are_escaped() -> None:
    sentence = r"Use *bold* _it_ `code` [link](x) <tag> #1 a|b ~~s~~ back\slash"
    alert = message(removed(sentence))
    expected = r"Use \*bold\* \_it\_ \`code\` \[link\](x) \<tag\> \#1 a\|b \~\~s\~\~ back\\slash"
    assert f"Removed: ~~{expected}~~" in alert.markdown
    assert f"Removed: [-{sentence}-]" in alert.text  # text is shown as it is


def test_line_breaks_and_control_characters_in_page_text_stay_on_one_line() -> None:
    alert = message(removed("First line\n\nsecond line\x1b[31m red"))
    assert "Removed: [-First line second line [31m red-]" in alert.text
    assert "\x1b" not in alert.markdown + alert.html
    assert alert.html.count("\n") == 4  # open, head, finding, proof, close


def test_headline() -> None:
    assert headline("A <b> & *c*", "text") == "A <b> & *c*"
    assert headline("A <b> & *c*", "markdown") == r"**A \<b\> & \*c\***"
    assert ">A &lt;b&gt; &amp; *c*</p>" in headline("A <b> & *c*", "html")


# ------------------------------------------------------------------------- fitting


def test_a_short_body_is_one_chunk_as_it_is() -> None:
    alert = message(removed(), modified())
    for fmt in FORMATS:
        assert fit(alert, 100_000, fmt) == [alert.body(fmt)]


def test_chunks_are_numbered_with_head_first_and_proof_last() -> None:
    alert = message(*(removed(f"S{i}X " + "word " * 40) for i in range(6)))
    chunks = fit(alert, 800, "text")
    total = len(chunks)
    assert total > 2
    for number, chunk in enumerate(chunks, 1):
        assert len(chunk) <= 800
        assert chunk.startswith(f"({number}/{total})\n\n")
    assert "Checked: 2024-05-01 08:00 UTC" in chunks[0]
    assert all("Checked:" not in c for c in chunks[1:])
    assert "b" * 64 in chunks[-1]
    assert all("b" * 64 not in c for c in chunks[:-1])


def test_html_chunks_are_each_a_whole_document() -> None:
    alert = message(*(removed(f"S{i}X " + "<b>word</b> & " * 30) for i in range(6)))
    chunks = fit(alert, 2500, "html")
    assert len(chunks) > 1
    for number, chunk in enumerate(chunks, 1):
        assert len(chunk) <= 2500
        assert f"({number}/{len(chunks)})</p>" in chunk
        assert "<b>" not in chunk
        assert_well_formed(chunk)


def test_a_finding_too_long_alone_is_trimmed_inside_its_sentences() -> None:
    tail = " and then " + "unchanged words " * 200 + "about Hong Kong."
    alert = message(modified(tail))
    for fmt, limit in (("text", 900), ("markdown", 900), ("html", 2500)):
        chunks = fit(alert, limit, fmt)
        assert all(len(c) <= limit for c in chunks)
        finding = next(c for c in chunks if "sentence modified" in c)
        assert "…" in finding
        assert "do not" in finding and "now" in finding  # the edit survives the trim
        if fmt == "html":
            assert_well_formed(finding)


def test_trimmed_html_never_cuts_an_entity_or_tag() -> None:
    alert = message(removed("&<>\"' " * 400))
    for limit in range(1200, 1400, 7):
        for chunk in fit(alert, limit, "html"):
            assert len(chunk) <= limit
            assert_well_formed(chunk)
            assert not re.search(r"&[a-z#0-9]*(?![a-z#0-9;])", chunk.replace("&nbsp;", ""))


def test_a_message_rebuilt_from_stored_strings_splits_at_the_same_places() -> None:
    alert = message(*(removed(f"S{i}X " + "word " * 40) for i in range(6)))
    stored = Message(alert.title, alert.text, alert.markdown, alert.html)
    for fmt, limit in (("text", 800), ("markdown", 800), ("html", 2000)):
        assert fit(stored, limit, fmt) == fit(alert, limit, fmt)


def test_a_message_round_trips_through_json_with_its_parts() -> None:
    alert = message(removed(SCRIPT), modified(), row("CN", "China"))
    again = Message.from_json(alert.to_json())
    assert again == alert
    assert again.parts == alert.parts
    assert fit(again, 900, "html") == fit(alert, 900, "html")


def test_trim_spans_keeps_the_edits_and_the_words_next_to_them() -> None:
    spans = (("=", "x" * 50 + " left"), ("-", "old"), ("+", "new"), ("=", "right " + "y" * 50))
    trimmed = trim_spans(spans, 30)
    assert sum(len(t) for _, t in trimmed) <= 30 + 2
    assert trimmed[1:3] == (("-", "old"), ("+", "new"))
    assert trimmed[0][1].startswith("…") and trimmed[0][1].endswith("left")
    assert trimmed[3][1].startswith("right") and trimmed[3][1].endswith("…")
    assert trim_spans(spans, 1000) == spans
    cut = trim_spans((("-", "z" * 100),), 20)
    assert cut == (("-", "z" * 19 + "…"),)


class _Balance(HTMLParser):
    VOID = frozenset({"br", "img", "hr", "meta", "input", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()


def assert_well_formed(fragment: str) -> None:
    parser = _Balance()
    parser.feed(fragment)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"


def escaped(sentence: str, fmt: str) -> str:
    if fmt == "html":
        return escape(sentence, quote=True)
    if fmt == "markdown":
        return re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", sentence)
    return sentence


WORDS = st.text(alphabet="abcdefghij<>&*_ ", min_size=1, max_size=12).map(
    lambda w: w.replace(" ", "") or "w"
)


@settings(max_examples=80, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    sizes=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12),
    limit=st.integers(min_value=0, max_value=4000),
    data=st.data(),
)
def test_fit_never_splits_a_finding(
    fmt: str, sizes: list[int], limit: int, data: st.DataObject
) -> None:
    limit += 1500 if fmt == "html" else 400  # room for the head, the proof and the markup
    sentences = [
        " ".join([f"S{i}X", *data.draw(st.lists(WORDS, min_size=size, max_size=size))])
        for i, size in enumerate(sizes)
    ]
    alert = message(*(removed(s) for s in sentences))
    chunks = fit(alert, limit, fmt)
    assert all(len(chunk) <= limit for chunk in chunks)
    assert "Checked:" in chunks[0] and "b" * 64 in chunks[-1]
    if len(chunks) > 1:
        for number, chunk in enumerate(chunks, 1):
            assert f"({number}/{len(chunks)})" in chunk.split("\n")[1 if fmt == "html" else 0]
    if fmt == "html":
        for chunk in chunks:
            assert_well_formed(chunk)
    widest = f"({len(alert.parts)}/{len(alert.parts)})"
    room = limit - len(join([""], fmt, label=widest))
    for i, (sentence, part) in enumerate(zip(sentences, alert.parts[1:-1], strict=True)):
        whole = [c for c in chunks if escaped(sentence, fmt) in c]
        lead = [c for c in chunks if re.search(rf"\bS{i}X\b", c)]
        assert len(lead) == 1, f"finding {i} is in {len(lead)} chunks"
        if not whole:  # trimmed: allowed only when the finding alone is too long
            assert len(render_part(part, fmt)) > room
            assert "…" in lead[0]
        else:
            assert len(whole) == 1


def test_the_store_names_the_new_version_in_a_stored_change_alert() -> None:
    """Issue 15, bug 3: the alert is built before the store gives the version its id."""
    injected = '["#",""] --to 666'  # page text that looks like the slot is left alone
    pending = change_message(
        META,
        [removed(f"{PAUSED} {injected}")],
        replace(PROOF, version_after=None),
        jurisdiction_names=NAMES,
    )
    assert "Versions: 9 → —\n" in pending.text
    assert "Compare: monitor diff meta-gov-requests-hk --from 9 --to —\n" in pending.text
    named = Message.from_json(name_version(pending.to_json(), 14))
    assert named.text == message(removed(f"{PAUSED} {injected}")).text.replace("12", "14")
    assert "--from 9 --to 14`" in named.markdown and "--from 9 --to 14</code>" in named.html
    health = health_message(
        META, failing=True, reason="transient", message="x", failures=3, since=None, at=AT
    ).to_json()
    assert name_version(health, 14) == health


def test_an_alert_quotes_at_most_its_limit_of_changes_and_counts_the_rest() -> None:
    flood = [removed(f"Hong Kong sentence number {n}.") for n in range(200)]
    alert = change_message(META, flood, PROOF, jurisdiction_names=NAMES, limit=25)
    assert alert.title.endswith("· Hong Kong: 200 changes")
    assert alert.text.count("Hong Kong · sentence removed") == 25
    assert "Hong Kong sentence number 24." in alert.text
    assert "Hong Kong sentence number 25." not in alert.text
    assert "… and 175 more changes\nAll: monitor diff meta-gov-requests-hk --from 9 --to 12" in (
        alert.text
    )
    assert len(alert.to_json()) < 20_000  # the stored row stays small too
