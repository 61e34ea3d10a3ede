"""Placing a warm transfer (issue 23): the caller into the conference first, then the human's leg.

The caller's call is moved into the call's conference (its Exit TwiML, by REST like any departure), so
the human's leg — a REST `calls.create` (To the business's line, From its caller ID or the business's
number, Url the whisper, StatusCallback the leg's progress, Timeout the ring time) — is placed only once
the caller waits there: no report of the leg can come before the caller is in the room. calls.create is
not idempotent, so it is never retried blindly: one request, awaited to its end (LEG_CREATE_S), never
abandoned half-way (an abandoned request might still ring the line while a cold transfer rings it too).
If it fails the caller is moved on from the conference to a cold `<Dial>` of the same line (same
back-to-agent rule) — WARM_TRANSFER_FELL_BACK_TO_COLD says why. A call update is idempotent: retried once.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlencode

import structlog

from gateway.fallback import TwilioRest
from storage.businesses import TransferSpec
from storage.writequeue import TransferWrite

log = structlog.get_logger("kolbridge.handoff")
SUMMARY_MAX = 600  # characters of the agent's summary kept for the whisper (a <Say> of more is a speech)
LEG_EVENTS = ["initiated", "ringing", "answered", "completed"]
LEG_CREATE_S = 30.0  # the twilio client's own request; only a stuck one is given up (and said so)


def handoff_url(base: str, path: str, **query: str | int) -> str:
    return f"{base}/handoff/{path}?{urlencode(query)}"


async def place_leg(rest: TwilioRest, spec: TransferSpec, base: str, call_sid: str, business_id: str, attempt: int,
                    from_number: str) -> tuple[str, str]:
    """(the human leg's sid, "") or ("", why it was not placed). The whisper's summary is not in its URL
    (Twilio keeps request URLs in its logs): /handoff/whisper reads it from the attempt's record."""
    whisper = handoff_url(base, "whisper", business=business_id, call=call_sid, attempt=attempt)
    status = handoff_url(base, "leg-status", business=business_id, call=call_sid, attempt=attempt)

    def create() -> str:
        leg = rest.client.calls.create(to=spec.number, from_=spec.caller_id or from_number, url=whisper, method="POST",
                                       status_callback=status, status_callback_method="POST",
                                       status_callback_event=LEG_EVENTS, timeout=spec.timeout_s)
        return str(leg.sid)

    try:
        return await asyncio.wait_for(asyncio.to_thread(create), LEG_CREATE_S), ""
    except Exception as exc:  # noqa: BLE001 — not retried (calls.create is not idempotent): the transfer goes cold
        log.warning("WARM_LEG_CREATE_FAILED", call_sid=call_sid, attempt=attempt, error=str(exc)[:200], exc_info=True)
        return "", f"leg not placed: {type(exc).__name__}: {str(exc)[:200]}"


async def redirect_with_retry(rest: TwilioRest | None, call_sid: str, twiml: str) -> bool:
    """Move a call on by REST (a call update is idempotent: retried once). False when it could not be."""
    for tries in (1, 2):
        try:
            if rest is None:
                raise RuntimeError("no REST credentials")
            await rest.redirect(call_sid, twiml)
            return True
        except Exception as exc:  # noqa: BLE001 — said; the caller's callers record the move as pending (retried at the next hold)
            log.error("HANDOFF_REDIRECT_FAILED", call_sid=call_sid, tries=tries, error=str(exc)[:200], exc_info=tries == 2)
    return False


async def move_held_caller(rest: TwilioRest | None, put: Callable[[TransferWrite], None], call_sid: str, attempt: int,
                           twiml: str, step: str) -> bool:
    """Move a held caller on (redirect_with_retry). Refused: the move is recorded as pending, and retried each
    time Twilio asks for the hold again (gateway/handoff/routes.py)."""
    if await redirect_with_retry(rest, call_sid, twiml):
        return True
    put(TransferWrite(call_sid, attempt, move_pending=True))
    log.warning("HANDOFF_MOVE_PENDING", call_sid=call_sid, attempt=attempt, step=step)
    return False


async def cancel_leg(rest: TwilioRest | None, leg_sid: str) -> None:
    """The caller left while the human's line still rang: the leg is cancelled (or completed if answered)."""
    if rest is None or not leg_sid:
        return

    def cancel() -> None:
        try:
            rest.client.calls(leg_sid).update(status="canceled")
        except Exception:  # noqa: BLE001 — answered already: canceled only applies to queued/ringing calls
            rest.client.calls(leg_sid).update(status="completed")

    try:
        await asyncio.wait_for(asyncio.to_thread(cancel), 10.0)
        log.info("TRANSFER_LEG_CANCELLED", leg_sid=leg_sid)
    except Exception as exc:  # noqa: BLE001 — the line rings out on its own (its Timeout)
        log.warning("TRANSFER_LEG_CANCEL_FAILED", leg_sid=leg_sid, error=str(exc)[:200], exc_info=True)
