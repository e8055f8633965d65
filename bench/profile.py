"""Where monitor's check time goes: cProfile over the benchmark's rounds.

It serves the same corpus as ``bench.run`` (with its ETags), runs ``monitor check``
under cProfile for each of its rounds (first, noise, changed, again) on one store,
and splits each run's time by pipeline stage: the time spent inside a module's
functions when called from outside it (fetch, extract, relevance, diff, store, ...),
the JSON output of ``check --json``, the idle waits (the event loop's, and the worker
threads' that evaluate responses: every thread is profiled), and the rest. Profiles
are kept as ``bench/out/profile-<pages>/<round>.prof`` for ``python -m pstats`` or
snakeviz.

    .venv/bin/python -m bench.profile --pages 300
"""

from __future__ import annotations

import argparse
import json
import pstats
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_SEED
from bench.run import (
    DEFAULT_PAGES,
    OUT,
    ROOT,
    ROUNDS,
    ServerProcess,
    _child_env,
    _snapshot_env,
    _watchlist,
    loopback_names,
    measure,
    snapshot_monitor,
)

Func = tuple[str, int, str]  # file, line, name: pstats' key

STAGES = {  # stage -> the module whose entry time it counts
    "fetch": "monitor/fetch.py",
    "extract": "monitor/extract.py",
    "diff": "monitor/diff.py",
    "relevance": "monitor/relevance.py",
    "jurisdictions": "monitor/jurisdictions.py",
    "document hash/JSON": "monitor/model.py",
    "store": "monitor/store/__init__.py",  # the Store facade; its modules are inside
    "config load": "monitor/config.py",
}
STORE_PARTS = {  # part of the store stage -> (module, function) in monitor/store/
    "compress and store raw body (zstd)": ("monitor/store/bodies.py", "store_body"),
    "write version (document JSON + zlib)": ("monitor/store/versions.py", "_insert_version"),
    "read latest version (zlib + JSON + Blocks)": ("monitor/store/versions.py", "decode_version"),
}
STORE_PACKAGE = "/monitor/store/"  # calls between the store's own modules stay in the store
JSON_OUTPUT = ("monitor/cli.py", "show")  # _Progress.show: json.dumps + print per check
IDLE = (
    ("~", 0, "<method 'poll' of 'select.epoll' objects>"),  # the event loop waits
    ("~", 0, "<method 'get' of '_queue.SimpleQueue' objects>"),  # a worker thread waits
)

# cProfile profiles the thread that enables it, and monitor evaluates each response in
# a worker thread (asyncio.to_thread): every thread gets its own profiler, all merged
# into one file when `monitor` exits. Times are wall seconds summed over the threads.
LAUNCH = """
import cProfile, pstats, runpy, sys, threading
out = sys.argv.pop(1)
sys.argv[0] = "monitor"
profiles = [cProfile.Profile()]
thread_run = threading.Thread.run
def profiled(self):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()
    try:
        thread_run(self)
    finally:
        profile.disable()
threading.Thread.run = profiled
profiles[0].enable()
try:
    runpy.run_module("monitor", run_name="__main__", alter_sys=True)
finally:
    profiles[0].disable()
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(out)
"""


def entry_time(stats: pstats.Stats, suffix: str) -> float:
    """Seconds spent in a module's functions when called by monitor's orchestration
    (check.py, cli.py: any monitor module that is not a stage).

    A stage called by another stage (jurisdictions by relevance, model by store)
    counts in the caller's stage only, and calls coming back through a library
    (contextlib, asyncio) are inside a call already counted, so the stages add up.
    """
    stage_files = tuple(STAGES.values())
    total = 0.0
    for func, (*_, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if not func[0].endswith(suffix):
            continue
        for caller, edge in callers.items():
            inside = caller[0].endswith(stage_files) or STORE_PACKAGE in caller[0]
            if "/monitor/" in caller[0] and not inside:
                total += edge[3]  # cumulative time along this edge
    return total


def cumulative(stats: pstats.Stats, file_suffix: str, name: str) -> float:
    return sum(
        row[3]
        for func, row in stats.stats.items()  # type: ignore[attr-defined]
        if func[0].endswith(file_suffix) and func[2] == name
    )


def breakdown(path: Path) -> dict[str, float]:
    """The stages' seconds in one profile, plus idle, other and the total."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    parts = {stage: entry_time(stats, suffix) for stage, suffix in STAGES.items()}
    parts["json output"] = cumulative(stats, *JSON_OUTPUT)
    parts["idle (event loop, worker threads)"] = sum(
        stats.stats.get(key, (0, 0, 0.0))[2]  # type: ignore[attr-defined]
        for key in IDLE
    )
    parts["other"] = total - sum(parts.values())
    parts["total"] = total
    for part, (module, name) in STORE_PARTS.items():
        parts[f"store: {part}"] = cumulative(stats, module, name)
    return {k: round(v, 2) for k, v in parts.items()}


def top_functions(path: Path, limit: int = 15) -> list[tuple[str, float, float]]:
    """The functions with the most own time: (where, own s, cumulative s)."""
    stats = pstats.Stats(str(path))
    rows = [
        (f"{Path(f[0]).name}:{f[1]}({f[2]})", row[2], row[3])
        for f, row in stats.stats.items()  # type: ignore[attr-defined]
        if f not in IDLE
    ]
    return sorted(rows, key=lambda r: r[1], reverse=True)[:limit]


def startup_cpu() -> float:
    """CPU seconds of starting Python and importing monitor's check path."""
    code = "import monitor.cli, monitor.check, monitor.store, monitor.fetch, monitor.extract"
    command = [str(ROOT / ".venv/bin/python"), "-c", code]
    log = OUT / "startup"
    _, _, usage = measure(command, {**_child_env(), **_snapshot_env()}, log)
    return round(usage.ru_utime + usage.ru_stime, 2)


def profile(args: argparse.Namespace) -> dict[str, object]:
    hosts = loopback_names()[: args.hosts]
    monitor = snapshot_monitor(args.monitor_ref)
    work = OUT / f"profile-{args.pages}"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("monitor.db*"):
        old.unlink()
    server = ServerProcess(args.pages, args.seed)
    urls = [
        f"http://{hosts[i % len(hosts)]}:{server.port}{p}"
        for i, p in enumerate(server.manifest.paths)
    ]
    watchlist = work / "watchlist.yaml"
    watchlist.write_text(_watchlist(urls, select=False), "utf-8")
    rounds: dict[str, object] = {}
    try:
        for round_name, round_ in ROUNDS:
            server.set_round(round_)
            print(f"[{time.strftime('%H:%M:%S')}] profiling {round_name} ...", flush=True)
            rounds[round_name] = _profile_round(work, watchlist, round_name, args.concurrency)
    finally:
        server.close()
    return {"pages": args.pages, "monitor": monitor, "startup_cpu_s": startup_cpu(), **rounds}


def _profile_round(work: Path, watchlist: Path, round_name: str, concurrency: int) -> object:
    prof = work / f"{round_name}.prof"
    command = [str(ROOT / ".venv/bin/python"), "-c", LAUNCH, str(prof)]
    command += ["check", "--json", "--watchlist", str(watchlist)]
    command += ["--db", str(work / "monitor.db"), "--concurrency", str(concurrency)]
    code, wall, usage = measure(command, {**_child_env(), **_snapshot_env()}, work / round_name)
    if code != 0:
        raise SystemExit(f"monitor check failed in {round_name}: see {work / round_name}.err")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "stages_s": breakdown(prof),
        "top_own_time": top_functions(prof),
    }


def print_report(report: dict[str, object]) -> None:
    names = [name for name, _ in ROUNDS]
    stages: list[str] = list(report[names[0]]["stages_s"])  # type: ignore[index]
    print(f"\n{report['pages']} pages; startup + imports: {report['startup_cpu_s']} s CPU\n")
    print("| stage | " + " | ".join(f"{n} s" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for stage in stages:
        cells = [f"{report[n]['stages_s'][stage]:.2f}" for n in names]  # type: ignore[index]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    cpu = [f"{report[n]['cpu_s']:.2f}" for n in names]  # type: ignore[index]
    print("| CPU (user+sys, profiled) | " + " | ".join(cpu) + " |")
    for name in names:
        print(f"\nmost own time, {name} round:")
        for where, own, cum in report[name]["top_own_time"]:  # type: ignore[index]
            print(f"  {own:7.2f} s own {cum:7.2f} s cum  {where}")


def reanalyse(report: dict[str, Any], work: Path) -> dict[str, Any]:
    """The same report with its breakdown computed again from the saved profiles."""
    for name, _ in ROUNDS:
        report[name]["stages_s"] = breakdown(work / f"{name}.prof")
        report[name]["top_own_time"] = top_functions(work / f"{name}.prof")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Profile monitor check by pipeline stage.")
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=None)
    parser.add_argument("--monitor-ref", metavar="REF")
    parser.add_argument(
        "--reanalyse",
        action="store_true",
        help="do not run: split the profiles of the last run with --pages again",
    )
    args = parser.parse_args(argv)
    out = OUT / f"profile-{args.pages}.json"
    if args.reanalyse:
        report = reanalyse(json.loads(out.read_text("utf-8")), OUT / f"profile-{args.pages}")
    else:
        report = profile(args)
    out.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    print_report(report)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
