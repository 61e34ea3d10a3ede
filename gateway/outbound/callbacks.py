"""Twilio's status callback for an outbound call (POST /outbound-status, signed), and a lead's callback moved
by an attempt's outcome (gateway/outbound/schedule.py's transition table, applied with a conditional
UPDATE so a late or repeated callback changes nothing).

A final CallStatus ends the record unless the stream or the voicemail ended it first (busy, no_answer,
failed, canceled, completed) and is counted (`kolbridge_outbound_calls_total{outcome}`). For the lead:
busy / no-answer / failed / canceled, or completed after a machine answered, is a spent attempt —
retried at the next calling hour after `retry_after_min`, failed after `max_attempts`; completed after a
person answered changes nothing (/voice marked it done).
"""
from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.control import prom
from gateway.outbound.schedule import CallbackState, Outcome, after_attempt, policy_of
from storage.businesses import get_business
from storage.callbacks import get_lead, set_callback
from storage.calls import get_call
from storage.models import utcnow
from storage.outbound import end_unanswered, outbound_spec
from storage.writequeue import WebhookWrite

if TYPE_CHECKING:
    from gateway.app import App

log = structlog.get_logger("kolbridge.outbound")
FINAL = {"completed": Outcome.HUMAN, "busy": Outcome.BUSY, "no-answer": Outcome.NO_ANSWER, "failed": Outcome.FAILED,
         "canceled": Outcome.CANCELED}


async def attempt_ended(sessions: async_sessionmaker[AsyncSession], business_id: str, lead_id: int,
                        outcome: Outcome) -> str:
    """Move the lead's callback by this attempt's outcome; its new state ("" when nothing changed)."""
    lead = await get_lead(sessions, lead_id)
    business = await get_business(sessions, business_id)
    if lead is None or business is None or lead.business_id != business_id:
        return ""
    try:
        state = CallbackState(lead.callback_status or "")
    except ValueError:
        return ""
    policy = policy_of(outbound_spec(business.agent))
    transition = after_attempt(policy, state, lead.callback_attempts, outcome, utcnow())
    if transition is None:
        return ""
    changed = await set_callback(sessions, lead_id, transition.state.value, at=transition.at, expect=(state.value,))
    if changed:
        log.info("CALLBACK_MOVED", lead_id=lead_id, business_id=business_id, outcome=outcome.value,
                 state=transition.state.value, next_at=transition.at.isoformat() if transition.at else "",
                 attempts=lead.callback_attempts)
        if transition.state is CallbackState.FAILED:
            prom.outbound_call(business_id, "callback_failed")
    return transition.state.value if changed else ""


def report_unstreamed(app: App, business_id: str, call_sid: str, end_reason: str, details: dict[str, Any]) -> None:
    """The post-call report of an outbound call that never reached the agent (voicemail, fax, busy, no
    answer…), to the business's webhook like any call's (gateway/webhooks.py delivers it)."""
    body = {"event": "call.ended", "call_sid": call_sid, "business_id": business_id, "segment": 1, "may_resume": False,
            "end_reason": end_reason, "direction": "outbound", **details, "transcript": [], "tool_calls": [], "lead": None, "transfer": None}
    app.writes.put(WebhookWrite(uuid.uuid4().hex, business_id, call_sid, "call_report", json.dumps(body, ensure_ascii=False)))
    app.webhooks.wake()


async def outbound_status(app: App, form: dict[str, str], query: dict[str, str]) -> None:
    """Twilio's StatusCallback for an outbound call (every event; only the final ones matter)."""
    call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    business_id, sessions = query.get("business", ""), app.sessions
    if status not in FINAL:
        return
    ended = await end_unanswered(sessions, call_sid, status)
    if status != "completed":
        prom.outbound_call(business_id, status.replace("-", "_"))
    business = await get_business(sessions, business_id)
    if ended and status != "completed" and business is not None and business.agent.get("webhook"):
        report_unstreamed(app, business_id, call_sid, status.replace("-", "_"),
                          {"callee": form.get("To", ""), "answered_by": form.get("AnsweredBy", "")})
    log.info("OUTBOUND_STATUS", call_sid=call_sid, business_id=business_id, status=status, record_ended=ended,
             attempt=query.get("attempt", ""))
    lead = query.get("lead", "")
    if not lead.isdigit():
        return
    outcome = FINAL[status]
    if status == "completed":
        row = await get_call(sessions, call_sid)
        answered_by = (row.answered_by if row is not None else "") or form.get("AnsweredBy", "")
        outcome = Outcome.MACHINE if answered_by.startswith("machine") or answered_by == "fax" else Outcome.HUMAN
        if row is not None and row.end_reason == "shed_outbound":  # a person heard our apology, not the agent: retried
            outcome = Outcome.FAILED
    await attempt_ended(sessions, business_id, int(lead), outcome)
