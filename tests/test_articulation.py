"""Articulation on the committed clips (virtual clock): TwilioRx measures, the judge decides.

Each clip is mixed with line noise (as the Twilio emulator does), preceded by 1 s of noise, and played
as caller frames while the AI is audible; the rx core's CallerLevel readings drive the judge.
"""
from __future__ import annotations

import base64
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from actors.cores.articulation import ArticulationMeter, ArticulationState, centroid_hz
from actors.cores.judge import BargeInJudgeCore, JudgeState
from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.ingress_messages import TwilioMediaIn
from actors.messages import CallerLevel, CutPlayout, DuckPlayout, PlayoutChanged, ResponseFinished
from actors.settings import AudioSettings, BargeInSettings
from gateway.cli.audio_check import check
from prompts.classifier import load_lexicon
from sim.audio import ULAW_TO_PCM, frames_of, load_clip, mix_noise, noise_frames

T0 = 100.0


def play(clip: str, noise: float, seed: int) -> tuple[list[CallerLevel], float | None, float | None, float]:
    """(readings, duck time, cut time, onset time) for one clip over the AI."""
    rng = np.random.default_rng(seed)
    lead = noise_frames(rng, noise, 50)
    speech = frames_of(mix_noise(b"".join(frames_of(load_clip(clip))), rng, noise))
    rx = TwilioRxCore(RxState("CA1"), audio=AudioSettings(echo_guard_enabled=False))
    judge = BargeInJudgeCore(JudgeState("CA1"), BargeInSettings(), load_lexicon("he"))
    judge.handle(ResponseFinished("greet", "g", 3000, T0 - 1), T0 - 1)
    for core in (rx, judge):
        core.handle(PlayoutChanged(True, "r1", T0), T0)
    readings: list[CallerLevel] = []
    duck = cut = None
    onset = T0 + 1.0
    for k, frame in enumerate(lead + speech):
        t = T0 + 0.02 * k
        for action in rx.handle(TwilioMediaIn(base64.b64encode(frame).decode(), k + 1, t), t):
            if isinstance(action, CallerLevel):
                readings.append(action)
                for decision in judge.handle(action, t):
                    duck = t if isinstance(decision, DuckPlayout) and duck is None else duck
                    cut = t if isinstance(decision, CutPlayout) and cut is None else cut
    return readings, duck, cut, onset


@pytest.mark.parametrize("noise", [60.0, 120.0])
def test_a_sustained_interruption_is_cut_within_600_ms_of_onset(noise: float) -> None:
    cuts = []
    for seed in range(5):
        _, _, cut, onset = play("interrupt", noise, seed)
        assert cut is not None  # ducked first, or cut at once when articulated before the energy rule's 240 ms
        cuts.append((cut - onset) * 1000)
    print(f"\nnoise {noise:.0f}: cut after onset {', '.join(f'{c:.0f}' for c in cuts)} ms")
    assert max(cuts) <= 600


@pytest.mark.parametrize("clip", ["hmm", "hum", "breath", "ken", "no", "filler"])
def test_steady_sounds_and_a_lone_word_are_never_articulated(clip: str) -> None:
    for seed in range(5):
        readings, _, cut, _ = play(clip, 120.0, seed)
        assert cut is None, f"{clip} seed {seed} was cut"
        assert max((r.syllables for r in readings), default=0) < 3 or \
            max(r.spectral_hz for r in readings) < BargeInSettings().articulation_spectral_hz


def test_a_long_hum_over_the_ai_is_ducked_but_never_cut() -> None:
    _, duck, cut, _ = play("hum", 120.0, 1)
    assert duck is not None and cut is None


def test_centroid_of_pure_tones() -> None:
    t = np.arange(160) / 8000
    for freq in (500.0, 1000.0, 2500.0):
        tone = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int32)
        from actors.cores.ulaw import encode_linear
        assert abs(centroid_hz(encode_linear(tone.astype(np.float64))) - freq) < 60


def test_a_run_ends_after_quiet_frames_and_counts_again_from_one() -> None:
    meter = ArticulationMeter(ArticulationState(), rise_db=6.0, end_quiet_frames=3)
    loud, dip = b"\x10" * 160, b"\x60" * 160
    levels = [(loud, 70.0), (dip, 55.0), (loud, 70.0), (dip, 55.0), (loud, 70.0)]
    reading = None
    for raw, level in levels:
        reading = meter.update(raw, level, 40.0, level > 49.0)
    assert reading is not None and reading.syllables == 3
    for _ in range(3):
        reading = meter.update(b"\xff" * 160, 40.0, 40.0, False)
    assert reading.syllables == 0 and not meter.s.in_run
    assert meter.update(loud, 70.0, 40.0, True).syllables == 1


def test_audio_check_shows_a_tuner_when_and_why(tmp_path: Path) -> None:
    """`kolbridge audio-check` on a 16 kHz WAV (resampled) and on raw μ-law: the verdicts over time."""
    rows, first = check(load_clip("interrupt"), BargeInSettings())
    assert first is not None and first <= 0.6 and any("ARTICULATED" in row for row in rows)
    assert check(load_clip("hum"), BargeInSettings())[1] is None
    pcm = ULAW_TO_PCM[np.frombuffer(load_clip("interrupt"), dtype=np.uint8)].astype(np.float64)
    wide = np.repeat(pcm, 2).astype("<i2")  # 16 kHz
    path = tmp_path / "caller.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(wide.tobytes())
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "audio-check", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "articulated from 0." in done.stdout
    strict = subprocess.run([sys.executable, "-m", "gateway.cli", "audio-check", str(path), "--syllables", "20",
                             "--spectral-hz", "2000"], capture_output=True, text=True, timeout=60)
    assert "never articulated" in strict.stdout
