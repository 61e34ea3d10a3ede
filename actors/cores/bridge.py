"""RealtimeBridge core — owns the OpenAI Realtime session protocol for one call.

Theory of operation: at call start it configures the GA session (audio/pcmu both ways, input
transcription in the business's language, server VAD that never answers or interrupts on its own)
and asks for the greeting as an ordinary response, so it flows through the TxPacer like any other.
Afterwards it only acts on decisions: AnswerRequest (from the BargeInJudge) → `response.create`,
deferred while another response is still generating, or the release of a preemptive answer
(preempt.py) started at speech_stopped; DeleteItem → `conversation.item.delete` (and the discard of a
preemptive answer to that filler); PlayoutCut (from the TxPacer) →
`response.cancel` if that response is still generating, then `conversation.item.truncate` at what
the caller heard.
Session continuity (session.py) and error handling (rt_errors.py) live beside it: every client event
passes one gate (`_emit`) that drops events meant for a session that is gone; a lost link finishes the
answer in flight (what was received plays to its end), buffers caller audio in TwilioRx, reconnects
and re-seeds; a failed response.create is retried; a session that cannot be had hands the call to the
business's fallback (RealtimeGaveUp).
"""
from __future__ import annotations

import msgspec

from actors.cores.preempt import Preemption, PreemptPhase, PreemptState
from actors.cores.rt_errors import ErrorClass, ResponseRetry, RetryState, classify
from actors.cores.session import LinkPhase, LinkState, SessionLink
from actors.link_messages import (
    FinishResponse, LinkDown, RtItemCreate, RtMessageItem, RtTextContent, LinkUp, OpenRealtime, RealtimeConnected, RealtimeConnectFailed, RealtimeGaveUp,
    RealtimeLost, RtRateLimits,
)
from actors.messages import (
    AnswerRequest, CallSettings, DeleteItem, LogLine, PlayoutCut, PreemptiveAnswer, RtAssistantTranscriptDelta,
    RtAssistantTranscriptDone, RtAudioConfig, RtAudioInput, RtAudioOutput, RtError, RtFormat, RtItemDelete,
    RtItemTruncate, RtNoiseReduction, RtOutputItemAdded, RtResponseCancel, RtResponseCreate, RtResponseCreated,
    RtResponseDone, RtResponseParams, RtServerVad, RtSession, RtSessionUpdate, RtSessionUpdated,
    RtTranscriptionConfig, StartCall, ToRealtime, Utterance, WireDecodeError, Tick, PlayoutChanged, RtSpeechStarted,
    RtSpeechStopped, RtTranscriptDone, ResponseFinished, DiscardAudio,
)

RESUME_NOTE = ("The line dropped for a moment while you were speaking; your previous message was cut where "
                       "it ends above. Continue naturally from there in the same language, without repeating "
                       "what was already said.")


class BridgeCounters(msgspec.Struct):
    responses_requested: int = 0
    responses_created: int = 0
    responses_cancelled: int = 0
    answers_deferred: int = 0
    truncates_sent: int = 0
    realtime_errors: int = 0
    realtime_decode_errors: int = 0
    items_deleted: int = 0
    events_dropped_link_down: int = 0
    answers_cut_by_drop: int = 0
    responses_retried: int = 0


class BridgeState(msgspec.Struct):
    call_id: str
    session_ready: bool = False
    greeting_requested: bool = False
    active_response: str = ""
    pending_answer: str = ""  # item id of a caller turn waiting for the active response to finish
    truncate_audio_end_ms: list[int] = msgspec.field(default_factory=list)
    awaiting_cut: bool = False
    truncated: dict[str, int] = msgspec.field(default_factory=dict)  # assistant item → heard ms
    spoken: dict[str, str] = msgspec.field(default_factory=dict)  # assistant item → transcript so far
    preempt: PreemptState = msgspec.field(default_factory=PreemptState)
    counters: BridgeCounters = msgspec.field(default_factory=BridgeCounters)
    link: LinkState = msgspec.field(default_factory=LinkState)
    retry: RetryState = msgspec.field(default_factory=RetryState)
    ai_audible: bool = False
    caller_speaking: bool = False
    resume_pending: bool = False  # an answer was cut by a lost link: continue it once restored and silent
    dropped_item: str = ""  # its item: recorded as heard when its playout finishes
    active_item: str = ""  # assistant item of the active response


def session_update(settings: CallSettings) -> RtSessionUpdate:
    rt, vad = settings.realtime, settings.vad
    noise = RtNoiseReduction(rt.noise_reduction) if rt.noise_reduction else None
    keyword_models = ("gpt-transcribe", "gpt-live-transcribe")
    transcription = RtTranscriptionConfig(
        rt.transcription_model, settings.language,
        prompt=settings.transcription_prompt or None if rt.transcription_model not in keyword_models else None,
        keywords=settings.vocabulary or None if rt.transcription_model in keyword_models else None)
    audio_in = RtAudioInput(
        format=RtFormat(), transcription=transcription,
        turn_detection=RtServerVad(vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms),
        noise_reduction=noise)
    audio = RtAudioConfig(input=audio_in, output=RtAudioOutput(RtFormat(), rt.voice))
    return RtSessionUpdate(RtSession(instructions=settings.instructions, audio=audio))


class RealtimeBridgeCore:
    def __init__(self, state: BridgeState, settings: CallSettings) -> None:
        self.s = state
        self.settings = settings
        self.preempt = Preemption(state.preempt)
        rt = settings.realtime
        self.link = SessionLink(state.link, rt, state.call_id)
        self.retry = ResponseRetry(state.retry, rt.response_retry_max)

    def snapshot(self) -> BridgeState:
        return self.s

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.s.call_id, event)  # type: ignore[arg-type]

    def handle(self, msg: object, now: float) -> list[object]:
        return self._emit(self._decide(msg, now))

    def _emit(self, actions: list[object]) -> list[object]:
        """The one gate for client events: while no session can receive them they are dropped (their
        session is gone; the restore re-sends what matters), and every response.create is tracked."""
        if self.link.can_send:
            for action in actions:
                if isinstance(action, ToRealtime) and isinstance(action.event, RtResponseCreate):
                    params = action.event.response
                    self.retry.sent(params.instructions or "" if params else "")
            return actions
        kept = [a for a in actions if not isinstance(a, ToRealtime)]
        self.s.counters.events_dropped_link_down += len(actions) - len(kept)
        return kept

    def _decide(self, msg: object, now: float) -> list[object]:
        s, c = self.s, self.s.counters
        if isinstance(msg, Tick):
            return self._tick(now)
        if isinstance(msg, (RealtimeConnected, RealtimeConnectFailed, RealtimeLost, RtRateLimits)):
            return self._link_event(msg, now)
        if isinstance(msg, PlayoutChanged):
            s.ai_audible = msg.audible
            return self._resume(now)
        if isinstance(msg, RtSpeechStarted):
            s.caller_speaking = True
            return []
        if isinstance(msg, RtSpeechStopped):
            s.caller_speaking = False
            self.link.turn_started(msg.item_id, "user")
            return []
        if isinstance(msg, RtTranscriptDone):
            self.link.turn_text(msg.item_id, "user", msg.transcript)
            return []
        if isinstance(msg, ResponseFinished):
            if msg.item_id and msg.item_id == s.dropped_item:
                s.dropped_item = ""
                text = s.spoken.pop(msg.item_id, "")
                return [Utterance(s.call_id, "assistant", text, "", -1, -1, True, msg.played_ms)]
            return []
        if isinstance(msg, StartCall):
            if s.greeting_requested:
                return []
            s.greeting_requested = True
            c.responses_requested += 1
            greet = RtResponseCreate(RtResponseParams(instructions=self.settings.greeting))
            return [self.link.start(now), self._out(session_update(self.settings)), self._out(greet),
                    LogLine("[GREETING] requested", "info", {"call_sid": s.call_id})]
        if isinstance(msg, RtSessionUpdated):
            s.session_ready = True
            return [LogLine("REALTIME_SESSION_READY", "info", {"call_sid": s.call_id})]
        if isinstance(msg, RtResponseCreated):
            s.active_response = msg.response_id
            c.responses_created += 1
            self.retry.created()
            if self.preempt.idle:
                return []
            events, internal = self.preempt.created(msg.response_id, now)
            return [self._out(e) for e in events] + internal
        if isinstance(msg, RtOutputItemAdded):
            self.link.turn_started(msg.item_id, "assistant")
            if msg.response_id == s.active_response:
                s.active_item = msg.item_id
            return [self._out(e) for e in self.preempt.item_added(msg.response_id, msg.item_id)]
        if isinstance(msg, PreemptiveAnswer):
            if s.active_response or s.awaiting_cut or s.pending_answer or not self.preempt.idle or not self._live:
                return []
            self.preempt.requested(msg.item_id)
            c.responses_requested += 1
            return [self._out(RtResponseCreate()),
                    LogLine("PREEMPTIVE_ANSWER started", "info", {"call_sid": s.call_id, "item_id": msg.item_id})]
        if isinstance(msg, RtResponseDone):
            if s.active_response == msg.response_id:
                s.active_response = ""
            if msg.status == "cancelled":
                c.responses_cancelled += 1
            if msg.status == "failed":
                self.retry.s.in_flight = True  # the request it answered failed: a retry re-sends it
                return self._error(msg.error_code or "response_failed", "", f"response {msg.response_id} failed", now,
                                   msg.response_id)
            return self._answer_pending()
        if isinstance(msg, AnswerRequest):
            if self.preempt.covers(msg.item_id):
                return self.preempt.release(now)
            out_pre: list[object] = [] if self.preempt.idle else self._discard_preempt(now)
            if msg.after_cut:
                s.awaiting_cut = True
            if s.active_response or s.awaiting_cut or not self._live:
                s.pending_answer = msg.item_id
                c.answers_deferred += 1
                return out_pre + [LogLine("ANSWER_DEFERRED", "info", {"call_sid": s.call_id, "item_id": msg.item_id})]
            c.responses_requested += 1
            return out_pre + [self._out(RtResponseCreate())]
        if isinstance(msg, PlayoutCut):
            out: list[object] = []
            s.awaiting_cut = False
            if s.active_response and s.active_response == msg.response_id:
                out.append(self._out(RtResponseCancel(msg.response_id)))
            if not msg.item_id:
                return out + self._answer_pending()
            end_ms = min(msg.heard_ms, msg.sent_ms)
            out.append(self._out(RtItemTruncate(msg.item_id, end_ms)))
            c.truncates_sent += 1
            s.truncate_audio_end_ms.append(end_ms)
            s.truncated[msg.item_id] = end_ms
            if len(s.truncated) > 16:
                del s.truncated[next(iter(s.truncated))]
            out.append(LogLine("TRUNCATE", "info", {"call_sid": s.call_id, "item_id": msg.item_id,
                                                    "audio_end_ms": end_ms, "sent_ms": msg.sent_ms}))
            so_far = s.spoken.pop(msg.item_id, "")
            share = end_ms / msg.generated_ms if msg.generated_ms > 0 else 1.0
            heard_text = so_far[: int(round(len(so_far) * min(1.0, share)))].rstrip()
            out.append(Utterance(s.call_id, "assistant", heard_text, "", -1, -1, True, end_ms))
            self.link.turn_text(msg.item_id, "assistant", heard_text)
            return out + self._answer_pending()
        if isinstance(msg, DeleteItem):
            c.items_deleted += 1
            self.link.forget(msg.item_id)
            discarded = self._discard_preempt(now) if self.preempt.covers(msg.item_id) else []
            return discarded + [self._out(RtItemDelete(msg.item_id))]
        if isinstance(msg, RtAssistantTranscriptDelta):
            if len(s.spoken) > 8 and msg.item_id not in s.spoken:
                del s.spoken[next(iter(s.spoken))]
            s.spoken[msg.item_id] = s.spoken.get(msg.item_id, "") + msg.delta
            return []
        if isinstance(msg, RtAssistantTranscriptDone):
            s.spoken.pop(msg.item_id, None)
            if msg.item_id in s.truncated:  # recorded at the cut, with what was heard
                return []
            self.link.turn_text(msg.item_id, "assistant", msg.transcript)
            return [LogLine("AI_SAID", "info", {"call_sid": s.call_id, "text": msg.transcript}),
                    Utterance(s.call_id, "assistant", msg.transcript, "", -1, -1, False)]
        if isinstance(msg, RtError):
            return self._error(msg.code, msg.type, msg.message, now)
        if isinstance(msg, WireDecodeError):
            c.realtime_decode_errors += 1
            return [LogLine("REALTIME_DECODE_ERROR", "warning", {"call_sid": s.call_id, "reason": msg.reason})]
        return []

    # ------------------------------------------------------------------ the link and its failures
    @property
    def _live(self) -> bool:
        """Client events reach a session: the live one, or the first one (queued until it is open)."""
        return self.link.can_send

    def _tick(self, now: float) -> list[object]:
        s = self.s
        out: list[object] = []
        quiet = not (s.ai_audible or s.caller_speaking or s.active_response or s.pending_answer or s.awaiting_cut
                     or s.resume_pending or not self.preempt.idle or self.retry.s.in_flight or self.retry.s.due_at >= 0)
        step = self.link.tick(now, quiet)
        if isinstance(step, OpenRealtime):
            event = "REALTIME_ROLLOVER_STARTED" if step.rollover else "REALTIME_CONNECTING"
            out += [step, LogLine(event, "info", {"call_sid": s.call_id, "generation": step.generation,
                                                  "attempt": self.link.s.attempts, "timeout_s": step.timeout_s})]
        elif isinstance(step, str):
            out += self._give_up(step)
        if self._live:
            instructions = self.retry.due(now)
            if instructions is not None:
                s.counters.responses_retried += 1
                params = RtResponseParams(instructions=instructions) if instructions else None
                out += [self._out(RtResponseCreate(params)),
                        LogLine("RESPONSE_RETRIED", "info", {"call_sid": s.call_id, "retried": self.retry.s.retried})]
        return out

    def _link_event(self, msg: object, now: float) -> list[object]:
        s = self.s
        if isinstance(msg, RtRateLimits):
            self.retry.rate_limits(msg.reset_s, now)
            return []
        if isinstance(msg, RealtimeConnectFailed):
            if not self.link.connect_failed(msg.generation, now):
                return []
            return [LogLine("REALTIME_CONNECT_FAILED", "warning", {
                "call_sid": s.call_id, "generation": msg.generation, "reason": msg.reason,
                "phase": self.link.phase.value, "failures": self.link.s.connect_failures})]
        if isinstance(msg, RealtimeLost):
            return self._lost(msg, now)
        assert isinstance(msg, RealtimeConnected)
        before = self.link.connected(msg.generation, now)
        if before is None:
            return []
        if before is LinkPhase.CONNECTING:
            return [LogLine("REALTIME_SESSION_OPEN", "info", {"call_sid": s.call_id, "generation": msg.generation})]
        items = self.link.reseed()
        out: list[object] = [self._out(session_update(self.settings)), *[self._out(item) for item in items]]
        if before is LinkPhase.ROLLING:
            return out + [LogLine("REALTIME_ROLLED_OVER", "info", {
                "call_sid": s.call_id, "generation": msg.generation, "items_reseeded": len(items),
                "rollovers": self.link.s.rollovers})]
        out += [LinkUp(now), LogLine("REALTIME_RESTORED", "warning", {
            "call_sid": s.call_id, "generation": msg.generation, "gap_ms": self.link.s.gap_ms[-1],
            "items_reseeded": len(items), "reconnects": self.link.s.reconnects})]
        return out + self._answer_pending() + self._resume(now)

    def _lost(self, msg: RealtimeLost, now: float) -> list[object]:
        s = self.s
        if not self.link.lost(msg.generation, now):
            return []
        out: list[object] = [LinkDown(msg.unsent_audio, now), LogLine("REALTIME_LOST", "warning", {
            "call_sid": s.call_id, "generation": msg.generation, "code": msg.code, "reason": msg.reason[:200],
            "unsent_frames": len(msg.unsent_audio), "ai_speaking": bool(s.active_response)})]
        held = self.preempt.s.response_id if self.preempt.s.phase is PreemptPhase.HELD else ""
        if not self.preempt.idle:
            if held:
                out.append(DiscardAudio(held, now))
            self.preempt.s.phase = PreemptPhase.IDLE  # its session is gone; the verdict takes the normal path
        if s.active_response and s.active_response != held:
            # the answer in flight gets no more audio: what was received plays to its end, and the model
            # continues from the re-seeded context once the session is back and the caller heard it all
            item = s.active_item
            out.append(FinishResponse(s.active_response, now))
            s.counters.answers_cut_by_drop += 1
            s.resume_pending = True
            if item:
                s.dropped_item = item
                self.link.turn_text(item, "assistant", s.spoken.get(item, ""))
        s.active_response = s.active_item = ""
        s.caller_speaking = False
        self.retry.reset()
        return out

    def _resume(self, now: float) -> list[object]:
        s = self.s
        if not (s.resume_pending and self.link.phase is LinkPhase.LIVE and not s.ai_audible and not s.active_response
                and not s.pending_answer and not s.awaiting_cut and self.preempt.idle):
            return []
        s.resume_pending = False
        s.counters.responses_requested += 1
        note = RtItemCreate(RtMessageItem("system", (RtTextContent("input_text", RESUME_NOTE),)))
        return [self._out(note), self._out(RtResponseCreate()),
                LogLine("ANSWER_RESUMED", "info", {"call_sid": s.call_id})]

    def _error(self, code: str, error_type: str, message: str, now: float, response_id: str = "") -> list[object]:
        s = self.s
        s.counters.realtime_errors += 1
        kind = classify(code, error_type)
        out: list[object] = [LogLine("REALTIME_ERROR", "warning", {"call_sid": s.call_id, "code": code,
                                                                   "class": kind.value, "message": message[:300]})]
        if kind is ErrorClass.SESSION_FATAL:
            return out + self._give_up(f"realtime_{code}")
        if kind is not ErrorClass.RETRY_RESPONSE or not self.retry.s.in_flight:
            return out
        phase = self.preempt.s.phase
        held_failed = phase is PreemptPhase.HELD and response_id and response_id == self.preempt.s.response_id
        if phase in (PreemptPhase.REQUESTED, PreemptPhase.DISCARD_ON_CREATE) or held_failed:
            # the preemptive request failed before its verdict: the verdict will ask for an answer itself
            self.preempt.s.phase = PreemptPhase.IDLE
            self.retry.drop()
            return out
        if phase is PreemptPhase.RELEASE_ON_CREATE:
            self.preempt.s.phase = PreemptPhase.IDLE  # the verdict was a turn: retried as a plain answer
        if self.retry.failed(now):
            return out + [LogLine("RESPONSE_RETRY_SCHEDULED", "warning", {
                "call_sid": s.call_id, "code": code, "in_s": round(self.retry.s.due_at - now, 3),
                "try": self.retry.s.tries})]
        return out + self._give_up(f"realtime_{code}")

    def _give_up(self, reason: str) -> list[object]:
        if not self.link.give_up(reason):
            return []
        return [LinkDown((), 0.0), RealtimeGaveUp(self.s.call_id, reason),
                LogLine("REALTIME_UNAVAILABLE", "error", {"call_sid": self.s.call_id, "reason": reason})]

    def _discard_preempt(self, now: float) -> list[object]:
        events, internal = self.preempt.discard(self.s.active_response, now)
        return [self._out(e) for e in events] + internal + [
            LogLine("PREEMPTIVE_ANSWER discarded", "info", {"call_sid": self.s.call_id})]

    def _answer_pending(self) -> list[object]:
        s = self.s
        if s.pending_answer and not s.active_response and not s.awaiting_cut and self._live:
            s.pending_answer = ""
            s.resume_pending = False  # the caller spoke since: answer them, not the cut sentence
            s.counters.responses_requested += 1
            return [self._out(RtResponseCreate())]
        return []

    def counters(self) -> dict[str, int]:
        p = self.s.preempt
        return {**msgspec.structs.asdict(self.s.counters), "preemptive_requested": p.requested,
                "preemptive_used": p.used, "preemptive_discarded": p.discarded, **self.link.counters(),
                "responses_retry_gave_up": self.retry.s.gave_up}

    def series(self) -> dict[str, list[int]]:
        return {"truncate_audio_end_ms": list(self.s.truncate_audio_end_ms),
                "reconnect_gap_ms": list(self.link.s.gap_ms)}
