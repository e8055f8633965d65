"""The JSON log formatter: one object per line, with a check's fields when given."""

from __future__ import annotations

import json
import logging

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
