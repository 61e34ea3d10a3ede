"""μ-law helpers for the offline peers (numpy tables; audioop is gone in Python 3.13)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

CLIPS_DIR = Path(__file__).resolve().parent / "clips"
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES


def _decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


ULAW_TO_PCM = _decode_table()


def _encode_table() -> npt.NDArray[np.uint8]:
    """PCM16 (offset by 32768) → nearest μ-law code, built by inverting the decode table."""
    order = np.argsort(ULAW_TO_PCM.astype(np.int32))
    values = ULAW_TO_PCM.astype(np.int32)[order]
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.clip(np.searchsorted(values, pcm), 1, len(values) - 1)
    left, right = values[idx - 1], values[idx]
    pick = np.where(pcm - left <= right - pcm, idx - 1, idx)
    return order[pick].astype(np.uint8)


PCM_TO_ULAW = _encode_table()


_SQUARES = ULAW_TO_PCM.astype(np.float64) ** 2


def rms(ulaw: bytes) -> float:
    if not ulaw:
        return 0.0
    # a table of squares: one gather and one sum per frame (the fake service's VAD runs it on every frame)
    return float(np.sqrt(_SQUARES[np.frombuffer(ulaw, dtype=np.uint8)].sum() / len(ulaw)))


def load_clip(name: str) -> bytes:
    return (CLIPS_DIR / f"{name}.ul").read_bytes()


def clip_text(name: str) -> str:
    return (CLIPS_DIR / f"{name}.txt").read_text(encoding="utf-8").strip()


def noise_frame(rng: np.random.Generator, level: float) -> bytes:
    """A 20 ms frame of line noise at `level` RMS (PCM16 scale); 0 gives digital silence."""
    return noise_frames(rng, level, 1)[0]


def noise_frames(rng: np.random.Generator, level: float, count: int) -> list[bytes]:
    """`count` frames of line noise drawn in one go (the load generator cycles through a bank of them)."""
    if level <= 0:
        return [SILENCE] * count
    pcm = np.clip(rng.normal(0.0, level, FRAME_BYTES * count), -32768, 32767).astype(np.int32) + 32768
    noise = PCM_TO_ULAW[pcm].tobytes()
    return [noise[i:i + FRAME_BYTES] for i in range(0, len(noise), FRAME_BYTES)]


def mix_noise(frame: bytes, rng: np.random.Generator, level: float) -> bytes:
    """The frame with line noise added (a real phone line is never digitally silent)."""
    if level <= 0:
        return frame
    pcm = ULAW_TO_PCM[np.frombuffer(frame, dtype=np.uint8)].astype(np.float64)
    pcm += rng.normal(0.0, level, len(frame))
    return PCM_TO_ULAW[np.clip(pcm, -32768, 32767).astype(np.int32) + 32768].tobytes()


def frames_of(audio: bytes) -> list[bytes]:
    """Cut audio into 160-byte frames; the last one padded with μ-law silence."""
    out = [audio[i:i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1] + b"\xff" * (FRAME_BYTES - len(out[-1]))
    return out


def _bandpass_taps(low_hz: float = 300.0, high_hz: float = 3400.0, taps: int = 63) -> npt.NDArray[np.float64]:
    """A windowed-sinc band-pass (8 kHz): the telephone band an echo comes back through."""
    n = np.arange(taps) - (taps - 1) / 2
    def lowpass(cut: float) -> npt.NDArray[np.float64]:
        return np.asarray(2 * cut / 8000 * np.sinc(2 * cut / 8000 * n), dtype=np.float64)
    return np.asarray((lowpass(high_hz) - lowpass(low_hz)) * np.hamming(taps), dtype=np.float64)


class EchoPath:
    """What a speakerphone sends back: the audio the phone played, delayed, attenuated, band-limited.

    The player `push`es every 20 ms what it played (silence when nothing); the caller's sender asks
    `echo_at(t)` for the echo due at t (the frame played `delay_ms` before) and mixes it in.
    """

    def __init__(self, delay_ms: float, loss_db: float) -> None:
        self.delay_s = delay_ms / 1000.0
        self.gain = 10.0 ** (-loss_db / 20.0)
        self.taps = _bandpass_taps()
        self.history = np.zeros(len(self.taps) - 1)
        self.queue: list[tuple[float, npt.NDArray[np.float64]]] = []

    def push(self, played: bytes, at: float) -> None:
        pcm = ULAW_TO_PCM[np.frombuffer(played, dtype=np.uint8)].astype(np.float64)
        joined = np.concatenate([self.history, pcm])
        filtered = np.convolve(joined, self.taps, mode="valid")  # continuous across frames
        self.history = joined[-(len(self.taps) - 1):]
        self.queue.append((at, filtered * self.gain))

    def echo_at(self, t: float) -> npt.NDArray[np.float64] | None:
        due = None
        while self.queue and self.queue[0][0] <= t - self.delay_s + 0.005:
            due = self.queue.pop(0)[1]
        return due


def mix_pcm(frame: bytes, extra: npt.NDArray[np.float64]) -> bytes:
    """A μ-law frame with PCM samples added (an echo on the line)."""
    pcm = ULAW_TO_PCM[np.frombuffer(frame, dtype=np.uint8)].astype(np.float64) + extra[:len(frame)]
    return PCM_TO_ULAW[np.clip(pcm, -32768, 32767).astype(np.int32) + 32768].tobytes()


def scaled(ulaw: bytes, gain_db: float) -> bytes:
    """μ-law audio with its level changed by `gain_db` (a quieter or louder voice)."""
    pcm = ULAW_TO_PCM[np.frombuffer(ulaw, dtype=np.uint8)].astype(np.float64) * 10.0 ** (gain_db / 20.0)
    return bytes(PCM_TO_ULAW[np.clip(pcm, -32768, 32767).astype(np.int32) + 32768].tobytes())
