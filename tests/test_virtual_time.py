"""The virtual clock the whole-call tests run on (tests/virtual_time.py): it fast-forwards idle time, and
it does not run ahead of a database statement in flight. Fails loudly if aiosqlite's private
`Connection._execute`, which the clock's tracking wraps, changes shape."""
from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path

import aiosqlite
import aiosqlite.core
import pytest

from tests.conftest import VIRTUAL_CLOCK

pytestmark = VIRTUAL_CLOCK


def test_aiosqlite_still_runs_every_statement_through_execute() -> None:
    execute = aiosqlite.core.Connection._execute
    assert inspect.iscoroutinefunction(execute)
    assert list(inspect.signature(execute).parameters) == ["self", "fn", "args", "kwargs"]
    source = inspect.getsource(aiosqlite.core.Connection)
    for method in ("execute", "commit", "rollback", "executemany"):
        body = inspect.getsource(getattr(aiosqlite.core.Connection, method))
        assert "self._execute(" in body or "self._execute(" in source, method


async def test_idle_time_is_fast_forwarded() -> None:
    loop = asyncio.get_running_loop()
    real, virtual = time.monotonic(), loop.time()
    await asyncio.sleep(30.0)
    assert loop.time() - virtual == pytest.approx(30.0, abs=0.01)
    assert time.monotonic() - real < 1.0


async def test_the_clock_waits_for_a_statement_in_flight(tmp_path: Path) -> None:
    """A slow statement (~0.2 s of real work) races a 5 s timer: the statement must win, as it does in
    real time — without the tracking the clock jumps to the timer while the thread is still working."""
    assert getattr(aiosqlite.core.Connection._execute, "__kolbridge_tracked__", False)
    loop = asyncio.get_running_loop()
    async with aiosqlite.connect(tmp_path / "t.db") as db:
        slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) SELECT count(*) FROM n"
        started = time.monotonic()
        await (await db.execute(slow)).fetchall()
        work_s = time.monotonic() - started
        assert work_s > 0.02, work_s  # slow enough to matter
        timer = asyncio.create_task(asyncio.sleep(5.0))
        before = loop.time()
        rows = list(await (await db.execute(slow)).fetchall())
        elapsed = loop.time() - before
        assert not timer.done() and [tuple(row) for row in rows] == [(2000000,)]
        assert elapsed < 5.0 * 0.5, elapsed
        timer.cancel()
        # and without the tracking (the conftest fixture installed it for the session) the clock runs ahead
        tracked = aiosqlite.core.Connection._execute
        aiosqlite.core.Connection._execute = tracked.__wrapped__  # type: ignore[attr-defined,method-assign]
        try:
            timer = asyncio.create_task(asyncio.sleep(5.0))
            await (await db.execute(slow)).fetchall()
            assert timer.done(), "the clock waited without the tracking: tests/virtual_time.py may be unnecessary"
        finally:
            aiosqlite.core.Connection._execute = tracked  # type: ignore[method-assign]
