"""monitor: an alerting monitor for platform policy pages.

It tells researchers, journalists and policy teams when wording about a watched
jurisdiction appears, disappears or changes on a platform's policy pages.
"""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it from here (setuptools'
# `dynamic` version), so the installed metadata always agrees with it.
__version__ = "0.1.0"
