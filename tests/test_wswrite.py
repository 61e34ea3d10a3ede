"""The direct write path may never send a message twice, even when framing fails part-way; what a stuck
peer never took is counted at the end of a call."""
from __future__ import annotations

import asyncio
import base64
from typing import Any

from websockets.protocol import State

from actors.wire_messages import RtAppend
from gateway.call import flush_or_count
from gateway.wire import encode_realtime
from gateway.wswrite import OrderedWriter


class FakeProtocol:
    def __init__(self, fail_at: int) -> None:
        self.state = State.OPEN
        self.fail_at = fail_at
        self.framed: list[bytes] = []
        self.buffer: list[bytes] = []
        self.calls = 0

    def send_text(self, message: bytes) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("closing under us")
        self.buffer.append(b"<" + message + b">")

    def data_to_send(self) -> list[bytes]:
        out, self.buffer = self.buffer, []
        return out


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class FakeConnection:
    def __init__(self, fail_at: int) -> None:
        self.protocol = FakeProtocol(fail_at)
        self.transport = FakeTransport()
        self.sent: list[bytes] = []

    async def send(self, message: bytes, text: bool = True) -> None:
        self.sent.append(message)


async def test_a_batch_that_fails_part_way_sends_each_message_exactly_once() -> None:
    ws: Any = FakeConnection(fail_at=3)
    writer = OrderedWriter("test")
    writer.ws = ws  # attached without its drain task: the queue is inspected directly
    batch = [b"m1", b"m2", b"m3", b"m4"]
    writer.write(batch)
    # m1, m2 were framed before the failure: flushed now, never queued again; m3, m4 wait in order
    assert ws.transport.written == b"<m1><m2>"
    assert list(writer.queue) == [b"m3", b"m4"]
    writer.write([b"m5"])  # the queue is not empty: later messages join it, order kept
    assert list(writer.queue) == [b"m3", b"m4", b"m5"] and ws.transport.written == b"<m1><m2>"


async def test_abandon_hands_back_what_was_never_written() -> None:
    writer = OrderedWriter("test")
    writer.write([b"a", b"b"])  # not attached yet: queued
    writer.close()
    assert writer.abandon() == [b"a", b"b"] and not writer.queue


class StuckConnection(FakeConnection):
    """A peer that stopped reading: the transport's buffer is full and an awaited send never completes."""

    def __init__(self) -> None:
        super().__init__(fail_at=0)
        self.transport.get_write_buffer_size = lambda: 1 << 20  # type: ignore[method-assign]

    async def send(self, message: bytes, text: bool = True) -> None:
        await asyncio.Event().wait()


async def test_the_caller_frames_a_stuck_service_never_took_are_counted_at_the_end() -> None:
    """The end of a call (gateway/call.py): what the Realtime writer still holds gets `timeout` to leave,
    then is abandoned — and counted in caller frames (frames_unsent_at_end), never dropped silently."""
    writer = OrderedWriter("rt-out-test")
    writer.attach(StuckConnection())
    frames = [bytes([n]) * 160 for n in range(5)]
    writer.write([encode_realtime(RtAppend(base64.b64encode(frames[0] + frames[1]).decode()))])  # stuck in send
    writer.write([encode_realtime(RtAppend(base64.b64encode(frames[2] + frames[3]).decode())),
                  encode_realtime(RtAppend(base64.b64encode(frames[4]).decode()))])
    writer.close()
    await asyncio.sleep(0)  # the drain task takes the first append into its (stuck) send
    assert await flush_or_count(writer, 0.05) == 3  # the two appends still queued: 2 + 1 frames
    assert writer.ws is None and not writer.queue


async def test_nothing_is_counted_when_the_service_took_everything() -> None:
    writer = OrderedWriter("rt-out-test")
    ws: Any = FakeConnection(fail_at=0)
    writer.attach(ws)
    writer.write([encode_realtime(RtAppend(base64.b64encode(bytes(320)).decode()))])
    writer.close()
    assert await flush_or_count(writer, 1.0) == 0
