"""The command line: `monitor run | check | list | validate | preview | health | diff |
history | show | alerts | test-notify | verify | export | verify-export | prune | serve`.

Exit codes (documented in the README):
    0  success (for `check`: it ran, and at least one check did not fail)
    1  it could not run: invalid watchlist, unusable store, stale heartbeat
    2  usage error (unknown option, unknown watch id, unknown version)
    3  `check` ran, and every check failed (offline, or every page broken)
  141  the output's reader stopped reading (`| head`), as for any Unix tool

This module is the parser and the entry point; a command's code (`monitor.commands`)
and its libraries load only once the arguments name it, so `--help`, `--version`
and a usage error answer at once, and `health` (a container's probe, every minute)
loads the store alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from monitor import __version__, memory
from monitor.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_USAGE,
    ConfigError,
    MonitorError,
    UsageError,
)
from monitor.locations import default_db
from monitor.logs import setup


def commands() -> list[str]:
    """The commands the parser knows, in its order."""
    subcommands = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return list(subcommands.choices or ())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watch platform policy pages and alert when wording about a "
        "watched jurisdiction appears, disappears or changes.",
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_servers(sub)
    _add_check_and_list(sub)
    _add_inspection(sub)
    _add_explain(sub)

    diff = sub.add_parser("diff", help="show what changed between two versions of a watch")
    _watchlist_arg(diff)
    _db_arg(diff)
    diff.add_argument("watch_id", metavar="WATCH_ID")
    diff.add_argument(
        "--from",
        dest="from_version",
        type=int,
        metavar="VERSION",
        help="the older version (default: the one before --to)",
    )
    diff.add_argument(
        "--to",
        dest="to_version",
        type=int,
        metavar="VERSION",
        help="the newer version (default: the latest)",
    )
    diff.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="mark edits in colour (default: on a terminal)",
    )

    _json_arg(diff)

    hist = sub.add_parser("history", help="list the stored versions of a watch")
    _db_arg(hist)
    hist.add_argument("watch_id", metavar="WATCH_ID")
    _json_arg(hist)

    alerts = sub.add_parser("alerts", help="list recent alerts and their deliveries")
    _db_arg(alerts)
    which = alerts.add_mutually_exclusive_group()
    which.add_argument("--pending", action="store_true", help="only alerts not yet delivered")
    which.add_argument("--failed", action="store_true", help="only alerts given up on")
    alerts.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    alerts.add_argument("--show", action="store_true", help="print each alert's text")
    alerts.add_argument("--watch", metavar="WATCH_ID", help="only this watch's alerts")
    _json_arg(alerts)

    test = sub.add_parser("test-notify", help="send a test alert to a route's destinations")
    _watchlist_arg(test)
    test.add_argument("routes", nargs="*", metavar="ROUTE", help="routes (default: all)")

    val = sub.add_parser("validate", help="validate the watchlist; list every problem")
    _watchlist_arg(val)

    _add_store_upkeep(sub)
    return parser


def _add_servers(sub: Any) -> None:
    """`run` (the daemon) and `serve` (the dashboard alone)."""
    run = sub.add_parser("run", help="run the daemon: check every watch on its schedule")
    _watchlist_arg(run)
    _db_arg(run)
    _log_args(run)
    run.add_argument(
        "--concurrency", type=int, default=8, help="fetches at once, over all sites (default 8)"
    )
    run.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        default=os.environ.get("MONITOR_HTTP"),
        help="serve /healthz and Prometheus /metrics (off by default; host defaults to 127.0.0.1)",
    )
    run.add_argument(
        "--spread",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="start never-checked or overdue watches within this many seconds (default 60)",
    )
    run.add_argument(
        "--watch-file",
        action="store_true",
        help="reload the watchlist when its file changes (SIGHUP always reloads)",
    )

    serve = sub.add_parser(
        "serve", help="serve the read-only dashboard and Atom feeds of the store (no checks)"
    )
    _watchlist_arg(serve)
    _db_arg(serve)
    _log_args(serve)
    serve.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        default=os.environ.get("MONITOR_HTTP") or "127.0.0.1:8080",
        help="where to listen (default 127.0.0.1:8080; host defaults to 127.0.0.1); "
        "beyond 127.0.0.1 it needs $MONITOR_HTTP_TOKEN or --insecure-no-auth",
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="listen beyond this machine without a token (behind a proxy that asks for one)",
    )


def _add_store_upkeep(sub: Any) -> None:
    """`health`, `verify`, `export`/`verify-export` and `prune`."""
    health = sub.add_parser("health", help="exit 0 while a daemon's heartbeat is fresh")
    _db_arg(health)
    health.add_argument(
        "--max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="oldest heartbeat that counts as alive (default 120, as the daemon's /healthz)",
    )
    verify = sub.add_parser("verify", help="check the store for damage; exit 0 if sound")
    _db_arg(verify)
    _add_export(sub)
    prune = sub.add_parser("prune", help="remove versions and raw bodies past defaults.keep")
    _watchlist_arg(prune)
    _db_arg(prune)
    prune.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")


def _add_check_and_list(sub: Any) -> None:
    chk = sub.add_parser("check", help="check watches once now, print the outcomes, exit")
    _watchlist_arg(chk)
    _db_arg(chk)
    _log_args(chk)
    chk.add_argument("--json", action="store_true", help="print one JSON object per line")
    chk.add_argument(
        "--concurrency", type=int, default=8, help="fetches at once, over all sites (default 8)"
    )
    _selection_args(chk)
    chk.add_argument("watch_ids", nargs="*", metavar="WATCH_ID", help="only these watches")

    lst = sub.add_parser("list", help="list the watches, with their last check")
    _watchlist_arg(lst)
    _db_arg(lst)
    _selection_args(lst)
    lst.add_argument("--json", action="store_true", help="print one JSON object per line")


def _add_inspection(sub: Any) -> None:
    """`preview` and `show`: look at a page or a stored version without changing anything."""
    pre = sub.add_parser(
        "preview", help="fetch a page once and show its extracted blocks; store nothing"
    )
    _watchlist_arg(pre)
    pre.add_argument("target", metavar="URL|WATCH_ID", help="a page's URL or a watch's id")
    for flag, what in (("--select", "keep only"), ("--remove", "drop")):
        pre.add_argument(
            flag,
            action="append",
            default=[],
            metavar="CSS",
            help=f"{what} what this selector matches (repeatable; replaces the watch's own)",
        )
    pre.add_argument("--json", action="store_true", help="print one JSON object per line")

    show = sub.add_parser("show", help="print a stored version's text, or a raw body")
    _db_arg(show)
    show.add_argument("watch_id", nargs="?", metavar="WATCH_ID", help="the watch")
    show.add_argument(
        "version",
        nargs="?",
        type=int,
        metavar="VERSION",
        help="its version's number, as monitor history lists them (default: the latest)",
    )
    show.add_argument(
        "--raw", metavar="SHA256", help="write the raw body with this SHA-256 to stdout, as served"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object per line")


def _json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def _watchlist_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watchlist",
        metavar="PATH",
        default=None,
        help="watchlist file (default: $MONITOR_WATCHLIST, ./watchlist.yaml, or the built-in one)",
    )


def _selection_args(parser: argparse.ArgumentParser) -> None:
    """Pick watches by what the watchlist says of them; each option may repeat."""
    for flag, what in (
        ("--tag", "this tag"),
        ("--kind", "this kind"),
        ("--platform", "this platform (in any case)"),
        ("--jurisdiction", "this jurisdiction in `jurisdictions` or `about`"),
    ):
        parser.add_argument(
            flag,
            action="append",
            default=[],
            metavar="VALUE",
            help=f"only watches with {what}; repeat for any of several",
        )


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="database URL or SQLite path (default: $MONITOR_DB or ./monitor.db)",
    )


def _log_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("MONITOR_LOG_FORMAT", "text"),
        help="log lines for people (text) or for log collectors (json)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")


def _add_explain(sub: Any) -> None:
    exp = sub.add_parser(
        "explain", help="show which jurisdiction names a text contains, and why; store nothing"
    )
    _watchlist_arg(exp)
    exp.add_argument("text", nargs="+", metavar="TEXT", help="the text (words are joined)")
    exp.add_argument(
        "--jurisdiction",
        action="append",
        default=[],
        metavar="ID",
        help="look for this jurisdiction (repeatable; default: the watchlist's defaults)",
    )
    _json_arg(exp)


def _add_export(sub: Any) -> None:
    exp = sub.add_parser(
        "export", help="write a watch's snapshots and versions as a WARC file, with a manifest"
    )
    _watchlist_arg(exp)
    _db_arg(exp)
    exp.add_argument("watch_id", nargs="?", metavar="WATCH_ID", help="the watch (not with --all)")
    which = exp.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, metavar="N", help="only version N's snapshot")
    which.add_argument(
        "--from", dest="first", type=int, metavar="A", help="from version A (with --to B)"
    )
    which.add_argument(
        "--alert", type=int, metavar="ID", help="the change alert ID reported (its two versions)"
    )
    which.add_argument(
        "--all", action="store_true", help="every watch in the store, one archive each in --out"
    )
    exp.add_argument("--to", dest="last", type=int, metavar="B", help="through version B")
    exp.add_argument(
        "--since", metavar="DATE", help="only snapshots fetched since DATE (ISO 8601, UTC)"
    )
    exp.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="FILE.warc or FILE.warc.gz (a directory with --all); FILE.manifest.json beside it",
    )
    ver = sub.add_parser(
        "verify-export", help="check an exported WARC file: digests, manifest, re-extraction"
    )
    ver.add_argument("file", metavar="FILE", help="the .warc or .warc.gz file")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `monitor` script; returns the exit code.

    Output piped into a command that stops reading (`monitor alerts --show | head`)
    ends the command quietly with 141, as a Unix tool killed by SIGPIPE."""
    memory.cap_arenas()  # before any thread starts
    try:
        code = _command(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_PIPE
    return code


def _discard_stdout() -> None:
    """Send what is still buffered to /dev/null, so Python's own flush at exit is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _command(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(args, "log_format"):
        setup(args.log_format, debug=args.verbose)
    try:
        return int(_implementation(args.command)(args))
    except UsageError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"monitor: the watchlist has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FAILED
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _implementation(command: str) -> Callable[[argparse.Namespace], int]:
    if command == "health":
        return cmd_health
    from monitor.commands import IMPLEMENTATIONS

    return IMPLEMENTATIONS[command]


def cmd_health(args: argparse.Namespace) -> int:
    """Here, not in `monitor.commands`: a container's health probe runs it every minute,
    and it needs the store alone."""
    from monitor.schedule import HEALTH_MAX_AGE, heartbeat_age
    from monitor.store import Store

    max_age = HEALTH_MAX_AGE if args.max_age is None else args.max_age
    with Store.open(args.db or default_db(), create=False) as store:
        beat = store.last_heartbeat()
    if beat is None:
        print("unhealthy: no daemon heartbeat in the store", file=sys.stderr)
        return EXIT_FAILED
    age = heartbeat_age(beat, datetime.now(UTC))
    if age > max_age:
        print(f"unhealthy: last heartbeat {age:.0f}s ago", file=sys.stderr)
        return EXIT_FAILED
    print(f"healthy: last heartbeat {age:.0f}s ago")
    return EXIT_OK
