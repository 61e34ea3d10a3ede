"""Admission: a worker past what it can carry sends new calls to the business's fallback.

Theory of operation: one worker is one event loop on one core. Past its capacity every call on it
suffers at once — the 20 ms ticks fall late, Twilio's buffers run dry, the Realtime connects of new
calls time out and they get the fallback anyway, after seconds of silence (bench/RESULTS.md: K=150 on
a 2-core box). So a new call is refused while the worker is full, before it costs anything: `/voice`
answers the business's fallback TwiML (its human line, or an apology); a stream beyond `max_calls`
(one /voice did not route) is closed with 1013 (Twilio then fetches the fallback from the `<Connect
action>` URL). Saturation is judged at /voice only: a stream that arrives was admitted there a moment
before, and turning it away then costs the caller more than the call does the worker.
Two signals, either enough:
  * `max_calls` — live calls plus streams waiting for `start` reached the operator's cap (0 = none);
  * `shed_lateness_ms` — the worker is saturated: over the last SATURATION_WINDOW ticks (1 s) the
    20 ms ticker ran at least that late at the SATURATION_QUANTILE (one late tick — a collection, a
    call start — is not saturation; a loop that stays behind is). 0 = off.
A refused call is logged (`CALL_SHED` with the reason and the figures), counted
(`kolbridge_calls_shed_total{business,reason}`) and recorded (a call record, end_reason
`shed_<reason>`). Pure: the figures are arguments.
"""
from __future__ import annotations

import enum

SATURATION_WINDOW = 50  # ticks: the last second
SATURATION_QUANTILE = 0.9


class Shed(enum.Enum):
    NO = ""
    MAX_CALLS = "max_calls"
    SATURATED = "saturated"


def recent_lateness_ms(late_ms: list[float]) -> float:
    """The SATURATION_QUANTILE of the last SATURATION_WINDOW tick latenesses (0 with too few)."""
    recent = sorted(late_ms[-SATURATION_WINDOW:])
    if len(recent) < SATURATION_WINDOW // 2:
        return 0.0
    return recent[min(len(recent) - 1, int(len(recent) * SATURATION_QUANTILE))]


def admit(calls: int, max_calls: int, lateness_ms: float, shed_lateness_ms: float) -> Shed:
    """Should one more call be taken by a worker with `calls` live or pending whose ticker ran
    `lateness_ms` late (recent_lateness_ms)?"""
    if max_calls and calls >= max_calls:
        return Shed.MAX_CALLS
    if shed_lateness_ms and lateness_ms >= shed_lateness_ms:
        return Shed.SATURATED
    return Shed.NO
