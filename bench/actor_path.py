"""CPU of the in-process actor path per message, N calls in one engine (no sockets, no event loop).

    python -m bench.actor_path [--calls 100] [--frames 200]

Caller frames (TwilioMediaIn down TwilioRx's lane), ticks to idle calls (nothing queued) and ticks
that send a frame to Twilio; the figures are process CPU per message and per call-second (50 caller
frames + 50 ticks, half of them sending).
"""
from __future__ import annotations

import argparse
import base64
import logging
import time
from typing import Any

import structlog

from actors.ingress_messages import RtAudioDelta, RtResponseCreated, Tick, TwilioMediaIn
from actors.settings import CallSettings
from gateway.runtime.engine import ActorEngine


class NullSink:
    """Takes whatever the actors hand out and drops it."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def per_message(start: float, end: float, count: int) -> float:
    return (end - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    engine = ActorEngine()
    calls = [f"CA{i}" for i in range(args.calls)]
    for call_id in calls:
        engine.start_call(CallSettings(call_id=call_id, stream_sid="MZ1", business_id="biz", language="he",
                                       instructions="", greeting=""), NullSink(), 0.0)
    payload = base64.b64encode(bytes(160)).decode()
    n = args.frames * args.calls
    t0 = time.process_time()
    for k in range(args.frames):
        for call_id in calls:
            engine.tell(call_id, TwilioMediaIn(payload, k + 1, 1 + 0.02 * k))
    t1 = time.process_time()
    for k in range(args.frames):
        engine.tell_all(Tick(5 + 0.02 * k))
    t2 = time.process_time()
    for i, call_id in enumerate(calls):
        engine.tell(call_id, RtResponseCreated(f"r{i}", 10.0))
        engine.tell(call_id, RtAudioDelta(f"r{i}", "item", bytes(160 * args.frames), 10.0))
    t3 = time.process_time()
    for k in range(args.frames):
        engine.tell_all(Tick(10.4 + 0.02 * k))
    t4 = time.process_time()
    frame_us, idle_us, sending_us = per_message(t0, t1, n), per_message(t1, t2, n), per_message(t3, t4, n)
    per_call_second = (50 * frame_us + 25 * idle_us + 25 * sending_us) / 1000
    print(f"{args.calls} calls: caller frame {frame_us:.1f} µs, idle tick {idle_us:.1f} µs, sending tick "
          f"{sending_us:.1f} µs → {per_call_second:.2f} ms CPU per call-second on the actor path")
    engine.shutdown()


if __name__ == "__main__":
    main()
