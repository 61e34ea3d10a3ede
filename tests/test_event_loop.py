"""[server] event_loop: uvloop when asked and installed, the standard loop otherwise (logged either way)."""
from __future__ import annotations

import asyncio
import sys

import pytest
import structlog

from gateway.runtime import loop as event_loop


async def loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_runs_the_worker_when_asked() -> None:
    with structlog.testing.capture_logs() as logs:
        assert event_loop.run(loop_type(), "uvloop").startswith("uvloop")
    assert [e["loop"] for e in logs if e["event"] == "EVENT_LOOP"] == ["uvloop"]


def test_the_standard_loop_when_asked_or_when_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert event_loop.run(loop_type(), "asyncio").startswith("asyncio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with structlog.testing.capture_logs() as logs:
        assert event_loop.run(loop_type(), "uvloop").startswith("asyncio")
    warning = next(e for e in logs if e["event"] == "EVENT_LOOP")
    assert warning["log_level"] == "warning" and warning["wanted"] == "uvloop"
