"""CallSupervisor core — call lifecycle, message routing and child restarts, without any actor code.

Theory of operation: the supervisor is the only entry point of a call's tree. Every message that
reaches a child goes through `route()`, which returns the roles to deliver to now. A failed child
(handler raised twice → PoisonMessage, or it exited) is marked RESTARTING: messages for it are
buffered in arrival order; its state snapshot (sent by the child as it exits) is kept; when the exit
is confirmed a new child is spawned, restored from that snapshot, and the buffer is replayed, so no
message is lost or delivered twice. Phases: STARTING → ACTIVE → ENDING → ENDED.
Known gap: a child that exits on its own (not through PoisonMessage) is buffered for only from the
moment its snapshot reaches the supervisor; a message routed to it from something already queued
ahead of that snapshot would be lost. Failures by PoisonMessage do not have this gap.
"""
from __future__ import annotations

import enum

from actors.agent_messages import RtFunctionCall, ToolDone
from actors.ingress_messages import (
    RtAssistantTranscriptDelta,
    RtAssistantTranscriptDone,
    RtAudioDelta,
    RtAudioDone,
    RtError,
    RtOutputItemAdded,
    RtResponseCreated,
    RtResponseDone,
    RtSessionUpdated,
    RtSpeechStarted,
    RtSpeechStopped,
    RtTranscriptDone,
    RtTranscriptFailed,
    Tick,
    TwilioDtmfIn,
    TwilioMarkIn,
    TwilioMediaIn,
    WireDecodeError,
)
from actors.language_messages import CallerLanguageChanged
from actors.link_messages import (
    FinishResponse,
    LinkDown,
    LinkUp,
    RealtimeConnected,
    RealtimeConnectFailed,
    RealtimeLost,
    RtRateLimits,
)
from actors.messages import (
    AnswerRequest,
    CallerLevel,
    CounterReport,
    CutPlayout,
    DeleteItem,
    DiscardAudio,
    DuckPlayout,
    HoldAudio,
    LetStand,
    PausePlayout,
    PlayedLevels,
    PlayoutChanged,
    PlayoutCut,
    PreemptiveAnswer,
    ReleaseAudio,
    ResponseFinished,
    RestorePlayout,
    TurnEnding,
)

ROLES = ("rx", "bridge", "pacer", "judge", "metrics")
JUDGE_TICK_EVERY = 5


class CallPhase(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    ENDING = "ending"
    ENDED = "ended"


PHASE_TRANSITIONS: dict[tuple[CallPhase, str], CallPhase] = {
    (CallPhase.STARTING, "start"): CallPhase.ACTIVE,
    (CallPhase.ACTIVE, "end"): CallPhase.ENDING,
    (CallPhase.STARTING, "end"): CallPhase.ENDING,
    (CallPhase.ENDING, "summarized"): CallPhase.ENDED,
}

ROUTES: dict[type, tuple[str, ...]] = {
    TwilioMediaIn: ("rx",),
    TwilioDtmfIn: ("rx", "bridge"),
    RtFunctionCall: ("bridge",),
    ToolDone: ("bridge",),
    Tick: ("pacer",),  # a timer tick (every JUDGE_TICK_EVERY-th) to the judge and bridge too: timeouts need 100 ms
    TwilioMarkIn: ("pacer",),
    RtAudioDelta: ("pacer",),
    RtAudioDone: ("pacer",),
    RtResponseCreated: ("bridge", "pacer"),
    RtResponseDone: ("bridge", "pacer"),
    RtSessionUpdated: ("bridge",),
    RtError: ("bridge",),
    RtAssistantTranscriptDone: ("bridge", "judge"),
    TurnEnding: ("judge",),
    RtAssistantTranscriptDelta: ("bridge",),
    RtSpeechStarted: ("judge", "bridge"),
    RtSpeechStopped: ("judge", "bridge"),
    RtTranscriptDone: ("judge", "bridge"),
    RtTranscriptFailed: ("judge", "bridge"),
    CallerLanguageChanged: ("bridge", "metrics"),
    AnswerRequest: ("bridge",),
    PlayoutChanged: ("judge", "rx", "bridge"),
    CallerLevel: ("judge",),
    PlayedLevels: ("rx",),
    DuckPlayout: ("pacer",),
    PausePlayout: ("pacer",),
    RestorePlayout: ("pacer",),
    DeleteItem: ("bridge",),
    LetStand: ("bridge",),
    PreemptiveAnswer: ("bridge",),
    RtOutputItemAdded: ("bridge",),
    HoldAudio: ("pacer",),
    ReleaseAudio: ("pacer",),
    DiscardAudio: ("pacer",),
    ResponseFinished: ("judge", "bridge"),
    CutPlayout: ("pacer",),
    PlayoutCut: ("bridge", "judge"),
    CounterReport: ("metrics",),
    RealtimeConnected: ("bridge",),
    RealtimeConnectFailed: ("bridge",),
    RealtimeLost: ("bridge",),
    RtRateLimits: ("bridge",),
    LinkDown: ("rx",),
    LinkUp: ("rx",),
    FinishResponse: ("pacer",),
}


def routes_for(msg: object) -> tuple[str, ...]:
    if isinstance(msg, WireDecodeError):
        return ("rx",) if msg.source == "twilio" else ("bridge",)
    return ROUTES.get(type(msg), ())


class SupervisionCore:
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.phase = CallPhase.STARTING
        self.restarting: dict[str, list[object]] = {}
        self.snapshots: dict[str, bytes] = {}
        self.restarts: dict[str, int] = {role: 0 for role in ROLES}
        self.poisoned = 0

    def go(self, event: str) -> bool:
        nxt = PHASE_TRANSITIONS.get((self.phase, event))
        if nxt is None:
            return False
        self.phase = nxt
        return True

    def route(self, msg: object) -> list[str]:
        """Roles that get `msg` now; roles being restarted buffer it for replay."""
        roles = routes_for(msg)
        if type(msg) is Tick and msg.timers:
            roles = ("pacer", "judge", "bridge")
        if not self.restarting:
            return list(roles)
        now_roles = []
        for role in roles:
            buffer = self.restarting.get(role)
            if buffer is None:
                now_roles.append(role)
            else:
                buffer.append(msg)
        return now_roles

    def deliver_to(self, role: str, msg: object) -> bool:
        """True if `msg` can go to `role` now; otherwise it is buffered for the replacement."""
        buffer = self.restarting.get(role)
        if buffer is None:
            return True
        buffer.append(msg)
        return False

    def child_failed(self, role: str) -> bool:
        """Start restarting `role`; False if it is already restarting or the call is over."""
        if role in self.restarting or self.phase in (CallPhase.ENDED,):
            return False
        self.restarting[role] = []
        return True

    def snapshot_received(self, role: str, state: bytes) -> None:
        self.snapshots[role] = state

    def child_exited(self, role: str) -> tuple[bytes | None, list[object]] | None:
        """The old child is gone: returns (snapshot, buffered messages) for its replacement."""
        if self.phase is CallPhase.ENDED:
            return None
        buffered = self.restarting.pop(role, [])
        self.restarts[role] += 1
        return self.snapshots.pop(role, None), buffered
