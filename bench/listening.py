"""CPU of listening while the AI talks: the echo guard and the articulation measure on vs off.

    python -m bench.listening [--calls 50] [--seconds 10]

N calls in one in-process actor engine (no sockets), every call with the AI talking the whole time
(a long response queued, a tick every 20 ms sending one frame) and a caller frame every 20 ms — line
noise (the usual case) or speech (the caller talking over the AI: every frame voiced, the worst case).
Four settings: both off, articulation only, echo guard only, both on (the default). Printed: process
CPU per call-second of AI speech, and the difference to both off. Run it alone (2-core box).
"""
from __future__ import annotations

import argparse
import base64
import logging
import time

import msgspec
import numpy as np
import structlog

from actors.ingress_messages import RtAudioDelta, RtResponseCreated, Tick, TwilioMediaIn
from actors.settings import AudioSettings, BargeInSettings, CallSettings
from bench.actor_path import NullSink
from gateway.runtime.engine import ActorEngine
from sim.audio import frames_of, load_clip, mix_noise, noise_frames

MODES = {"both off": (False, False), "articulation only": (True, False), "echo guard only": (False, True),
         "both on (default)": (True, True)}


def run(calls: int, seconds: float, caller: list[str], articulation: bool, echo: bool) -> float:
    engine = ActorEngine()
    ids = [f"CA{i}" for i in range(calls)]
    ai = load_clip("long_answer") * int(seconds / 10 + 2)
    for call_id in ids:
        engine.start_call(CallSettings(
            call_id=call_id, stream_sid="MZ1", business_id="biz", language="he", instructions="", greeting="",
            audio=AudioSettings(echo_guard_enabled=echo),
            barge_in=msgspec.structs.replace(BargeInSettings(), articulation_confirm=articulation)), NullSink(), 0.0)
        engine.tell(call_id, RtResponseCreated(f"r-{call_id}", 1.0))
        engine.tell(call_id, RtAudioDelta(f"r-{call_id}", "item", ai, 1.0))
    steps = int(seconds / 0.02)
    start = time.process_time()
    for k in range(steps):
        now = 2.0 + 0.02 * k
        for call_id in ids:
            engine.tell(call_id, TwilioMediaIn(caller[k % len(caller)], k + 1, now))
        engine.tell_all(Tick(now))
    return (time.process_time() - start) / (calls * seconds) * 1000  # ms of CPU per call-second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rng = np.random.default_rng(5)
    inputs = {
        "line noise": [base64.b64encode(f).decode() for f in noise_frames(rng, 120.0, 250)],
        "caller speaking over the AI": [base64.b64encode(f).decode() for f in
                                        frames_of(mix_noise(b"".join(frames_of(load_clip("question"))), rng, 120.0))],
    }
    print(f"{args.calls} calls, {args.seconds:g} s of AI speech each, best of {args.repeat}: "
          "process CPU ms per call-second")
    for label, caller in inputs.items():
        base = 0.0
        for mode, (articulation, echo) in MODES.items():
            best = min(run(args.calls, args.seconds, caller, articulation, echo) for _ in range(args.repeat))
            base = base or best
            print(f"  {label:28s} {mode:20s} {best:6.2f} ms  ({best - base:+.2f} vs both off)", flush=True)


if __name__ == "__main__":
    main()
