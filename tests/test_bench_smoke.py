"""A 5-call, 10-second smoke run of the capacity benchmark (the real sweep is too long for CI)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.calls import BEGIN, END, meets, report, run_one, table, write_section

# it measures (0 server underruns at 5 calls): beside the console's Chromium and serve processes the box
# is too loaded for that to mean anything, so scripts/test.sh runs it last, alone
pytestmark = pytest.mark.bench


def test_bench_smoke(tmp_path: Path) -> None:
    args = argparse.Namespace(duration=10.0, ramp=1.0, workers=1, rss_every=5.0, sweep="5", repeat=1,
                              jitter_sweep="", jitter_ms=150.0)
    rows = []
    for system in ("kolbridge", "baseline", "baseline-paced"):
        work = tmp_path / system
        work.mkdir()
        rows.append(run_one(system, 5, args, work))
    ours, base, paced = rows
    assert paced["calls_ok"] == 5 and paced["odd_sized"] == 0 and paced["frames_lost"] == 0  # 160-byte frames
    assert paced["gap_p50"] < 5.0  # on a 20 ms clock, unlike the bare relay (its gaps are whole deltas apart)
    assert ours["calls_ok"] == 5 and ours["errors"] == 0
    assert ours["frames_sent"] > 5 * 400 and ours["frames_reached"] == ours["frames_sent"]
    assert ours["odd_sized"] == 0 and ours["cpu_ms_per_call_s"] > 0 and ours["rss_samples"]
    assert base["calls_ok"] == 5 and base["odd_sized"] > 0  # the bare relay forwards whole deltas
    assert "| kolbridge | 5 |" in table(rows)
    assert ours["server_underruns"] == 0 and ours["frames_lost"] == 0 and ours["ai_audio_s"] > 5
    text = report(rows, args)
    assert "| kolbridge | 5 | 1.5× | 1 |" in text
    # whether this box met the target in a 10 s run depends on its load (CI shares the machine): the
    # verdict must agree with the row's own figures either way
    verdict = ("Largest K where every run met the target: **5**." if meets(ours)
               else "No K met the target in every run; first K that did not: 5.")
    assert verdict in text and f"| {'1/1' if meets(ours) else '0/1'} |" in text
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Tools\nkept\n")
    write_section(results, text)
    write_section(results, text)  # a re-run replaces its section, keeps the rest
    written = results.read_text()
    assert written.count(BEGIN) == 1 and written.count(END) == 1 and "## Tools\nkept" in written
