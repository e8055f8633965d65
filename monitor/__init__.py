"""monitor: an alerting monitor for platform policy pages.

It tells researchers, journalists and policy teams when wording about a watched
jurisdiction appears, disappears or changes on a platform's policy pages.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("monitor")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
