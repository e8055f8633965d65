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
"""

from __future__ import annotations

import bisect
import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "ExtraSpec",
    "Jurisdiction",
    "Match",
    "Matcher",
    "catalog",
    "exclusions",
    "extend",
    "is_abbreviation",
    "matcher_for",
    "needs_boundary",
    "normalise",
]

# Apostrophe look-alikes people type or word processors insert; U+0130 (İ) is the one
# character whose lower case is two characters, so it is folded to I first.
_SAME_LENGTH_FIXES = {"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u02bc": "'", "\u0130": "I"}
_FIXES_TABLE = str.maketrans(_SAME_LENGTH_FIXES)

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


@dataclass(frozen=True)
class Jurisdiction:
    """A place a watchlist can watch, with every name that denotes it.

    ``case_sensitive`` is the subset of ``names`` that only match as written
    (abbreviations such as HK and US, which are ordinary words in lower case).
    """

    id: str
    name: str
    names: tuple[str, ...]
    case_sensitive: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtraSpec:
    """A watchlist's additions: more terms for a known id, or a new jurisdiction.

    ``name`` is required for a new id and, for a known one, renames it for display.
    """

    name: str | None = None
    terms: tuple[str, ...] = ()


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
    return unicodedata.normalize("NFKC", term).translate(_FIXES_TABLE)


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


@functools.cache
def _load() -> tuple[dict[str, Jurisdiction], tuple[str, ...]]:
    """Read the packaged catalog once; it never changes while the process runs."""
    raw = resources.files("monitor").joinpath("data/jurisdictions.json").read_text("utf-8")
    data = json.loads(raw)
    places = {
        code: Jurisdiction(
            id=code,
            name=entry["name"],
            names=tuple(entry["names"]),
            case_sensitive=tuple(entry["case_sensitive"]),
        )
        for code, entry in data["jurisdictions"].items()
    }
    return places, tuple(data["exclusions"])


def catalog() -> dict[str, Jurisdiction]:
    """The built-in jurisdictions by id (ISO 3166-1 alpha-2, plus EU and XK).

    A fresh dict each call, so a caller may add to it without affecting others.
    """
    return dict(_load()[0])


def exclusions() -> tuple[str, ...]:
    """Phrases that contain a name but do not denote the place ("New Mexico")."""
    return _load()[1]


def extend(
    base: Mapping[str, Jurisdiction], extra: Mapping[str, ExtraSpec]
) -> dict[str, Jurisdiction]:
    """Apply a watchlist's additions: terms for known ids, definitions for new ones.

    Added terms are case-insensitive unless written in capitals, like built-in names.
    Raises ValueError for a new id without a name, since alerts need one to show.
    """
    result = dict(base)
    for jid, spec in extra.items():
        known = result.get(jid)
        if known is None and not spec.name:
            raise ValueError(f"jurisdiction {jid!r} is not built in, so it needs a name")
        result[jid] = _with_terms(known or Jurisdiction(jid, spec.name or jid, ()), spec)
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
    probe = Matcher(watched, exclude=())
    rivals = []
    for place in everyone:
        if place.id in ids:
            continue
        names = tuple(n for n in place.names if probe.find(n))
        if names:
            keep = tuple(n for n in place.case_sensitive if n in names)
            rivals.append(Jurisdiction(place.id, place.name, names, keep))
    return Matcher((*watched, *rivals))


class Watching:
    """The matches of a full matcher that concern the watched jurisdictions."""

    def __init__(self, matcher: Matcher, ids: frozenset[str]) -> None:
        self.matcher = matcher
        self.ids = ids

    def find(self, text: str) -> list[Match]:
        return [m for m in self.matcher.find(text) if m.jurisdiction in self.ids]


# A key's entries: (jurisdiction id or None for an exclusion, exact form or None).
# The exact form is set for case-sensitive names and compared with the text as written.
_Entry = tuple[str | None, str | None]


class Matcher:
    """Finds mentions of a fixed set of jurisdictions in text, fast.

    Building compiles the names into one regex per script (about a second for the
    whole catalog, a fraction of that for a watchlist), so build once and reuse.
    ``exclude`` lists phrases that are not names; None means the built-in
    `exclusions`.
    """

    def __init__(
        self, jurisdictions: Iterable[Jurisdiction], *, exclude: Iterable[str] | None = None
    ) -> None:
        entries: dict[str, list[_Entry]] = {}
        for place in jurisdictions:
            case_sensitive = set(place.case_sensitive)
            for name in place.names:
                _add_entry(entries, name, place.id, exact=name in case_sensitive)
        for phrase in exclusions() if exclude is None else exclude:
            _add_entry(entries, phrase, None, exact=is_abbreviation(phrase))
        self._entries = {key: tuple(dict.fromkeys(found)) for key, found in entries.items()}
        self._scanners = _scanners(self._entries)

    def find(self, text: str) -> list[Match]:
        """Every mention in ``text``: leftmost-longest, non-overlapping, in order.

        A term that several jurisdictions share (a watchlist may do that) gives one
        Match for each of them, with the same span.
        """
        norm, offsets = _normalise_text(text)
        norm = " " + norm  # every name then has a character before it
        folded = norm.lower()
        present = set(folded)
        hits: list[tuple[int, int, list[str]]] = []
        for scanner in self._scanners:
            if not scanner.firsts.isdisjoint(present):
                hits.extend(self._scan(scanner, norm, folded))
        found: list[Match] = []
        taken = 0
        for start, end, ids in sorted(hits, key=lambda h: (h[0], -h[1])):
            if start >= taken:
                first, last = offsets.original(start - 1, end - 1)
                found.extend(Match(jid, text[first:last], first, last) for jid in ids)
                taken = end
        return found

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
    regex: re.Pattern[str]
    lead: int  # 1 if the regex also consumes the character before the name


def _scanners(keys: Iterable[str]) -> tuple[_Scanner, ...]:
    """One scanner per (script, needs a boundary) of the keys' first characters."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for key in keys:
        script = unicodedata.name(key[0], "?").split(" ")[0]
        groups.setdefault((script, needs_boundary(key[0])), []).append(key)
    return tuple(
        _Scanner(frozenset(k[0] for k in group), _compile(group, lead=lead), int(lead))
        for (_, lead), group in sorted(groups.items())
    )


def _compile(keys: list[str], *, lead: bool) -> re.Pattern[str]:
    """A regex for ``keys``: a trie, longer branches first, with boundary checks.

    Group 1 is the name. For spaced scripts the regex starts by consuming a
    non-word character, which doubles as the leading boundary check and lets the
    engine skip through words without trying the trie. The trailing check only
    bites where both the name's last character and the next are word characters.
    """
    bmp, astral = _word_ranges()
    word = f"(?:[{bmp}]|(?![\\x00-\\uffff])[{astral}])"
    head = f"[^{bmp}](?<!(?![\\x00-\\uffff])[{astral}])" if lead else ""
    return re.compile(f"{head}({_trie(sorted(keys))})(?:(?<!{word})|(?!{word}))")


@functools.cache
def _word_ranges() -> tuple[str, str]:
    """Class contents for the characters `needs_boundary` is true for: (BMP, astral).

    Computed from the Unicode database once. Marks count as word characters
    ("प्राचीन" must not contain "चीन"); unassigned code points are folded into
    neighbouring ranges to keep the classes short. The regex engine keeps BMP
    classes as a bitmap but tests other ranges one by one, hence the split.
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
        parts[lo > 0xFFFF].append(f"\\U{lo:08x}" + (f"-\\U{hi:08x}" if hi > lo else ""))
    return "".join(parts[0]), "".join(parts[1])


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
        return text.translate(_FIXES_TABLE), identity
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
        out.append((lo, chunk.translate(_FIXES_TABLE), True))
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
