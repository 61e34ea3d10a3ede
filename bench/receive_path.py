"""CPU per received Twilio message on the server side of a websocket, two ways.

    python -m bench.receive_path [--calls 50] [--rounds 600] [--repeat 2]

`assembler`: as the stream endpoint reads today — websockets' asyncio connection queues each frame in
its assembler and the handler's `async for` wakes up for it. `inline`: a connection subclass handles
each complete text frame inside `data_received` (no queue, no task wake-up) — websockets' private
`process_event`, so not adopted without a pinned version and a loud test. Both decode the message with
gateway.wire.decode_twilio. `--calls` clients each send a media message every 4 ms; the server's
process CPU from the first message to the last, per message. The decision this informed is in
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import time
from typing import Any, Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from bench.calls import free_port
from gateway.wire import decode_twilio

MESSAGE = json.dumps({"event": "media", "sequenceNumber": "9", "streamSid": "MZ" + "a" * 32, "media": {
    "track": "inbound", "chunk": "4", "timestamp": "60", "payload": base64.b64encode(bytes(range(160))).decode()}})


class InlineConnection(ServerConnection):
    on_text: Callable[[bytes], None] | None = None

    def process_event(self, event: Frame) -> None:  # type: ignore[override]
        handler = self.on_text
        if handler is not None and event.opcode is Opcode.TEXT and event.fin:
            handler(bytes(event.data))
            return
        super().process_event(event)


def run_server(mode: str, port: int, total: int, results: Any) -> None:
    count, started = [0], [0.0]

    def received(raw: bytes | str) -> None:
        decode_twilio(raw, 0.0)
        count[0] += 1
        if count[0] == 1:
            started[0] = time.process_time()
        elif count[0] == total:
            results.put(time.process_time() - started[0])

    async def handler(ws: ServerConnection) -> None:
        if isinstance(ws, InlineConnection):
            ws.on_text = received
            await ws.wait_closed()
        else:
            async for raw in ws:
                received(raw)

    async def main() -> None:
        connection = InlineConnection if mode == "inline" else ServerConnection
        async with serve(handler, "127.0.0.1", port, create_connection=connection, compression=None, ping_interval=None):
            results.put("ready")
            await asyncio.Future()
    asyncio.run(main())


async def send(port: int, calls: int, rounds: int) -> None:
    conns = [await connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(calls)]
    await asyncio.sleep(0.3)
    for _ in range(rounds):
        for conn in conns:
            await conn.send(MESSAGE)
        await asyncio.sleep(0.004)
    await asyncio.sleep(1.0)
    for conn in conns:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    total = args.calls * args.rounds
    print(f"{total} media messages from {args.calls} websocket clients on 127.0.0.1; server CPU per message:")
    for mode in ["assembler", "inline"] * args.repeat:
        results: Any = multiprocessing.Queue()
        port = free_port()
        server = multiprocessing.Process(target=run_server, args=(mode, port, total, results), daemon=True)
        server.start()
        assert results.get(timeout=10) == "ready"
        asyncio.run(send(port, args.calls, args.rounds))
        print(f"  {mode}: {results.get(timeout=30) / total * 1e6:.2f} µs")
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
