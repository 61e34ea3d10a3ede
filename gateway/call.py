"""CallIO: the sockets of one call, on the worker's event loop, and the sink its actor tree writes to.

Twilio: the gateway reads the stream's WebSocket; what the TxPacer decided goes out through one
writer task in the order decided. Realtime: one connection through the openai SDK
(`client.realtime.connect`, any `websocket_base_url`); events are read raw and decoded with msgspec,
client events are sent pre-encoded with `send_raw`. Client events produced before the connection is
open (session.update first, then caller audio) wait in order in the outgoing queue — none is dropped.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog
from websockets.exceptions import ConnectionClosed

from actors.messages import CallSettings, CallSummary, ChildRestarted, EndCall, RealtimeOutEvent, TwilioOutEvent
from gateway.wire import decode_realtime, encode_realtime, encode_twilio

if TYPE_CHECKING:
    from gateway.app import App

log = structlog.get_logger("kolbridge.call")


class CallIO:
    def __init__(self, app: "App", ws: Any, settings: CallSettings) -> None:
        self.app = app
        self.ws = ws
        self.settings = settings
        self.call_id = settings.call_id
        self.tw_out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.rt_out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.summary: CallSummary | None = None
        self.ended = asyncio.Event()
        self.restarts = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.rt_conn: Any = None
        self.rt_writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ CallSink
    def to_twilio(self, events: tuple[TwilioOutEvent, ...]) -> None:
        put = self.tw_out.put_nowait
        for event in events:
            put(encode_twilio(event))

    def to_realtime(self, event: RealtimeOutEvent) -> None:
        self.rt_out.put_nowait(encode_realtime(event))

    def call_ended(self, summary: CallSummary) -> None:
        self.summary = summary
        self.ended.set()
        self.tw_out.put_nowait(None)
        self.rt_out.put_nowait(None)

    def child_restarted(self, event: ChildRestarted) -> None:
        self.restarts += 1

    # ------------------------------------------------------------------ tasks
    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._twilio_writer(), name=f"tw-out-{self.call_id}"),
                      asyncio.create_task(self._realtime(), name=f"rt-{self.call_id}")]

    async def _twilio_writer(self) -> None:
        try:
            while (data := await self.tw_out.get()) is not None:
                await self.ws.send(data, text=True)
        except ConnectionClosed:
            pass

    async def _realtime(self) -> None:
        loop = asyncio.get_running_loop()
        reason = "realtime_closed"
        try:
            manager = self.app.openai.realtime.connect(model=self.settings.realtime.model)
            conn = await asyncio.wait_for(manager.enter(), self.settings.realtime.connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 — any connect failure ends the call cleanly
            log.error("REALTIME_CONNECT_FAILED", call_sid=self.call_id, error=repr(exc)[:300])
            await self.app.end_call(self, "realtime_connect_failed")
            return
        self.rt_conn = conn
        log.info("REALTIME_CONNECTED", call_sid=self.call_id, connect_ms=round((loop.time() - self.opened_at) * 1000))
        writer = asyncio.create_task(self._realtime_writer(conn))
        self.rt_writer = writer
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
            log.error("REALTIME_READ_FAILED", call_sid=self.call_id, error=repr(exc)[:300])
        finally:
            writer.cancel()
        if not self.ended.is_set():
            log.warning("REALTIME_CLOSED_MID_CALL", call_sid=self.call_id)
            await self.app.end_call(self, reason)

    async def _realtime_writer(self, conn: Any) -> None:
        # The SDK's send_raw adds a reconnect queue and task bookkeeping per message (we do not enable
        # its reconnects: a dropped Realtime socket ends the call); its websockets connection is used
        # directly when the SDK exposes it, so each caller frame costs one websockets send.
        raw_ws = getattr(conn, "_connection", None)
        send = raw_ws.send if raw_ws is not None and hasattr(raw_ws, "send") else None
        try:
            while (data := await self.rt_out.get()) is not None:
                if send is not None:
                    await send(data, text=True)
                else:
                    await conn.send_raw(data.decode("utf-8"))
        except ConnectionClosed:
            pass

    opened_at = 0.0

    async def close(self) -> None:
        """After the summary: let queued writes finish briefly, then close both sockets."""
        if self.rt_writer is not None and not self.rt_writer.done():
            try:  # the caller's last frames are still queued behind None: deliver them before closing
                await asyncio.wait_for(asyncio.shield(self.rt_writer), 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, ConnectionClosed):
                pass
        if self.rt_conn is not None:
            try:
                await self.rt_conn.close()
            except Exception:  # noqa: BLE001
                pass
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        try:
            await self.ws.close()
        except Exception:  # noqa: BLE001
            pass

    def end_message(self, reason: str) -> EndCall:
        return EndCall(reason, asyncio.get_running_loop().time())
