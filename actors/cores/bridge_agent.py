"""The RealtimeBridge's conduct part: silence, the call's time limit, keypad entries, and leaving the
call only after the last words (conversation.py, departure.py).

Theory of operation: the part watches the responses and the playout the other parts handle. The
silence clock (SilencePhase) is armed when the caller heard the end of the AI's turn and the call is
quiet (the one rule, Facts.quiet); caller speech, a new response or audible AI disarm it. A reprompt
(or, past `max_reprompts`, the goodbye) goes out only at a quiet moment — if something is under way
when the clock fires, it simply starts again. Keypad digits become one entry, sent to the model as a
caller turn and answered. A departure (DeparturePhase, its TRANSITIONS in departure.py) starts from a
tool (Leave, told by the tools part) or a limit; while leaving no new answer starts, the goodbye is
asked for as soon as no response is active, and the call is left (LeaveCall) once it has played — or
at the departure's deadline, whatever went wrong.
"""
from __future__ import annotations

from string import Template

import msgspec

from actors.agent_messages import LeaveCall
from actors.cores.bridge_notes import STOP, AskResponse, Facts, Leave, OweAnswer, Tell, TurnText
from actors.cores.conversation import ClockVerdict, ConversationClock, ConversationState
from actors.cores.departure import Departure, DepartureState
from actors.ingress_messages import RtOutputItemAdded, RtResponseCreated, RtResponseDone, RtSpeechStarted, StartCall, Tick, TwilioDtmfIn
from actors.lifecycle_messages import LogLine
from actors.link_messages import RtItemCreate, RtMessageItem, RtTextContent
from actors.messages import AnswerRequest, DeleteItem, LetStand, PlayoutChanged, PlayoutCut, ResponseFinished
from actors.settings import CallSettings
from actors.wire_messages import ToRealtime

SPOKE_KEPT = 16


class AgentConductState(msgspec.Struct):
    departure: DepartureState = msgspec.field(default_factory=DepartureState)
    clock: ConversationState = msgspec.field(default_factory=ConversationState)
    spoke: list[str] = msgspec.field(default_factory=list)  # recent responses that carried a spoken message


class AgentConduct:
    def __init__(self, state: AgentConductState, settings: CallSettings, call_id: str, facts: Facts, tell: Tell) -> None:
        self.state = state
        self.settings = settings
        self.call_id = call_id
        self.facts, self.tell = facts, tell
        conversation = settings.agent.conversation
        self.departure = Departure(state.departure, conversation.leave_timeout_s)
        self.clock = ConversationClock(state.clock, conversation)

    # ------------------------------------------------------------------ facts
    @property
    def at_rest(self) -> bool:
        """Its share of the quiet rule: not leaving."""
        return not self.departure.active

    @property
    def leaving(self) -> bool:
        return self.departure.active

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.call_id, event)  # type: ignore[arg-type]

    def _log(self, event: str, **fields: object) -> LogLine:
        return LogLine(event, "info", {"call_sid": self.call_id, **fields})

    def _ask(self, instructions: str, now: float) -> list[object]:
        return self.tell(AskResponse(instructions), now)

    # ------------------------------------------------------------------ keypad
    def keypad_digit(self, msg: TwilioDtmfIn, now: float) -> list[object]:
        if not self.settings.agent.conversation.dtmf:
            return []
        entry = self.clock.digit(msg.digit, now)
        return self._keypad(entry, now) if entry else []

    def _keypad(self, entry: str, now: float) -> list[object]:
        text = Template(self.settings.agent.directives.keypad).safe_substitute(digits=" ".join(entry))
        self.clock.answered()
        out = self.tell(TurnText(f"keypad:{self.clock.state.dtmf_entries}", "user", text), now)
        out.append(self._log("KEYPAD_ENTRY", digits=entry))
        if self.departure.active:
            return out
        out.append(self._out(RtItemCreate(RtMessageItem("user", (RtTextContent("input_text", text),)))))
        return out + self.tell(OweAnswer("keypad"), now)

    # ------------------------------------------------------------------ leaving
    def leave(self, note: Leave, now: float) -> list[object]:
        return self._leave(note.leave, note.trigger_response, now)

    def _leave(self, leave: LeaveCall, trigger_response: str, now: float) -> list[object]:
        directives = self.settings.agent.directives
        directive = {"transferred": directives.handoff, "silence_timeout": directives.goodbye_silence,
                     "max_duration": directives.goodbye_time}.get(leave.end_reason, directives.goodbye)
        if not self.departure.start(leave, trigger_response, directive, now):
            return []
        self.clock.disarm()
        return [LogLine("LEAVING", "warning", {"call_sid": self.call_id, "kind": leave.kind,
                                               "end_reason": leave.end_reason, "reason": leave.reason[:200]})]

    def _leave_now(self) -> list[object]:
        leave = self.departure.state.leave
        if leave is None:  # never: a departure starts with its LeaveCall
            return []
        return [leave, LogLine("LEAVE_CALL", "warning", {"call_sid": self.call_id, "kind": leave.kind,
                                                         "end_reason": leave.end_reason})]

    def refuse_while_leaving(self, msg: AnswerRequest, now: float) -> list[object]:
        """While leaving no new answer starts (a held preemptive answer to this turn is still released)."""
        if not self.departure.active or self.facts.preempt_covers(msg.item_id):
            return []
        return [self._log("ANSWER_SKIPPED_LEAVING", item_id=msg.item_id), STOP]

    def goodbye_if_due(self, msg: object, now: float) -> list[object]:
        if not self.departure.wants_goodbye or self.facts.active_response or self.facts.awaiting_cut or not self.facts.live:
            return []
        self.departure.goodbye_requested()
        return self._ask(self.departure.state.directive, now)

    # ------------------------------------------------------------------ watching the other parts' events
    def call_started(self, msg: StartCall, now: float) -> list[object]:
        self.clock.started(now)
        return []

    def item_added(self, msg: RtOutputItemAdded, now: float) -> list[object]:
        spoke = self.state.spoke
        if msg.kind == "message" and msg.response_id not in spoke:
            spoke.append(msg.response_id)
            del spoke[:-SPOKE_KEPT]
        return []

    def response_created(self, msg: RtResponseCreated, now: float) -> list[object]:
        self.clock.disarm()
        self.departure.response_created(msg.response_id)
        return []

    def response_done(self, msg: RtResponseDone, now: float) -> list[object]:
        if self.departure.response_done(msg.response_id, msg.response_id in self.state.spoke):
            return self._leave_now()
        if self.facts.silence_may_start:
            self.clock.arm(now)  # e.g. a discarded answer to a filler: nothing will play, the silence goes on
        return []

    def playout_ended(self, msg: ResponseFinished | PlayoutCut, now: float) -> list[object]:
        return self._leave_now() if self.departure.playout_ended(msg.response_id) else []

    def playout_changed(self, msg: PlayoutChanged, now: float) -> list[object]:
        if msg.audible:
            self.clock.disarm()
        elif self.facts.silence_may_start:
            self.clock.arm(now)
        return []

    def caller_spoke(self, msg: RtSpeechStarted, now: float) -> list[object]:
        self.clock.disarm()
        return []

    def turn_answered(self, msg: AnswerRequest, now: float) -> list[object]:
        self.clock.answered()
        return []

    def no_answer(self, msg: DeleteItem | LetStand, now: float) -> list[object]:
        if self.facts.silence_may_start:
            self.clock.arm(now)  # a filler or a backchannel is not an answer: the silence starts again, the count stands
        return []

    # ------------------------------------------------------------------ the clock
    def leave_if_overdue(self, msg: Tick, now: float) -> list[object]:
        """Whatever went wrong, a departure leaves at its deadline (and nothing else happens on that tick)."""
        if not self.departure.overdue(now):
            return []
        return [LogLine("LEAVE_DEADLINE", "warning", {"call_sid": self.call_id}), *self._leave_now(), STOP]

    def tick(self, msg: Tick, now: float) -> list[object]:
        entry = self.clock.keypad_entry(now)
        out = self._keypad(entry, now) if entry else []
        return out + self._silence(now)

    def _silence(self, now: float) -> list[object]:
        """What the silence clock says, acted on only at a quiet moment (else it starts again)."""
        verdict = self.clock.verdict(now)
        if verdict is ClockVerdict.NOTHING or self.departure.active:
            return self.goodbye_if_due(None, now)
        if verdict is ClockVerdict.TIME_UP:
            self.clock.fired(verdict)
            return self._leave(LeaveCall(self.call_id, "hangup", "max_duration", "call time limit"), "", now) \
                + self.goodbye_if_due(None, now)
        if not self.facts.quiet:  # something is owed or under way: the silence starts again later
            self.clock.arm(now)
            return []
        self.clock.fired(verdict)
        if verdict is ClockVerdict.GIVE_UP:
            return self._leave(LeaveCall(self.call_id, "hangup", "silence_timeout", "no answer to reprompts"), "", now) \
                + self.goodbye_if_due(None, now)
        return self._ask(self.settings.agent.directives.reprompt, now) + [
            self._log("REPROMPT", after_s=self.settings.agent.conversation.reprompt_after_s, count=self.clock.state.reprompts)]

    def counters(self) -> dict[str, int]:
        return self.clock.counters()
