"""The worker's one `websockets` server: the Twilio media stream (WebSocket /media-stream) and, before
any upgrade, the HTTP endpoints (gateway/endpoints.py).

Hostile or broken streams are handled here, at the edge: a stream must send a valid `start` within
`[server] start_timeout_s` (at most `max_pending_streams` may be waiting at once; more are refused
with 1013, as is a stream beyond `max_calls`), must announce `audio/x-mulaw` at 8,000 Hz mono (else
closed with 1003 and recorded as `unsupported_media_format`), must name a business it may reach (else
1008), and no message may exceed `max_message_bytes`. While the worker drains (SIGTERM) new streams
are refused. A live call's messages go to its actors, each after a poll of the 20 ms ticker; `stop` or
a closed socket ends the call.
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from actors.ingress_messages import EndCall, TwilioMediaIn, WireDecodeError
from gateway import handshakes
from gateway.app import App
from gateway.call import CallIO
from gateway.control import prom
from gateway.endpoints import STREAM_PATH, process_request
from gateway.http_shim import HttpAwareConnection
from gateway.wire import TwilioConnected, TwilioStart, decode_twilio

log = structlog.get_logger("kolbridge.gateway")


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


def stream_refusal(app: App) -> str:
    """Why a new stream is turned away now (1013), or "". The cap holds here too (a stream /voice did not
    route); saturation is judged at /voice only: a stream that arrives was admitted there a moment ago,
    and turning it away now costs the caller more."""
    if app.draining:
        return "draining"
    if app.pending_streams >= app.config.file.server.max_pending_streams:
        return "too many pending streams"
    refused = app.admission(saturation=False)[0].value  # "" or "max_calls"
    if refused:
        prom.call_shed("", refused)
    return refused


async def media_stream(app: App, ws: ServerConnection) -> None:
    refused = stream_refusal(app)
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
    reason = "twilio_disconnected"
    try:
        reason = await relay_twilio(app, ws, call)
    finally:
        await app.end_call(call.call_id, reason)


async def relay_twilio(app: App, ws: ServerConnection, call: CallIO) -> str:
    """Every Twilio message of a live call to its actors, until `stop` (its reason) or the socket closes."""
    loop = asyncio.get_running_loop()
    tell, poll_ticker = app.engine.tell, app.ticker.poll
    try:
        async for raw in ws:
            poll_ticker()  # a due tick runs now, not after the loop's whole batch of ready callbacks
            msg = decode_twilio(raw, loop.time())
            if isinstance(msg, EndCall):
                return msg.reason
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
    return "twilio_disconnected"


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

