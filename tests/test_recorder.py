"""Call recordings: the playout timeline (virtual clock), then a recorded call end to end."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from pathlib import Path

import msgspec
import numpy as np
import pytest

from gateway.config import FileConfig
from gateway.recorder import SILENCE, CallRecorder, CallTimeline, wait_for_writer
from sim.audio import ULAW_TO_PCM, clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import EmulatedCall, Step
from tests.stack import running_stack

T0 = 100.0


def frame(code: int) -> bytes:
    return bytes([code]) * 160


def test_ai_frames_sit_on_twilios_playout_timeline_and_a_clear_removes_what_never_played() -> None:
    tl = CallTimeline()
    for k in range(100):  # 2 s of caller audio
        tl.caller(frame(0x10), T0 + 0.02 * k)
    for k in range(5):  # a burst of 5 frames at 0.5 s: they play one after the other from 0.5 s
        tl.sent(frame(0x20 + k), T0 + 0.5)
    tl.sent(frame(0x30), T0 + 0.56)  # arrives while the burst plays: queued behind it (0.6 s)
    tl.cleared(T0 + 0.55)  # Twilio empties its buffer: frames from 0.56 on never played
    tl.sent(frame(0x40), T0 + 1.0)  # the next answer
    left, right = tl.take_rest()
    assert len(left) == len(right) == 16000
    assert left == frame(0x10) * 100
    assert right[:4000] == bytes([SILENCE]) * 4000
    assert right[4000:4400] == frame(0x20) + frame(0x21) + frame(0x22)[:80]  # cut 50 ms in: 2.5 frames played
    assert set(right[4400:8000]) == {SILENCE}
    assert right[8000:8160] == frame(0x40)


def test_handing_out_final_parts_adds_up_to_the_whole() -> None:
    rng = np.random.default_rng(2)
    events = []
    for k in range(500):
        events.append(("caller", T0 + 0.02 * k, rng.integers(0, 256, 160, dtype=np.uint8).tobytes()))
    for k in range(200):
        events.append(("sent", T0 + 1.0 + 0.02 * k + rng.uniform(-0.01, 0.01), rng.integers(0, 256, 160, dtype=np.uint8).tobytes()))
    events.append(("clear", T0 + 3.3, b""))
    events.sort(key=lambda e: e[1])
    whole, parts = CallTimeline(), CallTimeline()
    got_left, got_right = bytearray(), bytearray()
    for kind, at, raw in events:
        for tl in (whole, parts):
            if kind == "caller":
                tl.caller(raw, at)
            elif kind == "sent":
                tl.sent(raw, at)
            else:
                tl.cleared(at)
        if kind == "caller" and len(parts.left) >= 8000:
            left, right = parts.take_final(at)
            got_left += left
            got_right += right
    left, right = parts.take_rest()
    got_left += left
    got_right += right
    all_left, all_right = whole.take_rest()
    assert bytes(got_left) == all_left and bytes(got_right) == all_right


def test_an_unwritable_directory_is_logged_and_the_call_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    recorder = CallRecorder(tmp_path / "ok", "CA1")
    recorder.path = blocked / "CA1.wav"  # the directory vanished (a full or read-only disk behaves alike)
    for k in range(300):
        recorder.caller(frame(0x10), T0 + 0.02 * k)
    assert recorder.finish().result(10) is None and recorder.failed


@pytest.mark.realtime  # the writer thread is its own executor, which the virtual clock does not see
async def test_a_recorded_call_is_the_call_as_the_caller_heard_it(tmp_path: Path) -> None:
    question = clip_text("question")
    script = FakeScript(transcripts=[question, clip_text("no")],
                        responses=[(load_clip("greeting"), clip_text("greeting"))],
                        replies={question: (load_clip("long_answer"), clip_text("long_answer")),
                                 clip_text("no"): (load_clip("alternative"), clip_text("alternative"))})
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "q"),
             Step("wait_playing", 1.5), Step("say", load_clip("interrupt")[:16000], "cut"), Step("wait_turns", 3),
             Step("pause", 0.5), Step("hangup")]
    base = FileConfig()
    config = msgspec.structs.replace(
        base, audio=msgspec.structs.replace(base.audio, record=True),
        server=msgspec.structs.replace(base.server, recordings_dir=str(tmp_path / "rec")))
    call_sid = "CA" + "7" * 32
    async with running_stack(tmp_path, script, file_config=config) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", call_sid, steps,
                                                     wait_timeout_s=40).run(), 120)
        for _ in range(300):
            if not stack.app.calls:
                break
            await asyncio.sleep(0.01)
    await asyncio.to_thread(wait_for_writer)
    path = tmp_path / "rec" / f"{call_sid}.wav"
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    caller_sent = ULAW_TO_PCM[np.frombuffer(bytes(report.caller_audio), dtype=np.uint8)]
    assert np.array_equal(pcm[:len(caller_sent), 0], caller_sent)  # left: every caller frame, as received
    played = ULAW_TO_PCM[np.frombuffer(bytes(report.played_audio), dtype=np.uint8)].astype(np.float64)
    right = pcm[:, 1].astype(np.float64)
    # right: the AI as the phone played it — the same energy as the frames the emulator played (a frame
    # or two at the cut may differ), so not the flushed or cleared tail of the cut answer
    energy_ratio = float((right ** 2).sum() / (played ** 2).sum())
    assert len(report.clears) == 1 and 0.97 <= energy_ratio <= 1.03, energy_ratio
    out = tmp_path / "copy.wav"
    env_config = tmp_path / "config.toml"
    env_config.write_text(f'[server]\nrecordings_dir = "{tmp_path / "rec"}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "calls", "--config", str(env_config), "audio",
                           call_sid, "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == path.read_bytes()
    missing = subprocess.run([sys.executable, "-m", "gateway.cli", "calls", "--config", str(env_config), "audio",
                              "CA" + "0" * 32], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no recording" in missing.stderr
