"""A bare asyncio relay in the shape of Twilio's own Python sample, for comparison only.

Every Realtime audio delta is written to Twilio as it arrives (whole deltas, no pacing, no framing),
caller audio is forwarded with json.loads/json.dumps, a completed transcript gets a response.create,
and there is no barge-in logic, no actors, no metrics. Not part of the product.

    python -m bench.baseline_relay --port 8090 --realtime ws://127.0.0.1:9100/v1
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal

import websockets
from websockets.asyncio.server import ServerConnection, serve


def session_update() -> dict[str, object]:
    return {"type": "session.update", "session": {
        "type": "realtime", "instructions": "You are a helpful phone agent.", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcmu"},
                            "transcription": {"model": "gpt-4o-transcribe", "language": "he"},
                            "turn_detection": {"type": "server_vad", "create_response": False}},
                  "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}}}}


async def relay(twilio: ServerConnection, realtime_url: str) -> None:
    stream_sid = ""
    async with websockets.connect(f"{realtime_url}/realtime?model=gpt-realtime", max_size=None,
                                  compression=None) as openai_ws:
        await openai_ws.send(json.dumps(session_update()))
        await openai_ws.send(json.dumps({"type": "response.create",
                                         "response": {"instructions": "Greet the caller."}}))

        async def from_twilio() -> None:
            nonlocal stream_sid
            async for raw in twilio:
                data = json.loads(raw)
                if data["event"] == "media":
                    await openai_ws.send(json.dumps({"type": "input_audio_buffer.append",
                                                     "audio": data["media"]["payload"]}))
                elif data["event"] == "start":
                    stream_sid = data["start"]["streamSid"]
                elif data["event"] == "stop":
                    break
            await openai_ws.close()

        async def from_openai() -> None:
            async for raw in openai_ws:
                event = json.loads(raw)
                if event["type"] == "response.output_audio.delta" and stream_sid:
                    await twilio.send(json.dumps({"event": "media", "streamSid": stream_sid,
                                                  "media": {"payload": event["delta"]}}))
                elif event["type"] == "conversation.item.input_audio_transcription.completed":
                    await openai_ws.send(json.dumps({"type": "response.create"}))

        await asyncio.gather(from_twilio(), from_openai(), return_exceptions=True)


async def amain(port: int, realtime_url: str) -> None:
    async def handler(ws: ServerConnection) -> None:
        await relay(ws, realtime_url)

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
    args = parser.parse_args()
    asyncio.run(amain(args.port, args.realtime))


if __name__ == "__main__":
    main()
