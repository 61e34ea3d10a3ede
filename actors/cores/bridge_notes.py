"""How the parts of the RealtimeBridge talk to each other: facts to read, notes to tell.

Theory of operation: the bridge is three parts, each owning its own state — the link's lifecycle
(bridge_link.py), the book of responses and turns (bridge_turns.py) and the agent's desk of tools,
departure and silence (bridge_agent.py). A part never changes another part's state. It reads the
others through `Facts` (queries only, answered live by the part that owns the answer) and it changes
them by telling a note: `tell(note, now)` hands the note to the bridge, which routes it through the
same table as every message (bridge.py) to the one part that owns it, and returns what that part
decided, in place. A note is a decision made, never a request to be refused.
"""
from __future__ import annotations

from typing import Callable, Protocol

import msgspec

from actors.agent_messages import LeaveCall
from actors.cores.preempt import FailedRequest

Tell = Callable[[object, float], list[object]]


# ---------------------------------------------------------------------- link → turns
class SessionLost(msgspec.Struct):
    """The session is gone: what was generating is finished where its audio ended."""


class SessionRestored(msgspec.Struct):
    """A new session holds the conversation again: what is owed to the caller can be asked for."""


class SessionRolledOver(msgspec.Struct):
    """A new session replaced the old one at a quiet moment: no caller turn is in flight."""


class PreemptFailed(msgspec.Struct):
    """The preemptive answer's request failed: it is abandoned."""


# ---------------------------------------------------------------------- turns, agent → link
class TurnBegan(msgspec.Struct):
    """A turn of the conversation (kept to re-seed a restored session)."""

    item_id: str
    role: str


class TurnText(msgspec.Struct):
    """What a turn said (as heard, for the AI's turns)."""

    item_id: str
    role: str
    text: str


class TurnForgotten(msgspec.Struct):
    """A turn deleted from the conversation (a filler)."""

    item_id: str


# ---------------------------------------------------------------------- agent → turns
class AskResponse(msgspec.Struct):
    """Ask the model to speak now, with these instructions (a holding line, a reprompt, a goodbye)."""

    instructions: str


class OweAnswer(msgspec.Struct):
    """An answer is owed (to a tool's result, a keypad entry): asked for as soon as nothing is in the way."""

    reason: str


# ---------------------------------------------------------------------- tools → conduct
class Leave(msgspec.Struct):
    """A tool asked to leave the call (end_call, transfer): after the last words have played."""

    leave: LeaveCall
    trigger_response: str  # the response that called the tool


# ---------------------------------------------------------------------- responses → tools
class HeldAnswerReleased(msgspec.Struct):
    """The preemptive answer was released: the function calls it made are made now."""


class RouteEnd(msgspec.Struct):
    """Returned as its last action by a step that refuses the message: the rest of its route is skipped."""


STOP = RouteEnd()


class Facts(Protocol):
    """What a part may read of the others, answered live."""

    @property
    def live(self) -> bool:
        """Client events reach a session: the live one, or the first one (queued until it is open)."""

    @property
    def session_open(self) -> bool:
        """A session is live (not connecting, reconnecting or given up)."""

    @property
    def generation(self) -> int:
        """The session's connection number."""

    @property
    def leaving(self) -> bool:
        """The call is being left: no new answer starts."""

    @property
    def quiet(self) -> bool:
        """Nothing is said, generated, requested, owed or running: the one rule of a quiet moment."""

    @property
    def silence_may_start(self) -> bool:
        """The caller has the floor: nobody speaks, nothing generates, no answer or cut is owed, no tool runs,
        not leaving, a session to write to. The silence clock starts then; it acts only at a quiet moment."""

    @property
    def language_layer(self) -> str:
        """The instruction layer of the caller's language ("" while it is the business's first)."""

    @property
    def active_response(self) -> str:
        """The response generating now ("" if none)."""

    @property
    def ai_audible(self) -> bool:
        """The caller hears the AI now."""

    @property
    def awaiting_cut(self) -> bool:
        """A barge-in cut was decided and the pacer has not reported it yet."""

    @property
    def answer_owed(self) -> bool:
        """A caller turn (or a tool's result, a keypad entry) waits for its answer."""

    @property
    def untranscribed_turn_from_ms(self) -> int:
        """Where the caller turn the session heard and has not transcribed starts (-1: none)."""

    def preempt_covers(self, user_item: str) -> bool:
        """A preemptive answer to this caller turn is under way."""

    def preempt_holds(self, response_id: str) -> bool:
        """This response is the preemptive answer, still waiting for its verdict."""

    def failed_request(self, response_id: str) -> FailedRequest:
        """What the response.create that just failed was, for the preemptive answer."""
