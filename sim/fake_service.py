"""Run the fake Realtime service as its own process (benchmarks):

    python -m sim.fake_service --port 9100 --stats-out stats.json

It answers every caller turn with the long Hebrew answer clip, streamed 1.5× faster than real time
(`--speed`, `--jitter-ms`: real-world delivery, e.g. `--speed 1 --jitter-ms 150`),
and on SIGTERM/SIGINT writes per-connection statistics (frames appended and their arrival times,
truncations, response statuses) as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
from pathlib import Path

from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeRealtime, FakeScript


def bench_script(speed: float = 1.5, jitter_ms: float = 0.0, seed: int = 7) -> FakeScript:
    return FakeScript(transcripts=[clip_text("question"), "אממ", "לא", clip_text("question")] * 4,
                      responses=[(load_clip("greeting"), clip_text("greeting")),
                                 (load_clip("long_answer"), clip_text("long_answer"))],
                      speed=speed, jitter_s=jitter_ms / 1000.0, seed=seed)


def stats(fake: FakeRealtime) -> list[dict[str, object]]:
    out = []
    for conn in fake.connections:
        # one arrival time per caller frame (an append may carry several: the bridge batches them)
        appends = [t for t, e in conn.events if e.get("type") == "input_audio_buffer.append"
                   for _ in range(len(base64.b64decode(e.get("audio", ""))) // 160)]
        out.append({"first_frame": bytes(conn.appended[:160]).hex(), "frames": len(conn.appended) // 160,
                    "append_times": appends, "truncations": conn.truncations,
                    "responses": [r["status"] for r in conn.responses], "errors": len(conn.errors_sent)})
    return out


async def amain(port: int, stats_out: Path | None, script: FakeScript) -> None:
    fake = await FakeRealtime(script).start(port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake realtime listening on {fake.url}", flush=True)
    await stop.wait()
    if stats_out is not None:
        stats_out.write_text(json.dumps(stats(fake)))
    await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--stats-out", type=Path, default=None)
    parser.add_argument("--speed", type=float, default=1.5, help="assistant audio, × real time (0.9–3)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="each delta ± this much around its time")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(amain(args.port, args.stats_out, bench_script(args.speed, args.jitter_ms, args.seed)))


if __name__ == "__main__":
    main()
