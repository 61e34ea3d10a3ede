"""What the fake Twilio's conference rooms and TwiML interpreter use of the call plane, as protocols.

The plane (sim/fake_twilio_plane.py) owns the calls and runs the rooms and the interpreter; they act on it
through this face only, so the imports point one way: plane → rooms → interpreter → this → records.
"""
from __future__ import annotations

from typing import Protocol

from sim.fake_twilio_calls import FakeCall, FakeConference, StreamRequest, Webhooks


class RoomsPort(Protocol):
    async def join(self, call: FakeCall, name: str, *, wait_url: str | None, start_on_enter: bool, end_on_exit: bool,
                   status_callback: str = "", status_events: str = "") -> FakeConference: ...

    async def leave(self, call: FakeCall) -> None: ...


class PlanePort(Protocol):
    account_sid: str
    hang_up_when_done: bool
    calls: dict[str, FakeCall]
    streams: list[StreamRequest]
    webhooks: Webhooks

    @property
    def rooms(self) -> RoomsPort: ...

    async def finish(self, call_sid: str, status: str, duration_s: int = 0) -> None: ...

    async def resume(self, call: FakeCall) -> None: ...

    def stream_requested(self, stream: StreamRequest) -> None: ...

    def call_form(self, call: FakeCall) -> dict[str, str]: ...

    async def post_webhook(self, url: str, form: dict[str, str]) -> str: ...
