"""Ordered text writes on a websockets asyncio connection without a task switch per message.

The per-frame path writes a lot of small messages (a caller frame to the Realtime service every
20 ms; a `media`, sometimes with a `mark`, to Twilio every tick). Awaiting `connection.send()` for each
costs a queue hand-off, a task wake-up and a socket write per message. While the connection is open
and its write buffer is nearly empty (the peer keeps up), messages are framed with the connection's
own Sans-I/O protocol and written at once — a tick's batch in one socket write. Otherwise (not
connected yet, closing, or the peer is slow) they wait in order in a queue that a writer task drains
with the awaited, flow-controlled `send()`; while that queue holds anything, new messages join it, so
the order never changes.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

import structlog
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

log = structlog.get_logger("kolbridge.wswrite")
DIRECT_LIMIT = 64 * 1024  # bytes already buffered in the transport above which we go back to awaiting


class OrderedWriter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ws: Any = None
        self.queue: deque[bytes | None] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.direct_writes = 0
        self.queued_writes = 0

    def attach(self, ws: Any) -> None:
        """Start writing on `ws` (a websockets asyncio connection); what is queued goes first."""
        self.ws = ws
        self.task = asyncio.create_task(self._drain(), name=self.name)
        self.wake.set()

    def write(self, messages: Iterable[bytes]) -> None:
        batch = messages if isinstance(messages, (list, tuple)) else list(messages)
        ws = self.ws
        if ws is not None and not self.queue and self._open(ws):
            proto = ws.protocol
            framed = 0
            try:
                for message in batch:
                    proto.send_text(message)
                    framed += 1
            except Exception:  # noqa: BLE001 — closing under us: the awaited path below reports it
                log.debug("DIRECT_WRITE_FAILED", writer=self.name, framed=framed, exc_info=True)
            # What was framed is in the protocol's buffer and leaves with its next flush whatever we do:
            # flush it now and queue only the rest, so no message can go out twice.
            try:
                ws.transport.write(b"".join(proto.data_to_send()))
            except Exception:  # noqa: BLE001 — the transport is closing: those frames die with it
                log.debug("DIRECT_FLUSH_FAILED", writer=self.name, exc_info=True)
            if framed == len(batch):
                self.direct_writes += 1
                return
            batch = batch[framed:]
        self.queue.extend(batch)
        self.queued_writes += 1
        self.wake.set()

    def abandon(self) -> list[bytes]:
        """The connection is gone: stop, and hand back what was queued and never written, in order."""
        pending = [m for m in self.queue if m is not None]
        self.queue.clear()
        if self.task is not None:
            self.task.cancel()
        self.ws = None
        return pending

    def close(self) -> None:
        """No more messages: the writer task finishes what is queued, then stops."""
        self.queue.append(None)
        self.wake.set()

    async def finished(self, timeout: float) -> None:
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass

    @staticmethod
    def _open(ws: Any) -> bool:
        transport = ws.transport
        return bool(ws.protocol.state is State.OPEN and transport is not None and not transport.is_closing()
                    and transport.get_write_buffer_size() < DIRECT_LIMIT)

    async def _drain(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.queue:
                    message = self.queue.popleft()
                    if message is None:
                        return
                    await self.ws.send(message, text=True)
        except ConnectionClosed:
            pass
