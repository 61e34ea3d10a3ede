"""The worker's one `websockets` server: WebSocket /media-stream (Twilio), POST /voice,
POST /stream-ended (the stream's `<Connect action>`), GET /healthz, GET /admin/calls.

Hostile or broken streams are handled here, at the edge: a stream must send a valid `start` within
`[server] start_timeout_s` (at most `max_pending_streams` may be waiting at once; more are refused
with 1013), must announce `audio/x-mulaw` at 8,000 Hz mono (else closed with 1003 and recorded as
`unsupported_media_format`), and no message may exceed `max_message_bytes`. While the worker drains
(SIGTERM) new streams are refused and /voice answers with the business's fallback.

Signatures: when TWILIO_AUTH_TOKEN is set, the stream upgrade must carry a valid X-Twilio-Signature
computed over the configured public `wss://…/media-stream` URL (never the request's own URL, which is
wrong behind a proxy); `/voice` is checked the same way over `https://…/voice` and its form fields.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import socket
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from actors.control_messages import ListLive, LiveTableReply
from actors.ingress_messages import EndCall, TwilioMediaIn, WireDecodeError
from gateway import handshakes
from gateway.admission import Shed
from gateway.app import App
from gateway.config.overrides import fallback_for, realtime_for
from gateway.control import prom
from gateway.control.link import ask_admin
from gateway.fallback import fallback_twiml, hangup_twiml
from gateway.http_shim import FORM_HEADER, METHOD_HEADER, HttpAwareConnection
from gateway.prewarm import route_signature
from gateway.wire import TwilioConnected, TwilioStart, decode_twilio
from storage.businesses import business_for_number

log = structlog.get_logger("kolbridge.gateway")
STREAM_PATH = "/media-stream"


def public_urls(app: App, request_host: str | None) -> tuple[str, str]:
    """(wss stream URL, https voice URL) from KOLBRIDGE_PUBLIC_URL, else from the request's Host."""
    base = app.config.env.public_url
    if base:
        host = urlsplit(base if "://" in base else f"https://{base}").netloc
        return f"wss://{host}{STREAM_PATH}", f"https://{host}/voice"
    host = request_host or "localhost"
    return f"ws://{host}{STREAM_PATH}", f"http://{host}/voice"


def _plain(conn: ServerConnection, status: HTTPStatus, text: str, content_type: str | None = None) -> Response:
    response = conn.respond(status, text)
    if content_type:
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
    return response


async def process_request(app: App, conn: ServerConnection, request: Request) -> Response | None:
    path = urlsplit(request.path).path
    method = request.headers.get(METHOD_HEADER, "GET")
    token = app.config.env.twilio_auth_token
    if path == "/healthz" and method == "GET":
        body = json.dumps({"status": "ok", "calls": len(app.calls), "ticker": {**app.ticker.stats.summary(), **app.gc_watch.summary()}})
        return _plain(conn, HTTPStatus.OK, body, "application/json")
    if path in ("/admin/calls", "/metrics") and method == "GET":
        refused = admin_refused(app, conn, request)
        if refused is not None:
            return refused
        if path == "/metrics":
            return _plain(conn, HTTPStatus.OK, prom.scrape().decode(), prom.CONTENT_TYPE)
        return await admin_calls(app, conn)
    if path in ("/voice", "/stream-ended") and method == "POST":
        form = dict(parse_qsl(request.headers.get(FORM_HEADER, ""), keep_blank_values=True))
        stream_url, voice_url = public_urls(app, request.headers.get("Host"))
        http_base = voice_url.rsplit("/", 1)[0]
        url = voice_url if path == "/voice" else f"{http_base}/stream-ended"
        if token and not RequestValidator(token).validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            log.warning("WEBHOOK_SIGNATURE_INVALID", path=path, call_sid=form.get("CallSid", ""))
            return _plain(conn, HTTPStatus.FORBIDDEN, "invalid signature")
        if path == "/stream-ended":
            twiml = await app.stream_ended_twiml(form.get("CallSid", ""))
            log.info("STREAM_ENDED_ACTION", call_sid=form.get("CallSid", ""), hangup_only=twiml == hangup_twiml())
            return _plain(conn, HTTPStatus.OK, twiml, "text/xml")
        return _plain(conn, HTTPStatus.OK, await voice_twiml(app, form, stream_url, http_base), "text/xml")
    if path == STREAM_PATH:
        if token:
            stream_url, _ = public_urls(app, request.headers.get("Host"))
            if not RequestValidator(token).validate(stream_url, {}, request.headers.get("X-Twilio-Signature", "")):
                log.warning("STREAM_SIGNATURE_INVALID", url=stream_url)
                return _plain(conn, HTTPStatus.FORBIDDEN, "invalid signature")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _plain(conn, HTTPStatus.UPGRADE_REQUIRED, "websocket required")
        return None
    return _plain(conn, HTTPStatus.NOT_FOUND, "not found")


def admin_refused(app: App, conn: ServerConnection, request: Request) -> Response | None:
    """/admin and /metrics: with KOLBRIDGE_ADMIN_TOKEN set, `Authorization: Bearer <token>`; without one,
    loopback clients only."""
    token = app.config.env.admin_token
    if token:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
            return _plain(conn, HTTPStatus.UNAUTHORIZED, "admin token required")
    elif str(conn.remote_address[0]) not in ("127.0.0.1", "::1"):
        return _plain(conn, HTTPStatus.FORBIDDEN, "set KOLBRIDGE_ADMIN_TOKEN for remote admin access")
    return None


async def admin_calls(app: App, conn: ServerConnection) -> Response:
    """Every live call of every worker and host, from the control plane's ControlAdmin (asked off the
    event loop); without a control plane, or when it does not answer, this worker's own calls, saying so."""
    control = app.config.file.control
    answer = await asyncio.to_thread(ask_admin, control.admin_port, ListLive(), 2.0) if control.enabled else None
    if isinstance(answer, LiveTableReply):
        body = {"source": "control plane", "answered_by": app.worker, "calls": list(answer.rows),
                "workers": list(answer.workers)}
        return _plain(conn, HTTPStatus.OK, json.dumps(body, ensure_ascii=False), "application/json")
    now = asyncio.get_running_loop().time()
    calls = [{"call_sid": c.call_id, "business_id": c.business_id, "phase": c.phase, "worker": app.worker,
              "age_s": round(now - c.started_at, 1), "restarts": c.restarts, "children": c.children}
             for c in app.engine.live_calls()]
    source = "this worker only: the control plane did not answer" if control.enabled else "this worker only"
    body = {"source": source, "answered_by": app.worker, "calls": calls}
    return _plain(conn, HTTPStatus.OK, json.dumps(body, ensure_ascii=False), "application/json")


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
        return fallback_twiml(fallback_for(business), business.language, form.get("From", ""))
    shed, lateness = app.admission()
    if shed is not Shed.NO:  # this worker is full: the business's fallback now, not a degraded call
        fallback = fallback_for(business)
        app.record_shed(call_sid, business.id, form, shed, lateness, fallback.mode)
        return fallback_twiml(fallback, business.language, form.get("From", ""))
    # when the stream ends with the call still up, Twilio asks this URL what next (the fallback, or hang up)
    connect = Connect(action=f"{http_base}/stream-ended") if http_base else Connect()
    stream = connect.stream(url=stream_url)
    stream.parameter(name="business_id", value=business.id)
    stream.parameter(name="call_sid", value=call_sid)
    stream.parameter(name="from", value=form.get("From", ""))
    stream.parameter(name="to", value=to)
    token = app.config.env.twilio_auth_token
    if token:
        stream.parameter(name="route_sig", value=route_signature(token, call_sid, business.id))
    response.append(connect)
    app.prewarmer.start(call_sid, realtime_for(app.config.file.realtime, business).model)
    log.info("VOICE_ROUTED", call_sid=call_sid, to=to, business_id=business.id)
    return str(response)


async def await_start(app: App, ws: ServerConnection) -> TwilioStart | None:
    """Messages before `start` (`connected`, junk) until a valid `start` or the start timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + app.config.file.server.start_timeout_s
    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            app.refused_streams += 1
            log.warning("STREAM_START_TIMEOUT", remote=str(ws.remote_address))
            await ws.close(1008, "no start")
            return None
        msg = decode_twilio(raw, loop.time())
        if isinstance(msg, TwilioStart):
            return msg
        if isinstance(msg, WireDecodeError):
            app.twilio_decode_errors += 1
            log.warning("TWILIO_DECODE_ERROR", reason=msg.reason, before_start=True)
        elif isinstance(msg, EndCall):
            return None


async def media_stream(app: App, ws: ServerConnection) -> None:
    # the cap holds here too (a stream /voice did not route); saturation is judged at /voice only: a stream
    # that arrives was admitted there a moment ago, and turning it away now costs the caller more
    if app.draining:
        refused = "draining"
    elif app.pending_streams >= app.config.file.server.max_pending_streams:
        refused = "too many pending streams"
    else:
        refused = app.admission(saturation=False)[0].value  # "" or "max_calls"
        if refused:
            prom.call_shed("", refused)
    if refused:  # Twilio then asks the <Connect action> URL what next: the fallback
        app.refused_streams += 1
        log.warning("STREAM_REFUSED", reason=refused, pending=app.pending_streams, live=len(app.calls))
        await ws.close(1013, "try again later")
        return
    app.pending_streams += 1
    try:
        start = await await_start(app, ws)
    except ConnectionClosed:
        return
    finally:
        app.pending_streams -= 1
    if start is None:
        return
    if not start.format_supported:
        log.error("STREAM_UNSUPPORTED_MEDIA_FORMAT", call_sid=start.call_sid, media_format=list(start.media_format))
        app.record_rejected(start, start.custom.get("business_id", ""), "unsupported_media_format")
        await ws.close(1003, "unsupported media format")
        return
    call = await app.start_call(ws, start)
    if call is None:
        await ws.close(1008, "unknown business")
        return
    loop = asyncio.get_running_loop()
    reason = "twilio_disconnected"
    tell, poll_ticker = app.engine.tell, app.ticker.poll
    try:
        async for raw in ws:
            poll_ticker()  # a due tick runs now, not after the loop's whole batch of ready callbacks
            msg = decode_twilio(raw, loop.time())
            if isinstance(msg, EndCall):
                reason = msg.reason
                break
            if isinstance(msg, TwilioMediaIn):
                call.frames_in += 1
                if call.recorder is not None:
                    call.recorder.caller(msg.raw, msg.at)
            elif isinstance(msg, WireDecodeError):
                log.warning("TWILIO_DECODE_ERROR", call_sid=call.call_id, reason=msg.reason)
            elif isinstance(msg, (TwilioStart, TwilioConnected)):
                continue
            tell(call.call_id, msg)
    except ConnectionClosed:
        pass
    finally:
        await app.end_call(call, reason)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def start_server(app: App, host: str, port: int, reuse_port: bool = False) -> Server:
    handshakes.install()
    async def handler(ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path).path if ws.request else ""
        if path == STREAM_PATH:
            await media_stream(app, ws)

    async def on_request(conn: ServerConnection, request: Request) -> Response | None:
        return await process_request(app, conn, request)

    kwargs: dict[str, Any] = {"process_request": on_request, "create_connection": HttpAwareConnection,
                              "max_size": app.config.file.server.max_message_bytes, "compression": None,
                              "ping_interval": None}
    if reuse_port:
        return await serve(handler, sock=reuse_port_socket(host, port), **kwargs)
    return await serve(handler, host, port, **kwargs)

