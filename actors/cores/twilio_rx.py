"""TwilioRx core — caller audio in, untouched, to the Realtime input buffer.

Theory of operation: every Twilio `media` frame is forwarded to the Realtime input buffer untouched
(μ-law passthrough, no gate of any kind: simple mode) — `append_frames` of them per
`input_audio_buffer.append` (config [realtime] append_ms; 1 = the frame's own base64 string). A batch
is the frames' bytes, which the edge decoded to validate them, joined and encoded once; frames waiting
for their batch (at most append_frames − 1) count as never written when the link drops (replayed from
the ring like any other), start the next session's audio at a rollover, and leave at the end of the
call (CollectCounters), so no caller audio is lost or reordered.
Media chunk-number gaps (frames Twilio never delivered) are counted, never hidden. Decode errors at the
edge arrive as WireDecodeError and are counted.
Barge-in input: the level of caller frames is measured (a copy; the frame is untouched) — every frame
while the AI is audible, every fifth otherwise to keep the noise floor current — and, while the AI is
audible, speech-like frames are sent to the BargeInJudge with the floor and the articulation of their
run (articulation.py). With the echo guard on, a frame whose energy our own echo explains (echo.py,
from the levels the TxPacer reports it sent) goes to the judge marked `echo` — no barge-in evidence,
counted as an echo veto; it is still forwarded like every other frame.
Optional conditioning (conditioning.py, per business, off by default): the forwarded frame is the
conditioned one; nothing is dropped or delayed.
"""
from __future__ import annotations

import base64
import binascii

import msgspec

from actors.cores.articulation import ArticulationMeter, ArticulationState
from actors.cores.conditioning import Conditioned, ConditionerState, InputConditioner
from actors.cores.echo import EchoEstimator, EchoState
from actors.cores.energy import FloorState, NoiseFloor
from actors.cores.ulaw import raw_level_db
from actors.ingress_messages import TwilioDtmfIn, TwilioMediaIn, WireDecodeError
from actors.lifecycle_messages import LogLine
from actors.link_messages import LinkDown, LinkUp
from actors.messages import CallerLevel, CollectCounters, PlayedLevels, PlayoutChanged
from actors.settings import AudioSettings
from actors.wire_messages import RtAppend, ToRealtime, b64_size

IDLE_LEVEL_EVERY = 5



def encode_batch(frames: list[bytes]) -> str:
    """One append's audio: the frames' bytes joined, base64 once."""
    return base64.b64encode(b"".join(frames)).decode("ascii")


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
    frames_resent_turn: int = 0  # written to the lost session, re-sent: a turn it never transcribed
    echo_vetoes: int = 0  # speech-like caller frames our own echo explains: no barge-in evidence
    frames_conditioned: int = 0


class RxState(msgspec.Struct):
    call_id: str
    last_seq: int = 0
    ai_audible: bool = False
    floor: FloorState = msgspec.field(default_factory=FloorState)
    counters: RxCounters = msgspec.field(default_factory=RxCounters)
    link_up: bool = True
    ring: list[str] = msgspec.field(default_factory=list)  # the last caller frames; ring[-1] is frame frames_in-1
    session_start: int = 0  # index of the first frame of the current session's audio
    gap_from: int = 0  # while down: index of the first frame to replay
    gap_unsent: int = 0  # while down: frames_in at LinkDown minus the unsent count (first never-written frame)
    listen_until: float = 0.0  # the AI went silent: frames are still measured until its echo has died
    articulation: ArticulationState = msgspec.field(default_factory=ArticulationState)
    echo: EchoState | None = None
    conditioner: ConditionerState = msgspec.field(default_factory=ConditionerState)
    pending: list[bytes] = msgspec.field(default_factory=list)  # forwarded frames waiting for their batch


class TwilioRxCore:
    def __init__(self, state: RxState, delta_db: float = 9.0, floor_min_db: float = 30.0,
                 gap_frames: int = 150, frame_ms: int = 20, turn_frames: int = 500,
                 audio: AudioSettings | None = None, articulation: bool = True, rise_db: float = 6.0,
                 append_frames: int = 1) -> None:
        self.s = state
        self.append_frames = max(1, append_frames)
        self.floor = NoiseFloor(state.floor, delta_db, floor_min_db)
        audio = audio or AudioSettings(echo_guard_enabled=False)
        self.meter = ArticulationMeter(state.articulation, rise_db) if articulation else None
        self.echo: EchoEstimator | None = None
        if audio.echo_guard_enabled:
            if state.echo is None:
                state.echo = EchoState()
            self.echo = EchoEstimator(state.echo, audio.echo_min_delay_ms, audio.echo_max_delay_ms,
                                      min_corr=audio.echo_min_corr, margin_db=audio.echo_margin_db)
        self.echo_tail_s = audio.echo_max_delay_ms / 1000.0
        conditioner = InputConditioner(state.conditioner, audio.highpass_hz, audio.soft_normalize)
        self.conditioner = conditioner if conditioner.active else None
        self.gap_frames = max(1, gap_frames)
        self.frame_ms = frame_ms
        self.ring_frames = self.gap_frames + max(0, turn_frames)

    def snapshot(self) -> RxState:
        if self.echo is not None:
            self.s.echo = self.echo.sync()
        return self.s

    def handle(self, msg: object, now: float) -> list[object]:
        c = self.s.counters
        if isinstance(msg, TwilioMediaIn):
            return self._media(msg, now)
        if isinstance(msg, LinkDown):
            return self._link_down(msg)
        if isinstance(msg, LinkUp):
            return self._link_up()
        if isinstance(msg, CollectCounters):  # the call ends: what waits for its batch leaves now
            return self._flush()
        if isinstance(msg, PlayoutChanged):
            self.s.ai_audible = msg.audible
            # our echo outlives our playout: keep listening (echo guard on) as long as the echo path can be
            self.s.listen_until = now + self.echo_tail_s if not msg.audible and self.echo is not None else 0.0
            return []
        if isinstance(msg, PlayedLevels):
            if self.echo is not None:
                self.echo.played(msg.first_play_at, msg.levels_db)
            return []
        if isinstance(msg, TwilioDtmfIn):
            c.dtmf_digits += 1
            return [LogLine("DTMF", "info", {"call_sid": self.s.call_id, "digit": msg.digit})]
        if isinstance(msg, WireDecodeError):
            c.twilio_decode_errors += 1
            return [LogLine("TWILIO_DECODE_ERROR", "warning", {"call_sid": self.s.call_id, "reason": msg.reason})]
        return []

    def _media(self, msg: TwilioMediaIn, now: float) -> list[object]:
        s = self.s
        over_ai = s.ai_audible or now < s.listen_until
        measure = over_ai or (s.counters.frames_in + 1) % IDLE_LEVEL_EVERY == 0
        # computed first, may raise: nothing has changed yet
        raw, level, conditioned = self._read(msg, measure)
        forwarded = conditioned.frame if conditioned is not None else raw
        payload = base64.b64encode(forwarded).decode("ascii") if conditioned is not None else msg.payload
        append = self._append(payload, forwarded)
        # what changes the state, from here
        if conditioned is not None and self.conditioner is not None:
            self.conditioner.commit(conditioned)
            s.counters.frames_conditioned += 1
        out = self._take(msg, payload, forwarded, append)
        if measure:
            floor = s.floor.floor_db  # the judge compares against the floor before this frame
            speech = self.floor.update(level)
            if over_ai:
                out += self._over_the_ai(raw, level, floor, speech, now)
        return out

    def _read(self, msg: TwilioMediaIn, measure: bool) -> tuple[bytes, float, Conditioned | None]:
        """The frame's bytes (decoded only when needed), its level (when measured), and its conditioned form."""
        raw = msg.raw
        if not raw and (measure or self.append_frames > 1 or self.conditioner is not None):
            raw = binascii.a2b_base64(msg.payload)
        level = raw_level_db(raw) if measure else 0.0
        conditioned = self.conditioner.process(raw) if self.conditioner is not None else None
        return raw, level, conditioned

    def _append(self, payload: str, forwarded: bytes) -> str | None:
        """What this frame writes to the session now: itself, or the batch it completes (None: nothing)."""
        if not self.s.link_up:
            return None
        if self.append_frames <= 1:
            return payload
        if len(self.s.pending) + 1 >= self.append_frames:
            return encode_batch([*self.s.pending, forwarded])
        return None

    def _take(self, msg: TwilioMediaIn, payload: str, forwarded: bytes, append: str | None) -> list[object]:
        """Count the frame, keep it in the ring, and write it (or hold it for its batch, or for the link)."""
        s, c = self.s, self.s.counters
        c.frames_in += 1
        if s.last_seq and msg.seq > s.last_seq + 1:
            c.seq_gaps += msg.seq - s.last_seq - 1
        s.last_seq = max(s.last_seq, msg.seq)
        s.ring.append(payload)
        if len(s.ring) > 2 * self.ring_frames:
            del s.ring[:len(s.ring) - self.ring_frames]
        if not s.link_up:
            c.frames_buffered_gap += 1
            if c.frames_in - s.gap_unsent == self.gap_frames + 1:  # from now on the oldest fall out
                return [LogLine("FRAMES_DROPPED_GAP", "warning", {
                    "call_sid": s.call_id, "kept_ms": self.gap_frames * 20, "reason": "link down longer than the buffer"})]
            return []
        c.frames_forwarded += 1
        if append is None:
            s.pending.append(forwarded)
            return []
        s.pending.clear()
        return [ToRealtime(s.call_id, RtAppend(append))]

    def _over_the_ai(self, raw: bytes, level: float, floor: float, speech: bool, now: float) -> list[object]:
        """A caller frame while the AI is audible: echo check, articulation, barge-in evidence."""
        out: list[object] = []
        explained = False
        if self.echo is not None:
            before = self.echo.delay_ms
            explained = self.echo.heard(now, level)
            if self.echo.delay_ms != before:
                out.append(LogLine("ECHO_PATH", "info", {
                    "call_sid": self.s.call_id, "delay_ms": self.echo.delay_ms,
                    "loss_db": round(self.echo.s.loss_db, 1), "corr": round(self.echo.s.corr, 2)}))
        if speech and explained:
            self.s.counters.echo_vetoes += 1
        voiced = speech and not explained
        reading = self.meter.update(raw, level, floor, voiced) if self.meter is not None else None
        if speech and explained:
            return out + [CallerLevel(level, floor, now, echo=True)]  # the judge remembers it, counts nothing
        if not voiced:
            return out
        # only speech-like frames travel; the judge leaks its accumulator by elapsed time
        if reading is None:
            return out + [CallerLevel(level, floor, now)]
        return out + [CallerLevel(level, floor, now, reading.syllables, reading.spectral_hz)]

    def _flush(self) -> list[object]:
        s = self.s
        if not s.pending or not s.link_up:
            return []
        append = encode_batch(s.pending)
        s.pending.clear()
        return [ToRealtime(s.call_id, RtAppend(append))]

    def _frames_holding(self, size: int, end: int) -> int:
        """How many frames, back from ring[end - 1], carry the last `size` bytes written (any frame size;
        beyond the ring, frames of 160 bytes are assumed)."""
        ring, index = self.s.ring, end
        while size > 0 and index > 0:
            index -= 1
            size -= b64_size(ring[index])
        return end - index + max(0, -(-size // 160))

    def _link_down(self, msg: LinkDown) -> list[object]:
        s, c = self.s, self.s.counters
        # queued for the lost connection (the newest appends), or waiting for their batch
        unsent = self._frames_holding(sum(map(b64_size, msg.unsent)), len(s.ring) - len(s.pending)) + len(s.pending)
        first_unsent = c.frames_in - unsent
        start = first_unsent
        if msg.replay_from_ms >= 0:
            start = min(start, s.session_start + msg.replay_from_ms // self.frame_ms)
        c.frames_forwarded -= unsent  # never written
        c.frames_buffered_gap += unsent
        s.link_up, s.gap_from, s.gap_unsent = False, start, first_unsent
        s.pending.clear()
        return []

    def _link_up(self) -> list[object]:
        s, c = self.s, self.s.counters
        if s.link_up:  # a rollover: the new session's audio starts with the frames waiting for their batch
            s.session_start = c.frames_in - len(s.pending)
            return []
        kept = s.ring[-self.ring_frames:]
        ring_start = c.frames_in - len(kept)
        # never-written frames: at most gap_buffer_ms of them, the newest
        new_from = max(s.gap_unsent, c.frames_in - self.gap_frames)
        dropped_new = new_from - s.gap_unsent
        # a turn the lost session never transcribed is re-sent from its start — unless the gap overflowed
        # (then the replay would not be contiguous, and the caller has said more since)
        start = max(s.gap_from, ring_start) if dropped_new == 0 else new_from
        replay = kept[start - ring_start:]
        resent = max(0, s.gap_unsent - start)
        c.frames_replayed_gap += len(replay) - resent
        c.frames_resent_turn += resent
        c.frames_dropped_gap += dropped_new
        c.frames_forwarded += len(replay) - resent
        s.link_up, s.session_start = True, start
        out: list[object] = [ToRealtime(s.call_id, RtAppend(p)) for p in replay]
        return out + [LogLine("GAP_REPLAYED", "warning" if dropped_new else "info", {
            "call_sid": s.call_id, "frames": len(replay) - resent, "resent_turn_frames": resent,
            "dropped": dropped_new})]

    def counters(self) -> dict[str, int]:
        out = msgspec.structs.asdict(self.s.counters)
        if self.echo is not None:
            out["echo_delay_ms"] = self.echo.delay_ms
            out["echo_loss_db"] = int(round(self.echo.s.loss_db)) if self.echo.s.known else -1
            out["echo_estimates"] = self.echo.s.estimates
        return out
