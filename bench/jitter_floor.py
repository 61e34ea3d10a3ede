"""First audio after an answer's first delta, on virtual schedules: the jitter buffer against the
clairvoyant start and the causal bound (issue 22).

    python -m bench.jitter_floor [--calls 40] [--runs 3] [--seed 0]
    python -m bench.jitter_floor --cpu [--runs 5]   # the buffer's own CPU per delta and per tick

Each call: a 2 s greeting at 4× real time, then six 5 s answers 8 s apart, delivered on a schedule
(tests/pacing_sim.py drives the TxPacer core on a virtual clock: 20 ms ticks, a Twilio that plays what
it is sent). Every delivery is shifted by a random part of a tick, so the tick phase against its first
delta is uniform, as on a live box. The figures cover answers 2–6 (the first answer was learned from),
in ms after the answer's first delta arrived (tests/test_jitter.py, `compare`):

  ours          when the pacer sent the answer's first frame
  clairvoyant   the first tick from which no frame is late, every arrival known in advance
  causal        the first tick a rule knowing only the past can start at (causal_start): every delta still
                to come no worse than the call's earlier deliveries showed; floored at the clairvoyant
  causal +lead  the same, each delta in hand a tick before its frame is due, as ours keeps it (a delta
                arriving in the last tick before its frame leaves at its slot: a late tick is then a gap)
  causal missed answers on which the causal rule (no lead) would have run dry: worse than all before
  ran dry       answers 2–6 on which ours ran dry; underruns after the greeting: all six answers

Nothing here reads a clock: the figures are exact for the schedules and vary with the seeds only;
median (min–max) over the runs, each run its own seeds.
"""
from __future__ import annotations

import argparse
import statistics
import time

from actors.cores.jitter import JitterBuffer, JitterState
from tests.pacing_sim import chunked
from tests.test_jitter import ANSWER, SCHEDULES, Compared, Schedule, compare, p50

SCENARIOS: dict[str, Schedule] = SCHEDULES  # clean, ±10 ms, bursts, ±150 ms at 1× and 1.5×; a slowdown
COLUMNS = ["ours p50", "ours p90", "clairvoyant p50", "causal p50", "causal +lead p50", "ours − causal p50",
           "ours − causal +lead p50", "causal missed", "ran dry", "underruns after greeting"]


def run(schedule: Schedule, calls: int, seed: int) -> dict[str, float]:
    answers: list[Compared] = []
    underruns = 0
    for i in range(calls):
        compared, after_greeting = compare(schedule, seed * 100_000 + i)
        answers += compared
        underruns += after_greeting
    ours = sorted(a.ours for a in answers)
    return {"ours p50": p50(ours), "ours p90": ours[int(len(ours) * 0.9)],
            "clairvoyant p50": p50([a.clairvoyant for a in answers]), "causal p50": p50([a.causal for a in answers]),
            "causal +lead p50": p50([a.causal_lead for a in answers]),
            "ours − causal p50": p50([a.ours - a.causal for a in answers]),
            "ours − causal +lead p50": p50([a.ours - a.causal_lead for a in answers]),
            "causal missed": sum(a.causal_missed for a in answers), "ran dry": sum(a.ran_dry for a in answers),
            "underruns after greeting": underruns}


def cpu(responses: int = 2000) -> tuple[float, float]:
    """Process CPU of the buffer alone, µs per delta (`arrived`) and per waiting tick (`ready`): `responses`
    answers of a call delivered at 1× real time ± 10 ms, a `ready` every 20 ms until each starts."""
    deltas = [len(chunk) / 8 for chunk in chunked(ANSWER)]
    schedules = [SCHEDULES["1× ±10 ms"](0.0, k) for k in range(16)]
    buffer = JitterBuffer(JitterState(), 20, 40, 400, 300)
    started = time.process_time()
    for r in range(responses):
        arrivals, base = schedules[r % 16], 8.0 * r
        for audio_ms, at in zip(deltas, arrivals):
            buffer.arrived(f"r{r}", audio_ms, base + at)
    per_delta = (time.process_time() - started) / (responses * len(deltas)) * 1e6
    started, ticks = time.process_time(), 0
    for r in range(responses):
        t = 8.0 * (responses + r)
        buffer.arrived(f"s{r}", deltas[0], t)
        while not buffer.ready(f"s{r}", 80, False, t, False):
            t, ticks = t + 0.02, ticks + 1
        ticks += 1
    return per_delta, (time.process_time() - started) / ticks * 1e6


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def spread_f(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="the first run's seeds; run r uses seed + r")
    parser.add_argument("--cpu", action="store_true", help="time the buffer's own calls instead")
    args = parser.parse_args()
    if args.cpu:
        runs = [cpu() for _ in range(args.runs)]
        print(f"µs per delta (arrived): {spread_f([r[0] for r in runs])}; µs per waiting tick (ready, with the "
              f"start's arrived): {spread_f([r[1] for r in runs])} — median (min–max) of {args.runs} runs")
        return
    print(f"{args.calls} calls × 5 learned answers per run, {args.runs} runs; ms after the answer's first delta, "
          "median (min–max) over the runs\n")
    print("| delivery | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, schedule in SCENARIOS.items():
        rows = [run(schedule, args.calls, args.seed + r) for r in range(args.runs)]
        print(f"| {name} | " + " | ".join(spread([r[c] for r in rows]) for c in COLUMNS) + " |", flush=True)


if __name__ == "__main__":
    main()
