"""RealtimeBridge core — owns the OpenAI Realtime session protocol for one call.

Theory of operation: the bridge is five parts, each a pure core with its own state — the link's
lifecycle (bridge_link.py), the caller's turns (bridge_caller.py), the book of responses and what is
owed (bridge_responses.py), the model's tool calls (bridge_tools.py) and the agent's conduct of the
call: silence, limits, keypad, leaving (bridge_agent.py). The bridge itself only routes: ROUTES names,
for every message type, the part that owns it and then the parts that watch it, in the order they
act. Parts read each other through Facts (answered live by the owner) and change each other only by
notes (bridge_notes.py), which are routed by the same table, in place. Every client event the parts
decide passes one gate, the link's: dropped while no session can receive it.

A route of a message from outside ends with SETTLE: a goodbye that became due is asked for, and the
calls of a held preemptive answer that was discarded are dropped with it. A step may refuse the
message (its last action is STOP): the rest of the route is skipped. The one quiet rule — nothing is
said, generated, requested, owed, awaited or running, and the session can be written — is each part's
`at_rest`, taken together in BridgeFacts.quiet; it decides both when the link may roll over and when
the silence clock may run.
"""
from __future__ import annotations

import enum
from typing import Any, Callable

import msgspec

from actors.agent_messages import RtFunctionCall, ToolDone
from actors.cores.bridge_agent import AgentConduct, AgentConductState
from actors.cores.bridge_caller import CallerState, CallerTurns
from actors.cores.bridge_link import LinkKeeper, LinkKeeperState
from actors.cores.bridge_notes import (
    STOP,
    AskResponse,
    HeldAnswerReleased,
    Leave,
    OweAnswer,
    PreemptFailed,
    SessionLost,
    SessionRestored,
    SessionRolledOver,
    TurnBegan,
    TurnForgotten,
    TurnText,
)
from actors.cores.bridge_responses import Owed, ResponseBook, ResponseBookState
from actors.cores.bridge_tools import ToolCalls, ToolCallsState
from actors.cores.preempt import FailedRequest
from actors.cores.session_config import session_update
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
    TwilioDtmfIn,
    WireDecodeError,
)
from actors.language_messages import CallerLanguageChanged
from actors.link_messages import RealtimeConnected, RealtimeConnectFailed, RealtimeLost, RtRateLimits
from actors.messages import AnswerRequest, DeleteItem, LetStand, PlayoutChanged, PlayoutCut, PreemptiveAnswer, ResponseFinished
from actors.settings import CallSettings

__all__ = ["BridgeState", "RealtimeBridgeCore", "ROUTES", "session_update"]


class Part(enum.Enum):
    LINK = "link"
    CALLER = "caller"
    RESPONSES = "responses"
    TOOLS = "tools"
    CONDUCT = "conduct"


LINK, CALLER, RESPONSES, TOOLS, CONDUCT = Part.LINK, Part.CALLER, Part.RESPONSES, Part.TOOLS, Part.CONDUCT
Handler = Callable[[Any, Any, float], list[object]]
Route = tuple[tuple[Part, Handler], ...]

SETTLE: Route = ((CONDUCT, AgentConduct.goodbye_if_due), (TOOLS, ToolCalls.settle_held_calls))

# message type → the part that owns it, then the parts that watch it, in the order they act
ROUTES: dict[type, Route] = {
    Tick: ((LINK, LinkKeeper.tick), (TOOLS, ToolCalls.tick), (CONDUCT, AgentConduct.leave_if_overdue),
           (TOOLS, ToolCalls.holding_line), (CONDUCT, AgentConduct.tick)),
    # the session's life
    StartCall: ((LINK, LinkKeeper.start_call), (RESPONSES, ResponseBook.greet), (CONDUCT, AgentConduct.call_started), *SETTLE),
    RealtimeConnected: ((LINK, LinkKeeper.connected), *SETTLE),
    RealtimeConnectFailed: ((LINK, LinkKeeper.connect_failed), *SETTLE),
    RealtimeLost: ((LINK, LinkKeeper.lost), *SETTLE),
    RtSessionUpdated: ((LINK, LinkKeeper.session_updated), *SETTLE),
    RtRateLimits: ((LINK, LinkKeeper.rate_limits), *SETTLE),
    RtError: ((LINK, LinkKeeper.error), *SETTLE),
    WireDecodeError: ((LINK, LinkKeeper.decode_error), *SETTLE),
    # the caller's turns, and the judge's verdicts on them
    RtSpeechStarted: ((CALLER, CallerTurns.speech_started), (CONDUCT, AgentConduct.caller_spoke), *SETTLE),
    RtSpeechStopped: ((CALLER, CallerTurns.speech_stopped), *SETTLE),
    RtTranscriptDone: ((CALLER, CallerTurns.transcript_done), *SETTLE),
    RtTranscriptFailed: ((CALLER, CallerTurns.transcript_failed), *SETTLE),
    PreemptiveAnswer: ((RESPONSES, ResponseBook.preemptive_answer), *SETTLE),
    AnswerRequest: ((CONDUCT, AgentConduct.refuse_while_leaving), (CALLER, CallerTurns.answered),
                    (RESPONSES, ResponseBook.answer_request), (CONDUCT, AgentConduct.turn_answered), *SETTLE),
    DeleteItem: ((CALLER, CallerTurns.not_answered), (RESPONSES, ResponseBook.delete_item), (CONDUCT, AgentConduct.no_answer),
                 *SETTLE),
    LetStand: ((CALLER, CallerTurns.not_answered), (RESPONSES, ResponseBook.let_stand), (CONDUCT, AgentConduct.no_answer),
               *SETTLE),
    CallerLanguageChanged: ((LINK, LinkKeeper.language_changed), (RESPONSES, ResponseBook.language_changed), *SETTLE),
    # the model's responses
    RtResponseCreated: ((LINK, LinkKeeper.response_created), (RESPONSES, ResponseBook.response_created),
                        (CONDUCT, AgentConduct.response_created), *SETTLE),
    RtOutputItemAdded: ((RESPONSES, ResponseBook.item_added), (CONDUCT, AgentConduct.item_added), *SETTLE),
    RtAssistantTranscriptDelta: ((RESPONSES, ResponseBook.transcript_delta), *SETTLE),
    RtAssistantTranscriptDone: ((RESPONSES, ResponseBook.assistant_said), *SETTLE),
    RtResponseDone: ((RESPONSES, ResponseBook.response_done), (LINK, LinkKeeper.response_done),
                     (CONDUCT, AgentConduct.response_done), *SETTLE),
    # what the caller hears (the TxPacer's playout clock)
    PlayoutChanged: ((CALLER, CallerTurns.playout_changed), (RESPONSES, ResponseBook.playout_changed),
                     (CONDUCT, AgentConduct.playout_changed), *SETTLE),
    PlayoutCut: ((RESPONSES, ResponseBook.playout_cut), (CONDUCT, AgentConduct.playout_ended), *SETTLE),
    ResponseFinished: ((RESPONSES, ResponseBook.response_finished), (CONDUCT, AgentConduct.playout_ended), *SETTLE),
    # the agent's own
    RtFunctionCall: ((TOOLS, ToolCalls.function_call),),
    ToolDone: ((TOOLS, ToolCalls.tool_done),),
    TwilioDtmfIn: ((CONDUCT, AgentConduct.keypad_digit),),
    # notes between the parts
    SessionLost: ((RESPONSES, ResponseBook.session_lost), (CALLER, CallerTurns.session_lost)),
    SessionRestored: ((RESPONSES, ResponseBook.session_restored),),
    SessionRolledOver: ((CALLER, CallerTurns.session_rolled_over),),
    PreemptFailed: ((RESPONSES, ResponseBook.preempt_failed),),
    TurnBegan: ((LINK, LinkKeeper.turn_began),),
    TurnText: ((LINK, LinkKeeper.turn_text),),
    TurnForgotten: ((LINK, LinkKeeper.turn_forgotten),),
    AskResponse: ((RESPONSES, ResponseBook.ask_response),),
    OweAnswer: ((RESPONSES, ResponseBook.owe_answer),),
    HeldAnswerReleased: ((TOOLS, ToolCalls.release_held_calls),),
    Leave: ((CONDUCT, AgentConduct.leave),),
}


class BridgeState(msgspec.Struct):
    call_id: str
    link: LinkKeeperState = msgspec.field(default_factory=LinkKeeperState)
    caller: CallerState = msgspec.field(default_factory=CallerState)
    responses: ResponseBookState = msgspec.field(default_factory=ResponseBookState)
    tools: ToolCallsState = msgspec.field(default_factory=ToolCallsState)
    conduct: AgentConductState = msgspec.field(default_factory=AgentConductState)


class RealtimeBridgeCore:
    def __init__(self, state: BridgeState, settings: CallSettings) -> None:
        self.state = state
        self.settings = settings
        facts, call_id = BridgeFacts(self), state.call_id
        self.link = LinkKeeper(state.link, settings, call_id, facts, self.tell)
        self.caller = CallerTurns(state.caller, self.tell)
        self.responses = ResponseBook(state.responses, settings, call_id, facts, self.tell)
        self.tools = ToolCalls(state.tools, settings, call_id, facts, self.tell)
        self.conduct = AgentConduct(state.conduct, settings, call_id, facts, self.tell)
        self.parts: dict[Part, object] = {LINK: self.link, CALLER: self.caller, RESPONSES: self.responses, TOOLS: self.tools,
                                          CONDUCT: self.conduct}

    def snapshot(self) -> BridgeState:
        return self.state

    def handle(self, msg: object, now: float) -> list[object]:
        return self.link.gate(self.tell(msg, now))

    def tell(self, msg: object, now: float) -> list[object]:
        """Route a message (or a part's note) through its parts, in order; a refusal ends the route."""
        out: list[object] = []
        for part, handler in ROUTES.get(type(msg), ()):
            actions = handler(self.parts[part], msg, now)
            if actions and actions[-1] is STOP:
                return out + actions[:-1]
            out += actions
        return out

    def counters(self) -> dict[str, int]:
        return {**self.responses.counters(), **self.link.counters(), **self.tools.counters(), **self.conduct.counters()}

    def series(self) -> dict[str, list[int]]:
        return {**self.responses.series(), **self.caller.series(), **self.link.series(), **self.tools.series()}


class BridgeFacts:
    """What the parts may read of each other, answered live by the part that owns the answer."""

    def __init__(self, bridge: RealtimeBridgeCore) -> None:
        self.bridge = bridge

    @property
    def quiet(self) -> bool:
        """The one quiet rule: every part at rest — the caller silent and every turn transcribed, the AI
        inaudible, no response generating, owed, awaiting its cut or preempted, no request in flight or
        waiting for its retry, no tool running, not leaving, and a session to write to."""
        bridge = self.bridge
        return (bridge.link.at_rest and bridge.caller.at_rest and bridge.responses.at_rest and bridge.tools.at_rest
                and bridge.conduct.at_rest)

    @property
    def language_layer(self) -> str:
        return self.bridge.link.language_layer

    @property
    def silence_may_start(self) -> bool:
        """Weaker than `quiet` on purpose: a request in flight, its retry, a preemptive answer or a turn not
        yet transcribed may still end without anything reaching the caller (an error, a discarded answer),
        and no message would then start the clock again — the clock starts, and waits at firing time."""
        bridge = self.bridge
        book, caller = bridge.responses.state, bridge.caller.state
        return not (book.active_response or book.owed is Owed.ANSWER or book.awaiting_cut or caller.ai_audible
                    or caller.speaking or not bridge.tools.at_rest or not bridge.conduct.at_rest
                    or not bridge.link.live)

    @property
    def live(self) -> bool:
        return self.bridge.link.live

    @property
    def session_open(self) -> bool:
        return self.bridge.link.session_open

    @property
    def generation(self) -> int:
        return self.bridge.link.session.state.generation

    @property
    def active_response(self) -> str:
        return self.bridge.responses.state.active_response

    @property
    def ai_audible(self) -> bool:
        return self.bridge.caller.state.ai_audible

    @property
    def awaiting_cut(self) -> bool:
        return self.bridge.responses.state.awaiting_cut

    @property
    def answer_owed(self) -> bool:
        return self.bridge.responses.state.owed is Owed.ANSWER

    @property
    def untranscribed_turn_from_ms(self) -> int:
        return self.bridge.caller.untranscribed_turn_from_ms

    @property
    def leaving(self) -> bool:
        return self.bridge.conduct.leaving

    def preempt_covers(self, user_item: str) -> bool:
        return self.bridge.responses.preempt.covers(user_item)

    def preempt_holds(self, response_id: str) -> bool:
        return self.bridge.responses.preempt.holds(response_id)

    def failed_request(self, response_id: str) -> FailedRequest:
        return self.bridge.responses.preempt.failed_request(response_id)
