"""CPU of forwarding caller audio to the Realtime service, per caller frame, by [realtime] append_ms.

    python -m bench.append_path [--frames 50000] [--repeat 5]

What the server does for each caller frame after TwilioRx (the actor hop is the same either way): the
append event encoded (wire.encode_realtime), framed and masked as a client frame and written to a real
websockets connection on 127.0.0.1 (gateway/wswrite.OrderedWriter, as a call does), plus — when frames
are batched — the frames' bytes joined and encoded once. The receiving server runs in a child process;
only this process's CPU is counted. Best of --repeat, in µs per caller frame and ms per call-second
(50 frames).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from actors.wire_messages import RtAppend
from bench.calls import free_port
from gateway.wire import encode_realtime
from gateway.wswrite import OrderedWriter


def discard_server(port: int, ready: Any) -> None:
    async def handler(ws: Any) -> None:
        async for _ in ws:
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, max_size=None):
            ready.set()
            await asyncio.Future()
    asyncio.run(main())


async def send_all(port: int, frames: list[bytes], per_append: int) -> float:
    payloads = [base64.b64encode(f).decode("ascii") for f in frames]  # as Twilio sends them
    async with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
        writer = OrderedWriter("bench")
        writer.attach(ws)
        await asyncio.sleep(0.1)
        start = time.process_time()
        pending: list[bytes] = []
        for index, raw in enumerate(frames):
            if per_append == 1:
                writer.write((encode_realtime(RtAppend(payloads[index])),))
            else:
                pending.append(raw)
                if len(pending) == per_append:
                    writer.write((encode_realtime(RtAppend(base64.b64encode(b"".join(pending)).decode("ascii"))),))
                    pending.clear()
            if index % 50 == 49:  # a tick's worth of calls: let the loop run
                await asyncio.sleep(0)
        while writer.queue:
            await asyncio.sleep(0.001)
        spent = time.process_time() - start
        writer.close()
        await writer.finished(5)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=discard_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    frames = [os.urandom(160) for _ in range(args.frames)]
    print(f"{args.frames} caller frames to a websockets server on 127.0.0.1, best of {args.repeat}:")
    print("| append_ms | frames per append | µs per caller frame | ms per call-second |\n|---|---|---|---|")
    for per_append in (1, 2, 3, 5):
        best = min(asyncio.run(send_all(port, frames, per_append)) for _ in range(args.repeat))
        per_frame = best / args.frames * 1e6
        print(f"| {20 * per_append} | {per_append} | {per_frame:.2f} | {per_frame * 50 / 1000:.3f} |")
    server.terminate()


if __name__ == "__main__":
    main()
