"""Faults end to end over real websockets on 127.0.0.1: the fake Realtime service drops, expires,
refuses, hangs and rate-limits; a fake Twilio REST API takes the fallback. Each test checks what the
caller hears (the emulator's playout), what the operator sees (metrics, logs) and what is persisted."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog

from actors.settings import RealtimeSettings
from gateway.cli.demo import DEMO_BUSINESS
from gateway.config import FileConfig, ServerSettings
from sim.audio import FRAME_BYTES, clip_text, load_clip
from sim.fake_realtime import FakeConnection, FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from storage.calls import get_call, get_utterances
from tests.conftest import VIRTUAL_CLOCK
from tests.sdk_validate import validate_client_event
from tests.stack import running_stack

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK

CALL = "CA" + "f" * 32


def rest_env(rest: FakeTwilioRest) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_API_KEY": "SK" + "2" * 32, "TWILIO_API_SECRET": "secret",
            "KOLBRIDGE_TWILIO_API_URL": rest.url}


def _script(speed: float) -> FakeScript:
    def clip(name: str) -> tuple[bytes, str]:
        return load_clip(name), clip_text(name)

    return FakeScript(transcripts=[clip_text("question"), "לא", clip_text("goodbye")],
                      responses=[clip("greeting"), clip("answer")],
                      replies={clip_text("question"): clip("answer"), "לא": clip("alternative"),
                               clip_text("goodbye"): clip("goodbye")}, speed=speed)


async def wait_until(predicate: Any, timeout: float, step: float = 0.01) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return False


def kinds(conn: FakeConnection) -> list[str]:
    return [e["type"] for _, e in conn.events]


def appended_frames_are_a_suffix(conn: FakeConnection, report: CallReport) -> int:
    """Where in the caller's audio this connection's appended audio starts (asserts it is contiguous)."""
    got, sent = bytes(conn.appended), bytes(report.caller_audio)
    start = len(sent) - len(got)
    assert start >= 0 and start % FRAME_BYTES == 0 and sent[start:] == got, "restored session's audio is not a suffix"
    return start // FRAME_BYTES


async def ended(stack: Any) -> None:
    assert await wait_until(lambda: not stack.app.calls, 10)
    assert await stack.app.writes.drain(10)


async def test_a_dropped_socket_mid_answer_is_restored_and_the_next_question_answered(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("pause", 2.2), Step("say", load_clip("no"), "no"), Step("pause", 5.0), Step("hangup")]
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, _script(1.0)) as stack:
            fake = stack.fake
            call = EmulatedCall(stack.stream_url, "demo-garage", CALL, steps, wait_timeout_s=10)
            task = asyncio.create_task(call.run())
            # drop while the answer to the question is being generated and played
            assert await wait_until(lambda: bool(fake.connections) and len(fake.connections[0].responses) >= 2
                                    and len(fake.connections[0].responses[1]["audio"]) >= 8000, 15)
            dropped_at = asyncio.get_running_loop().time()
            fake.drop(0)
            report = await asyncio.wait_for(task, 60)
            await ended(stack)
            summary = stack.app.summaries[-1]
            row = await get_call(stack.app.sessions, CALL)
            utterances = await get_utterances(stack.app.sessions, CALL)
    assert len(fake.connections) == 2
    old, new = fake.connections
    # the restored session: session.update first, then the conversation so far as items, then the gap's audio
    new_kinds = kinds(new)
    assert new_kinds[0] == "session.update"
    for _, event in new.events:
        validate_client_event(event)
    items = [e["item"] for _, e in new.events if e["type"] == "conversation.item.create"]
    roles = [i["role"] for i in items]
    assert roles[:3] == ["assistant", "user", "assistant"], roles  # greeting, question, the cut answer
    assert items[1]["content"][0] == {"type": "input_text", "text": clip_text("question")}
    assert items[2]["content"][0]["type"] == "output_text" and items[2]["content"][0]["text"]
    first_append = new_kinds.index("input_audio_buffer.append")
    assert new_kinds[1:first_append] == ["conversation.item.create"] * (first_append - 1) and first_append >= 4
    # caller audio: everything after the drop reached the new session, in order, byte for byte
    start_frame = appended_frames_are_a_suffix(new, report)
    lost_in_flight = start_frame - len(old.appended) // FRAME_BYTES
    assert 0 <= lost_in_flight <= 3, lost_in_flight
    # the caller's "לא" (said 0.3 s after the drop, over the rest of the cut answer) was answered
    alternative = load_clip("alternative")
    answered = [r for r in new.responses if r["status"] != "cancelled" and r["audio"]
                and alternative.startswith(bytes(r["audio"]))]
    assert answered, [r["status"] for r in new.responses]
    answer_sent = next(t for t, kind, item in new.sent
                       if kind == "response.output_audio.delta" and item == answered[0]["item_id"])
    assert answer_sent - dropped_at < 3.0, answer_sent - dropped_at
    # what the caller heard: no underrun, whole frames only
    assert report.odd_sized_payloads == 0
    # operator: metrics, logs; persisted: the call's record with the reconnect and every utterance
    metrics = summary["metrics"]
    assert metrics["realtime_reconnects"] == 1 and metrics["answers_cut_by_drop"] == 1
    assert metrics["frames_replayed_gap"] >= 1 and metrics["frames_dropped_gap"] == 0
    assert summary["series"]["reconnect_gap_ms"][0] < 1500
    assert any(e["event"] == "REALTIME_LOST" for e in logs) and any(e["event"] == "REALTIME_RESTORED" for e in logs)
    assert row is not None and row.end_reason == "twilio_stop" and row.metrics["realtime_reconnects"] == 1
    said = [u.text for u in utterances if u.role == "caller"]
    assert clip_text("question") in said and "לא" in said
    # answer latency (end of the caller's speech → first answer audio sent): the "לא" spoken across the
    # drop vs the question answered before it, on the same call
    no_end = report.t0 + report.said_at["no"][1]
    question_end = report.t0 + report.said_at["question"][1]
    first_answer = old.responses[1]["item_id"]
    before = next(t for t, kind, item in old.sent if kind == "response.output_audio.delta" and item == first_answer)
    after_drop, baseline = answer_sent - no_end, before - question_end
    assert after_drop < baseline + 1.0, (after_drop, baseline)
    print(f"\nDROP: gap {summary['series']['reconnect_gap_ms'][0]} ms, frames replayed {metrics['frames_replayed_gap']}, "
          f"lost in flight {lost_in_flight}; 'לא' (begun 0.3 s after the drop) answered {answer_sent - dropped_at:.2f} s "
          f"after the drop = {after_drop:.2f} s after its end (the question before the drop: {baseline:.2f} s)")


async def test_a_session_expiry_close_1001_reconnects_with_the_history(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 1.5), Step("say", load_clip("no"), "no"), Step("wait_turns", 3),
             Step("hangup")]
    async with running_stack(tmp_path, _script(4.0)) as stack:
        stack.fake.faults.expire_after_s = 7.0  # the 60-minute limit, simulated
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps,
                                                     wait_timeout_s=20).run(), 90)
        await ended(stack)
        summary = stack.app.summaries[-1]
    conns = stack.fake.connections
    assert len(conns) >= 2 and report.waits_timed_out == 0
    assert all(kinds(c)[0] == "session.update" for c in conns)

    def seeded(conn: FakeConnection) -> list[str]:
        return [c["text"] for _, e in conn.events if e["type"] == "conversation.item.create" for c in e["item"]["content"]]
    assert any(clip_text("question") in seeded(c) for c in conns[1:])
    caller = b"".join(bytes(c.appended) for c in conns)
    assert len(caller) >= len(report.caller_audio) - 3 * FRAME_BYTES
    metrics = summary["metrics"]
    assert metrics["realtime_reconnects"] >= 1
    # a session that expires mid-answer stops that answer where its audio ends; the continuation follows
    # after the reconnect: that pause is the only dry playout the caller may hear
    assert report.underruns <= metrics["answers_cut_by_drop"]
    print(f"\nEXPIRY: {metrics['realtime_reconnects']} reconnects, gaps {summary['series']['reconnect_gap_ms']} ms, "
          f"replayed {metrics['frames_replayed_gap']} frames, dropped {metrics['frames_dropped_gap']}")


async def test_rollover_before_the_limit_switches_sessions_at_a_quiet_moment_losing_nothing(tmp_path: Path) -> None:
    config = FileConfig(realtime=RealtimeSettings(rollover_after_s=3.0))
    steps = [Step("wait_turns", 1), Step("pause", 4.0), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 0.5), Step("hangup")]
    async with running_stack(tmp_path, _script(4.0), file_config=config) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps,
                                                     wait_timeout_s=15).run(), 60)
        await ended(stack)
        summary = stack.app.summaries[-1]
    conns = stack.fake.connections
    assert len(conns) >= 2 and summary["metrics"]["realtime_rollovers"] >= 1
    # make-before-break: every caller frame reached exactly one session, in order
    assert b"".join(bytes(c.appended) for c in conns) == bytes(report.caller_audio)
    assert report.waits_timed_out == 0 and report.underruns == 0
    # the question, asked after the rollover, was answered by the new session
    assert any(r["status"] == "completed" for c in conns[1:] for r in c.responses)
    print(f"\nROLLOVER: {summary['metrics']['realtime_rollovers']} rollovers, {len(report.caller_audio) // FRAME_BYTES} "
          f"caller frames, each reached exactly one session")


@pytest.mark.parametrize("as_failed_response", [False, True])
async def test_a_rate_limited_answer_is_retried_after_the_reset(tmp_path: Path, as_failed_response: bool) -> None:
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 0.3), Step("say", load_clip("goodbye"), "goodbye"),
             Step("wait_turns", 3), Step("hangup")]
    async with running_stack(tmp_path, _script(4.0)) as stack:
        faults = stack.fake.faults
        faults.rate_limit_as_failed_response = as_failed_response
        call = EmulatedCall(stack.stream_url, "demo-garage", CALL, steps, wait_timeout_s=20)
        task = asyncio.create_task(call.run())
        assert await wait_until(lambda: bool(stack.fake.connections) and len(stack.fake.connections[0].responses) >= 1, 10)
        faults.rate_limit_next = 2  # the preemptive answer and the answer itself
        report = await asyncio.wait_for(task, 90)
        await ended(stack)
        metrics = stack.app.summaries[-1]["metrics"]
    conn = stack.fake.connections[0]
    assert report.waits_timed_out == 0
    limited = [t for t, kind, _ in conn.sent if kind == "rate_limits.updated"]
    creates = [t for t, e in conn.events if e["type"] == "response.create"]
    retry = next(t for t in creates if t > limited[-1])
    assert retry - limited[-1] >= faults.rate_limit_reset_s - 0.05  # honoured the reset time
    assert metrics["responses_retried"] >= 1 and metrics["responses_retry_gave_up"] == 0
    # the question was answered, and the next turn could still use a preemptive answer
    assert [r["status"] for r in conn.responses].count("completed") >= 3
    assert metrics["preemptive_requested"] >= 2
    print(f"\nRATE LIMIT ({'failed response' if as_failed_response else 'error event'}): retried "
          f"{retry - limited[-1]:.2f} s after the last limit (reset {faults.rate_limit_reset_s} s), answered")


async def _fallback_call(tmp_path: Path, env: dict[str, str], business: str = DEMO_BUSINESS,
                         **faults: Any) -> tuple[Any, CallReport, float, str]:
    steps = [Step("pause", 12.0), Step("hangup")]
    async with running_stack(tmp_path, _script(4.0), env=env, business_toml=business) as stack:
        for key, value in faults.items():
            setattr(stack.fake.faults, key, value)
        started = asyncio.get_running_loop().time()
        task = asyncio.create_task(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run())
        assert await wait_until(lambda: bool(stack.app.calls or stack.app.summaries), 5)  # started (or already over)
        assert await wait_until(lambda: not stack.app.calls, 15)
        took = asyncio.get_running_loop().time() - started  # call start → the fallback taken and the stream closed
        report = await asyncio.wait_for(task, 30)
        await ended(stack)
        row = await get_call(stack.app.sessions, CALL)
        twiml = await stack.app.stream_ended_twiml(CALL)
    assert row is not None
    return row, report, took, twiml


def assert_the_unheard_audio_is_counted(row: Any) -> None:
    """No session ever opened: every caller frame forwarded while the first connect was tried waited in the
    writer and was never written — the record counts them all (they used to vanish uncounted), and what
    came after the give-up is counted as buffered for a session that never came."""
    metrics = row.metrics
    assert metrics["frames_forwarded"] > 100  # ~6 s of the caller's audio before the give-up
    assert metrics["frames_unsent_at_end"] == metrics["frames_forwarded"]
    assert metrics["frames_forwarded"] + metrics["frames_buffered_gap"] == metrics["frames_in"]


async def test_a_refused_session_at_call_start_takes_the_fallback_by_rest_within_the_budget(tmp_path: Path) -> None:
    rest = await FakeTwilioRest().start()
    try:
        row, report, took, _ = await _fallback_call(tmp_path, rest_env(rest), refuse_next=100)
    finally:
        await rest.stop()
    updates = rest.updates(CALL)
    assert len(updates) == 1 and "<Say" in updates[0]["Twiml"] and "he-IL" in updates[0]["Twiml"]
    assert rest.requests[0].user.startswith("SK")
    assert took < 7.5, took  # budget 6 s, then the REST update, then the stream closes
    assert row.end_reason == "realtime_unavailable" and row.fallback == "apologise:rest"
    assert report.frames_received == 0  # the caller heard silence until Twilio played the apology
    assert_the_unheard_audio_is_counted(row)
    print(f"\nREFUSED: fallback by REST {took:.2f} s after the call started (budget 6 s)")


async def test_a_handshake_that_never_answers_takes_the_fallback_within_the_budget(tmp_path: Path) -> None:
    row, report, took, twiml = await _fallback_call(tmp_path, {}, hang_next=100)
    assert 5.5 < took < 7.5, took
    assert row.end_reason == "realtime_unavailable" and row.fallback == "apologise:action"
    assert "<Say" in twiml and "<Hangup" in twiml  # what the <Connect action> URL answers Twilio
    assert_the_unheard_audio_is_counted(row)
    print(f"\nHUNG: stream closed for the action-URL fallback {took:.2f} s after the call started (budget 6 s)")


async def test_transfer_fallback_dials_the_business_line(tmp_path: Path) -> None:
    business = DEMO_BUSINESS.replace('mode = "apologise"', 'mode = "transfer"\ntransfer_number = "+97235550999"')
    assert business != DEMO_BUSINESS
    rest = await FakeTwilioRest().start()
    try:
        row, _, _, _ = await _fallback_call(tmp_path, rest_env(rest), business, refuse_next=100)
    finally:
        await rest.stop()
    twiml = rest.updates(CALL)[0]["Twiml"]
    assert "<Dial" in twiml and "+97235550999" in twiml and row.fallback == "transfer:rest"
    assert twiml.endswith("</Dial></Response>") and "<Say" not in twiml  # no apology after a Dial that was answered


async def test_a_fatal_error_mid_call_takes_the_fallback(tmp_path: Path) -> None:
    rest = await FakeTwilioRest().start()
    try:
        row, _, _, _ = await _fallback_call(tmp_path, rest_env(rest), fatal_next="insufficient_quota")
    finally:
        await rest.stop()
    assert row.end_reason == "realtime_unavailable" and len(rest.updates(CALL)) == 1


@pytest.mark.looptime(False)  # on the wall clock: a stalled event loop must show (the virtual clock would wait)
@pytest.mark.stall
async def test_idle_sockets_are_closed_after_the_start_timeout_while_a_real_call_is_served(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect

    config = FileConfig(server=ServerSettings(start_timeout_s=2.0))
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("hangup")]
    async with running_stack(tmp_path, _script(4.0), file_config=config) as stack:
        idle = [await connect(stack.stream_url) for _ in range(200)]
        opened = asyncio.get_running_loop().time()
        closed_at: list[float] = []

        async def closed(ws: Any) -> None:
            await ws.wait_closed()
            closed_at.append(asyncio.get_running_loop().time() - opened)
        watchers = asyncio.gather(*(closed(ws) for ws in idle))
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps,
                                                     wait_timeout_s=20).run(), 60)
        assert report.waits_timed_out == 0 and report.frames_received > 0
        await asyncio.wait_for(watchers, 10)
        codes = {ws.close_code for ws in idle}
        await ended(stack)
        assert stack.app.refused_streams >= 200 and stack.app.pending_streams == 0
    assert len(closed_at) == 200 and codes == {1008} and max(closed_at) < 4.0, max(closed_at)
    print(f"\nIDLE: 200 sockets closed {min(closed_at):.2f}-{max(closed_at):.2f} s after opening (timeout 2 s)")


async def test_health_checks_and_garbage_handshakes_are_counted_lines_not_tracebacks(tmp_path: Path) -> None:
    """A load balancer's TCP check (connect, close): websockets would log each at ERROR with its parser's
    traceback; the edge counts them by reason and logs one debug line instead. A malformed request is
    closed by websockets itself (no log either way)."""
    import logging

    from prometheus_client import REGISTRY

    def failed(reason: str) -> float:
        return REGISTRY.get_sample_value("kolbridge_handshakes_failed_total", {"reason": reason}) or 0.0

    library_errors: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            library_errors.append(record)

    catcher = Catch(logging.ERROR)
    logging.getLogger("websockets").addHandler(catcher)
    before = failed("closed_before_request")
    try:
        async with running_stack(tmp_path, _script(4.0)) as stack:
            for _ in range(5):  # a health check: connect, send nothing, close
                _, writer = await asyncio.open_connection("127.0.0.1", stack.port)
                writer.close()
                await writer.wait_closed()
            reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")  # websockets closes it (EOF) itself, and logs nothing
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(200), 5)
            writer.close()
            assert answer == b"", answer
            assert await wait_until(lambda: failed("closed_before_request") >= before + 5, 5)
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, [
                Step("wait_turns", 1), Step("hangup")]).run(), 30)  # the edge still serves calls
            assert report.frames_received > 0
    finally:
        logging.getLogger("websockets").removeHandler(catcher)
    assert [r for r in library_errors if r.getMessage() == "opening handshake failed"] == []


async def test_pending_streams_beyond_the_cap_are_refused(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect

    config = FileConfig(server=ServerSettings(start_timeout_s=5.0, max_pending_streams=10))
    async with running_stack(tmp_path, _script(4.0), file_config=config) as stack:
        idle = [await connect(stack.stream_url) for _ in range(10)]
        extra = await connect(stack.stream_url)
        await asyncio.wait_for(extra.wait_closed(), 5)
        assert extra.close_code == 1013
        for ws in idle:
            await ws.close()


async def test_an_unsupported_media_format_is_refused_and_recorded(tmp_path: Path) -> None:
    import json

    from websockets.asyncio.client import connect

    async with running_stack(tmp_path) as stack:
        async with connect(stack.stream_url) as ws:
            await ws.send(json.dumps({"event": "start", "start": {
                "callSid": "CAl16", "streamSid": "MZ1", "customParameters": {"business_id": "demo-garage"},
                "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}}}))
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1003
        assert await stack.app.writes.drain(5)
        row = await get_call(stack.app.sessions, "CAl16")
    assert row is not None and row.end_reason == "unsupported_media_format"
    assert not stack.fake.connections  # nothing was forwarded to Realtime


async def test_a_question_the_lost_session_never_transcribed_is_heard_again_and_answered(tmp_path: Path) -> None:
    fake_script = _script(4.0)
    fake_script.transcripts = [clip_text("question"), clip_text("question"), clip_text("goodbye")]
    fake_script.transcript_delay_s = 1.5  # a slow transcription: the drop lands between speech end and text
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 0.5), Step("hangup")]
    async with running_stack(tmp_path, fake_script) as stack:
        fake = stack.fake
        task = asyncio.create_task(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps, wait_timeout_s=20).run())
        assert await wait_until(lambda: bool(fake.connections) and any(
            "stopped_at" in sp for sp in fake.connections[0].speech), 30)
        fake.drop(0)  # speech stopped, its transcript not sent yet
        report = await asyncio.wait_for(task, 60)
        await ended(stack)
        metrics = stack.app.summaries[-1]["metrics"]
        utterances = await get_utterances(stack.app.sessions, CALL)
    old, new = stack.fake.connections
    assert report.waits_timed_out == 0
    assert metrics["frames_resent_turn"] > 0 and metrics["realtime_reconnects"] == 1
    # the new session heard the whole question again: its first appended frames are the question's start
    question_frames = metrics["frames_resent_turn"]
    assert question_frames * FRAME_BYTES >= len(load_clip("question")) // 2
    answered = [r for r in new.responses if r["status"] == "completed" and bytes(r["audio"]) == load_clip("answer")]
    assert answered, [(r["status"], len(r["audio"])) for r in new.responses]
    assert [u.text for u in utterances if u.role == "caller"] == [clip_text("question")]
    print(f"\nUNTRANSCRIBED TURN: {question_frames} frames ({question_frames * 20} ms) re-sent to the new session; "
          "the question was answered")


def test_a_handshake_failure_is_labelled_by_its_innermost_cause() -> None:
    from gateway.handshakes import failure_reason

    def chained(outer: BaseException, inner: BaseException) -> BaseException:
        outer.__cause__ = inner
        return outer

    assert failure_reason(chained(ValueError("x"), chained(EOFError("y"), ConnectionResetError()))) == "closed_before_request"
    assert failure_reason(chained(RuntimeError("x"), TimeoutError())) == "timeout"
    assert failure_reason(ValueError("bad header")) == "invalid_request"
    assert failure_reason(KeyError("k")) == "KeyError" and failure_reason(None) == "unknown"
