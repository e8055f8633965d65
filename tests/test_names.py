"""Names as people write them (issue 19): adjectives and demonyms, case forms, abbreviations,
set phrases and long forms find their jurisdiction; language labels do not.

Golden sentences per language run through the production matcher (the built-in catalog
with HK, MO, CN and TW watched) and through `pipeline.detect`; the rules that generate
case forms (scripts/inflections.py) are checked word by word.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from monitor.cli import main
from monitor.config import loads
from monitor.errors import ConfigError
from monitor.jurisdictions import (
    FORM_KINDS,
    ExtraSpec,
    Form,
    Watching,
    catalog,
    extend,
    matcher_for,
    normalise,
)
from monitor.model import Block
from monitor.pipeline import Matchers, detect

WATCHED = ("HK", "MO", "CN", "TW")


@functools.cache
def matcher() -> Watching:
    return matcher_for(WATCHED, catalog())


def found(text: str, watching: Watching | None = None) -> list[tuple[str, str]]:
    return [(m.jurisdiction, m.term) for m in (watching or matcher()).find(text)]


@functools.cache
def inflections() -> ModuleType:
    """scripts/inflections.py, which the catalog's build script imports."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "inflections.py"
    spec = importlib.util.spec_from_file_location("inflections", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the rules that generate case forms ------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "word", "forms"),
    [
        ("ru", "Китай", {"Китая", "Китаю", "Китаем", "Китае"}),
        ("ru", "Гонконг", {"Гонконга", "Гонконгу", "Гонконгом", "Гонконге"}),
        ("ru", "Тайвань", {"Тайваня", "Тайваню", "Тайванем", "Тайване"}),
        ("uk", "Китай", {"Китаю", "Китаєві", "Китаєм", "Китаї"}),
        ("uk", "Гонконг", {"Гонконгу", "Гонконгові", "Гонконгом", "Гонконзі"}),
        ("uk", "Тайвань", {"Тайваню", "Тайваневі", "Тайванем", "Тайвані"}),
        ("pl", "Chiny", {"Chin", "Chinom", "Chinami", "Chinach"}),
        ("pl", "Hongkong", {"Hongkongu", "Hongkongowi", "Hongkongiem"}),
        ("pl", "Tajwan", {"Tajwanu", "Tajwanowi", "Tajwanem", "Tajwanie"}),
        ("cs", "Čína", {"Číny", "Číně", "Čínu", "Čínou"}),
        ("cs", "Hongkong", {"Hongkongu", "Hongkongem"}),
        ("de", "China", {"Chinas"}),
        ("de", "Hongkong", {"Hongkongs"}),
    ],
)
def test_noun_rules_give_the_case_forms(rule: str, word: str, forms: set[str]) -> None:
    assert set(inflections().inflect(rule, word)) == forms


def test_hungarian_rules_lengthen_the_final_vowel_and_assimilate() -> None:
    kina = set(inflections().inflect("hu", "Kína"))
    assert {"Kínában", "Kínából", "Kínába", "Kínát", "Kínával", "Kínáról", "Kínán"} <= kina
    hongkong = set(inflections().inflect("hu", "Hongkong"))
    assert {"Hongkongban", "Hongkongot", "Hongkonggal", "Hongkongon"} <= hongkong
    tajvan = set(inflections().inflect("hu", "Tajvan"))
    assert {"Tajvanon", "Tajvant", "Tajvannal"} <= tajvan
    assert "kínál" not in {f.lower() for f in kina}


@pytest.mark.parametrize(
    ("rule", "word", "some"),
    [
        ("ru-adj", "китайский", {"китайского", "китайская", "китайских", "китайскими"}),
        ("uk-adj", "китайський", {"китайського", "китайська", "китайською"}),
        ("pl-adj", "chiński", {"chińska", "chińskiego", "chińskich", "chińską"}),
        ("cs-adj", "čínský", {"čínská", "čínského", "čínských", "čínští"}),
        ("de-adj", "chinesisch", {"chinesische", "chinesischen", "chinesischer"}),
    ],
)
def test_adjective_rules_give_every_ending(rule: str, word: str, some: set[str]) -> None:
    assert some <= set(inflections().inflect(rule, word))


# --- the catalog's forms ------------------------------------------------------------------


def test_every_form_is_a_name_with_a_known_kind() -> None:
    for place in catalog().values():
        for name, label in place.forms:
            assert name in place.names, (place.id, name)
            kind, _, mark = label.partition(" ")
            assert kind in FORM_KINDS and mark in ("", "ambiguous"), (place.id, label)


@pytest.mark.parametrize(
    ("jid", "term", "form"),
    [
        ("CN", "Chinese", Form("adjective", ambiguous=True)),
        ("CN", "chinois", Form("adjective", ambiguous=True)),
        ("CN", "Китае", Form("inflected")),
        ("CN", "КНР", Form("abbreviation")),
        ("CN", "PRC", Form("abbreviation")),
        ("CN", "China", Form("name")),
        ("HK", "Hongkonger", Form("adjective")),
        ("HK", "Hong Kongers", Form("demonym")),
        ("MO", "Macanese", Form("adjective")),
        ("TW", "Taiwanese", Form("adjective")),
        ("HK", "港澳台", Form("phrase")),
        ("TW", "港澳台", Form("phrase")),
        ("HK", "ホンコン", Form("name")),
    ],
)
def test_forms_carry_their_kind(jid: str, term: str, form: Form) -> None:
    assert catalog()[jid].form(term) == form


def test_polish_chin_is_left_out_as_an_english_word() -> None:
    assert "Chin" not in catalog()["CN"].names


# --- golden sentences: names found -------------------------------------------------------

POSITIVE = [
    # English
    ("en", "Requests from Chinese authorities are reviewed.", [("CN", "Chinese")]),
    ("en", "The Chinese government may ask for data.", [("CN", "Chinese")]),
    ("en", "Hong Kong's courts decide.", [("HK", "Hong Kong")]),
    ("en", "Data of Hongkongers is stored locally.", [("HK", "Hongkongers")]),
    ("en", "Macanese law applies.", [("MO", "Macanese")]),
    ("en", "Taiwanese users may opt out.", [("TW", "Taiwanese")]),
    ("en", "in Chinese law", [("CN", "Chinese")]),
    ("en", "German and Chinese authorities", [("CN", "Chinese")]),
    ("en", "Hong Kong SAR, China", [("HK", "Hong Kong SAR, China")]),
    (
        "en",
        "Macao Special Administrative Region of the People's Republic of China",
        [("MO", "Macao Special Administrative Region of the People's Republic of China")],
    ),
    ("en", "the PRC and the prc", [("CN", "PRC")]),
    # French
    ("fr", "les autorités chinoises", [("CN", "chinoises")]),
    ("fr", "le droit hongkongais", [("HK", "hongkongais")]),
    ("fr", "la loi macanaise", [("MO", "macanaise")]),
    (
        "fr",
        "Région administrative spéciale de Hong Kong de la République populaire de Chine",
        [("HK", "Région administrative spéciale de Hong Kong de la République populaire de Chine")],
    ),
    # German
    ("de", "Chinas Behörden", [("CN", "Chinas")]),
    ("de", "die chinesischen Behörden", [("CN", "chinesischen")]),
    ("de", "Hongkongs Gerichte", [("HK", "Hongkongs")]),
    ("de", "Hongkonger Behörden", [("HK", "Hongkonger")]),
    (
        "de",
        "Sonderverwaltungszone Hongkong der Volksrepublik China",
        [("HK", "Sonderverwaltungszone Hongkong der Volksrepublik China")],
    ),
    # Spanish, Portuguese, Italian
    ("es", "las autoridades chinas", [("CN", "chinas")]),
    ("es", "el gobierno hongkonés", [("HK", "hongkonés")]),
    ("pt", "as autoridades chinesas", [("CN", "chinesas")]),
    ("pt", "a lei macaense", [("MO", "macaense")]),
    ("it", "le autorità cinesi", [("CN", "cinesi")]),
    # Russian, Ukrainian
    ("ru", "Данные хранятся в Китае.", [("CN", "Китае")]),
    ("ru", "по запросу властей Китая", [("CN", "Китая")]),
    ("ru", "серверы в Гонконге", [("HK", "Гонконге")]),
    ("ru", "китайские власти", [("CN", "китайские")]),
    ("ru", "законы КНР", [("CN", "КНР")]),
    ("uk", "сервери в Гонконзі", [("HK", "Гонконзі")]),
    ("uk", "органи влади Китаю", [("CN", "Китаю")]),
    # Polish, Czech, Hungarian
    ("pl", "dane przechowywane w Chinach", [("CN", "Chinach")]),
    ("pl", "sądy Hongkongu", [("HK", "Hongkongu")]),
    ("pl", "na Tajwanie", [("TW", "Tajwanie")]),
    ("cs", "úřady v Číně", [("CN", "Číně")]),
    ("hu", "az adatokat Kínában tároljuk", [("CN", "Kínában")]),
    ("hu", "Hongkongból érkező kérések", [("HK", "Hongkongból")]),
    # Chinese, Japanese, Korean
    ("zh", "港澳台地区的用户", [("HK", "港澳台"), ("MO", "港澳台"), ("TW", "港澳台")]),
    ("zh", "港澳居民", [("HK", "港澳"), ("MO", "港澳")]),
    ("zh", "香港澳门", [("HK", "香港"), ("MO", "澳门")]),
    (
        "zh",
        "两岸四地",
        [("CN", "两岸四地"), ("HK", "两岸四地"), ("MO", "两岸四地"), ("TW", "两岸四地")],
    ),
    ("zh", "中華人民共和國香港特別行政區政府", [("HK", "中華人民共和國香港特別行政區")]),
    ("zh", "中华人民共和国澳门特别行政区", [("MO", "中华人民共和国澳门特别行政区")]),
    ("zh", "港府要求", [("HK", "港府")]),
    ("ja", "ホンコンの法律", [("HK", "ホンコン")]),
    ("ja", "マカオの利用者", [("MO", "マカオ")]),
    ("ja", "中国の当局", [("CN", "中国")]),
    ("ko", "중국 당국", [("CN", "중국")]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(t, e, id=f"{lang}-{t[:30]}") for lang, t, e in POSITIVE]
)
def test_golden_sentence_names_its_jurisdiction(text: str, expected: list[tuple[str, str]]) -> None:
    assert sorted(found(text)) == sorted(expected)


# --- golden sentences: language labels, look-alikes, words that begin like a name --------

NEGATIVE = [
    ("en", "Simplified Chinese"),
    ("en", "Chinese (Traditional)"),
    ("en", "Chinese (Simplified)"),
    ("en", "Chinese (Hong Kong)"),
    ("en", "Chinese (Traditional, Hong Kong)"),
    ("en", "English (Hong Kong)"),
    ("en", "Hong Kong (English)"),
    ("en", "This policy is also available in Chinese."),
    ("en", "The Chinese version of these terms prevails."),
    ("en", "a Chinese translation"),
    ("en", "Chinese-language support"),
    ("en", "available in English and Chinese."),
    ("en", "If the Chinese and English versions differ, the English one prevails."),
    ("en", "English, Chinese, Malay and Tamil"),
    ("en", "Chinese"),
    ("en", "a Chinese wall between teams"),
    ("en", "chinos and shirts"),
    ("fr", "Disponible en chinois."),
    ("fr", "chinois simplifié"),
    ("fr", "la version chinoise"),
    ("de", "auf Chinesisch"),
    ("de", "Chinesisch (vereinfacht)"),
    ("de", "die chinesische Sprache"),
    ("es", "disponible en chino."),
    ("es", "chino simplificado"),
    ("es", "la versión china"),
    ("pt", "disponível em chinês."),
    ("pt", "chinês (tradicional)"),
    ("ru", "на китайском."),
    ("ru", "китайский язык"),
    ("hu", "A bolt kínál ajándékot."),
    ("hu", "kínálat"),
    ("zh", "中文"),
    ("zh", "简体中文"),
    ("zh", "繁體中文(香港)"),
    ("zh", "中文（台灣）"),
    ("zh", "中文 (中国大陆)"),
    ("zh", "香港 (繁體中文)"),
    ("ja", "中国語(簡体字)"),
    ("ja", "中国語"),
    ("ko", "중국어(간체)"),
    ("en", "chinchilla"),
    ("en", "Chinatown"),
    ("en", "Indochina"),
    ("ru", "Китайгород"),
    ("zh", "该港人员"),
]


@pytest.mark.parametrize("text", [pytest.param(t, id=f"{lang}-{t[:30]}") for lang, t in NEGATIVE])
def test_golden_sentence_names_no_jurisdiction(text: str) -> None:
    assert found(text) == []


def test_the_state_after_a_long_form_is_still_the_state_elsewhere() -> None:
    assert found("Hong Kong, China and China; Macau (China)") == [
        ("HK", "Hong Kong, China"),
        ("CN", "China"),
        ("MO", "Macau (China)"),
    ]
    assert found("중화인민공화국") == [("CN", "중화인민공화국")]


def test_chinese_taipei_stays_taiwan_and_chinese_mainland_china() -> None:
    assert found("Chinese Taipei and the Chinese mainland") == [
        ("TW", "Chinese Taipei"),
        ("CN", "Chinese mainland"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Chinese (PRC) authorities", [("CN", "Chinese"), ("CN", "PRC")]),
        ("Macau (Chinese: 澳門)", [("MO", "Macau"), ("MO", "澳門")]),
        ("in Chinese Taipei", [("TW", "Chinese Taipei")]),
        ("English 中文(香港) 日本語", []),
        ("Chinese (Traditional, Hong Kong)\nEnglish (US)", []),
    ],
)
def test_labels_end_where_the_picker_ends(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_a_label_consumes_only_its_own_text() -> None:
    text = "Simplified Chinese. Chinese authorities in Hong Kong."
    assert found(text) == [("CN", "Chinese"), ("HK", "Hong Kong")]


def test_long_forms_of_hong_kong_concern_hong_kong_only_even_with_china_watched() -> None:
    cn_only = matcher_for(["CN"], catalog())
    texts = (
        *("Hong Kong SAR, China", "Hong Kong SAR (China)", "Hong Kong S.A.R., China"),
        *("中華人民共和國香港特別行政區", "中华人民共和国香港特别行政区", "香港特别行政区，中国"),
        *("香港（中國）", "Гонконг, Китай", "Hongkong, Chiny", "중화인민공화국 홍콩 특별행정구"),
    )
    for text in texts:
        assert [j for j, _ in found(text)] == ["HK"], text
        assert found(text, cn_only) == [], text


# --- through detect: a finding for a form, none for a language picker ---------------------


def para(text: str) -> Block:
    return Block("paragraph", text, ())


def findings_of(before: str, after: str) -> set[tuple[str, str]]:
    old, new = (para("Intro."), para(before)), (para("Intro."), para(after))
    detection = detect(old, new, matcher(), None)
    return {(f.jurisdiction, f.kind) for f in detection.findings}


@pytest.mark.parametrize(
    ("before", "after", "jid"),
    [
        ("We answer requests.", "We answer requests from Chinese authorities.", "CN"),
        ("Данные хранятся в Европе.", "Данные хранятся в Китае.", "CN"),
        ("Dane są w Europie.", "Dane są w Chinach.", "CN"),
        ("Az adatok Európában vannak.", "Az adatok Kínában vannak.", "CN"),
        ("Die Daten liegen in Europa.", "Die Daten liegen in Europa und Hongkongs Behörden.", "HK"),
        ("适用于所有用户。", "适用于港澳台用户。", "TW"),
        ("Законы ЕС.", "Законы КНР.", "CN"),
        ("Macanese law.", "Macanese law applies to all.", "MO"),
    ],
)
def test_a_change_naming_a_place_only_by_a_form_is_a_finding(
    before: str, after: str, jid: str
) -> None:
    assert any(j == jid and kind.startswith("sentence") for j, kind in findings_of(before, after))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("English | 简体中文 | 日本語", "English | 繁體中文(香港) | 日本語"),
        ("Language: English", "Language: Chinese (Hong Kong)"),
        ("English", "Chinese (Traditional)"),
        ("Also available in French.", "Also available in Chinese."),
        ("Sprache: Deutsch", "Sprache: Chinesisch (vereinfacht)"),
        ("Langue : anglais", "Langue : chinois simplifié"),
        ("Hong Kong (English)", "Hong Kong (繁體中文)"),
    ],
)
def test_a_change_to_a_language_picker_is_no_finding(before: str, after: str) -> None:
    assert findings_of(before, after) == set()


def test_a_set_phrase_is_one_finding_for_each_place() -> None:
    assert findings_of("适用于所有用户。", "适用于港澳台用户。") == {
        *(("HK", "sentence_modified"), ("MO", "sentence_modified"), ("TW", "sentence_modified")),
        *(("HK", "appeared"), ("MO", "appeared"), ("TW", "appeared")),
    }


def test_an_alert_about_a_long_form_names_hong_kong_alone() -> None:
    both = matcher_for(["HK", "CN"], catalog())
    old = (para("Intro."),)
    new = (para("Intro."), para("Requests from the Hong Kong SAR, China are paused."))
    findings = detect(old, new, both, None).findings
    assert {(f.jurisdiction, f.terms) for f in findings} == {("HK", ("Hong Kong SAR, China",))}


# --- the watchlist's switch ---------------------------------------------------------------


def test_drop_switches_one_form_off() -> None:
    places = extend(catalog(), {"CN": ExtraSpec(drop=("chinese",))})
    watching = matcher_for(["CN"], places)
    assert found("Chinese authorities in China", watching) == [("CN", "China")]
    assert "Chinese" not in places["CN"].names and "Chinese" in catalog()["CN"].names


def test_drop_kinds_switches_every_form_of_a_kind_off() -> None:
    places = extend(catalog(), {"CN": ExtraSpec(drop_kinds=("ambiguous", "inflected"))})
    watching = matcher_for(["CN"], places)
    assert found("Chinese, chinois, в Китае, КНР, China", watching) == [
        ("CN", "КНР"),
        ("CN", "China"),
    ]


def test_dropping_a_form_the_place_does_not_have_is_an_error() -> None:
    with pytest.raises(ValueError, match="Chinse"):
        extend(catalog(), {"CN": ExtraSpec(drop=("Chinse",))})


WATCHES = "watches: [{id: w, url: 'https://example.org/p'}]\n"


def test_the_watchlist_drops_forms_for_every_matcher() -> None:
    text = "jurisdictions:\n  CN: {drop: [Chinese], drop_kinds: inflected}\n" + WATCHES
    matchers = Matchers(loads(text, "w.yaml"))
    assert found("Chinese authorities, в Китае, China", matchers.for_ids(["CN"])) == [
        ("CN", "China")
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("CN: {drop: [Chinse]}", "CN has no name 'Chinse' to drop"),
        ("CN: {drop_kinds: [adjectives]}", "drop_kinds"),
    ],
)
def test_the_watchlist_rejects_an_unknown_form_or_kind(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(f"jurisdictions:\n  {entry}\n" + WATCHES, "w.yaml")
    assert message in str(info.value)


def test_a_dropped_form_may_be_a_watchlist_term() -> None:
    text = "jurisdictions:\n  HK: {terms: [NSL], drop: [nsl]}\n" + WATCHES
    assert loads(text, "w.yaml").jurisdictions["HK"].drop == ["nsl"]


# --- monitor explain ----------------------------------------------------------------------


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["explain", *args]) == 0
    return capsys.readouterr().out


def test_explain_lists_names_kinds_and_what_a_label_took(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = explain(
        capsys,
        "Simplified Chinese; Chinese authorities; 港澳台",
        *("--jurisdiction", "cn", "--jurisdiction", "HK", "--jurisdiction", "MO"),
    )
    assert out.splitlines() == [
        "not a name: 'Simplified Chinese' at 0-18 is a language label; it took CN 'Chinese'",
        "CN  'Chinese' at 20-27: adjective, ambiguous",
        "HK+MO  '港澳台' at 41-44: phrase",
    ]


def test_explain_json_and_exclusions(capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "New", "Mexico", "and", "в", "Гонконге", "--jurisdiction", "MX", "--json")
    out += explain(capsys, "в Гонконге", "--jurisdiction", "HK", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {"type": "skipped", "text": "New Mexico", "start": 0, "end": 10, "why": "exclusion",
         "names": [["MX", "Mexico"]]},
        {"type": "name", "term": "Гонконге", "start": 2, "end": 10, "jurisdictions": ["HK"],
         "kind": "inflected", "ambiguous": False},
    ]  # fmt: skip


def test_explain_says_when_nothing_is_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert "no name of HK found" in explain(capsys, "nothing here", "--jurisdiction", "HK")


def test_explain_uses_the_watchlist_switches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "defaults: {jurisdictions: [CN]}\njurisdictions:\n  CN: {drop: Chinese}\n" + WATCHES
    )
    assert "no name of CN found" in explain(capsys, "Chinese law", "--watchlist", str(path))


def test_explain_rejects_an_unknown_jurisdiction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "text", "--jurisdiction", "ZZ"]) == 2
    assert "ZZ" in capsys.readouterr().err


def test_names_and_text_are_normalised_alike() -> None:
    assert normalise("Ｃｈｉｎｅｓｅ") == "Chinese"
    assert found("Ｃｈｉｎｅｓｅ authorities") == [("CN", "Ｃｈｉｎｅｓｅ")]
