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
