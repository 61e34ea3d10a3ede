"""Messages between a worker's engine and a call's tree about how the hot messages travel.

The CallSupervisor owns routing. For the four messages that arrive every few milliseconds — a caller
frame (→ TwilioRx), a Tick, a Twilio mark echo and a Realtime audio delta (→ TxPacer) — it publishes
*lanes*: the addresses of those two children while they are healthy, so the engine tells them
directly and the per-frame path has one actor hop less. While a child is being restarted its lane is
empty and the engine sends through the supervisor again, which buffers for the replacement.
A lane message that makes its child fail comes back to the engine as thespian's PoisonMessage (the
engine was its sender); the engine hands it to the supervisor as LanePoisoned, which restarts the
child exactly as for a message it had routed itself.
The TxPacer says when it needs the 20 ms Tick (audio queued) and when it does not (idle): an idle call
gets only the timer ticks (every JUDGE_TICK_EVERY-th), which its judge and bridge need.
"""
from __future__ import annotations

from typing import Any

from msgspec import Struct


class Lanes(Struct, frozen=True):
    """Egress (supervisor → engine): the children the engine may tell directly; None = through the supervisor."""

    call_id: str
    rx: Any = None
    pacer: Any = None


class TickWanted(Struct, frozen=True):
    """Egress (TxPacer → engine): whether this call's pacer needs every Tick (audio queued) or none."""

    call_id: str
    wanted: bool
    at: float


class LanePoisoned(Struct, frozen=True):
    """Engine → supervisor: a message the engine told `role` directly failed twice in its handler."""

    role: str
    message: Any
    details: str
