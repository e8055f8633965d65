"""Diff: the changes between two versions of a page, at the grain of a sentence.

A reader wants to see "this sentence about Hong Kong was removed" or "this row went
from 202 to 0", never "paragraph 14 differs" and never noise from a paragraph that was
only split, merged or moved. This stage is pure: no I/O, no clock, and the same two
versions always give the same changes, in the reading order of the newer version
(a removed sentence stands where it was).

How two versions are compared (n blocks and sentences in all, D of them in changed
regions), and what each step costs:

1. Blocks are aligned on (kind, text), ignoring their section path, so that renaming a
   heading changes the heading only. The common head and tail are matched first; in
   what is left, the blocks that occur exactly once on each side are anchors, and the
   longest chain of anchors in the same order on both sides (patience diff; of equal
   chains, the one keeping more headings in place) splits it into gaps, handled the
   same way. A gap without anchors is aligned by difflib when small (``_SMALL_GAP``
   block pairs), else left whole. A pass over k blocks costs O(k log k), and all
   passes together may look at ``_ALIGN_WORK`` times the number of blocks, after which
   the remaining gaps are left whole: O(n log n) whatever the input, and one pass for
   a typical edit.
2. Each gap between matched blocks is a changed region. A block removed in one region
   and added, identical, in another is one ``moved`` change; an identical block on
   both sides of one region is no change. O(D), by hashing.
3. The other blocks of a region are cut into units: sentences for prose (paragraphs,
   items, definitions, long terms), the whole block for rows, headings and terms. A
   unit found on both sides of the region is unchanged whichever block holds it, so
   that a paragraph split in two, two merged into one, or a sentence moved to the next
   paragraph is no change; a text repeated in the region is paired by position, so a
   removed copy is reported where it was. A unit left over on one side of a region and
   found identical on the other side of another region is ``moved``. O(D), by hashing.
4. What is left is paired into ``modified`` units: rows with the same first cell (the
   row header), then units of one kind whose word sets are similar (Dice coefficient
   at least ``_SIMILAR``), best pairs first. A small region compares every pair
   (``_FULL_PAIRING``); a larger one compares each unit only with the units within
   ``_WINDOW`` of where it stood, and takes at once one that is very similar
   (``_SURE``). O(D log D), even when every line of a page changed. The rest is
   ``added`` or ``removed``.
5. A modified unit carries its edit script (``word_segments``): words, spaces and
   punctuation for alphabetic scripts, single characters for Chinese, Japanese and
   Korean. The common head and tail are found by bisection on the characters, and
   difflib sees only the differing middle, or makes it one replacement when longer
   than ``_SEGMENT_WORK`` token pairs: O(length of the unit) for a typical edit.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import NamedTuple

from monitor.model import Block, Change, ChangeKind, Document
from monitor.wording import Alignment

__all__ = ["compare", "split_sentences", "word_segments"]

# Gaps without an anchor are handed to difflib up to this many block pairs.
_SMALL_GAP = 10_000
# Block alignment may look at each block this many times before it stops refining.
_ALIGN_WORK = 16
# In a region with more leftover pairs than this, a unit is compared with the units
# within _WINDOW of where it stood only.
_FULL_PAIRING = 16_384
_WINDOW = 4
# Occurrences of one repeated unit text (pairs) that are placed by position, not in order.
_OCCURRENCE_WORK = 1_024
# Word-set similarity from which a removed and an added unit are one modified unit, and
# from which, in a large region, the unit standing where a removed one stood is taken.
_SIMILAR = 0.5
_SURE = 0.8
# Token pairs word_segments hands to difflib; beyond, the middle is one replacement.
_SEGMENT_WORK = 250_000
# A term (dt) longer than this is prose, cut into sentences.
_LONG_TERM = 200
# Sorts a removed unit after every unit of the block it follows.
_END = 1 << 30

# --- sentences and tokens ------------------------------------------------------------

# Han, Hiragana, Katakana, Hangul and their marks: scripts written without spaces
# (Korean has spaces, but a character is still the finest useful grain).
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u3100-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\U00020000-\U0003ffff"
)
_CLOSERS = "\"')\\]}»」』】》〉"
_OPENERS = "\"'([{¿¡«「『【《〈"
# A Latin sentence end: . ! ? (and closing quotes or brackets) before a space; the
# lookahead captures the first character of what follows.
_LATIN_END = re.compile(rf"[.!?]+[{_CLOSERS}]*(?=\s+(\S))")
# A CJK sentence end needs no space: 。 and the full-width ! ? ; always, ASCII ! ? ;
# after a CJK character (normalisation turns the full-width forms into ASCII). The
# pattern starts with a character class, which the regex engine scans for quickly.
_CJK_STOPS = "\u3002\uff01\uff1f\uff1b"
_CJK_END = re.compile(
    rf"[{_CJK_STOPS}!?;](?:(?<=[{_CJK_STOPS}])|(?<=[{_CJK}].))"
    rf"[{_CJK_STOPS}!?;]*[{_CLOSERS}]*"
)
# No abbreviation is longer than this (a longer word before a "." ends a sentence).
_ABBREVIATION_CHARS = 16
# fmt: off
_ABBREVIATIONS = frozenset({
    # English
    "e.g.", "i.e.", "etc.", "vs.", "cf.", "al.", "inc.", "ltd.", "co.", "corp.", "llc.",
    "pte.", "pty.", "no.", "nos.", "art.", "arts.", "sec.", "para.", "ch.", "vol.", "pp.",
    "fig.", "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "gen.", "gov.",
    "dept.", "approx.", "est.", "ibid.", "viz.", "ph.d.", "jan.", "feb.", "mar.", "apr.",
    "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.",
    # French
    "mme.", "mlle.", "mm.", "env.", "ex.", "chap.", "av.", "j.-c.",
    # German
    "nr.", "abs.", "bzw.", "ggf.", "vgl.", "usw.", "gem.", "inkl.", "zzgl.", "evtl.",
    "sog.", "ca.", "bspw.", "ziff.", "lit.", "hrsg.", "mio.", "mrd.", "str.", "tel.",
    # Spanish, Italian, Portuguese
    "sra.", "srta.", "núm.", "pág.", "ss.", "sig.", "dott.",
})
# fmt: on
# Initials and dotted abbreviations (J. Smith, U.S., z.B.), and the ordinal numbers of
# German and French dates and articles ("am 1. Januar", "Art. 6 Abs. 1.").
_NO_END = re.compile(r"(?:[^\W\d_]\.)+|\d{1,2}\.")
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|\s+|[^\w\s]")
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_WORD_CHAR = re.compile(rf"[^\W{_CJK}]")


def split_sentences(text: str) -> list[str]:
    """Cut a text into sentences, each keeping its closing punctuation.

    Units must be stable: the same sentence must come out the same wherever it
    stands, so a cut depends only on the characters around it. Latin text ends a
    sentence at . ! ? followed by a space and a capital, a digit, a caseless letter or
    an opening quote or bracket, except after an abbreviation, an initial or a small
    ordinal number; ";" does not end one. Chinese, Japanese and Korean text ends one
    at 。 and the full-width ! ? ; with no space needed.
    """
    return [text[start:end] for start, end in _sentence_spans(text)]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where `split_sentences` cuts: each sentence's [start, end), without the spaces
    around it."""
    cuts = {len(text)}
    cuts.update(match.end() for match in _LATIN_END.finditer(text) if _ends(text, match))
    if not text.isascii():
        cuts.update(match.end() for match in _CJK_END.finditer(text))
    spans, start = [], 0
    for cut in sorted(cuts):
        piece = text[start:cut]
        stripped = piece.lstrip()
        if stripped.strip():
            begin = start + len(piece) - len(stripped)
            spans.append((begin, begin + len(stripped.rstrip())))
        start = cut
    return spans


def _ends(text: str, match: re.Match[str]) -> bool:
    """Whether a Latin . ! ? really ends a sentence (see split_sentences)."""
    following = match.group(1)
    if not (
        following.isdigit()
        or following in _OPENERS
        or (following.isalpha() and not following.islower())
    ):
        return False
    if match.group().rstrip(_CLOSERS) != ".":
        return True
    return not _is_abbreviation(_word_before(text, match.start()))


def _word_before(text: str, dot: int) -> str:
    """The word that ends with the "." at ``dot``, or "" when it is too long to be an
    abbreviation (only a few characters are looked at: a cut stays O(1))."""
    start = max(0, dot - _ABBREVIATION_CHARS)
    head = text[start : dot + 1]
    word = head.split()[-1]
    if start > 0 and len(word) == len(head):
        return ""
    return word.lstrip(_OPENERS)


def _is_abbreviation(word: str) -> bool:
    """An abbreviation, initial or small ordinal number, which a "." does not end."""
    elided = word.rpartition("'")[2].lower()  # French l'art., d'env.
    return (
        word.lower() in _ABBREVIATIONS
        or elided in _ABBREVIATIONS
        or _NO_END.fullmatch(word) is not None
    )


def word_segments(a: str, b: str) -> tuple[tuple[str, str], ...]:
    """The edit script from ``a`` to ``b``: ("=", kept), ("-", removed), ("+", added).

    The grain is what a reader compares: words, spaces and punctuation, or single
    characters in Chinese, Japanese and Korean, so that "香港政府" → "香港特區政府"
    shows only "特區" added. Segments of one kind are merged, and a short kept text
    between two replacements joins them ("- quick brown", "+ slow red"), so that a
    rewritten phrase reads as one. Joining the "=" and "-" texts gives ``a``; joining
    the "=" and "+" texts gives ``b``.
    """
    if a == b:
        return (("=", a),) if a else ()
    head = _common_head(a, b)
    tail = _common_tail(a, b, min(len(a), len(b)) - head)
    old, new = _TOKEN.findall(a[head : len(a) - tail]), _TOKEN.findall(b[head : len(b) - tail])
    ops = [("=", a[:head]), *_middle_ops(old, new), ("=", a[len(a) - tail :])]
    return _tidy(ops)


def _common_head(a: str, b: str) -> int:
    """The length of the longest common head of two texts that ends between tokens
    in both. Found by bisection on slices, which compare in C: only the differing
    middle is cut into tokens, which keeps a one-word edit of a long text cheap."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    while not (_between_tokens(a, low) and _between_tokens(b, low)):
        low -= 1
    return low


def _common_tail(a: str, b: str, limit: int) -> int:
    """The length of the longest common tail (at most ``limit``) that starts between
    tokens in both texts."""
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle - 1
    while not (_between_tokens(a, len(a) - low) and _between_tokens(b, len(b) - low)):
        low -= 1
    return low


def _between_tokens(text: str, at: int) -> bool:
    """Whether a cut at ``at`` falls between two tokens of _TOKEN (runs of word
    characters and of spaces are tokens; any other character is one on its own)."""
    if at in (0, len(text)):
        return True
    before, after = _char_class(text[at - 1]), _char_class(text[at])
    return before == "other" or before != after


def _char_class(char: str) -> str:
    if char.isspace():
        return "space"
    return "word" if _WORD_CHAR.match(char) else "other"


def _middle_ops(old: list[str], new: list[str]) -> list[tuple[str, str]]:
    """difflib's opcodes over the differing middle, or one replacement when the two
    sides share no token, or are too long for difflib's worst case (quadratic) to
    stay cheap."""
    if len(old) * len(new) > _SEGMENT_WORK or set(old).isdisjoint(new):
        return [("-", "".join(old)), ("+", "".join(new))]
    ops: list[tuple[str, str]] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops.append(("=", "".join(old[i1:i2])))
        else:
            ops += [("-", "".join(old[i1:i2])), ("+", "".join(new[j1:j2]))]
    return ops


def _tidy(ops: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Group the script into kept texts and replacements, and fold a kept text no
    longer than the replacements on both sides of it into one replacement (a space,
    a ".", or the 國 of 中國內地 → 中華人民共和國), so that a rewritten phrase reads
    as one rather than as a scatter of letters that happen to recur."""
    out: list[str | tuple[str, str]] = []
    for part in _grouped(ops):
        out.append(_fold(out, part) if isinstance(part, tuple) else part)
    segments: list[tuple[str, str]] = []
    for part in out:
        if isinstance(part, str):
            segments.append(("=", part))
        else:
            segments += [(op, text) for op, text in zip("-+", part, strict=True) if text]
    return tuple(segments)


def _grouped(ops: Sequence[tuple[str, str]]) -> list[str | tuple[str, str]]:
    """Kept texts (str) alternating with replacements ((removed, added))."""
    parts: list[str | tuple[str, str]] = []
    for op, text in ops:
        last = parts[-1] if parts else None
        if not text:
            continue
        if op == "=":
            if isinstance(last, str):
                parts[-1] = last + text
            else:
                parts.append(text)
            continue
        if not isinstance(last, tuple):
            last = ("", "")
            parts.append(last)
        parts[-1] = (last[0] + text, last[1]) if op == "-" else (last[0], last[1] + text)
    return parts


def _fold(out: list[str | tuple[str, str]], part: tuple[str, str]) -> tuple[str, str]:
    """The replacement ``part``, joined with the one before it when only a short kept
    text separates them (which then leaves ``out``)."""
    if len(out) < 2:
        return part
    kept, left = out[-1], out[-2]
    if not (isinstance(kept, str) and isinstance(left, tuple)):
        return part
    if len(kept) > min(_size(left), _size(part)):
        return part
    del out[-2:]
    return left[0] + kept + part[0], left[1] + kept + part[1]


def _size(replacement: tuple[str, str]) -> int:
    return max(len(replacement[0]), len(replacement[1]))


def _word_set(text: str) -> frozenset[str]:
    """The words of a text (characters for CJK), lowercased: what similarity sees."""
    return frozenset(_WORD.findall(text.lower()))


# --- the entry point -----------------------------------------------------------------


def compare(before: Document, after: Document) -> list[Change]:
    """The changes that turn ``before`` into ``after``, in ``after``'s reading order.

    Each change is a sentence, or a whole row, heading or term, with its section path
    and block index on each side: the evidence an alert quotes (see the module
    docstring for the algorithm and its cost).
    """
    if before == after:
        return []
    out = _Output(before, after)
    gaps = _gaps(_align(_Ids.of(before, after)), len(before), len(after))
    _move_blocks(gaps, out)
    regions = [_region(gap, before, after) for gap in gaps]
    _move_units(regions, out)
    for region in regions:
        _pair(region)
        _report(region, out)
    return out.changes()


# --- 1. block alignment --------------------------------------------------------------


@dataclass(frozen=True)
class _Ids:
    """Both documents as block ids (equal ids: equal kind and text), and the ids of
    headings, which alignment prefers to keep in place."""

    old: list[int]
    new: list[int]
    headings: frozenset[int]

    @classmethod
    def of(cls, before: Document, after: Document) -> _Ids:
        ids: dict[tuple[str, str], int] = {}
        old = [ids.setdefault((block.kind, block.text), len(ids)) for block in before]
        new = [ids.setdefault((block.kind, block.text), len(ids)) for block in after]
        headings = frozenset(number for (kind, _), number in ids.items() if kind == "heading")
        return cls(old, new, headings)


def _align(ids: _Ids) -> list[tuple[int, int]]:
    """Pairs (i, j) of equal blocks, increasing on both sides (see the module
    docstring, step 1). Gaps wait on a stack rather than in recursion, so that no
    document is too deep, and the work budget bounds the whole alignment."""
    matched: list[tuple[int, int]] = []
    budget = _ALIGN_WORK * (len(ids.old) + len(ids.new))
    stack = [(0, len(ids.old), 0, len(ids.new))]
    while stack:
        gap = _trim(ids, *stack.pop(), matched)
        a0, a1, b0, b1 = gap
        if a0 == a1 or b0 == b1:
            continue
        budget -= (a1 - a0) + (b1 - b0)
        if budget < 0:
            continue
        anchors = _anchors(ids, *gap)
        if anchors:
            matched += anchors
            stack += _between(anchors, *gap)
        elif (a1 - a0) * (b1 - b0) <= _SMALL_GAP:
            matched += _small_gap(ids.old[a0:a1], ids.new[b0:b1], a0, b0)
    matched.sort()
    return matched


def _trim(
    ids: _Ids, a0: int, a1: int, b0: int, b1: int, matched: list[tuple[int, int]]
) -> tuple[int, int, int, int]:
    """Match the common head and tail of a gap; return what is left of it."""
    a, b = ids.old, ids.new
    while a0 < a1 and b0 < b1 and a[a0] == b[b0]:
        matched.append((a0, b0))
        a0, b0 = a0 + 1, b0 + 1
    while a0 < a1 and b0 < b1 and a[a1 - 1] == b[b1 - 1]:
        a1, b1 = a1 - 1, b1 - 1
        matched.append((a1, b1))
    return a0, a1, b0, b1


def _anchors(ids: _Ids, a0: int, a1: int, b0: int, b1: int) -> list[tuple[int, int]]:
    """The heaviest in-order chain of blocks that occur once on each side of a gap.

    Every block weighs the same, except that a heading weighs a little more: of two
    equally long chains, the one that keeps the headings in place wins, so a paragraph
    that changed section is what moved, not the heading.
    """
    a, b = ids.old, ids.new
    count_a, count_b = Counter(a[a0:a1]), Counter(b[b0:b1])
    where_b = {b[j]: j for j in range(b0, b1) if count_b[b[j]] == 1 and count_a.get(b[j]) == 1}
    pairs = [(i, where_b[a[i]]) for i in range(a0, a1) if a[i] in where_b]
    weights = [3 if a[i] in ids.headings else 2 for i, _ in pairs]
    return _heaviest_chain(pairs, weights)


def _heaviest_chain(pairs: list[tuple[int, int]], weights: list[int]) -> list[tuple[int, int]]:
    """The subsequence of pairs (sorted by i, with distinct j) increasing in j with
    the greatest total weight: a Fenwick tree of prefix maxima over j, O(k log k)."""
    rank = {j: r for r, j in enumerate(sorted(j for _, j in pairs), start=1)}
    tree = [(0, -1)] * (len(pairs) + 1)  # (chain weight, index of its last pair)
    back: list[int] = []
    best = (0, -1)
    for index, ((_, j), weight) in enumerate(zip(pairs, weights, strict=True)):
        previous = _prefix_max(tree, rank[j] - 1)
        back.append(previous[1])
        entry = (previous[0] + weight, index)
        _raise(tree, rank[j], entry)
        best = max(best, entry)
    chain: list[tuple[int, int]] = []
    index = best[1]
    while index >= 0:
        chain.append(pairs[index])
        index = back[index]
    return chain[::-1]


def _prefix_max(tree: list[tuple[int, int]], rank: int) -> tuple[int, int]:
    best = (0, -1)
    while rank > 0:
        best = max(best, tree[rank])
        rank -= rank & -rank
    return best


def _raise(tree: list[tuple[int, int]], rank: int, entry: tuple[int, int]) -> None:
    while rank < len(tree):
        tree[rank] = max(tree[rank], entry)
        rank += rank & -rank


def _between(
    anchors: list[tuple[int, int]], a0: int, a1: int, b0: int, b1: int
) -> Iterator[tuple[int, int, int, int]]:
    """The sub-gaps before, between and after the anchors of a gap."""
    previous_i, previous_j = a0 - 1, b0 - 1
    for i, j in [*anchors, (a1, b1)]:
        yield previous_i + 1, i, previous_j + 1, j
        previous_i, previous_j = i, j


def _small_gap(a: list[int], b: list[int], a0: int, b0: int) -> list[tuple[int, int]]:
    """Align a small gap made of repeated blocks only, where patience finds no anchor."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return [
        (a0 + i + k, b0 + j + k)
        for i, j, size in matcher.get_matching_blocks()
        for k in range(size)
    ]


@dataclass
class _Gap:
    """Blocks between two matched blocks: removed ones from ``before``, added ones in
    ``after``; ``start`` is the index in ``after`` where the gap begins."""

    start: int
    removed: list[int]
    added: list[int]


def _gaps(matched: list[tuple[int, int]], n: int, m: int) -> list[_Gap]:
    """The changed regions between consecutive matched pairs."""
    gaps: list[_Gap] = []
    previous_i, previous_j = -1, -1
    for i, j in [*matched, (n, m)]:
        if i > previous_i + 1 or j > previous_j + 1:
            removed = list(range(previous_i + 1, i))
            gaps.append(_Gap(previous_j + 1, removed, list(range(previous_j + 1, j))))
        previous_i, previous_j = i, j
    return gaps


# --- 2. moved blocks -----------------------------------------------------------------


class _Unit(NamedTuple):
    """A sentence, or a whole row, heading or term, and where it stands.

    ``key`` is what equality looks at: the unit's class (prose, row, heading, term)
    and text, so that a paragraph's sentence can reappear in a list item unchanged,
    but a heading is never the same as a paragraph. ``header`` is a row's first cell.
    (A named tuple: a large changed region makes one per sentence, and a tuple is
    quick to make.)
    """

    cls: str
    text: str
    block: int
    ordinal: int = 0
    header: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.cls, self.text

    @property
    def position(self) -> tuple[int, int]:
        return self.block, self.ordinal


def _unit_class(block: Block) -> str:
    """Prose is compared sentence by sentence; other blocks as a whole."""
    if block.kind in ("paragraph", "item", "definition"):
        return "prose"
    if block.kind == "term" and len(block.text) > _LONG_TERM:
        return "prose"
    return block.kind


def _units(document: Document, indexes: Sequence[int]) -> list[_Unit]:
    """The units of some blocks of a document, in reading order."""
    units = []
    for index in indexes:
        block = document[index]
        cls = _unit_class(block)
        if cls == "prose":
            texts = split_sentences(block.text)
            units += [_Unit(cls, text, index, ordinal) for ordinal, text in enumerate(texts)]
        else:
            header = (block.cells or (block.text,))[0] if cls == "row" else ""
            units.append(_Unit(cls, block.text, index, 0, header))
    return units


def _whole(document: Document, index: int) -> _Unit:
    """A whole block as one unit, for block-level moves."""
    block = document[index]
    return _Unit(_unit_class(block), block.text, index)


def _move_blocks(gaps: list[_Gap], out: _Output) -> None:
    """Report blocks that left one gap and reappear identical in another as moved,
    and take them (and identical blocks on both sides of one gap) out of the gaps."""
    removed: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    added: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for number, gap in enumerate(gaps):
        for i in gap.removed:
            removed[out.before[i].kind, out.before[i].text].append((number, i))
        for j in gap.added:
            added[out.after[j].kind, out.after[j].text].append((number, j))
    gone_before: set[int] = set()
    gone_after: set[int] = set()
    for key, places in removed.items():
        for (old_gap, i), (new_gap, j) in _pair_places(places, added.get(key, [])):
            gone_before.add(i)
            gone_after.add(j)
            if old_gap != new_gap:
                out.moved(_whole(out.before, i), _whole(out.after, j))
    for gap in gaps:
        gap.removed = [i for i in gap.removed if i not in gone_before]
        gap.added = [j for j in gap.added if j not in gone_after]


def _pair_places(
    removed: list[tuple[int, int]], added: list[tuple[int, int]]
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Pair the (gap, index) places of one block text: within a gap first, then the
    rest in reading order."""
    if not added:
        return []
    by_gap: dict[int, deque[tuple[int, int]]] = defaultdict(deque)
    for place in added:
        by_gap[place[0]].append(place)
    pairs: list[tuple[tuple[int, int], tuple[int, int]]] = []
    rest: list[tuple[int, int]] = []
    for place in removed:
        same = by_gap.get(place[0])
        if same:
            pairs.append((place, same.popleft()))
        else:
            rest.append(place)
    others = [place for queue in by_gap.values() for place in queue]
    return pairs + list(zip(rest, others, strict=False))


# --- 3. units of a region ------------------------------------------------------------


@dataclass
class _Region:
    """One changed region cut into units; ``partner`` maps a removed unit (by index)
    to the added unit it is unchanged or modified as, ``modified`` lists the latter;
    ``spare_removed`` and ``spare_added`` are the units not explained yet."""

    start: int
    removed: list[_Unit]
    added: list[_Unit]
    partner: dict[int, int] = field(default_factory=dict)
    modified: list[tuple[int, int]] = field(default_factory=list)
    spare_removed: list[int] = field(default_factory=list)
    spare_added: list[int] = field(default_factory=list)

    def take(self, removed: set[int], added: set[int]) -> None:
        """Forget spare units explained elsewhere (moved, modified)."""
        self.spare_removed = [i for i in self.spare_removed if i not in removed]
        self.spare_added = [j for j in self.spare_added if j not in added]


def _region(gap: _Gap, before: Document, after: Document) -> _Region:
    """Cut a gap into units and cancel those present on both sides: the multiset
    comparison that makes splits, merges and re-flows no change."""
    region = _Region(gap.start, _units(before, gap.removed), _units(after, gap.added))
    removed_at: dict[tuple[str, str], list[int]] = defaultdict(list)
    added_at: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, unit in enumerate(region.removed):
        removed_at[unit.key].append(i)
    for j, unit in enumerate(region.added):
        added_at[unit.key].append(j)
    sizes = len(region.removed), len(region.added)
    for key, removed in removed_at.items():
        if key in added_at:
            region.partner.update(_occurrences(removed, added_at[key], *sizes))
    paired = set(region.partner.values())
    region.spare_removed = [i for i in range(sizes[0]) if i not in region.partner]
    region.spare_added = [j for j in range(sizes[1]) if j not in paired]
    return region


def _occurrences(removed: list[int], added: list[int], n: int, m: int) -> list[tuple[int, int]]:
    """Pair the occurrences of one unit text on both sides of a region, in order.

    With more on one side, the occurrences left over are those standing furthest from
    any partner (at the same share of the way through the region), so that a removed
    "Requests are paused." is reported in the section it left, not in another section
    where the same sentence stays. (Quadratic in the occurrences: only when few.)
    """
    if len(removed) == len(added) or len(removed) * len(added) > _OCCURRENCE_WORK:
        return list(zip(removed, added, strict=False))
    if len(removed) > len(added):
        return _closest(removed, added, n, m)
    return [(i, j) for j, i in _closest(added, removed, m, n)]


def _closest(longer: list[int], shorter: list[int], n: int, m: int) -> list[tuple[int, int]]:
    """Match every item of ``shorter`` with one of ``longer``, in order, with the least
    total distance between their shares of the way (n and m are the side lengths)."""
    near = [[abs(i / n - j / m) for j in shorter] for i in longer]
    cost = [0.0] + [float("inf")] * len(shorter)  # best cost with the first j matched
    took: list[list[bool]] = []
    for row in near:
        taken = [False] * len(cost)
        for j in range(len(shorter), 0, -1):  # downwards: cost[j - 1] is still the old row
            if cost[j - 1] + row[j - 1] <= cost[j]:
                cost[j], taken[j] = cost[j - 1] + row[j - 1], True
        took.append(taken)
    pairs, j = [], len(shorter)
    for k in range(len(longer) - 1, -1, -1):
        if j and took[k][j]:
            pairs.append((longer[k], shorter[j - 1]))
            j -= 1
    return pairs[::-1]


def _move_units(regions: list[_Region], out: _Output) -> None:
    """Report units that left one region and reappear identical in another as moved.
    (Identical units within one region were cancelled already.)"""
    waiting: dict[tuple[str, str], deque[tuple[int, int]]] = defaultdict(deque)
    for number, region in enumerate(regions):
        for j in region.spare_added:
            waiting[region.added[j].key].append((number, j))
    taken: list[tuple[set[int], set[int]]] = [(set(), set()) for _ in regions]
    for number, region in enumerate(regions):
        for i in region.spare_removed:
            queue = waiting.get(region.removed[i].key)
            if queue:
                other, j = queue.popleft()
                taken[number][0].add(i)
                taken[other][1].add(j)
                out.moved(region.removed[i], regions[other].added[j])
    for region, (removed, added) in zip(regions, taken, strict=True):
        region.take(removed, added)


# --- 4. pairing what is left ---------------------------------------------------------


def _pair(region: _Region) -> None:
    """Pair spare units into modifications: rows by header, then by similarity."""
    if not (region.spare_removed and region.spare_added):
        return
    pairs = _header_pairs(region)
    region.take({i for i, _ in pairs}, {j for _, j in pairs})
    pairs += _similar_pairs(region)
    for i, j in pairs:
        region.partner[i] = j
    region.modified = pairs
    region.take(set(region.partner), set(region.partner.values()))


def _header_pairs(region: _Region) -> list[tuple[int, int]]:
    """Rows with the same first cell ("Hong Kong") are one row that changed."""
    waiting: dict[str, deque[int]] = defaultdict(deque)
    for j in region.spare_added:
        if region.added[j].header:
            waiting[region.added[j].header].append(j)
    pairs = []
    for i in region.spare_removed:
        queue = waiting.get(region.removed[i].header) if region.removed[i].header else None
        if queue:
            pairs.append((i, queue.popleft()))
    return pairs


def _similar_pairs(region: _Region) -> list[tuple[int, int]]:
    """Greedily pair the most similar spare units of the same class, best first."""
    candidates = sorted(_candidates(region))
    used_removed: set[int] = set()
    used_added: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, _, i, j in candidates:
        if i not in used_removed and j not in used_added:
            used_removed.add(i)
            used_added.add(j)
            pairs.append((i, j))
    return pairs


def _candidates(region: _Region) -> Iterator[tuple[float, int, int, int]]:
    """(-similarity, distance, i, j) of the pairs worth pairing: every pair in a small
    region, neighbours of where the unit stood in a large one (see _neighbours);
    there, a unit very like the one standing where it stood is taken at once.
    (The word-set Dice coefficient is inlined: this loop is the hot spot of a page
    whose every line changed.)"""
    added = region.spare_added
    words = [_word_set(region.added[j].text) for j in added]
    for i, centre, near, exhaustive in _neighbours(region):
        unit, mine = region.removed[i], _word_set(region.removed[i].text)
        for k in near:
            theirs = words[k]
            total = len(mine) + len(theirs)
            if not mine or 2 * min(len(mine), len(theirs)) < _SIMILAR * total:
                continue  # empty, or sizes too different to be similar
            score = 2 * len(mine & theirs) / total
            if score >= _SIMILAR and _comparable(unit, region.added[added[k]]):
                yield -score, abs(k - centre), i, added[k]
                if score >= _SURE and not exhaustive:
                    break


def _comparable(old: _Unit, new: _Unit) -> bool:
    """Units of one class, but never rows with different headers (different rows)."""
    return old.cls == new.cls and not (old.header or new.header)


def _neighbours(region: _Region) -> Iterator[tuple[int, int, Sequence[int], bool]]:
    """For each spare removed unit: its index, the index among spare added units
    where it would stand, the spare added units to compare it with, and whether
    those are all of them.

    Where it would stand is estimated twice: after the partner of the last unit
    before it that has one, and at the same share of the way through the region.
    The first is right after local edits, the second when every line changed and
    repeated text made the partners of unchanged units unreliable.
    """
    removed, added = region.spare_removed, region.spare_added
    if len(removed) * len(added) <= _FULL_PAIRING:
        every = range(len(added))
        for i, centre in zip(removed, _centres(region), strict=True):
            yield i, centre, every, True
        return
    for rank, (i, centre) in enumerate(zip(removed, _centres(region), strict=True)):
        share = rank * len(added) // len(removed)
        near = {*_window(centre, len(added)), *_window(share, len(added))} - {centre}
        first = [centre] if centre < len(added) else []
        yield i, centre, first + sorted(near), False


def _window(centre: int, size: int) -> range:
    return range(max(centre - _WINDOW, 0), min(centre + _WINDOW + 1, size))


def _centres(region: _Region) -> list[int]:
    """For each spare removed unit, the index among spare added units of where it
    would stand: after the partner of the last unit before it that has one, shifted
    by the spare removed units between them (the first of several new sentences
    replaces the first of several old ones)."""
    positions = [region.added[j].position for j in region.spare_added]
    follows = _follows(region)
    centres: list[int] = []
    previous, offset = None, 0
    for i in region.spare_removed:
        offset = offset + 1 if follows[i] == previous else 0
        previous = follows[i]
        centres.append(bisect_right(positions, follows[i]) + offset)
    return centres


def _follows(region: _Region) -> list[tuple[int, int]]:
    """For each removed unit, the position in ``after`` it follows: its partner's,
    else that of the partner of the nearest unit before it, else the region start."""
    anchor = (region.start - 1, _END)
    out: list[tuple[int, int]] = []
    for i in range(len(region.removed)):
        j = region.partner.get(i)
        if j is not None:
            anchor = region.added[j].position
        out.append(anchor)
    return out


# --- 5. the changes ------------------------------------------------------------------


def _report(region: _Region, out: _Output) -> None:
    """Emit a region's modified, added and removed units."""
    for i, j in region.modified:
        out.modified(region.removed[i], region.added[j])
    for j in region.spare_added:
        out.added(region.added[j])
    follows = _follows(region)
    for i in region.spare_removed:
        out.removed(region.removed[i], follows[i])


@dataclass
class _Output:
    """Collects changes with the key that puts them in ``after``'s reading order."""

    before: Document
    after: Document
    items: list[tuple[tuple[int, int, int, int, int], Change]] = field(default_factory=list)

    def changes(self) -> list[Change]:
        return [change for _, change in sorted(self.items, key=lambda item: item[0])]

    def moved(self, old: _Unit, new: _Unit) -> None:
        self._put(new.position, _change(ChangeKind.MOVED, self._old(old), self._new(new)))

    def modified(self, old: _Unit, new: _Unit) -> None:
        segments = word_segments(old.text, new.text)
        self._put(
            new.position, _change(ChangeKind.MODIFIED, self._old(old), self._new(new), segments)
        )

    def added(self, new: _Unit) -> None:
        self._put(new.position, _change(ChangeKind.ADDED, None, self._new(new)))

    def removed(self, old: _Unit, follows: tuple[int, int]) -> None:
        change = _change(ChangeKind.REMOVED, self._old(old), None)
        self.items.append(((*follows, 1, old.block, old.ordinal), change))

    def _put(self, position: tuple[int, int], change: Change) -> None:
        self.items.append(((*position, 0, 0, 0), change))

    def _old(self, unit: _Unit) -> _Side:
        return _Side(self.before[unit.block], unit)

    def _new(self, unit: _Unit) -> _Side:
        return _Side(self.after[unit.block], unit)


@dataclass(frozen=True, slots=True)
class _Side:
    """One side of a change: the unit and the block holding it."""

    block: Block
    unit: _Unit

    @property
    def cells(self) -> tuple[str, ...]:
        return self.block.cells if self.unit.cls == "row" else ()


def _change(
    kind: ChangeKind,
    old: _Side | None,
    new: _Side | None,
    segments: tuple[tuple[str, str], ...] = (),
) -> Change:
    """A change between two sides, either of which may be missing."""
    holder = new or old
    assert holder is not None
    return Change(
        kind=kind,
        block_kind=holder.block.kind,
        before=_shown(old) if old else None,
        after=_shown(new) if new else None,
        path_before=old.block.path if old else (),
        path_after=new.block.path if new else (),
        cells_before=old.cells if old else (),
        cells_after=new.cells if new else (),
        segments=_shown_segments(segments, old, new) if segments else (),
        index_before=old.unit.block if old else None,
        index_after=new.unit.block if new else None,
    )


# --------------------------------------------------------------- verbatim quotes


def _shown(side: _Side) -> str:
    """A unit as the page showed it (see `monitor.wording`): changes are found on the
    wording, and quoted verbatim."""
    block, unit = side.block, side.unit
    if not block.shown:
        return unit.text
    if unit.cls != "prose":
        return block.shown
    located = _located(side)
    if located is None:
        return unit.text
    alignment, start = located
    return alignment.show(start, start + len(unit.text))


def _located(side: _Side) -> tuple[Alignment, int] | None:
    """The block's alignment and where the unit's sentence starts in its wording."""
    block, unit = side.block, side.unit
    alignment = _alignment(block.shown, block.text)
    if alignment is None:
        return None
    if unit.cls != "prose":
        return alignment, 0
    spans = _sentence_spans(block.text)
    if unit.ordinal >= len(spans):
        return None
    return alignment, spans[unit.ordinal][0]


@functools.lru_cache(maxsize=256)
def _alignment(shown: str, text: str) -> Alignment | None:
    return Alignment.of(shown, text)


def _shown_segments(
    segments: tuple[tuple[str, str], ...], old: _Side | None, new: _Side | None
) -> tuple[tuple[str, str], ...]:
    """The word-level edit script with every piece as the page showed it: removed
    words from the old text, added and kept ones from the new."""
    sides = [side and side.block.shown and _located(side) for side in (old, new)]
    if not any(sides):
        return segments
    at = [0, 0]
    out = []
    for op, text in segments:
        which = 0 if op == "-" else 1
        located = sides[which]
        start = at[which]
        if op == "=":
            at[0] += len(text)
        at[which] += len(text)
        if located:
            alignment, base = located
            text = alignment.verbatim[
                alignment.at(base + start) : alignment.at(base + start + len(text))
            ]
        if text:
            out.append((op, text))
    return tuple(out)
