"""The jurisdiction catalog and matcher: coverage, the issue's examples, and properties."""

from __future__ import annotations

import functools
import random
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.jurisdictions import (
    ExtraSpec,
    Jurisdiction,
    Match,
    Matcher,
    catalog,
    exclusions,
    extend,
    ids,
    is_abbreviation,
    matcher_for,
    needs_boundary,
    normalise,
)

ISO_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
ISO_3166_1 = ISO_CODES.split()


@functools.cache
def full_matcher() -> Matcher:
    """The whole catalog, built once for the module (it takes about a second)."""
    return Matcher(catalog().values())


def found(text: str, matcher: Matcher | None = None) -> list[tuple[str, str]]:
    """(jurisdiction, term) pairs, the readable form of a find."""
    return [(m.jurisdiction, m.term) for m in (matcher or full_matcher()).find(text)]


def key(term: str) -> str:
    return normalise(term).lower()


# --- the catalog -------------------------------------------------------------------


def test_catalog_covers_every_iso_code_plus_eu_and_kosovo() -> None:
    assert len(ISO_3166_1) == 249
    assert set(catalog()) == {*ISO_3166_1, "EU", "XK"}


def test_catalog_entries_are_consistent() -> None:
    for jid, place in catalog().items():
        assert place.id == jid
        assert place.name and place.names
        assert set(place.case_sensitive) <= set(place.names), jid
        assert all(name == normalise(name) for name in place.names), jid


def test_no_name_belongs_to_two_jurisdictions_except_set_phrases() -> None:
    owners: dict[str, str] = {}
    for jid, place in catalog().items():
        for name in place.names:
            if place.form(name).kind != "phrase":
                assert owners.setdefault(key(name), jid) == jid, name


def test_catalog_is_a_fresh_dict_each_time() -> None:
    first = catalog()
    first.pop("HK")
    assert "HK" in catalog()


@pytest.mark.parametrize(
    "name",
    [
        "HK",
        "HKSAR",
        "Hong Kong",
        "Hong Kong SAR",
        "Hong Kong Special Administrative Region",
        "香港",
        "香港特別行政區",
        "香港特别行政区",
        "中国香港",
        "Hong Kong, China",
        "Hongkong",
        "Hong Kong SAR China",
    ],
)
def test_hong_kong_has_the_issues_names(name: str) -> None:
    assert name in catalog()["HK"].names


@pytest.mark.parametrize(
    ("jid", "name"),
    [
        ("CN", "PRC"),
        ("CN", "People's Republic of China"),
        ("CN", "mainland China"),
        ("CN", "Chinese mainland"),
        ("CN", "China mainland"),
        ("CN", "中国"),
        ("CN", "中國"),
        ("CN", "中国大陆"),
        ("MO", "Macau"),
        ("MO", "Macao"),
        ("MO", "澳門"),
        ("TW", "Chinese Taipei"),
        ("TW", "臺灣"),
        ("TW", "台灣"),
        ("TW", "台湾"),
        ("US", "USA"),
        ("US", "U.S."),
        ("US", "United States of America"),
        ("GB", "UK"),
        ("GB", "England"),
        ("GB", "Scotland"),
        ("GB", "Wales"),
        ("GB", "Northern Ireland"),
        ("EU", "European Union"),
        ("EU", "Union européenne"),
        ("EU", "Europäische Union"),
        ("EU", "欧盟"),
        ("EU", "歐盟"),
        ("XK", "Kosovo"),
    ],
)
def test_other_jurisdictions_have_the_issues_names(jid: str, name: str) -> None:
    assert name in catalog()[jid].names


@pytest.mark.parametrize("name", ["HK", "HKSAR", "PRC", "US", "USA", "UK", "EU", "ROC"])
def test_abbreviations_are_case_sensitive(name: str) -> None:
    assert any(name in place.case_sensitive for place in catalog().values())


@pytest.mark.parametrize(
    "word", ["laws", "man", "end", "sin", "omani", "suis", "island", "congo", "america"]
)
def test_common_words_demonyms_and_ambiguous_names_are_not_names(word: str) -> None:
    assert all(key(name) != word for place in catalog().values() for name in place.names)


def test_no_alphabetic_name_is_shorter_than_three_letters_unless_an_abbreviation() -> None:
    for place in catalog().values():
        for name in place.names:
            alphabetic = all(needs_boundary(c) for c in name if c.isalpha())
            assert len(name) >= 2, name
            assert not alphabetic or len(name) >= 3 or name in place.case_sensitive, name


# --- matching: the issue's examples ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Papua New Guinea", [("PG", "Papua New Guinea")], id="papua-new-guinea-not-guinea"
        ),
        pytest.param(
            "Guinea-Bissau and Guinea",
            [("GW", "Guinea-Bissau"), ("GN", "Guinea")],
            id="guinea-bissau",
        ),
        pytest.param("Chinese Taipei", [("TW", "Chinese Taipei")], id="chinese-taipei-is-taiwan"),
        pytest.param(
            "the Hong Kong International Arbitration Centre",
            [("HK", "Hong Kong")],
            id="name-inside-an-institution",
        ),
        pytest.param(
            "香港特別行政區政府", [("HK", "香港特別行政區")], id="hksar-chinese-one-match"
        ),
        pytest.param("中国香港", [("HK", "中国香港")], id="hong-kong-china-zh"),
        pytest.param("Hong Kong, China", [("HK", "Hong Kong, China")], id="hong-kong-comma-china"),
        pytest.param("HK and hk", [("HK", "HK")], id="hk-case-sensitive"),
        pytest.param("the US and us", [("US", "US")], id="us-case-sensitive"),
        pytest.param("the PRC and the prc", [("CN", "PRC")], id="prc-case-sensitive"),
        pytest.param("Hong Kong's courts", [("HK", "Hong Kong")], id="possessive"),
        pytest.param("Hong Kong’s courts", [("HK", "Hong Kong")], id="typographic-apostrophe"),
        pytest.param(
            "HONG KONG and hong kong", [("HK", "HONG KONG"), ("HK", "hong kong")], id="any-case"
        ),
        pytest.param("informação", [], id="informacao-is-not-macao"),
        pytest.param("informac\u0327a\u0303o", [], id="informacao-decomposed"),
        pytest.param("Omani rial", [], id="omani-is-not-oman"),
        pytest.param("Oman.", [("OM", "Oman")], id="oman"),
        pytest.param("mainland China", [("CN", "mainland China")], id="mainland-china"),
        pytest.param("Chinese Mainland", [("CN", "Chinese Mainland")], id="chinese-mainland"),
        pytest.param(
            "中国大陆和香港", [("CN", "中国大陆"), ("HK", "香港")], id="cjk-no-boundaries"
        ),
        pytest.param("在HK地区", [("HK", "HK")], id="latin-abbreviation-inside-chinese"),
        pytest.param("HKD and HK$", [("HK", "HK")], id="hkd-is-a-word"),
        pytest.param("U.S. and U.S.A.", [("US", "U.S."), ("US", "U.S.A.")], id="dotted"),
        pytest.param(
            "the UAE and the DRC", [("AE", "UAE"), ("CD", "DRC")], id="more-abbreviations"
        ),
        pytest.param(
            "Macau, Macao, 澳門", [("MO", "Macau"), ("MO", "Macao"), ("MO", "澳門")], id="macao"
        ),
        pytest.param("Republic of China", [("TW", "Republic of China")], id="roc-long"),
        pytest.param(
            "People's Republic of China",
            [("CN", "People's Republic of China")],
            id="prc-long-not-roc",
        ),
        pytest.param("England and Wales", [("GB", "England"), ("GB", "Wales")], id="uk-nations"),
        pytest.param("New South Wales", [], id="exclusion-new-south-wales"),
        pytest.param("New Mexico and Mexico", [("MX", "Mexico")], id="exclusion-new-mexico"),
        pytest.param("CONTACT US", [], id="exclusion-contact-us"),
        pytest.param("a guinea pig", [], id="exclusion-guinea-pig"),
        pytest.param("沿海地区", [], id="exclusion-coastal-not-haiti"),
        pytest.param("प्राचीन चीन", [("CN", "चीन")], id="devanagari-marks-are-letters"),
        pytest.param("Côte d’Ivoire", [("CI", "Côte d’Ivoire")], id="cote-divoire"),
        pytest.param("Straße in GROSSBRITANNIEN", [("GB", "GROSSBRITANNIEN")], id="sharp-s"),
    ],
)
def test_matching_examples(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "jid"),
    [
        pytest.param("la Chine", "CN", id="french-chine"),
        pytest.param("in Hongkong", "HK", id="german-hongkong"),
        pytest.param("香港の法律", "HK", id="japanese-hong-kong"),
        pytest.param("в Гонконг", "HK", id="russian-hong-kong"),
        pytest.param("في هونغ كونغ", "HK", id="arabic-hong-kong"),
        pytest.param("中华人民共和国", "CN", id="chinese-prc"),
        pytest.param("Europäische Union", "EU", id="german-eu"),
        pytest.param("홍콩", "HK", id="korean-hong-kong"),
    ],
)
def test_other_languages(text: str, jid: str | None) -> None:
    assert [j for j, _ in found(text)] == ([jid] if jid else [])


def test_match_positions_point_at_the_original_text() -> None:
    text = "ﬁne print… Straße — Ｈｏｎｇ Ｋｏｎｇ and Co\u0302te d’Ivoire, İstanbul, HK"
    matches = full_matcher().find(text)
    assert [(m.jurisdiction, m.term) for m in matches] == [
        ("HK", "Ｈｏｎｇ Ｋｏｎｇ"),
        ("CI", "Co\u0302te d’Ivoire"),
        ("HK", "HK"),
    ]
    assert all(text[m.start : m.end] == m.term for m in matches)


def test_a_case_mismatch_falls_back_to_a_shorter_name() -> None:
    place = Jurisdiction("X", "Place X", ("Abc", "ABC DEF"), ("ABC DEF",))
    matcher = Matcher([place], exclude=())
    assert found("Abc def, ABC DEF, ABC", matcher) == [("X", "Abc"), ("X", "ABC DEF"), ("X", "ABC")]


def test_a_long_text_without_spaces_and_not_in_nfkc_keeps_its_offsets() -> None:
    text = "中文内容…" * 40_000 + "香港"  # "…" is three characters after NFKC
    matcher = matcher_for(["HK", "CN"], catalog())
    assert matcher.find(text) == [Match("HK", "香港", len(text) - 2, len(text))]


def test_matcher_for_only_sees_the_watched_jurisdictions() -> None:
    matcher = matcher_for(["HK", "MO"], catalog())
    assert found("China, Hong Kong and Macao", matcher) == [("HK", "Hong Kong"), ("MO", "Macao")]


def test_matcher_for_an_unknown_id_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="ZZ"):
        matcher_for(["HK", "ZZ"], catalog())


def test_a_matcher_with_nothing_to_find_finds_nothing() -> None:
    assert Matcher([], exclude=()).find("Hong Kong") == []


def test_exclusions_can_be_turned_off() -> None:
    matcher = Matcher([catalog()["US"]], exclude=())
    assert found("CONTACT US", matcher) == [("US", "US")]
    assert "New Mexico" in exclusions()


# --- watchlist extensions -------------------------------------------------------------


def test_watchlist_terms_extend_a_built_in_jurisdiction() -> None:
    places = extend(catalog(), {"HK": ExtraSpec(terms=("national security law", "NSL"))})
    matcher = matcher_for(["HK"], places)
    text = "Under the National Security Law (NSL), nsl is not an abbreviation."
    assert found(text, matcher) == [("HK", "National Security Law"), ("HK", "NSL")]
    assert "NSL" in places["HK"].case_sensitive
    assert places["HK"].name == "Hong Kong"


def test_watchlist_defines_a_new_jurisdiction() -> None:
    spec = ExtraSpec(name="Greater Bay Area", terms=("Greater Bay Area", "GBA", "大湾区"))
    places = extend(catalog(), {"GBA": spec})
    assert places["GBA"] == Jurisdiction(
        "GBA", "Greater Bay Area", ("Greater Bay Area", "GBA", "大湾区"), ("GBA",)
    )
    matcher = matcher_for(["GBA", "HK"], places)
    assert found("粤港澳大湾区 and the greater bay area, Hong Kong", matcher) == [
        ("HK", "港澳"),  # the set phrase "Hong Kong and Macao" inside the area's name
        ("GBA", "大湾区"),
        ("GBA", "greater bay area"),
        ("HK", "Hong Kong"),
    ]


def test_a_new_jurisdiction_needs_a_name() -> None:
    with pytest.raises(ValueError, match="GBA"):
        extend(catalog(), {"GBA": ExtraSpec(terms=("GBA",))})


def test_extend_leaves_the_base_alone() -> None:
    base = catalog()
    extend(base, {"HK": ExtraSpec(terms=("Article 23",))})
    assert "Article 23" not in base["HK"].names


def test_a_term_two_jurisdictions_share_matches_both() -> None:
    places = extend(
        catalog(),
        {"HK": ExtraSpec(terms=("Greater China",)), "CN": ExtraSpec(terms=("Greater China",))},
    )
    matches = matcher_for(["HK", "CN"], places).find("in Greater China")
    assert {m.jurisdiction for m in matches} == {"HK", "CN"}
    assert {(m.start, m.end) for m in matches} == {(3, 16)}


@pytest.mark.parametrize(
    ("term", "expected"),
    [("HK", True), ("U.S.", True), ("HK SAR", True), ("Hong Kong", False), ("香港", False)],
)
def test_is_abbreviation(term: str, expected: bool) -> None:
    assert is_abbreviation(term) is expected


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("a", True),
        ("é", True),
        ("ी", True),
        ("7", True),
        ("_", True),
        ("香", False),
        ("ก", False),
        ("한", False),
        (" ", False),
        ("'", False),
        ("-", False),
    ],
)
def test_needs_boundary(char: str, expected: bool) -> None:
    assert needs_boundary(char) is expected


# --- properties -----------------------------------------------------------------------


@functools.cache
def all_names() -> list[tuple[str, str]]:
    return sorted((place.id, name) for place in catalog().values() for name in place.names)


@functools.cache
def forms(jid: str) -> tuple[set[str], set[str]]:
    """A jurisdiction's case-insensitive names as keys, and its case-sensitive names."""
    place = catalog()[jid]
    exact = set(place.case_sensitive)
    return {key(n) for n in place.names if n not in exact}, exact


spaced_letters = st.characters(categories=["Lu", "Ll"]).filter(
    lambda c: needs_boundary(c) and normalise(c) == c  # "Ŀ" is "L·" once normalised
)
names = st.sampled_from(all_names())
tricky = st.sampled_from(["…", "ﬁ", "ß", "İ", "e\u0301", "\u00a0", "’", "Ｈ", "ǅ", "ς", "\u0345"])
noise = st.lists(
    st.one_of(names.map(lambda p: p[1]), st.text(max_size=8), tricky, st.just(" ")), max_size=12
).map("".join)
relaxed = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def is_word_edge(text: str, at: int) -> bool:
    """No word character on both sides of ``at``, as the matcher sees them (normalised)."""
    if not 0 < at < len(text):
        return True
    before, after = normalise(text[at - 1]), normalise(text[at])
    return not (before and after and needs_boundary(before[-1]) and needs_boundary(after[0]))


@relaxed
@given(pair=names, before=spaced_letters, after=spaced_letters)
def test_a_name_between_letters_never_matches_there(
    pair: tuple[str, str], before: str, after: str
) -> None:
    _, name = pair
    assume(needs_boundary(name[0]) and needs_boundary(name[-1]))
    text = before + name + after
    for m in full_matcher().find(text):
        assert m.start != 1 and m.end != 1 + len(name), m


@relaxed
@given(text=noise)
def test_matches_start_and_end_at_word_edges(text: str) -> None:
    for m in full_matcher().find(text):
        term = normalise(m.term)
        assert is_word_edge(text, m.start) or not needs_boundary(term[0]), m
        assert is_word_edge(text, m.end) or not needs_boundary(term[-1]), m


@relaxed
@given(text=noise)
def test_every_match_is_a_name_of_its_jurisdiction(text: str) -> None:
    previous = (0, 0)
    for m in full_matcher().find(text):
        assert m.term == text[m.start : m.end]
        # matches never overlap, but a set phrase (港澳台) is one match per place it names
        assert m.start >= previous[1] or (m.start, m.end) == previous
        previous = (m.start, m.end)
        insensitive, exact = forms(m.jurisdiction)
        written = normalise(m.term)
        assert written.lower() in insensitive or written in exact, m


@relaxed
@given(pair=names, before=noise, after=noise)
def test_an_inserted_name_is_found(pair: tuple[str, str], before: str, after: str) -> None:
    _, name = pair
    text = f"{before} {name} {after}"
    start = len(before) + 1
    matches = _plain().find(text)
    assert any(m.start <= start and m.end >= start + len(name) for m in matches), (name, matches)


@relaxed
@given(
    pair=names,
    before=st.text("0123456789 .,;:!?()[]", max_size=6),
    after=st.text("0123456789 .,;:!?()[]", max_size=6),
)
def test_an_inserted_name_is_found_as_its_jurisdiction(
    pair: tuple[str, str], before: str, after: str
) -> None:
    jid, name = pair
    text = f"{before} {name} {after}"
    start = len(before) + 1
    assert Match(jid, name, start, start + len(name)) in _plain().find(text)


@functools.cache
def _plain() -> Matcher:
    """The whole catalog without exclusions or language labels, so that neither can
    swallow a name ("Chinese" alone on a line is a language label)."""
    return Matcher(catalog().values(), exclude=(), labels=False)


# --- long pages (their speed is measured by `python -m bench.matcher`) ----------------


def test_a_long_page_is_matched_whole() -> None:
    rng = random.Random(4)
    words = ["policy", "content", "users", "may", "the", "of", "law", "Hong Kong", "us"]
    text = " ".join(rng.choice(words) for _ in range(40_000))  # about 200 KB
    matcher = matcher_for(["HK", "MO", "CN", "TW", "US", "GB", "EU"], catalog())
    matches = matcher.find(text)
    assert len(matches) == text.count("Hong Kong") and {m.jurisdiction for m in matches} == {"HK"}


def test_normalise_is_nfkc_with_plain_apostrophes() -> None:
    assert normalise("Ｈｏｎｇ Ｋｏｎｇ’s") == "Hong Kong's"
    assert unicodedata.is_normalized("NFKC", normalise("Co\u0302te"))


def test_the_ids_read_without_the_names_are_the_catalogs() -> None:
    assert ids() == set(catalog())


@pytest.mark.parametrize("ids", [("HK", "MO", "CN"), ("TW",), ("GN",), ("US", "GB")])
def test_rival_names_found_in_chunks_are_those_a_search_of_each_name_finds(
    ids: tuple[str, ...],
) -> None:
    """`_containing` joins the catalog's 37,000 names a few thousand at a time."""
    import re2

    from monitor.jurisdictions import _containing, _trie, normalise

    places = catalog()
    keys = {normalise(n).strip().lower() for i in ids for n in places[i].names}
    others = [n for p in places.values() if p.id not in ids for n in p.names]
    probe = re2.compile(_trie(sorted(keys)))
    assert _containing(keys, others) == {n for n in others if probe.search(normalise(n).lower())}


# --- what the matcher derives from the catalog, packaged --------------------------------


@pytest.fixture
def fresh_derivations() -> Iterator[None]:
    """The matcher's caches emptied before and after, so a test sees what it builds."""
    from monitor import jurisdictions

    def clear() -> None:
        jurisdictions._derived.cache_clear()
        jurisdictions._word_ranges.cache_clear()
        jurisdictions._rivals_matcher.cache_clear()

    clear()
    yield
    clear()


def test_the_packaged_derivations_are_those_of_the_packaged_catalog() -> None:
    """scripts/derive_matcher.py wrote them from this catalog (stale, they would be
    ignored: the matcher then computes). The word classes are used under the Unicode
    version they were derived with (Python 3.11's), computed under another."""
    from monitor import jurisdictions

    derived = jurisdictions._derived()
    assert derived is not None, "run scripts/derive_matcher.py after changing the catalog"
    assert jurisdictions._word_ranges() == jurisdictions._computed_word_ranges()
    places = catalog()
    for jid in ("HK", "MO", "CN", "TW", "GN", "US"):
        computed = jurisdictions._containing(
            {normalise(n).strip().lower() for n in places[jid].names},
            [n for p in places.values() if p.id != jid for n in p.names],
        )
        assert derived.rivals[jid] == computed


def test_a_matcher_of_the_catalog_searches_no_names_and_walks_no_unicode_table(
    monkeypatch: pytest.MonkeyPatch, fresh_derivations: None
) -> None:
    """A process that meets its first changed page builds the matcher of its watched
    places: with the packaged derivations in 40 ms instead of 250 (a search of the
    catalog's 37,000 names for longer rivals, and a walk of the Unicode database for
    the word classes)."""
    from monitor import jurisdictions

    def not_here(*_args: object) -> None:
        raise AssertionError("computed what the packaged derivations hold")

    monkeypatch.setattr(jurisdictions, "_containing", not_here)
    derived = jurisdictions._derived()
    assert derived is not None
    if derived.unicode == unicodedata.unidata_version:  # under another, they are computed
        monkeypatch.setattr(jurisdictions, "_computed_word_ranges", not_here)
    watching = matcher_for(["HK", "MO", "CN"], catalog())
    found = watching.find("Requests from Hong Kong, Macau, mainland China and Papua New Guinea.")
    assert [m.jurisdiction for m in found] == ["HK", "MO", "CN"]


@pytest.mark.parametrize("derived", [True, False])
def test_a_watchlists_own_place_is_a_rival_of_the_built_in_names_it_contains(
    monkeypatch: pytest.MonkeyPatch, fresh_derivations: None, derived: bool
) -> None:
    """The packaged rivals are the catalog's; a place a watchlist adds, or a place it
    gives more terms, is searched, so its longer name still wins over a watched one.
    The same with the derivations stale (made from another catalog: not used)."""
    from monitor import jurisdictions

    if not derived:
        monkeypatch.setattr(jurisdictions, "_catalog_digest", lambda: "another catalog")
    places = extend(catalog(), {"KLN": ExtraSpec(name="Kowloon", terms=("Hong Kong Island",))})
    watching = matcher_for(["HK"], places)
    assert watching.find("Offices on Hong Kong Island.") == []
    assert [m.jurisdiction for m in watching.find("Offices in Hong Kong.")] == ["HK"]
    assert (jurisdictions._derived() is not None) is derived
