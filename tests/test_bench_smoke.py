"""A 5-call, 10-second smoke run of the capacity benchmark (the real sweep is too long for CI)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.calls import run_one, table


def test_bench_smoke(tmp_path: Path) -> None:
    args = argparse.Namespace(duration=10.0, ramp=1.0, workers=1, rss_every=5.0)
    rows = []
    for system in ("kolbridge", "baseline"):
        work = tmp_path / system
        work.mkdir()
        rows.append(run_one(system, 5, args, work))
    ours, base = rows
    assert ours["calls_ok"] == 5 and ours["errors"] == 0
    assert ours["frames_sent"] > 5 * 400 and ours["frames_reached"] == ours["frames_sent"]
    assert ours["odd_sized"] == 0 and ours["cpu_ms_per_call_s"] > 0 and ours["rss_samples"]
    assert base["calls_ok"] == 5 and base["odd_sized"] > 0  # the bare relay forwards whole deltas
    assert "| kolbridge | 5 |" in table(rows)
