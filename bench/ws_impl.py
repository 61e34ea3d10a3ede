"""What one websocket message costs this box's CPU: `websockets` (what the worker runs) against picows.

    python -m bench.ws_impl [--conns 100] [--seconds 10] [--repeat 3]

Issue 22 names a faster websocket implementation as a candidate to measure. Both sides of a call are
measured as the worker meets them, each in a process of its own whose CPU (user + system, from
/proc) is divided by the messages it handled:

- **server** (the Twilio side): `--conns` clients each send a Twilio `media` message every 20 ms; the
  measured server decodes each message as JSON and answers each with a `media` message of its own
  (the pacer's frame), written at once as the worker's OrderedWriter does.
- **client** (the Realtime side): the measured process holds `--conns` client connections and sends an
  `input_audio_buffer.append` (two 20 ms frames) every 40 ms on each — masked, as a client must — and
  receives an audio delta for each from the peer.

The peer of the measured process is always picows (the cheapest), in its own process, so the figure is
the measured implementation's own cost. A figure is µs of CPU per message handled (one in + one out
counts as two), median (min–max) over the runs.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

MEDIA = json.dumps({"event": "media", "streamSid": "MZ" + "0" * 32, "sequenceNumber": "1",
                    "media": {"track": "inbound", "chunk": "1", "timestamp": "20",
                              "payload": base64.b64encode(bytes(160)).decode()}})
APPEND = json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(320)).decode()})
DELTA = json.dumps({"type": "response.output_audio.delta", "response_id": "resp_1", "item_id": "item_1",
                    "output_index": 0, "content_index": 0, "delta": base64.b64encode(bytes(320)).decode()})
TICKS = {"server": 0.020, "client": 0.040}


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the measured process
async def serve_websockets(port: int, counts: list[int]) -> Any:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws: Any) -> None:
        try:
            async for raw in ws:
                json.loads(raw)
                ws.protocol.send_text(MEDIA.encode())
                ws.transport.write(b"".join(ws.protocol.data_to_send()))
                counts[0] += 2
        except ConnectionClosed:
            pass  # the peer's end of the run
    return await serve(handler, "127.0.0.1", port, compression=None)


async def serve_picows(port: int, counts: list[int]) -> Any:
    import picows

    reply = MEDIA.encode()

    class Echo(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                json.loads(frame.get_payload_as_bytes())
                transport.send(picows.WSMsgType.TEXT, reply)
                counts[0] += 2
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.disconnect()
    return await picows.ws_create_server(lambda request: Echo(), "127.0.0.1", port)


async def clients_websockets(url: str, conns: int, seconds: float, counts: list[int]) -> None:
    from websockets.asyncio.client import connect

    async def one(index: int) -> None:
        async with connect(url, compression=None, max_size=2**20) as ws:
            async def reader() -> None:
                async for raw in ws:
                    json.loads(raw)
                    counts[0] += 1
            task = asyncio.create_task(reader())
            await paced(lambda: send_direct(ws), index, conns, seconds, TICKS["client"], counts)
            task.cancel()

    def send_direct(ws: Any) -> None:
        ws.protocol.send_text(APPEND.encode())
        ws.transport.write(b"".join(ws.protocol.data_to_send()))
    await asyncio.gather(*(one(i) for i in range(conns)))


async def clients_picows(url: str, conns: int, seconds: float, counts: list[int]) -> None:
    import picows

    class Reader(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                json.loads(frame.get_payload_as_bytes())
                counts[0] += 1

    async def one(index: int) -> None:
        transport, _ = await picows.ws_connect(Reader, url)
        payload = APPEND.encode()
        await paced(lambda: transport.send(picows.WSMsgType.TEXT, payload), index, conns, seconds,
                    TICKS["client"], counts)
        transport.disconnect()
    await asyncio.gather(*(one(i) for i in range(conns)))


async def paced(send: Any, index: int, conns: int, seconds: float, every: float, counts: list[int]) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time() + every * index / conns
    end = start + seconds
    due = start
    while due < end:
        await asyncio.sleep(max(0.0, due - loop.time()))
        send()
        counts[0] += 1
        due += every


# ---------------------------------------------------------------- the peer (always picows)
async def peer_clients(url: str, conns: int, seconds: float) -> None:
    import picows

    class Quiet(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            pass
    links = [await picows.ws_connect(Quiet, url) for _ in range(conns)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    payload = MEDIA.encode()
    sends = [lambda t=t: t.send(picows.WSMsgType.TEXT, payload) for t, _ in links]
    await asyncio.gather(*(paced(send, i, conns, seconds, TICKS["server"], [0]) for i, send in enumerate(sends)))
    for transport, _ in links:
        transport.disconnect()


async def peer_server(port: int) -> None:
    import picows

    reply = DELTA.encode()

    class Answer(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                transport.send(picows.WSMsgType.TEXT, reply)
    server = await picows.ws_create_server(lambda request: Answer(), "127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()
    server.close()


# ---------------------------------------------------------------- one measured run
async def measured(role: str, impl: str, port: int, conns: int, seconds: float) -> None:
    """The measured process: its own CPU (process_time: every thread, user + system) and messages
    between the parent's "go" and the end of the load."""
    loop = asyncio.get_running_loop()
    counts = [0]
    server = None
    if role == "server":
        server = await (serve_websockets if impl == "websockets" else serve_picows)(port, counts)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    counts[0], cpu0 = 0, time.process_time()
    if role == "server":
        await loop.run_in_executor(None, sys.stdin.readline)  # "stop": the load is over
    else:
        clients = clients_websockets if impl == "websockets" else clients_picows
        await clients(f"ws://127.0.0.1:{port}/", conns, seconds, counts)
    cpu = time.process_time() - cpu0
    print(f"{cpu} {counts[0]}", flush=True)
    if server is not None:
        server.close()


def one_run(role: str, impl: str, conns: int, seconds: float, port: int) -> tuple[float, int]:
    """µs of the measured process's CPU per message, and the messages it handled."""
    me = [sys.executable, "-m", "bench.ws_impl"]
    target = subprocess.Popen([*me, "--child", f"{role}:{impl}:{port}", "--conns", str(conns), "--seconds", str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert target.stdin is not None and target.stdout is not None
    target.stdout.readline()
    peer_role = "peer-clients" if role == "server" else "peer-server"
    peer = subprocess.Popen([*me, "--child", f"{peer_role}::{port}", "--conns", str(conns), "--seconds", str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert peer.stdin is not None and peer.stdout is not None
    peer.stdout.readline()  # connected (clients) or listening (server): set-up is not measured
    target.stdin.write("go\n")
    target.stdin.flush()
    if role == "server":
        peer.stdin.write("go\n")
        peer.stdin.flush()
        peer.wait()
        target.stdin.write("stop\n")
        target.stdin.flush()
    cpu, messages = target.stdout.readline().split()
    target.wait()
    if role == "client":
        peer.terminate()
        peer.wait()
    return float(cpu) / max(1, int(messages)) * 1e6, int(messages)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        role, impl, port = args.child.split(":")
        if role == "peer-clients":
            asyncio.run(peer_clients(f"ws://127.0.0.1:{port}/", args.conns, args.seconds))
        elif role == "peer-server":
            asyncio.run(peer_server(int(port)))
        else:
            asyncio.run(measured(role, impl, int(port), args.conns, args.seconds))
        return
    print(f"{args.conns} connections, {args.seconds:.0f} s a run, {args.repeat} runs; µs CPU per message")
    for role in ("server", "client"):
        for impl in ("websockets", "picows"):
            figures = [one_run(role, impl, args.conns, args.seconds, free_port())[0] for _ in range(args.repeat)]
            print(f"{role:6} {impl:10} {statistics.median(figures):6.2f} ({min(figures):.2f}–{max(figures):.2f})",
                  flush=True)


if __name__ == "__main__":
    main()
