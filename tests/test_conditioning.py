"""Optional input conditioning (seed §2.3): a hum filter and a soft leveller, frame by frame.

Done when (issue 9): high-pass on — a 100 Hz hum down ≥ 20 dB, 1 kHz within 1 dB, no discontinuity at
frame joins; off — bytes identical.
"""
from __future__ import annotations

import base64

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import butter, sosfilt

from actors.cores.conditioning import ORDER, ConditionerState, InputConditioner
from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.cores.ulaw import ULAW_TO_LINEAR, encode_linear
from actors.ingress_messages import TwilioMediaIn
from actors.settings import AudioSettings
from actors.wire_messages import RtAppend, ToRealtime

RATE = 8000


def tone(freq: float, seconds: float, amplitude: float = 6000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.asarray(amplitude * np.sin(2 * np.pi * freq * t))


def frames(pcm: np.ndarray) -> list[bytes]:
    raw = encode_linear(pcm)
    return [raw[i:i + 160] for i in range(0, len(raw), 160)]


def through(conditioner: InputConditioner, chunks: list[bytes]) -> np.ndarray:
    out = []
    for chunk in chunks:
        result = conditioner.process(chunk)
        conditioner.commit(result)
        out.append(result.frame)
    return ULAW_TO_LINEAR[np.frombuffer(b"".join(out), dtype=np.uint8)].astype(np.float64)


def level_db(pcm: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(pcm ** 2) + 1e-9))


@pytest.mark.parametrize("cutoff", [150, 200])
def test_highpass_takes_a_100_hz_hum_down_20_db_and_keeps_1_khz(cutoff: int) -> None:
    settle = 4000  # the filter's start-up transient (0.5 s) is not the steady-state response
    hum_in = tone(100, 2.0)
    hum_out = through(InputConditioner(ConditionerState(), cutoff, False), frames(hum_in))
    voice_in = tone(1000, 2.0)
    voice_out = through(InputConditioner(ConditionerState(), cutoff, False), frames(voice_in))
    hum_drop = level_db(hum_in[settle:]) - level_db(hum_out[settle:])
    voice_change = level_db(voice_out[settle:]) - level_db(voice_in[settle:])
    print(f"\nhigh-pass {cutoff} Hz: 100 Hz down {hum_drop:.1f} dB, 1 kHz {voice_change:+.2f} dB")
    assert hum_drop >= 20.0
    assert abs(voice_change) <= 1.0


def test_frame_by_frame_equals_the_whole_call_filtered_at_once() -> None:
    """No discontinuity at frame joins: the carried state makes 160-sample steps identical to one pass."""
    rng = np.random.default_rng(4)
    pcm = tone(100, 1.0, 3000) + tone(700, 1.0, 3000) + rng.normal(0, 500, RATE)
    chunks = frames(pcm)
    streamed = through(InputConditioner(ConditionerState(), 180, False), chunks)
    decoded = ULAW_TO_LINEAR[np.frombuffer(b"".join(chunks), dtype=np.uint8)].astype(np.float64)
    sos = butter(ORDER, 180, btype="highpass", fs=RATE, output="sos")
    once = ULAW_TO_LINEAR[np.frombuffer(encode_linear(sosfilt(sos, decoded)), dtype=np.uint8)].astype(np.float64)
    assert np.array_equal(streamed, once)


def test_soft_normalize_lifts_a_whisper_gently_and_leaves_normal_speech_alone() -> None:
    whisper = tone(500, 4.0, 300.0)  # ~46.5 dB: over line noise, under the band (52-78 dB)
    out = through(InputConditioner(ConditionerState(), 0, True), frames(whisper))
    gain = level_db(out[-RATE:]) - level_db(whisper[-RATE:])
    assert 2.0 < gain <= 6.5  # up, never more than the 6 dB cap
    steps = np.abs(np.diff(out[:RATE]))
    # no click: no step between samples bigger than the (lifted) tone's own steepest slope, plus μ-law rounding
    assert steps.max() < 2 * np.pi * 500 / RATE * 300 * 2.0 + 16
    normal = tone(500, 3.0, 3000.0)
    kept = through(InputConditioner(ConditionerState(), 0, True), frames(normal))
    assert abs(level_db(kept) - level_db(normal)) < 0.5


def test_off_forwards_every_frame_byte_for_byte() -> None:
    rx = TwilioRxCore(RxState("CA1"), audio=AudioSettings())
    rng = np.random.default_rng(1)
    for k in range(200):
        payload = base64.b64encode(rng.integers(0, 256, 160, dtype=np.uint8).tobytes()).decode()
        out = rx.handle(TwilioMediaIn(payload, k + 1, 1.0 + k * 0.02), 1.0 + k * 0.02)
        assert ToRealtime("CA1", RtAppend(payload)) in out
    assert rx.counters()["frames_conditioned"] == 0


def test_on_forwards_every_frame_conditioned_none_dropped() -> None:
    rx = TwilioRxCore(RxState("CA1"), audio=AudioSettings(highpass_hz=180))
    chunks = frames(tone(100, 1.0) + tone(1000, 1.0, 2000))
    sent = []
    for k, chunk in enumerate(chunks):
        out = rx.handle(TwilioMediaIn(base64.b64encode(chunk).decode(), k + 1, 1.0 + k * 0.02), 1.0 + k * 0.02)
        sent += [base64.b64decode(a.event.audio) for a in out if isinstance(a, ToRealtime) and isinstance(a.event, RtAppend)]
    counters = rx.counters()
    assert len(sent) == len(chunks) == counters["frames_forwarded"] == counters["frames_conditioned"]
    assert all(len(frame) == 160 for frame in sent) and sent != chunks


def test_settings_refuse_a_cut_inside_the_telephone_band() -> None:
    for bad in (50, 120, 149, 201, 300):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"highpass_hz": bad}, AudioSettings)
    assert msgspec.convert({"highpass_hz": 150}, AudioSettings).highpass_hz == 150


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=160, max_size=160), min_size=1, max_size=20), st.sampled_from([0, 150, 200]),
       st.booleans())
def test_any_frame_in_gives_exactly_one_frame_out(chunks: list[bytes], cutoff: int, level: bool) -> None:
    conditioner = InputConditioner(ConditionerState(), cutoff, level)
    for chunk in chunks:
        result = conditioner.process(chunk)
        assert len(result.frame) == 160
        conditioner.commit(result)
