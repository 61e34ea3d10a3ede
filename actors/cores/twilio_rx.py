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
from actors.link_messages import LinkDown, LinkUp
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
    frames_buffered_gap: int = 0
    frames_replayed_gap: int = 0
    frames_dropped_gap: int = 0


class RxState(msgspec.Struct):
    call_id: str
    last_seq: int = 0
    ai_audible: bool = False
    floor: FloorState = msgspec.field(default_factory=FloorState)
    counters: RxCounters = msgspec.field(default_factory=RxCounters)
    link_up: bool = True
    gap: list[str] = msgspec.field(default_factory=list)  # caller frames held while the link is down


class TwilioRxCore:
    def __init__(self, state: RxState, delta_db: float = 9.0, floor_min_db: float = 30.0,
                 gap_frames: int = 150) -> None:
        self.s = state
        self.floor = NoiseFloor(state.floor, delta_db, floor_min_db)
        self.gap_frames = gap_frames

    def snapshot(self) -> RxState:
        return self.s

    def handle(self, msg: object, now: float) -> list[object]:
        c = self.s.counters
        if isinstance(msg, TwilioMediaIn):
            return self._media(msg, now)
        if isinstance(msg, LinkDown):
            return self._link_down(msg)
        if isinstance(msg, LinkUp):
            replay = [ToRealtime(self.s.call_id, RtAppend(p)) for p in self.s.gap]
            c.frames_replayed_gap += len(replay)
            c.frames_forwarded += len(replay)
            self.s.gap, self.s.link_up = [], True
            return [*replay, LogLine("GAP_REPLAYED", "info", {"call_sid": self.s.call_id, "frames": len(replay),
                                                              "dropped": c.frames_dropped_gap})]
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

    def _media(self, msg: TwilioMediaIn, now: float) -> list[object]:
        s, c = self.s, self.s.counters
        measure = s.ai_audible or (c.frames_in + 1) % IDLE_LEVEL_EVERY == 0
        level = level_db(msg.payload) if measure else 0.0  # may raise: nothing has changed yet
        c.frames_in += 1
        if s.last_seq and msg.seq > s.last_seq + 1:
            c.seq_gaps += msg.seq - s.last_seq - 1
        s.last_seq = max(s.last_seq, msg.seq)
        out: list[object] = []
        if s.link_up:
            c.frames_forwarded += 1
            out.append(ToRealtime(s.call_id, RtAppend(msg.payload)))
        else:
            out += self._hold((msg.payload,))
        if measure:
            floor = s.floor.floor_db  # the judge compares against the floor before this frame
            if self.floor.update(level) and s.ai_audible:
                # only speech-like frames travel; the judge leaks its accumulator by elapsed time
                out.append(CallerLevel(level, floor, now))
        return out

    def _link_down(self, msg: LinkDown) -> list[object]:
        s, c = self.s, self.s.counters
        c.frames_forwarded -= len(msg.unsent)  # queued for the lost connection, never written
        s.link_up = False
        return self._hold(msg.unsent)

    def _hold(self, payloads: tuple[str, ...]) -> list[object]:
        s, c = self.s, self.s.counters
        s.gap.extend(payloads)
        c.frames_buffered_gap += len(payloads)
        over = len(s.gap) - self.gap_frames
        if over <= 0:
            return []
        del s.gap[:over]
        first = c.frames_dropped_gap == 0
        c.frames_dropped_gap += over
        if not first and c.frames_dropped_gap % 50:
            return []
        return [LogLine("FRAMES_DROPPED_GAP", "warning", {"call_sid": s.call_id, "dropped": c.frames_dropped_gap,
                                                          "kept": len(s.gap)})]

    def counters(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.s.counters)
