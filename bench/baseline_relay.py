"""A bare asyncio relay in the shape of Twilio's own Python sample, for comparison only.

Every Realtime audio delta is written to Twilio as it arrives (whole deltas, no pacing, no framing),
caller audio is forwarded with json.loads/json.dumps, a completed transcript gets a response.create,
and there is no barge-in logic, no actors, no metrics. Not part of the product.

`--paced`: the same relay with the simplest pacer one would write — the deltas cut into 160-byte
frames, and per call a task that sends one frame and sleeps to the next absolute 20 ms deadline (no
lead, no jitter buffer). It measures what an asyncio pacer's timing can be on this box under the same
load generator: the floor under the caller-side gap figures.

    python -m bench.baseline_relay --port 8090 --realtime ws://127.0.0.1:9100/v1 [--paced]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
from collections import deque

import websockets
from websockets.asyncio.server import ServerConnection, serve


def session_update() -> dict[str, object]:
    return {"type": "session.update", "session": {
        "type": "realtime", "instructions": "You are a helpful phone agent.", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcmu"},
                            "transcription": {"model": "gpt-4o-transcribe", "language": "he"},
                            "turn_detection": {"type": "server_vad", "create_response": False}},
                  "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}}}}


FRAME = 160


async def paced_sender(twilio: ServerConnection, frames: deque[bytes], wake: asyncio.Event, sid: list[str]) -> None:
    """One frame, then sleep to the next absolute 20 ms deadline; idle until frames arrive again."""
    loop = asyncio.get_running_loop()
    next_at = -1.0
    while True:
        if not frames:
            next_at = -1.0
            wake.clear()
            await wake.wait()
            continue
        now = loop.time()
        if next_at < 0 or now - next_at > 0.02:  # a new run, or a whole frame late: restart the grid
            next_at = now
        payload = base64.b64encode(frames.popleft()).decode("ascii")
        await twilio.send(json.dumps({"event": "media", "streamSid": sid[0], "media": {"payload": payload}}))
        next_at += 0.02
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def relay(twilio: ServerConnection, realtime_url: str, paced: bool = False) -> None:
    sid = [""]  # the stream's sid, shared with the paced sender
    frames: deque[bytes] = deque()
    carry = bytearray()
    wake = asyncio.Event()
    sender = asyncio.create_task(paced_sender(twilio, frames, wake, sid)) if paced else None
    async with websockets.connect(f"{realtime_url}/realtime?model=gpt-realtime", max_size=None,
                                  compression=None) as openai_ws:
        await openai_ws.send(json.dumps(session_update()))
        await openai_ws.send(json.dumps({"type": "response.create",
                                         "response": {"instructions": "Greet the caller."}}))

        async def from_twilio() -> None:
            async for raw in twilio:
                data = json.loads(raw)
                if data["event"] == "media":
                    await openai_ws.send(json.dumps({"type": "input_audio_buffer.append",
                                                     "audio": data["media"]["payload"]}))
                elif data["event"] == "start":
                    sid[0] = data["start"]["streamSid"]
                elif data["event"] == "stop":
                    break
            await openai_ws.close()

        async def from_openai() -> None:
            async for raw in openai_ws:
                event = json.loads(raw)
                if event["type"] == "response.output_audio.delta" and sid[0] and paced:
                    carry.extend(base64.b64decode(event["delta"]))
                    whole = len(carry) - len(carry) % FRAME
                    frames.extend(bytes(carry[i:i + FRAME]) for i in range(0, whole, FRAME))
                    del carry[:whole]
                    wake.set()
                elif event["type"] == "response.output_audio.delta" and sid[0]:
                    await twilio.send(json.dumps({"event": "media", "streamSid": sid[0],
                                                  "media": {"payload": event["delta"]}}))
                elif event["type"] == "conversation.item.input_audio_transcription.completed":
                    await openai_ws.send(json.dumps({"type": "response.create"}))

        await asyncio.gather(from_twilio(), from_openai(), return_exceptions=True)
    if sender is not None:
        sender.cancel()


async def amain(port: int, realtime_url: str, paced: bool) -> None:
    async def handler(ws: ServerConnection) -> None:
        await relay(ws, realtime_url, paced)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, "127.0.0.1", port, max_size=None, compression=None, ping_interval=None):
        print(f"baseline relay on {port}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--realtime", default="ws://127.0.0.1:9100/v1")
    parser.add_argument("--paced", action="store_true", help="frames on a 20 ms clock (see the module docstring)")
    args = parser.parse_args()
    asyncio.run(amain(args.port, args.realtime, args.paced))


if __name__ == "__main__":
    main()
