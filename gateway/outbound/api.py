"""POST /outbound/calls: place an outbound call over HTTP, as `kolbridge calls dial` does.

Body: JSON `{"business": ID, "to": "+972…", "lead_id": N?, "purpose": "…"?}` (ASCII: non-ASCII characters
as \\u escapes, as `json.dumps` writes them) or the same fields form-encoded. Auth, `Authorization:
Bearer <token>`, always (a loopback client is not trusted without one): the admin token (KOLBRIDGE_ADMIN_TOKEN),
or the business's own token, whose SHA-256 is `[business.outbound] api_token_sha256` — valid for that
business only (another business's token gets 403, and a lead of another business is 404). Answers
JSON `{outcome, call_sid, detail}` with the dialler's HTTP status (201 placed, 409 on the do-not-call
list, 400 invalid, 404 unknown, 502/504 Twilio failed or did not answer, 503 not configured).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from gateway.fallback import TwilioRest
from gateway.outbound.dialer import Dialer, DialRequest
from storage.businesses import get_business
from storage.callbacks import get_lead
from storage.outbound import outbound_spec

Answer = tuple[int, dict[str, Any]]


def parse_body(body: str) -> dict[str, Any] | None:
    """The request's fields (None when the body is neither a JSON object nor a form)."""
    text = body.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return dict(parse_qsl(text, keep_blank_values=True)) if text else None


def authorised(bearer: str, admin_token: str, token_sha256: str) -> tuple[bool, int]:
    """(allowed, status when not): the admin's token, else the business's own. Dialling always needs a
    token — unlike /admin's read-only listing, a loopback client is not trusted without one (behind a
    reverse proxy on the same host every client is loopback, and a call costs money)."""
    token = bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else ""
    if admin_token and token and hmac.compare_digest(token, admin_token):
        return True, 200
    if token and token_sha256 and hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), token_sha256):
        return True, 200
    return False, 403 if token else 401


async def api_dial(sessions: Any, rest: TwilioRest | None, base: str, admin_token: str, bearer: str,
                   body: str) -> Answer:
    fields = parse_body(body)
    if fields is None or not isinstance(fields.get("business"), str) or not isinstance(fields.get("to"), str):
        return 400, {"outcome": "invalid", "detail": "a JSON object with business and to is required"}
    business = await get_business(sessions, fields["business"])
    token_hash = outbound_spec(business.agent).api_token_sha256 if business is not None else ""
    allowed, status = authorised(bearer, admin_token, token_hash)
    if not allowed:
        return status, {"outcome": "unauthorised", "detail": "a valid admin or business token is required"}
    lead_id = fields.get("lead_id")
    if lead_id is not None and not (isinstance(lead_id, int) or (isinstance(lead_id, str) and lead_id.isdigit())):
        return 400, {"outcome": "invalid", "detail": "lead_id must be a number"}
    lead_number = int(lead_id) if lead_id is not None else None
    if lead_number is not None:
        lead = await get_lead(sessions, lead_number)
        if lead is None or lead.business_id != fields["business"]:
            return 404, {"outcome": "unknown_lead", "detail": f"no lead {lead_number} of this business"}
    purpose = fields.get("purpose", "")
    request = DialRequest(fields["business"], fields["to"], lead_number, purpose if isinstance(purpose, str) else "", "api")
    result = await Dialer(sessions, rest, base).dial(request)
    return result.http_status, {"outcome": result.outcome, "call_sid": result.call_sid, "detail": result.detail}
