"""The RealtimeBridge's handling of a failing world: the link's lifecycle (lost, restored, rolled over,
given up), Realtime errors (retry the answer, or give up for the fallback) and the answer a lost
link cut (finished where its audio ended, continued once the caller heard it). Mixed into
RealtimeBridgeCore; the theory of operation is in session.py and rt_errors.py.
"""
from __future__ import annotations

from actors.cores.bridge_state import BridgeState, session_update
from actors.cores.preempt import Preemption, PreemptPhase
from actors.cores.rt_errors import ErrorClass, ResponseRetry, classify
from actors.cores.session import LinkPhase, SessionLink
from actors.lifecycle_messages import LogLine
from actors.link_messages import (
    FinishResponse,
    LinkDown,
    LinkUp,
    OpenRealtime,
    RealtimeConnected,
    RealtimeConnectFailed,
    RealtimeGaveUp,
    RealtimeLost,
    RtItemCreate,
    RtMessageItem,
    RtRateLimits,
    RtTextContent,
)
from actors.messages import DiscardAudio
from actors.settings import CallSettings
from actors.wire_messages import RtResponseCreate, RtResponseParams, ToRealtime

RESUME_NOTE = ("The line dropped for a moment while you were speaking; your previous message was cut where "
                       "it ends above. Continue naturally from there in the same language, without repeating "
                       "what was already said.")


class BridgeLinkMixin:
    s: BridgeState
    settings: CallSettings
    link: SessionLink
    retry: ResponseRetry
    preempt: Preemption

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.s.call_id, event)  # type: ignore[arg-type]

    def _answer_pending(self) -> list[object]:
        raise NotImplementedError

    # ------------------------------------------------------------------ the link and its failures
    @property
    def _live(self) -> bool:
        """Client events reach a session: the live one, or the first one (queued until it is open)."""
        return self.link.can_send

    def _tick(self, now: float) -> list[object]:
        s = self.s
        out: list[object] = []
        quiet = not (s.ai_audible or s.caller_speaking or s.turn_item or s.active_response or s.pending_answer or s.awaiting_cut
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
            s.turn_item, s.turn_start_ms = "", -1  # rolled over at a quiet moment: no turn in flight
            return out + [LinkUp(now), LogLine("REALTIME_ROLLED_OVER", "info", {
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
        # a caller turn the lost session heard but never transcribed is heard again by the new one
        replay_from = s.turn_start_ms if s.turn_item else -1
        s.turn_item, s.turn_start_ms = "", -1
        out: list[object] = [LinkDown(msg.unsent_audio, now, replay_from), LogLine("REALTIME_LOST", "warning", {
            "call_sid": s.call_id, "generation": msg.generation, "code": msg.code, "reason": msg.reason[:200],
            "unsent_appends": len(msg.unsent_audio), "ai_speaking": bool(s.active_response),
            "replay_untranscribed_turn_from_ms": replay_from})]
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
