"""Twilio's callbacks of a handoff (issue 23), each signature-checked by the caller (gateway/endpoints.py)
over its full URL: the cold `<Dial>`'s action, and a warm transfer's hold (the conference's waitUrl), the
human's whisper (their leg's Url) and join (after it), the leg's status callback (acted on once, for the
leg this attempt placed) and the caller's conference end.

What each outcome does — for the caller, the operator and the record (docs/architecture.md's table):
- the human took it: the caller talks to them; TRANSFER_CONNECTED, the record's transfer says who and when;
- busy / no answer / failed / cancelled with attempts left: the caller is back on a new stream of the same
  call with the agent, told why (TRANSFER_BACK_TO_AGENT; the record's next segment);
- the last attempt failed: the apology, then the call ends (TRANSFER_GAVE_UP);
- the caller hangs up while the line rings: the leg is cancelled, nothing else (TRANSFER_CALLER_LEFT);
- the caller's call cannot be moved by REST: the move is retried each time Twilio asks for the hold again
  (only the held caller's conference asks), and if the conference ends under them first, its Dial action
  (/handoff/caller-done) does what was decided; a caller who hangs up meanwhile keeps the decided outcome.
"""
from __future__ import annotations

from typing import Any

import structlog

from gateway.actions import transfer_twiml
from gateway.agent import agent_spec
from gateway.app import App
from gateway.control import prom
from gateway.fallback import FallbackSettings, agent_dial_action_url, apology_twiml, hangup_twiml, no_answer_message
from gateway.handoff.plan import ANSWERED, Next, cold_next, next_step
from gateway.handoff.twiml import back_to_agent_twiml, hold_twiml, join_twiml, whisper_twiml
from gateway.handoff.warm import cancel_leg, handoff_url, move_held_caller, redirect_with_retry
from gateway.outbound.context import OutboundContext, stream_extra
from storage.businesses import BusinessView, TransferSpec, get_business
from storage.callbacks import get_lead
from storage.calls import get_call
from storage.handoffs import attempt_of, transfer_of
from storage.models import CallRecord
from storage.writequeue import TransferWrite

STILL_RINGING = frozenset({"queued", "initiated", "ringing", "in-progress"})  # a stray leg in these is cancelled
log = structlog.get_logger("kolbridge.handoff")
EMPTY = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />"


def _spec(business: BusinessView) -> TransferSpec:
    return agent_spec(business).transfer


def _attempt(query: dict[str, str]) -> int:
    try:
        return max(1, int(query.get("attempt", "1")))
    except ValueError:
        return 1


async def carried_parameters(app: App, row: CallRecord | None) -> dict[str, str]:
    """An outbound call back with the agent keeps its outbound facts (layer, purpose, the lead), rebuilt from
    its record; an inbound call carries nothing more."""
    if row is None or row.direction != "outbound":
        return {}
    lead = await get_lead(app.sessions, row.lead_id) if row.lead_id is not None else None
    fields = dict(lead.fields or {}) if lead is not None and lead.business_id == row.business_id else {}
    context = OutboundContext(row.to_number, row.purpose, str(row.lead_id or ""), fields, row.answered_by)
    return stream_extra(context)


async def _caller_next(app: App, business: BusinessView, step: Next, call_sid: str, attempt: int, status: str,
                       caller: str, callee: str, stream_url: str, http_base: str, row: CallRecord | None = None) -> str:
    """The caller's TwiML after a failed or taken attempt, logged, counted and recorded (`row`: the call's
    record when the caller already read it; back to the agent reads it otherwise)."""
    prom.transfer_ended(business.id, f"agent:{step.value}", status or "unknown")
    app.writes.put(TransferWrite(call_sid, attempt, status=status, outcome=step.value, answered=step is Next.CONNECTED))
    event = {Next.CONNECTED: "TRANSFER_CONNECTED", Next.BACK_TO_AGENT: "TRANSFER_BACK_TO_AGENT"}.get(step, "TRANSFER_GAVE_UP")
    (log.info if step is Next.CONNECTED else log.warning)(event, call_sid=call_sid, business_id=business.id,
                                                          attempt=attempt, status=status)
    return await _next_twiml(app, business, step, call_sid, attempt, status, caller, callee, stream_url, http_base, row)


async def _next_twiml(app: App, business: BusinessView, step: Next, call_sid: str, attempt: int, status: str,
                      caller: str, callee: str, stream_url: str, http_base: str, row: CallRecord | None) -> str:
    """The caller's TwiML for a decided step, nothing recorded (a held caller's pending move asks it again)."""
    if step is Next.CONNECTED:
        return hangup_twiml()
    if step is Next.BACK_TO_AGENT:
        return back_to_agent_twiml(app.config.env.twilio_auth_token, stream_url, http_base, call_sid, business.id,
                                   caller, callee, attempt + 1, status,
                                   await carried_parameters(app, row or await get_call(app.sessions, call_sid)))
    return apology_twiml(FallbackSettings(message=no_answer_message(business.language)), business.language)


async def cold_dial_done(app: App, form: dict[str, str], query: dict[str, str], stream_url: str, http_base: str) -> str:
    """transfer_to_human's `<Dial>` ended: connected → hang up; not taken → back to the agent or the apology;
    the caller hung up while it rang → nothing more (recorded)."""
    business = await get_business(app.sessions, query.get("business", ""))
    call_sid, status = form.get("CallSid", ""), form.get("DialCallStatus", "")
    if business is None:
        return hangup_twiml()
    attempt = _attempt(query)
    if form.get("CallStatus") == "completed" and status not in ANSWERED:  # the caller is gone
        return _caller_left(app, business.id, call_sid, attempt, status)
    step = cold_next(status, attempt, _spec(business).max_attempts)
    return await _caller_next(app, business, step, call_sid, attempt, status, form.get("From", ""), form.get("To", ""),
                              stream_url, http_base)


def _caller_left(app: App, business_id: str, call_sid: str, attempt: int, status: str) -> str:
    app.writes.put(TransferWrite(call_sid, attempt, status=status, outcome="caller_left"))
    prom.transfer_ended(business_id, "agent:caller_left", status or "unknown")
    log.info("TRANSFER_CALLER_LEFT", call_sid=call_sid, business_id=business_id, attempt=attempt, status=status)
    return hangup_twiml()


async def handoff_callback(app: App, path: str, form: dict[str, str], query: dict[str, str], stream_url: str,
                           http_base: str) -> str:
    """/handoff/<hold|whisper|join|leg-status|caller-done>: the TwiML (or an empty document) Twilio gets."""
    business = await get_business(app.sessions, query.get("business", ""))
    if business is None:
        log.warning("HANDOFF_UNKNOWN_BUSINESS", path=path, business_id=query.get("business", ""))
        return hangup_twiml() if path != "/handoff/leg-status" else EMPTY
    spec, call_sid, attempt, leg_sid = _spec(business), query.get("call", ""), _attempt(query), form.get("CallSid", "")
    if path == "/handoff/hold":  # asked again each time the hold document ends: a held caller's heartbeat
        await _retry_pending_move(app, business, call_sid, query, stream_url, http_base)
        return hold_twiml(spec.hold, business.language, spec.hold_url, spec.hold_message)
    if path == "/handoff/whisper":  # the human picked up: the summary first
        record = await _attempt_record(app, call_sid, attempt)
        if _stray(record, leg_sid):  # a leg the transfer went on without: never into the caller's conference
            log.warning("TRANSFER_STRAY_LEG", call_sid=call_sid, attempt=attempt, leg_sid=leg_sid, status="answered")
            return hangup_twiml()
        app.writes.put(TransferWrite(call_sid, attempt, leg_sid=leg_sid, status="in-progress"))
        log.info("TRANSFER_LEG_PICKED_UP", call_sid=call_sid, business_id=business.id, attempt=attempt, leg_sid=leg_sid)
        join = handoff_url(http_base, "join", business=business.id, call=call_sid, attempt=attempt)
        return whisper_twiml(business.language, _summary(record, call_sid, attempt), spec.whisper, join)
    if path == "/handoff/join":  # the human stayed through the whisper: who answered, and when
        app.writes.put(TransferWrite(call_sid, attempt, leg_sid=leg_sid, status="in-progress", answered=True))
        log.info("TRANSFER_ANSWERED", call_sid=call_sid, business_id=business.id, attempt=attempt, leg_sid=leg_sid)
        return join_twiml(call_sid)
    row = await get_call(app.sessions, call_sid)
    attempt_record = attempt_of(row, attempt)
    if path == "/handoff/caller-done":
        return await _caller_done(app, business, form, row, attempt, attempt_record, stream_url, http_base)
    return await _leg_status(app, business, call_sid, form, attempt, attempt_record, row, stream_url, http_base)


async def _attempt_record(app: App, call_sid: str, attempt: int) -> dict[str, Any]:
    """The attempt's record as stored; {} when the database cannot be read (the human on the line still
    hears the whisper's introduction and joins)."""
    try:
        row = await get_call(app.sessions, call_sid)
    except Exception as exc:  # noqa: BLE001 — said by the whisper's TRANSFER_WHISPER_NO_SUMMARY
        log.warning("TRANSFER_RECORD_UNREADABLE", call_sid=call_sid, attempt=attempt, error=str(exc)[:200],
                    exc_info=True)
        return {}
    return attempt_of(row, attempt)


def _summary(record: dict[str, Any], call_sid: str, attempt: int) -> str:
    """What the agent told us for the human; none recorded (or unreadable): the introduction alone, said."""
    summary = str(record.get("summary", ""))
    if not summary:
        log.warning("TRANSFER_WHISPER_NO_SUMMARY", call_sid=call_sid, attempt=attempt)
    return summary


async def _leg_status(app: App, business: BusinessView, call_sid: str, form: dict[str, str], attempt: int,
                      attempt_record: dict[str, Any], row: CallRecord | None, stream_url: str, http_base: str) -> str:
    """The human's leg: its progress; a final status decides the caller's next (once, for the leg placed)."""
    leg_sid, status, spec = form.get("CallSid", ""), form.get("CallStatus", ""), _spec(business)
    if (attempt_record.get("leg_sid") and attempt_record["leg_sid"] != leg_sid) or attempt_record.get("outcome"):
        log.info("HANDOFF_LEG_STATUS_IGNORED", call_sid=call_sid, leg_sid=leg_sid, status=status,
                 outcome=attempt_record.get("outcome", ""))
        if _stray(attempt_record, leg_sid) and status in STILL_RINGING:
            log.warning("TRANSFER_STRAY_LEG", call_sid=call_sid, attempt=attempt, leg_sid=leg_sid, status=status)
            await cancel_leg(app.twilio_rest, leg_sid)
        return EMPTY
    step = next_step(status, attempt, spec.max_attempts, answered_before=bool(attempt_record.get("answered_at")))
    if step is Next.WAIT or step is Next.CONNECTED:
        app.writes.put(TransferWrite(call_sid, attempt, leg_sid=leg_sid, status=status,
                                     outcome="connected" if step is Next.CONNECTED and status == "completed" else ""))
        return EMPTY
    twiml = await _caller_next(app, business, step, call_sid, attempt, status, *_numbers(row), stream_url, http_base, row)
    await move_held_caller(app.twilio_rest, app.writes.put, call_sid, attempt, twiml, step.value)
    return EMPTY


async def _retry_pending_move(app: App, business: BusinessView, call_sid: str, query: dict[str, str],
                              stream_url: str, http_base: str) -> None:
    """The caller is still held although their next step was decided (REST failed moving them): Twilio asks
    for the hold again each time its document ends, and only the held caller's conference asks, so the move
    is retried here — inside the request, so Twilio never has two retries of one caller out at once (the
    hold resumes when it returns). Done once it went through (`move_done`), or when the next segment already
    started. A hold URL without its attempt (from before it carried one) is the latest attempt's."""
    try:
        row = await get_call(app.sessions, call_sid)
        attempt = _attempt(query) if "attempt" in query else _latest_attempt(row)
        record = attempt_of(row, attempt)
        if not record.get("move_pending") or _resumed(row, attempt):
            return
        twiml = await _decided_twiml(app, business, call_sid, attempt, record, row, stream_url, http_base)
    except Exception as exc:  # noqa: BLE001 — the hold plays on; the next one asks again
        log.warning("HANDOFF_MOVE_RETRY_FAILED", call_sid=call_sid, error=str(exc)[:200], exc_info=True)
        return
    if twiml is None:
        return
    log.warning("HANDOFF_MOVE_RETRY", call_sid=call_sid, attempt=attempt, step=record.get("outcome", ""))
    if await redirect_with_retry(app.twilio_rest, call_sid, twiml):
        app.writes.put(TransferWrite(call_sid, attempt, move_done=True))
        log.info("HANDOFF_MOVED", call_sid=call_sid, attempt=attempt, step=record.get("outcome", ""))


async def _decided_twiml(app: App, business: BusinessView, call_sid: str, attempt: int, record: dict[str, Any],
                         row: CallRecord | None, stream_url: str, http_base: str) -> str | None:
    """The caller's TwiML for what was decided for this attempt (nothing recorded), or None if nothing was."""
    outcome = str(record.get("outcome", ""))
    if outcome == "fell_back_to_cold":  # the leg could not be placed: the same line, dialled from the call
        number = str(transfer_of(row).get("number", ""))
        spec = _spec(business)
        return transfer_twiml(number, spec.caller_id, spec.timeout_s, business.language,
                              agent_dial_action_url(http_base, business.id, attempt))
    if outcome in (Next.BACK_TO_AGENT.value, Next.GIVE_UP.value):
        return await _next_twiml(app, business, Next(outcome), call_sid, attempt, str(record.get("status", "")),
                                 *_numbers(row), stream_url, http_base, row)
    return None


def _latest_attempt(row: CallRecord | None) -> int:
    attempts = transfer_of(row).get("attempts") or {}
    return max((int(key) for key in attempts if str(key).isdigit()), default=1)


def _resumed(row: CallRecord | None, attempt: int) -> bool:
    """The caller is back with the agent after this attempt already (its next segment started)."""
    return row is not None and any(int(part.get("n", 0)) > attempt for part in row.segments or [])


def _stray(attempt_record: dict[str, Any], leg_sid: str) -> bool:
    """A leg the transfer went on without: the attempt fell back to a cold <Dial> of the same line (its
    create failed — one that timed out after reaching Twilio still placed a leg, reported or not before the
    fallback), or the caller left before it was answered, or another leg is this attempt's. Left ringing,
    the human would be rung twice, or answer into an empty conference."""
    recorded = str(attempt_record.get("leg_sid", ""))
    gone_on = attempt_record.get("outcome") == "fell_back_to_cold" or (
        attempt_record.get("outcome") == "caller_left" and not attempt_record.get("answered_at"))
    return bool(leg_sid) and (gone_on or bool(recorded) and recorded != leg_sid)


def _numbers(row: CallRecord | None) -> tuple[str, str]:
    """The caller's numbers (from, to) as the call's first stream had them."""
    return (row.from_number, row.to_number) if row is not None else ("", "")


async def _caller_done(app: App, business: BusinessView, form: dict[str, str], row: CallRecord | None, attempt: int,
                       attempt_record: dict[str, Any], stream_url: str, http_base: str) -> str:
    """The caller's conference `<Dial>` ended. The caller hung up → a leg still ringing is cancelled. Else
    the conference ended under them: what was decided for this attempt (a REST move that failed) now
    happens; a human who talked → the call ends."""
    call_sid, outcome = form.get("CallSid", ""), str(attempt_record.get("outcome", ""))
    if form.get("CallStatus") == "completed":
        if attempt_record.get("answered_at"):
            return hangup_twiml()
        if outcome:  # decided (and counted) already, its move pending: the record keeps what was decided
            log.info("TRANSFER_CALLER_LEFT", call_sid=call_sid, business_id=business.id, attempt=attempt, decided=outcome)
            return hangup_twiml()
        await cancel_leg(app.twilio_rest, str(attempt_record.get("leg_sid", "")))
        return _caller_left(app, business.id, call_sid, attempt, "completed")
    return await _decided_twiml(app, business, call_sid, attempt, attempt_record, row, stream_url, http_base) or hangup_twiml()
