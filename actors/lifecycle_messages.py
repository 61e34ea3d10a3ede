"""The life of a call's actors: boot, snapshot and restore, fault injection, inspection, logs.
"""
from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import Struct, field

from actors.settings import CallSettings


class LogLine(Struct, frozen=True):
    """A core's log action; the shell writes it with structlog."""

    event: str
    level: str = "info"
    fields: dict[str, object] = field(default_factory=dict)


class ChildSnapshot(Struct, frozen=True):
    role: str
    state: bytes  # msgpack of the core's state struct


class RestoreState(Struct, frozen=True):
    state: bytes


class InjectFault(Struct, frozen=True):
    """Test and ops hook: the child's handler raises on this message (→ PoisonMessage), or it exits, or
    ("next") it raises on the next message it gets from the call — which may come down a lane."""

    role: str
    mode: Literal["raise", "exit", "next"] = "raise"


class InspectCall(Struct, frozen=True):
    pass


class CallInspection(Struct, frozen=True):
    call_id: str
    phase: str
    children: dict[str, str]
    restarts: dict[str, int]
    business_id: str = ""
    started_at: float = 0.0
    counters: dict[str, int] = {}  # the children's latest counter reports, merged
    last_decision: str = ""  # the judge's latest: duck, cut, restore, filler, backchannel, answer
    realtime: str = ""  # connected, reconnecting, failed


class ChildRestarted(Struct, frozen=True):
    call_id: str
    role: str
    cause: str
    restarts: int


def encode_state(state: Struct) -> bytes:
    return msgspec.msgpack.encode(state)


class ChildBoot(Struct, frozen=True):
    """Supervisor → new child: who it is, its settings, where egress goes, and state to restore."""

    role: str
    settings: CallSettings
    egress: object  # thespian ActorAddress of the gateway's external requester
    state: bytes | None
    at: float


class SummarizeCall(Struct, frozen=True):
    reason: str
    at: float


class RegisterCall(Struct, frozen=True):
    """Gateway → AdminActor: a call's supervisor to include in live inspection."""

    call_id: str
    supervisor: object  # thespian ActorAddress


class UnregisterCall(Struct, frozen=True):
    call_id: str


class ListCalls(Struct, frozen=True):
    request_id: int


class AdminSweep(Struct, frozen=True):
    """AdminActor → itself: every inspection reply queued before this one has arrived."""

    request_id: int
    round: int


class LiveCalls(Struct, frozen=True):
    request_id: int
    calls: tuple[CallInspection, ...]
