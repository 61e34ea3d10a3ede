"""Listening end to end (issue 9), over real websockets on 127.0.0.1 with the Twilio emulator:
fast confirmation of a sustained interruption, steady sounds over the AI, and a speakerphone echo.

In the echo tests the fake service's VAD threshold is 900 RMS and the greeting is 6 dB quieter: at -15 dB
our echo then stays under it (three-frame peaks: greeting ~620, long answer ~530), as a far-field server
VAD would mostly not hear it, and the fake's scripted transcripts stay the caller's. What is under test is
our own energy path (the judge's candidates); a transcript of echo, when the server does hear it, is
dropped by the judge (tests/test_judge.py). The caller speaks up (+6 dB) so that the fake's VAD at 900 does
not split a sentence at its pauses.
"""
from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from gateway.config import FileConfig
from sim.audio import clip_text, load_clip, scaled
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK

INTERRUPT = load_clip("interrupt")[:16000]  # its first 2 s: "רגע, לא, אני מתכוון למשהו…"
LOUD_QUESTION, LOUD_INTERRUPT = scaled(load_clip("question"), 6.0), scaled(INTERRUPT, 6.0)


def script(*later: str, vad_rms: float = 300.0, greeting_db: float = 0.0) -> FakeScript:
    question = clip_text("question")
    greeting = scaled(load_clip("greeting"), greeting_db) if greeting_db else load_clip("greeting")
    return FakeScript(transcripts=[question, *later], responses=[(greeting, clip_text("greeting"))],
                      replies={question: (load_clip("long_answer"), clip_text("long_answer")),
                               clip_text("interrupt"): (load_clip("long_answer"), clip_text("long_answer"))},
                      vad_rms=vad_rms)


def clear_after(report: CallReport, label: str) -> float | None:
    onset = report.said_at[label][0]
    return next((c - onset for c in report.clears if c >= onset), None)


async def test_a_sustained_interruption_is_cleared_within_600_ms_median_of_5(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question")]
    for i in range(5):
        steps += [Step("wait_playing", 1.0), Step("say", INTERRUPT, f"interrupt {i}")]
    steps += [Step("wait_playing", 0.5), Step("hangup")]
    fake_script = script(*[clip_text("interrupt")] * 5)
    async with running_stack(tmp_path, fake_script, file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "1" * 32, steps,
                                                     wait_timeout_s=40).run(), 150)
        metrics = stack.app.summaries[-1]["metrics"]
    latencies = [clear_after(report, f"interrupt {i}") for i in range(5)]
    assert all(x is not None for x in latencies), latencies
    ms = [round(x * 1000) for x in latencies if x is not None]
    print(f"\nclear after onset of a sustained interruption: {ms} ms, median {statistics.median(ms)}")
    assert statistics.median(ms) <= 600
    assert metrics["barge_in_by_articulation"] >= 4 and metrics["barge_in_events"] == 5


async def test_long_hums_and_fillers_over_the_ai_never_cut(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_playing", 1.0), Step("say", load_clip("hum"), "hum"), Step("pause", 1.2),
             Step("say", load_clip("hmm"), "elongated filler"), Step("wait_turns", 2), Step("pause", 0.5),
             Step("hangup")]
    async with running_stack(tmp_path, script("ממממ", "אממממ"), file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "2" * 32, steps,
                                                     wait_timeout_s=40).run(), 120)
        metrics = stack.app.summaries[-1]["metrics"]
    assert report.waits_timed_out == 0
    assert report.clears == []  # 1.8 s of hum and 1.9 s of "אממממ" over the AI: no cut
    assert len(report.turns) == 2  # the answer played unbroken; the fillers got no answer
    assert metrics["barge_in_candidates"] >= 1 and metrics["barge_in_events"] == 0  # ducked, then restored
    assert metrics["filler_only"] == 2


async def test_a_speakerphone_echo_over_a_whole_answer_makes_no_candidate(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", LOUD_QUESTION, "question"),
             Step("wait_turns", 2), Step("pause", 0.5), Step("hangup")]
    async with running_stack(tmp_path, script(vad_rms=900.0, greeting_db=-6.0), file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "3" * 32, steps,
                                                     wait_timeout_s=40, echo=(250.0, 15.0)).run(), 120)
        metrics = stack.app.summaries[-1]["metrics"]
    print(f"\necho 250 ms / -15 dB: estimated {metrics['echo_delay_ms']} ms / -{metrics['echo_loss_db']} dB, "
          f"vetoes {metrics['echo_vetoes']}, candidates {metrics['barge_in_candidates']}")
    assert report.waits_timed_out == 0 and report.clears == [] and len(report.turns) == 2
    assert metrics["barge_in_candidates"] == 0 and metrics["barge_in_events"] == 0
    assert metrics["echo_vetoes"] > 0 and 200 <= metrics["echo_delay_ms"] <= 340


async def test_a_real_interruption_over_the_echo_still_cuts(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", LOUD_QUESTION, "question"),
             Step("wait_playing", 2.5), Step("say", LOUD_INTERRUPT, "interrupt"), Step("wait_playing", 0.5),
             Step("hangup")]
    async with running_stack(tmp_path, script(clip_text("interrupt"), vad_rms=900.0, greeting_db=-6.0),
                             file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "4" * 32, steps,
                                                     wait_timeout_s=40, echo=(250.0, 15.0)).run(), 120)
        metrics = stack.app.summaries[-1]["metrics"]
    latency = clear_after(report, "interrupt")
    print(f"\ninterruption over the echo: clear {latency and round(latency * 1000)} ms after onset")
    assert latency is not None and latency <= 0.8
    assert metrics["barge_in_events"] == 1 and metrics["echo_vetoes"] > 0
