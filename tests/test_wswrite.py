"""The direct write path may never send a message twice, even when framing fails part-way."""
from __future__ import annotations

from typing import Any

from websockets.protocol import State

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
