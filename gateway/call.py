"""CallIO: the sockets of one call, on the worker's event loop, and the sink its actor tree writes to.

Twilio: the gateway reads the stream's WebSocket; what the TxPacer decided goes out through one
writer task in the order decided. Realtime: one connection through the openai SDK
(`client.realtime.connect`, any `websocket_base_url`); events are read raw and decoded with msgspec,
client events are written pre-encoded on its websockets connection (wswrite.OrderedWriter). Client
events produced before the connection is open (session.update first, then caller audio) wait in order
in the writer's queue — none is dropped.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog
from websockets.exceptions import ConnectionClosed

from actors.messages import (
    CallSettings, CallSummary, ChildRestarted, EndCall, RealtimeOutEvent, TwilioOutEvent, Utterance,
)
from gateway.wire import decode_realtime, encode_realtime, encode_twilio
from gateway.wswrite import OrderedWriter

if TYPE_CHECKING:
    from gateway.app import App

log = structlog.get_logger("kolbridge.call")


class CallIO:
    def __init__(self, app: "App", ws: Any, settings: CallSettings) -> None:
        self.app = app
        self.ws = ws
        self.settings = settings
        self.call_id = settings.call_id
        self.tw_out = OrderedWriter(f"tw-out-{self.call_id}")
        self.rt_out = OrderedWriter(f"rt-out-{self.call_id}")
        self.summary: CallSummary | None = None
        self.ended = asyncio.Event()
        self.restarts = 0
        self.utterances = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.rt_conn: Any = None
        self.opened_at = asyncio.get_running_loop().time()

    # ------------------------------------------------------------------ CallSink
    def to_twilio(self, events: tuple[TwilioOutEvent, ...]) -> None:
        self.tw_out.write([encode_twilio(event) for event in events])

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
        self.app.save_utterance(self.call_id, self.utterances, event)

    # ------------------------------------------------------------------ tasks
    def start(self) -> None:
        self.tw_out.attach(self.ws)
        self.tasks = [asyncio.create_task(self._realtime(), name=f"rt-{self.call_id}")]

    async def _realtime(self) -> None:
        loop = asyncio.get_running_loop()
        reason = "realtime_closed"
        try:
            conn: Any = await self.app.prewarmer.claim(self.call_id)
            if conn is not None:
                log.info("REALTIME_PREWARMED", call_sid=self.call_id)
            else:
                manager = self.app.openai.realtime.connect(model=self.settings.realtime.model)
                conn = await asyncio.wait_for(manager.enter(), self.settings.realtime.connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 — any connect failure ends the call cleanly
            log.error("REALTIME_CONNECT_FAILED", call_sid=self.call_id, error=repr(exc)[:300], exc_info=True)
            await self.app.end_call(self, "realtime_connect_failed")
            return
        self.rt_conn = conn
        log.info("REALTIME_CONNECTED", call_sid=self.call_id, connect_ms=round((loop.time() - self.opened_at) * 1000))
        # Writes go straight to the SDK's websockets connection: its send_raw adds a reconnect queue we
        # do not use (a dropped Realtime socket ends the call) and a task hand-off per caller frame.
        raw_ws = getattr(conn, "_connection", None)
        if raw_ws is None or not hasattr(raw_ws, "protocol"):
            log.error("REALTIME_SDK_UNSUPPORTED", call_sid=self.call_id)
            await self.app.end_call(self, "realtime_sdk_unsupported")
            return
        self.rt_out.attach(raw_ws)
        try:
            tell = self.app.engine.tell
            while True:
                raw = await conn.recv_bytes()
                msg = decode_realtime(raw, loop.time())
                if msg is not None:
                    tell(self.call_id, msg)
        except ConnectionClosed:
            pass
        except Exception as exc:  # noqa: BLE001
            reason = "realtime_error"
            log.error("REALTIME_READ_FAILED", call_sid=self.call_id, error=repr(exc)[:300], exc_info=True)
        finally:
            if self.rt_out.task is not None and self.ended.is_set() is False:
                self.rt_out.task.cancel()
        if not self.ended.is_set():
            log.warning("REALTIME_CLOSED_MID_CALL", call_sid=self.call_id)
            await self.app.end_call(self, reason)

    async def close(self) -> None:
        """After the summary: let queued writes finish briefly, then close both sockets."""
        await self.rt_out.finished(2.0)  # the caller's last frames may still be queued: deliver them first
        await self.tw_out.finished(0.5)
        if self.rt_conn is not None:
            try:
                await self.rt_conn.close()
            except Exception:  # noqa: BLE001 — closing a socket that is already failing
                log.debug("REALTIME_CLOSE_FAILED", call_sid=self.call_id, exc_info=True)
        for task in [*self.tasks, self.tw_out.task, self.rt_out.task]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        try:
            await self.ws.close()
        except Exception:  # noqa: BLE001 — closing a socket that is already failing
            log.debug("TWILIO_CLOSE_FAILED", call_sid=self.call_id, exc_info=True)

    def end_message(self, reason: str) -> EndCall:
        return EndCall(reason, asyncio.get_running_loop().time())
