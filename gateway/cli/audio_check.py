"""`kolbridge audio-check FILE.wav|FILE.ul` — the articulation measure over time, for a tuner.

Reads caller audio (raw 8 kHz μ-law `.ul`, or a WAV: 16-bit, any rate — resampled to 8 kHz — mono or
the left channel of a stereo one, so a recording from `kolbridge calls audio` can be checked as is),
runs it frame by frame through the same noise floor and articulation meter TwilioRx runs while the AI
is audible, and prints, every `--every-ms`: level, floor, whether the frame is speech-like, the run's
syllables and spectral spread, and whether the judge's thresholds (config.toml [barge_in], or the
flags) call it articulated speech — then when a candidate over the AI would have been cut, if ever.
"""
from __future__ import annotations

import argparse
import wave
from pathlib import Path

import msgspec
import numpy as np
from scipy.signal import resample_poly

from actors.cores.articulation import ArticulationMeter, ArticulationState
from actors.cores.energy import FloorState, NoiseFloor
from actors.cores.ulaw import encode_linear, raw_level_db
from actors.settings import BargeInSettings

FRAME = 160


def read_ulaw(path: Path) -> bytes:
    if path.suffix.lower() != ".wav":
        return path.read_bytes()
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2:
            raise ValueError("WAV must be 16-bit PCM")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, wav.getnchannels())[:, 0]
        rate = wav.getframerate()
    samples = pcm.astype(np.float64)
    if rate != 8000:
        divisor = int(np.gcd(rate, 8000))
        samples = resample_poly(samples, 8000 // divisor, rate // divisor)
    return encode_linear(samples)


def check(audio: bytes, settings: BargeInSettings, every_ms: int = 100) -> tuple[list[str], float | None]:
    floor = NoiseFloor(FloorState(settings.floor_init_db), settings.energy_delta_db, settings.floor_min_db)
    meter = ArticulationMeter(ArticulationState(), settings.articulation_rise_db)
    rows = [f"{'t (s)':>6} {'level':>6} {'floor':>6} {'speech':>6} {'syll':>4} {'spread':>7}  verdict"]
    first: float | None = None
    every = max(1, every_ms // 20)
    for index in range(len(audio) // FRAME):
        raw = audio[index * FRAME:(index + 1) * FRAME]
        level = raw_level_db(raw)
        floor_db = floor.s.floor_db
        speech = floor.update(level)
        reading = meter.update(raw, level, floor_db, speech)
        articulated = speech and reading.syllables >= settings.articulation_syllables \
            and reading.spectral_hz >= settings.articulation_spectral_hz
        t = (index + 1) * FRAME / 8000
        if articulated and first is None:
            first = t
        if index % every == every - 1 or (articulated and first == t):
            verdict = "ARTICULATED" if articulated else ("steady" if speech else "")
            rows.append(f"{t:6.2f} {level:6.1f} {floor_db:6.1f} {'yes' if speech else '':>6} "
                        f"{reading.syllables:4d} {reading.spectral_hz:7.0f}  {verdict}")
    return rows, first


def main(args: argparse.Namespace, settings: BargeInSettings) -> int:
    overrides = {k: v for k, v in (("articulation_syllables", args.syllables),
                                   ("articulation_spectral_hz", args.spectral_hz),
                                   ("articulation_rise_db", args.rise_db)) if v is not None}
    settings = msgspec.structs.replace(settings, **overrides)
    rows, first = check(read_ulaw(Path(args.file)), settings, args.every_ms)
    print("\n".join(rows))
    print(f"thresholds: {settings.articulation_syllables} syllables (a fall and rise of "
          f"{settings.articulation_rise_db:g} dB), spectral spread {settings.articulation_spectral_hz:g} Hz")
    if first is None:
        print("never articulated: over the AI this would stay a candidate (ducked) until the transcript")
    else:
        print(f"articulated from {first:.2f} s: over the AI a candidate would be cut there, without the transcript")
    return 0
