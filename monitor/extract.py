"""Extract: turn a page (HTML or plain text) into a version's ordered text blocks.

A version is compared sentence by sentence with the previous one, so everything that
is not the policy's wording must go before comparison, and the same wording must
always give the same blocks. This stage is pure: no I/O, no clock, and the same input
always gives byte-identical output.

How a page becomes blocks:

1. Parse with lxml (comments and processing instructions are dropped by the parser).
2. Drop what a reader never sees: script, style, template, noscript, svg, iframe,
   object, head, select, textarea, canvas, video, audio, closed dialogs, and elements
   that are ``hidden``, ``aria-hidden="true"`` or styled ``display: none`` /
   ``visibility: hidden``. A ``<br>`` becomes a space.
3. Remove the watch's ``remove`` selectors (a selector matching nothing is fine).
4. Choose the content:
   - with ``select``: the union of its matches in document order, nested matches
     kept once; a selector that matches nothing is an ExtractError, because a
     redesigned page must show up as a health problem, not as "the policy vanished";
   - without: the first of ``<main>``, ``[role=main]``, the single ``<article>`` (or
     the nearest common ancestor of several), else ``<body>``; the first of these that
     yields any text wins. Navigation (nav, role=navigation) is removed inside the
     chosen content. When the content is not a main or a single article, page chrome
     goes too: header, footer, aside and their ARIA roles (except inside an article
     or main), and cookie/consent banners. A banner is recognised by its id/class
     tokens (a consent vendor's name, or "cookie", "consent", "gdpr" or "ccpa"
     together with a banner word such as "banner", "notice", "modal"), never on
     main, article or body, and never on an element that holds an ``<h1>``: a
     cookie *policy* is content.
5. Walk the content in document order. Headings (h1-h6, role=heading) keep a stack
   that gives every block its section ``path``; p, address, figcaption and caption
   are paragraphs; li, dt and dd are items, terms and definitions holding only their
   own text (a nested list or table follows as blocks of its own); each tr is a row
   of cell texts; inline text lying loose in a container between block children is a
   paragraph of its own, so no visible text is lost.
6. Normalise every text (see ``normalize``), apply the ``ignore`` patterns, and drop
   blocks left empty. A page with no block at all is an ExtractError.

Plain text (``content_type`` ``text/plain``) is split into paragraphs on blank lines.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree
from lxml.etree import _Element as Element

from monitor.errors import ExtractError, Incomplete
from monitor.model import Block, Document, ExtractRules
from monitor.text import Builder, UserPattern, compile_ignore, expect_texts, refuse_css
from monitor.wording import normalize

if TYPE_CHECKING:  # imported where used: a page without selectors, or not in Markdown,
    # never loads cssselect or markdown-it
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

__all__ = ["Extraction", "extract", "extract_unless", "markdown_document", "normalize"]

# --- the entry point -----------------------------------------------------------------


def extract(html: str, rules: ExtractRules, *, content_type: str = "text/html") -> Document:
    """Turn a decoded page into a version: its ordered, normalised text blocks.

    Raises ExtractError when a ``select`` selector matches nothing, a selector or
    pattern is invalid, or no text is left: each is a health problem of the watch,
    never a change of the policy.
    """
    ignore = compile_ignore(rules.ignore)
    if content_type.partition(";")[0].strip().lower() == "text/plain":
        blocks = _plain_text_blocks(html, ignore)
    else:
        try:
            blocks = _html_blocks(html, rules, ignore)
        except RecursionError:
            raise ExtractError(_TOO_DEEP.format(limit="about 900")) from None
    if not blocks:
        raise ExtractError(f"no text found in the page ({_describe(rules)})")
    expect_texts(blocks, rules.expect_text)
    return tuple(blocks)


def _expect_elements(root: Element, selectors: Sequence[str]) -> None:
    """Every `expect` selector must match an element that shows some text."""
    missing = [
        source
        for source in selectors
        if not any(_has_text(el) for el in _xpath(root, _css_path(source)))
    ]
    if missing:
        raise Incomplete(f"expected element not found or empty: {', '.join(map(repr, missing))}")


def _has_text(element: Element) -> bool:
    return any(piece.strip() for piece in element.itertext())


def _describe(rules: ExtractRules) -> str:
    """Say which rules were in force, so that the health alert is actionable."""
    if not (rules.select or rules.remove or rules.ignore):
        return "main-content heuristics"
    named = (("select", rules.select), ("remove", rules.remove), ("ignore", rules.ignore))
    return ", ".join(f"{name}={list(value)!r}" for name, value in named if value)


_BLANK_LINE = re.compile(r"\n\s*\n")


def _plain_text_blocks(text: str, ignore: tuple[UserPattern, ...]) -> list[Block]:
    """A plain-text page has no markup: its paragraphs are separated by blank lines."""
    out = Builder(ignore)
    for paragraph in _BLANK_LINE.split(text):
        out.text("paragraph", paragraph)
    return out.blocks


def _html_blocks(html: str, rules: ExtractRules, ignore: tuple[UserPattern, ...]) -> list[Block]:
    """Parse, clean and walk an HTML page: the pipeline of the module docstring."""
    for roots in _contents(html, rules):
        blocks = _walk_roots(roots, ignore)
        if blocks:
            return blocks
    return []


def _contents(html: str, rules: ExtractRules) -> Iterator[list[Element]]:
    """The candidate contents of a page, best first: the ``select`` matches, or the
    heuristics' (steps 1-4 of the module docstring)."""
    root = _parse(html)
    _drop_invisible(root)
    _expect_elements(root, rules.expect_css)
    _drop(root, _match_all(root, rules.remove))
    if rules.select:
        yield _select(root, rules.select)
        return
    yield from _heuristic_roots(root)


# --- the same content again ----------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """A page's blocks and the digest of what they were read from."""

    digest: str | None  # None: not read from HTML (or the extractor cannot be named)
    document: Document | None  # None: the content's digest is the one known


def extract_unless(html: str, rules: ExtractRules, known: str | None) -> Extraction:
    """`extract`, unless the content chosen from the page is the one whose digest is
    `known`: then its blocks are those read from it then, and it is not walked.

    The walk (steps 5-6) reads nothing but the content chosen (steps 1-4), the
    watch's rules and the extractor's code, so the digest covers those: each
    candidate content tried, as lxml serialises it once cleaned, with the rules'
    digest and the extractor's. A page that differs outside its content (a footer's
    timestamp, a token, a nonce in the head) is known before its walk; one whose
    content differs in anything, even an attribute the walk ignores, is walked.
    """
    salt = _extractor()
    if salt is None:
        return Extraction(None, extract(html, rules))
    ignore = compile_ignore(rules.ignore)
    digest = hashlib.sha256(f"{salt}\n{rules.digest()}".encode())
    try:
        for roots in _contents(html, rules):
            for root in roots:
                serialised = etree.tostring(root, encoding="utf-8", with_tail=False)
                digest.update(b"%d:%d\n" % (len(roots), len(serialised)) + serialised)
            if digest.hexdigest() == known:
                return Extraction(known, None)
            blocks = _walk_roots(roots, ignore)
            if blocks:
                expect_texts(blocks, rules.expect_text)
                return Extraction(digest.hexdigest(), tuple(blocks))
    except RecursionError:
        raise ExtractError(_TOO_DEEP.format(limit="about 900")) from None
    raise ExtractError(f"no text found in the page ({_describe(rules)})")


@functools.cache
def _extractor() -> str | None:
    """A digest of everything besides the content and the rules that blocks depend
    on: the code of the walk, the block builder and the wording (this module,
    `text`, `wording`, `model`), lxml's and libxml2's versions and Unicode's. Any
    change of them walks every page again. None when the code cannot be read."""
    from monitor import model, text, wording

    parts = [str(etree.LXML_VERSION), str(etree.LIBXML_VERSION), unicodedata.unidata_version]
    try:
        for module in (sys.modules[__name__], text, wording, model):
            parts.append(hashlib.sha256(Path(module.__file__ or "").read_bytes()).hexdigest())
    except OSError:
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# --- parsing and cleaning ------------------------------------------------------------


def _parse(html: str) -> Element:
    """Parse with lxml, wrapping its exceptions: nothing above sees an lxml error.

    The text is handed to libxml2 as UTF-8 bytes with the encoding stated: lxml
    refuses a str that starts with an XML encoding declaration, and silently drops
    everything after a lone surrogate in a str; with bytes, an encoding declaration
    or ``<meta charset>`` in the page cannot override the decoding done by fetch.
    The plain etree parser is used, not lxml.html's, whose element classes cost a
    Python call for every element touched.
    """
    data = html.encode("utf-8", "replace")  # a lone surrogate becomes "?"
    parser = etree.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.LxmlError as exc:
        raise ExtractError(f"no text found: the page cannot be parsed ({exc})") from exc
    if root is None:
        raise ExtractError("no text found: the page is empty")
    if any(e.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT for e in parser.error_log):
        raise ExtractError(_TOO_DEEP.format(limit="2048"))  # libxml2 dropped the rest
    return root


# Past a nesting limit libxml2 silently drops the rest of the page (at 256 levels
# without `huge_tree`), and a walk would lose its text: reading half a page as the
# whole would report the other half as removed.
_TOO_DEEP = "the page nests its elements deeper than {limit} levels and cannot be read whole"


# fmt: off
_DROP_TAGS = frozenset({
    "script", "style", "template", "noscript", "svg", "iframe", "object", "head", "select",
    "textarea", "canvas", "video", "audio",
})
# fmt: on
# Elements with an attribute are found through their attributes (``@a/..``): libxml2
# tests a predicate such as ``*[@a]`` on every element, five times slower.
_MAYBE_HIDDEN = "descendant::*/@hidden/.. | descendant::*/@aria-hidden/.. | descendant::*/@style/.."
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _drop_invisible(root: Element) -> None:
    """Remove what a reader never sees, and make every <br> a space (its text, which
    it never has, rather than joining a space to its tail)."""
    etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    candidates = [*root.iter("dialog"), *_xpath(root, _MAYBE_HIDDEN)]
    _drop(root, [element for element in candidates if _is_invisible(element)])
    for br in root.iter("br"):
        br.text = " "


def _is_invisible(element: Element) -> bool:
    """Whether an element is never rendered (hidden="until-found" is findable text)."""
    hidden = element.get("hidden")
    return (
        element.tag in _DROP_TAGS
        or (element.tag == "dialog" and element.get("open") is None)
        or (hidden is not None and hidden.strip().lower() != "until-found")
        or (element.get("aria-hidden") or "").strip().lower() == "true"
        or bool(_HIDING_STYLE.search(element.get("style") or ""))
    )


# A tag no page has: libxml2's HTML parser lowercases every tag name.
_DOOMED = "Monitor-Doomed"


def _drop(scope: Element, elements: Iterable[Element]) -> None:
    """Remove elements of ``scope`` (never ``scope`` itself) and their subtrees, keeping
    the text that follows each: they are renamed, then lxml strips them all in one pass
    and leaves their tails in place, where they read as part of the text before them
    (no string is joined in Python, and lxml would refuse to set a text holding a
    control character, which the parser can keep)."""
    doomed = [element for element in elements if element is not scope]
    for element in doomed:
        element.tag = _DOOMED
    if doomed:
        etree.strip_elements(scope, _DOOMED, with_tail=False)


def _xpath(element: Element, expression: str) -> list[Element]:
    """Evaluate an element-returning XPath; compiled per call (XPath is not shareable
    across threads, and compiling costs microseconds)."""
    return _elements(element.xpath(expression))


def _elements(result: object) -> list[Element]:
    """The elements of an XPath result (lxml types it as any XPath value)."""
    assert isinstance(result, list)
    return [node for node in result if isinstance(node, Element)]


# --- choosing the content ------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _css_path(selector: str) -> str:
    """The XPath of a CSS selector with HTML semantics; a bad one is the watch's fault.

    Translating is the slow part (cssselect, in Python), so a watch's selectors are
    translated once and remembered; the XPath is compiled at each use (`_xpath`)."""
    from cssselect import SelectorError
    from lxml.cssselect import CSSSelector

    try:
        return str(CSSSelector(selector, translator="html").path)
    except SelectorError as exc:
        raise ExtractError(f"invalid CSS selector {selector!r}: {exc}") from exc


def _match_all(root: Element, selectors: Iterable[str]) -> list[Element]:
    """Every element matched by any of the selectors (for ``remove``)."""
    return [el for selector in selectors for el in _xpath(root, _css_path(selector))]


def _select(root: Element, selectors: Sequence[str]) -> list[Element]:
    """The union of the selectors' matches in document order, nested ones once."""
    paths = [_css_path(selector) for selector in selectors]
    for source, path in zip(selectors, paths, strict=True):
        if not _xpath(root, path):
            raise ExtractError(f"select {source!r} matched nothing")
    # An XPath union returns its nodes in document order, without duplicates.
    return _outermost(_xpath(root, " | ".join(paths)))


def _outermost(elements: Iterable[Element]) -> list[Element]:
    """Keep the elements (in document order) that are not inside another one."""
    seen: set[Element] = set()
    kept = []
    for element in elements:
        if element not in seen and not any(a in seen for a in element.iterancestors()):
            kept.append(element)
        seen.add(element)
    return kept


_PAGE_CHROME = (
    "descendant::header | descendant::footer | descendant::aside | descendant::*/@role/.."
)
_CHROME_ROLES = frozenset({"banner", "contentinfo", "complementary"})


def _page_chrome(content: Element) -> list[Element]:
    """Header, footer, aside and their ARIA roles, unless inside an article or main
    (an article's own header holds its title and date)."""
    return [
        element
        for element in _xpath(content, _PAGE_CHROME)
        if (element.tag in ("header", "footer", "aside") or element.get("role") in _CHROME_ROLES)
        and not any(a.tag in ("article", "main") for a in element.iterancestors())
    ]


def _heuristic_roots(root: Element) -> Iterator[list[Element]]:
    """Candidate content roots, best first: main, role=main, article(s), body."""
    for expression in ("descendant::main", "descendant::*/@role[. = 'main']/.."):
        found = _outermost(_xpath(root, expression))
        if found:
            yield [_strip_chrome(element, page=False) for element in found]
    articles = _outermost(_xpath(root, "descendant::article"))
    if len(articles) == 1:
        yield [_strip_chrome(articles[0], page=False)]
    elif articles:
        yield [_strip_chrome(_common_ancestor(articles), page=True)]
    body = root.find("body")
    yield [_strip_chrome(root if body is None else body, page=True)]


def _common_ancestor(elements: Sequence[Element]) -> Element:
    """The nearest element that contains all of the given ones."""
    chain = [elements[0], *elements[0].iterancestors()]
    for element in elements[1:]:
        lineage = {element, *element.iterancestors()}
        chain = [a for a in chain if a in lineage]
    return chain[0]


def _strip_chrome(content: Element, *, page: bool) -> Element:
    """Remove navigation inside the content; with ``page`` (the content is not a main
    or a single article), also consent banners, and header, footer and aside outside
    any article or main: they repeat on every page and change for reasons that have
    nothing to do with the policy. (Banners are not searched for inside a main or an
    article: they live outside it, and the search costs a look at every element.)"""
    expression = "descendant::nav | descendant::*/@role[. = 'navigation']/.."
    doomed = _xpath(content, expression)
    if page:
        doomed += _page_chrome(content) + _banners(content)
    _drop(content, doomed)
    return content


# fmt: off
_BANNER_VENDORS = (
    "onetrust", "optanon", "ot-sdk", "cookiebot", "didomi", "usercentrics", "truste",
    "osano", "iubenda", "qc-cmp", "sp_message", "fc-consent", "termly", "cookieyes",
    "cky-consent", "cookie-law-info", "cmplz", "cc-banner", "cc-window", "cc_banner",
)
# fmt: on
_BANNER_TOPICS = ("cookie", "consent", "gdpr", "ccpa")
# fmt: off
_BANNER_WORDS = (
    "banner", "bar", "notice", "notification", "popup", "pop-up", "modal",
    "dialog", "overlay", "prompt", "wall", "sdk", "cmp", "toast",
    "snackbar", "layer",
)
# fmt: on
_BANNER_HINT = re.compile("|".join(_BANNER_VENDORS + _BANNER_TOPICS))
_NEVER_BANNER = frozenset({"html", "body", "main", "article"})


def _banners(content: Element) -> list[Element]:
    """Cookie and consent banners inside the content (see the module docstring)."""
    return [
        el
        for el in _xpath(content, "descendant::*/@id/.. | descendant::*/@class/..")
        if _is_banner(el)
    ]


def _is_banner(element: Element) -> bool:
    """A consent banner: named like one, and not a content element (a cookie policy's
    <main class="cookie-policy"> or a section holding the page's <h1>)."""
    label = f"{element.get('id') or ''} {element.get('class') or ''}".lower()
    return (
        _BANNER_HINT.search(label) is not None
        and element.tag not in _NEVER_BANNER
        and element.get("role") != "main"
        and any(_is_banner_token(token) for token in label.split())
        and not _xpath(element, "descendant::h1 | descendant::main | descendant::article")
    )


def _is_banner_token(token: str) -> bool:
    """Whether an id or class token names a consent banner, not a cookie policy."""
    if any(vendor in token for vendor in _BANNER_VENDORS):
        return True
    if not any(topic in token for topic in _BANNER_TOPICS):
        return False
    if "cookie" in token and "consent" in token:
        return True
    return any(word in token for word in _BANNER_WORDS)


# --- walking the content into blocks -------------------------------------------------

_HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
_TEXT_KINDS = {
    "p": "paragraph",
    "address": "paragraph",
    "figcaption": "paragraph",
    "caption": "paragraph",
    "li": "item",
    "dt": "term",
    "dd": "definition",
}
# Structures inside a text block (an item's sub-list) that become blocks of their own.
_NESTED = frozenset({"ul", "ol", "dl", "table", "menu", "dir"})
# Elements that start a new line: never part of a paragraph's running text.
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
    "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup",
    "hr", "html", "li", "main", "menu", "nav", "ol", "p", "pre",
    "search", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul", "legend",
})
# fmt: on
_BLOCK_TUPLE = tuple(sorted(_BLOCK_TAGS))
_ARIA_HEADINGS = "descendant::*/@role[. = 'heading']/.."


def _walk_roots(roots: Sequence[Element], ignore: tuple[UserPattern, ...]) -> list[Block]:
    walker = _Walker(Builder(ignore), _Marks.of(roots))
    for root in roots:
        walker.walk(root)
    return walker.out.blocks


def _mark_ancestors(element: Element, marked: set[Element]) -> None:
    ancestor = element.getparent()
    while ancestor is not None and ancestor not in marked:
        marked.add(ancestor)
        ancestor = ancestor.getparent()


@dataclass(frozen=True)
class _Marks:
    """Which elements contain blocks, headings or tables somewhere below them.

    Found in one pass, then looked up in O(1): asking each element for its
    descendants again and again costs far more.
    """

    blocks: set[Element] = field(default_factory=set)
    headings: set[Element] = field(default_factory=set)
    tables: set[Element] = field(default_factory=set)
    aria_headings: set[Element] = field(default_factory=set)  # role=heading themselves

    @classmethod
    def of(cls, roots: Sequence[Element]) -> _Marks:
        marks = cls()
        for root in roots:
            for element in root.iter(*_BLOCK_TUPLE):
                _mark_ancestors(element, marks.blocks)
                if element.tag in _HEADING_LEVELS:
                    _mark_ancestors(element, marks.headings)
                elif element.tag == "table":
                    _mark_ancestors(element, marks.tables)
            for element in _xpath(root, _ARIA_HEADINGS):
                _mark_ancestors(element, marks.headings)
                marks.aria_headings.add(element)
            if root.get("role") == "heading":
                marks.aria_headings.add(root)
        return marks


@dataclass(frozen=True)
class _Walker:
    """Walks content in document order and feeds the blocks it finds to a builder."""

    out: Builder
    marks: _Marks

    def walk(self, element: Element) -> None:
        """Emit the blocks of one element and its subtree (an item or paragraph that
        holds a heading, or an item made of paragraphs, is walked as a container)."""
        tag = element.tag  # lxml makes a new str at every access
        level = self.heading_level(element, tag)
        kind = _TEXT_KINDS.get(tag)
        if level:
            self.out.heading(level, self.text(element))
        elif tag in ("dl", "details"):
            self.walk_labelled(element)
        elif tag == "tr":
            self.walk_row(element)
        elif kind and element not in self.marks.headings and not self.holds_paragraphs(element):
            nested: list[Element] = []
            self.out.text(kind, self.text(element, nested))
            for structure in nested:
                self.walk(structure)
        else:
            self.walk_container(element)

    def walk_labelled(self, element: Element) -> None:
        """A definition list or a disclosure widget: each answer (dd, or the body of a
        details) carries its question (the dt or the summary) in its path, so that an
        answer under "Do you answer requests from Hong Kong?" concerns Hong Kong."""
        label: str | None = None
        if element.text and not element.text.isspace():
            self.out.text("paragraph", element.text)
        for child in element:
            if child.tag in ("dt", "summary") and child in self.marks.headings:
                self.walk(child)  # a question that is a heading is already in the path
                label = None
            elif child.tag in ("dt", "summary"):
                label = self.out.text("term", self.text(child))
            elif label and isinstance(child.tag, str):
                with self.out.under(label):
                    self.walk(child)
            else:
                self.walk(child)
            tail = child.tail
            if tail and not tail.isspace():
                self.out.text("paragraph", tail)

    def walk_container(self, element: Element) -> None:
        """Walk block children; inline runs between them are paragraphs of their own.

        Whitespace between blocks is skipped early: wrapper-heavy pages have far more
        of it than text, and this loop visits every wrapper.
        """
        run = [element.text] if element.text and not element.text.isspace() else []
        for child in element:
            if self.is_inline(child):
                run.append(_all_text(child))
            else:
                if run:
                    self.out.text("paragraph", "".join(run))
                    run = []
                self.walk(child)
            tail = child.tail
            if tail and (run or not tail.isspace()):
                run.append(tail)
        if run:
            self.out.text("paragraph", "".join(run))

    def is_inline(self, element: Element) -> bool:
        """Inline elements (a, span, em, unknown tags ...) flow within a paragraph,
        unless they wrap blocks (a card link around a heading and a paragraph)."""
        return (
            element.tag not in _BLOCK_TAGS
            and element not in self.marks.blocks
            and element not in self.marks.aria_headings
        )

    def heading_level(self, element: Element, tag: str) -> int:
        """1-6 for h1-h6 and ARIA headings (aria-level defaults to 2), else 0."""
        level = _HEADING_LEVELS.get(tag, 0)
        if level or element not in self.marks.aria_headings:
            return level
        aria_level = (element.get("aria-level") or "").strip()
        return min(max(int(aria_level), 1), 6) if aria_level.isdigit() else 2

    def holds_paragraphs(self, element: Element) -> bool:
        """An item made of paragraphs is a container: its paragraphs stay apart, so that
        the last sentence of one never runs into the first of the next. (Paragraphs
        are blocks: an element without blocks below it holds none.)"""
        return (
            element.tag != "p"
            and element in self.marks.blocks
            and any(child.tag in _PARAGRAPH_TAGS for child in element)
        )

    def walk_row(self, row: Element) -> None:
        """A data row is one block of cell texts; a layout row (a cell holding a
        heading or a table) is walked as containers."""
        cells = [cell for cell in row if cell.tag in ("td", "th")]
        if any(cell in self.marks.headings or cell in self.marks.tables for cell in cells):
            for cell in cells:
                self.walk(cell)
        else:
            self.out.row([self.text(cell) for cell in cells])

    def text(self, element: Element, nested: list[Element] | None = None) -> str:
        """The visible text of an element, block boundaries as spaces.

        With ``nested``, sub-lists and tables are skipped and appended to it instead,
        so that an item holds only its own text.
        """
        if element not in self.marks.blocks:
            return _all_text(element)
        parts: list[str] = []
        self.gather(element, parts, nested)
        return "".join(parts)

    def gather(self, element: Element, parts: list[str], nested: list[Element] | None) -> None:
        """Collect text depth-first, with a space around every block element; a
        subtree without blocks is serialised by libxml2 in one call."""
        parts.append(element.text or "")
        for child in element:
            tag = child.tag
            if nested is not None and tag in _NESTED:
                nested.append(child)
            elif child in self.marks.blocks:
                parts.append(" ")
                self.gather(child, parts, nested)
                parts.append(" ")
            elif tag in _BLOCK_TAGS:
                parts.extend((" ", _all_text(child), " "))
            else:
                parts.append(_all_text(child))
            parts.append(child.tail or "")


_PARAGRAPH_TAGS = frozenset({"p", "div", "section", "blockquote", "pre", "address", "article"})


def _all_text(element: Element) -> str:
    """The text of an element without its tail, serialised by libxml2 (fast), or
    its own text when it has no children (faster still)."""
    if len(element):
        return etree.tostring(element, method="text", encoding="unicode", with_tail=False)
    return element.text or ""


# --- Markdown ------------------------------------------------------------------------


@functools.cache
def _markdown() -> MarkdownIt:
    """The Markdown parser, built by the first Markdown file."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table")


_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")
_HTML_BREAK = re.compile(r"<br\b", re.IGNORECASE)
_HTML_CODE = re.compile(r"\s*<(?:script|style)\b", re.IGNORECASE)  # GitHub drops them
_MARKDOWN_CELLS = frozenset({"th_open", "td_open"})


def markdown_document(text: str, rules: ExtractRules) -> Document:
    """A Markdown file's blocks, as its rendered page would give them: ATX and setext
    headings make the section path, paragraphs, list items (kind ``item``), pipe
    tables (one row block per row, the header first), code blocks as text, and links
    and emphasis reduced to their text. Parsed by markdown-it-py (CommonMark, GFM
    tables); raw HTML shows its text, as GitHub renders it (tags and comments go,
    ``<br>`` is a space)."""
    refuse_css(rules, "a Markdown file")
    out = Builder(compile_ignore(rules.ignore))
    tokens = _markdown().parse(text)
    items, cells = 0, []
    for index, token in enumerate(tokens):
        if token.type in ("list_item_open", "list_item_close"):
            items += 1 if token.type == "list_item_open" else -1
        elif token.type == "heading_open":
            out.heading(int(token.tag[1:]), _inline_text(tokens[index + 1]))
        elif token.type == "paragraph_open":
            out.text("item" if items else "paragraph", _inline_text(tokens[index + 1]))
        elif token.type in _MARKDOWN_CELLS:
            cells.append(_inline_text(tokens[index + 1]))
        elif token.type == "tr_close":
            out.row(cells)
            cells = []
        elif token.type in ("fence", "code_block"):
            out.text("paragraph", token.content)
        elif token.type == "html_block" and not _HTML_CODE.match(token.content):
            out.text("paragraph", _HTML_TAG.sub(" ", _HTML_COMMENT.sub(" ", token.content)))
    if not out.blocks:
        raise ExtractError("no text found in the Markdown file")
    expect_texts(out.blocks, rules.expect_text)
    return tuple(out.blocks)


def _inline_text(token: Token) -> str:
    """The text of an inline token: links and images as their text, breaks as spaces."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak") or (
            child.type == "html_inline" and _HTML_BREAK.match(child.content)
        ):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child))
    return "".join(parts)
