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
"""
from __future__ import annotations

import msgspec

from actors.cores.preempt import Preemption, PreemptState
from actors.messages import (
    AnswerRequest, CallSettings, DeleteItem, LogLine, PlayoutCut, PreemptiveAnswer, RtAssistantTranscriptDelta,
    RtAssistantTranscriptDone, RtAudioConfig, RtAudioInput, RtAudioOutput, RtError, RtFormat, RtItemDelete,
    RtItemTruncate, RtNoiseReduction, RtOutputItemAdded, RtResponseCancel, RtResponseCreate, RtResponseCreated,
    RtResponseDone, RtResponseParams, RtServerVad, RtSession, RtSessionUpdate, RtSessionUpdated,
    RtTranscriptionConfig, StartCall, ToRealtime, Utterance, WireDecodeError,
)


class BridgeCounters(msgspec.Struct):
    responses_requested: int = 0
    responses_created: int = 0
    responses_cancelled: int = 0
    answers_deferred: int = 0
    truncates_sent: int = 0
    realtime_errors: int = 0
    realtime_decode_errors: int = 0
    items_deleted: int = 0


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

    def snapshot(self) -> BridgeState:
        return self.s

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.s.call_id, event)  # type: ignore[arg-type]

    def handle(self, msg: object, now: float) -> list[object]:
        s, c = self.s, self.s.counters
        if isinstance(msg, StartCall):
            if s.greeting_requested:
                return []
            s.greeting_requested = True
            c.responses_requested += 1
            greet = RtResponseCreate(RtResponseParams(instructions=self.settings.greeting))
            return [self._out(session_update(self.settings)), self._out(greet),
                    LogLine("[GREETING] requested", "info", {"call_sid": s.call_id})]
        if isinstance(msg, RtSessionUpdated):
            s.session_ready = True
            return [LogLine("REALTIME_SESSION_READY", "info", {"call_sid": s.call_id})]
        if isinstance(msg, RtResponseCreated):
            s.active_response = msg.response_id
            c.responses_created += 1
            if self.preempt.idle:
                return []
            events, internal = self.preempt.created(msg.response_id, now)
            return [self._out(e) for e in events] + internal
        if isinstance(msg, RtOutputItemAdded):
            return [self._out(e) for e in self.preempt.item_added(msg.response_id, msg.item_id)]
        if isinstance(msg, PreemptiveAnswer):
            if s.active_response or s.awaiting_cut or s.pending_answer or not self.preempt.idle:
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
            return self._answer_pending()
        if isinstance(msg, AnswerRequest):
            if self.preempt.covers(msg.item_id):
                return self.preempt.release(now)
            out_pre: list[object] = [] if self.preempt.idle else self._discard_preempt(now)
            if msg.after_cut:
                s.awaiting_cut = True
            if s.active_response or s.awaiting_cut:
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
            return out + self._answer_pending()
        if isinstance(msg, DeleteItem):
            c.items_deleted += 1
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
            return [LogLine("AI_SAID", "info", {"call_sid": s.call_id, "text": msg.transcript}),
                    Utterance(s.call_id, "assistant", msg.transcript, "", -1, -1, False)]
        if isinstance(msg, RtError):
            c.realtime_errors += 1
            return [LogLine("REALTIME_ERROR", "warning", {"call_sid": s.call_id, "code": msg.code,
                                                          "message": msg.message})]
        if isinstance(msg, WireDecodeError):
            c.realtime_decode_errors += 1
            return [LogLine("REALTIME_DECODE_ERROR", "warning", {"call_sid": s.call_id, "reason": msg.reason})]
        return []

    def _discard_preempt(self, now: float) -> list[object]:
        events, internal = self.preempt.discard(self.s.active_response, now)
        return [self._out(e) for e in events] + internal + [
            LogLine("PREEMPTIVE_ANSWER discarded", "info", {"call_sid": self.s.call_id})]

    def _answer_pending(self) -> list[object]:
        s = self.s
        if s.pending_answer and not s.active_response and not s.awaiting_cut:
            s.pending_answer = ""
            s.counters.responses_requested += 1
            return [self._out(RtResponseCreate())]
        return []

    def counters(self) -> dict[str, int]:
        p = self.s.preempt
        return {**msgspec.structs.asdict(self.s.counters), "preemptive_requested": p.requested,
                "preemptive_used": p.used, "preemptive_discarded": p.discarded}

    def series(self) -> dict[str, list[int]]:
        return {"truncate_audio_end_ms": list(self.s.truncate_audio_end_ms)}
