"""TwilioRx core — caller audio in, untouched, to the Realtime input buffer.

Theory of operation: every Twilio `media` frame becomes one `input_audio_buffer.append` carrying the
same base64 string (μ-law passthrough, no decode, no buffering, no gate of any kind: simple mode).
Media chunk-number gaps (frames Twilio never delivered) are counted, never hidden. Decode errors at the
edge arrive as WireDecodeError and are counted.
"""
from __future__ import annotations

import msgspec

from actors.messages import LogLine, RtAppend, ToRealtime, TwilioDtmfIn, TwilioMediaIn, WireDecodeError


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
    counters: RxCounters = msgspec.field(default_factory=RxCounters)


class TwilioRxCore:
    def __init__(self, state: RxState) -> None:
        self.s = state

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
            return [ToRealtime(self.s.call_id, RtAppend(msg.payload))]
        if isinstance(msg, TwilioDtmfIn):
            c.dtmf_digits += 1
            return [LogLine("DTMF", "info", {"call_sid": self.s.call_id, "digit": msg.digit})]
        if isinstance(msg, WireDecodeError):
            c.twilio_decode_errors += 1
            return [LogLine("TWILIO_DECODE_ERROR", "warning", {"call_sid": self.s.call_id, "reason": msg.reason})]
        return []

    def counters(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.s.counters)
