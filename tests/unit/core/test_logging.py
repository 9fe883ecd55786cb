"""One log format per console: JSON lines, or text lines on a terminal, MEDSERVE_LOG_JSON
deciding when set; uvicorn's colour-coded copy of each message is never written."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.logging import JsonFormatter, TextFormatter, wants_json
from core.settings import CommonSettings


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("setting", "tty", "expected"),
    [(None, True, False), (None, False, True), (True, True, True), (False, False, False)],
)
def test_the_format_follows_the_setting_or_the_terminal(monkeypatch, setting, tty, expected):
    monkeypatch.setattr("sys.stderr", Stream(tty))
    assert wants_json(CommonSettings(log_json=setting)) is expected


def test_uvicorns_colour_message_is_left_out() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started %d", (7,), None)
    record.color_message = "Started \x1b[36m%d\x1b[0m"
    record.models = ["echo"]
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "Started 7" and doc["models"] == ["echo"] and "color_message" not in doc
    text = TextFormatter().format(record)
    assert text.endswith("uvicorn.error: Started 7 models=['echo']") and "\x1b" not in text
