"""The check benchmark: monitor against urlwatch 2.29 on the same local corpus.

Four rounds are served by the local corpus server, with a strong ETag per page (304
Not Modified for a matching If-None-Match), and every tool checks every page once per
round, as a subprocess:

    first    nothing stored yet: every page is new
    noise    every page's footer timestamp, CSRF token and script nonces changed (new
             bytes, new ETag), its main text did not: every page is unchanged
    changed  the main text of a seeded 14 % of the pages was edited; only those pages'
             bytes (and ETags) changed, the others are served as in the noise round
    again    nothing changed: every page is served as in the changed round

For each tool and round it measures the wall time, the CPU time (user + system) and
the peak resident memory of the child process (``os.wait4``), the size of the
tool's store afterwards, how many requests were conditional and got 304 (the
server's counters), and whether each page got the outcome it should have. Results
go to ``bench/out/results.json`` and Markdown tables to stdout.

    .venv/bin/python -m bench.run            # 300 pages (about 12 minutes)
    .venv/bin/python -m bench.run --quick    # 100 pages, a sanity run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_SEED

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
URLWATCH_VENV = OUT / "urlwatch-venv"
MONITOR_VENV = OUT / "monitor-venv"
MONITOR_SNAPSHOT = OUT / "monitor-snapshot"
URLWATCH_VERSION = "2.29"
URLWATCH_WORKERS = 10  # urlwatch.worker.MAX_WORKERS: fixed, no command-line option
ROUNDS = (("first", 0), ("noise", 1), ("changed", 2), ("again", 3))
NOISE_ROUND = 1
CHANGED_ROUND = 2
CHANGED_SHARE = 0.14  # 42 of 300 pages
DEFAULT_PAGES = 300
POLITENESS_DELAY = 1.0  # monitor.limits.HostLimiter: one request start per host per second
GOALS = {"first": 0.5, "noise": 0.5, "changed": 0.5, "again": 0.25}  # CPU share of urlwatch's
RSS_GOAL_MB = 100.0  # peak RSS, every round
STORE_GOAL = 0.25  # store size as a share of urlwatch's, after the changed round
QUIET = frozenset({"unchanged", "not_modified"})  # right where "unchanged" is expected

Outcomes = dict[str, list[int]]  # outcome -> page indexes


@dataclass(frozen=True)
class Tool:
    """One contestant: how to run it on a round, where its store is, how to read it."""

    name: str
    command: list[str]
    store: list[Path]
    outcomes: Callable[[Path, int], Outcomes]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Measurement:
    """What one run of one tool on one round cost and found."""

    tool: str
    round: str
    wall_s: float
    user_s: float
    sys_s: float
    cpu_s: float
    max_rss_mb: float
    store_bytes: int
    store_files: dict[str, int]
    exit_code: int
    outcomes: dict[str, int]
    wrong: dict[str, list[int]]
    responses: dict[str, int] = field(default_factory=dict)  # requests, conditional, 304s


# --- running and measuring a child ----------------------------------------------------


def measure(
    command: Sequence[str], env: dict[str, str], log: Path
) -> tuple[int, float, resource.struct_rusage]:
    """Run ``command``; its exit code, wall time and resource usage (os.wait4)."""
    started = time.perf_counter()
    with _out(log).open("wb") as out, _err(log).open("wb") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=log.parent)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.perf_counter() - started, usage


def _out(log: Path) -> Path:
    return log.with_name(f"{log.name}.out")


def _err(log: Path) -> Path:
    return log.with_name(f"{log.name}.err")


def run_round(tool: Tool, round_name: str, work: Path, expected: dict[int, str]) -> Measurement:
    """One tool on the round being served, measured, and its outcomes checked."""
    log = work / f"{tool.name.replace(' ', '_').replace(':', '-')}.{round_name}"
    env = {**_child_env(), **tool.env}
    code, wall, usage = measure(tool.command, env, log)
    found = tool.outcomes(log, len(expected))
    files = {p.name: p.stat().st_size for p in tool.store if p.exists()}
    user, system = usage.ru_utime, usage.ru_stime
    return Measurement(
        tool=tool.name,
        round=round_name,
        wall_s=round(wall, 2),
        user_s=round(user, 2),
        sys_s=round(system, 2),
        cpu_s=round(user + system, 2),
        max_rss_mb=round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        store_bytes=sum(v for k, v in files.items() if not k.endswith("-shm")),
        store_files=files,
        exit_code=code,
        outcomes={k: len(v) for k, v in sorted(found.items())},
        wrong=_wrong(found, expected),
    )


def _child_env() -> dict[str, str]:
    """The environment without proxies: every request must go to 127.0.0.1 directly."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def _wrong(found: Outcomes, expected: dict[int, str]) -> dict[str, list[int]]:
    """Pages whose outcome is not the expected one, as 'expected->found': indexes.
    A 304 (monitor's `not_modified`) is right where `unchanged` is expected."""
    wrong: dict[str, list[int]] = {}
    seen: set[int] = set()
    for outcome, pages in found.items():
        for page in pages:
            seen.add(page)
            want = expected.get(page)
            if want != outcome and not (want == "unchanged" and outcome in QUIET):
                wrong.setdefault(f"{expected.get(page)}->{outcome}", []).append(page)
    for page in sorted(set(expected) - seen):
        wrong.setdefault(f"{expected[page]}->missing", []).append(page)
    return wrong


# --- monitor --------------------------------------------------------------------------


def monitor_tool(name: str, work: Path, urls: list[str], select: bool, concurrency: int) -> Tool:
    """monitor check --json on a fresh store, with or without `select: [main]`."""
    slug = "monitor-select" if select else "monitor"
    watchlist = work / f"{slug}.yaml"
    watchlist.write_text(_watchlist(urls, select), "utf-8")
    db = work / f"{slug}.db"
    command = [str(monitor_python()), "-m", "monitor", "check", "--json"]
    command += ["--watchlist", str(watchlist), "--db", str(db), "--concurrency", str(concurrency)]
    stores = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return Tool(name, command, stores, _monitor_outcomes, env=_snapshot_env())


def snapshot_monitor(ref: str | None) -> dict[str, str]:
    """Copy the monitor package, so edits made during the run do not mix in.

    The copy is the working tree's, or the package at git ``ref``. It runs with the
    project's venv (its dependencies) and comes first on PYTHONPATH, ahead of the
    editable install. Returns what was copied.
    """
    shutil.rmtree(MONITOR_SNAPSHOT, ignore_errors=True)
    git = ["git", "-C", str(ROOT)]
    if ref is None:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "monitor", MONITOR_SNAPSHOT / "monitor", ignore=ignore)
    else:
        MONITOR_SNAPSHOT.mkdir(parents=True)
        archive = subprocess.run([*git, "archive", ref, "monitor"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(MONITOR_SNAPSHOT)], input=archive.stdout, check=True)
    probe = [str(monitor_python()), "-c", "import monitor.cli, monitor.check"]
    env = {**os.environ, **_snapshot_env()}
    done = subprocess.run(probe, env=env, cwd=MONITOR_SNAPSHOT, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"the monitor package does not import:\n{done.stderr.decode()}")
    head = subprocess.run([*git, "rev-parse", "--short", ref or "HEAD"], capture_output=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "monitor"], capture_output=True)
    return {
        "commit": head.stdout.decode().strip(),
        "uncommitted": "" if ref else dirty.stdout.decode().strip(),
    }


def monitor_python() -> Path:
    """A venv with monitor's runtime dependencies alone, as `pip install .` gives a
    user. The project's own venv also holds its test tools, and httpx imports rich and
    pygments whenever they are installed (0.1 s of CPU and 3 MB at every start that
    no user pays). Rebuilt when pyproject.toml changes; monitor's code itself comes
    from the snapshot on PYTHONPATH."""
    python = MONITOR_VENV / "bin" / "python"
    stamp = MONITOR_VENV / "pyproject.sha256"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(MONITOR_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(MONITOR_VENV)], check=True)
        pip = [str(MONITOR_VENV / "bin" / "pip"), "install", "--quiet", str(ROOT)]
        subprocess.run(pip, check=True)
        stamp.write_text(wanted)
    return python


def _snapshot_env() -> dict[str, str]:
    return {"PYTHONPATH": str(MONITOR_SNAPSHOT)}


def _watchlist(urls: list[str], select: bool) -> str:
    lines = ["defaults:", "  jurisdictions: [HK, MO, CN]", "watches:"]
    for index, url in enumerate(urls):
        lines += [
            f"  - id: page-{index:04d}",
            "    platform: Bench",
            f"    name: Benchmark page {index}",
            f"    url: {json.dumps(url)}",
        ]
        if select:
            lines.append("    select: [main]")
    return "\n".join(lines) + "\n"


def _monitor_outcomes(log: Path, _pages: int) -> Outcomes:
    found: Outcomes = {}
    with _out(log).open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("type") == "check":
                page = int(record["watch"].removeprefix("page-"))
                found.setdefault(record["outcome"], []).append(page)
    return found


def floor_tool(work: Path, urls: list[str]) -> Tool:
    """bench/floor.py: the least a monitor on monitor's libraries does, with its Python."""
    listed = work / "floor-urls.json"
    listed.write_text(json.dumps(urls), "utf-8")
    db = work / "floor.db"
    command = [str(monitor_python()), str(BENCH / "floor.py"), str(listed), str(db)]
    stores = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return Tool("floor", command, stores, _monitor_outcomes)


# --- urlwatch -------------------------------------------------------------------------


def ensure_urlwatch() -> Path:
    """urlwatch 2.29 and html2text in their own venv, never in the project's."""
    binary = URLWATCH_VENV / "bin" / "urlwatch"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(URLWATCH_VENV)], check=True)
        pip = [str(URLWATCH_VENV / "bin" / "pip"), "install", "--quiet"]
        subprocess.run([*pip, f"urlwatch=={URLWATCH_VERSION}", "html2text"], check=True)
    return binary


def urlwatch_tool(name: str, work: Path, urls: list[str], method: str | None) -> Tool:
    """urlwatch on a fresh cache: css `main`, then html2text (default method, or ``method``)."""
    slug = "urlwatch" if method is None else f"urlwatch-{method}"
    html2text: object = "html2text" if method is None else {"html2text": method}
    jobs = [
        {"name": f"page-{i:04d}", "url": url, "filter": [{"css": "main"}, html2text]}
        for i, url in enumerate(urls)
    ]
    urls_file = work / f"{slug}-urls.yaml"
    urls_file.write_text("\n---\n".join(json.dumps(job) for job in jobs) + "\n", "utf-8")
    config = work / f"{slug}-config.yaml"
    config.write_text(json.dumps(_urlwatch_config()), "utf-8")
    cache = work / f"{slug}-cache.db"
    command = [str(ensure_urlwatch()), "--urls", str(urls_file), "--config", str(config)]
    command += ["--cache", str(cache), "--hooks", str(work / "no-hooks.py")]
    stores = [cache, cache.with_name(cache.name + "-journal"), cache.with_name(cache.name + "-wal")]
    home = {"XDG_CONFIG_HOME": str(work / "xdg"), "XDG_CACHE_HOME": str(work / "xdg")}
    return Tool(name, command, stores, _urlwatch_outcomes, env=home)


def _urlwatch_config() -> dict[str, object]:
    """urlwatch's defaults: the text report on stdout (no colour), listing new, changed
    and failed jobs. Unchanged jobs are not listed: with details, urlwatch would print
    every unchanged page's whole text, which is not what anyone runs."""
    return {
        "display": {"new": True, "error": True, "unchanged": False, "empty-diff": True},
        "report": {
            "text": {"details": True, "footer": True, "minimal": False, "separate": False},
            "stdout": {"enabled": True, "color": False},
        },
    }


def _urlwatch_outcomes(log: Path, pages: int) -> Outcomes:
    """Read the summary of urlwatch's text report ('NN. CHANGED: page-0042'); the jobs
    it does not list are unchanged. The report is streamed, never held in memory."""
    found: Outcomes = {}
    with _out(log).open(encoding="utf-8", errors="replace") as report:
        for line in report:
            number, _, rest = line.rstrip("\n").partition(". ")
            kind, _, name = rest.partition(": ")
            if number.strip().isdigit() and name.startswith("page-") and kind.isupper():
                outcome = {"NEW": "new", "CHANGED": "changed", "ERROR": "failed"}.get(kind, kind)
                found.setdefault(outcome.lower(), []).append(int(name.removeprefix("page-")))
    listed = {page for listed in found.values() for page in listed}
    unchanged = [page for page in range(pages) if page not in listed]
    if unchanged:
        found["unchanged"] = unchanged
    return found


# --- the run ---------------------------------------------------------------------------


def loopback_names() -> list[str]:
    """Host names that resolve to 127.0.0.1 (from /etc/hosts), 127.0.0.1 first.

    monitor lets one request start per host per second; spreading the pages over
    several names of the same loopback address keeps that politeness floor visible
    but not dominant, and no traffic ever leaves 127.0.0.1.
    """
    names = ["127.0.0.1"]
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        names += [n for n in fields[1:] if fields[0] == "127.0.0.1" and n not in names]
    return [n for n in names if _resolves_to_loopback(n)]


def _resolves_to_loopback(name: str) -> bool:
    try:
        return {a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)} == {"127.0.0.1"}
    except OSError:
        return False


@dataclass(frozen=True)
class Manifest:
    """What the corpus server says about its corpus."""

    paths: list[str]
    sizes: list[int]
    changed: dict[int, frozenset[int]]
    touched: dict[int, int]  # round -> pages served with new bytes (new ETags)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        changed = {int(r): frozenset(pages) for r, pages in data["changed"].items()}
        touched = {int(r): int(n) for r, n in data["touched"].items()}
        return cls(list(data["paths"]), list(data["bytes"]), changed, touched)

    def unmodified(self, round_: int) -> int:
        """Pages served byte for byte as in the round before: a 304 to a conditional
        request that names the previous round's ETag."""
        return 0 if round_ == 0 else len(self.paths) - self.touched[round_]

    def expected(self, round_name: str, round_: int) -> dict[int, str]:
        """The outcome each page should get in a round."""
        pages = range(len(self.paths))
        if round_name == "first":
            return dict.fromkeys(pages, "new")
        edited = self.changed.get(round_, frozenset())
        return {p: "changed" if p in edited else "unchanged" for p in pages}


class ServerProcess:
    """The corpus server in its own process, so its memory (hundreds of MB of pages) is
    not inherited by the tools' processes and counted in their peak RSS."""

    def __init__(self, pages: int, seed: int) -> None:
        command = [sys.executable, "-m", "bench.server", "--pages", str(pages)]
        command += ["--seed", str(seed), "--changed", str(CHANGED_ROUND), "--until-eof"]
        command += ["--noise", str(NOISE_ROUND), "--share", str(CHANGED_SHARE)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=_child_env()
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().decode()
        if not ready.startswith("READY "):
            self.close()
            raise SystemExit("the corpus server did not start")
        self.port = int(ready.split()[1])
        self.manifest = Manifest.from_json(json.loads(self._call("GET", "/_control/manifest")))

    def set_round(self, round_: int) -> None:
        self._call("POST", f"/_control/round/{round_}")

    def counts(self) -> dict[str, int]:
        """Requests answered so far, conditional ones, 304s."""
        return dict(json.loads(self._call("GET", "/_control/counts")))

    def _call(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with _DIRECT.open(request, timeout=600) as response:
            return bytes(response.read())

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def build_tools(args: argparse.Namespace, work: Path, urls: list[str]) -> list[Tool]:
    tools = [
        monitor_tool("monitor", work, urls, select=False, concurrency=args.concurrency),
        monitor_tool("monitor select:main", work, urls, select=True, concurrency=args.concurrency),
        urlwatch_tool("urlwatch", work, urls, method=None),
    ]
    if args.pyhtml2text:
        tools.append(urlwatch_tool("urlwatch pyhtml2text", work, urls, method="pyhtml2text"))
    if args.floor:
        tools.append(floor_tool(work, urls))
    return tools


def fresh_workdir(pages: int) -> Path:
    work = OUT / f"run-{pages}"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*"):
        if old.is_file():
            old.unlink()
    (work / "no-hooks.py").write_text("", "utf-8")
    return work


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the corpus, run every tool on every round, return the results."""
    hosts = loopback_names()[: args.hosts]
    monitor = snapshot_monitor(args.monitor_ref)
    server = ServerProcess(args.pages, args.seed)
    work = fresh_workdir(args.pages)
    paths = server.manifest.paths
    urls = [f"http://{hosts[i % len(hosts)]}:{server.port}{p}" for i, p in enumerate(paths)]
    tools = build_tools(args, work, urls)
    results: list[Measurement] = []
    floors: dict[str, float] = {}
    try:
        for round_name, round_ in ROUNDS:
            server.set_round(round_)
            expected = server.manifest.expected(round_name, round_)
            floors[round_name] = rss_floor(work)
            for tool in tools:
                print(f"[{time.strftime('%H:%M:%S')}] {tool.name}: {round_name} ...", flush=True)
                before = server.counts()
                results.append(run_round(tool, round_name, work, expected))
                after = server.counts()
                results[-1].responses = {k: after[k] - before[k] for k in after}
                print(f"    {_line(results[-1])}", flush=True)
    finally:
        server.close()
    report = _report(args, server.manifest, hosts, monitor, results)
    report["rss_floor_mb"] = floors
    report["harness_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return report


def rss_floor(work: Path) -> float:
    """Peak RSS of a child that does nothing: where a child's ru_maxrss starts.

    Some kernels (gVisor here) start a forked child's peak RSS at its parent's, so
    the harness keeps itself small (it streams the tools' outputs) and records this.
    """
    _, _, usage = measure([sys.executable, "-c", "pass"], _child_env(), work / "floor")
    return round(usage.ru_maxrss / 1024, 1)


def _line(m: Measurement) -> str:
    wrong = {k: len(v) for k, v in m.wrong.items()}
    return (
        f"wall {m.wall_s}s cpu {m.cpu_s}s rss {m.max_rss_mb}MB store {m.store_bytes:,}B "
        f"exit {m.exit_code} {m.outcomes} wrong {wrong} responses {m.responses}"
    )


def _report(
    args: argparse.Namespace,
    manifest: Manifest,
    hosts: list[str],
    monitor: dict[str, str],
    results: list[Measurement],
) -> dict[str, Any]:
    sizes = sorted(manifest.sizes)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "monitor": monitor,
        "pages": args.pages,
        "seed": args.seed,
        "page_bytes": {
            "min": sizes[0],
            "median": sizes[len(sizes) // 2],
            "max": sizes[-1],
            "total": sum(sizes),
        },
        "changed_pages": len(manifest.changed.get(CHANGED_ROUND, ())),
        "unmodified_pages": {name: manifest.unmodified(r) for name, r in ROUNDS},
        "hosts": hosts,
        "monitor_concurrency": args.concurrency,
        "urlwatch_workers": URLWATCH_WORKERS,
        "politeness_floor_s": round(args.pages / len(hosts) * POLITENESS_DELAY, 1),
        "results": [asdict(m) for m in results],
    }


# --- the table --------------------------------------------------------------------------


def markdown_table(report: dict[str, Any]) -> str:
    rows = [
        "| tool | round | wall s | CPU s (user+sys) | peak RSS MB | store after "
        "| 304s / conditional / requests (304s possible) | outcomes | wrong |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    possible = report.get("unmodified_pages", {})
    for m in report["results"]:
        outcomes = ", ".join(f"{v} {k}" for k, v in m["outcomes"].items())
        wrong = ", ".join(f"{len(v)} {k}" for k, v in m["wrong"].items()) or "none"
        rows.append(
            f"| {m['tool']} | {m['round']} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} "
            f"({m['user_s']:.1f}+{m['sys_s']:.1f}) | {m['max_rss_mb']:.0f} | "
            f"{_mb(m['store_bytes'])} | {_responses(m, possible)} | {outcomes} | {wrong} |"
        )
    return "\n".join(rows)


def _responses(m: dict[str, Any], possible: dict[str, int]) -> str:
    counts = m.get("responses")
    if not counts:
        return "-"
    return (
        f"{counts['not_modified']} / {counts['conditional']} / {counts['requests']} "
        f"({possible.get(m['round'], '?')})"
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def goals_table(report: dict[str, Any], baseline: str = "urlwatch") -> str:
    """monitor's CPU time per round as a share of ``baseline``'s, against the issue's goals."""
    by = {(m["tool"], m["round"]): m for m in report["results"]}
    rows = [
        f"| monitor variant | round | monitor CPU s | {baseline} CPU s | ratio | goal | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for tool in MONITOR_VARIANTS:
        for round_name, _ in ROUNDS:
            ours, theirs = by.get((tool, round_name)), by.get((baseline, round_name))
            if ours is None or theirs is None:
                continue
            ratio = ours["cpu_s"] / max(theirs["cpu_s"], 1e-9)
            rows.append(
                f"| {tool} | {round_name} | {ours['cpu_s']:.2f} | {theirs['cpu_s']:.2f} "
                f"| {ratio:.2f} | <= {GOALS[round_name]} | {_verdict(ratio <= GOALS[round_name])} |"
            )
    return "\n".join(rows)


MONITOR_VARIANTS = ("monitor", "monitor select:main", "floor")


def memory_goals_table(report: dict[str, Any], baseline: str = "urlwatch") -> str:
    """Peak RSS over every round, and the store after the changed round against ``baseline``'s."""
    by = {(m["tool"], m["round"]): m for m in report["results"]}
    rows = [
        f"| monitor variant | peak RSS MB, all rounds (goal <= {RSS_GOAL_MB:.0f}) "
        f"| store after changed / {baseline} (goal <= {STORE_GOAL}) |",
        "|---|---:|---:|",
    ]
    for tool in MONITOR_VARIANTS:
        runs = [m for m in report["results"] if m["tool"] == tool]
        ours, theirs = by.get((tool, "changed")), by.get((baseline, "changed"))
        if not runs or ours is None or theirs is None:
            continue
        peak = max(m["max_rss_mb"] for m in runs)
        store = ours["store_bytes"] / max(theirs["store_bytes"], 1)
        rows.append(
            f"| {tool} | {peak:.0f} {_verdict(peak <= RSS_GOAL_MB)} | {store:.2f} "
            f"({_mb(ours['store_bytes'])} / {_mb(theirs['store_bytes'])}) "
            f"{_verdict(store <= STORE_GOAL)} |"
        )
    return "\n".join(rows)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark monitor check against urlwatch.")
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="pages in the corpus")
    parser.add_argument("--quick", action="store_true", help="100 pages: a sanity run")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=URLWATCH_WORKERS,
        help=f"monitor --concurrency (default {URLWATCH_WORKERS}, urlwatch's worker count)",
    )
    parser.add_argument(
        "--hosts", type=int, default=None, help="use at most this many loopback host names"
    )
    parser.add_argument(
        "--pyhtml2text",
        action="store_true",
        help="also run urlwatch with `html2text: pyhtml2text` (the html2text module)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run bench/floor.py: the least a monitor on monitor's libraries does",
    )
    parser.add_argument(
        "--monitor-ref",
        metavar="REF",
        help="benchmark the monitor package at this git commit (default: the working tree)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="only print the tables of an earlier run's results.json",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pages = 100
    return args


def print_tables(report: dict[str, Any]) -> None:
    print(markdown_table(report))
    tools = {m["tool"] for m in report["results"]}
    for baseline in ("urlwatch", "urlwatch pyhtml2text"):
        if baseline in tools:
            print()
            print(goals_table(report, baseline))
            print()
            print(memory_goals_table(report, baseline))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        print_tables(json.loads(args.report.read_text("utf-8")))
        return
    report = run(args)
    OUT.mkdir(exist_ok=True)
    name = "results.json" if args.pages == DEFAULT_PAGES else f"results-{args.pages}.json"
    (OUT / name).write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    print(f"\n{args.pages} pages, hosts {report['hosts']}, written to {OUT / name}\n")
    print_tables(report)


if __name__ == "__main__":
    main()
