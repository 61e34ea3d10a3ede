"""Placing an outbound call: the one way `kolbridge calls dial`, `POST /outbound/calls` and the callback
scheduler call somebody.

The checks come first and each refusal is final, logged and counted (nothing is dialled): an invalid
number, an unknown or inactive business, a number on the business's do-not-call list, no number to call
from, no Twilio credentials, no public URL for Twilio's webhooks. Then Twilio's `calls.create`
(gateway/outbound/rest.py: retried only when provably unsent) with our `/voice` URL — its query names
the business, the direction, the lead and the purpose, and Twilio signs it whole — answering-machine
detection (DetectMessageEnd) when the business asks for it, and the status callback
`/outbound-status` (the attempt's token in its query). The record of the call is written once Twilio
accepted it: direction outbound, the lead, the purpose.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.control import prom
from gateway.fallback import TwilioRest
from gateway.outbound.rest import CallParams, CreateCallError, create_call
from storage.businesses import get_business
from storage.outbound import E164, dnc_listed, normalise, outbound_spec, record_outbound_call

log = structlog.get_logger("kolbridge.outbound")
PURPOSE_MAX = 300

# outcome → HTTP status of POST /outbound/calls
HTTP_STATUS = {"created": 201, "invalid": 400, "unknown_business": 404, "dnc": 409, "not_configured": 503,
               "rejected": 502, "failed": 502, "unknown": 504}


@dataclass(frozen=True)
class DialRequest:
    business_id: str
    to: str
    lead_id: int | None = None
    purpose: str = ""
    source: str = "cli"  # cli | api | scheduler


@dataclass(frozen=True)
class DialResult:
    outcome: str  # a key of HTTP_STATUS
    call_sid: str = ""
    detail: str = ""

    @property
    def created(self) -> bool:
        return self.outcome == "created"

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.outcome, 500)


def public_base(public_url: str) -> str:
    """https://host from KOLBRIDGE_PUBLIC_URL (as /voice's signature check builds it); an explicit http://
    URL is kept as it is (a local fake); "" when none is set."""
    if not public_url:
        return ""
    if public_url.startswith("http://"):
        return public_url.rstrip("/")
    host = urlsplit(public_url if "://" in public_url else f"https://{public_url}").netloc
    return f"https://{host}"


def voice_url(base: str, request: DialRequest) -> str:
    query = {"business": request.business_id, "direction": "outbound",
             "lead": "" if request.lead_id is None else str(request.lead_id), "purpose": request.purpose}
    return f"{base}/voice?{urlencode(query)}"


def status_url(base: str, request: DialRequest, attempt: str) -> str:
    query = {"business": request.business_id, "lead": "" if request.lead_id is None else str(request.lead_id),
             "attempt": attempt}
    return f"{base}/outbound-status?{urlencode(query)}"


class Dialer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], rest: TwilioRest | None, base: str) -> None:
        """`base`: the public https://host Twilio reaches us at (see `public_base`)."""
        self.sessions, self.rest, self.base = sessions, rest, base

    async def dial(self, request: DialRequest) -> DialResult:
        result = await self._dial(request)
        prom.outbound_call(request.business_id, "placed" if result.created else f"refused_{result.outcome}")
        event = "OUTBOUND_PLACED" if result.created else "OUTBOUND_REFUSED"
        (log.info if result.created else log.warning)(
            event, business_id=request.business_id, to=request.to, lead_id=request.lead_id, source=request.source,
            outcome=result.outcome, call_sid=result.call_sid, detail=result.detail)
        return result

    async def _dial(self, request: DialRequest) -> DialResult:
        to = normalise(request.to)
        if not E164.match(to) or len(request.purpose) > PURPOSE_MAX:
            return DialResult("invalid", detail=f"{request.to!r} is not an E.164 number" if not E164.match(to)
                              else f"purpose longer than {PURPOSE_MAX} characters")
        business = await get_business(self.sessions, request.business_id)
        if business is None or not business.active:
            return DialResult("unknown_business", detail=f"no active business {request.business_id!r}")
        if await dnc_listed(self.sessions, business.id, to):
            return DialResult("dnc", detail=f"{to} is on {business.id}'s do-not-call list")
        spec = outbound_spec(business.agent)
        caller_id = spec.caller_id or (business.phone_numbers[0] if business.phone_numbers else "")
        if not caller_id:
            return DialResult("not_configured", detail="no number to call from ([business.outbound] caller_id)")
        if self.rest is None or not self.base:
            return DialResult("not_configured", detail="Twilio REST credentials and a public URL "
                              "(KOLBRIDGE_PUBLIC_URL) are needed to place calls")
        request = DialRequest(business.id, to, request.lead_id, request.purpose, request.source)
        params = CallParams(to, caller_id, voice_url(self.base, request), status_url(self.base, request, uuid.uuid4().hex),
                            spec.amd)
        try:
            call_sid = await create_call(self.rest, params)
        except CreateCallError as exc:
            return DialResult(exc.failure.value if exc.failure.value != "not_sent" else "failed",
                              detail=f"{exc.detail} (after {exc.attempts} attempt(s))")
        try:
            await record_outbound_call(self.sessions, call_sid, business.id, caller_id, to, request.lead_id,
                                       request.purpose)
        except Exception as exc:  # noqa: BLE001 — the call is placed: /voice writes the record again when answered
            log.error("OUTBOUND_RECORD_FAILED", call_sid=call_sid, error=repr(exc)[:200])
        return DialResult("created", call_sid)
