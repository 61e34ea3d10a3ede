"""End to end over real websockets on 127.0.0.1: gateway + fake Realtime service + Twilio emulator."""
from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
import structlog
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gateway.config import FileConfig
from gateway.demo import run_demo_call
from sim.audio import FRAME_BYTES
from storage.calls import get_call
from storage.db import make_engine, session_factory
from tests.sdk_validate import validate_client_event
from tests.stack import running_stack


def padded(audio: bytes) -> bytes:
    return audio + b"\xff" * (-len(audio) % FRAME_BYTES)


async def test_a_whole_demo_call(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        report, app, fake = await run_demo_call(FileConfig(), tmp_path)
    conn = fake.connections[0]
    # every client event is a valid GA Realtime event with no field the SDK does not know
    kinds = []
    for _, event in conn.events:
        validate_client_event(event)
        kinds.append(event["type"])
    assert kinds[0] == "session.update" and conn.session_before_audio is True
    assert not conn.errors_sent, conn.errors_sent
    # caller audio reaches the service byte for byte, every frame
    assert bytes(conn.appended) == bytes(report.caller_audio)
    assert kinds.count("input_audio_buffer.append") == report.frames_sent
    # AI audio: each response's audio, in order, whole frames, never repeated, never mixed
    expected = b"".join(padded(bytes(r["audio"])) for r in conn.responses)
    assert [r["status"] for r in conn.responses] == ["completed"] * 3
    assert bytes(report.received_audio) == expected
    assert bytes(report.played_audio) == expected
    assert report.underruns == 0 and report.waits_timed_out == 0
    # the greeting was requested once, and played once, first
    greetings = [r for r in conn.responses if r["instructions"]]
    assert len(greetings) == 1 and "שלום, הגעתם למוסך הדגמה" in greetings[0]["instructions"]
    assert report.turns[0][2] == len(padded(bytes(conn.responses[0]["audio"]))) // FRAME_BYTES
    # the call ended cleanly with its metrics, logged and stored
    metrics_lines = [e for e in logs if e["event"] == "CALL_METRICS"]
    assert len(metrics_lines) == 1 and metrics_lines[0]["log_level"] == "info"
    m = app.summaries[0]["metrics"]
    assert m["frames_in"] == report.frames_sent == m["frames_forwarded"] and m["frames_dropped"] == 0
    assert m["stt_utterances"] == 2 and m["frames_sent"] == len(expected) // FRAME_BYTES
    assert sum(1 for e in logs if e["event"] == "AUDIO_TX_LOOP started") == 1
    assert sum(1 for e in logs if e["event"] == "AUDIO_TX_LOOP exiting") == 1
    # and the call record is in the database
    db = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    try:
        row = await get_call(session_factory(db), report.call_sid)
        assert row is not None and row.end_reason == "twilio_stop" and row.business_id == "demo-garage"
        assert row.metrics["frames_in"] == report.frames_sent
        assert set(row.prompt_hashes) == {"core_role", "telephony", "behaviour", "business"}
    finally:
        await db.dispose()


async def test_stream_signature_is_checked_against_the_public_url(tmp_path: Path) -> None:
    env = {"TWILIO_AUTH_TOKEN": "secret-token", "KOLBRIDGE_PUBLIC_URL": "https://bridge.example.com"}
    async with running_stack(tmp_path, env=env) as stack:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(stack.stream_url):
                pass
        assert refused.value.response.status_code == 403
        wrong = RequestValidator("secret-token").compute_signature(stack.stream_url, {})  # the request's own URL
        with pytest.raises(InvalidStatus):
            async with connect(stack.stream_url, additional_headers={"X-Twilio-Signature": wrong}):
                pass
        good = RequestValidator("secret-token").compute_signature("wss://bridge.example.com/media-stream", {})
        async with connect(stack.stream_url, additional_headers={"X-Twilio-Signature": good}) as ws:
            await ws.send(json.dumps({"event": "connected"}))


async def http(port: int, request: bytes) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_voice_webhook_and_healthz(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        form = b"CallSid=CA123&From=%2B972501234567&To=%2B97235550123"
        status, body = await http(stack.port, b"POST /voice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                  b"application/x-www-form-urlencoded\r\nContent-Length: " + str(len(form)).encode()
                                  + b"\r\n\r\n" + form)
        assert status == 200
        assert "<Connect><Stream url=\"ws://127.0.0.1/media-stream\">" in body
        assert '<Parameter name="business_id" value="demo-garage" />' in body
        form = b"CallSid=CA124&To=%2B15550000000"
        status, body = await http(stack.port, b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                  + str(len(form)).encode() + b"\r\n\r\n" + form)
        assert status == 200 and "<Hangup />" in body and "<Say>" in body
        status, body = await http(stack.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and json.loads(body)["status"] == "ok"


async def twilio_start(ws: object, business_id: str, call_sid: str) -> None:
    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {  # type: ignore[attr-defined]
        "streamSid": "MZ1", "callSid": call_sid, "customParameters": {"business_id": business_id}}}))


async def test_malformed_twilio_json_is_counted_not_fatal(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        async with connect(stack.stream_url) as ws:
            await twilio_start(ws, "demo-garage", "CAbad")
            await ws.send("{not json")
            await ws.send(json.dumps({"event": "media", "media": {"payload": 7}}))
            for k in range(5):
                frame = base64.b64encode(b"\xff" * 160).decode()
                await ws.send(json.dumps({"event": "media", "sequenceNumber": str(k + 3),
                                          "media": {"chunk": str(k + 1), "payload": frame}}))
            await ws.send(json.dumps({"event": "stop"}))
            await asyncio.sleep(0.3)
        for _ in range(100):
            if stack.app.summaries:
                break
            await asyncio.sleep(0.02)
        m = stack.app.summaries[0]["metrics"]
        assert m["twilio_decode_errors"] == 2 and m["frames_in"] == 5 and stack.app.summaries[0]["reason"] == "twilio_stop"


async def test_unknown_business_closes_the_stream(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        async with connect(stack.stream_url) as ws:
            await twilio_start(ws, "no-such-business", "CAunknown")
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1008
        assert stack.app.engine.active_calls() == []
