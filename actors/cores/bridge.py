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

from actors.cores.bridge_agent import AGENT_EVENTS, BridgeAgentMixin
from actors.cores.bridge_link import BridgeLinkMixin
from actors.cores.bridge_state import BridgeCounters, BridgeState, session_update
from actors.cores.conversation import ConversationClock
from actors.cores.departure import Departure
from actors.cores.preempt import Preemption
from actors.cores.rt_errors import ResponseRetry
from actors.cores.session import SessionLink
from actors.cores.tools import ToolDesk
from actors.ingress_messages import (
    RtAssistantTranscriptDelta,
    RtAssistantTranscriptDone,
    RtError,
    RtOutputItemAdded,
    RtResponseCreated,
    RtResponseDone,
    RtSessionUpdated,
    RtSpeechStarted,
    RtSpeechStopped,
    RtTranscriptDone,
    RtTranscriptFailed,
    StartCall,
    Tick,
    WireDecodeError,
)
from actors.lifecycle_messages import LogLine
from actors.link_messages import RealtimeConnected, RealtimeConnectFailed, RealtimeLost, RtRateLimits
from actors.messages import AnswerRequest, DeleteItem, LetStand, PlayoutChanged, PlayoutCut, PreemptiveAnswer, ResponseFinished, Utterance
from actors.settings import CallSettings
from actors.wire_messages import RtItemDelete, RtItemTruncate, RtResponseCancel, RtResponseCreate, RtResponseParams, ToRealtime

__all__ = ["BridgeCounters", "BridgeState", "RealtimeBridgeCore", "session_update"]
SERIES_KEPT = 64


class RealtimeBridgeCore(BridgeLinkMixin, BridgeAgentMixin):
    def __init__(self, state: BridgeState, settings: CallSettings) -> None:
        self.s = state
        self.settings = settings
        self.preempt = Preemption(state.preempt)
        rt = settings.realtime
        self.link = SessionLink(state.link, rt, state.call_id)
        self.retry = ResponseRetry(state.retry, rt.response_retry_max)
        agent = settings.agent
        self.desk = ToolDesk(state.tools, agent, state.call_id)
        self.departure = Departure(state.departure, agent.conversation.leave_timeout_s)
        self.clock = ConversationClock(state.clock, agent.conversation)

    def snapshot(self) -> BridgeState:
        return self.s

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
        if isinstance(msg, Tick):
            return self._tick(now) + self._agent_tick(now)
        if isinstance(msg, AGENT_EVENTS):
            return self._agent_event(msg, now)
        releasing = isinstance(msg, AnswerRequest) and self.preempt.covers(msg.item_id)
        if isinstance(msg, AnswerRequest) and self.departure.active and not releasing:
            return [LogLine("ANSWER_SKIPPED_LEAVING", "info", {"call_sid": self.s.call_id, "item_id": msg.item_id})]
        return self._decide_session(msg, now) + self._agent_after(msg, now) + self._held_calls(releasing, now)

    def _decide_session(self, msg: object, now: float) -> list[object]:
        s, c = self.s, self.s.counters
        if isinstance(msg, (RealtimeConnected, RealtimeConnectFailed, RealtimeLost, RtRateLimits)):
            return self._link_event(msg, now)
        if isinstance(msg, PlayoutChanged):
            s.ai_audible = msg.audible
            if msg.audible and s.answer_wait_from:  # the caller stopped speaking, now the answer plays
                s.answer_latency_ms.append(int(round((now - s.answer_wait_from) * 1000)))
                del s.answer_latency_ms[:-SERIES_KEPT]
                s.answer_wait_from = 0.0
            return self._resume(now)
        if isinstance(msg, RtSpeechStarted):
            s.caller_speaking = True
            s.turn_item, s.turn_start_ms = msg.item_id, msg.audio_start_ms
            return []
        if isinstance(msg, RtSpeechStopped):
            s.caller_speaking = False
            s.answer_wait_from = now if not s.ai_audible else 0.0
            self.link.turn_started(msg.item_id, "user")
            return []
        if isinstance(msg, (RtTranscriptDone, RtTranscriptFailed)):
            if msg.item_id == s.turn_item:
                s.turn_item, s.turn_start_ms = "", -1
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
                self.retry.created_then_failed()
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
        if isinstance(msg, (DeleteItem, LetStand)):  # no answer: a filler's item goes, a backchannel's stays
            self.s.answer_wait_from = 0.0  # nothing to measure: this turn gets no answer
            discarded = self._discard_preempt(now) if self.preempt.covers(msg.item_id) else []
            if isinstance(msg, LetStand):
                c.backchannels_kept += 1
                return discarded
            c.items_deleted += 1
            self.link.forget(msg.item_id)
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
                "responses_retry_gave_up": self.retry.s.gave_up, **msgspec.structs.asdict(self.s.tools.counters),
                **self.clock.counters()}

    def series(self) -> dict[str, list[int]]:
        return {"truncate_audio_end_ms": list(self.s.truncate_audio_end_ms),
                "answer_latency_ms": list(self.s.answer_latency_ms),
                "reconnect_gap_ms": list(self.link.s.gap_ms), "tool_ms": list(self.s.tools.elapsed_ms)}
