"""One 20 ms clock per worker: absolute deadlines t0 + k·period, one Tick told to every live call.

Theory of operation: the grid (`TickGrid`, pure) never shifts — a tick that runs late does not move
the next deadline, and deadlines missed entirely are skipped, never bunched. What decides how late a
tick runs is the event loop: a timer that falls due while the loop is running a batch of ready I/O
callbacks waits for the whole batch (with `asyncio.sleep` in a task, for a second batch too: the
timer only wakes the task, whose step runs on the loop's next turn). So the Ticker is a plain timer
callback (`loop.call_at`, no task), and the busy paths — every Twilio message and every Realtime event
before it is told to the actors — call `poll()`: a clock read and a compare, which runs the tick
there and then if its deadline has passed. A due tick then waits at most for the one callback in
progress instead of the batch. `poll()` is never called from inside an actor's handling (the edges
call it before they `tell`), so a tick never re-enters the actor system. Lateness of every tick is
kept for the status log and benchmarks.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import msgspec
import structlog

from actors.ingress_messages import Tick

log = structlog.get_logger("kolbridge.ticker")


class TickerStats(msgspec.Struct):
    ticks: int = 0
    skipped: int = 0
    polled: int = 0  # ticks run by an edge's poll() rather than the timer
    late_ms: list[float] = msgspec.field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.late_ms:
            return {"ticks": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "skipped": self.skipped, "polled": 0}
        ordered = sorted(self.late_ms)
        n = len(ordered)
        return {"ticks": self.ticks, "p50_ms": round(ordered[n // 2], 3),
                "p99_ms": round(ordered[min(n - 1, int(n * 0.99))], 3), "max_ms": round(ordered[-1], 3),
                "skipped": self.skipped, "polled": self.polled}


class TickGrid:
    """The deadlines t0 + k·period, k = 1, 2, …; pure (time is an argument)."""

    def __init__(self, t0: float, period: float) -> None:
        self.t0 = t0
        self.period = period
        self.k = 1
        self.deadline = t0 + period

    def take(self, now: float) -> tuple[float, int] | None:
        """If the current deadline has passed at `now`: (how late, deadlines skipped), and the grid moves
        to the next deadline after `now` on it; else None."""
        late = now - self.deadline
        if late < 0:
            return None
        missed = int(late / self.period)
        self.k += 1 + missed
        self.deadline = self.t0 + self.k * self.period
        return late, missed


class Ticker:
    def __init__(self, on_tick: Callable[[Tick], None], period_s: float = 0.02, keep: int = 30_000) -> None:
        self.on_tick = on_tick
        self.period = period_s
        self.keep = keep
        self.stats = TickerStats()
        self.grid: TickGrid | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._ticking = False

    async def run(self) -> None:
        """Tick until cancelled."""
        loop = self._loop = asyncio.get_running_loop()
        self.grid = TickGrid(loop.time(), self.period)
        self._handle = loop.call_at(self.grid.deadline, self._fire)
        try:
            await loop.create_future()  # never set: the timer does the work
        finally:
            if self._handle is not None:
                self._handle.cancel()
            self.grid = None

    def _fire(self) -> None:
        try:
            self.poll(timer=True)
        finally:
            if self.grid is not None and self._loop is not None:
                self._handle = self._loop.call_at(self.grid.deadline, self._fire)

    def poll(self, timer: bool = False) -> None:
        """Run the tick now if its deadline has passed (a clock read and a compare otherwise)."""
        grid, loop = self.grid, self._loop
        if grid is None or loop is None or self._ticking:
            return
        now = loop.time()
        taken = grid.take(now)
        if taken is None:
            return
        late, missed = taken
        stats = self.stats
        stats.skipped += missed
        stats.ticks += 1
        stats.polled += 0 if timer else 1
        if len(stats.late_ms) >= self.keep:
            del stats.late_ms[: self.keep // 2]
        stats.late_ms.append(late * 1000.0)
        self._ticking = True
        try:
            self.on_tick(Tick(now))
        except Exception:  # noqa: BLE001 — an edge's poll must never die of a tick; the next one comes
            log.exception("TICK_FAILED")
        finally:
            self._ticking = False
