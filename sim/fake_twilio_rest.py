"""A fake of Twilio's REST API, just what a live call's update needs: `POST
/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with form `Twiml=…` or `Status=completed`.
Every request is recorded (path, form, basic-auth user, time); `fail_next` answers 500s. Plain
asyncio HTTP/1.1, one request per connection, enough for the `twilio` package's client.
"""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl


@dataclass
class RestRequest:
    method: str
    path: str
    form: dict[str, str]
    user: str
    at: float


@dataclass
class FakeTwilioRest:
    requests: list[RestRequest] = field(default_factory=list)
    fail_next: int = 0
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

    def updates(self, call_sid: str) -> list[dict[str, str]]:
        return [r.form for r in self.requests if r.path.endswith(f"/Calls/{call_sid}.json")]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            user = ""
            auth = headers.get("authorization", "")
            if auth.startswith("Basic "):
                user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            self.requests.append(RestRequest(method, path, form, user, asyncio.get_running_loop().time()))
            if self.fail_next > 0:
                self.fail_next -= 1
                status, payload = "500 Internal Server Error", {"code": 20500, "message": "fake failure", "status": 500}
            else:
                sid = path.rsplit("/", 1)[-1].removesuffix(".json")
                status, payload = "200 OK", {"sid": sid, "status": form.get("Status", "in-progress")}
            data = json.dumps(payload).encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
