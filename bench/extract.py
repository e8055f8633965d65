"""How long monitor's HTML extraction takes per page, in-process, on the benchmark corpus.

    .venv/bin/python -m bench.extract [--pages 50] [--runs 3] [--profile FILE.prof]

Renders ``--pages`` pages of the first round of the benchmark corpus (every page new,
so every page is extracted whole), then calls ``monitor.extract.extract(html, rules)``
with the default rules (the main-content heuristics) on each, ``--runs`` times after
one warm-up pass, and prints the median milliseconds per page (each page's best run,
then the median over the pages) and the total of one pass. No fetch, no store: only
parsing, cleaning and walking the page into blocks. With ``--profile``, one more pass
runs under cProfile and its statistics are written to the file (read them with
``python -m pstats``) and their top entries printed.

``--dump FILE`` checks instead that extraction gives the same output as another
checkout: it writes one line per input with the canonical JSON of what is extracted
(``model.document_json``, or the error) from the corpus pages of all three rounds
(the third editing 20 % of them), the same pages with ``select``/``remove``/``ignore``
rules, the real policy texts (Markdown, their rendered HTML, and as plain text) and the
golden pages of the tests. Run it on both trees and compare the files with ``cmp``
(``$BENCH_CORPUS`` names the real texts for a tree outside the checkout):

    .venv/bin/python -m bench.extract --pages 100 --dump /tmp/new.jsonl
    mkdir /tmp/ref && git archive main monitor bench tests/golden | tar -x -C /tmp/ref
    cp bench/extract.py /tmp/ref/bench/ && cd /tmp/ref
    BENCH_CORPUS=$OLDPWD/../shared/corpus/real $OLDPWD/.venv/bin/python -m bench.extract \\
        --pages 100 --dump /tmp/old.jsonl
    cmp /tmp/old.jsonl /tmp/new.jsonl
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench import markdown
from bench.corpus import DEFAULT_SEED, REAL_DIR, Corpus
from monitor.errors import ExtractError
from monitor.extract import extract, markdown_document
from monitor.model import Document, ExtractRules, document_json

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "extract"
# Rules that exercise select, remove and ignore on the corpus pages.
RULED = ExtractRules(
    select=("main", "footer"),
    remove=(".breadcrumbs", "table td:nth-child(3)"),
    ignore=("Page generated at .*", r"\b(?:may|will)\b", "[0-9]+%"),
)


def _pass(pages: Sequence[str], rules: ExtractRules) -> list[float]:
    """One extraction of every page; milliseconds per page."""
    times = []
    for html in pages:
        started = time.process_time()
        extract(html, rules)
        times.append((time.process_time() - started) * 1000)
    return times


def _inputs(pages: int, seed: int) -> Iterator[tuple[str, Callable[[], Document]]]:
    """Every input of ``--dump``, named, with the extraction to run on it."""
    corpus = Corpus(pages, seed=seed, changed_rounds=(3,))
    for round_ in (1, 2, 3):
        for index in range(pages):
            html = corpus.render(index, round_)
            yield f"corpus {round_} {index}", lambda h=html: extract(h, ExtractRules())
            if index % 3 == 0:
                yield f"ruled {round_} {index}", lambda h=html: extract(h, RULED)
    for path in sorted(REAL_DIR.glob("*/*.md")):
        text = path.read_text("utf-8")
        page = f"<html><body><main>{''.join(markdown.render(text))}</main></body></html>"
        name = f"{path.parent.name}/{path.name}"
        yield f"markdown {name}", lambda t=text: markdown_document(t, ExtractRules())
        yield f"rendered {name}", lambda h=page: extract(h, ExtractRules())
        yield f"plain {name}", lambda t=text: extract(t, ExtractRules(), content_type="text/plain")
    for path in sorted(GOLDEN.glob("*.html")):
        spec = json.loads(path.with_suffix(".json").read_text("utf-8"))["rules"]
        rules = ExtractRules(**{key: tuple(value) for key, value in spec.items()})
        page = path.read_text("utf-8")
        yield f"golden {path.name}", lambda h=page, r=rules: extract(h, r)


def _dump(target: Path, pages: int, seed: int) -> None:
    count = 0
    with target.open("w", encoding="utf-8") as out:
        for name, run in _inputs(pages, seed):
            try:
                result = document_json(run())
            except ExtractError as exc:
                result = f"{type(exc).__name__}: {exc}"
            out.write(f"{name}\t{result}\n")
            count += 1
    print(f"{count} extractions written to {target}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--profile", help="write a cProfile of one more pass to this file")
    parser.add_argument("--dump", type=Path, help="write every extraction's output here")
    args = parser.parse_args(argv)
    if args.dump:
        _dump(args.dump, args.pages, args.seed)
        return
    corpus = Corpus(args.pages, seed=args.seed)
    pages = [corpus.render(index, 1) for index in range(args.pages)]
    rules = ExtractRules()
    _pass(pages, rules)  # warm-up: imports, caches, the allocator
    runs = [_pass(pages, rules) for _ in range(args.runs)]
    best = [min(times) for times in zip(*runs, strict=True)]
    size = statistics.median(len(html.encode()) for html in pages) / 1000
    print(f"{args.pages} pages (median {size:.0f} KB), best of {args.runs} runs each")
    print(f"median per page: {statistics.median(best):.2f} ms")
    print(f"total per pass:  {min(sum(times) for times in runs):.0f} ms")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(_pass, pages, rules)
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
