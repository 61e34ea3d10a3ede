"""G.711 μ-law tables (numpy; audioop is gone in Python 3.13): caller frame level and AI ducking.

The level of a caller frame is computed only when a consumer needs it (the barge-in judge, while the
AI is audible); the frame itself is never altered. Ducking re-maps μ-law codes through a 256-entry
gain table with `bytes.translate`, so lowering the AI's voice costs nothing measurable per frame.
"""
from __future__ import annotations

import binascii
import math

import numpy as np
import numpy.typing as npt


def _decode() -> npt.NDArray[np.int32]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (codes >> 4) & 0x07, codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where((codes & 0x80) != 0, -magnitude, magnitude).astype(np.int32)


ULAW_TO_LINEAR = _decode()
_SQUARED: list[float] = (ULAW_TO_LINEAR.astype(np.float64) ** 2).tolist()


def _encode(linear: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    values = ULAW_TO_LINEAR
    order = np.argsort(values)
    ranked = values[order]
    idx = np.clip(np.searchsorted(ranked, linear), 1, 255)
    left, right = ranked[idx - 1], ranked[idx]
    pick = np.where(linear - left <= right - linear, idx - 1, idx)
    return order[pick].astype(np.uint8)


def gain_table(gain_db: float) -> bytes:
    """A `bytes.translate` table that scales every μ-law code by `gain_db`."""
    scaled = np.round(ULAW_TO_LINEAR * (10.0 ** (gain_db / 20.0))).astype(np.int32)
    return _encode(scaled).tobytes()


def encode_linear(samples: npt.NDArray[np.float64]) -> bytes:
    """PCM samples (PCM16 scale, any float) → μ-law bytes, nearest code, clipped at full scale."""
    return _encode(np.clip(np.round(samples), -32768, 32767).astype(np.int32)).tobytes()


def level_db(payload_b64: str) -> float:
    """Mean power of a base64 μ-law frame in dB (0 dB = one PCM16 unit²); digital silence → 0."""
    return raw_level_db(binascii.a2b_base64(payload_b64))


def raw_level_db(raw: bytes) -> float:
    """Mean power of μ-law bytes in dB (0 dB = one PCM16 unit²); digital silence → 0."""
    if not raw:
        return 0.0
    power = sum(map(_SQUARED.__getitem__, raw)) / len(raw)  # ~9 µs a frame; numpy's call overhead is larger
    return 10.0 * math.log10(power + 1.0)
