"""One 20 ms clock per worker: absolute deadlines t0 + k·period, one Tick told to every live call.

A sleep that oversleeps does not shift the grid (the next deadline stays on it); deadlines missed
entirely are skipped, never bunched. Lateness of every tick is kept for the status log and benchmarks.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import msgspec

from actors.ingress_messages import Tick


class TickerStats(msgspec.Struct):
    ticks: int = 0
    skipped: int = 0
    late_ms: list[float] = msgspec.field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.late_ms:
            return {"ticks": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "skipped": self.skipped}
        ordered = sorted(self.late_ms)
        n = len(ordered)
        return {"ticks": self.ticks, "p50_ms": round(ordered[n // 2], 3),
                "p99_ms": round(ordered[min(n - 1, int(n * 0.99))], 3), "max_ms": round(ordered[-1], 3),
                "skipped": self.skipped}


class Ticker:
    def __init__(self, on_tick: Callable[[Tick], None], period_s: float = 0.02, keep: int = 30_000) -> None:
        self.on_tick = on_tick
        self.period = period_s
        self.keep = keep
        self.stats = TickerStats()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        while True:
            k += 1
            deadline = t0 + k * self.period
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            late = now - deadline
            if late >= self.period:
                missed = int(late / self.period)
                self.stats.skipped += missed
                k += missed
            self.stats.ticks += 1
            if len(self.stats.late_ms) >= self.keep:
                del self.stats.late_ms[: self.keep // 2]
            self.stats.late_ms.append(max(0.0, late) * 1000.0)
            self.on_tick(Tick(now))
