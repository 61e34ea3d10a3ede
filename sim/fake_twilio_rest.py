"""A fake of Twilio's REST API for calls and conferences, over the fake call plane (sim/fake_twilio_plane.py).

Routes (under /2010-04-01/Accounts/{AccountSid}):
  POST Calls.json                            create an outbound call → 201, a call resource (`queued`)
  POST Calls/{CallSid}.json                  update a live call: Twiml=…, Url=…, or Status=completed|canceled
  GET  Calls/{CallSid}.json                  fetch a call
  POST Conferences/{name|CF…}/Participants.json   add a participant leg → 201, a participant resource
  POST Conferences/{name|CF…}.json           Status=completed ends the room
An update answers at once and the work it asks for (running the TwiML, hanging up) goes on in the
background, as on Twilio; `settle()` waits for it. Every request is recorded in `requests` (path, form —
the last value of a repeated key, all of them in `lists` — basic-auth user, time). `fail_next` makes the
next N requests (only those whose path contains `fail_path`, when set) answer 500 with Twilio's JSON
error. Plain asyncio HTTP/1.1, one request per connection, enough for the `twilio` package's client.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from sim.fake_twilio_calls import FINAL_STATUSES, call_resource, participant_resource, twilio_error
from sim.fake_twilio_plane import CallPlane
from sim.fake_twilio_twiml import run_document

Answer = tuple[int, dict[str, Any]]
ACCOUNT = r"^/2010-04-01/Accounts/(?P<account>[^/]+)"
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


@dataclass
class RestRequest:
    method: str
    path: str
    form: dict[str, str]
    user: str
    at: float
    lists: dict[str, list[str]] = field(default_factory=dict)  # every value of every key, for repeated keys


@dataclass
class FakeTwilioRest(CallPlane):
    requests: list[RestRequest] = field(default_factory=list)
    fail_next: int = 0
    fail_path: str = ""  # when set, only requests whose path contains it fail
    port: int = 0
    server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "FakeTwilioRest":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.close()

    def updates(self, call_sid: str) -> list[dict[str, str]]:
        return [r.form for r in self.requests if r.method == "POST" and r.path.endswith(f"/Calls/{call_sid}.json")]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read(reader)
            self.requests.append(request)
            status, payload = self._answer(request)
            data = json.dumps(payload).encode()
            writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> RestRequest:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        user = ""
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        lists: dict[str, list[str]] = {}
        for key, value in pairs:
            lists.setdefault(key, []).append(value)
        path = target.split("?", 1)[0]
        return RestRequest(method, path, dict(pairs), user, asyncio.get_running_loop().time(), lists)

    def _answer(self, request: RestRequest) -> Answer:
        if self.fail_next > 0 and self.fail_path in request.path:
            self.fail_next -= 1
            return 500, twilio_error(500, 20500, "fake failure")
        for method, pattern, handler in self._routes():
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler(request, {k: unquote(v) for k, v in match.groupdict().items()})
        return 404, twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    def _routes(self) -> list[tuple[str, re.Pattern[str], Callable[[RestRequest, dict[str, str]], Answer]]]:
        call = re.compile(ACCOUNT + r"/Calls/(?P<call>[^/]+)\.json$")
        return [("POST", re.compile(ACCOUNT + r"/Calls\.json$"), self._create_call),
                ("POST", call, self._update_call),
                ("GET", call, self._fetch_call),
                ("POST", re.compile(ACCOUNT + r"/Conferences/(?P<conference>[^/]+)/Participants\.json$"), self._add_participant),
                ("POST", re.compile(ACCOUNT + r"/Conferences/(?P<conference>[^/]+)\.json$"), self._update_conference)]

    def _create_call(self, request: RestRequest, names: dict[str, str]) -> Answer:
        if not request.form.get("To") or not (request.form.get("Url") or request.form.get("Twiml")):
            return 400, twilio_error(400, 21205, "Url or Twiml and To are required")
        return 201, call_resource(self.create_call(request.form, request.lists), self.account_sid)

    def _update_call(self, request: RestRequest, names: dict[str, str]) -> Answer:
        call = self.call(names["call"])
        form = request.form
        if call.status in FINAL_STATUSES and ("Twiml" in form or "Url" in form):
            return 400, twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if form.get("Status") in FINAL_STATUSES:
            self.spawn(self.finish(call.sid, form["Status"]))
            return 200, call_resource(call, self.account_sid) | {"status": form["Status"]}
        if "Twiml" in form:
            self.spawn(run_document(self, call, form["Twiml"]))
        elif form.get("Url"):
            self.spawn(self._run_url(call.sid, form["Url"]))
        return 200, call_resource(call, self.account_sid)

    async def _run_url(self, call_sid: str, url: str) -> None:
        call = self.calls[call_sid]
        twiml = await self.post_webhook(url, self.call_form(call))
        await run_document(self, call, twiml, url)

    def _fetch_call(self, request: RestRequest, names: dict[str, str]) -> Answer:
        if names["call"] not in self.calls:
            return 404, twilio_error(404, 20404, f"Call {names['call']} was not found")
        return 200, call_resource(self.calls[names["call"]], self.account_sid)

    def _add_participant(self, request: RestRequest, names: dict[str, str]) -> Answer:
        if not request.form.get("To") or not request.form.get("From"):
            return 400, twilio_error(400, 21205, "From and To are required")
        call, room = self.add_participant(names["conference"], request.form, request.lists)
        return 201, participant_resource(call, room, self.account_sid)

    def _update_conference(self, request: RestRequest, names: dict[str, str]) -> Answer:
        room = self.rooms.room(names["conference"])
        if request.form.get("Status") == "completed" and not room.ended:
            self.spawn(self.rooms.end(room))
        return 200, {"sid": room.sid, "friendly_name": room.name, "account_sid": self.account_sid,
                     "status": "completed" if request.form.get("Status") == "completed" else ("in-progress" if room.started else "init")}
