"""Build monitor/data/jurisdictions.json, the built-in catalog of jurisdictions.

Run by hand after upgrading Babel (CLDR) or pycountry (ISO 3166), or after editing the
curated lists below; both libraries are build-time tools, not runtime dependencies:

    .venv/bin/python scripts/build_jurisdictions.py

Names come from four kinds of source, strongest first. A name two jurisdictions claim goes
to the one with the stronger source and is dropped when they tie, so "Congo" (both
Congos) and "Sant Martin" (both Saint Martins) name neither:

0. CURATED below: abbreviations, mainland China, Chinese Taipei, the UK's nations ...
1. English: CLDR's English names, pycountry's ISO 3166 name, official and common name.
2. Every other CLDR locale, plus CLDR's exemplar city names for city-states. Babel
   drops CLDR's alternative forms (alt="short" "Hong Kong" for "Hong Kong SAR China"),
   but the city of Hong Kong has the same name in every language.
3. Derived: the part before a parenthesis ("Myanmar (Burma)" gives "Myanmar"), "ss"
   for "ß", "and" for "&" and "Saint" for "St." in English, and pycountry's inverted
   names turned round ("Korea, Republic of" gives "Republic of Korea").

Dropped whatever the source: names shorter than three characters (two in scripts
written without spaces), and STOPLIST names, which are common words in a language
other than the one that names the place ("Laws" is Laos in Kabyle; "Suis" is
Switzerland in Breton). The stoplist was reviewed by hand against the Debian word
lists for English, French, German, Spanish, Italian, Portuguese and Dutch.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import babel
import babel.localedata
import pycountry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.jurisdictions import is_abbreviation, needs_boundary, normalise

OUTPUT = Path(__file__).resolve().parent.parent / "monitor" / "data" / "jurisdictions.json"

CURATED, ENGLISH, CLDR, DERIVED = range(4)

SPECIAL = ("EU", "XK")  # not in ISO 3166-1 but treated as jurisdictions by CLDR and by us


def listed(text: str, sep: str = "|") -> tuple[str, ...]:
    """The items of a long hand-written list, one per ``sep``: easier to review than a
    column of quoted strings."""
    return tuple(item.strip() for item in text.split(sep) if item.strip())


DISPLAY = {
    "HK": "Hong Kong",
    "MO": "Macao",
    "MM": "Myanmar",
    "CD": "Democratic Republic of the Congo",
    "CG": "Republic of the Congo",
    "PS": "Palestine",
    "UM": "U.S. Outlying Islands",
}

# Names that denote the place unambiguously, checked by hand. All-capital ones are
# case-sensitive like every abbreviation.
CURATED_NAMES: dict[str, tuple[str, ...]] = {
    "HK": listed(
        "HK | HKSAR | HK SAR | Hong Kong | Hongkong | Hong Kong SAR | Hong Kong S.A.R. |"
        "Hong Kong SAR China | Hong Kong SAR, China | Hong Kong, China | Hong Kong (China) |"
        "Hong Kong Special Administrative Region |"
        "Hong Kong Special Administrative Region of the People's Republic of China |"
        "香港 | 香港特別行政區 | 香港特别行政区 | 中国香港 | 中國香港 | 香港特區 | 香港特区 |"
        "香港特別行政区 | Région administrative spéciale de Hong Kong |"
        "Sonderverwaltungszone Hongkong"
    ),
    "MO": listed(
        "Macau | Macao | Macao SAR | Macau SAR | Macao SAR China | Macau SAR China |"
        "Macao, China | Macau, China | Macao Special Administrative Region |"
        "Macau Special Administrative Region | MSAR |"
        "澳門 | 澳门 | 澳門特別行政區 | 澳门特别行政区 | 中国澳门 | 中國澳門"
    ),
    "CN": listed(
        "PRC | P.R.C. | PR China | P.R. China | People's Republic of China | mainland China |"
        "Chinese mainland | China mainland |"
        "Festlandchina | chinesisches Festland | Chine continentale | Chine populaire |"
        "China continental | China Continental | Cina continentale | continentaal China |"
        "中国大陆 | 中國大陸 | 中国内地 | 中國內地 | 中华人民共和国 | 中華人民共和國 |"
        "中国本土 | 中国大陸"
    ),
    "TW": listed(
        "Taiwan | Chinese Taipei | Republic of China | ROC | Taiwan, ROC | Taiwan (ROC) |"
        "Taiwan, Province of China |"
        "臺灣 | 台灣 | 台湾 | 中華民國 | 中华民国 | 中華台北 | 中华台北 |"
        "中國台灣 | 中国台湾 | 中國臺灣"
    ),
    "US": listed(
        "US | U.S. | USA | U.S.A. | United States | United States of America |"
        "EE. UU. | EE.UU. | EUA"
    ),
    "GB": listed(
        "UK | U.K. | United Kingdom | Great Britain | Britain | England | Scotland | Wales |"
        "Northern Ireland | Angleterre | Écosse | Pays de Galles | Irlande du Nord |"
        "Schottland | Nordirland | Inglaterra | Escocia | Escócia | Gales | País de Gales |"
        "Irlanda del Norte | Irlanda do Norte | Großbritannien | Grande-Bretagne |"
        "Gran Bretaña | Grã-Bretanha | Gran Bretagna | Groot-Brittannië |"
        "英格兰 | 英格蘭 | 苏格兰 | 蘇格蘭 | 威尔士 | 威爾斯 | 北爱尔兰 | 北愛爾蘭"
    ),
    "EU": listed("EU | E.U. | European Union"),
    "XK": listed("Kosovo"),
    "AE": listed("UAE | U.A.E."),
    "CD": listed(
        "DRC | DR Congo | D.R. Congo | Democratic Republic of the Congo |"
        "Democratic Republic of Congo | Congo-Kinshasa"
    ),
    "CG": listed("Republic of the Congo | Congo-Brazzaville"),
    "KR": listed("ROK | South Korea | Republic of Korea"),
    "KP": listed("DPRK | North Korea | Democratic People's Republic of Korea"),
    "SA": listed("KSA | Saudi Arabia"),
    "CI": listed("Ivory Coast | Côte d'Ivoire | Cote d'Ivoire"),
    "CZ": listed("Czech Republic"),
    "MK": listed("North Macedonia"),
    "MM": listed("Burma"),
    "NL": listed("Holland"),
    "PS": listed("Palestine | State of Palestine"),
    "SZ": listed("Swaziland"),
    "TL": listed("East Timor"),
    "TR": listed("Turkey | Türkiye | Turkiye"),
    "VA": listed("Vatican | Holy See | Vatican City"),
    "CV": listed("Cape Verde"),
    "FK": listed("Falklands | Falkland Islands"),
    "RU": listed("Russia | Russian Federation"),
}

# Abbreviations match case-sensitively because they are all capitals. These mixed-case
# names are case-sensitive too: capitalised, they are the place; in lower case they are
# ordinary words in another language ("indien" is Dutch for "if").
CASE_SENSITIVE_NAMES = frozenset(
    listed("Indien Italien Australien Bolivien Jordanien Libyen Syrien Tunisien", sep=" ")
)

# Common words in a language other than the one naming the place, English demonyms
# ("Omani" is not Oman), and cities, brands and given names (reviewed by hand).
STOPLIST = frozenset(
    listed(
        """
        alando ameni andola andor angolo angora angula argentino ataria babado babados
        barbadas barbado baren bene benina benino bruni butano cad cadi chapón chili chin
        cine eritreo end fala fas fichi filande filipina filipino filippini gabo gambi gana
        gene ginea granata gres gris guama guine hind hindi hondura indi ira irania kana
        kili kota lao lasa lau laws liberi libio malata malt malte man mareia mari marita
        masar maser monago morisse moyette musera nicher palo panam peina pelú pole poo
        reunion ripia risi romani rus russi salvador salvadora salvadoras sane serbi servia
        shine sin sire sirio somali somalis somaria suda sudano suis séc tai tirchia togas
        toko tongo tunes tuns ungern viro viti america amerika américa island sina wdm
        argentine azerbaijani bangladeshi iraqi israeli kuwaiti nepali omani pakistani
        philippine saudi swede swiss yemeni
        brasilia bulgari cameron columbia dominique fuji granada guadalupe helene indy
        lichtenstein maurice mauricio norfolk poole surya tunis
        """,
        sep=" ",
    )
)

# Names a source gives one place that people use for several: ISO's "Congo" is the
# Republic of the Congo, but in the news it is as often the DRC.
AMBIGUOUS = frozenset({"congo"})

# Phrases that contain a name but do not denote the place. They match like names and
# swallow their text, so the name inside them is not reported.
EXCLUSIONS = listed(
    "New Mexico | New Jersey | New England | New South Wales | New Guinea | guinea pig |"
    "guinea pigs | guinea fowl | ROC curve | ROC curves | ROC AUC | AUC-ROC |"
    "ABOUT US | CONTACT US | JOIN US | FOLLOW US | EMAIL US | E-MAIL US | CALL US | LET US |"
    "TELL US | HELP US | GIVE US | SEND US | ASK US | WRITE US | WRITE TO US | REACH US |"
    "VISIT US | FIND US | ALLOW US | TO US | FOR US | WITH US | BY US | FROM US | OF US |"
    "WE AND US |"
    "沿海地区 | 沿海地區 | 内蒙古 | 內蒙古 | 马里兰 | 馬里蘭 | 中非合作 | 中非关系 | 中非關係"
)

# CLDR exemplar city names that are also the name of the territory.
CITY_STATES = {
    "Asia/Hong_Kong": "HK",
    "Asia/Macau": "MO",
    "Asia/Singapore": "SG",
    "Europe/Gibraltar": "GI",
    "Europe/Monaco": "MC",
}

Claims = dict[str, dict[str, dict[str, int]]]  # key -> code -> written form -> source


def main() -> None:
    """Collect, resolve and write the catalog, then report what it holds."""
    codes = sorted({c.alpha_2 for c in pycountry.countries} | set(SPECIAL))
    claims: Claims = defaultdict(lambda: defaultdict(dict))
    for code, name, source in collect(codes):
        claim(claims, code, name, source)
    names = resolve(claims)
    document = render(codes, names)
    OUTPUT.write_text(document, encoding="utf-8")
    total = sum(len(v) for v in names.values())
    print(f"{OUTPUT}: {len(codes)} jurisdictions, {total} names, {len(document.encode())} bytes")  # noqa: T201


def collect(codes: list[str]) -> Iterator[tuple[str, str, int]]:
    """Every (code, name, source) from every source, before any filtering."""
    wanted = set(codes)
    for code, names in CURATED_NAMES.items():
        for name in names:
            yield code, name, CURATED
            yield from derived(code, name, english=False)
    yield from pycountry_names()
    for locale_id in sorted(babel.localedata.locale_identifiers()):
        source = ENGLISH if locale_id.split("_")[0] == "en" else CLDR
        territories = babel.Locale.parse(locale_id).territories
        for code in wanted & territories.keys():
            yield code, territories[code], source
            yield from derived(code, territories[code], english=source == ENGLISH)
    yield from city_names()


def pycountry_names() -> Iterator[tuple[str, str, int]]:
    """ISO 3166 names; inverted ones ("Korea, Republic of") are also turned round."""
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            name = getattr(country, attr, None)
            if name:
                yield country.alpha_2, name, ENGLISH
                yield from derived(country.alpha_2, name, english=True)


def city_names() -> Iterator[tuple[str, str, int]]:
    """CLDR exemplar city names of city-states, in every locale."""
    for locale_id in sorted(babel.localedata.locale_identifiers()):
        zones = babel.Locale.parse(locale_id).time_zones
        for zone, code in CITY_STATES.items():
            city = zones.get(zone, {}).get("city")
            if city:
                yield code, city, CLDR


def derived(code: str, name: str, *, english: bool) -> Iterator[tuple[str, str, int]]:
    """Other spellings of ``name`` that denote the same place."""
    base = name.split("(")[0].strip()
    if base != name and base:
        yield code, base, DERIVED
    if "ß" in name:
        yield code, name.replace("ß", "ss"), DERIVED
    inverted = re.fullmatch(r"(.+), (.+ of(?: the)?|British|U\.S\.)", name)
    if inverted:
        yield code, f"{inverted[2]} {inverted[1]}", DERIVED
    if english:
        yield from english_variants(code, name)


def english_variants(code: str, name: str) -> Iterator[tuple[str, str, int]]:
    """The spellings English writers vary between: "&" or "and", "St." or "Saint"."""
    spelled = name.replace(" & ", " and ")
    for variant in dict.fromkeys((name, spelled)):
        if variant != name:
            yield code, variant, DERIVED
        if "St. " in variant:
            yield code, variant.replace("St. ", "Saint "), DERIVED
            yield code, variant.replace("St. ", "St "), DERIVED


def clean(name: str, source: int) -> str | None:
    """The name in catalog form, or None if it is too short, a common word or junk."""
    form = " ".join(normalise(name).split()).rstrip(":")
    if not form or not (form[0].isalnum() or form[0] in "'·"):
        return None
    if source == CURATED:
        return form
    shortest = 3 if any(needs_boundary(c) for c in form) else 2
    if len(form) < shortest or form.lower() in STOPLIST or form.lower() in AMBIGUOUS:
        return None
    return form


def claim(claims: Claims, code: str, name: str, source: int) -> None:
    """Record that ``source`` says ``name`` denotes ``code``."""
    form = clean(name, source)
    if form is None:
        if source == CURATED:
            raise SystemExit(f"curated name {name!r} for {code} is not usable")
        return
    forms = claims[form.lower()][code]
    forms[form] = min(source, forms.get(form, source))


def resolve(claims: Claims) -> dict[str, dict[str, bool]]:
    """Each code's names (form -> case-sensitive), ambiguous names dropped."""
    names: dict[str, dict[str, bool]] = defaultdict(dict)
    for key, by_code in sorted(claims.items()):
        best = {code: min(forms.values()) for code, forms in by_code.items()}
        top = min(best.values())
        owners = [code for code, source in best.items() if source == top]
        if len(owners) > 1:
            if top == CURATED:
                raise SystemExit(f"curated name {key!r} claimed by {owners}")
            print(f"ambiguous, dropped: {key!r} {sorted(by_code)}", file=sys.stderr)  # noqa: T201
            continue
        forms = by_code[owners[0]]
        form = min(forms, key=lambda f: (forms[f], f))
        names[owners[0]][form] = is_abbreviation(form) or form in CASE_SENSITIVE_NAMES
    return names


def render(codes: list[str], names: dict[str, dict[str, bool]]) -> str:
    """Compact JSON, one jurisdiction per line, sorted, so diffs stay readable."""
    english = babel.Locale.parse("en").territories
    lines = []
    for code in codes:
        entry = {
            "name": DISPLAY.get(code, english[code]),
            "names": sorted(names[code]),
            "case_sensitive": sorted(n for n, cs in names[code].items() if cs),
        }
        lines.append(
            f"{json.dumps(code)}:{json.dumps(entry, ensure_ascii=False, separators=(',', ':'))}"
        )
    header = {
        "version": 1,
        "sources": (
            f"CLDR via Babel {babel.__version__}, ISO 3166 via pycountry "
            f"{metadata.version('pycountry')}, curated"
        ),
        "exclusions": sorted(EXCLUSIONS),
    }
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":"))[:-1]
    return head + ',"jurisdictions":{\n' + ",\n".join(lines) + "\n}}\n"


if __name__ == "__main__":
    main()
