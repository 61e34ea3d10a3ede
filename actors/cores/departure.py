"""Departure — leaving a call only after the caller heard the last words (end_call, transfer, limits).

Theory of operation: a departure starts from a function call (its response R may still be
generating and may or may not speak) or from a limit (silence, call time: nothing spoken yet).
  AWAIT_TRIGGER   R is still generating: wait for its response.done.
  SAY             nothing was spoken for the departure: ask for a goodbye / handoff response.
  AWAIT_GOODBYE   that response was asked for (response.created names it, response.done ends it).
  AWAIT_PLAYOUT   the spoken response is playing: leave at its end mark (ResponseFinished) or a cut.
  LEAVING         LeaveCall was emitted (once).
A response that spoke nothing leaves at its response.done. Whatever goes wrong (no audio, a lost
link, a mark that never comes) the departure leaves at its deadline — a call is never left hanging
open because a goodbye did not play. Caller speech meanwhile does not start new answers; a barge-in
cut of the goodbye leaves at once (the caller has heard what they will hear).
"""
from __future__ import annotations

import enum

import msgspec

from actors.agent_messages import LeaveCall


class DeparturePhase(enum.Enum):
    NONE = "none"
    AWAIT_TRIGGER = "await_trigger"
    SAY = "say"
    AWAIT_GOODBYE = "await_goodbye"
    AWAIT_PLAYOUT = "await_playout"
    LEAVING = "leaving"


TRANSITIONS: dict[tuple[DeparturePhase, str], DeparturePhase] = {
    (DeparturePhase.NONE, "from_tool"): DeparturePhase.AWAIT_TRIGGER,
    (DeparturePhase.NONE, "from_limit"): DeparturePhase.SAY,
    (DeparturePhase.AWAIT_TRIGGER, "spoke"): DeparturePhase.AWAIT_PLAYOUT,
    (DeparturePhase.AWAIT_TRIGGER, "silent"): DeparturePhase.SAY,
    (DeparturePhase.SAY, "requested"): DeparturePhase.AWAIT_GOODBYE,
    (DeparturePhase.AWAIT_GOODBYE, "spoke"): DeparturePhase.AWAIT_PLAYOUT,
    (DeparturePhase.AWAIT_GOODBYE, "silent"): DeparturePhase.LEAVING,
    (DeparturePhase.AWAIT_PLAYOUT, "played"): DeparturePhase.LEAVING,
    (DeparturePhase.AWAIT_TRIGGER, "deadline"): DeparturePhase.LEAVING,
    (DeparturePhase.SAY, "deadline"): DeparturePhase.LEAVING,
    (DeparturePhase.AWAIT_GOODBYE, "deadline"): DeparturePhase.LEAVING,
    (DeparturePhase.AWAIT_PLAYOUT, "deadline"): DeparturePhase.LEAVING,
}


class DepartureState(msgspec.Struct):
    phase: DeparturePhase = DeparturePhase.NONE
    leave: LeaveCall | None = None  # what is done once the last words have played
    response_id: str = ""  # the response whose end we wait for (trigger, then goodbye)
    deadline: float = 0.0
    directive: str = ""  # instructions of the goodbye / handoff response
    played: list[str] = msgspec.field(default_factory=list)  # responses whose playout ended (recent)


class Departure:
    def __init__(self, state: DepartureState, leave_timeout_s: float) -> None:
        self.state = state
        self.leave_timeout_s = leave_timeout_s

    @property
    def active(self) -> bool:
        return self.state.phase is not DeparturePhase.NONE

    @property
    def leaving(self) -> bool:
        return self.state.phase is DeparturePhase.LEAVING

    @property
    def wants_goodbye(self) -> bool:
        return self.state.phase is DeparturePhase.SAY

    def _go(self, event: str) -> bool:
        nxt = TRANSITIONS.get((self.state.phase, event))
        if nxt is None:
            return False
        self.state.phase = nxt
        return True

    def start(self, leave: LeaveCall, trigger_response: str, directive: str, now: float) -> bool:
        """From a tool (trigger_response = the response that called it) or a limit (""). False if already leaving."""
        if self.active:
            return False
        state = self.state
        state.leave, state.directive = leave, directive
        state.response_id, state.deadline = trigger_response, now + self.leave_timeout_s
        self._go("from_tool" if trigger_response else "from_limit")
        return True

    def goodbye_requested(self) -> None:
        self.state.response_id = ""
        self._go("requested")

    def response_created(self, response_id: str) -> None:
        if self.state.phase is DeparturePhase.AWAIT_GOODBYE and not self.state.response_id:
            self.state.response_id = response_id

    def response_done(self, response_id: str, spoke: bool) -> bool:
        """The awaited response finished generating. True when it is time to leave."""
        state = self.state
        if response_id != state.response_id or state.phase not in (DeparturePhase.AWAIT_TRIGGER, DeparturePhase.AWAIT_GOODBYE):
            return False
        if spoke and response_id in state.played:
            self._go("spoke")
            return self._go("played")
        self._go("spoke" if spoke else "silent")
        return self.leaving

    def playout_ended(self, response_id: str) -> bool:
        """ResponseFinished or a cut of `response_id`. True when it is time to leave."""
        state = self.state
        if response_id and response_id not in state.played:
            state.played.append(response_id)
            del state.played[:-8]
        return state.phase is DeparturePhase.AWAIT_PLAYOUT and response_id == state.response_id and self._go("played")

    def overdue(self, now: float) -> bool:
        return self.active and self.state.phase is not DeparturePhase.LEAVING and now >= self.state.deadline \
            and self._go("deadline")
