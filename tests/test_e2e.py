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

from actors.cores.ulaw import gain_table
from gateway.cli import main
from gateway.cli.demo import DEMO_BUSINESS, run_demo_call
from gateway.config import FileConfig
from sim.audio import FRAME_BYTES, clip_text
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import EmulatedCall, Step
from storage.businesses import parse_business, upsert_business
from storage.calls import get_call, get_utterances
from storage.db import make_engine, session_factory
from tests.conftest import VIRTUAL_CLOCK
from tests.sdk_validate import validate_client_event
from tests.stack import running_stack

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK


def padded(audio: bytes) -> bytes:
    return audio + b"\xff" * (-len(audio) % FRAME_BYTES)


async def test_a_whole_demo_call(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo call: greeting, question, long answer with a filler over it (ignored) and a real "לא"
    over it (cut), a filler while the AI is silent (no answer), a lone "לא" (answered), a request for a
    person (the handoff sentence plays to its end, then the call is transferred)."""
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
    assert report.waits_timed_out == 0
    # caller audio reaches the service byte for byte, every frame
    assert bytes(conn.appended) == bytes(report.caller_audio)
    assert kinds.count("input_audio_buffer.append") == (report.frames_sent + 1) // 2  # [realtime] append_ms = 40
    # six responses: the long answer was cut mid-generation; the preemptive answer started when the
    # lone filler stopped was cancelled, its held audio dropped and its item deleted
    assert [r["status"] for r in conn.responses] == [
        "completed", "cancelled", "completed", "cancelled", "completed", "completed"]
    assert kinds.count("response.create") == 6 and kinds.count("response.cancel") == 2
    assert kinds.count("conversation.item.truncate") == 1 and len(report.clears) == 1
    deleted = [e["item_id"] for _, e in conn.events if e["type"] == "conversation.item.delete"]
    assert len(deleted) == 3 and conn.responses[3]["item_id"] in deleted  # 2 filler items + the discarded answer
    # AI audio: in order, whole frames, never repeated or mixed; ducked frames are the same frames, quieter
    duck = gain_table(-12.0)
    expected = [padded(bytes(r["audio"])) for r in conn.responses]
    received = bytes(report.received_audio)
    played = [0, 2, 4, 5]  # response 1 was cut, response 3 (the answer to a filler) never played
    cut_frames = (len(received) - sum(len(expected[i]) for i in played)) // FRAME_BYTES
    stream = expected[0] + expected[1][:cut_frames * FRAME_BYTES] + b"".join(expected[i] for i in played[1:])
    assert len(stream) == len(received)
    ducked = 0
    for k in range(0, len(stream), FRAME_BYTES):
        want, got = stream[k:k + FRAME_BYTES], received[k:k + FRAME_BYTES]
        if got != want:
            assert got == want.translate(duck), f"frame {k // FRAME_BYTES} is neither the sent frame nor it ducked"
            ducked += 1
    assert ducked > 0 and report.underruns == 0 and report.odd_sized_payloads == 0
    # the truncate matches what the caller's phone played of the cut item (within 40 ms)
    truncate = next(e for _, e in conn.events if e["type"] == "conversation.item.truncate")
    played_ms = report.turns[1][2] * 20
    assert truncate["item_id"] == conn.responses[1]["item_id"]
    assert abs(truncate["audio_end_ms"] - played_ms) <= 40, (truncate["audio_end_ms"], played_ms)
    # the filler over the AI cut nothing: no clear, cancel or truncate, and the AI kept playing
    filler_at, no_at = report.said_at["filler over the AI"][0], report.said_at["לא over the AI"][0]
    t0 = report.t0
    assert not [e for t, e in conn.events if filler_at <= t - t0 < no_at
                and e["type"] in ("response.cancel", "conversation.item.truncate")]
    assert not [c for c in report.clears if filler_at <= c < no_at]
    assert report.turns[1][0] < filler_at and report.turns[1][1] > no_at  # one unbroken AI turn
    # the real "לא" cut it
    assert report.clears[0] > no_at
    # the greeting was requested once, and played once, first
    greetings = [r for r in conn.responses if r["instructions"]]
    assert len(greetings) == 1 and "שלום, הגעתם למוסך הדגמה" in greetings[0]["instructions"]
    assert report.turns[0][2] == len(expected[0]) // FRAME_BYTES
    # the call ended cleanly with its metrics, logged and stored
    metrics_lines = [e for e in logs if e["event"] == "CALL_METRICS"]
    assert len(metrics_lines) == 1 and metrics_lines[0]["log_level"] == "info"
    m = app.summaries[0]["metrics"]
    assert m["frames_in"] == report.frames_sent == m["frames_forwarded"] and m["frames_dropped"] == 0
    assert (m["stt_utterances"], m["filler_only"], m["short"]) == (6, 2, 3)
    assert (m["barge_in_candidates"], m["barge_in_events"], m["barge_in_rejected"]) == (2, 1, 1)
    assert m["frames_sent"] == len(received) // FRAME_BYTES
    assert sum(1 for e in logs if e["event"] == "AUDIO_TX_LOOP started") == 1
    assert sum(1 for e in logs if e["event"] == "AUDIO_TX_LOOP exiting") == 1
    assert any(e["event"] == "[GREETING] Barge-in now ENABLED for rest of call" for e in logs)
    # and the call record is in the database
    db = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    try:
        row = await get_call(session_factory(db), report.call_sid)
        # the caller asked for a person: the handoff sentence played, then the REST redirect to the human line
        assert row is not None and row.end_reason == "transferred" and row.business_id == "demo-garage"
        assert row.fallback == "transfer:rest" and "+97235550999" in row.after_twiml and row.transfer_summary
        assert row.metrics["frames_in"] == report.frames_sent and row.metrics["barge_in_events"] == 1
        assert row.series["truncate_audio_end_ms"] == [truncate["audio_end_ms"]]
        assert set(row.prompt_hashes) == {"core_role", "telephony", "behaviour", "business", "caller_language"}
        utterances = await get_utterances(session_factory(db), report.call_sid)
    finally:
        await db.dispose()
    caller = [(u.text, u.classification, u.interrupted) for u in utterances if u.role == "caller"]
    assert [c[1] for c in caller] == ["turn", "filler", "turn", "filler", "turn", "turn"]
    assert caller[2] == ("לא", "turn", True) and caller[4] == ("לא", "turn", False)
    assert all(u.start_ms >= 0 and u.end_ms > u.start_ms for u in utterances if u.role == "caller")
    assistant = [u for u in utterances if u.role == "assistant"]
    assert len(assistant) == 5 and "שלום, הגעתם למוסך הדגמה" in assistant[0].text
    cut = assistant[1]  # the long answer, recorded as far as the caller heard it
    full = clip_text("long_answer")
    assert cut.interrupted and cut.heard_ms == truncate["audio_end_ms"]
    assert cut.text and full.startswith(cut.text) and len(cut.text) < len(full)
    assert not any(u.interrupted for u in assistant[2:])
    assert [u.seq for u in utterances] == sorted(u.seq for u in utterances)
    # the record is readable from the command line
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    assert await asyncio.to_thread(main, ["calls", "show", report.call_sid]) == 0
    shown = capsys.readouterr().out
    assert "interrupted" in shown and "[filler]" in shown and "barge_in_events=1" in shown
    assert await asyncio.to_thread(main, ["calls", "history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["call_sid"] == report.call_sid


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
        assert "<Connect action=\"http://127.0.0.1/stream-ended\"><Stream url=\"ws://127.0.0.1/media-stream\">" in body
        assert '<Parameter name="business_id" value="demo-garage" />' in body
        form = b"CallSid=CA124&To=%2B15550000000"
        status, body = await http(stack.port, b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                  + str(len(form)).encode() + b"\r\n\r\n" + form)
        assert status == 200 and "<Hangup />" in body and "<Say>" in body
        status, body = await http(stack.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and json.loads(body)["status"] == "ok"


async def twilio_start(ws: object, business_id: str, call_sid: str) -> None:
    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {  # type: ignore[attr-defined]
        "streamSid": "MZ1", "callSid": call_sid, "customParameters": {"business_id": business_id},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))


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


async def test_reimporting_a_business_changes_the_next_call(tmp_path: Path) -> None:
    """Greeting, language and vocabulary come from the business row: a re-import changes the next call."""
    steps = [Step("wait_turns", 1), Step("hangup")]
    async with running_stack(tmp_path, script=FakeScript(responses=[(b"\xff" * 4000, "")])) as stack:
        first = EmulatedCall(stack.stream_url, "demo-garage", "CA" + "1" * 32, steps)
        await asyncio.wait_for(first.run(), 30)
        changed = (DEMO_BUSINESS.replace('greeting = "שלום, הגעתם למוסך הדגמה. איך אפשר לעזור?"',
                                         'greeting = "Hello, you reached the demo garage."')
                   .replace('language = "he"', 'language = "en"')
                   .replace('languages = ["he", "ar", "ru", "en"]', 'languages = ["en", "ar", "ru", "he"]')
                   .replace('vocabulary = ["טסט"', 'vocabulary = ["MOT test"'))
        await upsert_business(stack.app.sessions, parse_business(changed))  # as `business import` would
        second = EmulatedCall(stack.stream_url, "demo-garage", "CA" + "2" * 32, steps)
        await asyncio.wait_for(second.run(), 30)
        for _ in range(100):
            if len(stack.app.summaries) == 2:
                break
            await asyncio.sleep(0.02)
    sessions = [conn.of_type("session.update")[0]["session"] for conn in stack.fake.connections]
    greetings = [conn.responses[0]["instructions"] for conn in stack.fake.connections]
    assert "שלום, הגעתם למוסך הדגמה" in greetings[0] and "Hello, you reached the demo garage." in greetings[1]
    # the garage takes four caller languages either way: detected per utterance until one is decided
    assert [s["audio"]["input"]["transcription"].get("language") for s in sessions] == [None, None]
    assert "טסט" in sessions[0]["audio"]["input"]["transcription"]["prompt"]
    assert "MOT test" in sessions[1]["audio"]["input"]["transcription"]["prompt"]
    assert sessions[0]["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert "Open the call with exactly these words" in greetings[1]  # the English layer files
    for conn in stack.fake.connections:
        for _, event in conn.events:
            validate_client_event(event)


async def test_admin_endpoint_shows_live_calls(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 1.0), Step("hangup")]
    async with running_stack(tmp_path, script=FakeScript(responses=[(b"\xff" * 8000, "")]),
                             env={"KOLBRIDGE_ADMIN_TOKEN": "adm"}) as stack:
        call = asyncio.create_task(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "7" * 32, steps).run())
        for _ in range(100):
            if stack.app.calls:
                break
            await asyncio.sleep(0.02)
        status, _ = await http(stack.port, b"GET /admin/calls HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 401
        status, body = await http(stack.port, b"GET /admin/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer adm\r\n\r\n")
        assert status == 200
        calls = json.loads(body)["calls"]
        assert [(c["call_sid"], c["business_id"], c["phase"]) for c in calls] == [("CA" + "7" * 32, "demo-garage", "active")]
        await asyncio.wait_for(call, 30)


def voice_post(call_sid: str, to: str = "%2B97235550123", signature: str = "") -> bytes:
    form = f"CallSid={call_sid}&From=%2B972501234567&To={to}".encode()
    extra = f"X-Twilio-Signature: {signature}\r\n".encode() if signature else b""
    return (b"POST /voice HTTP/1.1\r\nHost: bridge.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + extra + b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)


async def test_voice_prewarms_the_realtime_session(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("hangup")]
    business = DEMO_BUSINESS + '\n[business.realtime]\nmodel = "gpt-realtime-2025-08-28"\n'
    async with running_stack(tmp_path, script=FakeScript(responses=[(b"\xff" * 4000, "")]),
                             business_toml=business) as stack:
        stack.app.prewarmer.ttl_s = 3.0
        sid = "CA" + "5" * 32
        with structlog.testing.capture_logs() as logs:
            status, _ = await http(stack.port, voice_post(sid))
            await asyncio.sleep(0.3)  # the connection opens while Twilio would be fetching the TwiML
            assert status == 200 and len(stack.fake.connections) == 1
            await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", sid, steps).run(), 30)
        assert len(stack.fake.connections) == 1  # the call used the pre-opened connection
        assert stack.fake.connections[0].path.endswith("model=gpt-realtime-2025-08-28")  # the business's model
        assert any(e["event"] == "REALTIME_PREWARMED" for e in logs)
        stack.app.prewarmer.ttl_s = 0.2
        status, _ = await http(stack.port, voice_post("CA" + "6" * 32))
        await asyncio.sleep(0.8)
        assert stack.app.prewarmer.expired == 1 and stack.fake.connections[1].closed  # unclaimed: closed


async def test_signed_routing_refuses_a_business_voice_did_not_route(tmp_path: Path) -> None:
    token, public = "tok", "https://bridge.example.com"
    validator = RequestValidator(token)
    headers = {"X-Twilio-Signature": validator.compute_signature("wss://bridge.example.com/media-stream", {})}
    steps = [Step("wait_turns", 1), Step("hangup")]
    async with running_stack(tmp_path, script=FakeScript(responses=[(b"\xff" * 4000, "")]),
                             env={"TWILIO_AUTH_TOKEN": token, "KOLBRIDGE_PUBLIC_URL": public}) as stack:
        sid = "CA" + "8" * 32
        form = {"CallSid": sid, "From": "+972501234567", "To": "+97235550123"}
        signature = validator.compute_signature("https://bridge.example.com/voice", form)
        status, twiml = await http(stack.port, voice_post(sid, signature=signature))
        assert status == 200
        route_sig = twiml.split('name="route_sig" value="')[1].split('"')[0]
        action_base = twiml.split('name="action_base" value="')[1].split('"')[0]
        assert action_base == public
        ok = await EmulatedCall(stack.stream_url, "demo-garage", sid, steps, headers=headers,
                                custom={"route_sig": route_sig, "action_base": action_base}).run()
        assert ok.frames_received > 0
        # the base of Twilio's callbacks (a transfer's Dial action) is signed too: another one is refused
        elsewhere = await EmulatedCall(stack.stream_url, "demo-garage", sid, steps, headers=headers, wait_timeout_s=2,
                                       custom={"route_sig": route_sig, "action_base": "https://evil.example"}).run()
        assert elsewhere.close_code == 1008 and elsewhere.frames_received == 0
        forged = await EmulatedCall(stack.stream_url, "demo-garage", "CA" + "9" * 32, steps, headers=headers,
                                    custom={"route_sig": route_sig}, wait_timeout_s=2).run()
        assert forged.close_code == 1008 and forged.frames_received == 0
        status, _ = await http(stack.port, voice_post(sid, signature="bad"))
        assert status == 403
