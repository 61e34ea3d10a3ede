"""The garbage collector's pauses, measured, and kept off the 20 ms clock where possible.

Python's cyclic collector stops the event loop; a full (generation 2) collection walks every tracked
object, and a worker carrying 100 calls tracks a few hundred thousand (actors, msgspec structs,
websocket state). A pause longer than the pacer's lead shows up as late ticks and, at the caller, as
a dry moment. So a serving worker (1) freezes what start-up allocated (`gc.freeze()`: modules,
configuration, tables — never collected again, never walked again) and (2) raises the generation-0
threshold so short-lived per-frame garbage, which reference counting already frees, triggers fewer
collections. Every collection's duration is measured (gc.callbacks) and reported with TICKER_STATS
and /healthz: `gc_pauses`, `gc_pause_max_ms`, `gc_full_pause_max_ms`.
"""
from __future__ import annotations

import gc
import time
from typing import Any

GEN0_THRESHOLD = 50_000  # default 700: at 100 calls the loop allocates that many containers in milliseconds


class GcWatch:
    def __init__(self) -> None:
        self.pauses = 0
        self.pause_max_ms = 0.0
        self.full_pause_max_ms = 0.0
        self.total_ms = 0.0
        self._started = 0.0
        self._threshold: tuple[int, int, int] | None = None

    def install(self, tune: bool = True) -> None:
        if tune:
            gc.collect()  # what start-up left unreachable goes now, not into the frozen generation
            gc.freeze()
            self._threshold = gc.get_threshold()
            gc.set_threshold(GEN0_THRESHOLD, self._threshold[1], self._threshold[2])
        gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """At shutdown (and between in-process test servers): the collector as it was."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            gc.unfreeze()
            self._threshold = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started) * 1000.0
        self.pauses += 1
        self.total_ms += pause_ms
        self.pause_max_ms = max(self.pause_max_ms, pause_ms)
        if info.get("generation") == 2:
            self.full_pause_max_ms = max(self.full_pause_max_ms, pause_ms)

    def summary(self) -> dict[str, float]:
        return {"gc_pauses": self.pauses, "gc_pause_max_ms": round(self.pause_max_ms, 3),
                "gc_full_pause_max_ms": round(self.full_pause_max_ms, 3), "gc_total_ms": round(self.total_ms, 1)}
