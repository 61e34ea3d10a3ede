"""TwilioRx core — caller audio in, untouched, to the Realtime input buffer.

Theory of operation: every Twilio `media` frame becomes one `input_audio_buffer.append` carrying the
same base64 string (μ-law passthrough, no decode, no buffering, no gate of any kind: simple mode).
Media chunk-number gaps (frames Twilio never delivered) are counted, never hidden. Decode errors at the
edge arrive as WireDecodeError and are counted.
Barge-in input: the level of caller frames is measured (a copy; the frame is untouched) — every frame
while the AI is audible, every fifth otherwise to keep the noise floor current — and, while the AI is
audible, sent to the BargeInJudge with the floor.
"""
from __future__ import annotations

import msgspec

from actors.cores.energy import FloorState, NoiseFloor
from actors.cores.ulaw import level_db
from actors.messages import (
    CallerLevel, LogLine, PlayoutChanged, RtAppend, ToRealtime, TwilioDtmfIn, TwilioMediaIn, WireDecodeError,
)

IDLE_LEVEL_EVERY = 5


class RxCounters(msgspec.Struct):
    frames_in: int = 0
    frames_forwarded: int = 0
    frames_dropped: int = 0
    seq_gaps: int = 0
    twilio_decode_errors: int = 0
    dtmf_digits: int = 0


class RxState(msgspec.Struct):
    call_id: str
    last_seq: int = 0
    ai_audible: bool = False
    floor: FloorState = msgspec.field(default_factory=FloorState)
    counters: RxCounters = msgspec.field(default_factory=RxCounters)


class TwilioRxCore:
    def __init__(self, state: RxState, delta_db: float = 9.0, floor_min_db: float = 30.0) -> None:
        self.s = state
        self.floor = NoiseFloor(state.floor, delta_db, floor_min_db)

    def snapshot(self) -> RxState:
        return self.s

    def handle(self, msg: object, now: float) -> list[object]:
        c = self.s.counters
        if isinstance(msg, TwilioMediaIn):
            c.frames_in += 1
            if self.s.last_seq and msg.seq > self.s.last_seq + 1:
                c.seq_gaps += msg.seq - self.s.last_seq - 1
            self.s.last_seq = max(self.s.last_seq, msg.seq)
            c.frames_forwarded += 1
            out: list[object] = [ToRealtime(self.s.call_id, RtAppend(msg.payload))]
            if self.s.ai_audible or c.frames_in % IDLE_LEVEL_EVERY == 0:
                level = level_db(msg.payload)
                floor = self.s.floor.floor_db  # the judge compares against the floor before this frame
                if self.floor.update(level) and self.s.ai_audible:
                    # only speech-like frames travel; the judge leaks its accumulator by elapsed time
                    out.append(CallerLevel(level, floor, now))
            return out
        if isinstance(msg, PlayoutChanged):
            self.s.ai_audible = msg.audible
            return []
        if isinstance(msg, TwilioDtmfIn):
            c.dtmf_digits += 1
            return [LogLine("DTMF", "info", {"call_sid": self.s.call_id, "digit": msg.digit})]
        if isinstance(msg, WireDecodeError):
            c.twilio_decode_errors += 1
            return [LogLine("TWILIO_DECODE_ERROR", "warning", {"call_sid": self.s.call_id, "reason": msg.reason})]
        return []

    def counters(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.s.counters)
