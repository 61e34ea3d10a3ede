"""The openai SDK's private parts the bridge relies on, pinned (pyproject: openai>=3.57,<3.58): if an
upgrade changes them, this fails loudly instead of calls failing at run time."""
from __future__ import annotations

import inspect

import openai
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from gateway.call import realtime_socket


def test_sdk_version_is_the_tested_range() -> None:
    major, minor = (int(p) for p in openai.__version__.split(".")[:2])
    assert (major, minor) == (3, 57), openai.__version__


async def test_a_real_sdk_connection_exposes_its_websockets_connection() -> None:
    from openai import AsyncOpenAI
    from websockets.asyncio.client import ClientConnection

    from sim.fake_realtime import FakeRealtime

    fake = await FakeRealtime().start()
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=fake.url)
    try:
        conn = await client.realtime.connect(model="gpt-realtime").enter()
        raw = realtime_socket(conn)  # the bridge writes pre-encoded events on it (gateway/wswrite.py)
        assert isinstance(raw, ClientConnection) and raw.protocol is not None and raw.transport is not None
        assert b"session.created" in await conn.recv_bytes()
        await conn.close()
    finally:
        await client.close()
        await fake.stop()


def test_recv_bytes_reads_the_raw_connection_without_reconnecting() -> None:
    assert inspect.iscoroutinefunction(AsyncRealtimeConnection.recv_bytes)
    assert "_connection.recv(decode=False)" in inspect.getsource(AsyncRealtimeConnection.recv_bytes)

    class Conn:
        class _connection:  # noqa: N801 — the shape the SDK has
            protocol = object()
    assert realtime_socket(Conn()) is Conn._connection
    assert realtime_socket(object()) is None
