"""Jurisdictions: the built-in catalog of places, and the matcher that finds them in text.

The catalog (``data/jurisdictions.json``, built by ``scripts/build_jurisdictions.py``)
holds every ISO 3166-1 country and territory plus the EU and Kosovo, each with its
names in every language CLDR covers and a hand-checked supplement (HK, HKSAR, 香港,
mainland China, Chinese Taipei ...). A watchlist can add terms or whole jurisdictions
with `extend`.

Matching has to be right in practice, so the rules are:

* Text and names are normalised the same way (`normalise`): NFKC, typographic
  apostrophes become ``'``, and case-insensitive names compare in lower case.
  ``str.lower`` is used rather than ``casefold`` because after NFKC it maps one
  character to one character (U+0130 aside, which is mapped first), so offsets in
  the text survive and a match points at exactly the words that were written.
* Names in alphabetic scripts must stand at word boundaries: the character before
  and after may not be a letter, digit or mark of a script written with spaces, so
  "Omani" is not Oman and "Hong Kong's" is Hong Kong. Scripts written without
  spaces (Han, kana, Hangul, Thai, Lao, Khmer, Myanmar ...) need no boundary.
* The longest name wins ("Papua New Guinea" is not Guinea) and matches never
  overlap: one regex, built as a trie whose longer branches come first, gives
  leftmost-longest matches from the C regex engine.
* All-capital abbreviations (HK, PRC, US) are case-sensitive: "us" is not the US.
* A short list of exclusions ("New Mexico", "guinea pig", "CONTACT US", 沿海地区)
  are not names: they consume their text so the name inside them does not match.
* Every name has a kind (`Form`): a name, an abbreviation, an adjective or demonym
  ("Chinese", "Macanese"), an inflected form ("Китае", "Kínában") or a set phrase
  naming several places at once (港澳台); a form that is also something else is
  marked ambiguous ("Chinese" is a language too). A watchlist can drop forms.
* Language labels ("Simplified Chinese", "Chinese (Hong Kong)", "in Chinese",
  繁體中文(香港), "Hong Kong (English)") are not the state, nor the region inside
  them: a name that a label overlaps is not reported (`Matcher.trace` says why).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

__all__ = [
    "FORM_KINDS",
    "ExtraSpec",
    "Form",
    "Jurisdiction",
    "Match",
    "Matcher",
    "Skip",
    "Trace",
    "catalog",
    "exclusions",
    "extend",
    "is_abbreviation",
    "matcher_for",
    "needs_boundary",
    "normalise",
    "unknown_forms",
]

# Apostrophe look-alikes people type or word processors insert; U+0130 (İ) is the one
# character whose lower case is two characters, so it is folded to I first.
_SAME_LENGTH_FIXES = {"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u02bc": "'", "\u0130": "I"}
_FIXES_TABLE = str.maketrans(_SAME_LENGTH_FIXES)
_NEEDS_FIXES = re.compile("[" + "".join(_SAME_LENGTH_FIXES) + "]")


def _fixed(text: str) -> str:
    """`text` with the same-length fixes applied; a text without any is not copied
    (`str.translate` with a table costs a dictionary lookup per character)."""
    return text.translate(_FIXES_TABLE) if _NEEDS_FIXES.search(text) else text


# Scripts written without spaces between words: a name in them matches anywhere.
_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x1950, 0x1AAF),  # Tai Le, New Tai Lue, Khmer symbols, Tai Tham
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3005, 0x3007),  # ideographic iteration mark, closing mark, number zero
    (0x3040, 0x31FF),  # Hiragana, Katakana, Bopomofo, Hangul compatibility jamo
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0xA4CF),  # CJK unified ideographs, Yi
    (0xA960, 0xA97F),  # Hangul Jamo extended-A
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAADF),  # Myanmar extended-A, Tai Viet
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended-B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFFDC),  # half-width katakana and Hangul
    (0x1B000, 0x1B2FF),  # kana supplement and extensions
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
_UNSPACED_STARTS = tuple(lo for lo, _ in _UNSPACED_RANGES)


# The kinds of form a name can be; "ambiguous" is a mark a form of any kind may carry.
FORM_KINDS = ("name", "abbreviation", "adjective", "demonym", "inflected", "phrase")


@dataclass(frozen=True)
class Form:
    """What kind of name a term is: ``kind`` is one of FORM_KINDS; ``ambiguous`` marks
    a form that also means something else (the adjective "Chinese" is a language too)."""

    kind: str
    ambiguous: bool = False

    def __str__(self) -> str:
        return self.kind + (", ambiguous" if self.ambiguous else "")


@dataclass(frozen=True)
class Jurisdiction:
    """A place a watchlist can watch, with every name that denotes it.

    ``case_sensitive`` is the subset of ``names`` that only match as written
    (abbreviations such as HK and US, which are ordinary words in lower case).
    ``forms`` gives (name, "kind" or "kind ambiguous") for the names that are not
    plain names or abbreviations; see `form`.
    """

    id: str
    name: str
    names: tuple[str, ...]
    case_sensitive: tuple[str, ...] = ()
    forms: tuple[tuple[str, str], ...] = ()

    def form(self, term: str) -> Form:
        """The kind of one of this jurisdiction's names, as written or in any case."""
        label = self._labels.get(normalise(term).lower())
        if label is not None:
            kind, _, mark = label.partition(" ")
            return Form(kind, mark == "ambiguous")
        return Form("abbreviation" if is_abbreviation(normalise(term)) else "name")

    @functools.cached_property
    def _labels(self) -> dict[str, str]:
        return {normalise(name).lower(): label for name, label in self.forms}


@dataclass(frozen=True)
class ExtraSpec:
    """A watchlist's additions: more terms for a known id, or a new jurisdiction.

    ``name`` is required for a new id and, for a known one, renames it for display.
    ``drop`` lists forms not to match (any case); ``drop_kinds`` drops every form of
    those kinds (FORM_KINDS, or "ambiguous" for every form marked so).
    """

    name: str | None = None
    terms: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    drop_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """One mention of a jurisdiction: ``term`` is ``text[start:end]`` as written."""

    jurisdiction: str
    term: str
    start: int
    end: int


def normalise(term: str) -> str:
    """Put a name or a text in the form matching compares (before lower-casing).

    NFKC makes full-width, ligature and compatibility forms plain; apostrophe
    look-alikes (U+2019 and kin) become ``'`` so "Hong Kong's" matches however
    the apostrophe was typed.
    """
    return _fixed(unicodedata.normalize("NFKC", term))


def is_abbreviation(term: str) -> bool:
    """True for all-capital terms (HK, PRC, U.S.): they match case-sensitively.

    In lower case such letters are often ordinary words ("us", "hk" in a URL).
    """
    return any(c.isupper() for c in term) and not any(c.islower() for c in term)


def needs_boundary(char: str) -> bool:
    """True if a name that begins or ends with ``char`` must stand at a word boundary.

    That is a letter, digit or mark of a script written with spaces between words;
    scripts written without them (Han, kana, Hangul, Thai ...) need no boundary.
    """
    if char == "_":
        return True
    if unicodedata.category(char)[0] not in "LMN":
        return False
    code = ord(char)
    i = bisect.bisect_right(_UNSPACED_STARTS, code) - 1
    return i < 0 or code > _UNSPACED_RANGES[i][1]


@dataclass(frozen=True)
class _Catalog:
    places: dict[str, Jurisdiction]
    exclusions: tuple[str, ...]
    label_sources: tuple[str, ...]
    label_tail_source: str

    @functools.cached_property
    def labels(self) -> re.Pattern[str]:
        """Language labels, over lower-case text (compiled by the first text that may
        hold one: loading a watchlist only needs the ids)."""
        return re.compile("|".join(f"(?:{source})" for source in self.label_sources), re.M)

    @functools.cached_property
    def label_tail(self) -> re.Pattern[str]:
        """ "(English)" after a region: the pair is a label."""
        return re.compile(self.label_tail_source)


@functools.cache
def _load() -> _Catalog:
    """Read the packaged catalog once; it never changes while the process runs."""
    raw = resources.files("monitor").joinpath("data/jurisdictions.json").read_text("utf-8")
    data = json.loads(raw)
    places = {
        code: Jurisdiction(
            id=code,
            name=entry["name"],
            names=tuple(entry["names"]),
            case_sensitive=tuple(entry["case_sensitive"]),
            forms=tuple(entry.get("forms", {}).items()),
        )
        for code, entry in data["jurisdictions"].items()
    }
    return _Catalog(places, tuple(data["exclusions"]), tuple(data["labels"]), data["label_tail"])


@functools.cache
def ids() -> frozenset[str]:
    """The built-in jurisdictions' ids, without reading their names: what validating a
    watchlist needs (the whole catalog costs 16 ms and 7 MB to load). The catalog file
    holds one jurisdiction per line, each line starting with its quoted id
    (scripts/build_jurisdictions.py writes it so)."""
    raw = resources.files("monitor").joinpath("data/jurisdictions.json").read_text("utf-8")
    return frozenset(line[1 : line.index('"', 1)] for line in raw.splitlines()[1:-1])


DERIVED = "data/matcher.json"  # what `derive` computes, packaged beside the catalog


@dataclass(frozen=True)
class _Derived:
    unicode: str  # the Unicode version of `word_ranges`
    word_ranges: tuple[str, str]
    rivals: dict[str, frozenset[str]]  # by id: other places' names containing one of its


@functools.cache
def _derived() -> _Derived | None:
    """The packaged derivations (`derive`), or None when they were made from another
    catalog than the packaged one (then the matcher computes what it needs)."""
    data = resources.files("monitor").joinpath(DERIVED)
    if not data.is_file():
        return None
    derived = json.loads(data.read_text("utf-8"))
    if derived.get("catalog") != _catalog_digest():
        return None
    rivals = {jid: frozenset(names) for jid, names in derived["rivals"].items()}
    return _Derived(derived["unicode"], tuple(derived["word_ranges"]), rivals)


def _catalog_digest() -> str:
    raw = resources.files("monitor").joinpath("data/jurisdictions.json").read_bytes()
    return hashlib.sha256(raw).hexdigest()


def derive() -> dict[str, Any]:
    """What a matcher of the packaged catalog would otherwise compute in every process
    that meets a changed page (about 0.2 s), for `scripts/derive_matcher.py` to write
    to `DERIVED`: the word-character classes of this Python's Unicode database, and
    for each jurisdiction the names of the others that contain one of its names."""
    places = tuple(_load().places.values())
    rivals = {place.id: sorted(_searched_rivals((place,), places)) for place in places}
    return {
        "catalog": _catalog_digest(),
        "unicode": unicodedata.unidata_version,
        "word_ranges": list(_computed_word_ranges()),
        "rivals": rivals,
    }


def catalog() -> dict[str, Jurisdiction]:
    """The built-in jurisdictions by id (ISO 3166-1 alpha-2, plus EU and XK).

    A fresh dict each call, so a caller may add to it without affecting others.
    """
    return dict(_load().places)


def exclusions() -> tuple[str, ...]:
    """Phrases that contain a name but do not denote the place ("New Mexico")."""
    return _load().exclusions


def extend(
    base: Mapping[str, Jurisdiction], extra: Mapping[str, ExtraSpec]
) -> dict[str, Jurisdiction]:
    """Apply a watchlist's additions: terms for known ids, definitions for new ones.

    Added terms are case-insensitive unless written in capitals, like built-in names;
    dropped forms and kinds are removed after the terms are added.
    Raises ValueError for a new id without a name, since alerts need one to show,
    and for a dropped form the jurisdiction does not have (a typo would drop nothing).
    """
    result = dict(base)
    for jid, spec in extra.items():
        known = result.get(jid)
        if known is None and not spec.name:
            raise ValueError(f"jurisdiction {jid!r} is not built in, so it needs a name")
        place = _with_terms(known or Jurisdiction(jid, spec.name or jid, ()), spec)
        result[jid] = _without(place, spec.drop, spec.drop_kinds)
    return result


def _with_terms(place: Jurisdiction, spec: ExtraSpec) -> Jurisdiction:
    """One jurisdiction with a spec's name and terms added (duplicates dropped)."""
    names = tuple(dict.fromkeys((*place.names, *spec.terms)))
    extra_cs = tuple(t for t in spec.terms if is_abbreviation(t))
    return Jurisdiction(
        id=place.id,
        name=spec.name or place.name,
        names=names,
        case_sensitive=tuple(dict.fromkeys((*place.case_sensitive, *extra_cs))),
        forms=place.forms,
    )


def unknown_forms(place: Jurisdiction, drop: Iterable[str]) -> list[str]:
    """The entries of ``drop`` that are not names of ``place`` (compared in any case)."""
    keys = {normalise(n).lower() for n in place.names}
    return [form for form in drop if normalise(form).lower() not in keys]


def _without(place: Jurisdiction, drop: Iterable[str], kinds: Iterable[str]) -> Jurisdiction:
    """``place`` without the names ``drop`` lists or whose kind ``kinds`` lists."""
    drop, kinds = tuple(drop), frozenset(kinds)
    if not drop and not kinds:
        return place
    missing = unknown_forms(place, drop)
    if missing:
        raise ValueError(f"{place.id} has no name {missing[0]!r} to drop")
    dropped = {normalise(form).lower() for form in drop}

    def kept(name: str) -> bool:
        form = place.form(name)
        return normalise(name).lower() not in dropped and not (
            form.kind in kinds or (form.ambiguous and "ambiguous" in kinds)
        )

    names = tuple(n for n in place.names if kept(n))
    return replace(
        place,
        names=names,
        case_sensitive=tuple(n for n in place.case_sensitive if n in names),
        forms=tuple(f for f in place.forms if f[0] in names),
    )


def matcher_for(ids: Iterable[str], jurisdictions: Mapping[str, Jurisdiction]) -> Watching:
    """A matcher that reports just the watched jurisdictions; build it once and keep it.

    It matches the names of *every* jurisdiction and keeps the watched ones, so the
    longer name of an unwatched place still wins: with only Taiwan watched, "People's
    Republic of China" is China, not "Republic of China"; with Guinea watched,
    "Equatorial Guinea" is not Guinea. Raises KeyError naming an unknown id.
    """
    watched = tuple(dict.fromkeys(ids))
    places = tuple(jurisdictions[jid] for jid in watched)  # an unknown id is a KeyError
    return Watching(_rivals_matcher(places, tuple(jurisdictions.values())), frozenset(watched))


@functools.lru_cache(maxsize=8)
def _rivals_matcher(
    watched: tuple[Jurisdiction, ...], everyone: tuple[Jurisdiction, ...]
) -> Matcher:
    """The watched names plus every other name that contains one of them: only those
    can win over a watched name as the longer match. A tenth of the whole catalog's
    size and build time for a typical watchlist."""
    ids = {place.id for place in watched}
    hits = _rival_names(watched, everyone)
    rivals = []
    for place in (place for place in everyone if place.id not in ids):
        names = tuple(n for n in place.names if n in hits)
        if names:
            keep = tuple(n for n in place.case_sensitive if n in names)
            forms = tuple(f for f in place.forms if f[0] in names)
            rivals.append(Jurisdiction(place.id, place.name, names, keep, forms))
    return Matcher((*watched, *rivals))


def _rival_names(watched: Iterable[Jurisdiction], everyone: Iterable[Jurisdiction]) -> set[str]:
    """The names of the places not watched that contain a watched name.

    "Contains" is checked on lower-case text without word boundaries, which keeps a
    few names that could not win, but needs no second set of boundary regexes (most of
    the build time is compiling their word-character classes). For the catalog's own
    places the answer is packaged (`derive`); a watchlist's own terms are searched.
    """
    watched, everyone = tuple(watched), tuple(everyone)
    derived = _derived()
    if derived is not None and _built_in(everyone):
        return set().union(*(derived.rivals.get(place.id, ()) for place in watched))
    return _searched_rivals(watched, everyone)


def _searched_rivals(
    watched: tuple[Jurisdiction, ...], everyone: tuple[Jurisdiction, ...]
) -> set[str]:
    ids = {place.id for place in watched}
    keys = {normalise(n).strip().lower() for place in watched for n in place.names}
    keys.discard("")
    return _containing(keys, [n for place in everyone if place.id not in ids for n in place.names])


def _built_in(places: tuple[Jurisdiction, ...]) -> bool:
    """Whether these are the catalog's places, none of them changed by a watchlist."""
    catalog = _load().places
    return len(places) == len(catalog) and all(catalog.get(p.id) is p for p in places)


def _containing(keys: set[str], names: list[str]) -> set[str]:
    """The names whose normalised lower-case form contains one of ``keys``.

    One search over the names joined by newlines, on RE2 (a DFA: linear in the text,
    however many keys), instead of a search of each name: the catalog holds some
    37,000 names. They are joined a few thousand at a time, so their text is never
    held whole in several forms (joined, normalised, lower-cased: 8 MB at once). A
    match cannot span two names, as no key holds a newline (a key that does falls
    back to a search of each name), and each name's form is the same on its own as in
    the joined text (a newline never combines with a neighbour in NFKC, nor changes
    how one is lower-cased)."""
    if not keys or not names:
        return set()
    import re2  # the RE2 module `text.user_regex` also uses

    probe = re2.compile(_trie(sorted(keys)))
    joinable = not any("\n" in key for key in keys)
    found: set[str] = set()
    for first in range(0, len(names), _CONTAINING_CHUNK):
        found |= _containing_in(probe, names[first : first + _CONTAINING_CHUNK], joinable)
    return found


_CONTAINING_CHUNK = 4000  # names joined for one search


def _containing_in(probe: Any, names: list[str], joinable: bool) -> set[str]:
    joined = normalise("\n".join(names)).lower() if joinable else ""
    if not joinable or joined.count("\n") != len(names) - 1:  # one by one
        return {n for n in names if probe.search(normalise(n).lower())}
    starts, at = [0], joined.find("\n")
    while at != -1:
        starts.append(at + 1)
        at = joined.find("\n", at + 1)
    return {names[bisect.bisect_right(starts, m.start()) - 1] for m in probe.finditer(joined)}


class Watching:
    """The matches of a full matcher that concern the watched jurisdictions."""

    def __init__(self, matcher: Matcher, ids: frozenset[str]) -> None:
        self.matcher = matcher
        self.ids = ids

    def find(self, text: str) -> list[Match]:
        return [m for m in self.matcher.find(text) if m.jurisdiction in self.ids]

    def trace(self, text: str) -> Trace:
        """What `find` reports, and the exclusions and language labels that consumed a
        watched name, each with the names a matcher without them finds inside."""
        traced = self.matcher.trace(text)
        plain = self.matcher.without_skips().find(text)
        skips = []
        for skip in traced.skips:
            inside = tuple(
                m
                for m in plain
                if m.jurisdiction in self.ids and m.start < skip.end and m.end > skip.start
            )
            if inside:
                skips.append(replace(skip, names=inside))
        matches = tuple(m for m in traced.matches if m.jurisdiction in self.ids)
        return Trace(matches, tuple(skips))


@dataclass(frozen=True)
class Skip:
    """Text the matcher did not take for a name: an exclusion or a language label."""

    start: int
    end: int
    text: str
    why: str  # "exclusion" or "language label"
    names: tuple[Match, ...] = ()  # the names inside that it consumed (`Watching.trace`)


@dataclass(frozen=True)
class Trace:
    """A find with its reasons: the matches, and the text skipped as not a name."""

    matches: tuple[Match, ...]
    skips: tuple[Skip, ...]


# A key's entries: (jurisdiction id or None for an exclusion, exact form or None).
# The exact form is set for case-sensitive names and compared with the text as written.
_Entry = tuple[str | None, str | None]
_Hit = tuple[int, int, list[str], str]  # start, end, ids, why ("" for a name)
_LABEL, _EXCLUSION = "language label", "exclusion"
_OPENING, _CLOSING = "(\uff08", ")\uff09"  # ASCII and full-width


class Matcher:
    """Finds mentions of a fixed set of jurisdictions in text, fast.

    Building compiles the names into one regex per script (about a second for the
    whole catalog, a fraction of that for a watchlist), so build once and reuse.
    ``exclude`` lists phrases that are not names; None means the built-in
    `exclusions`. ``labels`` False turns the language-label rule off.
    """

    def __init__(
        self,
        jurisdictions: Iterable[Jurisdiction],
        *,
        exclude: Iterable[str] | None = None,
        labels: bool = True,
    ) -> None:
        self._places = tuple(jurisdictions)
        entries: dict[str, list[_Entry]] = {}
        ambiguous: set[str] = set()
        for place in self._places:
            case_sensitive = set(place.case_sensitive)
            for name in place.names:
                _add_entry(entries, name, place.id, exact=name in case_sensitive)
            ambiguous.update(normalise(n).lower() for n, k in place.forms if "ambiguous" in k)
        for phrase in exclusions() if exclude is None else exclude:
            _add_entry(entries, phrase, None, exact=is_abbreviation(phrase))
        self._entries = {key: tuple(dict.fromkeys(found)) for key, found in entries.items()}
        self._ambiguous = frozenset(ambiguous)
        self._ambiguous_firsts = frozenset(key[0] for key in ambiguous)
        self._labels = labels
        self._scanners = _scanners(self._entries)

    @functools.cached_property
    def _plain(self) -> Matcher:
        return Matcher(self._places, exclude=(), labels=False)

    def without_skips(self) -> Matcher:
        """The same names without exclusions or language labels (built on first use)."""
        return self._plain

    def find(self, text: str) -> list[Match]:
        """Every mention in ``text``: leftmost-longest, non-overlapping, in order.

        A term that several jurisdictions share (a set phrase, or a watchlist's term)
        gives one Match for each of them, with the same span.
        """
        return list(self.trace(text).matches)

    def trace(self, text: str) -> Trace:
        """`find`'s matches, and the exclusions and language labels that took text."""
        norm, offsets = _normalise_text(text)
        norm = " " + norm  # every name then has a character before it
        folded = norm.lower()
        present = set(folded)
        hits: list[_Hit] = []
        for scanner in self._scanners:
            if not scanner.firsts.isdisjoint(present):
                hits.extend(
                    (*h, "" if h[2] else _EXCLUSION) for h in self._scan(scanner, norm, folded)
                )
        if self._labels and hits:
            parens = not present.isdisjoint(_OPENING)
            hits.extend(self._label_hits(norm, folded, hits, parens=parens))
        found: list[Match] = []
        skips: list[Skip] = []
        taken = 0
        for start, end, ids, why in sorted(hits, key=lambda h: (h[0], -h[1])):
            if start >= taken:
                first, last = offsets.original(start - 1, end - 1)
                found.extend(Match(jid, text[first:last], first, last) for jid in ids)
                if why:
                    skips.append(Skip(first, last, text[first:last], why))
                taken = end
        return Trace(tuple(found), tuple(skips))

    def _label_hits(
        self, norm: str, folded: str, hits: list[_Hit], *, parens: bool
    ) -> Iterator[_Hit]:
        """Language labels that overlap a name: only looked for around an ambiguous
        name ("Chinese"), a name written in lower case (Spanish "versión china"), a
        name inside parentheses, or one followed by a parenthesis (``parens``: the text
        has an opening parenthesis at all)."""
        catalog = _load()
        for start, end, ids, _ in hits:
            if not ids:
                continue
            tail = catalog.label_tail.match(folded, end) if parens else None
            if tail:
                yield start, tail.end(), [], _LABEL
            if (
                norm[start].islower()  # written in lower case
                or (
                    folded[start] in self._ambiguous_firsts and folded[start:end] in self._ambiguous
                )
                or (parens and _in_parentheses(folded, start))
            ):
                lo, hi = max(0, start - 80), min(len(folded), end + 120)
                for m in catalog.labels.finditer(folded, lo, hi):
                    if m.start() >= end:
                        break
                    real = catalog.labels.match(folded, m.start())  # not cut at ``hi``
                    if real and real.end() > start:
                        yield real.start(), real.end(), [], _LABEL

    def _scan(
        self, scanner: _Scanner, norm: str, folded: str
    ) -> Iterator[tuple[int, int, list[str]]]:
        """Accepted (start, end, ids) spans of one scanner's names, left to right."""
        pos = 0
        while (m := scanner.regex.search(folded, pos)) is not None:
            hit = self._longest_accepted(scanner, norm, folded, m)
            if hit is None:
                pos = m.start() + 1
                continue
            yield hit
            pos = hit[1] - scanner.lead

    def _longest_accepted(
        self, scanner: _Scanner, norm: str, folded: str, m: re.Match[str]
    ) -> tuple[int, int, list[str]] | None:
        """The longest acceptable name where ``m`` starts, as (start, end, ids).

        The regex cannot see case, so a case-sensitive name it found is checked
        against the text as written; if that fails, shorter names at the same start
        are tried. An exclusion is acceptable and names no ids.
        """
        while True:
            start, end = m.span(1)
            ids = self._verdict(norm, folded, start, end)
            if ids is not None:
                return start, end, ids
            shorter = scanner.regex.match(folded, m.start(), end - 1)
            if shorter is None:
                return None
            m = shorter

    def _verdict(self, norm: str, folded: str, start: int, end: int) -> list[str] | None:
        """The ids a span names ([] for an exclusion), or None if it is not acceptable."""
        if end < len(folded) and needs_boundary(folded[end - 1]) and needs_boundary(folded[end]):
            return None  # a shortened retry ended inside a word
        written = norm[start:end]
        ids = [jid for jid, exact in self._entries[folded[start:end]] if exact in (None, written)]
        if not ids:
            return None
        return [jid for jid in ids if jid is not None]


def _in_parentheses(folded: str, at: int) -> bool:
    """Whether an opening parenthesis not yet closed stands shortly before ``at``."""
    before = folded[max(0, at - 40) : at]
    opened = max(before.rfind(c) for c in _OPENING)
    return opened >= 0 and max(before.rfind(c) for c in _CLOSING) < opened


def _add_entry(
    entries: dict[str, list[_Entry]], name: str, jid: str | None, *, exact: bool
) -> None:
    """File a name under its lower-case key, remembering its exact form if needed."""
    form = normalise(name).strip()
    if form:
        entries.setdefault(form.lower(), []).append((jid, form if exact else None))


@dataclass(frozen=True)
class _Scanner:
    """One regex over the names whose first character is in one script.

    The regex engine tries alternatives one by one, so a single regex over names
    in forty scripts spends its time rejecting the thirty-nine a text is not in.
    Split by script, a text only meets the scanners of the scripts it contains.
    """

    firsts: frozenset[str]
    keys: tuple[str, ...]
    lead: int  # 1 if the regex also consumes the character before the name

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        """Compiled by the first text that holds one of `firsts`: compiling is most of a
        matcher's build, and a page meets the scanners of few scripts."""
        return _compile(list(self.keys), lead=bool(self.lead))


def _scanners(keys: Iterable[str]) -> tuple[_Scanner, ...]:
    """One scanner per (script, needs a boundary) of the keys' first characters."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for key in keys:
        script = unicodedata.name(key[0], "?").split(" ")[0]
        groups.setdefault((script, needs_boundary(key[0])), []).append(key)
    return tuple(
        _Scanner(frozenset(k[0] for k in group), tuple(group), int(lead))
        for (_, lead), group in sorted(groups.items())
    )


_ASTRAL = "(?=[\\U00010000-\\U0010ffff])"


def _compile(keys: list[str], *, lead: bool) -> re.Pattern[str]:
    """A regex for ``keys``: a trie, longer branches first, with boundary checks.

    Group 1 is the name. For spaced scripts the regex starts by consuming a
    non-word character, which doubles as the leading boundary check and lets the
    engine skip through words without trying the trie. The trailing check only
    bites where both the name's last character and the next are word characters.
    An astral class is only tried once one range test has seen an astral character
    (that range, not "not [\\x00-\\uffff]": Python's regex compiler fills a BMP range
    into a bitmap one character at a time, and three of those in each of forty regexes
    took most of the matcher's build time).
    """
    bmp, astral = _word_ranges()
    word = f"(?:[{bmp}]|{_ASTRAL}[{astral}])"
    head = f"[^{bmp}](?<!{_ASTRAL}[{astral}])" if lead else ""
    return re.compile(f"{head}({_trie(sorted(keys))})(?:(?<!{word})|(?!{word}))")


@functools.cache
def _word_ranges() -> tuple[str, str]:
    """Class contents for the characters `needs_boundary` is true for: (BMP, astral).
    Packaged for the Unicode version they were derived with (`derive`); computed
    under another."""
    derived = _derived()
    if derived is not None and derived.unicode == unicodedata.unidata_version:
        return derived.word_ranges
    return _computed_word_ranges()


def _computed_word_ranges() -> tuple[str, str]:
    """`_word_ranges` from the Unicode database: a walk over 196,608 code points (55 ms).

    Marks count as word characters ("प्राचीन" must not contain "चीन"); unassigned code
    points are folded into neighbouring ranges to keep the classes short. The regex
    engine keeps BMP classes as a bitmap but tests other ranges one by one, hence the
    split.
    """
    ranges: list[list[int]] = []
    for code in range(0x30000):
        char = chr(code)
        extends = bool(ranges) and ranges[-1][1] == code - 1
        if needs_boundary(char) or (extends and unicodedata.category(char) == "Cn"):
            if extends:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    parts: tuple[list[str], list[str]] = ([], [])
    for lo, hi in ranges:
        parts[lo > 0xFFFF].append(_in_class(lo) + (f"-{_in_class(hi)}" if hi > lo else ""))
    return "".join(parts[0]), "".join(parts[1])


def _in_class(code: int) -> str:
    """A character as written in a regex class: itself (the regex parser reads a
    character far faster than a ``\\U`` escape, and every scanner's regex holds the
    classes three times), escaped if the class syntax gives it a meaning."""
    char = chr(code)
    return "\\" + char if char in "\\]^-[" else char


_Node = dict[str, "_Node"]  # a trie node: next character -> node; "" marks an end


def _trie(keys: list[str]) -> str:
    """Regex source matching exactly ``keys``, preferring the longest.

    Common prefixes are factored out, so the engine follows one path through the
    names instead of trying each in turn.
    """
    root: _Node = {}
    for key in keys:
        node = root
        for char in key:
            node = node.setdefault(char, {})
        node[""] = {}
    return _node_source(root)


def _node_source(node: _Node) -> str:
    """Regex source for one trie node: its branches, then the empty end if it is one.

    A greedy ``?`` tries the branches before the end, so longer names win, and
    backtracks to the end when a longer name fails its boundary check.
    """
    branches = []
    for char, child in sorted(node.items()):
        if char:
            run, rest = _single_path(char, child)
            branches.append(re.escape(run) + _node_source(rest))
    if not branches:
        return ""
    if len(branches) == 1:
        body = branches[0]
        return f"(?:{body})?" if "" in node else body
    body = "(?:" + "|".join(branches) + ")"
    return body + "?" if "" in node else body


def _single_path(run: str, node: _Node) -> tuple[str, _Node]:
    """Follow a chain of nodes with one child and no end, so it becomes one literal."""
    while len(node) == 1 and "" not in node:
        ((char, child),) = node.items()
        run, node = run + char, child
    return run, node


@dataclass(frozen=True)
class _Offsets:
    """Maps spans in the normalised text back to the original text.

    ``norm_starts[i]`` / ``orig_starts[i]`` begin segment i; a segment is linear
    (one character for one character) or a single cluster that changed length.
    """

    norm_starts: tuple[int, ...]
    orig_starts: tuple[int, ...]
    linear: tuple[bool, ...]
    orig_len: int

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original span of a normalised span, widened to whole clusters."""
        return self._point(start, at_end=False), self._point(end, at_end=True)

    def _point(self, pos: int, *, at_end: bool) -> int:
        i = bisect.bisect_right(self.norm_starts, pos - 1 if at_end else pos) - 1
        i = max(i, 0)
        if self.linear[i]:
            return self.orig_starts[i] + pos - self.norm_starts[i]
        if at_end:
            return self.orig_starts[i + 1] if i + 1 < len(self.orig_starts) else self.orig_len
        return self.orig_starts[i]


def _normalise_text(text: str) -> tuple[str, _Offsets]:
    """`normalise` a whole text, keeping the way back to original offsets.

    Web text is almost always NFKC already; then only same-length fixes apply.
    Otherwise the text is split in halves until the pieces that change are small.
    """
    if unicodedata.is_normalized("NFKC", text):
        identity = _Offsets((0,), (0,), (True,), len(text))
        return _fixed(text), identity
    pieces: list[tuple[int, str, bool]] = []
    _split_normalise(text, 0, len(text), pieces)
    norm_starts, orig_starts, linear, out = [], [], [], []
    length = 0
    for orig_start, piece, is_linear in pieces:
        norm_starts.append(length)
        orig_starts.append(orig_start)
        linear.append(is_linear)
        out.append(piece)
        length += len(piece)
    offsets = _Offsets(tuple(norm_starts), tuple(orig_starts), tuple(linear), len(text))
    return "".join(out), offsets


def _split_normalise(text: str, lo: int, hi: int, out: list[tuple[int, str, bool]]) -> None:
    """Normalise ``text[lo:hi]`` into ``out`` as (original start, piece, linear)."""
    chunk = text[lo:hi]
    if unicodedata.is_normalized("NFKC", chunk):
        out.append((lo, _fixed(chunk), True))
        return
    mid = _split_point(text, (lo + hi) // 2, hi) if hi - lo > 64 else hi
    if mid >= hi:
        _normalise_clusters(text, lo, hi, out)
        return
    _split_normalise(text, lo, mid, out)
    _split_normalise(text, mid, hi, out)


def _split_point(text: str, at: int, hi: int) -> int:
    """The first index from ``at`` where normalisation cannot join across the cut.

    Marks compose with the character before them, and Hangul jamo with each other.
    """
    while at < hi and (
        unicodedata.category(text[at])[0] == "M" or 0x1100 <= ord(text[at]) <= 0x11FF
    ):
        at += 1
    return at


def _normalise_clusters(text: str, lo: int, hi: int, out: list[tuple[int, str, bool]]) -> None:
    """Normalise a short stretch one cluster (a character and its marks) at a time."""
    start = lo
    for i in range(lo + 1, hi + 1):
        if i < hi and unicodedata.combining(text[i]):
            continue
        cluster = text[start:i]
        piece = normalise(cluster)
        out.append((start, piece, len(piece) == len(cluster)))
        start = i
