"""The records of the fake Twilio call control plane, the JSON it answers with, and the webhooks it sends.

A FakeCall is one call leg as Twilio holds it: who it is to and from, its status, what it was asked to do
(the create or Participants form, its status-callback subscription, machine detection) and what it did
(the TwiML documents it ran, the texts said, the URLs played, the numbers dialled). A FakeConference is a
room: the call sids in it, whether it has started (a participant with startConferenceOnEnter joined) or
ended, and the hold document its waitUrl answered. `call_resource`/`participant_resource` are the JSON
bodies Twilio answers with — enough for the `twilio` package to build its CallInstance/ParticipantInstance.

Webhooks (Twilio → the app) go through `Webhooks.post`: a urlencoded POST, signed like Twilio's
(X-Twilio-Signature = RequestValidator(auth_token).compute_signature(full URL, form); an empty token sends
none), recorded in `sent`. A refused or non-200 answer is recorded in `errors` and reads as "" — an
empty document, as if Twilio had played its application-error message.
"""
from __future__ import annotations

import asyncio
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator
from yarl import URL

DEFAULT_ACCOUNT_SID = "AC" + "1" * 32
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def is_true(value: str | None, default: bool = False) -> bool:
    return default if value is None or value == "" else value.strip().lower() == "true"


@dataclass
class DialRecord:
    number: str
    action: str = ""
    timeout: int = 30
    caller_id: str = ""
    status: str = ""  # DialCallStatus once dial_outcome decided it, "" while it rings
    dial_call_sid: str = field(default_factory=lambda: new_sid("CA"))


@dataclass
class StreamRequest:
    call_sid: str
    url: str
    parameters: dict[str, str]
    action: str = ""  # the <Connect action> URL, requested when the stream ends (stream_ended)


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    direction: str  # "inbound" | "outbound-api"
    url: str = ""
    status: str = "queued"  # queued ringing in-progress completed busy no-answer failed canceled
    status_callback: str = ""
    status_events: list[str] = field(default_factory=list)
    machine_detection: str = ""
    answered_by: str = ""
    conference: str = ""  # the conference it is in now, "" if none
    said: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # every TwiML document it ran, in order
    dialled: list[DialRecord] = field(default_factory=list)
    form: dict[str, str] = field(default_factory=dict)  # the Calls.json / Participants.json form
    label: str = ""
    twiml: str = ""  # inline Twiml= of Calls.json, run when answered instead of fetching url
    participant_of: str = ""  # a Participants.json leg: the conference it joins when answered
    waiting: str = ""  # what the running document waits on: "dial" | "conference" | "stream" | "pause" | ""
    pending: list[ET.Element] = field(default_factory=list, repr=False)  # the verbs after the one it waits on
    base_url: str = ""  # where the running document came from: relative URLs in it resolve against it
    dial_action: str = ""  # the action of the <Dial> that put it in its conference
    generation: int = 0  # bumped by every new document and by the end: a run of an older one stops
    callback_count: int = 0  # the status callbacks sent (their SequenceNumber)


@dataclass
class FakeConference:
    name: str
    sid: str = field(default_factory=lambda: new_sid("CF"))
    participants: list[str] = field(default_factory=list)  # call sids in the room now, in join order
    joined: list[str] = field(default_factory=list)  # every call sid that ever joined, in order
    hold_twiml: str = ""  # what waitUrl answered; "default" for Twilio's own music (no waitUrl)
    hold_said: list[str] = field(default_factory=list)
    hold_played: list[str] = field(default_factory=list)
    wait_url: str = ""
    started: bool = False
    ended: bool = False
    status_callback: str = ""
    status_events: list[str] = field(default_factory=lambda: ["start", "end"])
    start_on_enter: dict[str, bool] = field(default_factory=dict)  # call sid → its startConferenceOnEnter
    end_on_exit: dict[str, bool] = field(default_factory=dict)  # call sid → its endConferenceOnExit
    callback_count: int = 0


def call_resource(call: FakeCall, account_sid: str) -> dict[str, Any]:
    return {"sid": call.sid, "account_sid": account_sid, "to": call.to, "to_formatted": call.to, "from": call.from_,
            "from_formatted": call.from_, "status": call.status, "direction": call.direction, "answered_by": call.answered_by or None,
            "api_version": API_VERSION, "parent_call_sid": None, "price": None, "price_unit": "USD", "duration": None,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call.sid}.json", "subresource_uris": {}}


def participant_resource(call: FakeCall, conference: FakeConference, account_sid: str) -> dict[str, Any]:
    return {"account_sid": account_sid, "call_sid": call.sid, "conference_sid": conference.sid, "label": call.label or None,
            "status": call.status, "start_conference_on_enter": is_true(call.form.get("StartConferenceOnEnter"), True),
            "end_conference_on_exit": is_true(call.form.get("EndConferenceOnExit")), "coaching": is_true(call.form.get("Coaching")),
            "call_sid_to_coach": call.form.get("CallSidToCoach"), "hold": False, "muted": False,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Conferences/{conference.sid}/Participants/{call.sid}.json"}


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


@dataclass
class SentWebhook:
    url: str
    form: dict[str, str]
    signature: str
    status: int  # the app's HTTP status, 0 when it could not be reached
    answer: str


@dataclass
class Webhooks:
    sent: list[SentWebhook] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timeout_s: float = 5.0

    def to(self, url: str) -> list[SentWebhook]:
        """The webhooks sent to `url` (query included), in order."""
        return [hook for hook in self.sent if hook.url == url]

    async def post(self, url: str, form: dict[str, str], auth_token: str) -> str:
        signature = RequestValidator(auth_token).compute_signature(url, form) if auth_token else ""
        headers = {"X-Twilio-Signature": signature} if signature else {}
        status, answer = 0, ""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as session:
                async with session.post(URL(url, encoded=True), data=form, headers=headers) as response:
                    status, answer = response.status, await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            self.errors.append(f"POST {url}: {exc!r}")
        self.sent.append(SentWebhook(url, dict(form), signature, status, answer))
        if status != 200:
            if status:
                self.errors.append(f"POST {url}: HTTP {status}")
            return ""
        return answer
