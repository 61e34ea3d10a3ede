"""The fake Twilio's call control plane: call legs from birth to end, moved on by the test.

Time does not pass here: nothing rings, answers or times out by itself. Calls.json and Participants.json
create legs (`queued`, "initiated" sent if subscribed); the test then decides what the far end does —
`ring`, `answer` (the Url is fetched, with AnsweredBy when machine detection is on, and its TwiML runs;
a Participants.json leg joins its room), `finish` (busy, no-answer, failed, canceled, completed) — and
what a <Dial> or a stream came to (`dial_outcome`, `stream_ended`). The REST face (sim/fake_twilio_rest.py)
starts work the app asks for (a new document, a hang-up) as background tasks; `settle` waits for them.

Status callbacks follow the leg's StatusCallbackEvent subscription (initiated ringing answered); its
final status (completed busy no-answer failed canceled) is always sent when a StatusCallback is set.
A <Connect><Stream> is appended to `streams`, sets `stream_event` and starts `on_stream` (if set) as a
task of its own, so a test can open the call's next media stream (sim/twilio_emulator.EmulatedCall).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from sim.fake_twilio_calls import API_VERSION, DEFAULT_ACCOUNT_SID, FINAL_STATUSES, FakeCall, FakeConference, StreamRequest, Webhooks, is_true, new_sid
from sim.fake_twilio_rooms import Rooms
from sim.fake_twilio_twiml import run_document, run_verbs


@dataclass
class CallPlane:
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = ""  # signs the webhooks; "" sends them unsigned
    hang_up_when_done: bool = True  # a document that runs out of verbs ends the call, as on Twilio
    calls: dict[str, FakeCall] = field(default_factory=dict)
    streams: list[StreamRequest] = field(default_factory=list)
    on_stream: Callable[[StreamRequest], Awaitable[None]] | None = None
    stream_event: asyncio.Event = field(default_factory=asyncio.Event)
    webhooks: Webhooks = field(default_factory=Webhooks)
    rooms: Rooms = field(init=False, repr=False)
    _created: list[str] = field(default_factory=list, init=False, repr=False)
    _work: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _hooks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rooms = Rooms(self)

    @property
    def conferences(self) -> dict[str, FakeConference]:
        return self.rooms.conferences

    def inbound(self, call_sid: str, from_: str, to: str) -> FakeCall:
        call = self.calls[call_sid] = FakeCall(call_sid, to, from_, "inbound", status="in-progress")
        return call

    def call(self, call_sid: str) -> FakeCall:
        """That call; an unknown sid is an inbound call already in progress (the app's caller)."""
        return self.calls.get(call_sid) or self.inbound(call_sid, "", "")

    def created(self) -> list[FakeCall]:
        return [self.calls[sid] for sid in self._created]

    def create_call(self, form: dict[str, str], lists: dict[str, list[str]]) -> FakeCall:
        call = FakeCall(new_sid("CA"), form.get("To", ""), form.get("From", ""), "outbound-api", url=form.get("Url", ""),
                        status_callback=form.get("StatusCallback", ""), status_events=lists.get("StatusCallbackEvent", []),
                        machine_detection=form.get("MachineDetection", ""), form=form, twiml=form.get("Twiml", ""))
        return self._register(call)

    def add_participant(self, conference: str, form: dict[str, str], lists: dict[str, list[str]]) -> tuple[FakeCall, FakeConference]:
        room = self.rooms.room(conference)
        if form.get("ConferenceStatusCallback"):
            room.status_callback = form["ConferenceStatusCallback"]
            room.status_events = " ".join(lists.get("ConferenceStatusCallbackEvent", [])).split() or room.status_events
        call = FakeCall(new_sid("CA"), form.get("To", ""), form.get("From", ""), "outbound-api",
                        status_callback=form.get("StatusCallback", ""), status_events=lists.get("StatusCallbackEvent", []),
                        form=form, label=form.get("Label", ""), participant_of=room.name)
        return self._register(call), room

    def _register(self, call: FakeCall) -> FakeCall:
        call.status_events = " ".join(call.status_events).split()  # the twilio package repeats the key; raw forms may space them
        self.calls[call.sid] = call
        self._created.append(call.sid)
        self.spawn(self.status_event(call, "initiated"))
        return call

    async def ring(self, call_sid: str) -> None:
        call = self.calls[call_sid]
        call.status = "ringing"
        await self.status_event(call, "ringing")

    async def answer(self, call_sid: str, answered_by: str = "human") -> str:
        await self.settle()
        call = self.calls[call_sid]
        if call.status not in ("queued", "ringing"):
            raise ValueError(f"{call_sid} cannot be answered: it is {call.status}")
        call.status = "in-progress"
        if call.participant_of:
            await self.status_event(call, "answered")
            form = call.form
            await self.rooms.join(call, call.participant_of, wait_url=form.get("WaitUrl"),
                                  start_on_enter=is_true(form.get("StartConferenceOnEnter"), True),
                                  end_on_exit=is_true(form.get("EndConferenceOnExit")))
            call.waiting = "conference"
            return ""
        async_amd = bool(call.machine_detection) and is_true(call.form.get("AsyncAmd"))
        if call.machine_detection and not async_amd:
            call.answered_by = answered_by
        twiml = call.twiml
        if not twiml and call.url:
            extra = {"AnsweredBy": answered_by} if call.answered_by else {}
            twiml = await self.post_webhook(call.url, self.call_form(call) | extra)
        await self.status_event(call, "answered")
        await run_document(self, call, twiml, call.url)
        if async_amd:
            call.answered_by = answered_by
            amd_callback = call.form.get("AsyncAmdStatusCallback", "")
            if amd_callback:
                await self.post_webhook(amd_callback, {"CallSid": call.sid, "AccountSid": self.account_sid,
                                                       "AnsweredBy": answered_by, "MachineDetectionDuration": "2500"})
        return twiml

    async def finish(self, call_sid: str, status: str, duration_s: int = 0) -> None:
        call = self.call(call_sid)
        if call.status in FINAL_STATUSES:
            return
        call.status, call.waiting, call.pending = status, "", []
        call.generation += 1
        if call.conference:
            await self.rooms.leave(call)
        await self.status_event(call, "completed", duration_s)

    async def dial_outcome(self, call_sid: str, status: str, duration_s: int = 0) -> str:
        await self.settle()
        call = self.calls[call_sid]
        if call.waiting != "dial" or not call.dialled:
            raise ValueError(f"{call_sid} is not dialling (waiting on {call.waiting!r})")
        record = call.dialled[-1]
        record.status, call.waiting = status, ""
        if not record.action:
            await self.resume(call)
            return ""
        form = self.call_form(call) | {"DialCallStatus": status, "DialCallSid": record.dial_call_sid, "DialCallDuration": str(duration_s)}
        twiml = await self.post_webhook(record.action, form)
        await run_document(self, call, twiml, record.action)
        return twiml

    async def stream_ended(self, call_sid: str) -> str:
        """The call's media stream closed: its <Connect action> is requested and run, else the next verb runs."""
        await self.settle()
        call = self.calls[call_sid]
        if call.waiting != "stream":
            raise ValueError(f"{call_sid} has no stream (waiting on {call.waiting!r})")
        action = next(s.action for s in reversed(self.streams) if s.call_sid == call_sid)
        call.waiting = ""
        if not action:
            await self.resume(call)
            return ""
        twiml = await self.post_webhook(action, self.call_form(call))
        await run_document(self, call, twiml, action)
        return twiml

    async def resume(self, call: FakeCall) -> None:
        verbs, call.pending, call.waiting = call.pending, [], ""
        await run_verbs(self, call, verbs)

    def stream_requested(self, stream: StreamRequest) -> None:
        self.streams.append(stream)
        self.stream_event.set()
        hook = self.on_stream
        if hook is not None:
            async def run_hook() -> None:
                await hook(stream)
            task = asyncio.get_running_loop().create_task(run_hook())
            self._hooks.add(task)
            task.add_done_callback(self._hooks.discard)

    def call_form(self, call: FakeCall) -> dict[str, str]:
        return {"CallSid": call.sid, "AccountSid": self.account_sid, "From": call.from_, "To": call.to,
                "Direction": call.direction, "CallStatus": call.status, "ApiVersion": API_VERSION}

    async def status_event(self, call: FakeCall, event: str, duration_s: int = 0) -> None:
        final = event == "completed"
        if not call.status_callback or not (final or event in call.status_events):
            return
        call.callback_count += 1
        form = self.call_form(call) | {"CallbackSource": "call-progress-events", "SequenceNumber": str(call.callback_count),
                                       "Timestamp": formatdate(usegmt=True)}
        if event == "initiated":
            form["CallStatus"] = "initiated"
        if final:
            form["CallDuration"] = form["Duration"] = str(duration_s)
        if call.answered_by:
            form["AnsweredBy"] = call.answered_by
        room = self.conferences.get(call.participant_of)
        if room is not None:
            form |= {"ConferenceSid": room.sid, "FriendlyName": room.name}
        await self.post_webhook(call.status_callback, form)

    async def post_webhook(self, url: str, form: dict[str, str]) -> str:
        return await self.webhooks.post(url, form, self.auth_token)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # noqa: BLE001 — background work of a REST request: a test reads webhooks.errors
            self.webhooks.errors.append(f"background work failed: {exc!r}")

    async def settle(self) -> None:
        """Wait until the work the REST requests started (new documents, hang-ups, callbacks) is done."""
        current = asyncio.current_task()
        while pending := [t for t in self._work if t is not current and not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError(f"not true within {timeout_s} s")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for task in [*self._work, *self._hooks]:
            task.cancel()
        await asyncio.gather(*self._work, *self._hooks, return_exceptions=True)
