"""What the caller gets when the AI cannot take the call: the business's fallback, as TwiML.

Modes (per business, `[business.fallback]`): `transfer` dials the business's human line
(`<Dial callerId timeout action>`), `apologise` says a short sorry in the business's language
(`<Say voice language>`) and hangs up. A `<Dial>` is never followed by an apology: Twilio runs the
next verb after any `<Dial>` that ends, so a caller who talked to the human would hear "nobody is
available" once the human hung up. The Dial's `action` (POST /dial-done?business=ID) decides with
Twilio's DialCallStatus: answered → hang up; busy, no answer, failed or cancelled → the apology. Delivery (gateway/leaving.py, the one
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
# transfer_to_human when nobody answers: the agent promised a person, so the apology says who will call
NO_ANSWER = {"he": "מצטערים, אין כרגע נציג פנוי. נחזור אליך בהקדם. תודה ולהתראות.",
             "en": "Sorry, no one is available right now. We will call you back soon. Goodbye."}
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


def no_answer_message(language: str) -> str:
    """transfer_to_human's apology when nobody answered, in the business's language."""
    return NO_ANSWER.get(language, NO_ANSWER["en"])


DIAL_ANSWERED = ("completed", "answered")  # DialCallStatus of a <Dial> the human picked up


def fallback_twiml(settings: FallbackSettings, language: str, caller: str = "", dial_action: str = "") -> str:
    """The fallback's TwiML. A transfer's `<Dial>` ends the document: with `dial_action` Twilio asks that URL
    what next (the apology only if nobody answered); without one (no public URL known) the call ends."""
    response = VoiceResponse()
    if settings.mode == "transfer" and settings.transfer_number:
        dial = Dial(caller_id=settings.caller_id or caller or None, timeout=settings.dial_timeout_s,
                    action=dial_action or None, method="POST" if dial_action else None)
        dial.number(settings.transfer_number)
        response.append(dial)
        return str(response)
    return apology_twiml(settings, language)


def apology_twiml(settings: FallbackSettings, language: str) -> str:
    voice, say_language = DEFAULT_VOICES.get(language, DEFAULT_VOICES["en"])
    message = settings.message or DEFAULT_MESSAGES.get(language, DEFAULT_MESSAGES["en"])
    response = VoiceResponse()
    response.say(message, voice=settings.say_voice or voice, language=settings.say_language or say_language)
    response.hangup()
    return str(response)


def dial_done_twiml(settings: FallbackSettings, language: str, dial_status: str) -> str:
    """What follows a transfer's `<Dial>`: nothing if the human answered, else the apology."""
    return hangup_twiml() if dial_status in DIAL_ANSWERED else apology_twiml(settings, language)


def dial_action_url(base: str, business_id: str, kind: str) -> str:
    """A transfer's `<Dial action>` ("" when no public base URL is known); `kind` picks the apology:
    "agent" (transfer_to_human: nobody answered) or "fallback" (the business's fallback message)."""
    return f"{base}/dial-done?business={business_id}&kind={kind}" if base else ""


def agent_dial_action_url(base: str, business_id: str, attempt: int) -> str:
    """transfer_to_human's `<Dial action>`, with the attempt it is (the segment that placed it)."""
    url = dial_action_url(base, business_id, "agent")
    return f"{url}&attempt={attempt}" if url else ""


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
