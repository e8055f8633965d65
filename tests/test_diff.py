"""Tests of the diff stage.

Readable cases first: each is a pair of small versions and the changes a reader
expects, written as (kind, before, after). Golden pairs follow: each
tests/golden/diff/NAME.json holds two versions of a realistic page and the changes
expected between them. After a deliberate change of behaviour, regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_diff.py

and read the diff of the JSON files before committing. Then sentence splitting, word
segments, a pathological page, and property tests.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.diff import compare, split_sentences, word_segments
from monitor.model import Block, Change, Document

GOLDEN = Path(__file__).parent / "golden" / "diff"
PAIRS = sorted(path.stem for path in GOLDEN.glob("*.json"))

Summary = tuple[str, str | None, str | None]


def H(text: str, *path: str, level: int = 2) -> Block:
    return Block("heading", text, path, level=level)


def P(text: str, *path: str) -> Block:
    return Block("paragraph", text, path)


def LI(text: str, *path: str) -> Block:
    return Block("item", text, path)


def TR(*cells: str, path: tuple[str, ...] = ()) -> Block:
    return Block("row", " | ".join(cells), path, cells=cells)


def _summary(changes: list[Change]) -> list[Summary]:
    return [(change.kind, change.before, change.after) for change in changes]


S1 = "Meta responds to government requests for data in accordance with applicable law."
S2 = "Each request we receive is carefully reviewed for legal sufficiency."
S3 = "We may reject requests that appear overly broad or vague."
S4 = "We notify users before disclosing their information."
NEW = "Since July 6, 2020, we have paused reviewing requests from Hong Kong."
GERMAN = "Gemäß Art. 6 Abs. 1 lit. f DSGVO, z. B."
HK = ("Requests", "Hong Kong")
MO = ("Requests", "Macau")

CASES = [
    pytest.param(
        (H("Requests"), P(f"{S1} {S2}", "Requests")),
        (H("Requests"), P(f"{S1} {S2}", "Requests")),
        [],
        id="identical",
    ),
    pytest.param(
        (P(f"{S1} {S2} {S3}"),),
        (P(f"{S1} {NEW} {S2} {S3}"),),
        [("added", None, NEW)],
        id="sentence added in the middle of a paragraph",
    ),
    pytest.param(
        (P(f"{S1} {S2} {S3}"),),
        (P(f"{S1} {S3}"),),
        [("removed", S2, None)],
        id="sentence removed",
    ),
    pytest.param(
        (P(f"{S1} We do not provide data to the Hong Kong government. {S3}"),),
        (P(f"{S1} We do not provide data to the Hong Kong SAR government. {S3}"),),
        [
            (
                "modified",
                "We do not provide data to the Hong Kong government.",
                "We do not provide data to the Hong Kong SAR government.",
            )
        ],
        id="sentence modified",
    ),
    pytest.param(
        (P(f"{S1} {S2} {S3} {S4}"),),
        (P(f"{S1} {S2}"), P(f"{S3} {S4}")),
        [],
        id="paragraph split into two with the same sentences",
    ),
    pytest.param(
        (P(f"{S1} {S2}"), P(S3), P(S4)),
        (P(f"{S1} {S2} {S3}"), P(S4)),
        [],
        id="two paragraphs merged",
    ),
    pytest.param(
        (P(f"{S1} {S2}"), P(f"{S3} {S4}")),
        (P(S1), P(f"{S2} {S3}"), LI(S4)),
        [],
        id="re-flowed across paragraphs and into a list item",
    ),
    pytest.param(
        (H("Requests"), P(S1, "Requests"), H("Notice"), P(S4, "Notice")),
        (H("Requests"), P(S1, "Requests"), P(S4, "Requests"), H("Notice")),
        [("moved", S4, S4)],
        id="block moved to another section",
    ),
    pytest.param(
        (H("Hong Kong", "Requests"), P(S1, *HK), H("Macau", "Requests"), P(S2, *MO)),
        (H("Macau", "Requests"), P(S2, *MO), H("Hong Kong", "Requests"), P(S1, *HK)),
        [("moved", "Hong Kong", "Hong Kong"), ("moved", S1, S1)],
        id="sections reordered",
    ),
    pytest.param(
        (
            TR("Country", "Requests", "Produced"),
            TR("Hong Kong", "202", "46%"),
            TR("Macau", "3", "0%"),
        ),
        (TR("Country", "Requests", "Produced"), TR("Hong Kong", "0", "0%"), TR("Macau", "3", "0%")),
        [("modified", "Hong Kong | 202 | 46%", "Hong Kong | 0 | 0%")],
        id="table row modified, matched by its header",
    ),
    pytest.param(
        (TR("Hong Kong", "202"), TR("Macau", "3")),
        (TR("Hong Kong", "203"), TR("Macau", "4")),
        [
            ("modified", "Hong Kong | 202", "Hong Kong | 203"),
            ("modified", "Macau | 3", "Macau | 4"),
        ],
        id="every row modified",
    ),
    pytest.param(
        (TR("Country", "Requests"), TR("Macau", "3")),
        (TR("Country", "Requests"), TR("Hong Kong", "202"), TR("Macau", "3")),
        [("added", None, "Hong Kong | 202")],
        id="table row added",
    ),
    pytest.param(
        (TR("Japan", "12"), TR("Hong Kong", "202")),
        (TR("Japan", "12"), TR("Macau", "202")),
        [("removed", "Hong Kong | 202", None), ("added", None, "Macau | 202")],
        id="rows with different headers are different rows",
    ),
    pytest.param(
        (H("Government requests"), P(S1, "Government requests")),
        (H("Government data requests"), P(S1, "Government data requests")),
        [("modified", "Government requests", "Government data requests")],
        id="heading renamed",
    ),
    pytest.param(
        (P("如你居於香港,香港政府可要求查閱資料。我們會審核每項要求。"),),
        (P("如你居於香港,香港特區政府可要求查閱資料。我們會審核每項要求。"),),
        [
            (
                "modified",
                "如你居於香港,香港政府可要求查閱資料。",
                "如你居於香港,香港特區政府可要求查閱資料。",
            )
        ],
        id="Chinese modification",
    ),
    pytest.param(
        (P("香港政府からの要請には応じます。詳細は下記の通りです。"),),
        (P("香港政府からの要請には応じません。詳細は下記の通りです。"),),
        [
            (
                "modified",
                "香港政府からの要請には応じます。",
                "香港政府からの要請には応じません。",
            )
        ],
        id="Japanese modification",
    ),
    pytest.param(
        (P(f"{GERMAN} bei Anfragen aus Hongkong. Am 1. Juli gilt dies."),),
        (P(f"{GERMAN} bei Anfragen aus China. Am 1. Juli gilt dies."),),
        [
            (
                "modified",
                f"{GERMAN} bei Anfragen aus Hongkong.",
                f"{GERMAN} bei Anfragen aus China.",
            )
        ],
        id="German abbreviations",
    ),
    pytest.param(
        (P("Voir p. ex. l'art. 5. M. Dupont répond aux demandes de Hong Kong. Merci."),),
        (P("Voir p. ex. l'art. 5. M. Dupont ne répond plus aux demandes de Hong Kong. Merci."),),
        [
            (
                "modified",
                "Voir p. ex. l'art. 5. M. Dupont répond aux demandes de Hong Kong.",
                "Voir p. ex. l'art. 5. M. Dupont ne répond plus aux demandes de Hong Kong.",
            )
        ],
        id="French abbreviations",
    ),
    pytest.param(
        (P(f"{S1} {S2}"),),
        (P(f"{S1} The weather in Lisbon is mild in winter."),),
        [("removed", S2, None), ("added", None, "The weather in Lisbon is mild in winter.")],
        id="unrelated sentence replaced: removed and added, not modified",
    ),
    pytest.param(
        (H("Hong Kong"), P(f"{S1} {NEW}", "Hong Kong"), H("Macau"), P(S2, "Macau")),
        (H("Hong Kong"), P(S1, "Hong Kong"), H("Macau"), P(f"{S2} {NEW}", "Macau")),
        [("moved", NEW, NEW)],
        id="sentence moved to another section",
    ),
    pytest.param(
        (LI("Hong Kong"), LI("Macau")),
        (P("Hong Kong"), P("Macau")),
        [],
        id="list items become paragraphs",
    ),
    pytest.param(
        (H("Hong Kong"), P(S1)),
        (P("Hong Kong"), P(S1)),
        [("removed", "Hong Kong", None), ("added", None, "Hong Kong")],
        id="a heading is not a paragraph",
    ),
]


@pytest.mark.parametrize(("before", "after", "expected"), CASES)
def test_compare(before: Document, after: Document, expected: list[Summary]) -> None:
    assert _summary(compare(before, after)) == expected


def test_modified_sentence_has_word_segments_and_paths() -> None:
    before = (H("Hong Kong", "Requests"), P(f"{S1} We review requests from Hong Kong.", *HK))
    after = (H("Hong Kong", "Requests"), P(f"{S1} We have paused requests from Hong Kong.", *HK))
    (change,) = compare(before, after)
    assert change.kind == "modified"
    assert change.block_kind == "paragraph"
    assert change.segments == (
        ("=", "We "),
        ("-", "review"),
        ("+", "have paused"),
        ("=", " requests from Hong Kong."),
    )
    assert (change.path_before, change.path_after) == (HK, HK)
    assert (change.index_before, change.index_after) == (1, 1)
    assert change.path == HK


def test_modified_row_carries_its_cells() -> None:
    path = ("Government requests",)
    before = (TR("Hong Kong", "202", "46%", path=path),)
    after = (TR("Hong Kong", "0", "0%", path=path),)
    (change,) = compare(before, after)
    assert change.block_kind == "row"
    assert change.cells_before == ("Hong Kong", "202", "46%")
    assert change.cells_after == ("Hong Kong", "0", "0%")
    assert change.path == path


def test_chinese_segments_are_characters() -> None:
    (change,) = compare((P("香港政府。"),), (P("香港特區政府。"),))
    assert change.segments == (("=", "香港"), ("+", "特區"), ("=", "政府。"))


def test_moved_block_has_both_places() -> None:
    before = (H("Requests"), P(S1, "Requests"), H("Notice"), P(S4, "Notice"))
    after = (H("Requests"), P(S1, "Requests"), P(S4, "Requests"), H("Notice"))
    (change,) = compare(before, after)
    assert change.kind == "moved"
    assert (change.path_before, change.path_after) == (("Notice",), ("Requests",))
    assert (change.index_before, change.index_after) == (3, 2)


def test_changes_come_in_reading_order_with_removals_in_place() -> None:
    before = (P(f"{S1} {S2}"), P("Alpha one is first."), P(S3), P("Omega is the last one."))
    after = (P(f"{NEW} {S1}"), P(S3), P("Omega is the very last one."), P(S4))
    assert _summary(compare(before, after)) == [
        ("added", None, NEW),
        ("removed", S2, None),
        ("removed", "Alpha one is first.", None),
        ("modified", "Omega is the last one.", "Omega is the very last one."),
        ("added", None, S4),
    ]


def test_removed_sentence_is_reported_in_the_section_it_left() -> None:
    """A sentence that leaves one section and stays in a later one is removed from the
    section it left, even when both sections fall in one changed region (here the
    heading between them changed too)."""
    paused = "Requests are paused."
    hk_sar = ("Requests", "Hong Kong SAR")
    before = (H("Japan"), P(f"{S1} {paused}", "Japan"), H("Hong Kong"), P(f"{S2} {paused}", *HK))
    after = (H("Japan"), P(S3, "Japan"), H("Hong Kong SAR"), P(f"{S4} {paused}", *hk_sar))
    removed = [change for change in compare(before, after) if change.before == paused]
    assert [(change.kind, change.path_before) for change in removed] == [("removed", ("Japan",))]


def test_first_version_is_all_added() -> None:
    after = (H("Hong Kong"), P(f"{S1} {S2}", "Hong Kong"))
    assert _summary(compare((), after)) == [
        ("added", None, "Hong Kong"),
        ("added", None, S1),
        ("added", None, S2),
    ]


# --- golden pairs --------------------------------------------------------------------


def _document(blocks: list[dict[str, object]]) -> Document:
    return tuple(Block.from_json(block) for block in blocks)


def _change_json(change: Change) -> dict[str, object]:
    return {key: value for key, value in asdict(change).items() if value not in ((), None)}


def test_there_are_golden_pairs() -> None:
    assert len(PAIRS) >= 4


@pytest.mark.parametrize("name", PAIRS, ids=PAIRS)
def test_golden_pair(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    changes = compare(_document(spec["before"]), _document(spec["after"]))
    actual = json.loads(json.dumps([_change_json(change) for change in changes]))
    if os.environ.get("UPDATE_GOLDEN"):
        spec["changes"] = actual
        text = json.dumps(spec, ensure_ascii=False, indent=1) + "\n"
        path.write_text(text, encoding="utf-8")
    assert actual == spec["changes"]


# --- sentences -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"], id="ends"),
        pytest.param(
            "See e.g. the U.S. rules, i.e. these. Next.",
            ["See e.g. the U.S. rules, i.e. these.", "Next."],
            id="e.g. i.e. U.S.",
        ),
        pytest.param(
            "Meta Platforms, Inc. And more. Ask Mr. Smith or Dr. Who. Then stop.",
            ["Meta Platforms, Inc. And more.", "Ask Mr. Smith or Dr. Who.", "Then stop."],
            id="Inc. Mr. Dr.",
        ),
        pytest.param(
            "See No. 5 and Art. 23, etc. Also Google vs. Oracle. Done.",
            ["See No. 5 and Art. 23, etc. Also Google vs. Oracle.", "Done."],
            id="No. Art. etc. vs.",
        ),
        pytest.param(
            "It took 1.5 hours. J. R. R. Tolkien wrote it. The end.",
            ["It took 1.5 hours.", "J. R. R. Tolkien wrote it.", "The end."],
            id="decimals and initials",
        ),
        pytest.param(
            "We comply; we review. Then we answer.",
            ["We comply; we review.", "Then we answer."],
            id="semicolon is no end in Latin text",
        ),
        pytest.param(
            'He said "Stop." Then (see below.) "Quoted." [1] Next.',
            ['He said "Stop."', "Then (see below.)", '"Quoted."', "[1] Next."],
            id="quotes and brackets",
        ),
        pytest.param(
            "We received 202 requests in 2020. 46% were answered.",
            ["We received 202 requests in 2020.", "46% were answered."],
            id="digit starts a sentence",
        ),
        pytest.param(
            "Am 1. Januar gilt z. B. Art. 6 Abs. 1 DSGVO. Danach nicht.",
            ["Am 1. Januar gilt z. B. Art. 6 Abs. 1 DSGVO.", "Danach nicht."],
            id="German ordinals and abbreviations",
        ),
        pytest.param(
            "Voir p. ex. l'art. 5. M. Dupont répond. Merci.",
            ["Voir p. ex. l'art. 5. M. Dupont répond.", "Merci."],
            id="French abbreviations",
        ),
        pytest.param(
            "香港政府。下一句!第三句?第四句;完",
            ["香港政府。", "下一句!", "第三句?", "第四句;", "完"],
            id="Chinese (normalised punctuation)",
        ),
        pytest.param(
            "香港政府\u3002下一句\uff01第三句\uff1f第四句\uff1b完",
            ["香港政府\u3002", "下一句\uff01", "第三句\uff1f", "第四句\uff1b", "完"],
            id="Chinese (full-width punctuation)",
        ),
        pytest.param(
            "「香港は対象です。」次の文です。",
            ["「香港は対象です。」", "次の文です。"],
            id="Japanese quotes",
        ),
        pytest.param(
            "요청을 검토합니다. 홍콩 정부의 요청입니다.",
            ["요청을 검토합니다.", "홍콩 정부의 요청입니다."],
            id="Korean",
        ),
        pytest.param(
            "Visit example.com/a.b. Thanks.", ["Visit example.com/a.b.", "Thanks."], id="url"
        ),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


# --- word segments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "segments"),
    [
        pytest.param("same", "same", (("=", "same"),), id="equal"),
        pytest.param("", "", (), id="empty"),
        pytest.param("", "new", (("+", "new"),), id="from nothing"),
        pytest.param(
            "香港政府", "香港特區政府", (("=", "香港"), ("+", "特區"), ("=", "政府")), id="Chinese"
        ),
        pytest.param(
            "the quick brown fox",
            "the slow red fox",
            (("=", "the "), ("-", "quick brown"), ("+", "slow red"), ("=", " fox")),
            id="a space between replacements joins them",
        ),
        pytest.param(
            "Hong Kong SAR, India",
            "Hong Kong, India",
            (("=", "Hong Kong"), ("-", " SAR"), ("=", ", India")),
            id="word removed",
        ),
        pytest.param(
            "46%", "0%", (("-", "46"), ("+", "0"), ("=", "%")), id="number and punctuation"
        ),
    ],
)
def test_word_segments(a: str, b: str, segments: tuple[tuple[str, str], ...]) -> None:
    assert word_segments(a, b) == segments


def _sides(segments: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    before = "".join(text for op, text in segments if op != "+")
    after = "".join(text for op, text in segments if op != "-")
    return before, after


TEXT = st.text(alphabet=st.sampled_from("ab c.香港政府,-"), max_size=40)


@given(TEXT, TEXT)
def test_word_segments_rebuild_both_sides(a: str, b: str) -> None:
    segments = word_segments(a, b)
    assert _sides(segments) == (a, b)
    assert all(text for _, text in segments)
    assert all(x[0] != y[0] for x, y in pairwise(segments))


def test_long_middle_is_one_replacement() -> None:
    a = " ".join(f"w{i}" for i in range(1000))
    b = " ".join(f"v{i}" for i in range(1000))
    assert word_segments(a, b) == (("-", a), ("+", b))


# --- a pathological page -------------------------------------------------------------


def _page(rng: random.Random, size: int) -> list[str]:
    """Paragraphs of random words, each one sentence, about ``size`` characters."""
    vocabulary = ["".join(rng.choices("bdfgklmnprstvz", k=3)) + "a" for _ in range(5000)]
    lines, total = [], 0
    while total < size:
        words = rng.choices(vocabulary, k=rng.randint(8, 30))
        line = " ".join([words[0].capitalize(), *words[1:]]) + "."
        lines.append(line)
        total += len(line) + 1
    return lines


@pytest.mark.slow  # 2 MB through the whole diff: a scale test, seconds each
def test_two_megabytes_with_every_line_changed() -> None:
    """Every paragraph of a 2 MB page has one word changed: one modified sentence
    each, in place. (Speed is measured by benchmarks, not here.)"""
    rng = random.Random(20250101)
    lines = _page(rng, 2_000_000)
    edited = [re.sub(r" \w+", " Hongkong", line, count=1) for line in lines]
    changes = compare(tuple(map(P, lines)), tuple(map(P, edited)))
    assert len(changes) == len(lines)
    assert all(change.kind == "modified" for change in changes)
    assert [change.index_after for change in changes] == list(range(len(lines)))
    assert all(change.index_before == change.index_after for change in changes)


@pytest.mark.slow
def test_two_megabytes_with_every_line_replaced() -> None:
    rng = random.Random(7)
    lines, others = _page(rng, 2_000_000), _page(random.Random(8), 2_000_000)
    changes = compare(tuple(map(P, lines)), tuple(map(P, others)))
    kinds = [change.kind for change in changes]
    assert kinds.count("removed") == len(lines)
    assert kinds.count("added") == len(others)


# --- properties ----------------------------------------------------------------------

# Words never taken for abbreviations or initials, so that every generated sentence
# ends where it seems to; new sentences use other letters than the documents.
OLD_WORDS = st.text(alphabet="abcdefghijklm", min_size=3, max_size=8).filter(
    lambda word: len(split_sentences(f"Ab {word}. Cd")) == 2
)
NEW_WORDS = st.text(alphabet="nopqrstuvwxyz", min_size=3, max_size=8).filter(
    lambda word: len(split_sentences(f"Ab {word}. Cd")) == 2
)


def _sentence(words: list[str]) -> str:
    return " ".join([words[0].capitalize(), *words[1:]]) + "."


OLD_SENTENCES = st.lists(OLD_WORDS, min_size=1, max_size=6).map(_sentence)
NEW_SENTENCES = st.lists(NEW_WORDS, min_size=1, max_size=6).map(_sentence)
BLOCKS = st.one_of(
    st.lists(OLD_SENTENCES, min_size=1, max_size=4).map(lambda s: P(" ".join(s))),
    st.lists(OLD_SENTENCES, min_size=1, max_size=2).map(lambda s: LI(" ".join(s))),
    OLD_WORDS.map(H),
    st.lists(OLD_WORDS, min_size=1, max_size=3).map(lambda cells: TR(*cells)),
)
DOCUMENTS = st.lists(BLOCKS, max_size=12).map(tuple)


def _units(block: Block) -> list[str]:
    if block.kind in ("paragraph", "item"):
        return split_sentences(block.text)
    return [block.text]


@given(DOCUMENTS)
def test_a_version_compared_with_itself_has_no_change(document: Document) -> None:
    assert compare(document, document) == []
    assert compare(document, tuple(Block(**asdict(block)) for block in document)) == []


@settings(max_examples=200)
@given(DOCUMENTS, NEW_SENTENCES, st.data())
def test_inserting_a_sentence_gives_one_added_change(
    document: Document, sentence: str, data: st.DataObject
) -> None:
    prose = [i for i, block in enumerate(document) if block.kind in ("paragraph", "item")]
    into = data.draw(st.sampled_from([None, *prose]), label="into block")
    if into is None:
        at = data.draw(st.integers(0, len(document)), label="at block")
        after = (*document[:at], P(sentence), *document[at:])
    else:
        sentences = split_sentences(document[into].text)
        at = data.draw(st.integers(0, len(sentences)), label="at sentence")
        text = " ".join([*sentences[:at], sentence, *sentences[at:]])
        block = Block(document[into].kind, text)
        after = (*document[:into], block, *document[into + 1 :])
    assert _summary(compare(document, after)) == [("added", None, sentence)]


@settings(max_examples=200)
@given(DOCUMENTS, st.data())
def test_removing_a_block_gives_only_changes_about_its_units(
    document: Document, data: st.DataObject
) -> None:
    assume(document)
    at = data.draw(st.integers(0, len(document) - 1), label="removed block")
    gone = document[at]
    changes = compare(document, (*document[:at], *document[at + 1 :]))
    assert sorted(_summary(changes)) == sorted(("removed", unit, None) for unit in _units(gone))


@given(DOCUMENTS, DOCUMENTS)
def test_changes_quote_their_versions_in_reading_order(before: Document, after: Document) -> None:
    """A change quotes a unit of the block it names (a moved block quotes all of it)."""
    changes = compare(before, after)
    for change in changes:
        if change.before is not None:
            assert change.index_before is not None
            block = before[change.index_before]
            assert change.before in [*_units(block), block.text]
        if change.after is not None:
            assert change.index_after is not None
            block = after[change.index_after]
            assert change.after in [*_units(block), block.text]
    indexes = [change.index_after for change in changes if change.index_after is not None]
    assert indexes == sorted(indexes)
    assert compare(before, after) == changes  # deterministic


@settings(max_examples=200)
@given(DOCUMENTS, st.data())
def test_splitting_or_merging_paragraphs_is_no_change(
    document: Document, data: st.DataObject
) -> None:
    """Splitting a paragraph between two of its sentences, and merging it back, keeps
    every sentence: neither is a change."""
    long = [i for i, block in enumerate(document) if len(_units(block)) > 1]
    long = [i for i in long if document[i].kind in ("paragraph", "item")]
    assume(long)
    at = data.draw(st.sampled_from(long), label="split block")
    sentences = split_sentences(document[at].text)
    cut = data.draw(st.integers(1, len(sentences) - 1), label="cut")
    halves = (P(" ".join(sentences[:cut])), P(" ".join(sentences[cut:])))
    split = (*document[:at], *halves, *document[at + 1 :])
    assert compare(document, split) == []
    assert compare(split, document) == []
