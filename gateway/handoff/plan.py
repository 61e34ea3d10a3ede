"""What follows a transfer attempt, decided from Twilio's report of the human's leg — pure, no I/O.

Theory of operation: transfer_to_human places attempt n (n = the call's segment with the agent that asked).
Cold: the caller's call runs `<Dial action=/dial-done?…&attempt=n>`; warm: the caller waits in the call's
conference while the human's leg (REST calls.create, its Url the whisper) rings. Twilio then reports the
leg: DialCallStatus on the Dial's action (cold), CallStatus on the leg's status callback (warm). A leg the
human took (answered / completed after answering) is CONNECTED: nothing more for the caller. A leg that is
busy, not answered, failed or cancelled returns the caller to the agent on a new stream of the same call
(segment n + 1, told why) while attempts remain; after `max_attempts` failed ones the caller hears the
apology and the call ends. Leg states in between (queued, initiated, ringing, in-progress before the
whisper ended) change nothing for the caller.

    Leg report            attempt < max_attempts   attempt ≥ max_attempts
    answered/completed    CONNECTED                CONNECTED
    busy/no-answer/...    BACK_TO_AGENT            GIVE_UP
    queued/ringing/...    WAIT                     WAIT
"""
from __future__ import annotations

import enum

ANSWERED = frozenset({"answered", "completed", "in-progress"})  # the human's leg was picked up
NOT_TAKEN = frozenset({"busy", "no-answer", "failed", "canceled"})  # nobody took it


class Next(enum.Enum):
    WAIT = "wait"  # the leg is still ringing: nothing changes for the caller
    CONNECTED = "connected"  # the human took the call
    BACK_TO_AGENT = "back_to_agent"  # a new stream of the same call, the agent told why
    GIVE_UP = "gave_up"  # the apology, then the call ends


# (what the leg's report means, whether attempts remain) → what the caller gets
NEXT: dict[tuple[str, bool], Next] = {
    ("taken", True): Next.CONNECTED, ("taken", False): Next.CONNECTED,
    ("not_taken", True): Next.BACK_TO_AGENT, ("not_taken", False): Next.GIVE_UP,
    ("pending", True): Next.WAIT, ("pending", False): Next.WAIT,
}


def report_kind(status: str, answered_before: bool = False) -> str:
    """A leg's status as the plan reads it. A warm leg reports `completed` both when the human talked and
    hung up and — without `answered` first — when Twilio completed it unanswered; `answered_before` tells."""
    if status == "completed":
        return "taken" if answered_before else "not_taken"
    if status in ANSWERED:
        return "taken"
    if status in NOT_TAKEN:
        return "not_taken"
    return "pending"


def next_step(status: str, attempt: int, max_attempts: int, answered_before: bool = False) -> Next:
    return NEXT[(report_kind(status, answered_before), attempt < max_attempts)]


def cold_next(dial_call_status: str, attempt: int, max_attempts: int) -> Next:
    """A cold transfer's `<Dial>` ended: `completed`/`answered` means the human talked (Twilio reports the
    Dial's outcome once, at its end)."""
    return next_step(dial_call_status, attempt, max_attempts, answered_before=dial_call_status in ("completed", "answered"))
