"""Runs TwiML on a fake call, as Twilio would, minus the audio and the clock.

`run_document` starts a new document on a call: it goes into `call.history`, takes the call out of its
conference, and bumps `call.generation` so that a run of the document it replaces stops at its next
verb. `run_verbs` then executes the verbs in order: <Say> text → `call.said`, <Play> URL → `call.played`,
<Hangup/> ends the call, <Redirect> fetches its URL (signed POST) and runs the answer. Three verbs wait
for the test: <Dial><Number> (recorded in `call.dialled`; `dial_outcome` ends it), <Dial><Conference>
(the call sits in the room until it is ended or redirected) and <Connect><Stream> (recorded in
`plane.streams`; `stream_ended` ends it). A waiting call keeps the verbs after the waiting one in
`call.pending`, so "no action: go on with the next verb" is `plane.resume(call)`.

A document that runs out of verbs hangs the call up, as Twilio does — unless its last verb is a
<Pause>: time does not pass here, so a trailing pause keeps the line open until the test or the app
moves the call on (`call.waiting == "pause"`). Verbs the fake does not model (<Gather>, <Record>,
<Start>…) are kept in the history and otherwise skipped.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin

from sim.fake_twilio_calls import FINAL_STATUSES, DialRecord, FakeCall, StreamRequest, is_true
from sim.fake_twilio_ports import PlanePort

MAX_REDIRECTS = 20


def parse_verbs(twiml: str) -> list[ET.Element]:
    if not twiml.strip():
        return []
    root = ET.fromstring(twiml)
    return list(root) if root.tag == "Response" else [root]


def text_of(element: ET.Element) -> str:
    return (element.text or "").strip()


def absolute(base_url: str, url: str) -> str:
    return urljoin(base_url, url) if base_url and url else url


def spoken(twiml: str) -> tuple[list[str], list[str]]:
    """The <Say> texts and the <Play> URLs of a document (a hold document: its waitUrl's answer)."""
    verbs = parse_verbs(twiml)
    return [text_of(v) for v in verbs if v.tag == "Say"], [text_of(v) for v in verbs if v.tag == "Play"]


async def run_document(plane: PlanePort, call: FakeCall, twiml: str, base_url: str = "", depth: int = 0) -> None:
    call.generation += 1
    call.history.append(twiml)
    call.base_url, call.waiting, call.pending = base_url, "", []
    if call.conference:
        await plane.rooms.leave(call)
    try:
        verbs = parse_verbs(twiml)
    except ET.ParseError as exc:
        plane.webhooks.errors.append(f"{call.sid}: unparsable TwiML {twiml!r}: {exc}")
        verbs = []
    await run_verbs(plane, call, verbs, depth)


async def run_verbs(plane: PlanePort, call: FakeCall, verbs: list[ET.Element], depth: int = 0) -> None:
    generation = call.generation
    for index, verb in enumerate(verbs):
        if call.generation != generation or call.status in FINAL_STATUSES:
            return
        handler = VERBS.get(verb.tag)
        if handler is not None and await handler(plane, call, verb, verbs[index + 1:], depth):
            return  # it waits, or another document took over
    if call.generation != generation or call.status in FINAL_STATUSES:
        return
    if verbs and verbs[-1].tag == "Pause":
        call.waiting = "pause"
    elif plane.hang_up_when_done:
        await plane.finish(call.sid, "completed")


async def say(plane: PlanePort, call: FakeCall, verb: ET.Element, rest: list[ET.Element], depth: int) -> bool:
    call.said.append(text_of(verb))
    return False


async def play(plane: PlanePort, call: FakeCall, verb: ET.Element, rest: list[ET.Element], depth: int) -> bool:
    call.played.append(text_of(verb))
    return False


async def hangup(plane: PlanePort, call: FakeCall, verb: ET.Element, rest: list[ET.Element], depth: int) -> bool:
    await plane.finish(call.sid, "completed")
    return True


async def redirect(plane: PlanePort, call: FakeCall, verb: ET.Element, rest: list[ET.Element], depth: int) -> bool:
    if depth >= MAX_REDIRECTS:
        plane.webhooks.errors.append(f"{call.sid}: more than {MAX_REDIRECTS} redirects")
        await plane.finish(call.sid, "failed")
        return True
    url = absolute(call.base_url, text_of(verb))
    twiml = await plane.post_webhook(url, plane.call_form(call))
    await run_document(plane, call, twiml, url, depth + 1)
    return True


async def dial(plane: PlanePort, call: FakeCall, verb: ET.Element, rest: list[ET.Element], depth: int) -> bool:
    action = absolute(call.base_url, verb.get("action", ""))
    call.waiting, call.pending = "dial", rest
    conference = verb.find("Conference")
    if conference is not None:
        call.waiting, call.dial_action = "conference", action
        await plane.rooms.join(call, text_of(conference), wait_url=conference.get("waitUrl"),
                               start_on_enter=is_true(conference.get("startConferenceOnEnter"), True),
                               end_on_exit=is_true(conference.get("endConferenceOnExit")),
                               status_callback=absolute(call.base_url, conference.get("statusCallback", "")),
                               status_events=conference.get("statusCallbackEvent", ""))
        return True
    numbers = [text_of(n) for n in verb if n.tag in ("Number", "Client", "Sip")] or [text_of(verb)]
    for number in numbers:
        call.dialled.append(DialRecord(number, action, int(verb.get("timeout", "30")), verb.get("callerId", "")))
    return True


async def connect(plane: PlanePort, call: FakeCall, verb: ET.Element, rest: list[ET.Element], depth: int) -> bool:
    stream = verb.find("Stream")
    if stream is None:
        return False
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
    call.waiting, call.pending = "stream", rest
    plane.stream_requested(StreamRequest(call.sid, stream.get("url", ""), parameters, absolute(call.base_url, verb.get("action", ""))))
    return True


Verb = Callable[[PlanePort, FakeCall, ET.Element, list[ET.Element], int], Awaitable[bool]]
VERBS: dict[str, Verb] = {"Say": say, "Play": play, "Hangup": hangup, "Redirect": redirect, "Dial": dial, "Connect": connect}
