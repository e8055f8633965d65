"""What each command of the command line does (`monitor.cli` parses the arguments and
loads this module for every command but `health`).

Commands that only read (list, history, diff, show, alerts, verify, health, export, serve)
open the store with `create=False`: pointed at the wrong --db they say so, and leave no
empty store behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor.app import check_context, deliverer, load_watchlist, preview
from monitor.browser import Renderer
from monitor.check import check_all
from monitor.config import Watch, Watchlist, hide_secrets
from monitor.deliver import Report
from monitor.errors import (
    EXIT_ALL_FAILED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ExtractError,
    FetchError,
    MonitorError,
    NotKept,
    StoreError,
    UsageError,
)
from monitor.fetch import make_client
from monitor.jurisdictions import Match, Trace, Watching
from monitor.limits import HostLimiter
from monitor.locations import default_db, default_watchlist
from monitor.messages import Message, note_message
from monitor.model import (
    Block,
    CheckResult,
    DeliveryStatus,
    ExtractRules,
    FetchRequest,
    Finding,
    Outcome,
    StoredFinding,
    StoredVersion,
    WatchState,
)
from monitor.notify import redact, send
from monitor.pipeline import Detection, Matchers, compare_versions, numbered, version_pair
from monitor.render import Style, render_diff
from monitor.schedule import next_due
from monitor.store import AlertRow, DeliveryRow, MissingStore, Store, redact_db

if TYPE_CHECKING:  # imported where used: `monitor check` never loads the server or WARC code
    from starlette.types import ASGIApp

    from monitor import export

log = logging.getLogger("monitor")


def _selected(watchlist: Watchlist, args: argparse.Namespace) -> list[Watch]:
    """The watches that match every given option (any of its values), in watchlist order."""
    wanted: dict[str, Callable[[Watch], set[str]]] = {
        "tag": lambda w: set(w.tags),
        "kind": lambda w: {w.kind},
        "platform": lambda w: {w.platform.casefold()},
        "jurisdiction": lambda w: {*w.jurisdictions, *([w.about] if w.about else [])},
    }
    picked = list(watchlist.watches)
    for option, values_of in wanted.items():
        values = {v.casefold() if option == "platform" else v for v in getattr(args, option)}
        if values:
            picked = [w for w in picked if values & values_of(w)]
    return picked


def _load(args: argparse.Namespace, *, sending: bool = True) -> Watchlist:
    """The watchlist; a command that sends nothing needs no route secret."""
    return load_watchlist(args.watchlist or default_watchlist(), sending=sending)


def _read_store(args: argparse.Namespace) -> Store:
    """The store of --db for a command that only reads: never creates one."""
    return Store.open(args.db or default_db(), create=False)


def cmd_validate(args: argparse.Namespace) -> int:
    watchlist = _load(args)
    platforms = {w.platform for w in watchlist.watches}
    print(
        f"{watchlist.source}: OK, {len(watchlist.watches)} watches over "
        f"{len(platforms)} platforms, {len(watchlist.routes)} routes"
    )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    watchlist = _load(args)
    known = {w.id for w in watchlist.watches}
    if unknown := [i for i in args.watch_ids if i not in known]:
        print(f"monitor: unknown watch id(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    named = set(args.watch_ids)
    watches = [
        w
        for w in _selected(watchlist, args)
        if (w.id in named if named else w.enabled)  # a disabled watch runs only when named
    ]
    for watch in watches:
        if not watch.enabled:
            print(
                f"monitor: {watch.id} is disabled (enabled: false); "
                "checking it because it was named",
                file=sys.stderr,
            )
    progress = _Progress(len(watches), sys.stderr, json_mode=args.json)

    async def go(store: Store) -> tuple[list[CheckResult], Report]:
        renderer = Renderer()  # launched only if a page needs a browser
        async with make_client() as client:
            limiter = HostLimiter(total=args.concurrency)
            ctx = check_context(watchlist, store, client, limiter, renderer=renderer)
            try:
                results = await check_all(watches, ctx, on_result=progress.show)
            finally:
                await renderer.close()
        return results, await deliverer(watchlist, store).run(everything=True)

    with Store.open(args.db or default_db()) as store:
        results, report = asyncio.run(go(store))
    progress.summary(results)
    if report.sent or report.retrying or report.failed:
        print(
            f"deliveries: {report.sent} sent, {report.retrying} to retry, {report.failed} given up",
            file=sys.stderr,
        )
    return check_exit(results)


def check_exit(results: Sequence[CheckResult]) -> int:
    """3 when there were checks and every one failed, so cron can notice; else 0."""
    if results and all(r.outcome is Outcome.FAILED for r in results):
        return EXIT_ALL_FAILED
    return EXIT_OK


class _Progress:
    """Prints each outcome as it arrives: JSON lines, or a line per watch on a terminal."""

    def __init__(self, total: int, err: TextIO, *, json_mode: bool) -> None:
        self.total, self.done, self.err, self.json_mode = total, 0, err, json_mode

    def show(self, result: CheckResult) -> None:
        self.done += 1
        if self.json_mode:
            for line in [result.to_json(), *result.finding_lines()]:
                print(json.dumps(line, ensure_ascii=False), flush=True)
            return
        why = f"  {result.failure}: {result.message}" if result.failure else ""
        print(f"[{self.done}/{self.total}] {result.watch}: {result.outcome.value}{why}", flush=True)
        for finding in result.findings:
            print(f"    {finding_line(finding)}", flush=True)

    def summary(self, results: Sequence[CheckResult]) -> None:
        counts = Counter(r.outcome.value for r in results)
        order = ("new", "unchanged", "changed", "not_modified", "failed")
        line = ", ".join(f"{counts.get(o, 0)} {o.replace('_', ' ')}" for o in order)
        print(
            f"checked {len(results)} watches: {line}",
            file=self.err if self.json_mode else sys.stdout,
        )


def finding_line(finding: Finding) -> str:
    """One line a person can read: `HK sentence_removed: "…"`."""
    change = finding.change
    text = (
        (change.after if change and change.after is not None else change.before) if change else ""
    )
    terms = ", ".join(finding.terms)
    detail = f' "{_short(text or "")}"' if text else (f" ({terms})" if terms else "")
    return f"{finding.jurisdiction} {finding.kind}:{detail}"


def _short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon, Settings, run
    from monitor.metrics import parse_address

    path = args.watchlist or default_watchlist()
    watchlist = load_watchlist(path)
    try:
        http = parse_address(args.http) if args.http else None
    except ValueError as exc:
        print(f"monitor: --http: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings(
        concurrency=args.concurrency,
        first_run_spread=args.spread,
        http=http,
        http_token=os.environ.get("MONITOR_HTTP_TOKEN") or None,
        watch_file=5.0 if args.watch_file else 0.0,
    )
    with Store.open(args.db or default_db()) as store:
        daemon = Daemon(
            watchlist,
            store,
            reload=lambda: load_watchlist(path),
            settings=settings,
            mtime=lambda: Path(path).stat().st_mtime,
        )
        return run(daemon)


def cmd_serve(args: argparse.Namespace) -> int:
    """The dashboard alone, over a store it only reads, until SIGINT or SIGTERM."""
    from monitor import dashboard
    from monitor.metrics import parse_address

    try:
        host, port = parse_address(args.http)
    except ValueError as exc:
        print(f"monitor: --http: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = os.environ.get("MONITOR_HTTP_TOKEN") or None
    if not (token or args.insecure_no_auth or dashboard.is_loopback(host)):
        print(f"monitor: --http: {NEEDS_TOKEN}", file=sys.stderr)
        return EXIT_USAGE
    watchlist = _load(args, sending=False)
    with _read_store(args) as store:
        asyncio.run(_serve(host, port, dashboard.app(store, lambda: watchlist, token=token)))
    return EXIT_OK


NEEDS_TOKEN = (
    "beyond this machine the dashboard needs a token: set MONITOR_HTTP_TOKEN "
    "(or give --insecure-no-auth, e.g. behind a reverse proxy that asks for a login)"
)


async def _serve(host: str, port: int, pages: ASGIApp) -> None:
    from monitor.metrics import serve_asgi

    try:
        endpoint = await serve_asgi(host, port, pages)
    except OSError as exc:
        raise UsageError(f"--http: cannot listen on {host}:{port}: {exc.strerror}") from None
    shown = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    print(f"dashboard on http://{shown}:{endpoint.port}/ (Ctrl-C stops)", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, endpoint.close)
    await endpoint.wait_closed()


def cmd_verify(args: argparse.Namespace) -> int:
    with _read_store(args) as store:
        problems = store.verify()
        counts = {table: store.count(table) for table in ("bodies", "versions", "alerts")}
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"the store has {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_FAILED
    print("store sound: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove what is past the watchlist's `defaults.keep`; never what an alert cites."""
    keep = _load(args, sending=False).defaults.keep
    if keep.versions is None and keep.raw is None:
        print("defaults.keep keeps all versions and raw bodies: nothing to prune")
        return EXIT_OK
    now = datetime.now(UTC)
    with Store.open(args.db or default_db(), create=False) as store:
        pruned = store.prune(_ago(now, keep.versions), _ago(now, keep.raw), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {_count(pruned.versions, 'version')} ({_bytes(pruned.version_bytes)})")
    print(
        f"{verb} {_count(pruned.snapshots, 'snapshot')} and {_count(pruned.bodies, 'raw body')} "
        f"({_bytes(pruned.body_bytes)} stored, {_bytes(pruned.raw_bytes)} as served)"
    )
    return EXIT_OK


def _ago(now: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else now - timedelta(seconds=seconds)


def _count(n: int, word: str) -> str:
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n} {word if n == 1 else plural}"


def _bytes(n: int) -> str:
    """A size for people: 812 B, 4.5 KB, 17.3 MB, 2.1 GB."""
    size, unit = float(n), "B"
    for bigger in ("KB", "MB", "GB"):
        if size < 1000:
            break
        size, unit = size / 1000, bigger
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def cmd_history(args: argparse.Namespace) -> int:
    with _read_store(args) as store:
        versions = _versions_of(store, args.watch_id)
        counts = {v.id: len(store.findings(version_id=v.id)) for v in versions}
    if args.json:
        for v in versions:
            line = {"type": "version", **_version_json(v), "findings": counts[v.id]}
            print(json.dumps(line, ensure_ascii=False))
        return EXIT_OK
    print("version  recorded (UTC)        kind        blocks  findings")
    for v in versions:
        at = v.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{v.number:>7}  {at}   {v.kind:<10}  {len(v.document):>6}  {counts[v.id]:>8}")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    watchlist = _load(args, sending=False)
    with _read_store(args) as store:
        old, new = _version_pair(store, args)
    found = compare_versions(watchlist, args.watch_id, old.document, new.document)
    if args.json:
        _print_diff_json(args.watch_id, old, new, found)
        return EXIT_OK
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    title = (
        f"{args.watch_id}: version {old.number} ({old.created_at:%Y-%m-%d %H:%M}) → "
        f"version {new.number} ({new.created_at:%Y-%m-%d %H:%M})"
    )
    sys.stdout.write(render_diff(title, found.changes, found.findings, Style(color)))
    return EXIT_OK


def _print_diff_json(
    watch_id: str, old: StoredVersion, new: StoredVersion, found: Detection
) -> None:
    """A `change` line per change, then a `finding` line per finding (as `check --json`)."""
    for change in found.changes:
        line: dict[str, object] = {
            "type": "change",
            "watch": watch_id,
            "from": old.number,
            "to": new.number,
            "change": str(change.kind),
            "block_kind": change.block_kind,
            "before": change.before,
            "after": change.after,
            "section": list(change.path),
        }
        if change.segments:
            line["segments"] = [list(s) for s in change.segments]
        print(json.dumps(line, ensure_ascii=False))
    as_checked = CheckResult(
        watch_id, Outcome.CHANGED, new.created_at, 0.0, version=new.number, findings=found.findings
    )
    for finding in as_checked.finding_lines():
        print(json.dumps(finding, ensure_ascii=False))


def _versions_of(store: Store, watch_id: str) -> list[StoredVersion]:
    """Every stored version of a watch, oldest first; a UsageError when there is none."""
    if store.state(watch_id).last_check_at is None:
        raise UsageError(f"unknown watch {watch_id!r}: the store has never checked it")
    versions = store.versions(watch_id)
    if not versions:
        raise UsageError(f"no versions stored for {watch_id!r} (every check of it failed)")
    return versions


def _version_pair(store: Store, args: argparse.Namespace) -> tuple[StoredVersion, StoredVersion]:
    """The (older, newer) versions `diff` compares: --from/--to, or the last two."""
    versions = _versions_of(store, args.watch_id)
    try:
        return version_pair(versions, args.watch_id, args.from_version, args.to_version)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from None


def cmd_alerts(args: argparse.Namespace) -> int:
    status = (
        DeliveryStatus.PENDING if args.pending else (DeliveryStatus.FAILED if args.failed else None)
    )
    with _read_store(args) as store:
        rows = store.alerts(status, limit=args.limit, watch_id=args.watch)
    if args.json:
        for row in rows:
            print(json.dumps(alert_json(row), ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("no alerts" + (f" with {status} deliveries" if status else ""))
    for row in rows:
        print(alert_line(row))
        for line in [delivery_line(d) for d in row.deliveries] or [NO_ROUTE]:
            print(f"    {line}")
        if args.show:
            print(Message.from_json(row.message).text)
    return EXIT_OK


def alert_json(row: AlertRow) -> dict[str, object]:
    """One alert for `alerts --json`: versions are [before, after], null when unknown."""
    return {
        "type": "alert",
        "id": row.id,
        "watch": row.watch_id,
        "kind": str(row.kind),
        "title": row.title,
        "created_at": row.created_at.isoformat(),
        "jurisdictions": list(row.jurisdictions),
        "versions": list(row.versions),
        "deliveries": [
            {"destination": d.label, "status": str(d.status), "attempts": d.attempts}
            for d in row.deliveries
        ],
    }


NO_ROUTE = "stored   (no route)"  # an alert with no delivery: it is kept in the store only


def alert_line(row: AlertRow) -> str:
    """`#12 2026-11-01 12:00 [change] Meta: …`: one alert, for `monitor alerts`."""
    return f"#{row.id} {row.created_at:%Y-%m-%d %H:%M} [{row.kind}] {row.title}"


def delivery_line(d: DeliveryRow) -> str:
    """`sent     desk mailto://…:***@… (attempts: 1)`, with the last error if any."""
    error = f" - {d.last_error}" if d.last_error else ""
    return f"{d.status:<8} {d.route} {d.label} (attempts: {d.attempts}){error}"


def cmd_preview(args: argparse.Namespace) -> int:
    watchlist = _load(args, sending=False)
    request, rules, matcher = _preview_setup(watchlist, args)
    try:
        document = asyncio.run(preview(request, rules))
    except (FetchError, ExtractError) as exc:
        hidden = [value for watch in watchlist.watches for value in watch.hidden]
        said = hide_secrets(f"{request.url}: {exc.kind}: {exc}", hidden)
        print(f"monitor: {said}", file=sys.stderr)
        return EXIT_FAILED
    for block in document:
        found = matcher.find(block.text)
        ids = list(dict.fromkeys(m.jurisdiction for m in found))
        terms = list(dict.fromkeys(m.term for m in found))
        if args.json:
            line = {"type": "block", **block.to_json(), "jurisdictions": ids, "terms": terms}
            print(json.dumps(line, ensure_ascii=False))
        else:
            print(_block_text(block, ids, terms))
    return EXIT_OK


def _preview_setup(
    watchlist: Watchlist, args: argparse.Namespace
) -> tuple[FetchRequest, ExtractRules, Watching]:
    """What `preview` fetches, how it extracts, and whose names it looks for: the watch's
    (--select/--remove replace its own), or for a URL the watchlist's defaults."""
    matchers = Matchers(watchlist)
    override = ExtractRules(tuple(args.select), tuple(args.remove))
    if "://" in args.target:
        defaults = watchlist.defaults
        headers = dict(defaults.headers)
        if defaults.user_agent and not any(k.lower() == "user-agent" for k in headers):
            headers["User-Agent"] = defaults.user_agent
        request = FetchRequest(
            args.target,
            tuple(headers.items()),
            max_bytes=defaults.max_size,
            deadline=defaults.timeout,
            network=defaults.network.policy(),
        )
        return request, override, matchers.for_ids(defaults.jurisdictions)
    watch = watchlist.watch(args.target)
    if watch is None:
        raise UsageError(f"unknown watch id {args.target!r} (give a URL, or see monitor list)")
    rules = watch.rules
    if args.select or args.remove:
        rules = replace(rules, select=override.select, remove=override.remove)
    request = FetchRequest(
        watch.url,
        watch.headers,
        max_bytes=watch.max_size,
        deadline=watch.timeout,
        format=rules.format,
        network=watch.network,
    )
    return request, rules, matchers.for_watch(watch)


def _block_text(block: Block, ids: Sequence[str], terms: Sequence[str]) -> str:
    """`[paragraph] Privacy > Requests` then the text, then the names found in it."""
    path = " > ".join(block.path) or "(top)"
    lines = [f"[{block.kind}] {path}", f"    {block.text}"]
    if ids:
        lines.append(f"    jurisdictions: {', '.join(ids)} ({', '.join(map(repr, terms))})")
    return "\n".join(lines)


def cmd_explain(args: argparse.Namespace) -> int:
    """Every name the matcher finds in TEXT with its jurisdictions and kind, and the
    exclusions and language labels that consumed a name, with the names they took."""
    watchlist = _load(args, sending=False)
    matchers = Matchers(watchlist)
    wanted = [j.upper() for j in args.jurisdiction] or list(watchlist.defaults.jurisdictions)
    unknown = [j for j in wanted if j not in matchers.jurisdictions]
    if unknown:
        raise UsageError(f"unknown jurisdiction {unknown[0]!r} (ISO 3166-1 codes, EU, or ids)")
    text = " ".join(args.text)
    trace = matchers.for_ids(wanted).trace(text)
    for line in _explained(trace, matchers):
        print(json.dumps(line, ensure_ascii=False) if args.json else _explain_text(line))
    if not trace.matches and not args.json:
        print(f"no name of {', '.join(wanted)} found")
    return EXIT_OK


def _explained(trace: Trace, matchers: Matchers) -> list[dict[str, Any]]:
    """One record per name found (several ids for a set phrase) and per skipped text."""
    spans: dict[tuple[int, int], list[Match]] = {}
    for match in trace.matches:
        spans.setdefault((match.start, match.end), []).append(match)
    lines: list[dict[str, Any]] = []
    for (start, end), matches in spans.items():
        form = matchers.jurisdictions[matches[0].jurisdiction].form(matches[0].term)
        lines.append(
            {"type": "name", "term": matches[0].term, "start": start, "end": end,
             "jurisdictions": [m.jurisdiction for m in matches], "kind": form.kind,
             "ambiguous": form.ambiguous}
        )  # fmt: skip
    for skip in trace.skips:
        lines.append(
            {"type": "skipped", "text": skip.text, "start": skip.start, "end": skip.end,
             "why": skip.why, "names": [[m.jurisdiction, m.term] for m in skip.names]}
        )  # fmt: skip
    return sorted(lines, key=lambda line: (line["start"], line["type"]))


def _explain_text(line: dict[str, Any]) -> str:
    where = f"{line['start']}-{line['end']}"
    if line["type"] == "name":
        kind = line["kind"] + (", ambiguous" if line["ambiguous"] else "")
        return f"{'+'.join(line['jurisdictions'])}  {line['term']!r} at {where}: {kind}"
    took = ", ".join(f"{jid} {term!r}" for jid, term in line["names"])
    article = "an" if line["why"] == "exclusion" else "a"
    return f"not a name: {line['text']!r} at {where} is {article} {line['why']}; it took {took}"


def cmd_show(args: argparse.Namespace) -> int:
    with _read_store(args) as store:
        if args.raw:
            if args.watch_id is not None:
                raise UsageError("give either WATCH_ID [VERSION] or --raw SHA256, not both")
            sys.stdout.flush()
            sys.stdout.buffer.write(_raw_body(store, args.raw))
            return EXIT_OK
        if args.watch_id is None:
            raise UsageError("show needs WATCH_ID [VERSION], or --raw SHA256")
        version = _numbered(_versions_of(store, args.watch_id), args.watch_id, args.version)
        sha = store.snapshot_sha(version.snapshot_id)
    if args.json:
        head = {"type": "version", **_version_json(version), "sha256": sha}
        print(json.dumps(head, ensure_ascii=False))
        for block in version.document:
            print(json.dumps({"type": "block", **block.to_json()}, ensure_ascii=False))
        return EXIT_OK
    print(
        f"version {version.number} of {version.watch_id} ({version.kind}, "
        f"{version.created_at:%Y-%m-%d %H:%M:%S} UTC), raw body SHA-256 {sha or '—'}"
    )
    for block in version.document:
        print(_block_text(block, (), ()))
    return EXIT_OK


def _numbered(versions: list[StoredVersion], watch_id: str, number: int | None) -> StoredVersion:
    """A watch's version by its number, or its latest."""
    try:
        return numbered(versions, watch_id, number)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from None


def _raw_body(store: Store, sha: str) -> bytes:
    try:
        return store.body(sha.lower())
    except NotKept as exc:
        raise UsageError(str(exc)) from None
    except StoreError:
        raise UsageError(f"no raw body with SHA-256 {sha} in the store") from None


def _version_json(version: StoredVersion) -> dict[str, object]:
    return {
        "version": version.number,
        "watch": version.watch_id,
        "kind": str(version.kind),
        "created_at": version.created_at.isoformat(),
        "blocks": len(version.document),
    }


def cmd_test_notify(args: argparse.Namespace) -> int:
    watchlist = _load(args)
    names = args.routes or list(watchlist.routes)
    if unknown := [n for n in names if n not in watchlist.routes]:
        print(f"monitor: unknown route(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    if not names:
        print("monitor: the watchlist has no routes; alerts go to the log and the store")
        return EXIT_OK
    text = "This is a test alert from monitor: this destination receives alerts."
    message = note_message("monitor: test alert", text)
    failures = 0
    for name in names:
        for url in watchlist.routes[name].urls:
            try:
                asyncio.run(send(url, message))
                print(f"sent     {name} {redact(url)}")
            except MonitorError as exc:
                failures += 1
                print(f"FAILED   {name} {exc}")
    return EXIT_FAILED if failures else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    watchlist = _load(args, sending=False)
    watches = _selected(watchlist, args)
    try:
        with _read_store(args) as store:
            states = {s.watch_id: s for s in store.states()}
            newest = store.newest_findings()
    except MissingStore:
        states, newest = {}, {}  # nothing checked yet: every watch is listed as never checked
    for watch in watches:
        state = states.get(watch.id, WatchState(watch.id))
        found = newest.get(watch.id)
        if args.json:
            print(json.dumps(_watch_line(watch, state, found), ensure_ascii=False))
        else:
            print(_watch_text(watch, state, found))
    return EXIT_OK


def _watch_text(
    watch: Watch, state: WatchState, found: tuple[StoredFinding, datetime] | None
) -> str:
    """One watch for `monitor list`: what it is, its last check, finding and next run."""
    last = f"{state.last_outcome or 'never checked'}"
    if state.last_check_at:
        last += f" {state.last_check_at:%Y-%m-%d %H:%M}"
    if not watch.enabled:
        last = f"disabled, {last}"
    if found is not None:
        finding, at = found
        last += (
            f", last finding {at:%Y-%m-%d %H:%M} "
            f"{finding.finding.jurisdiction} {finding.finding.kind}"
        )
    due = next_due(watch, state)
    if watch.enabled:
        last += f", next due {due:%Y-%m-%d %H:%M}" if due else ", due now"
    places = ",".join(watch.jurisdictions)
    return f"{watch.id:<40} {watch.platform:<12} {watch.kind:<20} {places:<10} {last}"


def _watch_line(
    watch: Watch, state: WatchState, found: tuple[StoredFinding, datetime] | None = None
) -> dict[str, object]:
    schedule = watch.schedule
    due = next_due(watch, state)
    last_finding = None
    if found is not None:
        finding, at = found
        last_finding = {
            "at": at.isoformat(),
            "jurisdiction": finding.finding.jurisdiction,
            "kind": str(finding.finding.kind),
        }
    return {
        "type": "watch",
        "id": watch.id,
        "platform": watch.platform,
        "name": watch.name,
        "url": watch.shown_url,
        "kind": watch.kind,
        "tags": list(watch.tags),
        "enabled": watch.enabled,
        "jurisdictions": list(watch.jurisdictions),
        "about": watch.about,
        "interval": schedule.interval,
        "cron": schedule.cron,
        "last_outcome": state.last_outcome.value if state.last_outcome else None,
        "last_check_at": state.last_check_at.isoformat() if state.last_check_at else None,
        "consecutive_failures": state.consecutive_failures,
        "last_error": state.last_error,
        "last_finding": last_finding,
        "next_due": due.isoformat() if due else None,
    }


# --- evidence export: `export` and `verify-export` -------------------------------------


def cmd_export(args: argparse.Namespace) -> int:

    selection = _export_selection(args)
    if args.all == (args.watch_id is not None):
        raise UsageError("export needs a WATCH_ID, or --all")
    watchlist = _load(args, sending=False)
    command = _export_command(args)
    with _read_store(args) as store:
        jobs = _export_jobs(store, watchlist, selection, args)
        for chosen, out in jobs:
            _export_one(store, watchlist.watch(chosen.watch_id), chosen, out, command)
    return EXIT_OK


def _export_jobs(
    store: Store, watchlist: Watchlist, selection: export.Selection, args: argparse.Namespace
) -> list[tuple[export.Plan, Path]]:
    """What to write where, all checked before anything is written. With --all, a watch
    with nothing stored (or nothing since --since) is skipped, and said so."""
    from monitor import export

    if args.all:
        jobs = []
        for state in sorted(store.states(), key=lambda s: s.watch_id):
            try:
                chosen = export.plan(store, state.watch_id, selection)
            except export.NotStored as exc:
                print(f"monitor: skipped: {exc}", file=sys.stderr)
                continue
            jobs.append((chosen, Path(args.out) / f"{state.watch_id}.warc.gz"))
    else:
        try:
            jobs = [(export.plan(store, args.watch_id, selection), Path(args.out))]
        except export.NotStored as exc:
            raise UsageError(str(exc)) from None
    for _, out in jobs:
        if out.exists() or export.manifest_path(out).exists():
            raise UsageError(f"{out} or its manifest exists already: evidence is never overwritten")
    if jobs and args.all:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    return jobs


def _export_one(
    store: Store, watch: Watch | None, chosen: export.Plan, out: Path, command: str
) -> None:
    from monitor import export

    if watch is None:
        print(
            f"monitor: {chosen.watch_id} is not in the watchlist: no request records, and its "
            "versions' rules are not known",
            file=sys.stderr,
        )
    try:
        done = export.export(store, chosen, watch, out, command=command)
    except OSError as exc:
        raise MonitorError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(
        f"{done.path}: {done.records} records ({done.snapshots} snapshots, {done.versions} "
        f"versions), {done.size} bytes, SHA-256 {done.sha256}; manifest {done.manifest}"
    )


def _export_selection(args: argparse.Namespace) -> export.Selection:
    from monitor import export

    if args.last is not None and args.first is None:
        raise UsageError("--to B needs --from A")
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UsageError(f"--since: not an ISO 8601 date: {args.since!r}") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    return export.Selection(args.version, args.first, args.last, since, args.alert)


def _export_command(args: argparse.Namespace) -> str:
    """The command that produced an export, as it could be run again (no secret in it)."""
    words = ["monitor", "export", *([args.watch_id] if args.watch_id else [])]
    options = {
        "--watchlist": args.watchlist,
        "--db": redact_db(args.db) if args.db else None,
        "--version": args.version,
        "--from": args.first,
        "--to": args.last,
        "--alert": args.alert,
        "--since": args.since,
        "--out": args.out,
    }
    words += [w for k, v in options.items() if v is not None for w in (k, str(v))]
    return shlex.join([*words, *(["--all"] if args.all else [])])


def cmd_verify_export(args: argparse.Namespace) -> int:
    from monitor import export

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no file {path}")
    verdict = export.verify(path)
    for note in verdict.notes:
        print(f"note: {note}")
    for problem in verdict.problems:
        print(problem, file=sys.stderr)
    if verdict.problems:
        print(f"{path}: {len(verdict.problems)} problem(s)", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{path}: sound: {verdict.records} records, every digest checked; "
        f"{verdict.reextracted} of {verdict.versions} versions re-extracted from their raw body"
    )
    return EXIT_OK


IMPLEMENTATIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "preview": cmd_preview,
    "explain": cmd_explain,
    "show": cmd_show,
    "alerts": cmd_alerts,
    "test-notify": cmd_test_notify,
    "run": cmd_run,
    "check": cmd_check,
    "validate": cmd_validate,
    "diff": cmd_diff,
    "history": cmd_history,
    "verify": cmd_verify,
    "export": cmd_export,
    "verify-export": cmd_verify_export,
    "prune": cmd_prune,
    "serve": cmd_serve,
}
