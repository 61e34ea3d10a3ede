"""Placing a warm transfer (issue 23): the human's leg first, then the caller into the conference.

The human's leg is a REST `calls.create` (To the business's line, From its caller ID or the number the
caller dialled, Url the whisper, StatusCallback the leg's progress, Timeout the ring time). calls.create
is not idempotent, so it is never retried blindly: one request within a deadline. If it fails (no
credentials, Twilio down, refused) the transfer is placed cold instead — the caller still reaches the
line, with the same back-to-the-agent rule — and WARM_TRANSFER_FELL_BACK_TO_COLD says why. Only once the
leg exists is the caller's call redirected into the conference (the caller's Exit TwiML).
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import structlog

from gateway.fallback import TwilioRest
from gateway.handoff.twiml import caller_conference_twiml
from storage.businesses import TransferSpec

log = structlog.get_logger("kolbridge.handoff")
SUMMARY_IN_URL_MAX = 600  # the whisper's summary travels in its (signed) URL: no database read on answer
LEG_EVENTS = ["initiated", "ringing", "answered", "completed"]


def handoff_url(base: str, path: str, **query: str | int) -> str:
    return f"{base}/handoff/{path}?{urlencode(query)}"


async def place_warm(rest: TwilioRest | None, spec: TransferSpec, base: str, call_sid: str, business_id: str,
                     attempt: int, summary: str, from_number: str, timeout_s: float = 5.0) -> tuple[str, str]:
    """(the caller's conference TwiML, the human leg's sid), or ("", reason) when the leg could not be
    placed and the transfer goes cold."""
    if rest is None or not base:
        return "", "no REST credentials" if rest is None else "no public URL"
    whisper = handoff_url(base, "whisper", business=business_id, call=call_sid, attempt=attempt,
                          summary=summary[:SUMMARY_IN_URL_MAX])
    status = handoff_url(base, "leg-status", business=business_id, call=call_sid, attempt=attempt)

    def create() -> str:
        leg = rest.client.calls.create(to=spec.number, from_=spec.caller_id or from_number, url=whisper, method="POST",
                                       status_callback=status, status_callback_method="POST",
                                       status_callback_event=LEG_EVENTS, timeout=spec.timeout_s)
        return str(leg.sid)

    try:
        leg_sid = await asyncio.wait_for(asyncio.to_thread(create), timeout_s)
    except Exception as exc:  # noqa: BLE001 — not retried (calls.create is not idempotent): the transfer goes cold
        return "", f"leg not placed: {str(exc)[:200]}"
    hold = handoff_url(base, "hold", business=business_id, call=call_sid)
    done = handoff_url(base, "caller-done", business=business_id, call=call_sid, attempt=attempt)
    return caller_conference_twiml(call_sid, hold, done), leg_sid
