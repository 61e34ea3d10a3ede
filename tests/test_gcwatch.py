"""The collector's pauses are measured, and a serving worker's collector is tuned and restored."""
from __future__ import annotations

import gc

from gateway.runtime.gcwatch import GEN0_THRESHOLD, GcWatch


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_pauses_are_counted_and_the_tuning_is_undone_at_uninstall() -> None:
    before = gc.get_threshold()
    watch = GcWatch()
    watch.install(tune=True)
    try:
        assert gc.get_threshold()[0] == GEN0_THRESHOLD and gc.get_freeze_count() > 0
        for _ in range(1000):
            Cycle()
        gc.collect()
        summary = watch.summary()
        assert summary["gc_pauses"] >= 1 and summary["gc_full_pause_max_ms"] > 0
        assert summary["gc_pause_max_ms"] >= summary["gc_full_pause_max_ms"]
    finally:
        watch.uninstall()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    pauses = watch.pauses
    gc.collect()
    assert watch.pauses == pauses  # no longer listening
