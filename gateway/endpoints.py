"""The worker's HTTP endpoints, answered by its one websockets server before any upgrade: POST /voice
(Twilio's webhook for an incoming call), POST /stream-ended (the stream's `<Connect action>`), GET
/healthz, GET /admin/calls, GET /metrics — and the checks on the media stream's upgrade request.

/voice routes by the `To` number: the business's stream TwiML with its signed route and the Realtime
connection pre-opened, or — while the worker drains or is full (gateway/admission.py) — the business's
fallback TwiML at once. Signatures: when TWILIO_AUTH_TOKEN is set, the stream upgrade must carry a
valid X-Twilio-Signature computed over the configured public `wss://…/media-stream` URL (never the
request's own URL, which is wrong behind a proxy); /voice and /stream-ended are checked the same way
over their `https://…` URLs and form fields. /admin and /metrics: with KOLBRIDGE_ADMIN_TOKEN set, a
bearer token; without one, loopback clients only.
"""
from __future__ import annotations

import asyncio
import hmac
import json
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

import structlog
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from actors.control_messages import ListLive, LiveTableReply
from gateway.admission import Shed
from gateway.app import App
from gateway.config.overrides import fallback_for, realtime_for
from gateway.control import prom
from gateway.control.link import ask_admin
from gateway.fallback import DIAL_ANSWERED, FallbackSettings, apology_twiml, dial_action_url, dial_done_twiml, fallback_twiml, hangup_twiml
from gateway.handoff.routes import cold_dial_done, handoff_callback
from gateway.http_shim import FORM_HEADER, METHOD_HEADER
from gateway.outbound.answer import outbound_voice
from gateway.outbound.api import api_dial
from gateway.outbound.callbacks import outbound_status
from gateway.prewarm import stream_twiml
from storage.businesses import business_for_number, get_business

log = structlog.get_logger("kolbridge.gateway")
STREAM_PATH = "/media-stream"
HANDOFF_PATHS = frozenset({"/handoff/hold", "/handoff/whisper", "/handoff/join", "/handoff/leg-status", "/handoff/caller-done"})


def public_urls(app: App, request_host: str | None) -> tuple[str, str]:
    """(wss stream URL, https voice URL) from KOLBRIDGE_PUBLIC_URL, else from the request's Host."""
    base = app.config.env.public_url
    if base:  # https unless an explicit http:// URL says otherwise (as the outbound dialer builds its URLs)
        host = urlsplit(base if "://" in base else f"https://{base}").netloc
        secure = not base.startswith("http://")
        return f"{'wss' if secure else 'ws'}://{host}{STREAM_PATH}", f"{'https' if secure else 'http'}://{host}/voice"
    host = request_host or "localhost"
    return f"ws://{host}{STREAM_PATH}", f"http://{host}/voice"


def plain(conn: ServerConnection, status: HTTPStatus, text: str, content_type: str | None = None) -> Response:
    response = conn.respond(status, text)
    if content_type:
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
    return response


async def process_request(app: App, conn: ServerConnection, request: Request) -> Response | None:
    """An HTTP answer, or None to let the WebSocket upgrade of the media stream go on."""
    path = urlsplit(request.path).path
    method = request.headers.get(METHOD_HEADER, "GET")
    if path == "/healthz" and method == "GET":
        body = json.dumps({"status": "ok", "calls": len(app.calls), "ticker": {**app.ticker.stats.summary(), **app.gc_watch.summary()}})
        return plain(conn, HTTPStatus.OK, body, "application/json")
    if path in ("/admin/calls", "/metrics") and method == "GET":
        refused = admin_refused(app, conn, request)
        if refused is not None:
            return refused
        if path == "/metrics":
            return plain(conn, HTTPStatus.OK, prom.scrape().decode(), prom.CONTENT_TYPE)
        return await admin_calls(app, conn)
    if (path in ("/voice", "/stream-ended", "/dial-done") or path in HANDOFF_PATHS) and method == "POST":
        return await twilio_webhook(app, conn, request, path)
    if path == "/outbound-status" and method == "POST":  # an outbound call's progress (gateway/outbound/)
        return await twilio_webhook(app, conn, request, path)
    if path == "/outbound/calls" and method == "POST":
        return await outbound_calls(app, conn, request)
    if path == STREAM_PATH:
        return stream_upgrade(app, conn, request)
    return plain(conn, HTTPStatus.NOT_FOUND, "not found")


async def twilio_webhook(app: App, conn: ServerConnection, request: Request, path: str) -> Response:
    """POST /voice (a call comes in) and /stream-ended (the stream's action URL), signed by Twilio."""
    form = dict(parse_qsl(request.headers.get(FORM_HEADER, ""), keep_blank_values=True))
    stream_url, voice_url = public_urls(app, request.headers.get("Host"))
    http_base = voice_url.rsplit("/", 1)[0]
    query = urlsplit(request.path).query  # Twilio signs the whole URL, its query included
    url = (voice_url if path == "/voice" else f"{http_base}{path}") + (f"?{query}" if query else "")
    token = app.config.env.twilio_auth_token
    if token and not RequestValidator(token).validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        log.warning("WEBHOOK_SIGNATURE_INVALID", path=path, call_sid=form.get("CallSid", ""))
        return plain(conn, HTTPStatus.FORBIDDEN, "invalid signature")
    if path == "/dial-done" and dict(parse_qsl(query)).get("kind") == "agent":  # transfer_to_human's <Dial> ended
        return plain(conn, HTTPStatus.OK, await cold_dial_done(app, form, dict(parse_qsl(query)), stream_url, http_base), "text/xml")
    if path in HANDOFF_PATHS:  # a warm transfer's hold, whisper, leg status, conference end
        return plain(conn, HTTPStatus.OK, await handoff_callback(app, path, form, dict(parse_qsl(query)), stream_url, http_base), "text/xml")
    if path == "/dial-done":
        return plain(conn, HTTPStatus.OK, await dial_done(app, form, dict(parse_qsl(query))), "text/xml")
    if path == "/outbound-status":
        await outbound_status(app, form, dict(parse_qsl(query)))
        return plain(conn, HTTPStatus.OK, str(VoiceResponse()), "text/xml")
    if path == "/voice" and dict(parse_qsl(query)).get("direction") == "outbound":  # we placed it: who answered?
        return plain(conn, HTTPStatus.OK, await outbound_voice(app, form, dict(parse_qsl(query)), stream_url, http_base),
                     "text/xml")
    if path == "/stream-ended":
        twiml = await app.stream_ended_twiml(form.get("CallSid", ""))
        log.info("STREAM_ENDED_ACTION", call_sid=form.get("CallSid", ""), hangup_only=twiml == hangup_twiml())
        return plain(conn, HTTPStatus.OK, twiml, "text/xml")
    return plain(conn, HTTPStatus.OK, await voice_twiml(app, form, stream_url, http_base), "text/xml")


async def dial_done(app: App, form: dict[str, str], query: dict[str, str]) -> str:
    """The fallback's <Dial> ended (its action URL): the human answered → hang up; nobody did → the business's
    fallback message, in its language (transfer_to_human's <Dial>: gateway/handoff/routes.py)."""
    status, call_sid = form.get("DialCallStatus", ""), form.get("CallSid", "")
    business = await get_business(app.sessions, query["business"]) if query.get("business") else None
    kind = query.get("kind", "fallback")
    prom.transfer_ended(business.id if business else "", kind, status or "unknown")
    log.info("DIAL_DONE", call_sid=call_sid, business_id=business.id if business else "", kind=kind, status=status,
             duration_s=form.get("DialCallDuration", ""))
    if business is None:
        return hangup_twiml() if status in DIAL_ANSWERED else apology_twiml(FallbackSettings(), "en")
    return dial_done_twiml(fallback_for(business), business.language, status)



async def outbound_calls(app: App, conn: ServerConnection, request: Request) -> Response:
    """POST /outbound/calls: place an outbound call, for the admin's or the business's token (gateway/outbound/api.py)."""
    base = public_urls(app, request.headers.get("Host"))[1].rsplit("/", 1)[0]
    status, body = await api_dial(app.sessions, app.twilio_rest, base, app.config.env.admin_token,
                                  request.headers.get("Authorization", ""), request.headers.get(FORM_HEADER, ""))
    return plain(conn, HTTPStatus(status), json.dumps(body, ensure_ascii=False), "application/json")


def stream_upgrade(app: App, conn: ServerConnection, request: Request) -> Response | None:
    """The media stream's upgrade request: signed by Twilio (with a token), and a WebSocket upgrade."""
    token = app.config.env.twilio_auth_token
    if token:
        stream_url, _ = public_urls(app, request.headers.get("Host"))
        if not RequestValidator(token).validate(stream_url, {}, request.headers.get("X-Twilio-Signature", "")):
            log.warning("STREAM_SIGNATURE_INVALID", url=stream_url)
            return plain(conn, HTTPStatus.FORBIDDEN, "invalid signature")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return plain(conn, HTTPStatus.UPGRADE_REQUIRED, "websocket required")
    return None


def admin_refused(app: App, conn: ServerConnection, request: Request) -> Response | None:
    """/admin and /metrics: with KOLBRIDGE_ADMIN_TOKEN set, `Authorization: Bearer <token>`; without one,
    loopback clients only."""
    token = app.config.env.admin_token
    if token:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
            return plain(conn, HTTPStatus.UNAUTHORIZED, "admin token required")
    elif str(conn.remote_address[0]) not in ("127.0.0.1", "::1"):
        return plain(conn, HTTPStatus.FORBIDDEN, "set KOLBRIDGE_ADMIN_TOKEN for remote admin access")
    return None


async def admin_calls(app: App, conn: ServerConnection) -> Response:
    """Every live call of every worker and host, from the control plane's ControlAdmin (asked off the
    event loop); without a control plane, or when it does not answer, this worker's own calls, saying so."""
    control = app.config.file.control
    answer = await asyncio.to_thread(ask_admin, control.admin_port, ListLive(), 2.0) if control.enabled else None
    if isinstance(answer, LiveTableReply):
        body = {"source": "control plane", "answered_by": app.worker, "calls": list(answer.rows),
                "workers": list(answer.workers)}
        return plain(conn, HTTPStatus.OK, json.dumps(body, ensure_ascii=False), "application/json")
    now = asyncio.get_running_loop().time()
    calls = [{"call_sid": c.call_id, "business_id": c.business_id, "phase": c.phase, "worker": app.worker,
              "age_s": round(now - c.started_at, 1), "restarts": c.restarts, "children": c.children}
             for c in app.engine.live_calls()]
    source = "this worker only: the control plane did not answer" if control.enabled else "this worker only"
    body = {"source": source, "answered_by": app.worker, "calls": calls}
    return plain(conn, HTTPStatus.OK, json.dumps(body, ensure_ascii=False), "application/json")


async def voice_twiml(app: App, form: dict[str, str], stream_url: str, http_base: str = "") -> str:
    call_sid, to = form.get("CallSid", ""), form.get("To", "")
    business = await business_for_number(app.sessions, to) if to else None
    response = VoiceResponse()
    if business is None or not business.active:
        log.warning("VOICE_UNKNOWN_NUMBER", call_sid=call_sid, to=to)
        response.say("Sorry, this number is not in service.")
        response.hangup()
        return str(response)
    if app.draining:
        log.warning("VOICE_WHILE_DRAINING", call_sid=call_sid, business_id=business.id)
        return fallback_twiml(fallback_for(business), business.language, form.get("From", ""),
                              dial_action_url(http_base, business.id, "fallback"))
    shed, lateness = app.admission()
    if shed is not Shed.NO:  # this worker is full: the business's fallback now, not a degraded call
        fallback = fallback_for(business)
        app.record_shed(call_sid, business.id, form, shed, lateness, fallback.mode)
        return fallback_twiml(fallback, business.language, form.get("From", ""),
                              dial_action_url(http_base, business.id, "fallback"))
    app.prewarmer.start(call_sid, realtime_for(app.config.file.realtime, business).model)
    log.info("VOICE_ROUTED", call_sid=call_sid, to=to, business_id=business.id)
    return stream_twiml(app.config.env.twilio_auth_token, stream_url, http_base, call_sid, business.id,
                        form.get("From", ""), to)
