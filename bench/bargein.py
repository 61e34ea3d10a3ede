"""Barge-in and answer-latency figures on the offline stack (fake Realtime service, Twilio emulator).

    python -m bench.bargein [--runs 3]

Prints, per run and as medians:
  clear latency after the confirming transcript  (transcript sent by the service → `clear` at the phone)
  clear latency after speech onset, sustained interruption (caller starts talking → `clear`)
  truncate error  (|audio_end_ms sent − ms of the cut item the phone actually played|)
  answer latency with and without the preemptive answer (speech_stopped → AI audio starts playing)
The fake service's transcript delay (300 ms) and first-audio delay (150 ms) are its script settings;
with the real service both are longer and the preemptive gain grows with them.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import msgspec

from gateway.cli.demo import demo_script, run_demo_call
from gateway.config import FileConfig, find_config, load_file_config
from gateway.logs import configure_logging
from sim.audio import load_clip
from sim.twilio_emulator import Step


def _first_play_after(timeline: list[tuple[float, str]], t0: float, after: float) -> float | None:
    for t, text in timeline:
        if text == "AI audio starts playing" and t0 + t > after:
            return t0 + t
    return None


async def demo_figures(cfg: FileConfig) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        report, _, fake = await run_demo_call(cfg, Path(tmp))
    conn = fake.connections[0]
    t0 = report.t0
    out: dict[str, float] = {}
    no_item = conn.speech[2]["item_id"]  # "לא" over the AI
    sent_at = next(t for t, kind, item in conn.sent
                   if kind == "conversation.item.input_audio_transcription.completed" and item == no_item)
    out["clear_after_transcript_ms"] = (t0 + report.clears[0] - sent_at) * 1000
    truncate = next(e for _, e in conn.events if e["type"] == "conversation.item.truncate")
    out["truncate_error_ms"] = abs(truncate["audio_end_ms"] - report.turns[1][2] * 20)
    lone = conn.speech[4]  # lone "לא" while the AI is silent
    play = _first_play_after(report.timeline, t0, lone["stopped_at"])
    out["answer_latency_ms"] = ((play or 0) - lone["stopped_at"]) * 1000
    question = conn.speech[0]
    play = _first_play_after(report.timeline, t0, question["stopped_at"])
    out["answer_latency_question_ms"] = ((play or 0) - question["stopped_at"]) * 1000
    return out


async def sustained_figures(cfg: FileConfig) -> dict[str, float]:
    steps = [Step("wait_turns", 1), Step("pause", 0.4), Step("say", load_clip("question"), "question"),
             Step("wait_playing", 1.5), Step("say", load_clip("question"), "talks over the AI"),
             Step("wait_turns", 3), Step("hangup")]
    script = demo_script()
    script.transcripts = script.transcripts[:1] + script.transcripts[:1]
    with tempfile.TemporaryDirectory() as tmp:
        report, _, fake = await run_demo_call(cfg, Path(tmp), steps=steps, script=script)
    onset = report.said_at["talks over the AI"][0]
    conn = fake.connections[0]
    truncate = next(e for _, e in conn.events if e["type"] == "conversation.item.truncate")
    return {"clear_after_onset_ms": (report.clears[0] - onset) * 1000,
            "truncate_error_sustained_ms": abs(truncate["audio_end_ms"] - report.turns[1][2] * 20)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning")
    base = load_file_config(find_config(None))
    off = msgspec.structs.replace(base, barge_in=msgspec.structs.replace(base.barge_in, preemptive_answer=False))
    on = msgspec.structs.replace(base, barge_in=msgspec.structs.replace(base.barge_in, preemptive_answer=True))
    rows: dict[str, list[float]] = {}
    for run in range(args.runs):
        figures = {**asyncio.run(demo_figures(on)), **asyncio.run(sustained_figures(on))}
        without = asyncio.run(demo_figures(off))
        figures["answer_latency_no_preempt_ms"] = without["answer_latency_ms"]
        figures["answer_latency_question_no_preempt_ms"] = without["answer_latency_question_ms"]
        print(f"run {run + 1}: " + ", ".join(f"{k}={v:.0f}" for k, v in figures.items()), flush=True)
        for k, v in figures.items():
            rows.setdefault(k, []).append(v)
    print("\nmedian over runs:")
    for k, values in rows.items():
        print(f"  {k:42s} {statistics.median(values):8.1f} ms   (min {min(values):.1f}, max {max(values):.1f})")


if __name__ == "__main__":
    main()
