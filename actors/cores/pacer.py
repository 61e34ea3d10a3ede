"""TxPacer core — the one sender of `media`, `mark` and `clear` to Twilio for a call.

Theory of operation:
  * Realtime deltas (any size) are re-framed per response into 160-byte μ-law frames (framing.py)
    and queued. Nothing is sent on arrival: frames leave only on a Tick.
  * Frames are scheduled on an absolute clock: frame k of a continuous run starts playing at
    `anchor + k·frame`. On each Tick every frame whose play time is earlier than `now + lead` is
    sent, so Twilio's buffer holds at most `lead` (default 100 ms) of audio: a late tick up to the
    lead is absorbed, and a barge-in never has more than `lead` of audio to clear. If the next
    frame's play time is already in the past, Twilio's buffer ran dry: a new run is anchored at
    `now`, counted as an underrun when it happened inside a response.
  * A run starts (a response begins, or resumes after running dry) only when the jitter buffer
    (jitter.py) says enough of it is queued to ride out the delivery jitter seen on this call, or the
    response is complete, or it has waited that long: slack is kept in our queue, where a barge-in
    can still duck or flush it, not in Twilio's.
  * A mark follows every `mark_every_ms` of audio and the last frame of every response; echoes
    drive the playout clock (playout.py): audible / not audible, response finished, heard ms.
  * A barge-in candidate ducks the AI (μ-law gain table, `bytes.translate`) or pauses sending;
    RestorePlayout undoes either. A pause is not an underrun.
  * Ticks cost an actor hop per call every 20 ms, so the pacer says when it needs them (TickWanted):
    while audio is queued (waiting to start, playing, re-buffering), not while idle — a call that is
    only listening gets the timer ticks alone (lane_messages.py).
  * A CutPlayout flushes the queue, sends `clear` if anything is still in Twilio's buffer, ignores
    later deltas of the cut response and reports how much of the item the caller heard.
"""
from __future__ import annotations

import base64
from collections import deque
from typing import Any, Callable

import msgspec

from actors.cores.framing import CutFrame, Reframer, ReframerState
from actors.cores.jitter import JitterBuffer, JitterState
from actors.cores.playout import PlayoutClock, PlayoutState
from actors.cores.ulaw import gain_table, raw_level_db
from actors.ingress_messages import RtAudioDelta, RtAudioDone, RtResponseDone, Tick, TwilioMarkIn
from actors.lane_messages import TickWanted
from actors.lifecycle_messages import LogLine
from actors.link_messages import FinishResponse
from actors.messages import (
    CollectCounters,
    CutPlayout,
    DiscardAudio,
    DuckPlayout,
    HoldAudio,
    PausePlayout,
    PlayedLevels,
    PlayoutChanged,
    PlayoutCut,
    ReleaseAudio,
    ResponseFinished,
    RestorePlayout,
    TurnEnding,
)
from actors.wire_messages import ToTwilio, TwClear, TwilioOutEvent, TwMark, TwMarkBody, TwMedia, TwMediaBody

TURN_ENDING_MS = 1200  # "the last sentence": this much or less of a complete response left to play


class PacerCounters(msgspec.Struct):
    frames_enqueued: int = 0
    frames_sent: int = 0
    frames_flushed: int = 0
    marks_sent: int = 0
    clears_sent: int = 0
    underruns: int = 0
    blocked_ticks: int = 0
    responses_played: int = 0
    late_deltas_dropped: int = 0


class PacerState(msgspec.Struct):
    call_id: str
    stream_sid: str
    queue: list[CutFrame] = msgspec.field(default_factory=list)
    reframer: ReframerState = msgspec.field(default_factory=ReframerState)
    playout: PlayoutState = msgspec.field(default_factory=PlayoutState)
    counters: PacerCounters = msgspec.field(default_factory=PacerCounters)
    anchor: float = 0.0
    run_frames: int = 0
    in_run: bool = False
    mid_response: bool = False  # the last frame sent was not the last of its response
    audible: bool = False
    since_mark_ms: int = 0
    cut_responses: list[str] = msgspec.field(default_factory=list)
    next_status_at: float = 0.0
    status_sent: int = 0
    duck_gain_db: float = 0.0
    paused: bool = False
    held_responses: list[str] = msgspec.field(default_factory=list)
    held: list[CutFrame] = msgspec.field(default_factory=list)
    jitter: JitterState = msgspec.field(default_factory=JitterState)
    complete: list[str] = msgspec.field(default_factory=list)  # responses whose last frame is queued (last 8)
    ending_told: str = ""  # the response whose TurnEnding was sent
    truncate_uncertainty_ms: list[int] = msgspec.field(default_factory=list)
    rebuffering: bool = False  # ran dry inside a response: waiting for the jitter buffer to refill
    ticks_wanted: bool = True  # what the engine was last told (TickWanted); it ticks a new call


class TxPacerCore:
    def __init__(self, state: PacerState, frame_ms: int = 20, lead_ms: int = 100,
                 mark_every_ms: int = 100, status_every_ms: int = 5000, preroll_min_ms: int = 40,
                 preroll_max_ms: int = 400, preroll_initial_ms: int = 100, report_levels: bool = False) -> None:
        self.s = state
        self.report_levels = report_levels  # the echo guard's reference: levels of frames sent (PlayedLevels)
        self.levels: list[float] = []
        self.levels_from = 0.0
        self.frame_ms = frame_ms
        self.frame_s = frame_ms / 1000.0
        self.lead_s = lead_ms / 1000.0
        self.mark_every_ms = mark_every_ms
        self.status_every_s = status_every_ms / 1000.0
        self.queue: deque[CutFrame] = deque(state.queue)
        self.reframer = Reframer(frame_ms * 8, state.reframer)
        self.clock = PlayoutClock(state.playout)
        self.gain: bytes | None = gain_table(state.duck_gain_db) if state.duck_gain_db else None
        self.jitter = JitterBuffer(state.jitter, frame_ms, preroll_min_ms, preroll_max_ms, preroll_initial_ms)

    def snapshot(self) -> PacerState:
        self.s.queue = list(self.queue)
        self.s.reframer = self.reframer.state
        self.s.playout = self.clock.state
        return self.s

    # ------------------------------------------------------------------ inputs
    def handle(self, msg: object, now: float) -> list[object]:
        out = self._handle(msg, now)
        wanted = bool(self.queue)
        if wanted != self.s.ticks_wanted:
            self.s.ticks_wanted = wanted
            out.append(TickWanted(self.s.call_id, wanted, now))
        return out

    def _handle(self, msg: object, now: float) -> list[object]:
        handler = PACER_HANDLERS.get(type(msg))
        return [] if handler is None else handler(self, msg, now)

    def _finish(self, msg: RtAudioDone | RtResponseDone | FinishResponse, now: float) -> list[object]:
        return self._enqueue(self.reframer.finish(msg.response_id)) if msg.response_id not in self.s.cut_responses else []

    def _duck(self, msg: DuckPlayout, now: float) -> list[object]:
        self.s.duck_gain_db = msg.gain_db
        self.gain = gain_table(msg.gain_db) if msg.gain_db else None
        return []

    def _pause(self, msg: PausePlayout, now: float) -> list[object]:
        self.s.paused = True
        return []

    def _restore(self, msg: RestorePlayout, now: float) -> list[object]:
        self.s.duck_gain_db, self.gain = 0.0, None
        if self.s.paused:
            self.s.paused, self.s.mid_response = False, False  # resuming is not an underrun
        return []

    def _exiting(self, msg: CollectCounters, now: float) -> list[object]:
        c = self.s.counters
        return [LogLine("AUDIO_TX_LOOP exiting", "info", {
            "call_sid": self.s.call_id, "frames_enqueued": c.frames_enqueued, "frames_sent": c.frames_sent,
            "frames_flushed": c.frames_flushed, "underruns": c.underruns, "queued": len(self.queue)})]

    def started(self) -> list[object]:
        return [LogLine("AUDIO_TX_LOOP started", "info", {"call_sid": self.s.call_id,
                                                          "frame_pacing": f"{self.frame_ms}ms",
                                                          "tx_lead_ms": int(self.lead_s * 1000)})]

    def _delta(self, msg: RtAudioDelta, now: float) -> list[object]:
        if msg.response_id in self.s.cut_responses:
            self.s.counters.late_deltas_dropped += 1
            return []
        self.jitter.arrived(msg.response_id, len(msg.audio) * self.frame_ms / self.reframer.frame_bytes, msg.at)
        return self._enqueue(self.reframer.push(msg.response_id, msg.item_id, msg.audio))

    def _hold(self, response_id: str) -> list[object]:
        """Hold a response's audio; frames of it already queued (a hold that arrives late) are held too:
        none of a held answer may leave before its verdict."""
        s = self.s
        if response_id not in s.held_responses:
            s.held_responses.append(response_id)
        early = [f for f in self.queue if f.response_id == response_id]
        if not early:
            return []
        kept = [f for f in self.queue if f.response_id != response_id]
        self.queue.clear()
        self.queue.extend(kept)
        s.held.extend(early)
        return [LogLine("TX_HOLD_LATE", "warning", {"call_sid": s.call_id, "response_id": response_id,
                                                    "frames": len(early)})]

    def _head(self) -> tuple[int, bool]:
        """ms of audio queued for the response at the head of the queue, and whether all of it is queued."""
        head = self.queue[0].response_id
        frames, complete = 0, False
        for frame in self.queue:
            if frame.response_id != head:
                break
            frames += 1 if frame.payload else 0
            complete = complete or frame.last
        return frames * self.frame_ms, complete

    def _enqueue(self, frames: list[CutFrame]) -> list[object]:
        if self.s.held_responses:
            held = [f for f in frames if f.response_id in self.s.held_responses]
            if held:
                self.s.held.extend(held)
                frames = [f for f in frames if f.response_id not in self.s.held_responses]
        self.queue.extend(frames)
        self.s.counters.frames_enqueued += sum(1 for f in frames if f.payload)
        self._completed(frames)
        return []

    def _completed(self, frames: list[CutFrame]) -> None:
        for frame in frames:
            if frame.last:
                self.s.complete.append(frame.response_id)
                del self.s.complete[:-8]

    def _release(self, response_id: str, keep: bool) -> list[object]:
        s = self.s
        if response_id in s.held_responses:
            s.held_responses.remove(response_id)
        mine = [f for f in s.held if f.response_id == response_id]
        s.held = [f for f in s.held if f.response_id != response_id]
        if keep:
            self.queue.extend(mine)
            self._completed(mine)
            return []
        s.counters.frames_flushed += sum(1 for f in mine if f.payload)
        self._forget_response(response_id)
        return [LogLine("TX_DISCARD held answer", "info", {"call_sid": s.call_id, "response_id": response_id,
                                                             "frames": len(mine)})]

    def _forget_response(self, response_id: str) -> None:
        """Drop the response's carry-over and ignore its later deltas (the last 16 such are kept)."""
        s = self.s
        self.reframer.drop(response_id)
        if response_id not in s.cut_responses:
            s.cut_responses.append(response_id)
            del s.cut_responses[:-16]

    # ------------------------------------------------------------------ the clock
    def _tick(self, msg: Tick, now: float) -> list[object]:
        out: list[object] = []
        events: list[TwilioOutEvent] = []
        if self.queue and not self.s.paused:
            if not self._run_going(now, out):
                return out + self._status(now, events)
            self._send_due(now, events, out)
        if events:
            out = [ToTwilio(self.s.call_id, tuple(events)), *out, *self._playing(now)]
        return out + self._status(now, events)

    def _run_going(self, now: float, out: list[object]) -> bool:
        """The run goes on, or a new one is anchored at `now` (a response begins, or Twilio's buffer ran dry:
        an underrun inside a response) once the jitter buffer says enough is queued. False: not yet."""
        s = self.s
        if s.in_run and s.anchor + s.run_frames * self.frame_s >= now:
            return True
        if s.in_run and s.mid_response and not s.rebuffering:
            s.counters.underruns += 1
            s.rebuffering = True
            self.jitter.underrun()
            out.append(LogLine("TX_UNDERRUN", "warning", {"call_sid": s.call_id, "jitter_need_ms": self.jitter.s.need_ms}))
        queued_ms, complete = self._head()
        if not self.jitter.ready(self.queue[0].response_id, queued_ms, complete, now, s.rebuffering):
            return False
        s.anchor, s.run_frames, s.in_run, s.rebuffering = now, 0, True, False
        self.clock.reanchored(now)
        return True

    def _send_due(self, now: float, events: list[TwilioOutEvent], out: list[object]) -> None:
        # half a frame of tolerance: a frame leaves on the tick nearest its slot whatever the jitter
        # between this tick and the one that anchored the run; Twilio holds at most `lead` of audio
        s = self.s
        horizon = now + self.lead_s - self.frame_s / 2
        while self.queue and s.anchor + s.run_frames * self.frame_s < horizon:
            self._send_one(self.queue.popleft(), events, out, now)
        if self.queue:
            s.counters.blocked_ticks += 1

    def _playing(self, now: float) -> list[object]:
        """Frames left this tick: the AI is audible, and its last sentence may be playing."""
        s = self.s
        out: list[object] = []
        if not s.audible:
            s.audible = True
            out.append(PlayoutChanged(True, self.clock.state.response_id, now))
        playing = self.clock.state.response_id
        if playing != s.ending_told and playing in s.complete and len(self.queue) * self.frame_ms <= TURN_ENDING_MS:
            s.ending_told = playing  # its last sentence is playing: the judge treats a "כן" to a question as an answer
            out.append(TurnEnding(playing, now))
        return out

    def _status(self, now: float, events: list[TwilioOutEvent]) -> list[object]:
        s = self.s
        out: list[object] = []
        if now >= s.next_status_at:
            if s.next_status_at and (events or self.queue or s.counters.frames_sent != s.status_sent):
                out.append(LogLine("PIPELINE STATUS", "info", {
                    "call_sid": s.call_id, "sent": s.counters.frames_sent, "blocked": s.counters.blocked_ticks,
                    "queued": len(self.queue), "underruns": s.counters.underruns}))
                s.status_sent = s.counters.frames_sent
            s.next_status_at = now + self.status_every_s
        return out

    def _send_one(self, frame: CutFrame, events: list[TwilioOutEvent], out: list[object], now: float) -> None:
        s = self.s
        if frame.payload:
            play_at = s.anchor + s.run_frames * self.frame_s
            self.clock.frame_scheduled(frame.response_id, frame.item_id, play_at, self.frame_ms)
            payload = frame.payload.translate(self.gain) if self.gain is not None else frame.payload
            if self.report_levels:
                if self.levels and abs(play_at - (self.levels_from + len(self.levels) * self.frame_s)) > 1e-6:
                    out.append(PlayedLevels(self.levels_from, tuple(self.levels), now))  # a new run: not contiguous
                    self.levels = []
                if not self.levels:
                    self.levels_from = play_at
                self.levels.append(raw_level_db(payload))
            events.append(TwMedia(s.stream_sid, TwMediaBody(base64.b64encode(payload).decode("ascii"))))
            s.run_frames += 1
            s.counters.frames_sent += 1
            s.since_mark_ms += self.frame_ms
        s.mid_response = not frame.last
        if frame.last or s.since_mark_ms >= self.mark_every_ms:
            if frame.last and not frame.payload and self.clock.state.response_id != frame.response_id:
                self.clock.state.response_id, self.clock.state.item_id = frame.response_id, frame.item_id
            events.append(TwMark(s.stream_sid, TwMarkBody(self.clock.new_mark(frame.last))))
            s.counters.marks_sent += 1
            s.since_mark_ms = 0
            if self.levels:
                out.append(PlayedLevels(self.levels_from, tuple(self.levels), now))
                self.levels = []

    # ------------------------------------------------------------------ feedback
    def _mark_echo(self, name: str, now: float) -> list[object]:
        res = self.clock.echo(name)
        out: list[object] = []
        if res.mark is not None and res.mark.end:
            self.s.counters.responses_played += 1
            out.append(ResponseFinished(res.mark.response_id, res.mark.item_id, res.mark.item_ms, now))
        if res.idle and not self.queue and self.s.audible:
            self.s.audible = False
            out.append(PlayoutChanged(False, res.mark.response_id if res.mark else "", now))
        return out

    def _cut(self, reason: str, now: float) -> list[object]:
        s, st = self.s, self.clock.state
        out: list[object] = []
        response_id, item_id = st.response_id, st.item_id
        heard, sent = self.clock.heard_ms(now), st.item_sent_ms
        if item_id:  # how far the truncate point rests on the schedule rather than on an echoed mark
            s.truncate_uncertainty_ms.append(max(0, min(heard, sent) - st.item_echoed_ms))
            del s.truncate_uncertainty_ms[:-64]
        flushed_frames = [f for f in self.queue if f.payload]
        flushed = len(flushed_frames)
        ids = {f.response_id for f in self.queue} | {response_id, self.reframer.state.response_id}
        for rid in ids - {""}:
            self._forget_response(rid)
        self.queue.clear()
        self.levels = []  # sent since the last mark: cleared from Twilio's buffer, mostly never played
        s.counters.frames_flushed += flushed
        if self.clock.marks_pending or s.audible:
            self.clock.clear()
            s.counters.clears_sent += 1
            out.append(ToTwilio(s.call_id, (TwClear(s.stream_sid),)))
        s.in_run, s.mid_response, s.since_mark_ms, s.rebuffering = False, False, 0, False
        self.jitter.reset()
        s.paused, s.duck_gain_db, self.gain = False, 0.0, None
        generated = sent + sum(self.frame_ms for f in flushed_frames if f.item_id == item_id)
        out.append(PlayoutCut(response_id, item_id, heard, sent, now, generated))  # item "" = nothing playing
        self.clock.forget_item()
        if s.audible:
            s.audible = False
            out.append(PlayoutChanged(False, response_id, now))
        out.append(LogLine("TX_CUT", "info", {"call_sid": s.call_id, "reason": reason, "item_id": item_id,
                                               "heard_ms": heard, "sent_ms": sent, "frames_flushed": flushed}))
        return out

    def counters(self) -> dict[str, int]:
        return {**msgspec.structs.asdict(self.s.counters), **self.jitter.counters()}

    def series(self) -> dict[str, list[int]]:
        return {"truncate_uncertainty_ms": list(self.s.truncate_uncertainty_ms)}


PACER_HANDLERS: dict[type, Callable[[TxPacerCore, Any, float], list[object]]] = {
    Tick: TxPacerCore._tick,
    RtAudioDelta: TxPacerCore._delta,
    RtAudioDone: TxPacerCore._finish,
    RtResponseDone: TxPacerCore._finish,
    FinishResponse: TxPacerCore._finish,
    TwilioMarkIn: lambda pacer, msg, now: pacer._mark_echo(msg.name, now),
    CutPlayout: lambda pacer, msg, now: pacer._cut(msg.reason, now),
    HoldAudio: lambda pacer, msg, now: pacer._hold(msg.response_id),
    ReleaseAudio: lambda pacer, msg, now: pacer._release(msg.response_id, keep=True),
    DiscardAudio: lambda pacer, msg, now: pacer._release(msg.response_id, keep=False),
    DuckPlayout: TxPacerCore._duck,
    PausePlayout: TxPacerCore._pause,
    RestorePlayout: TxPacerCore._restore,
    CollectCounters: TxPacerCore._exiting,
}
