"""How long the jurisdiction matcher takes: building it, and finding names in long pages.

    .venv/bin/python -m bench.matcher [--runs 20]

Run by hand; the tests only check that long pages are matched whole and right.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence

from monitor.jurisdictions import catalog, matcher_for

WATCHED = ("HK", "MO", "CN", "TW", "US", "GB", "EU")


def _median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    places = catalog()
    started = time.perf_counter()
    matcher = matcher_for(WATCHED, places)
    build = (time.perf_counter() - started) * 1000
    rng = random.Random(4)
    words = ["policy", "content", "users", "may", "the", "of", "law", "Hong Kong", "us"]
    latin = " ".join(rng.choice(words) for _ in range(40_000))
    cjk = "中文内容…" * 40_000 + "香港"
    print(f"| what | median of {args.runs} runs |")
    print("|---|---:|")
    print(f"| build the matcher for {len(WATCHED)} jurisdictions (once) | {build:.0f} ms |")
    for name, text in ((f"{len(latin):,} English", latin), (f"{len(cjk):,} CJK", cjk)):
        took = _median_ms(lambda t=text: matcher.find(t), args.runs)
        print(f"| find names in {name} characters | {took:.1f} ms |")


if __name__ == "__main__":
    main()
