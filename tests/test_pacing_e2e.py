"""Jittery delivery end to end: the fake service sends the AI's audio at real time with ±150 ms of
jitter per delta (and a stall); the caller's phone (emulator) counts every dry moment inside a turn."""
from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import FileConfig
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK

CALL = "CA" + "c" * 32


def clip(name: str) -> tuple[bytes, str]:
    return load_clip(name), clip_text(name)


async def jittery_call(tmp_path: Path, jitter_s: float = 0.0, stall_after_s: float | None = None,
                       stall_s: float = 0.0) -> tuple[CallReport, dict[str, int]]:
    question, no = clip_text("question"), "לא"
    script = FakeScript(transcripts=[question, no, question], responses=[clip("greeting")],
                        replies={question: clip("long_answer"), no: clip("alternative")}, speed=1.0,
                        jitter_s=jitter_s, stall_after_s=stall_after_s, stall_s=stall_s)
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "q1"),
             Step("wait_turns", 2), Step("pause", 0.3), Step("say", load_clip("no"), "no"),
             Step("wait_turns", 3), Step("pause", 0.3), Step("say", load_clip("question"), "q2"),
             Step("wait_turns", 4), Step("pause", 0.3), Step("hangup")]
    async with running_stack(tmp_path, script, file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps,
                                                     wait_timeout_s=40).run(), 120)
        metrics = stack.app.summaries[-1]["metrics"]
    assert report.waits_timed_out == 0 and len(report.turns) == 4
    return report, metrics


def underruns_after_greeting(report: CallReport) -> list[float]:
    greeting_end = report.turns[0][1]
    return [t for t, text in report.timeline if text.startswith("UNDERRUN") and t > greeting_end]


async def test_real_time_delivery_with_150ms_jitter_plays_every_answer_without_a_gap(tmp_path: Path) -> None:
    report, metrics = await jittery_call(tmp_path, jitter_s=0.150)
    print(f"\nJITTERY DELIVERY (real time ±150 ms): phone underruns {report.underruns} "
          f"(after the greeting: {len(underruns_after_greeting(report))}), pacer underruns {metrics['underruns']}, "
          f"jitter buffer need {metrics['jitter_need_ms']} ms, longest pre-roll wait {metrics['jitter_wait_ms_max']} ms")
    # the greeting (nothing learned yet) rides on preroll_initial_ms; the buffer learns during it: no gap anywhere
    assert report.underruns == 0 and metrics["underruns"] == 0


async def test_a_300ms_stall_is_heard_in_the_greeting_at_most_then_covered(tmp_path: Path) -> None:
    report, metrics = await jittery_call(tmp_path, stall_after_s=1.0, stall_s=0.3)
    print(f"\nSTALLED DELIVERY (300 ms once per response): phone underruns {report.underruns} "
          f"(after the greeting: {len(underruns_after_greeting(report))}), need {metrics['jitter_need_ms']} ms")
    assert underruns_after_greeting(report) == []  # a stall within the buffer's bound (400 ms − 40) is covered
