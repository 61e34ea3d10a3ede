"""Conferences of the fake Twilio: who is in which room, hold music, start and end.

A room is created by its first participant (a <Dial><Conference> or a Participants.json leg); a name
whose room has ended makes a new room, as Twilio does. A room starts when a participant with
startConferenceOnEnter (default true) joins; until then every call joining it is on hold: its waitUrl
is fetched (signed POST) and the answer kept in `hold_twiml`, its <Say>/<Play> in `hold_said`/
`hold_played` (and on the call); no waitUrl is Twilio's own music, recorded as "default"; an empty one
is silence. A room ends when a participant with endConferenceOnExit leaves, when its last participant
leaves, or on REST `Status=completed`: the Participants.json legs still in it hang up, and a call that
came in by TwiML leaves and goes on — to its <Dial action> if it had one, else to the verbs after <Dial>.
Conference status callbacks (conference-start, conference-end, participant-join, participant-leave) go
to the room's statusCallback for the events it subscribed to (default "start end").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate

from sim.fake_twilio_calls import FakeCall, FakeConference
from sim.fake_twilio_ports import PlanePort
from sim.fake_twilio_twiml import run_document, spoken


@dataclass
class Rooms:
    plane: PlanePort
    conferences: dict[str, FakeConference] = field(default_factory=dict)  # name → its latest room

    def room(self, name_or_sid: str) -> FakeConference:
        """The live room of that name (or CF sid); a new one if there is none or it ended."""
        for live in self.conferences.values():
            if live.sid == name_or_sid and not live.ended:
                return live
        room = self.conferences.get(name_or_sid)
        if room is None or room.ended:
            room = self.conferences[name_or_sid] = FakeConference(name_or_sid)
        return room

    async def join(self, call: FakeCall, name: str, *, wait_url: str | None, start_on_enter: bool, end_on_exit: bool,
                   status_callback: str = "", status_events: str = "") -> FakeConference:
        room = self.room(name)
        if status_callback:
            room.status_callback = status_callback
            room.status_events = status_events.split() or room.status_events
        room.participants.append(call.sid)
        room.joined.append(call.sid)
        room.start_on_enter[call.sid], room.end_on_exit[call.sid] = start_on_enter, end_on_exit
        call.conference = room.name
        await self.event(room, "join", call.sid)
        if start_on_enter and not room.started:
            room.started = True
            await self.event(room, "start")
        elif not room.started:
            await self.hold(call, room, wait_url)
        return room

    async def hold(self, call: FakeCall, room: FakeConference, wait_url: str | None) -> None:
        if wait_url is None:
            room.wait_url, room.hold_twiml = "", "default"
            room.hold_played.append("default")
            call.played.append("default")
            return
        room.wait_url = wait_url
        if not wait_url:
            return  # silence
        form = self.plane.call_form(call) | {"ConferenceSid": room.sid, "FriendlyName": room.name}
        room.hold_twiml = await self.plane.post_webhook(wait_url, form)
        said, played = spoken(room.hold_twiml)
        room.hold_said += said
        room.hold_played += played
        call.said += said
        call.played += played

    async def leave(self, call: FakeCall) -> None:
        room = self.conferences.get(call.conference)
        call.conference = ""
        if room is None or call.sid not in room.participants:
            return
        room.participants.remove(call.sid)
        await self.event(room, "leave", call.sid)
        if not room.ended and (room.end_on_exit.get(call.sid) or not room.participants):
            await self.end(room)

    async def end(self, room: FakeConference) -> None:
        room.ended = True
        await self.event(room, "end")
        staying, room.participants = room.participants, []
        for sid in staying:
            call = self.plane.calls[sid]
            call.conference = ""
            await self.event(room, "leave", sid)
            if call.participant_of:
                await self.plane.finish(sid, "completed")
            else:
                await self.after_conference(call, room)

    async def after_conference(self, call: FakeCall, room: FakeConference) -> None:
        call.waiting = ""
        if not call.dial_action:
            await self.plane.resume(call)
            return
        form = self.plane.call_form(call) | {"ConferenceSid": room.sid, "FriendlyName": room.name}
        twiml = await self.plane.post_webhook(call.dial_action, form)
        await run_document(self.plane, call, twiml, call.dial_action)

    async def event(self, room: FakeConference, event: str, call_sid: str = "") -> None:
        if not room.status_callback or event not in room.status_events:
            return
        room.callback_count += 1
        name = f"conference-{event}" if event in ("start", "end") else f"participant-{event}"
        form = {"ConferenceSid": room.sid, "FriendlyName": room.name, "AccountSid": self.plane.account_sid,
                "StatusCallbackEvent": name, "SequenceNumber": str(room.callback_count), "Timestamp": formatdate(usegmt=True)}
        if call_sid:
            form["CallSid"] = call_sid
        await self.plane.post_webhook(room.status_callback, form)
