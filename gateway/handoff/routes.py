"""Twilio's callbacks of a handoff (issue 23), each signature-checked by the caller (gateway/endpoints.py)
over its full URL: the cold `<Dial>`'s action, and a warm transfer's hold (the conference's waitUrl), the
human's whisper (their leg's Url), the leg's status callback and the caller's conference end.

What each outcome does — for the caller, the operator and the record (docs/architecture.md's table):
- the human took it: the caller talks to them; TRANSFER_CONNECTED, the record's transfer says who and when;
- busy / no answer / failed / cancelled with attempts left: the caller is back on a new stream of the same
  call with the agent, told why (TRANSFER_BACK_TO_AGENT; the record's next segment);
- the last attempt failed: the apology, then the call ends (TRANSFER_GAVE_UP);
- a warm leg failed and the caller's call cannot be redirected by REST: the conference's own end (the
  caller's Dial action, /handoff/caller-done) answers the same way.
"""
from __future__ import annotations

import structlog

from gateway.app import App
from gateway.control import prom
from gateway.fallback import FallbackSettings, apology_twiml, hangup_twiml, no_answer_message
from gateway.handoff.plan import Next, cold_next, next_step
from gateway.handoff.twiml import back_to_agent_twiml, hold_twiml, whisper_twiml
from storage.businesses import BusinessView, TransferSpec, get_business
from storage.handoffs import transfer_of
from storage.writequeue import TransferWrite

log = structlog.get_logger("kolbridge.handoff")
EMPTY = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />"


def _spec(business: BusinessView) -> TransferSpec:
    from gateway.agent import agent_spec  # the business's agent column, typed

    return agent_spec(business).transfer


def _attempt(query: dict[str, str]) -> int:
    try:
        return max(1, int(query.get("attempt", "1")))
    except ValueError:
        return 1


def _caller_next(app: App, business: BusinessView, step: Next, call_sid: str, attempt: int, status: str,
                 caller: str, callee: str, stream_url: str, http_base: str) -> str:
    """The caller's TwiML after a failed or taken attempt, logged, counted and recorded."""
    prom.transfer_ended(business.id, f"agent:{step.value}", status or "unknown")
    app.writes.put(TransferWrite(call_sid, attempt, status=status, outcome=step.value, answered=step is Next.CONNECTED))
    if step is Next.CONNECTED:
        log.info("TRANSFER_CONNECTED", call_sid=call_sid, business_id=business.id, attempt=attempt, status=status)
        return hangup_twiml()
    if step is Next.BACK_TO_AGENT:
        log.warning("TRANSFER_BACK_TO_AGENT", call_sid=call_sid, business_id=business.id, attempt=attempt, status=status)
        return back_to_agent_twiml(app.config.env.twilio_auth_token, stream_url, http_base, call_sid, business.id,
                                   caller, callee, attempt + 1, status)
    log.warning("TRANSFER_GAVE_UP", call_sid=call_sid, business_id=business.id, attempt=attempt, status=status)
    return apology_twiml(FallbackSettings(message=no_answer_message(business.language)), business.language)


async def cold_dial_done(app: App, form: dict[str, str], query: dict[str, str], stream_url: str, http_base: str) -> str:
    """transfer_to_human's `<Dial>` ended: connected → hang up; not taken → back to the agent or the apology."""
    business = await get_business(app.sessions, query.get("business", ""))
    call_sid, status = form.get("CallSid", ""), form.get("DialCallStatus", "")
    if business is None:
        return hangup_twiml()
    attempt = _attempt(query)
    step = cold_next(status, attempt, _spec(business).max_attempts)
    return _caller_next(app, business, step, call_sid, attempt, status, form.get("From", ""), form.get("To", ""),
                        stream_url, http_base)


async def handoff_callback(app: App, path: str, form: dict[str, str], query: dict[str, str], stream_url: str,
                           http_base: str) -> str:
    """/handoff/<hold|whisper|leg-status|caller-done>: the TwiML (or an empty document) Twilio gets."""
    business = await get_business(app.sessions, query.get("business", ""))
    if business is None:
        log.warning("HANDOFF_UNKNOWN_BUSINESS", path=path, business_id=query.get("business", ""))
        return hangup_twiml() if path != "/handoff/leg-status" else EMPTY
    spec, call_sid, attempt = _spec(business), query.get("call", ""), _attempt(query)
    if path == "/handoff/hold":
        return hold_twiml(spec.hold, business.language, spec.hold_url, spec.hold_message)
    if path == "/handoff/whisper":  # the human picked up: who answered, and when, before the summary plays
        app.writes.put(TransferWrite(call_sid, attempt, leg_sid=form.get("CallSid", ""), status="in-progress", answered=True))
        log.info("TRANSFER_ANSWERED", call_sid=call_sid, business_id=business.id, attempt=attempt, leg_sid=form.get("CallSid", ""))
        return whisper_twiml(call_sid, business.language, query.get("summary", ""), spec.whisper)
    if path == "/handoff/caller-done":  # the conference ended for the caller (the human hung up): the call ends
        return hangup_twiml()
    # the human's leg: its progress; a final status decides the caller's next
    status = form.get("CallStatus", "")
    record, caller, called = await transfer_of(app.sessions, call_sid)
    answered = bool(((record.get("attempts") or {}).get(str(attempt)) or {}).get("answered_at"))
    step = next_step(status, attempt, spec.max_attempts, answered_before=answered)
    if step is Next.WAIT or step is Next.CONNECTED:
        app.writes.put(TransferWrite(call_sid, attempt, leg_sid=form.get("CallSid", ""), status=status))
        return EMPTY
    twiml = _caller_next(app, business, step, call_sid, attempt, status, caller, called, stream_url, http_base)
    await redirect_caller(app, call_sid, twiml)
    return EMPTY


async def redirect_caller(app: App, call_sid: str, twiml: str) -> None:
    """The caller waits in the conference: REST moves them on (retried once — a call update is idempotent)."""
    rest = app.twilio_rest
    for tries in (1, 2):
        try:
            if rest is None:
                raise RuntimeError("no REST credentials")
            await rest.redirect(call_sid, twiml)
            return
        except Exception as exc:  # noqa: BLE001 — the caller stays on hold until the conference's own end
            log.error("HANDOFF_REDIRECT_FAILED", call_sid=call_sid, tries=tries, error=str(exc)[:200], exc_info=tries == 2)
