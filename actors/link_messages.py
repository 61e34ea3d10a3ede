"""Messages of the Realtime link's lifecycle: connect, lose, restore, roll over, give up.

Ingress (gateway → CallSupervisor → RealtimeBridge): what happened to a connection of generation N.
Egress (RealtimeBridge → gateway): open a connection, or give up and take the business's fallback.
Internal (RealtimeBridge → TwilioRx): hold caller frames while the link is down, replay them after.
Client events for re-seeding (`conversation.item.create`) mirror the GA wire format exactly.
"""
from __future__ import annotations

from typing import Literal

from msgspec import Struct

# ----------------------------------------------------------------------------- ingress


class RealtimeConnected(Struct, frozen=True):
    """The connection of `generation` is open and the call's writer is attached to it."""

    generation: int
    at: float


class RealtimeConnectFailed(Struct, frozen=True):
    generation: int
    reason: str
    at: float


class RealtimeLost(Struct, frozen=True):
    """The connection of `generation` closed or failed while the call was live.

    `unsent_audio` holds the audio of appends (base64, in order; an append may carry several caller
    frames) that were queued for it and never written."""

    generation: int
    code: int
    reason: str
    at: float
    unsent_audio: tuple[str, ...] = ()


class RtRateLimits(Struct, frozen=True):
    """`rate_limits.updated`: seconds until the most constrained exhausted limit resets (0: none is)."""

    reset_s: float
    at: float


# ----------------------------------------------------------------------------- egress


class OpenRealtime(Struct, frozen=True):
    """Bridge → gateway: open the call's connection `generation` within `timeout_s`.

    rollover=True: the current session is healthy; open the new one beside it and switch over."""

    call_id: str
    generation: int
    timeout_s: float
    rollover: bool = False


class RealtimeGaveUp(Struct, frozen=True):
    """Bridge → gateway: no session can be had; the business's fallback takes the call."""

    call_id: str
    reason: str


# ----------------------------------------------------------------------------- internal


class LinkDown(Struct, frozen=True):
    """Bridge → TwilioRx: hold caller frames from now (bounded); `unsent` were never written. With
    `replay_from_ms` ≥ 0 the replay starts there on the lost session's audio clock: the start of a
    caller turn it heard but never transcribed."""

    unsent: tuple[str, ...]
    at: float
    replay_from_ms: int = -1


class LinkUp(Struct, frozen=True):
    """Bridge → TwilioRx: the session is restored (session.update and history already sent): replay."""

    at: float


# ----------------------------------------------------------------------------- egress: client events


class RtTextContent(Struct, frozen=True):
    type: Literal["input_text", "output_text"]
    text: str


class RtMessageItem(Struct, frozen=True):
    role: Literal["user", "assistant", "system"]
    content: tuple[RtTextContent, ...]
    type: str = "message"


class RtItemCreate(Struct, frozen=True, tag="conversation.item.create", tag_field="type"):
    item: RtMessageItem


class FinishResponse(Struct, frozen=True):
    """Bridge → TxPacer: this response will get no more audio (its session is gone): play what was
    received to the end — the last partial frame padded, as for `response.output_audio.done`."""

    response_id: str
    at: float
