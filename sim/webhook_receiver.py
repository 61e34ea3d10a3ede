"""A business's HTTP endpoints on loopback, for tests and the demo: its tools and its webhook.

Every POST is recorded (path, headers, parsed JSON body, whether the HMAC signature checks out with
the shared secret, arrival time). Per path it answers a JSON value (`answers`), hangs for `delay_s`
first, or fails with HTTP 500 `fail_next` times; `down` refuses every request with 503 (a business
whose server is down). It knows nothing of the product: it checks the signature by the documented
rule (`X-Kolbridge-Signature: sha256=<hex HMAC-SHA256(secret, body)>`).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    signed: bool
    at: float


@dataclass
class BusinessReceiver:
    secret: str = ""
    answers: dict[str, Any] = field(default_factory=dict)  # path → JSON answer
    delay_s: dict[str, float] = field(default_factory=dict)  # path → seconds before answering
    fail_next: dict[str, int] = field(default_factory=dict)  # path → 500s still to give
    down: bool = False
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def start(self) -> "BusinessReceiver":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        path = request.path
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        signed = hmac.compare_digest(expected, request.headers.get("X-Kolbridge-Signature", ""))
        if self.down:
            self.received.append(Received(path, dict(request.headers), body, signed, asyncio.get_running_loop().time()))
            return web.Response(status=503, text="down")
        self.received.append(Received(path, dict(request.headers), body, signed, asyncio.get_running_loop().time()))
        delay = self.delay_s.get(path, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if self.fail_next.get(path, 0) > 0:
            self.fail_next[path] -= 1
            return web.Response(status=500, text="failure")
        return web.json_response(self.answers.get(path, {"ok": True}))
