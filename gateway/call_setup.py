"""From Twilio's `start` to what a call is built from: the business it names, the checks a stream must
pass, the CallSettings its actors get and the CallProfile the gateway keeps.

The business named by `customParameters.business_id` is read once per call start, never per frame:
within BUSINESS_TTL_S the cached row is used as long as its `updated_at` is unchanged, so `kolbridge
business import` (any process) takes effect at the next call. A stream is refused (CALL_REJECTED) for
an unknown or inactive business, a call sid already live, or — with a Twilio auth token — a business
the signed /voice webhook did not route (gateway/prewarm.py). The prompt is built from the layer files
and the row; config.toml's settings are merged with the business's overrides.
"""
from __future__ import annotations

import time
from collections.abc import Container
from typing import NamedTuple

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actors.settings import CallSettings, ResumeSettings
from gateway.agent import AgentSpec, agent_for, agent_spec
from gateway.config import FileConfig
from gateway.config.overrides import audio_for, barge_in_for, facts_for, fallback_for, language_settings_for, realtime_for, vad_for
from gateway.fallback import FallbackSettings, agent_dial_action_url, dial_action_url
from gateway.outbound.context import OutboundContext, outbound_context, outbound_prompt
from gateway.prewarm import route_is_valid
from gateway.wire import TwilioStart
from prompts.builder import BuiltPrompt, build_prompt
from storage.businesses import BusinessView, business_version, get_business

log = structlog.get_logger("kolbridge.gateway")
BUSINESS_TTL_S = 30.0


class CallProfile(msgspec.Struct, frozen=True):
    """What the business and the caller gave one call at its start, kept by the gateway."""

    fallback: FallbackSettings = FallbackSettings()  # the business's, when the AI cannot take the call
    agent: AgentSpec = AgentSpec()  # its HTTP tools, webhook and transfer line
    caller: str = ""  # the caller's number (customParameters.from)
    action_base: str = ""  # the public base URL of /voice (customParameters.action_base; "" if unknown)
    business_id: str = ""
    called: str = ""  # the number the caller dialled (customParameters.to): a warm transfer's leg calls from it
    segment: int = 1  # 2, 3…: back with the agent after a transfer nobody took (issue 23)
    direction: str = "inbound"  # "outbound": we placed the call (gateway/outbound/)
    answered_by: str = ""  # an outbound call's AnsweredBy (human, unknown…)

    def dial_action(self, kind: str) -> str:
        """A transfer's <Dial action>: `kind` "agent" (transfer_to_human, with this segment as its attempt) or
        "fallback" ("" if no base is known)."""
        if kind == "agent":
            return agent_dial_action_url(self.action_base, self.business_id, self.segment)
        return dial_action_url(self.action_base, self.business_id, kind)


class PreparedCall(NamedTuple):
    settings: CallSettings
    profile: CallProfile
    prompt: BuiltPrompt


class BusinessCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = BUSINESS_TTL_S) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self.cached: dict[str, tuple[float, BusinessView | None, str | None]] = {}

    async def get(self, business_id: str) -> BusinessView | None:
        """The business row, re-read when its `updated_at` changed or the TTL ran out."""
        cached = self.cached.get(business_id)
        version = await business_version(self.sessions, business_id)
        if cached and cached[2] == version and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        view = await get_business(self.sessions, business_id) if version is not None else None
        self.cached[business_id] = (time.monotonic(), view, version)
        return view


def refused(start: TwilioStart, business: BusinessView | None, live: Container[str], auth_token: str) -> bool:
    """Whether this stream may not become a call (logged as CALL_REJECTED with the reason)."""
    business_id = start.custom.get("business_id", "")
    if business is None or not business.active:
        log.warning("CALL_REJECTED", call_sid=start.call_sid, business_id=business_id,
                    reason="unknown business" if business is None else "business inactive")
        return True
    if start.call_sid in live:
        log.warning("CALL_REJECTED", call_sid=start.call_sid, reason="duplicate call sid")
        return True
    if auth_token and not route_is_valid(auth_token, start.call_sid, business_id, start.custom.get("route_sig", ""),
                                         start.custom.get("action_base", ""), start.custom):
        log.warning("CALL_REJECTED", call_sid=start.call_sid, business_id=business_id,
                    reason="business not routed by the signed /voice webhook")
        return True
    return False


def prepare_call(start: TwilioStart, business: BusinessView, f: FileConfig, start_language: str = "",
                 resume: ResumeSettings | None = None, outbound: OutboundContext | None = None) -> PreparedCall:
    """The call's settings (config.toml under the business's overrides), its profile and its prompt;
    `start_language`: a returning caller's last language (greeted in it, with its greeting if the business has one);
    `resume`: the caller back with the agent after a transfer (the conversation so far and the note, which
    replaces the greeting)."""
    languages = business.languages or [business.language]
    start_language = start_language if start_language in languages[1:] else ""
    facts = facts_for(business)
    if start_language:
        facts = msgspec.structs.replace(facts, greeting=business.greetings.get(start_language, business.greeting))
    prompt = build_prompt(facts)
    outbound = outbound or outbound_context(start.custom)  # we placed it: the outbound layer and opening
    if outbound is not None:
        prompt = outbound_prompt(prompt, outbound, business.name, business.language)
    spec = agent_spec(business)
    settings = CallSettings(
        call_id=start.call_sid, stream_sid=start.stream_sid, business_id=business.id,
        language=business.language, instructions=prompt.instructions, greeting=prompt.greeting_instructions,
        audio=audio_for(f.audio, business), tx=f.tx, vad=vad_for(f.vad, business), realtime=realtime_for(f.realtime, business),
        barge_in=barge_in_for(f.barge_in, business), transcription_prompt=prompt.transcription_prompt,
        vocabulary=tuple(business.vocabulary), agent=agent_for(f.conversation, business, spec),
        caller_languages=msgspec.structs.replace(language_settings_for(business, prompt.language_layers), start=start_language))
    if resume is not None and resume.segment > 1:
        settings = msgspec.structs.replace(settings, resume=resume, greeting=resume.note)
    profile = CallProfile(fallback_for(business), spec, start.custom.get("from", ""),
                          start.custom.get("action_base", ""), business.id, start.custom.get("to", ""),
                          resume.segment if resume is not None else 1)
    if outbound is not None:
        profile = msgspec.structs.replace(profile, direction="outbound", answered_by=outbound.answered_by)
    return PreparedCall(settings, profile, prompt)
