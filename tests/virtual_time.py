"""Whole calls on a virtual clock: the in-process stack (gateway, actor tree, fake Realtime, Twilio
emulator, fake REST) over real loopback sockets, with the event loop's time fast-forwarded by looptime.

looptime moves the loop's clock to the next timer whenever no socket is ready, so a 20 s call runs in
the CPU time it costs. It waits in real time only while work it knows of runs outside the loop — the
futures of `loop.run_in_executor`. aiosqlite runs each statement on its own thread and answers through
`call_soon_threadsafe`, which looptime cannot see: without help, the clock would race ahead of a write in
flight (a 2 s drain deadline passes before the row is written). `track_aiosqlite` (installed for the
whole session by tests/conftest.py) makes each statement run while the loop's time compaction is on
(looptime's public `looptime_on`) visible as an executor future that ends when the statement does.

aiosqlite's `Connection._execute` is private: the range is pinned in pyproject.toml's test extras and
tests/test_virtual_time.py fails loudly when its shape changes.
"""
from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import aiosqlite.core

# The watchers wait on their own threads, never on the loop's default executor (6 threads on 2 cores), which
# asyncio.to_thread work in the same test needs; a watcher whose statement never ends gives up after WATCH_S.
WATCHERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sqlite-watch")
WATCH_S = 60.0


def _tracked(execute: Any) -> Any:
    @functools.wraps(execute)
    async def run(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not getattr(loop, "looptime_on", False):  # the wall clock (or not looptime's loop): nothing to show
            return await execute(self, fn, *args, **kwargs)
        done = threading.Event()
        waiter = loop.run_in_executor(WATCHERS, done.wait, WATCH_S)  # looptime sees this one
        try:
            return await execute(self, fn, *args, **kwargs)
        finally:
            done.set()
            await waiter
    run.__kolbridge_tracked__ = True  # type: ignore[attr-defined]
    return run


@contextmanager
def track_aiosqlite() -> Iterator[None]:
    original = aiosqlite.core.Connection._execute
    aiosqlite.core.Connection._execute = _tracked(original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiosqlite.core.Connection._execute = original  # type: ignore[method-assign]
