"""A fake OpenAI Realtime service (GA protocol) for tests, the demo and benchmarks.

It speaks the wire protocol only: session.created → session.update/updated; an energy VAD over the
appended μ-law (speech_started/stopped with the session's prefix padding and silence duration,
committed, the user item, then the transcription after a delay from a scripted list); response.create
→ response.created, the assistant item, `response.output_audio.delta` in uneven chunks at a scripted
speed (default 4× real time; 0.9× is slower than real time) with optional jitter and a stall, the
audio transcript, response.done; response.cancel; conversation.item.truncate (rejected past the
item's audio length); conversation.item.delete; any other event type gets an `error`.
Every client event is recorded for inspection, with its arrival time.
Faults (FakeFaults, changeable while running): refuse handshakes with HTTP 503, leave handshakes
unanswered, drop a live connection (abort, or close with a code such as 1001 "maximum duration"),
expire every session after N seconds, answer response.create with a rate limit (error event or
`response.done` failed) or a fatal error. conversation.item.create is accepted and recorded.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from sim.audio import FRAME_BYTES, rms

CHUNK_PATTERN = (700, 1337, 160, 2400, 999, 333, 4096)


@dataclass
class FakeScript:
    transcripts: list[str] = field(default_factory=list)  # caller turns, in order ("" = empty transcript)
    responses: list[tuple[bytes, str]] = field(default_factory=list)  # assistant audio + its transcript, in order
    # when set, a response answers the latest (not deleted) caller item: replies[its transcript]; the
    # first response of the session (the greeting) is responses[0]
    replies: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    transcript_delay_s: float = 0.3
    speed: float = 4.0  # assistant audio streams this many times faster than real time (0.9 = slower)
    jitter_s: float = 0.0  # each delta leaves up to this much before or after its nominal time (never reordered)
    stall_after_s: float | None = None  # once per response, after this much of it, delivery stalls…
    stall_s: float = 0.0  # …for this long
    seed: int = 7
    first_delta_delay_s: float = 0.15
    vad_rms: float = 300.0
    vad_start_frames: int = 3
    # function calls: a reply to this caller transcript also calls tool `name` with `arguments`
    calls: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    call_before_audio: bool = False  # the function call item comes before the spoken item (else after)
    # the response after a function_call_output for tool `name` (no entry: a short default)
    after_tool: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # a response.create whose instructions contain the key (reprompt, goodbye, holding line…)
    by_instructions: dict[str, tuple[bytes, str]] = field(default_factory=dict)


@dataclass
class FakeFaults:
    refuse_next: int = 0  # handshakes answered with HTTP 503
    hang_next: int = 0  # handshakes never answered
    expire_after_s: float | None = None  # each session is closed with 1001 after this long
    rate_limit_next: int = 0  # response.create answered with a rate limit instead of a response
    rate_limit_as_failed_response: bool = False  # …as `response.done` status failed rather than an `error`
    rate_limit_reset_s: float = 1.0
    fatal_next: str = ""  # an error code answered to the next response.create (e.g. insufficient_quota)
    refused: int = 0
    hung: int = 0


@dataclass
class FakeConnection:
    index: int
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    appended: bytearray = field(default_factory=bytearray)
    session: dict[str, Any] = field(default_factory=dict)
    session_before_audio: bool | None = None
    errors_sent: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # id, item_id, audio (bytes sent), status
    truncations: list[dict[str, Any]] = field(default_factory=list)
    speech: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[float, str, str]] = field(default_factory=list)  # (loop time, type, item_id)
    closed: bool = False
    opened_at: float = 0.0
    created_items: list[dict[str, Any]] = field(default_factory=list)  # conversation.item.create items
    path: str = ""  # the request path, e.g. /v1/realtime?model=gpt-realtime
    function_calls: list[dict[str, Any]] = field(default_factory=list)  # call_id, name, arguments, at
    function_outputs: list[dict[str, Any]] = field(default_factory=list)  # call_id, output, at
    ws: Any = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("type") == kind]


class FakeRealtime:
    def __init__(self, script: FakeScript | None = None, faults: FakeFaults | None = None) -> None:
        self.script = script or FakeScript()
        self.faults = faults or FakeFaults()
        self.connections: list[FakeConnection] = []
        self.server: Server | None = None
        self.port = 0
        self._ids = itertools.count(1)
        self._release = asyncio.Event()
        self.turn = 0
        self.rng = random.Random(self.script.seed)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeRealtime":
        self.server = await serve(self._handle, host, port, max_size=None, compression=None, ping_interval=None,
                                  process_request=self._handshake)
        self.port = list(self.server.sockets)[0].getsockname()[1]
        return self

    async def _handshake(self, conn: ServerConnection, request: Any) -> Any:
        if self.faults.refuse_next > 0:
            self.faults.refuse_next -= 1
            self.faults.refused += 1
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "overloaded\n")
        if self.faults.hang_next > 0:
            self.faults.hang_next -= 1
            self.faults.hung += 1
            await self._release.wait()
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "gave up\n")
        return None

    def drop(self, index: int = -1, code: int | None = None, reason: str = "") -> None:
        """Break a live connection: abort it (a network blip) or close it with `code`."""
        conn = self.connections[index]
        if conn.ws is None or conn.closed:
            return
        if code is None:
            conn.ws.transport.abort()
        else:
            asyncio.ensure_future(conn.ws.close(code, reason))

    async def stop(self) -> None:
        self._release.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):05d}"

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection(len(self.connections), opened_at=asyncio.get_running_loop().time(), ws=ws,
                              path=ws.request.path if ws.request else "")
        self.connections.append(conn)
        session = _Session(self, ws, conn)
        expiry = None
        if self.faults.expire_after_s is not None:
            expiry = asyncio.get_running_loop().call_later(self.faults.expire_after_s, lambda: asyncio.ensure_future(
                ws.close(1001, "Your session hit the maximum duration of 60 minutes.")))
        try:
            await session.run()
        finally:
            if expiry is not None:
                expiry.cancel()


class _Session:
    def __init__(self, fake: FakeRealtime, ws: ServerConnection, conn: FakeConnection) -> None:
        self.fake, self.ws, self.conn, self.script = fake, ws, conn, fake.script
        self.prefix_ms, self.silence_ms = 300, 600
        self.voiced_run = 0
        self.silent_ms = 0
        self.in_speech = False
        self.speech_item = ""
        self.response_index = 0
        self.active: asyncio.Task[None] | None = None
        self.active_id = ""
        self.items: dict[str, dict[str, Any]] = {}
        self.pending = bytearray()

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.fake._id("event"))
        self.conn.sent.append((asyncio.get_running_loop().time(), event["type"], str(event.get("item_id", ""))))
        if event["type"] == "error":
            self.conn.errors_sent.append(event)
        try:
            await self.ws.send(json.dumps(event, ensure_ascii=False))
        except ConnectionClosed:
            pass

    async def run(self) -> None:
        await self.send({"type": "session.created", "session": {"type": "realtime", "model": "gpt-realtime"}})
        try:
            async for raw in self.ws:
                try:
                    event = json.loads(raw)
                except ValueError:
                    await self.error("invalid_json", "could not parse event")
                    continue
                self.conn.events.append((asyncio.get_running_loop().time(), event))
                await self.dispatch(event)
        except ConnectionClosed:
            pass
        finally:
            self.conn.closed = True
            if self.active:
                self.active.cancel()

    async def error(self, code: str, message: str, event_id: str | None = None) -> None:
        await self.send({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                                    "message": message, "event_id": event_id}})

    async def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            await self.append(event)
        elif kind == "session.update":
            self.conn.session = event.get("session", {})
            td = (self.conn.session.get("audio", {}).get("input", {}).get("turn_detection") or {})
            self.prefix_ms = int(td.get("prefix_padding_ms", 300))
            self.silence_ms = int(td.get("silence_duration_ms", 600))
            await self.send({"type": "session.updated", "session": self.conn.session})
        elif kind == "response.create":
            await self.response_create(event)
        elif kind == "response.cancel":
            await self.response_cancel(event)
        elif kind == "conversation.item.truncate":
            await self.truncate(event)
        elif kind == "conversation.item.create":
            item = dict(event.get("item") or {})
            item_id = self.fake._id("item")
            self.conn.created_items.append(item)
            if item.get("type") == "function_call_output":
                call = next((c for c in self.conn.function_calls if c["call_id"] == item.get("call_id")), None)
                if call is None:
                    await self.error("invalid_call_id", f"no function call {item.get('call_id')!r}", event.get("event_id"))
                    return
                self.conn.function_outputs.append({"call_id": item.get("call_id"), "output": item.get("output"),
                                                   "at": asyncio.get_running_loop().time(), "name": call["name"]})
                self.items[item_id] = {"role": "tool", "name": call["name"], "text": ""}
                await self.send({"type": "conversation.item.added", "item": {"id": item_id, **item}})
                return
            text = " ".join(str(c.get("text", "")) for c in item.get("content", []))
            self.items[item_id] = {"role": item.get("role", "user") if item.get("role") != "assistant" else "seeded",
                                   "text": text}
            await self.send({"type": "conversation.item.added", "item": {"id": item_id, **item}})
        elif kind == "conversation.item.delete":
            item_id = event.get("item_id", "")
            self.items.pop(item_id, None)
            await self.send({"type": "conversation.item.deleted", "item_id": item_id})
        else:
            await self.error("unknown_event", f"unsupported event type {kind!r}", event.get("event_id"))

    # ------------------------------------------------------------------ caller audio + VAD
    async def append(self, event: dict[str, Any]) -> None:
        if self.conn.session_before_audio is None:
            fmt = self.conn.session.get("audio", {}).get("input", {}).get("format", {}).get("type")
            self.conn.session_before_audio = fmt == "audio/pcmu"
        audio = base64.b64decode(event.get("audio", ""))
        self.conn.appended.extend(audio)
        self.pending.extend(audio)
        while len(self.pending) >= FRAME_BYTES:
            frame = bytes(self.pending[:FRAME_BYTES])
            del self.pending[:FRAME_BYTES]
            await self.vad_frame(frame)

    async def vad_frame(self, frame: bytes) -> None:
        end_ms = len(self.conn.appended) // 8 - len(self.pending) // 8
        voiced = rms(frame) >= self.script.vad_rms
        if not self.in_speech:
            self.voiced_run = self.voiced_run + 1 if voiced else 0
            if self.voiced_run >= self.script.vad_start_frames:
                self.in_speech, self.silent_ms = True, 0
                self.speech_item = self.fake._id("item")
                onset = end_ms - self.voiced_run * 20
                start = max(0, onset - self.prefix_ms)
                self.conn.speech.append({"item_id": self.speech_item, "start_ms": start, "at": asyncio.get_running_loop().time()})
                await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": start,
                                 "item_id": self.speech_item})
            return
        self.silent_ms = 0 if voiced else self.silent_ms + 20
        if self.silent_ms >= self.silence_ms:
            self.in_speech, self.voiced_run = False, 0
            item_id = self.speech_item
            self.conn.speech[-1]["end_ms"] = end_ms
            self.conn.speech[-1]["stopped_at"] = asyncio.get_running_loop().time()
            await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item_id})
            await self.send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None})
            text = self.script.transcripts[self.fake.turn] if self.fake.turn < len(self.script.transcripts) else ""
            self.items[item_id] = {"role": "user", "text": text}
            await self.send({"type": "conversation.item.added", "item": {"id": item_id, "type": "message",
                             "role": "user", "content": [{"type": "input_audio"}]}})
            self.fake.turn += 1  # caller turns count across sessions: a restored session hears the next one
            asyncio.get_running_loop().call_later(
                self.script.transcript_delay_s,
                lambda: asyncio.ensure_future(self.send({
                    "type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                    "content_index": 0, "transcript": text})))

    # ------------------------------------------------------------------ responses
    async def response_create(self, event: dict[str, Any]) -> None:
        faults = self.fake.faults
        if faults.fatal_next:
            code, faults.fatal_next = faults.fatal_next, ""
            await self.send({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                                        "message": f"fatal: {code}", "event_id": event.get("event_id")}})
            return
        if faults.rate_limit_next > 0:
            faults.rate_limit_next -= 1
            await self.send({"type": "rate_limits.updated", "rate_limits": [
                {"name": "requests", "limit": 100, "remaining": 0, "reset_seconds": faults.rate_limit_reset_s},
                {"name": "tokens", "limit": 100000, "remaining": 90000, "reset_seconds": 60}]})
            if faults.rate_limit_as_failed_response:
                rid = self.fake._id("resp")
                await self.send({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
                await self.send({"type": "response.done", "response": {"id": rid, "status": "failed", "status_details": {
                    "type": "failed", "error": {"type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}}}})
            else:
                await self.send({"type": "error", "error": {"type": "rate_limit_error", "code": "rate_limit_exceeded",
                                                            "message": "Rate limit reached", "event_id": event.get("event_id")}})
            return
        if self.active is not None and not self.active.done():
            await self.error("conversation_already_has_active_response",
                             "Conversation already has an active response in progress", event.get("event_id"))
            return
        responses = self.script.responses or [(b"\xff" * 8000, "")]
        user_items = [v["text"] for v in self.items.values() if v["role"] == "user"]
        last = list(self.items.values())[-1] if self.items else {}
        instructions = str((event.get("response") or {}).get("instructions") or "")
        instructed = next((v for k, v in self.script.by_instructions.items() if instructions and k in instructions), None)
        call: tuple[str, dict[str, Any]] | None = None
        if instructed is not None:
            audio, text = instructed
        elif last.get("role") == "tool":
            audio, text = self.script.after_tool.get(last["name"], (b"\xff" * 4000, "ok"))
        elif self.script.replies and (self.response_index > 0 or self.conn.created_items) and user_items:
            audio, text = self.script.replies.get(user_items[-1], responses[-1])
            call = self.script.calls.get(user_items[-1])
        else:
            audio, text = responses[min(self.response_index, len(responses) - 1)]
        self.response_index += 1
        rid, item_id = self.fake._id("resp"), self.fake._id("item")
        record = {"id": rid, "item_id": item_id, "audio": bytearray(), "status": "in_progress",
                  "instructions": (event.get("response") or {}).get("instructions")}
        self.conn.responses.append(record)
        self.items[item_id] = {"role": "assistant", "record": record}
        self.active_id = rid
        await self.send({"type": "response.created", "response": {"id": rid, "status": "in_progress", "output": []}})
        self.active = asyncio.create_task(self.stream(record, audio, text, call))

    async def function_call(self, rid: str, name: str, arguments: dict[str, Any]) -> None:
        item_id, call_id = self.fake._id("item"), self.fake._id("call")
        args = json.dumps(arguments, ensure_ascii=False)
        self.conn.function_calls.append({"call_id": call_id, "name": name, "arguments": args, "at": asyncio.get_running_loop().time()})
        item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": ""}
        await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": 1, "item": item})
        await self.send({"type": "response.function_call_arguments.delta", "response_id": rid, "item_id": item_id,
                         "output_index": 1, "call_id": call_id, "delta": args})
        await self.send({"type": "response.function_call_arguments.done", "response_id": rid, "item_id": item_id,
                         "output_index": 1, "call_id": call_id, "name": name, "arguments": args})
        await self.send({"type": "response.output_item.done", "response_id": rid, "output_index": 1,
                         "item": {**item, "arguments": args, "status": "completed"}})

    async def stream(self, record: dict[str, Any], audio: bytes, text: str,
                     call: tuple[str, dict[str, Any]] | None = None) -> None:
        rid, item_id = record["id"], record["item_id"]
        if call is not None and self.script.call_before_audio:
            await self.function_call(rid, *call)
        if not audio:  # a response that only calls a tool
            if call is not None and not self.script.call_before_audio:
                await self.function_call(rid, *call)
            record["status"] = "completed"
            self.active_id = ""
            await self.send({"type": "response.done", "response": {"id": rid, "status": "completed", "output": []}})
            return
        await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                         "item": {"id": item_id, "type": "message", "role": "assistant"}})
        await asyncio.sleep(self.script.first_delta_delay_s)
        pos, said = 0, 0
        loop = asyncio.get_running_loop()
        nominal = loop.time()  # when this chunk would leave at exactly `speed`× real time
        stall_at = nominal + self.script.stall_after_s if self.script.stall_after_s is not None else None
        for size in itertools.cycle(CHUNK_PATTERN):
            if pos >= len(audio):
                break
            due = nominal + (self.fake.rng.uniform(-1.0, 1.0) * self.script.jitter_s if self.script.jitter_s else 0.0)
            if stall_at is not None and nominal >= stall_at:
                due += self.script.stall_s
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            chunk = audio[pos:pos + size]
            pos += len(chunk)
            record["audio"].extend(chunk)
            upto = len(text) * pos // len(audio)  # the transcript keeps pace with the audio
            if upto > said:
                await self.send({"type": "response.output_audio_transcript.delta", "response_id": rid,
                                 "item_id": item_id, "output_index": 0, "content_index": 0,
                                 "delta": text[said:upto]})
                said = upto
            await self.send({"type": "response.output_audio.delta", "response_id": rid, "item_id": item_id,
                             "output_index": 0, "content_index": 0,
                             "delta": base64.b64encode(chunk).decode("ascii")})
            nominal += len(chunk) / 8000.0 / self.script.speed
        await self.send({"type": "response.output_audio.done", "response_id": rid, "item_id": item_id,
                         "output_index": 0, "content_index": 0})
        await self.send({"type": "response.output_audio_transcript.done", "response_id": rid, "item_id": item_id,
                         "output_index": 0, "content_index": 0, "transcript": text})
        if call is not None and not self.script.call_before_audio:
            await self.function_call(rid, *call)
        record["status"] = "completed"
        self.active_id = ""
        await self.send({"type": "response.done", "response": {"id": rid, "status": "completed", "output": []}})

    async def response_cancel(self, event: dict[str, Any]) -> None:
        if self.active is None or self.active.done():
            await self.error("response_cancel_not_active", "Cancellation failed: no active response found",
                             event.get("event_id"))
            return
        self.active.cancel()
        record = self.conn.responses[-1]
        record["status"] = "cancelled"
        self.active_id = ""
        await self.send({"type": "response.done", "response": {"id": record["id"], "status": "cancelled",
                         "status_details": {"type": "cancelled", "reason": "client_cancelled"}, "output": []}})

    async def truncate(self, event: dict[str, Any]) -> None:
        item_id, end_ms = event.get("item_id", ""), int(event.get("audio_end_ms", -1))
        item = self.items.get(item_id)
        if item is None or item["role"] != "assistant":
            await self.error("item_not_found", f"no assistant item {item_id!r}", event.get("event_id"))
            return
        length_ms = len(item["record"]["audio"]) // 8
        if end_ms < 0 or end_ms > length_ms:
            await self.error("invalid_value", f"audio_end_ms {end_ms} is past the item's {length_ms} ms",
                             event.get("event_id"))
            return
        self.conn.truncations.append({"item_id": item_id, "audio_end_ms": end_ms, "at": asyncio.get_running_loop().time()})
        await self.send({"type": "conversation.item.truncated", "item_id": item_id, "content_index": 0,
                         "audio_end_ms": end_ms})
