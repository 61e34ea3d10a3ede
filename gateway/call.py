"""CallIO: the sockets of one call, on the worker's event loop, and the sink its actor tree writes to
(actors/egress.py: one method per outbound command).

Twilio: the server reads the stream's WebSocket (gateway/server.py); what the TxPacer decided goes out
through one writer task in the order decided. Realtime: connections through the openai SDK, opened
only when the RealtimeBridge says so (OpenRealtime, numbered by generation; the worker's Prewarmer
opens each attempt, the first with the connection /voice pre-opened) and reported back
(RealtimeConnected / ConnectFailed / Lost); events are read raw and decoded with msgspec, client
events are written pre-encoded on its websockets connection (wswrite.OrderedWriter). Client events
produced before the first connection is open (session.update first, then caller audio) wait in order
in the writer's queue — none is dropped. When a connection is lost, the caller frames still queued
for it go back to TwilioRx with the news, to be replayed on the restored session; a rollover opens the
next connection beside the live one and switches writers between two actor messages, so nothing falls
in between. Utterances and the agent's commands go to the worker's AgentActions (gateway/actions.py);
RealtimeGaveUp to the business's fallback (gateway/leaving.py).
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from websockets.exceptions import ConnectionClosed

from actors.agent_messages import LeaveCall, RunTool, SaveLead, ToolCallRecord
from actors.ingress_messages import EndCall
from actors.language_messages import LanguageSwitched
from actors.lifecycle_messages import ChildRestarted
from actors.link_messages import (
    OpenRealtime,
    RealtimeConnected,
    RealtimeConnectFailed,
    RealtimeGaveUp,
    RealtimeLost,
)
from actors.messages import CallSummary, Utterance
from actors.settings import CallSettings
from actors.wire_messages import RealtimeOutEvent, TwClear, TwilioOutEvent, TwMedia, b64_size
from gateway.actions import AgentActions, CallNotes
from gateway.call_setup import CallProfile
from gateway.leaving import Leaver
from gateway.prewarm import Prewarmer
from gateway.recorder import CallRecorder
from gateway.wire import decode_realtime, encode_realtime, encode_twilio, unsent_appends
from gateway.wswrite import OrderedWriter

log = structlog.get_logger("kolbridge.call")
DECIDED_KEPT = 64  # a live call's latest decided utterances, read by the control reporter each second


def realtime_socket(conn: Any) -> Any:
    """The websockets connection under the SDK's: private API of openai (pinned range, tested in
    tests/test_sdk_contract.py); None if this SDK does not have it."""
    raw_ws = getattr(conn, "_connection", None)
    return raw_ws if raw_ws is not None and hasattr(raw_ws, "protocol") else None


async def flush_or_count(writer: OrderedWriter, timeout: float, frame_bytes: int = 160) -> int:
    """Let a closed writer deliver what it holds for up to `timeout`; then abandon the rest and return how
    many caller frames (of `frame_bytes`) its never-written appends carried."""
    await writer.finished(timeout)
    left = unsent_appends(writer.abandon())
    return sum(-(-b64_size(audio) // frame_bytes) for audio in left)


async def close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:  # noqa: BLE001 — closing a socket that is already failing
        log.debug("REALTIME_CLOSE_FAILED", exc_info=True)


@dataclass(frozen=True)
class CallServices:
    """What a call's I/O uses of its worker: one set per worker, shared by its calls."""

    tell: Callable[[str, object], bool]  # the actor engine: a message to a call's tree
    poll_ticker: Callable[[], None]  # run the 20 ms tick if it is due (gateway/runtime/ticker.py)
    background: Callable[[Coroutine[Any, Any, None]], None]  # a task the worker keeps until it ends
    realtime: Prewarmer  # opens a call's Realtime connections (pre-opened by /voice, or new)
    actions: AgentActions  # what the call's decisions do (records, tools, leads, leaving)
    leaver: Leaver  # the fallback, when the AI cannot take the call


class CallIO:
    def __init__(self, ws: Any, settings: CallSettings, profile: CallProfile, services: CallServices,
                 recorder: CallRecorder | None = None) -> None:
        """Starts writing to Twilio on `ws` at once; `recorder` when the business records its calls."""
        self.ws = ws
        self.settings = settings
        self.profile = profile
        self.services = services
        self.recorder = recorder
        self.call_id = settings.call_id
        self.tw_out = OrderedWriter(f"tw-out-{self.call_id}")
        self.rt_out = OrderedWriter(f"rt-out-{self.call_id}")
        self.summary: CallSummary | None = None
        self.ended = asyncio.Event()
        self.restarts = 0
        self.utterances = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.rt_conn: Any = None
        self.generation = 0  # of the Realtime connection the writer is attached to
        self.frames_in = 0
        self.twilio_events_out = 0
        self.opened_at = asyncio.get_running_loop().time()
        self.notes = CallNotes()  # for the business's post-call report
        self.decided: deque[dict[str, object]] = deque(maxlen=DECIDED_KEPT)  # the latest utterances, for the console
        self.caller_language = settings.first_caller_language
        self.tw_out.attach(ws)

    # ------------------------------------------------------------------ CallSink
    def to_twilio(self, events: tuple[TwilioOutEvent, ...]) -> None:
        self.twilio_events_out += len(events)
        self.tw_out.write([encode_twilio(event) for event in events])
        if self.recorder is not None:
            now = asyncio.get_running_loop().time()
            for event in events:
                if isinstance(event, TwMedia):
                    self.recorder.sent(event.media.payload, now)
                elif isinstance(event, TwClear):
                    self.recorder.cleared(now)

    def to_realtime(self, event: RealtimeOutEvent) -> None:
        self.rt_out.write((encode_realtime(event),))

    def call_ended(self, summary: CallSummary) -> None:
        self.summary = summary
        self.ended.set()
        self.tw_out.close()
        self.rt_out.close()

    def child_restarted(self, event: ChildRestarted) -> None:
        self.restarts += 1

    def utterance(self, event: Utterance) -> None:
        self.utterances += 1
        self.services.actions.utterance(self, self.utterances, event)
        self.decided.append({"seq": self.utterances, "role": event.role, "text": event.text, "label": event.label,
                             "start_ms": event.start_ms, "end_ms": event.end_ms, "interrupted": event.interrupted,
                             "heard_ms": event.heard_ms})

    def language_switched(self, event: LanguageSwitched) -> None:
        self.caller_language = event.to_language
        self.services.actions.language_switched(self, event)

    @property
    def caller(self) -> str:
        return self.profile.caller

    def run_tool(self, command: RunTool) -> None:
        task = asyncio.create_task(self.services.actions.run_tool(self, command), name=f"tool-{self.call_id}")
        self.tasks.append(task)

    def save_lead(self, command: SaveLead) -> None:
        self.services.actions.save_lead(self, command)

    def tool_record(self, record: ToolCallRecord) -> None:
        self.services.actions.tool_record(self, record)

    def leave_call(self, command: LeaveCall) -> None:
        self.services.background(self.services.actions.leave(self, command))

    def open_realtime(self, command: OpenRealtime) -> None:
        self.tasks.append(asyncio.create_task(self._open(command), name=f"rt-open-{self.call_id}-{command.generation}"))

    def realtime_unavailable(self, command: RealtimeGaveUp) -> None:
        self.services.background(self.services.leaver.fallback(self, command.reason))

    # ------------------------------------------------------------------ tasks
    async def _open(self, command: OpenRealtime) -> None:
        loop = asyncio.get_running_loop()
        tell = self.services.tell
        started = loop.time()
        try:
            conn = await self.services.realtime.open(self.call_id, self.settings.realtime.model, command.generation == 1,
                                                     command.timeout_s)
        except Exception as exc:  # noqa: BLE001 — refused, timed out, DNS…: the bridge decides what next
            if not self.ended.is_set():
                log.warning("REALTIME_CONNECT_ATTEMPT_FAILED", call_sid=self.call_id, generation=command.generation,
                            error=repr(exc)[:300], exc_info=not isinstance(exc, TimeoutError))
                tell(self.call_id, RealtimeConnectFailed(command.generation, repr(exc)[:200], loop.time()))
            return
        raw_ws = realtime_socket(conn)
        if self.ended.is_set() or raw_ws is None:
            await close_quietly(conn)
            if raw_ws is None and not self.ended.is_set():
                log.error("REALTIME_SDK_UNSUPPORTED", call_sid=self.call_id)
                tell(self.call_id, RealtimeConnectFailed(command.generation, "sdk_unsupported", loop.time()))
            return
        log.info("REALTIME_CONNECTED", call_sid=self.call_id, generation=command.generation,
                 connect_ms=round((loop.time() - started) * 1000), rollover=command.rollover)
        old_writer, old_conn = self.rt_out, self.rt_conn
        if command.rollover:
            self.rt_out = OrderedWriter(f"rt-out-{self.call_id}")
        self.rt_conn, self.generation = conn, command.generation
        self.rt_out.attach(raw_ws)
        self.tasks.append(asyncio.create_task(self._read(conn, command.generation),
                                              name=f"rt-read-{self.call_id}-{command.generation}"))
        tell(self.call_id, RealtimeConnected(command.generation, loop.time()))  # session.update + history
        if command.rollover and old_conn is not None:
            old_writer.close()  # what the old session was still owed goes out first
            await old_writer.finished(2.0)
            await close_quietly(old_conn)

    async def _read(self, conn: Any, generation: int) -> None:
        loop = asyncio.get_running_loop()
        code, reason = 1006, "connection lost"
        try:
            tell, poll_ticker = self.services.tell, self.services.poll_ticker
            while True:
                raw = await conn.recv_bytes()
                poll_ticker()  # before the event reaches the actors (never inside them)
                msg = decode_realtime(raw, loop.time())
                if msg is not None:
                    tell(self.call_id, msg)
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                code, reason = exc.rcvd.code, exc.rcvd.reason
        except Exception as exc:  # noqa: BLE001 — a broken socket is a lost link like any other
            reason = repr(exc)[:300]
            log.error("REALTIME_READ_FAILED", call_sid=self.call_id, error=reason, exc_info=True)
        if self.ended.is_set() or generation != self.generation:
            return  # the call is over, or this was the old session of a rollover
        unsent = self.rt_out.abandon()
        self.rt_out = OrderedWriter(f"rt-out-{self.call_id}")
        self.rt_conn = None
        self.services.background(close_quietly(conn))
        self.services.tell(self.call_id, RealtimeLost(generation, code, reason, loop.time(), unsent_appends(unsent)))

    async def deliver_caller_audio(self, timeout: float = 2.0) -> tuple[int, str]:
        """After the summary: the caller's last frames may still be queued for the Realtime service — give
        them `timeout` to leave; return how many caller frames had not (dropped with the connection) and
        why. With no session open (the first connect never succeeded, or the call ended before it did)
        everything the writer held waited for a session that never came: all of it is counted."""
        never_open = self.rt_out.ws is None
        unsent = await flush_or_count(self.rt_out, timeout)
        if not unsent:
            return 0, ""
        if never_open:
            return unsent, "no Realtime session was open: the caller's audio waited for one that never came"
        return unsent, "the Realtime service did not take the caller's last audio in time"

    async def close(self) -> None:
        """After the summary (and deliver_caller_audio): close both sockets."""
        await self.tw_out.finished(0.5)
        if self.rt_conn is not None:
            await close_quietly(self.rt_conn)
        for task in [*self.tasks, self.tw_out.task, self.rt_out.task]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        try:
            await self.ws.close()
        except Exception:  # noqa: BLE001 — closing a socket that is already failing
            log.debug("TWILIO_CLOSE_FAILED", call_sid=self.call_id, exc_info=True)

    def live_metrics(self) -> dict[str, int]:
        """What the gateway knows of a live call without asking its actors: the heartbeat's metrics."""
        age = asyncio.get_running_loop().time() - self.opened_at
        return {"frames_in": self.frames_in, "twilio_events_out": self.twilio_events_out,
                "age_ms": int(age * 1000), "realtime_generation": self.generation, "utterances": self.utterances}

    def end_message(self, reason: str) -> EndCall:
        return EndCall(reason, asyncio.get_running_loop().time())
