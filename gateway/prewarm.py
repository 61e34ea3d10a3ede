"""Routing proof and Realtime pre-warming, both started by the signed `POST /voice` webhook.

Routing proof: with a Twilio auth token configured, the TwiML's `<Parameter>`s carry
`route_sig = HMAC-SHA256(token, call_sid:business_id:action_base + every other parameter it sets)`; a stream whose business_id the
webhook did not route (no or wrong signature) is refused. Stateless, so it holds across workers.

Pre-warming: the webhook starts opening the call's Realtime connection at once, keyed by CallSid; the
call's first connection attempt claims it, so the first answer does not wait for the TLS and WebSocket
handshakes. Every other attempt opens a new connection the same way (`connect`, the worker's one).
An unclaimed connection is closed after `ttl_s`. (With several workers the stream may land on another
worker; it then connects as usual and the unclaimed connection expires.)
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Callable, Coroutine

import structlog
from twilio.twiml.voice_response import Connect, VoiceResponse

log = structlog.get_logger("kolbridge.prewarm")


# The stream parameters /voice sets that are not signed (the caller's numbers, informational) or are the
# signature itself; every other `<Parameter>` beyond business_id and action_base — a returning segment, an
# outbound call's purpose — is signed, so a stream cannot claim what no signed webhook gave it.
UNSIGNED_PARAMETERS = frozenset({"business_id", "call_sid", "from", "to", "action_base", "route_sig"})


def route_signature(token: str, call_sid: str, business_id: str, action_base: str = "",
                    signed: Mapping[str, str] | None = None) -> str:
    """/voice signs what the stream's start message will claim: the call, its business, the base URL of
    Twilio's callbacks (a transfer's <Dial action> is built on it: it must not be the sender's choice) and
    the other parameters it sets (`signed`: every parameter not in UNSIGNED_PARAMETERS)."""
    payload = f"{call_sid}:{business_id}:{action_base}" + "".join(f"\n{key}={value}" for key, value in sorted((signed or {}).items()))
    return hmac.new(token.encode(), payload.encode(), hashlib.sha256).hexdigest()


def route_is_valid(token: str, call_sid: str, business_id: str, signature: str, action_base: str = "",
                   parameters: Mapping[str, str] | None = None) -> bool:
    """`parameters`: the stream's whole customParameters (those not in UNSIGNED_PARAMETERS are checked)."""
    signed = {key: value for key, value in (parameters or {}).items() if key not in UNSIGNED_PARAMETERS}
    return hmac.compare_digest(route_signature(token, call_sid, business_id, action_base, signed), signature)


def stream_twiml(token: str, stream_url: str, action_base: str, call_sid: str, business_id: str, caller: str,
                 callee: str, extra: Mapping[str, str] | None = None) -> str:
    """A call's `<Connect><Stream>` TwiML (inbound, outbound or back from a transfer): when the stream ends
    with the call still up Twilio asks `<action_base>/stream-ended` what next; its `<Parameter>`s are signed
    when a Twilio auth token is set."""
    parameters = [("business_id", business_id), ("call_sid", call_sid), ("from", caller), ("to", callee)]
    if action_base:
        parameters.append(("action_base", action_base))  # a transfer's <Dial action> is built on it
    parameters += list((extra or {}).items())
    if token:
        parameters.append(("route_sig", route_signature(token, call_sid, business_id, action_base, extra)))
    response = VoiceResponse()
    connect = Connect(action=f"{action_base}/stream-ended") if action_base else Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters:
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


class Prewarmer:
    def __init__(self, connect: Callable[[str], Coroutine[Any, Any, Any]], ttl_s: float = 10.0) -> None:
        self.connect = connect
        self.ttl_s = ttl_s
        self.pending: dict[str, asyncio.Task[Any]] = {}
        self.started = self.claimed = self.expired = 0

    def start(self, call_sid: str, model: str) -> None:
        """Open the call's connection for `model` (the business's, overrides applied): the same connect
        path as every call attempt, bounded by the call's own attempt budget when it is claimed."""
        if not call_sid or call_sid in self.pending:
            return
        task = asyncio.create_task(self.connect(model), name=f"prewarm-{call_sid}")
        self.pending[call_sid] = task
        self.started += 1
        asyncio.get_running_loop().call_later(self.ttl_s, lambda: asyncio.ensure_future(self._expire(call_sid)))

    async def open(self, call_sid: str, model: str, claim: bool, timeout_s: float) -> Any:
        """One attempt of a call to get a Realtime connection within `timeout_s`: its pre-opened one when
        `claim` (the call's first attempt) and there is one, else a new one in what is left of the time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn: Any = None
        if claim:
            conn = await asyncio.wait_for(self.claim(call_sid), timeout_s)
            if conn is not None:
                log.info("REALTIME_PREWARMED", call_sid=call_sid)
        if conn is None:
            conn = await asyncio.wait_for(self.connect(model), max(0.05, deadline - loop.time()))
        return conn

    async def claim(self, call_sid: str) -> Any | None:
        """The pre-opened connection for this call, or None (none started, or it failed)."""
        task = self.pending.pop(call_sid, None)
        if task is None:
            return None
        try:
            conn = await task
        except Exception as exc:  # noqa: BLE001 — the caller connects normally
            log.warning("PREWARM_FAILED", call_sid=call_sid, error=repr(exc)[:200], exc_info=True)
            return None
        self.claimed += 1
        return conn

    async def _expire(self, call_sid: str) -> None:
        task = self.pending.pop(call_sid, None)
        if task is None:
            return
        self.expired += 1
        log.info("PREWARM_EXPIRED", call_sid=call_sid)
        if not task.done():
            task.cancel()
            return
        if task.exception() is None:
            await task.result().close()

    async def close(self) -> None:
        for call_sid in list(self.pending):
            await self._expire(call_sid)
