"""A deterministic corpus of realistic policy pages, built from real policy texts.

Each page wraps one to three real documents (the Markdown versions in
``../shared/corpus/real`` next to the checkout, or in ``$BENCH_CORPUS``) in the shell
a platform serves around them: a head with a stylesheet, several inline and external
scripts and, to reach the page's size, one
of three kinds of filler (server-rendered JSON props, an inline JavaScript bundle, or
a blob of interface strings), a navigation
of about fifty links, a OneTrust-like cookie banner, a ``<main>`` holding the
documents and a table of government requests by country (Hong Kong, Macao and China
among its fifty rows), and a footer. Pages are 50-300 KB.

Rounds: a *noise* round changes what changes on real pages between two fetches — the
footer's "Page generated at" timestamp, the hidden CSRF token and the script nonces —
on every page. A *changed* round edits the main text of a seeded share of the pages
(a word of a sentence, or a number in the requests table), and those pages' noise
too; edits accumulate over rounds. By default every round is a noise round; given
``noise_rounds``, a page that a round does not touch is served byte for byte as in
the round before (so a server can answer a conditional request with 304). The same
seed always gives byte-identical pages.

    python -m bench.corpus --pages 5 --round 2 --changed 2 --out /tmp/pages
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import markdown

# The real policy texts live in the shared folder next to the checkout (or $BENCH_CORPUS).
REAL_DIR = Path(
    os.environ.get("BENCH_CORPUS")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "real"
)
DEFAULT_SEED = 20250101
MIN_SIZE, MAX_SIZE = 50_000, 300_000
NONCE, STAMP, CSRF = "@@NONCE@@", "@@STAMP@@", "@@CSRF@@"
EPOCH = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)

PLATFORMS = (
    "Meta", "X", "Google", "Microsoft", "Apple", "TikTok", "Telegram", "LinkedIn",
    "Snap", "Amazon", "Reddit", "Discord",
)  # fmt: skip
COUNTRIES = (
    "Argentina", "Australia", "Austria", "Bangladesh", "Belgium", "Brazil", "Canada",
    "Chile", "China", "Colombia", "Czechia", "Denmark", "Egypt", "Finland", "France",
    "Germany", "Greece", "Hong Kong", "Hungary", "India", "Indonesia", "Ireland", "Israel",
    "Italy", "Japan", "Kenya", "Macao", "Malaysia", "Mexico", "Netherlands", "New Zealand",
    "Nigeria", "Norway", "Pakistan", "Peru", "Philippines", "Poland", "Portugal",
    "Singapore", "South Africa", "South Korea", "Spain", "Sweden", "Switzerland", "Taiwan",
    "Thailand", "Turkey", "United Kingdom", "United States", "Vietnam",
)  # fmt: skip
NAV_SECTIONS = ("Products", "Business", "Developers", "Company", "Safety", "Support")
_SWAPS = (
    (" may ", " might "), (" will ", " shall "), (" can ", " could "),
    (" must ", " should "), (" and ", " as well as "), (" or ", " and/or "),
)  # fmt: skip
_TAG = re.compile(r"(<[^>]+>)")
_WORD = re.compile(r"[A-Za-z]{4,12}")

Row = tuple[str, tuple[int, int, int, int]]  # country; requests, accounts, % produced, emergency


@dataclass(frozen=True)
class Source:
    """One real document version, rendered to top-level HTML blocks."""

    name: str
    blocks: tuple[str, ...]


@dataclass
class PageSpec:
    """What a page is made of; the round decides the volatile parts and the edits."""

    index: int
    path: str
    title: str
    head: str
    blocks: list[str]
    rows: list[Row]
    tail: str
    seed: str = field(repr=False, default="")


def load_sources(folder: Path = REAL_DIR) -> list[Source]:
    """Every Markdown version under ``folder``, in a stable order."""
    files = sorted(folder.glob("*/*.md"))
    if not files:
        raise FileNotFoundError(f"no Markdown policy texts under {folder}")
    return [
        Source(f"{p.parent.name}/{p.stem}", tuple(markdown.render(p.read_text("utf-8"))))
        for p in files
    ]


def _vocabulary(sources: Iterable[Source]) -> list[str]:
    words = {w.lower() for s in sources for b in s.blocks[:40] for w in _WORD.findall(b)}
    return sorted(words)


# --- the shell ------------------------------------------------------------------------


def _ident(rng: random.Random, length: int = 6) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=length))


def _css(rng: random.Random) -> str:
    props = ("margin:0 auto", "padding:.5rem 1rem", "display:flex", "color:#1c1e21",
             "font-size:.875rem", "line-height:1.5", "border-bottom:1px solid #dadde1",
             "background:#f0f2f5", "gap:12px", "max-width:1200px", "position:relative")  # fmt: skip
    rules = [
        f".{_ident(rng)}-{_ident(rng, 4)}{{{';'.join(rng.sample(props, 4))}}}"
        for _ in range(rng.randint(60, 120))
    ]
    return "".join(rules)


def _js(rng: random.Random, functions: int) -> str:
    body = (
        "function {n}(a,b){{var c=document.querySelectorAll(b||'[data-{k}]');"
        "for(var i=0;i<c.length;i++){{c[i].addEventListener('click',function(e){{"
        "window.dataLayer&&window.dataLayer.push({{event:'{k}',t:Date.now()}})}})}}"
        "return a?c.length:0}}"
    )
    return "".join(body.format(n=_ident(rng), k=_ident(rng, 5)) for _ in range(functions))


def _scripts(rng: random.Random, platform: str) -> str:
    build = _ident(rng, 10)
    gtm = (
        f'<script nonce="{NONCE}">(function(w,d,s,l,i){{w[l]=w[l]||[];w[l].push({{'
        "'gtm.start':new Date().getTime(),event:'gtm.js'}});var f=d.getElementsByTagName(s)"
        "[0],j=d.createElement(s);j.async=true;j.src='/gtm.js?id='+i;f.parentNode."
        f"insertBefore(j,f)}})(window,document,'script','dataLayer','GTM-{_ident(rng, 7)}');"
        "</script>"
    )
    external = "".join(
        f'<script src="/static/js/{name}.{build}.js" defer></script>'
        for name in ("runtime", "vendor", "polyfills", "main")
    )
    ld = json.dumps({"@context": "https://schema.org", "@type": "WebPage", "publisher": platform})
    return (
        f'{gtm}<script nonce="{NONCE}">{_js(rng, rng.randint(20, 60))}</script>{external}'
        f'<script type="application/ld+json">{ld}</script>'
    )


def _nav(rng: random.Random, platform: str) -> str:
    groups = []
    for section in NAV_SECTIONS:
        links = "".join(
            f'<li><a href="/{section.lower()}/{_ident(rng)}">{section} {_ident(rng, 5)}</a></li>'
            for _ in range(8)
        )
        groups.append(f'<li class="nav-group"><span>{section}</span><ul>{links}</ul></li>')
    return (
        f'<header class="site-header" role="banner"><a class="logo" href="/">{platform}</a>'
        f'<nav class="global-nav" aria-label="Primary"><ul>{"".join(groups)}</ul>'
        '<a href="/login">Log in</a><a href="/signup">Sign up</a></nav></header>'
    )


def _banner() -> str:
    choices = "".join(
        f'<div class="ot-cat-item"><h4>{name}</h4><p>These cookies {what}. They cannot be '
        f'switched off in our systems.</p><input type="checkbox" aria-label="{name}"></div>'
        for name, what in (
            ("Strictly Necessary Cookies", "are necessary for the website to function"),
            ("Performance Cookies", "allow us to count visits and traffic sources"),
            ("Functional Cookies", "enable enhanced functionality and personalisation"),
            ("Targeting Cookies", "may be set through our site by our advertising partners"),
        )
    )
    return (
        '<div id="onetrust-consent-sdk"><div class="onetrust-pc-dark-filter ot-hide"></div>'
        '<div id="onetrust-banner-sdk" class="otFlat" role="region" aria-label="Cookie banner">'
        '<div id="onetrust-policy"><h2 id="onetrust-policy-title">We value your privacy</h2>'
        '<p id="onetrust-policy-text">We use cookies and similar technologies to provide and '
        "improve our services, to personalise content and ads, and to analyse our traffic. "
        'See our <a href="/legal/cookies">Cookie Policy</a>.</p></div>'
        '<div id="onetrust-button-group"><button id="onetrust-accept-btn-handler">Accept all'
        '</button><button id="onetrust-reject-all-handler">Reject all</button>'
        '<button id="onetrust-pc-btn-handler">Cookie settings</button></div></div>'
        f'<div id="onetrust-pc-sdk" class="otPcCenter ot-hide">{choices}</div></div>'
    )


def _footer(rng: random.Random, platform: str) -> str:
    links = "".join(
        f'<li><a href="/legal/{_ident(rng)}">{label}</a></li>'
        for label in ("Privacy", "Terms", "Cookies", "Accessibility", "Careers", "Press",
                      "Transparency", "Help Centre", "Sitemap", "Contact", "Ad choices",
                      "Status", "Developers", "Investors", "Safety", "Community")
    )  # fmt: skip
    return (
        f'</article></main><footer class="site-footer" role="contentinfo"><ul>{links}</ul>'
        f"<p>&copy; 2025 {platform}. All rights reserved.</p>"
        f'<p class="generated">Page generated at {STAMP}</p>'
        '<form class="feedback" method="post" action="/feedback">'
        f'<input type="hidden" name="csrf_token" value="{CSRF}">'
        '<label>Was this page helpful? <input type="text" name="comment"></label>'
        '<button type="submit">Send</button></form></footer>'
        f'<script nonce="{NONCE}">window.__CSRF__="{CSRF}";window.__RENDERED_AT__="{STAMP}";'
        "</script></body></html>"
    )


def _rows(rng: random.Random) -> list[Row]:
    rows = []
    for country in COUNTRIES:
        requests = int(rng.paretovariate(1.2) * 40)
        accounts = requests + rng.randint(0, requests + 5)
        rows.append((country, (requests, accounts, rng.randint(0, 100), rng.randint(0, 300))))
    return rows


def _table(rows: list[Row]) -> str:
    body = "".join(
        f'<tr><th scope="row">{country}</th><td>{req:,}</td><td>{acc:,}</td><td>{pct}%</td>'
        f"<td>{emergency:,}</td></tr>"
        for country, (req, acc, pct, emergency) in rows
    )
    return (
        '<section class="gov-requests"><h2>Government requests for user data, by country'
        "</h2><table><thead><tr><th>Country/region</th><th>Requests</th><th>Users/accounts"
        "</th><th>Percentage where some data produced</th><th>Emergency requests</th></tr>"
        f"</thead><tbody>{body}</tbody></table></section>"
    )


# --- building a page -----------------------------------------------------------------


class Corpus:
    """The pages of a benchmark, rendered on demand for any round.

    ``changed_rounds`` are the rounds whose pages edit their main text; a seeded
    ``share`` of the pages is edited in each of them. ``noise_rounds`` are the rounds
    that change every page's timestamp, token and nonces (None: every round does);
    in the others only the edited pages change.
    """

    def __init__(
        self,
        pages: int = 1000,
        *,
        seed: int = DEFAULT_SEED,
        changed_rounds: Iterable[int] = (),
        share: float = 0.2,
        noise_rounds: Iterable[int] | None = None,
        source: Path = REAL_DIR,
    ) -> None:
        self.seed = seed
        self.share = share
        self.changed_rounds = frozenset(changed_rounds)
        self.noise_rounds = None if noise_rounds is None else frozenset(noise_rounds)
        self.sources = load_sources(source)
        self.words = _vocabulary(self.sources)
        self.specs = [self._spec(index) for index in range(pages)]
        self._changed: dict[int, frozenset[int]] = {}

    def changed_in(self, round_: int) -> frozenset[int]:
        """Indexes of the pages whose main text this round edits."""
        if round_ not in self.changed_rounds:
            return frozenset()
        if round_ not in self._changed:
            rng = random.Random(f"{self.seed}:changed:{round_}")
            count = round(len(self.specs) * self.share)
            self._changed[round_] = frozenset(rng.sample(range(len(self.specs)), count))
        return self._changed[round_]

    def touched_in(self, round_: int) -> frozenset[int]:
        """Indexes of the pages whose bytes differ from the round before (all in round 0)."""
        if round_ == 0 or self.noise_rounds is None or round_ in self.noise_rounds:
            return frozenset(range(len(self.specs)))
        return self.changed_in(round_)

    def render(self, index: int, round_: int) -> str:
        """Page ``index`` as served in ``round_``."""
        spec = self.specs[index]
        blocks, rows = list(spec.blocks), list(spec.rows)
        for past in sorted(self.changed_rounds):
            if past <= round_ and index in self.changed_in(past):
                _edit(blocks, rows, random.Random(f"{spec.seed}:edit:{past}"))
        page = f"{spec.head}{''.join(blocks)}{_table(rows)}{spec.tail}"
        return _volatile(page, spec.seed, self._last_touched(index, round_))

    def _last_touched(self, index: int, round_: int) -> int:
        """The latest round up to ``round_`` that changed page ``index``'s bytes."""
        return next((r for r in range(round_, 0, -1) if index in self.touched_in(r)), 0)

    def pages(self, round_: int) -> dict[str, bytes]:
        """Every page of ``round_`` by URL path, as UTF-8."""
        return {s.path: self.render(s.index, round_).encode() for s in self.specs}

    def _spec(self, index: int) -> PageSpec:
        rng = random.Random(f"{self.seed}:page:{index}")
        platform = rng.choice(PLATFORMS)
        docs = _pick_documents(rng, self.sources)
        topic = docs[0].name.split("/")[0]
        title = f"{platform} {topic.replace('-', ' ').title()}"
        head = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="canonical" href="/{platform.lower()}/legal/{topic}">'
            f"<style>{_css(rng)}</style>{_scripts(rng, platform)}"
        )
        body = (
            f'</head><body class="legal"><a class="skip" href="#main">Skip to content</a>'
            f"{_nav(rng, platform)}{_banner()}"
            '<main id="main"><nav class="breadcrumbs" aria-label="Breadcrumb"><a href="/">'
            f'Home</a> &rsaquo; <a href="/legal">Legal</a></nav><article><h1>{title}</h1>'
        )
        spec = PageSpec(
            index=index,
            path=f"/{platform.lower()}/legal/{topic}-{index:04d}.html",
            title=title,
            head=head,
            blocks=[],
            rows=_rows(rng),
            tail=_footer(rng, platform),
            seed=f"{self.seed}:{index}",
        )
        target = rng.randint(MIN_SIZE, MAX_SIZE)
        shell = len(f"{head}{body}{_table(spec.rows)}{spec.tail}".encode()) + 200
        spec.blocks = [body, *_fill(docs, target - shell)]
        spec.head = head + _filler(rng, self, docs, target - shell - _size(spec.blocks[1:]))
        return spec


def _pick_documents(rng: random.Random, sources: list[Source]) -> list[Source]:
    """One to three versions of different documents."""
    by_doc: dict[str, list[Source]] = {}
    for source in sources:
        by_doc.setdefault(source.name.split("/")[0], []).append(source)
    names = rng.sample(sorted(by_doc), rng.randint(1, min(3, len(by_doc))))
    return [rng.choice(by_doc[name]) for name in names]


def _fill(docs: list[Source], budget: int) -> list[str]:
    """The documents' blocks, each document in a section, cut to about ``budget`` bytes."""
    blocks: list[str] = []
    used = 0
    for number, doc in enumerate(docs):
        blocks.append(f'<section class="policy-document" id="document-{number}">')
        for block in doc.blocks:
            size = len(block.encode())
            if used + size > budget and len(blocks) > 20:
                break
            blocks.append(block)
            used += size
        blocks.append("</section>")
    return blocks


def _size(blocks: list[str]) -> int:
    return sum(len(b.encode()) for b in blocks)


def _filler(rng: random.Random, corpus: Corpus, docs: list[Source], size: int) -> str:
    """What makes up the rest of a page's weight, in one of three styles seen on real sites.

    ``ssr``: the page's documents again as JSON props, then related documents, as
    server-rendered apps embed them; ``bundle``: inline minified JavaScript;
    ``i18n``: a state blob of interface strings. They compress very differently.
    """
    style = rng.choice(("ssr", "bundle", "i18n"))
    if size <= 0:
        return ""
    if style == "bundle":
        code = _take((_js(rng, 1) for _ in iter(int, 1)), size)
        return f'<script nonce="{NONCE}">{"".join(code)}</script>'
    if style == "ssr":
        related = [*docs, *rng.sample(corpus.sources, len(corpus.sources))]
        blocks = (json.dumps(b, ensure_ascii=False) for doc in related for b in doc.blocks)
        payload = ",".join(_take(blocks, size - 80))
        return (
            '<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":'
            f'{{"blocks":[{payload}]}}}},"page":"/legal/[slug]"}}</script>'
        )
    words = (
        f'"i18n.{_ident(rng, 8)}":{json.dumps(" ".join(rng.choices(corpus.words, k=20)))}'
        for _ in iter(int, 1)
    )
    blob = ",".join(_take(words, size - 80))
    return f'<script id="__APP_STATE__" type="application/json">{{"strings":{{{blob}}}}}</script>'


def _take(pieces: Iterator[str], size: int) -> list[str]:
    """Pieces that together make at most about ``size`` bytes (too big ones are skipped)."""
    taken: list[str] = []
    total = 0
    for piece in pieces:
        length = len(piece.encode()) + 1
        if total + length <= size:
            taken.append(piece)
            total += length
        elif total > size - 2000:
            break
    return taken


def _edit(blocks: list[str], rows: list[Row], rng: random.Random) -> None:
    """Change the main text: a word of a sentence, or a number of the requests table."""
    paragraphs = [i for i, b in enumerate(blocks) if b.startswith("<p>") and len(b) > 120]
    if paragraphs and rng.random() < 0.6:
        at = rng.choice(paragraphs)
        blocks[at] = _reword(blocks[at], rng)
        return
    at = rng.randrange(len(rows))
    country, (req, acc, pct, emergency) = rows[at]
    rows[at] = (country, (req + rng.randint(1, 50), acc, pct, emergency))


def _reword(block: str, rng: random.Random) -> str:
    """Swap one word in the text (never in a tag), or else add a sentence."""
    parts = _TAG.split(block)
    for old, new in rng.sample(_SWAPS, len(_SWAPS)):
        for i, part in enumerate(parts):
            if not part.startswith("<") and old in part:
                parts[i] = part.replace(old, new, 1)
                return "".join(parts)
    return block.replace("</p>", " This paragraph was revised.</p>", 1)


def _volatile(page: str, seed: str, round_: int) -> str:
    """Fill in what changes on every fetch: timestamp, CSRF token, script nonce."""
    digest = hashlib.sha256(f"{seed}:{round_}".encode()).hexdigest()
    offset = int(digest[:4], 16)
    stamp = (EPOCH + timedelta(hours=6 * round_, seconds=offset)).isoformat()
    return page.replace(NONCE, digest[:22]).replace(CSRF, digest[22:]).replace(STAMP, stamp)


def main() -> None:
    """Write some pages of a round to a folder, to look at them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--changed", type=int, nargs="*", default=[], help="changed rounds")
    parser.add_argument("--noise", type=int, nargs="*", default=None, help="default: all rounds")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    corpus = Corpus(
        args.pages, seed=args.seed, changed_rounds=args.changed, noise_rounds=args.noise
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for path, body in corpus.pages(args.round).items():
        (args.out / path.strip("/").replace("/", "_")).write_bytes(body)
    sizes = sorted(len(b) for b in corpus.pages(args.round).values())
    changed = sorted(corpus.changed_in(args.round))
    print(f"{len(sizes)} pages, {sizes[0]:,}-{sizes[-1]:,} bytes; changed: {changed}")


if __name__ == "__main__":
    main()
