"""The fake Twilio call control plane (sim/fake_twilio_*.py), driven by the real `twilio` package's client.

The app side is a small aiohttp server that answers Twilio's webhooks with TwiML and checks every
X-Twilio-Signature with the package's RequestValidator over its full URL and form; each test asserts that
all the webhooks it got were signed. Nothing sleeps: the fake's `answer`/`finish`/`dial_outcome` return
when their webhooks were answered, and `settle`/`wait_for` wait for the work a REST request started.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from sim.fake_twilio_calls import DEFAULT_ACCOUNT_SID, StreamRequest
from sim.fake_twilio_rest import FakeTwilioRest

TOKEN = "auth-token-of-the-test"
CALLER = "CA" + "c" * 32
BUSINESS = "+97235550100"
HUMAN = "+97250999000"
STREAM_URL = "wss://bridge.example/media-stream"


@dataclass
class Hit:
    path: str
    url: str
    form: dict[str, str]
    signed: bool


@dataclass
class App:
    """The app's webhooks: answers `answers[path]` (TwiML), records every hit and whether its signature holds."""
    answers: dict[str, str] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict[str, str]]:
        return [hit.form for hit in self.hits if hit.path == path]

    async def start(self) -> App:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()
        return self

    async def handle(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        url = str(request.url)
        signed = RequestValidator(TOKEN).validate(url, form, request.headers.get("X-Twilio-Signature", ""))
        self.hits.append(Hit(request.path, url, form, signed))
        return web.Response(text=self.answers.get(request.path, "<Response/>"), content_type="text/xml")


@dataclass
class Plane:
    rest: FakeTwilioRest
    app: App
    client: Client


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    app = await App().start()
    client = Client(DEFAULT_ACCOUNT_SID, TOKEN)
    client.api.base_url = rest.url
    try:
        yield Plane(rest, app, client)
    finally:
        await rest.stop()
        if app.runner is not None:
            await app.runner.cleanup()
    assert app.hits and all(hit.signed for hit in app.hits), [hit.url for hit in app.hits if not hit.signed]
    assert rest.webhooks.errors == []


def conference_twiml(name: str, **attributes: object) -> str:
    response, dial = VoiceResponse(), Dial()
    dial.conference(name, **attributes)
    response.append(dial)
    return str(response)


async def test_an_outbound_call_with_machine_detection_gets_answered_by_in_its_url_request(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    app.answers["/answer"] = "<Response><Say>השארנו לך הודעה</Say><Hangup/></Response>"
    call = await asyncio.to_thread(plane.client.calls.create, to="+972501234567", from_=BUSINESS, url=app.url("/answer?lead=L1"),
                                   status_callback=app.url("/status"), status_callback_event=["initiated", "answered", "completed"],
                                   machine_detection="DetectMessageEnd", machine_detection_timeout=30)
    assert call.sid.startswith("CA") and len(call.sid) == 34 and call.status == "queued" and call.direction == "outbound-api"
    fake = rest.created()[0]
    assert fake.sid == call.sid and fake.status_events == ["initiated", "answered", "completed"]
    assert fake.machine_detection == "DetectMessageEnd" and fake.form["MachineDetectionTimeout"] == "30"

    twiml = await rest.answer(call.sid, "machine_end_beep")
    asked = app.at("/answer")
    assert len(asked) == 1 and asked[0]["AnsweredBy"] == "machine_end_beep" and asked[0]["Direction"] == "outbound-api"
    assert asked[0]["CallStatus"] == "in-progress" and asked[0]["CallSid"] == call.sid and asked[0]["To"] == "+972501234567"
    assert twiml == app.answers["/answer"] and fake.history == [twiml] and fake.said == ["השארנו לך הודעה"]
    assert fake.status == "completed" and fake.answered_by == "machine_end_beep"
    assert [form["CallStatus"] for form in app.at("/status")] == ["initiated", "in-progress", "completed"]


async def test_async_amd_answers_later_and_a_stream_reaches_the_test(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    opened: list[StreamRequest] = []
    hooked = asyncio.Event()

    async def on_stream(stream: StreamRequest) -> None:
        opened.append(stream)
        hooked.set()
    rest.on_stream = on_stream
    app.answers["/answer"] = ('<Response><Connect action="/after"><Stream url="wss://bridge.example/media-stream">'
                              '<Parameter name="lead" value="L7"/><Parameter name="attempt" value="2"/></Stream></Connect></Response>')
    app.answers["/after"] = "<Response><Say>להתראות</Say></Response>"
    call = await asyncio.to_thread(plane.client.calls.create, to="+972501234567", from_=BUSINESS, url=app.url("/answer"),
                                   machine_detection="Enable", async_amd="true", async_amd_status_callback=app.url("/amd"))
    await rest.answer(call.sid, "human")
    assert "AnsweredBy" not in app.at("/answer")[0]
    assert app.at("/amd") == [app.at("/amd")[0]] and app.at("/amd")[0]["AnsweredBy"] == "human"
    await asyncio.wait_for(hooked.wait(), 2)
    expected = StreamRequest(call.sid, STREAM_URL, {"lead": "L7", "attempt": "2"}, app.url("/after"))
    assert rest.streams == [expected] and opened == [expected] and rest.stream_event.is_set()
    assert rest.calls[call.sid].waiting == "stream" and rest.calls[call.sid].status == "in-progress"

    assert await rest.stream_ended(call.sid) == app.answers["/after"]
    assert rest.calls[call.sid].said == ["להתראות"] and rest.calls[call.sid].status == "completed"


async def test_a_warm_transfer_holds_the_caller_until_the_human_answers(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    rest.inbound(CALLER, "+972501111111", BUSINESS)
    app.answers["/hold"] = "<Response><Say>רגע, מעבירים אותך</Say><Play>https://music.example/hold.mp3</Play></Response>"
    twiml = conference_twiml("room-1", wait_url=app.url("/hold"), start_conference_on_enter=False, end_conference_on_exit=True,
                             status_callback=app.url("/conference"), status_callback_event="start end join leave")
    await asyncio.to_thread(plane.client.calls(CALLER).update, twiml=twiml)
    await rest.wait_for(lambda: "room-1" in rest.conferences and bool(rest.conferences["room-1"].hold_twiml))
    room = rest.conferences["room-1"]
    assert room.participants == [CALLER] and not room.started and rest.calls[CALLER].conference == "room-1"
    assert room.hold_twiml == app.answers["/hold"] and room.hold_said == ["רגע, מעבירים אותך"]
    assert room.hold_played == ["https://music.example/hold.mp3"] and rest.calls[CALLER].said == room.hold_said
    assert app.at("/hold")[0]["CallSid"] == CALLER and app.at("/hold")[0]["ConferenceSid"] == room.sid

    agent = await asyncio.to_thread(plane.client.conferences("room-1").participants.create, from_=BUSINESS, to=HUMAN, label="agent",
                                    status_callback=app.url("/agent"), status_callback_event=["answered", "completed"],
                                    timeout=20, beep="false", early_media=True)
    assert agent.call_sid.startswith("CA") and agent.conference_sid == room.sid and agent.label == "agent" and agent.status == "queued"
    assert rest.created()[-1].sid == agent.call_sid and rest.calls[agent.call_sid].form["Timeout"] == "20"
    assert await rest.answer(agent.call_sid) == ""
    assert room.participants == [CALLER, agent.call_sid] and room.started and rest.calls[agent.call_sid].conference == "room-1"

    await rest.finish(CALLER, "completed", 95)  # endConferenceOnExit: the room ends and the human's leg hangs up
    assert room.ended and room.participants == [] and rest.calls[agent.call_sid].status == "completed"
    assert [form["CallStatus"] for form in app.at("/agent")] == ["in-progress", "completed"]
    assert app.at("/agent")[-1]["ConferenceSid"] == room.sid and app.at("/agent")[-1]["FriendlyName"] == "room-1"
    assert [(form["StatusCallbackEvent"], form.get("CallSid")) for form in app.at("/conference")] == [
        ("participant-join", CALLER), ("participant-join", agent.call_sid), ("conference-start", None),
        ("participant-leave", CALLER), ("conference-end", None), ("participant-leave", agent.call_sid)]


async def test_a_human_who_does_not_answer_sends_no_answer_and_the_caller_goes_back_to_the_agent(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    rest.inbound(CALLER, "+972501111111", BUSINESS)
    await asyncio.to_thread(plane.client.calls(CALLER).update, twiml=conference_twiml("room-2", start_conference_on_enter=False))
    await rest.settle()
    room = rest.conferences["room-2"]
    assert room.hold_twiml == "default" and room.hold_played == ["default"] and room.participants == [CALLER]

    agent = await asyncio.to_thread(plane.client.conferences("room-2").participants.create, from_=BUSINESS, to=HUMAN,
                                    status_callback=app.url("/agent"))
    await rest.ring(agent.call_sid)  # not subscribed to ringing: nothing sent
    await rest.finish(agent.call_sid, "no-answer")
    [status] = app.at("/agent")
    assert status["CallStatus"] == "no-answer" and status["CallSid"] == agent.call_sid and status["CallDuration"] == "0"
    assert status["ConferenceSid"] == room.sid and status["FriendlyName"] == "room-2" and status["AccountSid"] == DEFAULT_ACCOUNT_SID
    assert not room.started and room.participants == [CALLER]

    back = f'<Response><Connect><Stream url="{STREAM_URL}"><Parameter name="resume" value="1"/></Stream></Connect></Response>'
    await asyncio.to_thread(plane.client.calls(CALLER).update, twiml=back)
    await rest.settle()
    assert room.ended and rest.calls[CALLER].conference == "" and rest.streams == [StreamRequest(CALLER, STREAM_URL, {"resume": "1"})]
    assert rest.calls[CALLER].history == [conference_twiml("room-2", start_conference_on_enter=False), back]


async def test_a_busy_dial_requests_its_action_and_runs_what_it_answers(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    rest.inbound(CALLER, "+972501111111", BUSINESS)
    app.answers["/dial-done"] = (f'<Response><Say>הנציג לא זמין</Say><Connect><Stream url="{STREAM_URL}">'
                                 '<Parameter name="back" value="1"/></Stream></Connect></Response>')
    dial = f'<Response><Dial action="{app.url("/dial-done?call=1")}" timeout="20" callerId="{BUSINESS}">+97235550999</Dial></Response>'
    await asyncio.to_thread(plane.client.calls(CALLER).update, twiml=dial)
    await rest.wait_for(lambda: bool(rest.calls[CALLER].dialled))
    [record] = rest.calls[CALLER].dialled
    assert (record.number, record.action, record.timeout, record.caller_id) == ("+97235550999", app.url("/dial-done?call=1"), 20, BUSINESS)

    twiml = await rest.dial_outcome(CALLER, "busy")
    [done] = app.at("/dial-done")
    assert done["DialCallStatus"] == "busy" and done["CallSid"] == CALLER and done["DialCallSid"] == record.dial_call_sid
    assert done["DialCallDuration"] == "0" and record.status == "busy"
    assert twiml == app.answers["/dial-done"] and rest.calls[CALLER].said == ["הנציג לא זמין"]
    assert rest.streams[-1].parameters == {"back": "1"} and rest.calls[CALLER].waiting == "stream"


async def test_a_dial_without_action_goes_on_with_the_next_verb(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    rest.inbound(CALLER, "+972501111111", BUSINESS)
    call = await asyncio.to_thread(plane.client.calls.create, to=HUMAN, from_=BUSINESS, status_callback=app.url("/status"),
                                   twiml="<Response><Dial><Number>+97235550999</Number></Dial><Say>after</Say></Response>")
    assert await rest.answer(call.sid) == "<Response><Dial><Number>+97235550999</Number></Dial><Say>after</Say></Response>"
    assert rest.calls[call.sid].waiting == "dial" and rest.calls[call.sid].said == []
    assert await rest.dial_outcome(call.sid, "completed", 42) == ""
    assert rest.calls[call.sid].said == ["after"] and rest.calls[call.sid].status == "completed"
    assert [form["CallStatus"] for form in app.at("/status")] == ["completed"]  # only the final status: no subscription


async def test_failures_hang_ups_and_the_record_of_requests(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    rest.fail_next, rest.fail_path = 1, "/Participants.json"
    call = await asyncio.to_thread(plane.client.calls.create, to=HUMAN, from_=BUSINESS, url=app.url("/answer"),
                                   status_callback=app.url("/status"), status_callback_event=["ringing"])
    with pytest.raises(TwilioRestException) as failed:
        await asyncio.to_thread(plane.client.conferences("room-3").participants.create, from_=BUSINESS, to=HUMAN)
    assert failed.value.status == 500 and rest.fail_next == 0
    await asyncio.to_thread(plane.client.conferences("room-3").participants.create, from_=BUSINESS, to=HUMAN)
    assert [r.path.rsplit("/", 1)[-1] for r in rest.requests] == ["Calls.json", "Participants.json", "Participants.json"]
    assert rest.requests[0].user == DEFAULT_ACCOUNT_SID and rest.requests[0].lists["StatusCallbackEvent"] == ["ringing"]

    await rest.ring(call.sid)
    await asyncio.to_thread(plane.client.calls(call.sid).update, status="canceled")
    await rest.settle()
    assert rest.calls[call.sid].status == "canceled" and rest.updates(call.sid) == [{"Status": "canceled"}]
    assert [form["CallStatus"] for form in app.at("/status")] == ["ringing", "canceled"]
    with pytest.raises(TwilioRestException) as refused:
        await asyncio.to_thread(plane.client.calls(call.sid).update, twiml="<Response><Say>late</Say></Response>")
    assert refused.value.status == 400 and refused.value.code == 21220


async def test_a_redirect_runs_its_answer_and_a_room_ended_by_rest_sends_the_caller_to_its_dial_action(plane: Plane) -> None:
    rest, app = plane.rest, plane.app
    rest.inbound(CALLER, "+972501111111", BUSINESS)
    app.answers["/next"] = ('<Response><Say>מחברים</Say><Dial action="/after-room"><Conference waitUrl="" '
                            'startConferenceOnEnter="false">room-4</Conference></Dial></Response>')
    app.answers["/after-room"] = "<Response><Say>השיחה הסתיימה</Say><Hangup/></Response>"
    await asyncio.to_thread(plane.client.calls(CALLER).update, twiml="<Response><Redirect>" + app.url("/next") + "</Redirect></Response>")
    await rest.settle()
    room = rest.conferences["room-4"]
    assert room.participants == [CALLER] and room.wait_url == "" and room.hold_twiml == "" and rest.calls[CALLER].said == ["מחברים"]
    assert app.at("/next")[0]["CallSid"] == CALLER and len(rest.calls[CALLER].history) == 2

    await asyncio.to_thread(plane.client.conferences("room-4").update, status="completed")
    await rest.settle()
    assert room.ended and app.at("/after-room")[0]["ConferenceSid"] == room.sid
    assert rest.calls[CALLER].said == ["מחברים", "השיחה הסתיימה"] and rest.calls[CALLER].status == "completed"
    with pytest.raises(ValueError):
        await rest.answer(CALLER)
