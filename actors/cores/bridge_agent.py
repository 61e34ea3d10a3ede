"""The RealtimeBridge's agent side: function calls (tools.py), leaving the call after the last words
(departure.py), silence / time limits and keypad entries (conversation.py). Mixed into
RealtimeBridgeCore; it observes the events the bridge already handles (responses created / done,
playout, caller turns) and adds its own (RtFunctionCall, ToolDone, TwilioDtmfIn, ticks).

Who speaks when: a tool's output is sent as soon as it is known; the answer to it (`response.create`)
waits, like every answer, until no response is active — and until every tool called in the same
turn has answered. A tool slower than `slow_tool_s` gets one holding line, only while the AI is
silent. While leaving, no new answer starts.
"""
from __future__ import annotations

from string import Template

from actors.agent_messages import LeaveCall, RtFunctionCall, ToolDone
from actors.cores.bridge_state import BridgeState
from actors.cores.bridge_tools import BridgeToolsMixin
from actors.cores.conversation import ClockVerdict, ConversationClock
from actors.cores.departure import Departure
from actors.cores.preempt import Preemption, PreemptPhase
from actors.cores.session import SessionLink
from actors.cores.tools import ToolDesk
from actors.ingress_messages import RtOutputItemAdded, RtResponseCreated, RtResponseDone, RtSpeechStarted, StartCall, TwilioDtmfIn
from actors.lifecycle_messages import LogLine
from actors.link_messages import RtItemCreate, RtMessageItem, RtTextContent
from actors.messages import AnswerRequest, DeleteItem, LetStand, PlayoutChanged, PlayoutCut, ResponseFinished
from actors.settings import CallSettings
from actors.wire_messages import RtResponseCreate, RtResponseParams, ToRealtime

AGENT_EVENTS = (RtFunctionCall, ToolDone, TwilioDtmfIn)


class BridgeAgentMixin(BridgeToolsMixin):
    s: BridgeState
    settings: CallSettings
    desk: ToolDesk
    departure: Departure
    clock: ConversationClock
    preempt: Preemption
    link: SessionLink

    def _out(self, event: object) -> ToRealtime:
        raise NotImplementedError

    def _answer_pending(self) -> list[object]:
        raise NotImplementedError

    @property
    def _live(self) -> bool:
        raise NotImplementedError

    def _log_agent(self, event: str, **fields: object) -> LogLine:
        return LogLine(event, "info", {"call_sid": self.s.call_id, **fields})

    @property
    def _quiet(self) -> bool:
        """Nothing is owed to the caller: no response, no answer or cut pending, no tool running."""
        s = self.s
        return not (s.active_response or s.pending_answer or s.awaiting_cut or s.ai_audible or s.caller_speaking
                    or self.desk.busy or self.departure.active or not self._live)

    def _ask(self, instructions: str) -> ToRealtime:
        self.s.counters.responses_requested += 1
        return self._out(RtResponseCreate(RtResponseParams(instructions=instructions)))

    # ------------------------------------------------------------------ the agent's own events
    def _agent_event(self, msg: object, now: float) -> list[object]:
        if isinstance(msg, RtFunctionCall):
            self.s.call_sessions.setdefault(msg.tool_call_id, self.link.s.generation)
            if len(self.s.call_sessions) > 32:
                del self.s.call_sessions[next(iter(self.s.call_sessions))]
            held = self.preempt.s
            if held.phase in (PreemptPhase.HELD, PreemptPhase.REQUESTED) and held.response_id == msg.response_id:
                return self._hold_call(msg, now)
            events, leave = self.desk.called(msg, now)
            if not events and leave is None:
                return []  # a call id seen before
            out = self._outputs(events)
            out.append(self._log_agent("TOOL_CALLED", name=msg.name, tool_call_id=msg.tool_call_id))
            if leave is not None:
                out += self._leave(leave, msg.response_id, now)
            return out + self._tool_answer()
        if isinstance(msg, ToolDone):
            events = self.desk.done(msg, now)
            if not events:
                return [self._log_agent("TOOL_RESULT_LATE", tool_call_id=msg.tool_call_id, status=msg.status)]
            if msg.tool_call_id in self.s.speculative:  # its answer is still held: so is the result
                self._stash(events)
                return [self._log_agent("TOOL_DONE_HELD", tool_call_id=msg.tool_call_id, status=msg.status,
                                        elapsed_ms=msg.elapsed_ms)]
            out = self._outputs(events)
            out.append(self._log_agent("TOOL_DONE", tool_call_id=msg.tool_call_id, status=msg.status,
                                       elapsed_ms=msg.elapsed_ms))
            return out + self._tool_answer()
        if isinstance(msg, TwilioDtmfIn):
            if not self.settings.agent.conversation.dtmf:
                return []
            entry = self.clock.digit(msg.digit, now)
            return self._keypad(entry) if entry else []
        return []

    def _tool_answer(self) -> list[object]:
        """All tools of the turn answered: the model speaks next (after the active response)."""
        if self.desk.busy or self.departure.active or self.s.pending_answer:
            return []
        self.s.pending_answer = "tool"
        return self._answer_pending()

    def _keypad(self, entry: str) -> list[object]:
        text = Template(self.settings.agent.directives.keypad).safe_substitute(digits=" ".join(entry))
        self.clock.answered()
        self.link.turn_text(f"keypad:{self.clock.s.dtmf_entries}", "user", text)
        out: list[object] = [self._log_agent("KEYPAD_ENTRY", digits=entry)]
        if self.departure.active:
            return out
        out.append(self._out(RtItemCreate(RtMessageItem("user", (RtTextContent("input_text", text),)))))
        if not self.s.pending_answer:
            self.s.pending_answer = "keypad"
        return out + self._answer_pending()

    def _leave(self, leave: LeaveCall, trigger_response: str, now: float) -> list[object]:
        d = self.settings.agent.directives
        directive = {"transferred": d.handoff, "silence_timeout": d.goodbye_silence,
                     "max_duration": d.goodbye_time}.get(leave.end_reason, d.goodbye)
        if not self.departure.start(leave, trigger_response, directive, now):
            return []
        self.clock.disarm()
        return [LogLine("LEAVING", "warning", {"call_sid": self.s.call_id, "kind": leave.kind,
                                               "end_reason": leave.end_reason, "reason": leave.reason[:200]})]

    def _leave_now(self) -> list[object]:
        leave = self.departure.s.leave
        if leave is None:  # never: a departure starts with its LeaveCall
            return []
        return [leave, LogLine("LEAVE_CALL", "warning", {"call_sid": self.s.call_id, "kind": leave.kind,
                                                         "end_reason": leave.end_reason})]

    # ------------------------------------------------------------------ observing the bridge's events
    def _agent_after(self, msg: object, now: float) -> list[object]:
        """Called after the bridge handled `msg` (its state already updated)."""
        s, out = self.s, []
        if isinstance(msg, StartCall):
            self.clock.started(now)
        elif isinstance(msg, RtOutputItemAdded):
            if msg.kind == "message" and msg.response_id not in s.spoke:
                s.spoke.append(msg.response_id)
                del s.spoke[:-16]
        elif isinstance(msg, RtResponseCreated):
            self.clock.disarm()
            self.departure.response_created(msg.response_id)
        elif isinstance(msg, RtResponseDone):
            if self.departure.response_done(msg.response_id, msg.response_id in s.spoke):
                out += self._leave_now()
            elif self._quiet:
                self.clock.arm(now)  # e.g. a discarded answer to a filler: nothing will play, the silence goes on
        elif isinstance(msg, (ResponseFinished, PlayoutCut)):
            if self.departure.playout_ended(msg.response_id):
                out += self._leave_now()
        elif isinstance(msg, PlayoutChanged):
            if msg.audible:
                self.clock.disarm()
            elif self._quiet:
                self.clock.arm(now)
        elif isinstance(msg, RtSpeechStarted):
            self.clock.disarm()
        elif isinstance(msg, AnswerRequest):
            self.clock.answered()
        elif isinstance(msg, (DeleteItem, LetStand)) and self._quiet:
            self.clock.arm(now)  # a filler or a backchannel is not an answer: the silence starts again, the count stands
        return out + self._goodbye_if_due()

    def _goodbye_if_due(self) -> list[object]:
        s = self.s
        if not self.departure.wants_goodbye or s.active_response or s.awaiting_cut or not self._live:
            return []
        self.departure.goodbye_requested()
        return [self._ask(self.departure.s.directive)]

    def _agent_tick(self, now: float) -> list[object]:
        out: list[object] = []
        out += self._outputs(self.desk.tick(now))
        if out:
            out += self._tool_answer()
        if self.departure.overdue(now):
            return out + [LogLine("LEAVE_DEADLINE", "warning", {"call_sid": self.s.call_id})] + self._leave_now()
        if self.desk.holding_due(now) and not (self.s.active_response or self.s.ai_audible or self.departure.active):
            self.desk.holding_sent()
            out += [self._ask(self.settings.agent.directives.holding), self._log_agent("TOOL_HOLDING_LINE")]
        entry = self.clock.keypad_entry(now)
        if entry:
            out += self._keypad(entry)
        verdict = self.clock.verdict(now)
        if verdict is ClockVerdict.NOTHING or self.departure.active:
            return out + self._goodbye_if_due()
        if verdict is ClockVerdict.TIME_UP:
            self.clock.fired(verdict)
            return out + self._leave(LeaveCall(self.s.call_id, "hangup", "max_duration", "call time limit"), "", now) \
                + self._goodbye_if_due()
        if not self._quiet:  # something is owed or under way: the silence starts again later
            self.clock.arm(now)
            return out
        self.clock.fired(verdict)
        if verdict is ClockVerdict.GIVE_UP:
            return out + self._leave(LeaveCall(self.s.call_id, "hangup", "silence_timeout", "no answer to reprompts"), "",
                                     now) \
                + self._goodbye_if_due()
        return out + [self._ask(self.settings.agent.directives.reprompt),
                      self._log_agent("REPROMPT", after_s=self.settings.agent.conversation.reprompt_after_s,
                                      count=self.clock.s.reprompts)]
