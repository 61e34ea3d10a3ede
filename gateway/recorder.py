"""Call recordings — a stereo WAV per call: left the caller as received, right the AI as the caller heard it.

Theory of operation: the gateway taps the call at its edges, where the bytes are exactly what crossed
the wire: every caller `media` frame (left) and every `media`/`clear` this call sent Twilio (right).
The right channel is placed on Twilio's playout timeline: a frame starts playing when it arrives or
when the one before it ends, whichever is later (Twilio's buffer plays in order, in real time); a
`clear` at time T removes every frame that would have started at or after T — so ducks (the bytes sent
were already ducked) and cuts sound as they did on the phone. Time zero is the first caller frame; the
caller's frames are contiguous 20 ms steps from there.
Nothing is written on the event loop: every ~5 s the part of both channels that can no longer change
(the caller's frames so far; the AI's up to now, since a later `clear` only removes what has not started)
is handed to one writer thread, which appends it to two raw μ-law files; at the end of the call the
thread turns them into `<recordings_dir>/<CALL_SID>.wav` (16-bit PCM, 8 kHz, stereo) and removes them.
A failed write is logged (RECORDING_FAILED) and the call goes on; memory per call stays a few seconds.
"""
from __future__ import annotations

import base64
import concurrent.futures
import shutil
import wave
from pathlib import Path
from typing import Callable

import numpy as np
import structlog

from actors.cores.ulaw import ULAW_TO_LINEAR

log = structlog.get_logger("kolbridge.recorder")

RATE = 8000
SILENCE = 0xFF
FLUSH_EVERY = 5 * RATE  # caller samples
_WRITER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="recordings")


class CallTimeline:
    """The two channels of one call on the playout timeline (pure: no I/O, time is an argument)."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.base = 0  # samples already handed out (both channels start there)
        self.left = bytearray()
        self.right = bytearray()
        self.play_end = 0.0  # when the last AI frame sent will have finished playing

    def _pos(self, at: float) -> int:
        return int(round(((at - (self.t0 or at)) * RATE))) - self.base

    def caller(self, raw: bytes, at: float) -> None:
        if self.t0 is None:
            self.t0, self.play_end = at, at
        self.left += raw

    def sent(self, raw: bytes, at: float) -> None:
        if self.t0 is None:
            return  # nothing is played before the call's audio starts
        start = max(at, self.play_end)
        pos = max(0, self._pos(start))
        if pos > len(self.right):
            self.right += bytes([SILENCE]) * (pos - len(self.right))
        del self.right[pos:]
        self.right += raw
        self.play_end = start + len(raw) / RATE

    def cleared(self, at: float) -> None:
        if self.t0 is None:
            return
        del self.right[max(0, self._pos(at)):]
        self.play_end = min(self.play_end, at)

    def take_final(self, now: float) -> tuple[bytes, bytes]:
        """The samples that can no longer change: up to the caller's last frame and the present."""
        upto = min(len(self.left), max(0, self._pos(now)))
        return self._take(upto)

    def take_rest(self) -> tuple[bytes, bytes]:
        return self._take(max(len(self.left), len(self.right)))

    def _take(self, upto: int) -> tuple[bytes, bytes]:
        left, right = bytes(self.left[:upto]), bytes(self.right[:upto])
        left += bytes([SILENCE]) * (upto - len(left))
        right += bytes([SILENCE]) * (upto - len(right))
        del self.left[:upto], self.right[:upto]
        self.base += upto
        return left, right


def _append(path: Path, left: bytes, right: bytes) -> None:
    with open(path.with_suffix(".left.ul"), "ab") as lf, open(path.with_suffix(".right.ul"), "ab") as rf:
        lf.write(left)
        rf.write(right)


def _finish(path: Path) -> float:
    left_file, right_file = path.with_suffix(".left.ul"), path.with_suffix(".right.ul")
    left = np.fromfile(left_file, dtype=np.uint8)
    right = np.fromfile(right_file, dtype=np.uint8)
    stereo = np.empty(2 * len(left), dtype="<i2")
    stereo[0::2], stereo[1::2] = ULAW_TO_LINEAR[left], ULAW_TO_LINEAR[right]
    partial = path.with_suffix(".wav.partial")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(stereo.tobytes())
    partial.replace(path)
    left_file.unlink()
    right_file.unlink()
    return len(left) / RATE


class CallRecorder:
    """One call's recording: the timeline, and its hand-offs to the writer thread."""

    def __init__(self, directory: Path, call_sid: str) -> None:
        self.path = directory / f"{call_sid}.wav"
        self.call_sid = call_sid
        self.timeline = CallTimeline()
        self.failed = False
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (self.path.with_suffix(".left.ul"), self.path.with_suffix(".right.ul")):
            stale.unlink(missing_ok=True)

    def caller(self, raw: bytes, at: float) -> None:
        """A caller frame as received (its bytes: the edge decoded them already)."""
        self.timeline.caller(raw, at)
        if len(self.timeline.left) >= FLUSH_EVERY:
            self._submit(_append, *self.timeline.take_final(at))

    def sent(self, payload_b64: str, at: float) -> None:
        self.timeline.sent(base64.b64decode(payload_b64), at)

    def cleared(self, at: float) -> None:
        self.timeline.cleared(at)

    def _submit(self, job: Callable[..., object], *args: object) -> concurrent.futures.Future[object]:
        return _WRITER.submit(self._guarded, job, *args)

    def _guarded(self, job: Callable[..., object], *args: object) -> object:
        """On the writer thread, in submission order: after a failure the rest of this call is skipped
        (a recording with a hole in it would put the two channels out of step)."""
        if self.failed:
            return None
        try:
            return job(self.path, *args)
        except OSError as exc:
            self.failed = True
            log.warning("RECORDING_FAILED", call_sid=self.call_sid, path=str(self.path), error=str(exc))
            return None

    def finish(self) -> concurrent.futures.Future[object]:
        """Hand the rest over and write the WAV; the future gives the seconds recorded (None if it failed)."""
        left, right = self.timeline.take_rest()
        self._submit(_append, left, right)
        return self._submit(_finish)


def wait_for_writer(timeout_s: float = 30.0) -> None:
    """Every recording handed over so far is on disk (the writer runs its jobs in order)."""
    _WRITER.submit(lambda: None).result(timeout_s)


def copy_recording(directory: Path, call_sid: str, target: Path) -> bool:
    source = directory / f"{call_sid}.wav"
    if not source.is_file():
        return False
    shutil.copyfile(source, target)
    return True
