"""Load generator: K concurrent emulated Twilio calls against a bridge, in its own process.

    python -m sim.loadgen --url ws://127.0.0.1:8080/media-stream --calls 50 --duration 30 --out calls.json

Each call: greeting; a question; while the long answer plays, a filler ("אממ", must not cut) and then a
real "לא" (must cut); another question; hang up at `duration`. Calls start staggered over `--ramp`
seconds. Writes one JSON record per call (pacing, underruns, frames, send times, clears, marks). With
`--total`, each of the K lines places calls back to back until then (soak).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

from sim.audio import load_clip
from sim.twilio_emulator import EmulatedCall, Step


def call_steps(duration: float) -> list[Step]:
    return [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
            Step("wait_playing", 2.0), Step("say", load_clip("filler"), "filler"), Step("pause", 1.5),
            Step("say", load_clip("no"), "no"), Step("wait_turns", 3), Step("pause", 0.3),
            Step("say", load_clip("question"), "question2"), Step("pause", 3600.0), Step("hangup")]


async def one_call(url: str, business: str, index: int, delay: float, duration: float) -> dict[str, Any]:
    await asyncio.sleep(delay)
    call = EmulatedCall(url, business, f"CA{index:032d}", call_steps(duration), seed=index,
                        wait_timeout_s=duration, max_seconds=duration)
    started = time.monotonic()
    try:
        report = await call.run()
    except (OSError, Exception) as exc:  # noqa: BLE001 — one failed call must not lose the others' figures
        return {"index": index, "error": repr(exc)}
    return {"index": index, "seconds": time.monotonic() - started, "frames_sent": report.frames_sent,
            "first_frame": bytes(report.caller_audio[:160]).hex(), "send_times": report.send_times,
            "frames_received": report.frames_received, "underruns": report.underruns,
            "gaps_ms": report.run_gaps_ms, "clears": report.clears, "odd_sized": report.odd_sized_payloads,
            "turns": report.turns, "t0": report.t0, "said_at": report.said_at,
            "marks_echoed": report.marks_echoed, "waits_timed_out": report.waits_timed_out}


async def slot(args: argparse.Namespace, index: int) -> list[dict[str, Any]]:
    """One of K concurrent lines: calls of `duration` seconds, back to back, until `total` seconds."""
    results = [await one_call(args.url, args.business, index, index * args.ramp / max(1, args.calls), args.duration)]
    end = time.monotonic() + args.total - args.duration
    n = 1
    while args.total and time.monotonic() < end:
        results.append(await one_call(args.url, args.business, index + n * args.calls, 0.0, args.duration))
        n += 1
    return results


async def amain(args: argparse.Namespace) -> None:
    # each call hangs up `duration` seconds after it started, whatever the script reached
    per_slot = await asyncio.gather(*[slot(args, i) for i in range(args.calls)])
    results = [r for rs in per_slot for r in rs]
    Path(args.out).write_text(json.dumps({"calls": results,
                                          "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime
                                          + resource.getrusage(resource.RUSAGE_SELF).ru_stime}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--business", default="demo-garage")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--out", default="loadgen.json")
    parser.add_argument("--total", type=float, default=0.0, help="keep K calls up this long (soak)")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
