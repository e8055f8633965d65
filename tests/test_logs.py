"""The JSON log formatter: one object per line, with a check's fields when given."""

from __future__ import annotations

import json
import logging

from monitor import logs
from monitor.logs import JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("monitor.daemon", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_plain_line_carries_time_level_logger_and_message_only() -> None:
    data = json.loads(JsonFormatter().format(record("hello")))
    assert set(data) == {"time", "level", "logger", "message"}
    assert data["message"] == "hello" and data["level"] == "info"


def test_a_checks_fields_are_emitted_beside_the_message() -> None:
    fields = {
        "watch": "meta-hk",
        "outcome": "failed",
        "failure": "transient",
        "elapsed": 1.25,
        "findings": 0,
        "alerts": 0,
    }
    data = json.loads(JsonFormatter().format(record("meta-hk: failed", **fields)))
    assert data["message"] == "meta-hk: failed"
    assert {k: data[k] for k in fields} == fields
    assert "version" not in data


def test_fields_that_are_not_json_are_written_as_text() -> None:
    data = json.loads(JsonFormatter().format(record("x", watch="w", version=object())))
    assert data["watch"] == "w" and isinstance(data["version"], str)


def test_pdfminer_repairs_are_not_logged_unless_debugging() -> None:
    """pdfminer warns once per repair it makes to a PDF (a bad xref entry); the check's
    outcome says whether the PDF was read, so its warnings stay out of the log."""
    pdfminer = logging.getLogger("pdfminer.pdfdocument")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("text")
        assert not pdfminer.isEnabledFor(logging.WARNING)
        logs.setup("text", debug=True)
        assert pdfminer.isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.getLogger("pdfminer").setLevel(logging.NOTSET)
