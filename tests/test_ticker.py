"""The worker's 20 ms clock: the pure deadline grid on a virtual clock, and the shell's two ways a tick
runs (the loop's timer, or an edge's poll() the moment its deadline has passed)."""
from __future__ import annotations

import asyncio

from actors.ingress_messages import Tick
from gateway.runtime.ticker import Ticker, TickGrid


def test_the_grid_never_shifts_and_skips_what_was_missed_entirely() -> None:
    grid = TickGrid(10.0, 0.02)
    assert grid.take(10.019) is None  # not due yet
    late, missed = grid.take(10.025) or (-1.0, -1)
    assert round(late, 6) == 0.005 and missed == 0
    assert round(grid.deadline, 6) == 10.04  # on the grid, not 20 ms after the late tick
    late, missed = grid.take(10.105) or (-1.0, -1)  # 10.04 was due; 10.06 and 10.08 and 10.10 passed too
    assert round(late, 6) == 0.065 and missed == 3
    assert round(grid.deadline, 6) == 10.12  # the next one after now: missed deadlines are never bunched
    assert grid.take(10.1199) is None


async def test_a_due_tick_runs_at_the_edges_poll_and_only_once() -> None:
    ticks: list[Tick] = []
    ticker = Ticker(ticks.append, period_s=3600.0)  # the timer never fires in this test
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)
    assert ticker.grid is not None
    ticker.poll()
    assert ticks == []  # not due: a compare, nothing else
    ticker.grid.deadline = asyncio.get_running_loop().time() - 0.004  # as if the loop had been busy
    ticker.poll()
    ticker.poll()
    assert len(ticks) == 1 and ticker.stats.polled == 1 and ticker.stats.ticks == 1
    assert 4.0 <= ticker.stats.late_ms[0] < 1000.0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    ticker.poll()  # stopped: nothing runs
    assert len(ticks) == 1


async def test_a_failing_tick_never_stops_the_clock_or_raises_into_the_edge() -> None:
    seen: list[Tick] = []
    second = asyncio.Event()

    def on_tick(tick: Tick) -> None:
        seen.append(tick)
        if len(seen) == 1:
            raise RuntimeError("an actor system in trouble")
        second.set()

    ticker = Ticker(on_tick, period_s=0.01)
    task = asyncio.create_task(ticker.run())
    await asyncio.wait_for(second.wait(), 5.0)  # the timer re-armed after the failure
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(seen) >= 2 and ticker.stats.polled == 0  # both by the timer
