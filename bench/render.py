"""Rendered checks: `monitor check` through headless Chromium, beside plain HTTP checks.

N JavaScript-only pages are served on several loopback addresses (127.0.0.2 ...), by
a threaded ``http.server`` in its own process: each page is an app shell whose
``<main>`` a script fills from ``/data/<i>.json`` (policy text from the real texts
``bench.corpus`` reads, 50-150 KB of it, and a sentence naming Hong Kong). The same
text is also served as plain HTML, written by the server. ``monitor check --json``
runs as a subprocess, on its own fresh store per mode, for each round:

    rendered  every watch `browser: always`, `wait_for: main p`, `jurisdictions: [HK]`
    plain     the same pages server-rendered, `browser: never`

Rounds: the first (every page ``new``), then unchanged (``unchanged``), then one where
the Hong Kong sentence of a seeded 20 % of the pages changes (exactly those
``changed``, each with an HK finding); more rounds alternate unchanged and changed.

Measured per round and mode: wall time; CPU time (user + system) of the monitor
process and all its descendants (Playwright's driver, Chromium and its renderers).
``os.wait4`` alone misses most of Chromium's: its browser process exits without
reaping its zygote, whose children are the renderers, so the harness makes itself a
child subreaper, reaps those orphans and reports the growth of its RUSAGE_CHILDREN
(``wait4_cpu_s`` and the per-process sums of ``/proc/PID/stat`` are kept beside it).
Every 0.2 s a thread samples the process tree: the peak RSS of monitor's own Python
process (``VmHWM``), and the peak of the Chromium processes' summed ``VmRSS`` (and
summed ``Pss``, which counts shared pages once). Results go to
``bench/out/render.json`` (``render-<pages>x<rounds>.json`` for other sizes) and a
Markdown table to stdout.

    .venv/bin/python -m bench.render [--pages 50] [--rounds 3] [--hosts 25]
"""

from __future__ import annotations

import argparse
import ctypes
import html
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_SEED, load_sources

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
WORK = OUT / "render"
PYTHON = ROOT / ".venv/bin/python"
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.2
MIN_TEXT, MAX_TEXT = 50_000, 150_000
SHARE = 0.2
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
MODES = ("rendered", "plain")
_TAG = re.compile(r"<[^>]+>")
_TYPE = re.compile(rb"--type=([\w-]+)")


# --- the pages (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page's text: its title and HTML blocks; the Hong Kong sentence goes at ``hk_at``."""

    index: int
    title: str
    blocks: tuple[str, ...]
    hk_at: int
    requests: int


def make_pages(count: int, seed: int) -> list[Page]:
    """``count`` pages of real policy text, 50-150 KB of text each, seeded."""
    sources = load_sources()
    pages = []
    for index in range(count):
        rng = random.Random(f"{seed}:render:{index}")
        blocks: list[str] = []
        target = rng.randint(MIN_TEXT, MAX_TEXT)
        chosen = rng.sample(sources, len(sources))
        for source in chosen:
            blocks += source.blocks
            if text_size(blocks) >= target:
                break
        blocks = _cut(blocks, target)
        title = f"{chosen[0].name.split('/')[0].replace('-', ' ').title()} {index}"
        pages.append(Page(index, title, tuple(blocks), len(blocks) // 2, rng.randint(5, 500)))
    return pages


def _cut(blocks: list[str], target: int) -> list[str]:
    kept, size = [], 0
    for block in blocks:
        if size >= target:
            break
        kept.append(block)
        size += text_size([block])
    return kept


def text_size(blocks: list[str] | tuple[str, ...]) -> int:
    """Bytes of text (UTF-8) in some HTML blocks, tags left out."""
    return sum(len(html.unescape(_TAG.sub("", b)).encode()) for b in blocks)


def changed_in(round_: int, count: int, seed: int) -> frozenset[int]:
    """The pages whose Hong Kong sentence ``round_`` edits: 20 % in every even round > 0."""
    if round_ == 0 or round_ % 2:
        return frozenset()
    rng = random.Random(f"{seed}:render:changed:{round_}")
    return frozenset(rng.sample(range(count), round(count * SHARE)))


def round_kind(round_: int) -> str:
    return "first" if round_ == 0 else "changed" if round_ % 2 == 0 else "unchanged"


def hk_sentence(page: Page, round_: int, seed: int, count: int) -> str:
    """The sentence naming Hong Kong; each changed round adds to its figure."""
    edits = sum(page.index in changed_in(r, count, seed) for r in range(1, round_ + 1))
    return (
        f"<p>In 2024 we received {page.requests + 7 * edits} requests for user data from "
        "authorities in Hong Kong, and produced some data in response to some of them.</p>"
    )


def page_blocks(page: Page, round_: int, seed: int, count: int) -> list[str]:
    blocks = list(page.blocks)
    blocks.insert(page.hk_at, hk_sentence(page, round_, seed, count))
    return [f"<h1>{html.escape(page.title)}</h1>", *blocks]


HEAD = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
    '</head><body><header><nav><a href="/">Home</a> <a href="/legal">Legal</a></nav></header>'
)
SCRIPT = (
    "<script>fetch('/data/{index}.json').then(function(r){{return r.json()}})"
    ".then(function(d){{document.getElementById('main').innerHTML=d.blocks.join('')}})"
    "</script>"
)


def app_shell(page: Page) -> bytes:
    """The JavaScript-only page: an empty <main>, filled by a script from the JSON."""
    head = HEAD.format(title=html.escape(page.title))
    noscript = "<noscript>You need to enable JavaScript to run this app.</noscript>"
    body = f'<main id="main"></main>{noscript}{SCRIPT.format(index=page.index)}</body></html>'
    return (head + body).encode()


def data_json(page: Page, round_: int, seed: int, count: int) -> bytes:
    blocks = page_blocks(page, round_, seed, count)
    return json.dumps({"title": page.title, "blocks": blocks}, ensure_ascii=False).encode()


def plain_html(page: Page, round_: int, seed: int, count: int) -> bytes:
    """The same text, server-rendered: no script."""
    main = "".join(page_blocks(page, round_, seed, count))
    head = HEAD.format(title=html.escape(page.title))
    return f'{head}<main id="main">{main}</main></body></html>'.encode()


def round_bodies(pages: list[Page], round_: int, seed: int) -> dict[str, tuple[bytes, str]]:
    """Every path of a round: body and content type."""
    count, bodies = len(pages), {}
    for page in pages:
        i = page.index
        bodies[f"/app/{i}.html"] = (app_shell(page), "text/html; charset=utf-8")
        bodies[f"/data/{i}.json"] = (data_json(page, round_, seed, count), "application/json")
        bodies[f"/plain/{i}.html"] = (plain_html(page, round_, seed, count), "text/html")
    return bodies


def watchlist(urls: list[str], mode: str) -> str:
    lines = ["defaults:", "  jurisdictions: [HK]", "  routes: []", "watches:"]
    for index, url in enumerate(urls):
        lines += [
            f"  - id: page-{index:04d}",
            "    platform: Bench",
            f"    name: Rendered benchmark page {index}",
            f"    url: {json.dumps(url)}",
        ]
        if mode == "rendered":
            lines += ["    browser: always", '    wait_for: "main p"']
        else:
            lines.append("    browser: never")
    return "\n".join(lines) + "\n"


# --- the server (its own process) ---------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        body, kind = self.server.state["bodies"].get(self.path, (b"not found", "text/plain"))
        self._send(200 if kind != "text/plain" else 404, body, kind)

    def do_POST(self) -> None:
        round_ = int(self.path.rsplit("/", 1)[1])
        state = self.server.state
        state["bodies"] = round_bodies(state["pages"], round_, state["seed"])
        self._send(200, b"ok", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    state: dict[str, Any]


def serve(pages: int, seed: int, hosts: int) -> None:
    """Serve round 0 on 127.0.0.2 ... until stdin closes; print the addresses."""
    state = {"pages": make_pages(pages, seed), "seed": seed}
    state["bodies"] = round_bodies(state["pages"], 0, seed)
    servers = [_Server((f"127.0.0.{2 + i}", 0), _Handler) for i in range(hosts)]
    for server in servers:
        server.state = state  # one dict: a round switch on any host switches them all
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps([f"{s.server_address[0]}:{s.server_address[1]}" for s in servers]))
    sys.stdout.flush()
    sys.stdin.read()


class Served:
    """The server process: its addresses, round switching, closing."""

    def __init__(self, pages: int, seed: int, hosts: int) -> None:
        command = [str(PYTHON), "-m", "bench.render", "--serve", "--pages", str(pages)]
        command += ["--seed", str(seed), "--hosts", str(hosts)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=child_env()
        )
        assert self.process.stdout is not None
        self.hosts: list[str] = json.loads(self.process.stdout.readline())

    def urls(self, mode: str, pages: int) -> list[str]:
        where = "app" if mode == "rendered" else "plain"
        return [f"http://{self.hosts[i % len(self.hosts)]}/{where}/{i}.html" for i in range(pages)]

    def set_round(self, round_: int) -> None:
        request = urllib.request.Request(f"http://{self.hosts[0]}/round/{round_}", method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(request, timeout=300).read()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


# --- running and sampling monitor -----------------------------------------------------


def child_env(snapshot: Path | None = None) -> dict[str, str]:
    """No proxies (only 127.x is contacted), Chromium found on PATH, the monitor snapshot."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("MONITOR_CHROMIUM", None)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    if snapshot:
        env["PYTHONPATH"] = str(snapshot)
    return env


def snapshot_monitor() -> dict[str, str]:
    """The monitor package at HEAD, so another engineer's edits do not mix in."""
    target = WORK / "monitor-snapshot"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    git = ["git", "-C", str(ROOT)]
    archive = subprocess.run([*git, "archive", "HEAD", "monitor"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"commit": head.stdout.strip(), "path": str(target)}


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, comm, utime + stime ticks) of every process now."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            after = stat[stat.rindex(")") + 2 :].split()
            table[int(entry.name)] = (int(after[1]), comm, int(after[11]) + int(after[12]))
    return table


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (status) and Pss (smaps_rollup) of a process, KiB; {} if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        lines += Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM", "Pss:")))
    return {key: int(value.split()[0]) for key, value in pairs}


@dataclass
class Sampler:
    """The process tree under ``root``, every 0.2 s: memory peaks and CPU by process.

    A process once seen stays in the tree when its parent dies (Chromium's zygote is
    reparented to the harness, a subreaper, when the browser process exits)."""

    root: int
    monitor_hwm_kb: int = 0
    chromium_peak_kb: int = 0
    chromium_pss_peak_kb: int = 0
    chromium_peak_procs: int = 0
    tree_peak_kb: int = 0
    ticks: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid -> (label, max)

    def sample(self) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        tree = {self.root} | (self.ticks.keys() & table.keys())
        frontier = list(tree)
        while frontier:
            kids = children.get(frontier.pop(), [])
            frontier += [k for k in kids if k not in tree]
            tree.update(kids)
        rss = pss = total = procs = 0
        for pid in tree & table.keys():
            _, comm, ticks = table[pid]
            known = self.ticks.get(pid, ("", 0))[0]  # a label sticks once it is Chromium's:
            label = known if ":" in known else _label(pid, comm, self.root)  # the wrapper execs
            self.ticks[pid] = (label, max(ticks, self.ticks.get(pid, ("", 0))[1]))
            memory = _memory(pid)
            total += memory.get("VmRSS", 0)
            if pid == self.root:
                self.monitor_hwm_kb = max(self.monitor_hwm_kb, memory.get("VmHWM", 0))
            elif label.startswith("chromium"):
                rss, pss, procs = (
                    rss + memory.get("VmRSS", 0),
                    pss + memory.get("Pss", 0),
                    procs + 1,
                )
        self.chromium_peak_kb = max(self.chromium_peak_kb, rss)
        self.chromium_pss_peak_kb = max(self.chromium_pss_peak_kb, pss)
        self.chromium_peak_procs = max(self.chromium_peak_procs, procs)
        self.tree_peak_kb = max(self.tree_peak_kb, total)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(SAMPLE_EVERY):
            self.sample()

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds last seen in /proc, by process kind (Chromium's by --type)."""
        kinds: dict[str, float] = {}
        for label, ticks in self.ticks.values():
            kinds[label] = kinds.get(label, 0.0) + ticks / TICK
        return {k: round(v, 2) for k, v in sorted(kinds.items())}


def _label(pid: int, comm: str, root: int) -> str:
    """monitor, chromium:<type> (browser, renderer, zygote, gpu-process ...), or comm.

    Chromium is told by its executable: some of its processes rename their main thread."""
    if pid == root:
        return "monitor"
    try:
        if "chromium" not in os.readlink(f"/proc/{pid}/exe"):
            return comm
        kind = _TYPE.search(Path(f"/proc/{pid}/cmdline").read_bytes())  # may be retitled
    except OSError:
        return comm
    return f"chromium:{kind[1].decode() if kind else 'browser'}"


@dataclass
class Run:
    """What one `monitor check` cost and printed."""

    mode: str
    round: int
    wall_s: float
    user_s: float  # the monitor process and every descendant (see ``run_check``)
    sys_s: float
    wait4_cpu_s: float  # what os.wait4 alone counts: not what Chromium leaves orphaned
    exit_code: int
    monitor_hwm_mb: float
    chromium_peak_mb: float
    chromium_pss_peak_mb: float
    chromium_peak_procs: int
    tree_peak_mb: float
    proc_cpu_s: dict[str, float]
    processes_seen: int
    outcomes: dict[str, str]  # watch -> outcome
    hk_findings: list[str]  # watches with an HK finding


def run_check(mode: str, round_: int, work: Path, snapshot: Path, server: int) -> Run:
    """One `monitor check --json` over every page, sampled while it runs.

    CPU: ``os.wait4`` counts the descendants each parent reaped, but Chromium's browser
    process exits without reaping its zygote (the parent of every renderer) and its
    utility process. The harness is a child subreaper, so those orphans come to it and
    are reaped here: the growth of RUSAGE_CHILDREN over the run is the CPU of the whole
    tree (the server, the harness's other child, is reaped only at the end).
    """
    command = [str(PYTHON), "-m", "monitor", "check", "--json"]
    command += ["--watchlist", str(work / f"{mode}.yaml"), "--db", str(work / f"{mode}.db")]
    log = work / f"{mode}.{round_}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=child_env(snapshot), cwd=work)
        sampler, stop = Sampler(child.pid), threading.Event()
        thread = threading.Thread(target=sampler.run, args=(stop,), daemon=True)
        thread.start()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    thread.join()
    reap_orphans(server)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Run(
        mode=mode,
        round=round_,
        wall_s=round(wall, 2),
        user_s=round(after.ru_utime - before.ru_utime, 2),
        sys_s=round(after.ru_stime - before.ru_stime, 2),
        wait4_cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
        exit_code=os.waitstatus_to_exitcode(status),
        monitor_hwm_mb=round(sampler.monitor_hwm_kb / 1024, 1),
        chromium_peak_mb=round(sampler.chromium_peak_kb / 1024, 1),
        chromium_pss_peak_mb=round(sampler.chromium_pss_peak_kb / 1024, 1),
        chromium_peak_procs=sampler.chromium_peak_procs,
        tree_peak_mb=round(sampler.tree_peak_kb / 1024, 1),
        proc_cpu_s=sampler.cpu_by_kind(),
        processes_seen=len(sampler.ticks),
        **_read_lines(log.with_suffix(".out")),
    )


def become_subreaper() -> None:
    """Orphaned descendants come to this process, not to init (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans(server: int, timeout: float = 30.0) -> None:
    """Wait for every child but the server: the orphans of the run that just ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        me = os.getpid()
        orphans = [p for p, (ppid, _, _) in _proc_table().items() if ppid == me and p != server]
        if not orphans:
            return
        for pid in orphans:
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    print(f"    orphans still running after {timeout:g}s", flush=True)


def _read_lines(path: Path) -> dict[str, Any]:
    outcomes, hk = {}, []
    for line in path.read_text("utf-8").splitlines():
        record = json.loads(line)
        if record["type"] == "check":
            outcomes[record["watch"]] = record["outcome"]
        elif record["type"] == "finding" and record.get("jurisdiction") == "HK":
            hk.append(record["watch"])
    return {"outcomes": outcomes, "hk_findings": sorted(set(hk))}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The read: serve the pages, run both modes on every round."""
    monitor = snapshot_monitor()
    work = WORK / f"pages-{args.pages}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    become_subreaper()
    server = Served(args.pages, args.seed, args.hosts)
    snapshot, runs = Path(monitor["path"]), []
    try:
        for mode in MODES:
            (work / f"{mode}.yaml").write_text(watchlist(server.urls(mode, args.pages), mode))
        for round_ in range(args.rounds):
            server.set_round(round_)
            for mode in MODES:
                print(f"[{time.strftime('%H:%M:%S')}] {mode} round {round_} ...", flush=True)
                runs.append(run_check(mode, round_, work, snapshot, server.process.pid))
                print(f"    {_progress(runs[-1])}", flush=True)
    finally:
        server.close()
    sizes = sorted(
        text_size(page_blocks(p, 0, args.seed, 1)) for p in make_pages(args.pages, args.seed)
    )
    return {
        "args": vars(args),
        "monitor": monitor,
        "hosts": server.hosts,
        "text_bytes": {"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]},
        "changed": {r: sorted(changed_in(r, args.pages, args.seed)) for r in range(args.rounds)},
        "runs": [asdict(r) for r in runs],
    }


def _progress(run: Run) -> str:
    cpu = run.user_s + run.sys_s
    proc = sum(run.proc_cpu_s.values())
    chromium = sum(v for k, v in run.proc_cpu_s.items() if k.startswith("chromium"))
    return (
        f"wall {run.wall_s}s cpu {cpu:.1f}s (wait4 alone {run.wait4_cpu_s}s; /proc {proc:.1f}s, "
        f"chromium {chromium:.1f}s: {run.proc_cpu_s}) exit {run.exit_code}"
    )


# --- the pure middle -------------------------------------------------------------------


def expected(round_: int, pages: int, changed: list[int]) -> dict[str, str]:
    kind = round_kind(round_)
    want = {f"page-{i:04d}": "new" if kind == "first" else "unchanged" for i in range(pages)}
    return want | {f"page-{i:04d}": "changed" for i in changed}


def wrong(run: dict[str, Any], want: dict[str, str]) -> dict[str, list[str]]:
    """Watches with the wrong outcome ('expected->found'), and changed ones without HK."""
    found: dict[str, list[str]] = {}
    for watch, outcome in want.items():
        got = run["outcomes"].get(watch, "missing")
        if got != outcome:
            found.setdefault(f"{outcome}->{got}", []).append(watch)
        elif outcome == "changed" and watch not in run["hk_findings"]:
            found.setdefault("changed without HK finding", []).append(watch)
    return found


def summarize(measured: dict[str, Any]) -> dict[str, Any]:
    """Per-run figures, per-page figures and wrong outcomes."""
    pages = measured["args"]["pages"]
    rows = []
    for run in measured["runs"]:
        want = expected(run["round"], pages, measured["changed"][run["round"]])
        cpu = run["user_s"] + run["sys_s"]
        rows.append(
            {
                "mode": run["mode"],
                "round": round_kind(run["round"]),
                "wall_s": run["wall_s"],
                "cpu_s": round(cpu, 2),
                "cpu_ms_per_page": round(cpu * 1000 / pages, 1),
                "wall_ms_per_page": round(run["wall_s"] * 1000 / pages, 1),
                "outcomes": _count(run["outcomes"].values()),
                "hk_findings": len(run["hk_findings"]),
                "wrong": wrong(run, want),
            }
        )
    return {**measured, "rows": rows, "per_page": _per_page(rows, measured["runs"])}


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _per_page(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each mode's per-page CPU and wall over all rounds, and its memory peaks."""
    out = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        raw = [r for r in runs if r["mode"] == mode]
        out[mode] = {
            "cpu_ms_per_page": round(statistics.mean(r["cpu_ms_per_page"] for r in mine), 1),
            "wall_ms_per_page": round(statistics.mean(r["wall_ms_per_page"] for r in mine), 1),
            "monitor_hwm_mb": max(r["monitor_hwm_mb"] for r in raw),
            "chromium_peak_mb": max(r["chromium_peak_mb"] for r in raw),
            "chromium_pss_peak_mb": max(r["chromium_pss_peak_mb"] for r in raw),
        }
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| mode | round | wall s | CPU s (user+sys, with descendants) | CPU ms/page "
        "| wall ms/page | monitor peak RSS MB | Chromium peak RSS MB, summed (PSS; processes) "
        "| outcomes | wrong |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row, run in zip(summary["rows"], summary["runs"], strict=True):
        outcomes = ", ".join(f"{v} {k}" for k, v in row["outcomes"].items())
        if row["round"] == "changed":
            outcomes += f" ({row['hk_findings']} with HK finding)"
        bad = ", ".join(f"{len(v)} {k}" for k, v in row["wrong"].items()) or "none"
        chromium = (
            f"{run['chromium_peak_mb']:.0f} ({run['chromium_pss_peak_mb']:.0f}; "
            f"{run['chromium_peak_procs']})"
        )
        lines.append(
            f"| {row['mode']} | {row['round']} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} "
            f"({run['user_s']:.1f}+{run['sys_s']:.1f}) | {row['cpu_ms_per_page']:.0f} | "
            f"{row['wall_ms_per_page']:.0f} | "
            f"{run['monitor_hwm_mb']:.0f} | {chromium if run['mode'] == 'rendered' else '-'} | "
            f"{outcomes} | {bad} |"
        )
    return "\n".join(lines)


# --- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=25, help="loopback addresses 127.0.0.2 ...")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.pages, args.seed, args.hosts)
        return
    summary = summarize(measure(args))
    summary["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    summary["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    OUT.mkdir(exist_ok=True)
    suffix = "" if args.pages == 50 and args.rounds == 3 else f"-{args.pages}x{args.rounds}"
    (OUT / f"render{suffix}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table(summary))
    print(f"\nper page, mean over rounds: {json.dumps(summary['per_page'])}")


if __name__ == "__main__":
    main()
