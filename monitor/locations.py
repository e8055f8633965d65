"""Where the command line finds the watchlist and the store when it is not told."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DEFAULT_DB = "sqlite:///monitor.db"


def default_watchlist() -> str:
    """`$MONITOR_WATCHLIST`, else ./watchlist.yaml, else the watchlist shipped inside."""
    if env := os.environ.get("MONITOR_WATCHLIST"):
        return env
    if Path("watchlist.yaml").exists():
        return "watchlist.yaml"
    return str(resources.files("monitor") / "data" / "watchlist.yaml")


def default_db() -> str:
    return os.environ.get("MONITOR_DB") or DEFAULT_DB
