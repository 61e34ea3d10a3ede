"""How a call leaves Twilio's stream: one path for the business's fallback (the AI cannot take the
call: no Realtime session, or the worker shuts down), the agent's departure (end_call,
transfer_to_human) and an operator's hang-up (`kolbridge calls hangup`).

Each comes down to an Exit: the TwiML Twilio runs next (a `<Dial>`, an apology, a hang-up). It is
kept for the stream's `<Connect action>` URL (/stream-ended), then delivered through Twilio's REST API
when the worker has credentials (`Calls/{sid}` update: the TwiML, or `Status=completed` to hang up);
without them, or when REST fails, our side of the call ends, the stream closes and Twilio fetches the
same TwiML from the action URL — from this worker's memory or, on any worker, from the call's record.
The record's `fallback` says which path it took: `<kind>:rest` or `<kind>:action`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from typing import NamedTuple, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actors.settings import CallSettings
from gateway.call_setup import CallProfile
from gateway.fallback import TwilioRest, fallback_twiml, hangup_twiml
from storage.calls import after_twiml

log = structlog.get_logger("kolbridge.gateway")
AFTER_STREAM_KEPT = 200

EndCall = Callable[[str, str, str, str], Awaitable[None]]  # (call sid, end reason, fallback, TwiML after)


class AfterStream:
    """What the stream's action URL answers, per call, until Twilio asks (bounded: with REST it never
    does; the call's record holds the same TwiML for any worker)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], kept: int = AFTER_STREAM_KEPT) -> None:
        self.sessions = sessions
        self.kept = kept
        self.twiml: dict[str, str] = {}

    def remember(self, call_sid: str, twiml: str) -> None:
        self.twiml[call_sid] = twiml
        if len(self.twiml) > self.kept:
            del self.twiml[next(iter(self.twiml))]

    async def answer(self, call_sid: str) -> str:
        """What Twilio's request to the stream's action URL gets: the call's exit TwiML, else hang up."""
        twiml = self.twiml.pop(call_sid, "")
        if not twiml and call_sid:
            try:
                twiml = await after_twiml(self.sessions, call_sid)
            except Exception as exc:  # noqa: BLE001 — database down: hang up rather than fail the request
                log.warning("AFTER_TWIML_LOOKUP_FAILED", call_sid=call_sid, error=str(exc)[:200], exc_info=True)
        return twiml or hangup_twiml()


class Exit(NamedTuple):
    """How one call leaves, and the log lines that say so."""

    twiml: str  # what Twilio runs next
    kind: str  # the fallback's mode, or the departure's kind: recorded as `fallback = <kind>:<rest|action>`
    end_reason: str
    hang_up: bool  # REST: complete the call rather than redirect it to the TwiML
    left: str  # the line logged when it left (with via=rest|action)
    rest_failed: str  # the line logged when the REST request failed
    details: dict[str, str]  # more fields of the `left` line


class FallbackCall(Protocol):
    """What the fallback reads of a call (gateway/call.py's CallIO)."""

    @property
    def call_id(self) -> str: ...
    @property
    def settings(self) -> CallSettings: ...
    @property
    def profile(self) -> CallProfile: ...


class Leaver:
    def __init__(self, live: Container[str], rest: TwilioRest | None, after_stream: AfterStream, end: EndCall) -> None:
        """`live`: the worker's live call sids; `end` ends our side of a call (its record, metrics, sockets)."""
        self.live, self.rest, self.after_stream, self.end = live, rest, after_stream, end

    def is_live(self, call_sid: str) -> bool:
        return call_sid in self.live

    async def leave(self, call_sid: str, how: Exit) -> None:
        """Tell Twilio what next (REST, else the action URL), then end our side of the call."""
        if call_sid not in self.live:
            return
        self.after_stream.remember(call_sid, how.twiml)
        via = "action"
        if self.rest is not None:
            try:
                if how.hang_up:
                    await self.rest.hang_up(call_sid)
                else:
                    await self.rest.redirect(call_sid, how.twiml)
                via = "rest"
                self.after_stream.twiml.pop(call_sid, None)  # Twilio runs it already: a later stream's end must not
            except Exception as exc:  # noqa: BLE001 — the action URL still answers with the same TwiML
                log.error(how.rest_failed, call_sid=call_sid, kind=how.kind, error=str(exc)[:300], exc_info=True)
        log.warning(how.left, call_sid=call_sid, **how.details, via=via)
        await self.end(call_sid, how.end_reason, f"{how.kind}:{via}", how.twiml)

    async def fallback(self, call: FallbackCall, reason: str, end_reason: str = "realtime_unavailable") -> None:
        """The AI cannot take this call: the business's fallback (transfer or apology) takes it."""
        settings = call.profile.fallback
        twiml = fallback_twiml(settings, call.settings.language, call.profile.caller,
                              call.profile.dial_action("fallback"))
        await self.leave(call.call_id, Exit(twiml, settings.mode, end_reason, False, "FALLBACK_TAKEN",
                                            "FALLBACK_REST_FAILED", {"reason": reason, "mode": settings.mode}))
