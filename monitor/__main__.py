"""`python -m monitor` runs the same command line as the `monitor` script."""

from __future__ import annotations

from monitor.cli import main

raise SystemExit(main())
