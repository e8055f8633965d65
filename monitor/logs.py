"""Logging for people on a terminal, or JSON lines for log collectors.

Secrets never reach a log line: notification URLs are logged only through
`notify.redact`, and this module adds no request details of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Structured fields a log call may pass with `extra=` (a check's result in the daemon);
# the JSON formatter writes those present beside the message, the text one ignores them.
FIELDS = ("watch", "outcome", "failure", "elapsed", "version", "findings", "alerts")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the `FIELDS` a call
    passed with `extra=` (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data |= {key: record.__dict__[key] for key in FIELDS if key in record.__dict__}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup(fmt: str = "text", *, debug: bool = False) -> None:
    """Configure the root logger once, for the whole process, writing to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.set_name("monitor")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "monitor"]:
        root.removeHandler(old)  # set up once per process, even when main() runs again
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pdfminer warns about every repair it makes to a PDF (a missing MediaBox, a bad
    # xref entry); the check's outcome already says whether the PDF could be read.
    logging.getLogger("pdfminer").setLevel(logging.DEBUG if debug else logging.ERROR)
