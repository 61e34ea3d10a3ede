"""Log lines leave in one write each: workers sharing stderr must never interleave halves of lines."""
from __future__ import annotations

import json
import sys

import pytest
import structlog

from gateway.logs import configure_logging


class RecordingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_every_json_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = RecordingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info")
    structlog.get_logger("t").info("CALL_METRICS", all={f"counter_{i}": i for i in range(300)})  # a long line
    assert len(stream.writes) == 1 and stream.writes[0].endswith("\n")
    assert json.loads(stream.writes[0])["event"] == "CALL_METRICS"


def test_a_json_line_logged_with_exc_info_carries_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = RecordingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info")
    try:
        raise ConnectionRefusedError("admin port closed")
    except ConnectionRefusedError:
        structlog.get_logger("t").error("CONTROL_PLANE_START_FAILED", exc_info=True)
    line = json.loads(stream.writes[0])
    assert "Traceback" in line["exception"] and "ConnectionRefusedError: admin port closed" in line["exception"]
