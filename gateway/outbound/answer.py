"""/voice for an outbound call, answered (its URL's query says `direction=outbound`; Twilio signed it whole).

Twilio's AnsweredBy (answering-machine detection with DetectMessageEnd) decides:
  * machine_end_beep | machine_end_silence | machine_end_other: the greeting has ended — `<Say>` the
    business's voicemail message in its language and voice, `<Hangup/>`; the record ends `voicemail`;
  * fax: `<Hangup/>`, the record ends `fax`;
  * human, unknown, machine_start, or none (no detection asked): the media stream, with the outbound facts
    as signed parameters (gateway/outbound/context.py) — the agent opens with who it is and why it calls.
    While this worker drains or is full, the business's apology and a hang-up instead (`shed`).
The record gets direction, who answered, the lead and the purpose; a person's answer ends the lead's
scheduled callback (done). A database that cannot answer costs the record's details, never the call.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from string import Template
from typing import TYPE_CHECKING, Any

import structlog
from twilio.twiml.voice_response import VoiceResponse

from gateway.config.overrides import fallback_for, realtime_for
from gateway.control import prom
from gateway.fallback import DEFAULT_VOICES, apology_twiml, hangup_twiml
from gateway.outbound.callbacks import report_unstreamed
from gateway.outbound.context import OutboundContext, stream_extra
from gateway.outbound.dialer import PURPOSE_MAX
from gateway.prewarm import stream_twiml
from storage.businesses import BusinessView, get_business
from storage.callbacks import get_lead, set_callback
from storage.outbound import OutboundSpec, outbound_spec, record_outbound_call

if TYPE_CHECKING:
    from gateway.app import App

log = structlog.get_logger("kolbridge.outbound")
MACHINE_END = ("machine_end_beep", "machine_end_silence", "machine_end_other")
DB_TIMEOUT_S = 1.0
DEFAULT_VOICEMAIL = {
    "he": "שלום, כאן ${business}. ניסינו להשיג אותך. נשמח אם תחזור/י אלינו למספר ${number}. תודה ולהתראות.",
    "en": "Hello, this is ${business}. We tried to reach you. Please call us back at ${number}. Thank you, goodbye.",
}


def voicemail_twiml(business: BusinessView, spec: OutboundSpec, number: str) -> str:
    """The voicemail message (the business's for its language, else its own, else the default) and a hang-up."""
    language = business.language
    text = spec.voicemail_messages.get(language) or spec.voicemail_message or \
        DEFAULT_VOICEMAIL.get(language, DEFAULT_VOICEMAIL["en"])
    message = Template(text).safe_substitute(business=business.name, number=number)
    settings = fallback_for(business)
    voice, say_language = DEFAULT_VOICES.get(language, DEFAULT_VOICES["en"])
    response = VoiceResponse()
    response.say(message, voice=settings.say_voice or voice, language=settings.say_language or say_language)
    response.hangup()
    return str(response)


async def outbound_voice(app: App, form: dict[str, str], query: dict[str, str], stream_url: str, http_base: str) -> str:
    call_sid, answered_by = form.get("CallSid", ""), form.get("AnsweredBy", "")
    business = await get_business(app.sessions, query.get("business", ""))
    if business is None or not business.active:
        log.warning("OUTBOUND_VOICE_UNKNOWN_BUSINESS", call_sid=call_sid, business_id=query.get("business", ""))
        return hangup_twiml()
    lead_id = int(query["lead"]) if query.get("lead", "").isdigit() else None
    purpose, callee, ours = query.get("purpose", "")[:PURPOSE_MAX], form.get("To", ""), form.get("From", "")
    spec = outbound_spec(business.agent)
    if answered_by in MACHINE_END:
        outcome, end_reason, twiml = "machine", "voicemail", voicemail_twiml(business, spec, ours)
    elif answered_by == "fax":
        outcome, end_reason, twiml = "fax", "fax", hangup_twiml()
    elif app.draining or app.admission()[0].value:
        outcome, end_reason = "shed", "shed_outbound"
        twiml = apology_twiml(fallback_for(business), business.language)
    else:
        outcome, end_reason = "human", ""
        lead = await _lead_fields(app, business.id, lead_id, call_sid)
        context = OutboundContext(callee, purpose, "" if lead_id is None else str(lead_id), lead, answered_by)
        twiml = person_stream_twiml(app, business, call_sid, context, ours, stream_url, http_base)
    log.info("OUTBOUND_ANSWERED", call_sid=call_sid, business_id=business.id, answered_by=answered_by or "-",
             outcome=outcome, lead_id=lead_id)
    prom.outbound_call(business.id, outcome)
    await _guarded(call_sid, record_outbound_call(app.sessions, call_sid, business.id, ours, callee, lead_id, purpose,
                                                  answered_by or "unknown", end_reason))
    if end_reason in ("voicemail", "fax") and business.agent.get("webhook"):
        report_unstreamed(app, business.id, call_sid, end_reason, {"callee": callee, "answered_by": answered_by,
                                                                   "lead_id": lead_id, "purpose": purpose})
    if outcome == "human" and lead_id is not None:
        await _guarded(call_sid, set_callback(app.sessions, lead_id, "done", expect=("dialing", "scheduled")))
    return twiml


def person_stream_twiml(app: App, business: BusinessView, call_sid: str, context: OutboundContext, ours: str,
                        stream_url: str, http_base: str) -> str:
    """The media stream for a person who answered, its outbound facts signed into the route."""
    app.prewarmer.start(call_sid, realtime_for(app.config.file.realtime, business).model)
    return stream_twiml(app.config.env.twilio_auth_token, stream_url, http_base, call_sid, business.id, ours,
                        context.callee, stream_extra(context))


async def _lead_fields(app: App, business_id: str, lead_id: int | None, call_sid: str) -> dict[str, object]:
    """The lead's saved fields (only a lead of this business; {} when unknown or the database is slow)."""
    if lead_id is None:
        return {}
    try:
        lead = await asyncio.wait_for(get_lead(app.sessions, lead_id), DB_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 — the call goes on without the lead's details
        log.warning("OUTBOUND_LEAD_LOOKUP_FAILED", call_sid=call_sid, lead_id=lead_id, error=repr(exc)[:200])
        return {}
    return dict(lead.fields or {}) if lead is not None and lead.business_id == business_id else {}


async def _guarded(call_sid: str, write: Coroutine[Any, Any, Any]) -> None:
    try:
        await asyncio.wait_for(write, DB_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 — the TwiML still answers; the status callback completes the record
        log.error("OUTBOUND_RECORD_FAILED", call_sid=call_sid, error=repr(exc)[:200])
