"""Daemon soak: `monitor run` with 2,000 watches on a local corpus, round after round.

The corpus (``bench.corpus``) is served from memory by several ``bench.server``
HTTP servers, one per loopback address 127.0.0.2 ... 127.0.0.(H+1), so that
monitor's politeness per host (two requests at a time, starts one second apart)
does not stretch a round to one page per second. The daemon runs as a subprocess
on a fresh store with every watch on the same interval (no jitter), so its checks
come in rounds: round 0 records the baselines, then after each round of checks the
servers switch to the next corpus round. The rounds after the baseline cycle through
three kinds: *noise* (timestamps, tokens and nonces change on every page, the main
text does not), *changed* (the main text of 20 % of the pages is edited, and only
those pages change) and *again* (nothing changes). The servers send a strong ETag
per page and answer a matching If-None-Match with 304, and count their 304s.

Every second the daemon's ``VmRSS`` and ``VmHWM`` (``/proc/PID/status``) and its
CPU time (``utime + stime`` of ``/proc/PID/stat``) are sampled; ``/metrics``
(``monitor_checks_total`` by outcome) tells when a round's checks are done, and
the daemon's JSON log tells each watch's outcome, compared with what the page
should give. At the end the daemon gets SIGTERM and must exit 0. Results go to
``bench/out/daemon.json`` (``daemon-quick.json`` with --quick) and a Markdown
table to stdout. Nothing but 127.x addresses is ever contacted.

    .venv/bin/python -m bench.daemon            # 2,000 watches, 10 rounds (about 35 min)
    .venv/bin/python -m bench.daemon --quick    # 200 watches, 3 rounds (about 4 min)

The CPU time per check is reported for each round kind: baseline (every check new),
noise (every page 200 and unchanged), changed (20 % changed, the rest 304) and again
(every page 304).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_SEED, Corpus
from bench.server import _Handler, _Pages, _Server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PYTHON = ROOT / ".venv/bin/python"
TICK = os.sysconf("SC_CLK_TCK")
QUIET = frozenset({"unchanged", "not_modified"})
_CHECK_LINE = re.compile(r"^(page-\d{4,}): (\w+)")
_METRIC = re.compile(r'^monitor_checks_total\{outcome="(\w+)"\} ([0-9.e+]+)$', re.M)
KINDS = ("again", "noise", "changed")  # round r > 0 is KINDS[r % 3]
CHANGED_SHARE = 0.2


@dataclass
class Options:
    """What to run: sizes, schedule and where the results go."""

    watches: int = 2000
    rounds: int = 10
    hosts: int = 100
    spread: float = 60.0
    interval: float = 180.0
    concurrency: int = 10
    scrape_every: float = 30.0  # a scrape reads every watch's state: it costs the daemon
    out: Path = OUT / "daemon.json"


# --- the corpus servers ---------------------------------------------------------------


class Farm:
    """The corpus served by one ``bench.server`` HTTP server per loopback address."""

    def __init__(self, corpus: Corpus, hosts: int) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError("hosts must be 1-250 (127.0.0.2 ... 127.0.0.251)")
        self.corpus = corpus
        self.round = 0
        pages = _Pages(corpus.pages(0))
        self.servers = [self._start(f"127.0.0.{2 + i}", pages) for i in range(hosts)]

    def _start(self, address: str, pages: _Pages) -> _Server:
        server = _Server((address, 0), _Handler)
        server.owner = self  # type: ignore[assignment]  # only round and manifest are asked
        server.current = pages
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def urls(self) -> list[str]:
        """Page i on host i mod H."""
        specs = self.corpus.specs
        hosts = [s.server_address[:2] for s in self.servers]
        return [f"http://{h}:{p}{spec.path}" for spec, (h, p) in _cycle(specs, hosts)]

    def set_round(self, round_: int) -> None:
        """Render and compress the round, then switch every server to it at once."""
        pages = _Pages(self.corpus.pages(round_))
        for server in self.servers:
            server.current = pages
        self.round = round_

    def manifest(self) -> dict[str, object]:
        return {"round": self.round, "pages": len(self.corpus.specs)}

    def counts(self) -> Counter[str]:
        """Requests, conditional requests and 304s so far, summed over the servers."""
        total: Counter[str] = Counter()
        for server in self.servers:
            total.update(server.counts.snapshot())
        return total

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _cycle(specs: Sequence[Any], hosts: Sequence[Any]) -> list[tuple[Any, Any]]:
    return [(spec, hosts[i % len(hosts)]) for i, spec in enumerate(specs)]


def watchlist_yaml(urls: Sequence[str], interval: float) -> str:
    """Every page a watch on the same interval, without jitter, alerting nowhere."""
    lines = [
        "defaults:",
        f"  interval: {int(interval)}s",
        "  jitter: 0",
        "  jurisdictions: [HK, MO, CN]",
        "  routes: []",
        "watches:",
    ]
    for index, url in enumerate(urls):
        lines += [
            f"  - id: {watch_id(index)}",
            "    platform: Bench",
            f"    name: Corpus page {index}",
            f"    url: {json.dumps(url)}",
        ]
    return "\n".join(lines) + "\n"


def watch_id(index: int) -> str:
    return f"page-{index:04d}"


# --- the daemon and what it shows -----------------------------------------------------


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of the process (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    after = stat[stat.rindex(")") + 2 :].split()
    return (int(after[11]) + int(after[12])) / TICK  # fields 14 and 15 of stat


def scrape(port: int) -> dict[str, int]:
    """monitor_checks_total by outcome, from the daemon's /metrics."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {outcome: int(float(value)) for outcome, value in _METRIC.findall(text)}


class LogTail:
    """The daemon's JSON log, read as it grows: check outcomes and anything untoward."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.checks: list[tuple[str, str]] = []  # (watch, outcome), in log order
        self.problems: list[dict[str, Any]] = []  # warnings and errors that are not checks
        self.alerts = 0

    def read(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            self._take(line)

    def _take(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            self.problems.append({"level": "raw", "message": line[:500]})
            return
        message = str(record.get("message", ""))
        match = _CHECK_LINE.match(message)
        if match and record.get("logger") == "monitor.daemon":
            self.checks.append((match[1], match[2]))
            if match[2] == "failed":
                self.problems.append(record)
        elif message.startswith("ALERT "):
            self.alerts += 1
        elif record.get("level") not in ("info", "debug"):
            self.problems.append(record)


def child_env(snapshot: Path) -> dict[str, str]:
    """No proxies (only 127.x is contacted), and the snapshot of the monitor package."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env["PYTHONPATH"] = str(snapshot)
    return env


def snapshot_monitor(work: Path) -> dict[str, str]:
    """Copy the monitor package, so edits made during a long soak do not mix in."""
    target = work / "monitor-snapshot"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        ROOT / "monitor", target / "monitor", ignore=shutil.ignore_patterns("__pycache__")
    )
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "monitor"], capture_output=True, text=True
    )
    return {"commit": head.stdout.strip(), "uncommitted": dirty.stdout.strip(), "path": str(target)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    """`monitor run` as a subprocess, with its log, metrics port and start time."""

    process: subprocess.Popen[bytes]
    port: int
    log: LogTail
    started: float

    @property
    def pid(self) -> int:
        return self.process.pid


def start_daemon(work: Path, watchlist: Path, options: Options, snapshot: Path) -> Daemon:
    port = free_port()
    db = work / "monitor.db"
    for stale in (db, db.with_name("monitor.db-wal"), db.with_name("monitor.db-shm")):
        stale.unlink(missing_ok=True)
    command = [str(PYTHON), "-m", "monitor", "run", "--watchlist", str(watchlist)]
    command += ["--db", str(db), "--spread", str(options.spread)]
    command += ["--concurrency", str(options.concurrency), "--http", f"127.0.0.1:{port}"]
    command += ["--log-format", "json"]
    log_path = work / "daemon.log"
    with log_path.open("wb") as err, (work / "daemon.out").open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, env=child_env(snapshot), cwd=work
        )
    return Daemon(process, port, LogTail(log_path), time.monotonic())


def wait_ready(daemon: Daemon, timeout: float = 120.0) -> None:
    """Until /metrics answers (the watchlist is loaded and the jobs scheduled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.process.returncode}; see its log")
        try:
            scrape(daemon.port)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the daemon's /metrics did not answer in time")


def stop_daemon(daemon: Daemon, timeout: float = 90.0) -> tuple[int | None, float]:
    """SIGTERM; the exit code (None if it had to be killed) and how long it took."""
    begun = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code: int | None = daemon.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait(timeout=30)
        code = None
    return code, round(time.monotonic() - begun, 2)


# --- rounds ---------------------------------------------------------------------------


@dataclass
class Round:
    """What one round of checks did to the daemon."""

    round: int
    kind: str  # baseline, noise, changed, again
    checks: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    wrong: dict[str, list[str]] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cpu_ms_per_check: float = 0.0
    cpu_ms_per_check_net: float | None = None  # without the CPU of this benchmark's scrapes
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    hwm_mb: float = 0.0
    scrapes: int = 0
    flip_margin_s: float = 0.0  # time left before the next round's first check could start
    complete: bool = False
    cpu_end: float = 0.0  # the daemon's total CPU seconds when the round ended
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (s, MB) each second
    responses: dict[str, int] = field(default_factory=dict)  # requests, conditional, 304s


@dataclass
class Sampler:
    """Samples of one round: RSS every second, CPU at the round's edges."""

    daemon: Daemon
    cpu_start: float
    rss_max: int = 0
    hwm: int = 0
    samples: list[tuple[float, float]] = field(default_factory=list)

    def sample(self) -> int:
        rss, self.hwm = proc_memory(self.daemon.pid)
        self.rss_max = max(self.rss_max, rss)
        self.samples.append((round(time.monotonic() - self.daemon.started, 1), _mb(rss)))
        return rss


def expected(corpus: Corpus, round_: int) -> dict[str, str]:
    """Each watch's expected outcome: new, changed, or quiet (unchanged or not_modified)."""
    if round_ == 0:
        return {watch_id(i): "new" for i in range(len(corpus.specs))}
    edited = corpus.changed_in(round_)
    return {watch_id(i): "changed" if i in edited else "quiet" for i in range(len(corpus.specs))}


def wrong_outcomes(found: list[tuple[str, str]], want: dict[str, str]) -> dict[str, list[str]]:
    """Watches whose outcome is not the expected one, as 'expected->found': watch ids."""
    wrong: dict[str, list[str]] = {}
    seen: Counter[str] = Counter()
    for watch, outcome in found:
        seen[watch] += 1
        ok = want.get(watch) == outcome or (want.get(watch) == "quiet" and outcome in QUIET)
        if not ok:
            wrong.setdefault(f"{want.get(watch)}->{outcome}", []).append(watch)
    for watch in sorted(set(want) - set(seen)):
        wrong.setdefault(f"{want[watch]}->missing", []).append(watch)
    for watch in sorted(w for w, n in seen.items() if n > 1):
        wrong.setdefault("checked-twice", []).append(watch)
    return wrong


def round_kind(round_: int) -> str:
    return "baseline" if round_ == 0 else KINDS[round_ % 3]


def kind_rounds(rounds: int, kind: str) -> list[int]:
    """The rounds 1 ... ``rounds`` of one kind."""
    return [r for r in range(1, rounds + 1) if round_kind(r) == kind]


def run_round(
    daemon: Daemon, corpus: Corpus, round_: int, options: Options, cpu_start: float
) -> Round:
    """Wait for the round's checks (bounded), sampling the daemon every second.

    The round's CPU time runs from ``cpu_start`` (the end of the previous round), so
    what the daemon spends between rounds (heartbeats, delivery passes) is counted too.
    """
    result = Round(round_, round_kind(round_))
    begun, first_check = time.monotonic(), len(daemon.log.checks)
    sampler = Sampler(daemon, cpu_start)
    target = (round_ + 1) * options.watches
    deadline = daemon.started + (round_ + 2) * options.interval  # a whole interval late
    total, last_scrape = 0, 0.0
    while time.monotonic() < deadline and daemon.process.poll() is None:
        sampler.sample()
        daemon.log.read()
        logged = len(daemon.log.checks) - first_check
        if logged >= options.watches or time.monotonic() - last_scrape >= options.scrape_every:
            total, last_scrape = sum(scrape(daemon.port).values()), time.monotonic()
            result.scrapes += 1
        if total >= target:
            break
        time.sleep(1.0)
    rss = sampler.sample()
    result.cpu_end = proc_cpu(daemon.pid)
    cpu = result.cpu_end - sampler.cpu_start
    daemon.log.read()
    found = daemon.log.checks[first_check:]
    result.complete = total >= target
    _fill(result, found, expected(corpus, round_), cpu, time.monotonic() - begun)
    result.rss_end_mb, result.rss_max_mb = _mb(rss), _mb(sampler.rss_max)
    result.hwm_mb, result.rss_samples = _mb(sampler.hwm), sampler.samples
    return result


def _fill(
    result: Round, found: list[tuple[str, str]], want: dict[str, str], cpu: float, wall: float
) -> None:
    result.checks = len(found)
    result.outcomes = dict(sorted(Counter(outcome for _, outcome in found).items()))
    result.wrong = wrong_outcomes(found, want)
    result.wall_s, result.cpu_s = round(wall, 1), round(cpu, 2)
    result.cpu_ms_per_check = round(1000 * cpu / max(1, len(found)), 1)


def _mb(kib: int) -> float:
    return round(kib / 1024, 1)


def scrape_cost(daemon: Daemon, count: int = 10) -> float:
    """CPU milliseconds one /metrics scrape costs the daemon, measured while it is idle."""
    before = proc_cpu(daemon.pid)
    for _ in range(count):
        scrape(daemon.port)
    time.sleep(0.2)
    return round(1000 * (proc_cpu(daemon.pid) - before) / count, 1)


# --- the run --------------------------------------------------------------------------


def soak(options: Options) -> dict[str, Any]:
    work = options.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    print(f"rendering {options.watches} pages on {options.hosts} loopback hosts ...", flush=True)
    corpus = Corpus(
        options.watches,
        seed=DEFAULT_SEED,
        changed_rounds=kind_rounds(options.rounds, "changed"),
        share=CHANGED_SHARE,
        noise_rounds=kind_rounds(options.rounds, "noise"),
    )
    farm = Farm(corpus, options.hosts)
    try:
        watchlist = work / "watchlist.yaml"
        watchlist.write_text(watchlist_yaml(farm.urls(), options.interval), "utf-8")
        snapshot = snapshot_monitor(work)
        daemon = start_daemon(work, watchlist, options, Path(snapshot["path"]))
        report = _supervise(daemon, farm, options)
    finally:
        farm.close()
    daemon.log.read()
    return report | _summary(options, snapshot, work, daemon)


def _supervise(daemon: Daemon, farm: Farm, options: Options) -> dict[str, Any]:
    """Drive the rounds; whatever happens, stop the daemon and record how it exited."""
    report: dict[str, Any] = {}
    try:
        report = _drive(daemon, farm, options)
    finally:
        if daemon.process.poll() is None:
            report["exit_code"], report["stop_s"] = stop_daemon(daemon)
        else:
            report["exit_code"], report["stop_s"] = daemon.process.returncode, 0.0
    return report


def _drive(daemon: Daemon, farm: Farm, options: Options) -> dict[str, Any]:
    wait_ready(daemon)
    ready = round(time.monotonic() - daemon.started, 1)
    print(f"daemon {daemon.pid} ready after {ready} s; /metrics on port {daemon.port}", flush=True)
    rounds: list[Round] = []
    cpu = ready_cpu = proc_cpu(daemon.pid)
    # from zero, not from now: the daemon's first checks may start before it is ready
    counts: Counter[str] = Counter()
    for round_ in range(options.rounds + 1):
        result = run_round(daemon, farm.corpus, round_, options, cpu)
        cpu = result.cpu_end
        now = farm.counts()
        result.responses = {k: now[k] - counts[k] for k in now}
        counts = now
        rounds.append(result)
        _progress(result)
        if not result.complete or round_ == options.rounds:
            break
        farm.set_round(round_ + 1)
        next_start = daemon.started + (round_ + 1) * options.interval
        result.flip_margin_s = round(next_start - time.monotonic(), 1)
    cost = scrape_cost(daemon) if daemon.process.poll() is None else None
    for result in rounds:
        if cost is not None and result.checks:
            net = result.cpu_s - result.scrapes * cost / 1000
            result.cpu_ms_per_check_net = round(1000 * net / result.checks, 1)
    return {
        "ready_s": ready,
        "ready_cpu_s": ready_cpu,
        "rounds": [asdict(r) for r in rounds],
        "scrape_cpu_ms": cost,
    }


def _progress(result: Round) -> None:
    print(
        f"round {result.round} ({result.kind}): {result.checks} checks {result.outcomes} "
        f"in {result.wall_s} s, {result.cpu_ms_per_check} ms CPU/check, "
        f"RSS {result.rss_end_mb} MB (max {result.rss_max_mb}), responses "
        f"{result.responses}, wrong: { {k: len(v) for k, v in result.wrong.items()} }",
        flush=True,
    )


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return round(cov / var, 3) if var else None


def memory_trend(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RSS at the end of each round after the baseline: slope, and first vs last."""
    later = [(r["round"], r["rss_end_mb"]) for r in rounds if r["round"] >= 1]
    half = later[len(later) // 2 :]
    return {
        "rss_end_slope_mb_per_round": slope(later),
        "rss_end_slope_second_half": slope(half),
        "rss_end_first_mb": later[0][1] if later else None,
        "rss_end_last_mb": later[-1][1] if later else None,
        "rss_steady_mb": round(sum(y for _, y in half) / len(half), 1) if half else None,
        # gVisor's VmHWM can lag the sampled VmRSS by a few hundred KB: take the larger
        "peak_mb": max((max(r["hwm_mb"], r["rss_max_mb"]) for r in rounds), default=None),
    }


KIND_LABELS = {
    "baseline": "baseline (every check new)",
    "noise": "noise (every page 200, unchanged)",
    "changed": "changed (edited pages changed, the rest 304)",
    "again": "again (every page 304)",
}


def by_kind(rounds: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """CPU per check for each round kind, over all its rounds (total CPU / total checks)."""
    kinds: dict[str, dict[str, Any]] = {}
    for kind in KIND_LABELS:
        runs = [r for r in rounds if r["kind"] == kind and r["checks"]]
        if not runs:
            continue
        checks = sum(r["checks"] for r in runs)
        nets = [r["cpu_ms_per_check_net"] for r in runs]
        net = (
            sum(n * r["checks"] for n, r in zip(nets, runs, strict=True))
            if None not in nets
            else None
        )
        kinds[kind] = {
            "rounds": [r["round"] for r in runs],
            "checks": checks,
            "cpu_ms_per_check": round(1000 * sum(r["cpu_s"] for r in runs) / checks, 1),
            "cpu_ms_per_check_net": None if net is None else round(net / checks, 1),
            "not_modified": sum(r["responses"].get("not_modified", 0) for r in runs),
        }
    return kinds


def _summary(
    options: Options, snapshot: dict[str, str], work: Path, daemon: Daemon
) -> dict[str, Any]:
    db = work / "monitor.db"
    store = {p.name: p.stat().st_size for p in work.glob("monitor.db*") if p.exists()}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "monitor": {k: v for k, v in snapshot.items() if k != "path"},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "store_bytes": store,
        "store": str(db),
        "log": str(daemon.log.path),
        "alerts_logged": daemon.log.alerts,
        "problems": daemon.log.problems[:200],
        "problem_count": len(daemon.log.problems),
    }


def table(report: dict[str, Any]) -> str:
    """The per-round Markdown table."""
    lines = [
        "| round | kind | checks | outcomes | wrong | 304s / conditional / requests "
        "| RSS end MB | RSS max MB | CPU s | CPU ms/check | net of scrapes | wall s |",
        "|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rounds"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        wrong = ", ".join(f"{k} {len(v)}" for k, v in r["wrong"].items()) or "none"
        got = r.get("responses") or {}
        responses = "/".join(str(got.get(k, "-")) for k in ("not_modified", "conditional"))
        lines.append(
            f"| {r['round']} | {r['kind']} | {r['checks']:,} | {outcomes} | {wrong} "
            f"| {responses}/{got.get('requests', '-')} "
            f"| {r['rss_end_mb']} | {r['rss_max_mb']} | {r['cpu_s']} "
            f"| {r['cpu_ms_per_check']} | {r['cpu_ms_per_check_net']} | {r['wall_s']} |"
        )
    return "\n".join(lines)


def kind_table(report: dict[str, Any]) -> str:
    """CPU per check by round kind."""
    lines = [
        "| round kind | rounds | checks | 304s | CPU ms/check | net of scrapes |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, k in report["by_kind"].items():
        rounds = ", ".join(str(r) for r in k["rounds"])
        lines.append(
            f"| {KIND_LABELS[kind]} | {rounds} | {k['checks']:,} | {k['not_modified']:,} "
            f"| {k['cpu_ms_per_check']} | {k['cpu_ms_per_check_net']} |"
        )
    return "\n".join(lines)


def footer(report: dict[str, Any]) -> str:
    trend = report["memory"]
    return (
        f"\nRSS at round end, rounds 1-{len(report['rounds']) - 1}: slope "
        f"{trend['rss_end_slope_mb_per_round']} MB/round (second half "
        f"{trend['rss_end_slope_second_half']}), {trend['rss_end_first_mb']} -> "
        f"{trend['rss_end_last_mb']} MB; steady {trend['rss_steady_mb']} MB; peak "
        f"{trend['peak_mb']} MB. One /metrics scrape: {report['scrape_cpu_ms']} ms CPU. "
        f"SIGTERM: exit {report['exit_code']} after {report['stop_s']} s. "
        f"Log problems: {report['problem_count']}; alerts logged: {report['alerts_logged']}."
    )


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10, help="rounds after the baseline")
    parser.add_argument("--hosts", type=int, default=100, help="loopback addresses to serve on")
    parser.add_argument("--spread", type=float, default=None, help="default: 60 s, quick 20 s")
    parser.add_argument("--interval", type=float, default=None, help="default: 180 s, quick 60")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="200 watches, 3 rounds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    return Options(
        watches=200 if quick else args.watches,
        rounds=3 if quick else args.rounds,
        hosts=args.hosts,
        spread=args.spread or (20.0 if quick else 60.0),
        interval=args.interval or (60.0 if quick else 180.0),
        concurrency=args.concurrency,
        out=args.out or OUT / ("daemon-quick.json" if quick else "daemon.json"),
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse(argv)
    if options.spread >= options.interval:
        raise SystemExit("--spread must be shorter than --interval, or rounds overlap")
    report = soak(options)
    report["memory"] = memory_trend(report["rounds"])
    report["by_kind"] = by_kind(report["rounds"])
    options.out.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print(table(report))
    print()
    print(kind_table(report))
    print(footer(report))
    print(f"\nwritten: {options.out}")


if __name__ == "__main__":
    main()
