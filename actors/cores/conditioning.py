"""Optional input conditioning (seed §2.3) — a hum filter and a very soft leveller for the caller's audio.

Theory of operation: off by default, and then nothing here runs: caller μ-law is forwarded byte for
byte. Per business, `highpass_hz` (150–200) removes mains hum and rumble with an 8th-order
Butterworth high-pass (scipy, second-order sections) whose state is carried from frame to frame, so a
frame join is exactly as if the whole call had been filtered at once (no click, no step); nothing
inside the telephone band (300–3,400 Hz) is cut. `soft_normalize` follows the speech level slowly
(one-second time constant) and moves the gain only when the level is extreme (a whisper below
`LOW_DB` or a shout above `HIGH_DB`, in dB of PCM16 power), by at most ±`MAX_GAIN_DB`, ramped across
each frame. Frames are decoded from μ-law, conditioned, re-encoded: one frame in, one frame out, never
dropped, never delayed. `process` computes the new frame and the new state and changes nothing;
`commit` stores the state (TwilioRx does so last).
"""
from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfilt

from actors.cores.ulaw import ULAW_TO_LINEAR, encode_linear

ORDER = 8
LOW_DB, HIGH_DB = 52.0, 78.0  # mean power of a frame, 0 dB = one PCM16 unit² (normal speech ≈ 60–72, a shout near full scale ≈ 84)
MAX_GAIN_DB = 6.0
SPEECH_DB = 45.0  # frames quieter than this (line noise) do not move the level estimate
SMOOTH = 0.02  # per 20 ms frame: ~1 s time constant


class ConditionerState(msgspec.Struct):
    zi: list[float] = msgspec.field(default_factory=list)  # the filter's state, sections × 2, flattened
    level_db: float = 60.0  # slow estimate of the caller's speech level
    gain_db: float = 0.0


class Conditioned(msgspec.Struct, frozen=True):
    frame: bytes
    zi: list[float]
    level_db: float
    gain_db: float


class InputConditioner:
    def __init__(self, state: ConditionerState, highpass_hz: int, soft_normalize: bool) -> None:
        self.s = state
        self.soft_normalize = soft_normalize
        self.sos: npt.NDArray[np.float64] | None = None
        if highpass_hz:
            self.sos = np.asarray(butter(ORDER, highpass_hz, btype="highpass", fs=8000, output="sos"))
            if not state.zi:
                state.zi = [0.0] * (self.sos.shape[0] * 2)

    @property
    def active(self) -> bool:
        return self.sos is not None or self.soft_normalize

    def process(self, raw: bytes) -> Conditioned:
        s = self.s
        samples = ULAW_TO_LINEAR[np.frombuffer(raw, dtype=np.uint8)].astype(np.float64)
        zi = s.zi
        if self.sos is not None:
            state = np.asarray(s.zi, dtype=np.float64).reshape(self.sos.shape[0], 2)
            samples, zf = sosfilt(self.sos, samples, zi=state)
            zi = zf.ravel().tolist()
        level, gain = s.level_db, s.gain_db
        if self.soft_normalize:
            power = float(10.0 * np.log10(float(np.mean(samples ** 2)) + 1.0))  # a float: the state is encoded
            if power >= SPEECH_DB:
                level += SMOOTH * (power - level)
            target = LOW_DB - level if level < LOW_DB else HIGH_DB - level if level > HIGH_DB else 0.0
            target = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target))
            new_gain = gain + SMOOTH * (target - gain)
            ramp = np.linspace(gain, new_gain, samples.size, endpoint=False)
            samples = samples * 10.0 ** (ramp / 20.0)
            gain = new_gain
        return Conditioned(encode_linear(samples), zi, level, gain)

    def commit(self, result: Conditioned) -> None:
        self.s.zi, self.s.level_db, self.s.gain_db = result.zi, result.level_db, result.gain_db
