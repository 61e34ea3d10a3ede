"""What the caller gets when the AI cannot take the call: the business's fallback, as TwiML.

Modes (per business, `[business.fallback]`): `transfer` dials the business's human line
(`<Dial callerId timeout>`; an apology if nobody answers), `apologise` says a short sorry in the
business's language (`<Say voice language>`) and hangs up. Delivery (gateway/leaving.py, the one
way every call leaves), in order of preference:
  1. Twilio's REST API (`Calls/{CallSid}` update with the TwiML, through TwilioRest below) when
     TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN (or an API key pair) are set: the live stream is
     replaced at once;
  2. otherwise, or when that fails, the stream's `<Connect action=…/stream-ended>`: the gateway closes
     the stream and Twilio asks that URL what next; it answers with the TwiML kept for the call (any
     worker that shares the database can answer: the TwiML is also on the call's record).
Without credentials every call takes the second path: startup says so (FALLBACK_WITHOUT_REST).
"""
from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import msgspec
import structlog
from msgspec import Meta
from twilio.twiml.voice_response import Dial, VoiceResponse

log = structlog.get_logger("kolbridge.fallback")

DEFAULT_MESSAGES = {
    "he": "מצטערים, יש לנו תקלה זמנית ואיננו יכולים לענות כרגע. אנא נסו שוב בעוד כמה דקות.",
    "en": "Sorry, we're having a temporary problem and can't take your call right now. Please try again in a few minutes.",
}
# Twilio <Say>: an invalid voice/language pair fails the verb, so both are configurable per business.
DEFAULT_VOICES = {"he": ("Google.he-IL-Standard-A", "he-IL"), "en": ("Polly.Joanna", "en-US")}


class FallbackSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mode: Literal["apologise", "transfer"] = "apologise"
    transfer_number: str = ""  # E.164; required for mode = "transfer"
    caller_id: str = ""  # shown to the human; default: the caller's own number
    dial_timeout_s: Annotated[int, Meta(ge=5, le=120)] = 25
    message: str = ""  # default: DEFAULT_MESSAGES[language]
    say_voice: str = ""
    say_language: str = ""


def check_fallback(values: dict[str, object]) -> list[str]:
    try:
        settings = msgspec.convert(values, FallbackSettings)
    except msgspec.ValidationError as exc:
        return [f"business.fallback: {exc}"]
    if settings.mode == "transfer" and not settings.transfer_number.startswith("+"):
        return ["business.fallback: mode = \"transfer\" needs transfer_number (E.164)"]
    return []


def fallback_twiml(settings: FallbackSettings, language: str, caller: str = "") -> str:
    voice, say_language = DEFAULT_VOICES.get(language, DEFAULT_VOICES["en"])
    message = settings.message or DEFAULT_MESSAGES.get(language, DEFAULT_MESSAGES["en"])
    response = VoiceResponse()
    if settings.mode == "transfer" and settings.transfer_number:
        dial = Dial(caller_id=settings.caller_id or caller or None, timeout=settings.dial_timeout_s)
        dial.number(settings.transfer_number)
        response.append(dial)
    response.say(message, voice=settings.say_voice or voice, language=settings.say_language or say_language)
    response.hangup()
    return str(response)


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


class TwilioRest:
    """Twilio's REST API through the `twilio` package, its base URL overridable for the local fake."""

    def __init__(self, account_sid: str, secret: str, api_url: str = "", api_key: str = "") -> None:
        """Auth: the account's auth token, or an API key (SK…) with its secret."""
        from twilio.rest import Client

        self.client = Client(api_key, secret, account_sid) if api_key else Client(account_sid, secret)
        if api_url:
            self.client.api.base_url = api_url.rstrip("/")
        self.updates = 0

    async def redirect(self, call_sid: str, twiml: str, timeout_s: float = 5.0) -> None:
        def update() -> None:
            self.client.calls(call_sid).update(twiml=twiml)
        await asyncio.wait_for(asyncio.to_thread(update), timeout_s)
        self.updates += 1

    async def hang_up(self, call_sid: str, timeout_s: float = 5.0) -> None:
        def update() -> None:
            self.client.calls(call_sid).update(status="completed")
        await asyncio.wait_for(asyncio.to_thread(update), timeout_s)
