"""Why extraction uses lxml directly: parse and walk one realistic policy page.

Times, on the benchmark corpus page closest to ``--size`` bytes (200 KB by default):

- lxml, parsed the way ``monitor/extract.py`` parses (the etree HTML parser, fed UTF-8
  bytes, comments and processing instructions dropped), then walked: every element's
  text and tail;
- BeautifulSoup with its ``html.parser`` tree builder, then walked: every string;
- BeautifulSoup with its ``lxml`` tree builder, walked the same way;
- and, for scale, monitor's whole ``extract()`` of the page (parse, drop invisible
  parts, find the main content, walk it into blocks).

Each is run ``--runs`` times after one warm-up run; the median is reported. Needs the
``bench`` extra (BeautifulSoup is not a dependency of monitor):

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m bench.parse
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import bs4
from bs4 import BeautifulSoup, NavigableString
from lxml import etree

from bench.corpus import DEFAULT_SEED, Corpus
from monitor.extract import extract
from monitor.model import ExtractRules


def lxml_parse_and_walk(html: str) -> int:
    """Parse as monitor/extract.py does, then visit every piece of text."""
    parser = etree.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True
    )
    root = etree.fromstring(html.encode("utf-8", "replace"), parser)
    chars = 0
    for element in root.iter():
        chars += len(element.text or "") + len(element.tail or "")
    return chars


def soup_parse_and_walk(builder: str) -> Callable[[str], int]:
    def run(html: str) -> int:
        soup = BeautifulSoup(html, builder)
        return sum(len(s) for s in soup.descendants if isinstance(s, NavigableString))

    return run


def monitor_extract(html: str) -> int:
    return sum(len(block.text) for block in extract(html, ExtractRules()))


def page_near(size: int, seed: int) -> str:
    """The page of a 40-page corpus whose UTF-8 size is closest to ``size``."""
    corpus = Corpus(40, seed=seed)
    pages = [corpus.render(i, 0) for i in range(40)]
    return min(pages, key=lambda page: abs(len(page.encode()) - size))


def median_ms(run: Callable[[str], int], html: str, runs: int) -> float:
    run(html)  # warm-up: imports, caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(html)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000, help="page size in bytes")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()

    html = page_near(args.size, args.seed)
    contenders: list[tuple[str, Callable[[str], int]]] = [
        ("lxml etree.HTMLParser (as monitor/extract.py)", lxml_parse_and_walk),
        ("BeautifulSoup, html.parser", soup_parse_and_walk("html.parser")),
        ("BeautifulSoup, lxml tree builder", soup_parse_and_walk("lxml")),
        ("monitor.extract.extract (whole extraction)", monitor_extract),
    ]
    print(
        f"page: {len(html.encode()):,} bytes; median of {args.runs} runs; "
        f"Python {platform.python_version()}, lxml {etree.__version__}, "
        f"beautifulsoup4 {bs4.__version__}"
    )
    print(f"{'parse and walk':<48} {'ms':>8}")
    for name, run in contenders:
        print(f"{name:<48} {median_ms(run, html, args.runs):>8.1f}")


if __name__ == "__main__":
    main()
