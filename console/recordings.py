"""A call's recording as the console serves it: the stereo WAV `kolbridge calls audio` copies
(<recordings_dir>/<CALL_SID>.wav, left the caller, right the AI as played), and its waveform's peaks."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

PEAK_COLUMNS = 1000


def recording_path(directory: Path, call_sid: str) -> Path | None:
    path = directory / f"{call_sid}.wav"
    return path if "/" not in call_sid and path.is_file() else None


def peaks(path: Path, columns: int = PEAK_COLUMNS) -> dict[str, object]:
    """Per channel, the largest absolute sample of each of `columns` equal slices, 0..1 (a waveform to draw)."""
    with wave.open(str(path), "rb") as recording:
        channels, rate, frames = recording.getnchannels(), recording.getframerate(), recording.getnframes()
        samples = np.frombuffer(recording.readframes(frames), dtype="<i2").reshape(-1, channels)
    if len(samples) == 0:
        return {"rate": rate, "seconds": 0.0, "channels": [[] for _ in range(channels)]}
    edges = np.linspace(0, len(samples), min(columns, len(samples)) + 1).astype(int)
    loudest = np.maximum.reduceat(np.abs(samples.astype(np.int32)), edges[:-1], axis=0) / 32768.0
    return {"rate": rate, "seconds": len(samples) / rate,
            "channels": [np.round(loudest[:, c], 3).tolist() for c in range(channels)]}


def remove_recording(directory: Path, call_sid: str) -> bool:
    path = recording_path(directory, call_sid)
    if path is None:
        return False
    path.unlink(missing_ok=True)
    return True
