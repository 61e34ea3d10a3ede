"""Handoffs end to end on loopback (issue 23): the gateway, the fake Realtime service, the Twilio emulator
and the fake Twilio control plane (sim/fake_twilio_*), every webhook between them signed and checked.

- cold transfer, the line busy: the caller is back on a new stream of the same call with the agent within
  2 s of Twilio's callback, the new session was seeded with the conversation and told why, the agent's
  answer plays, and the call has one record with both segments;
- warm transfer, answered: the caller is held in the call's conference (the holding line), the human's
  leg hears the whisper with the agent's summary before joining, and the record says who answered;
- warm transfer, not answered: the leg's status callback returns the caller to the agent the same way.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote_plus

from twilio.request_validator import RequestValidator

from gateway.cli.demo import DEMO_BUSINESS, OfflineStack
from gateway.cli.records import call_show
from gateway.prewarm import route_signature
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.fake_twilio_calls import StreamRequest
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from storage.calls import get_call, get_utterances
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack
from tests.test_agent_e2e import clip, rest_env, wait_until

TOKEN = "handoff-token"
CALL = "CA" + "h" * 32
CALLER, CALLED, LINE = "+972501234567", "+97235550100", "+97235550999"
SUMMARY = "wants a service appointment tomorrow"
BACK = clip("alternative")  # what the agent says when the caller is back


def script() -> FakeScript:
    human = clip_text("human")
    return FakeScript(transcripts=[human], responses=[clip("greeting")], replies={human: clip("handoff")},
                      calls={human: ("transfer_to_human", {"reason": "asked for a person", "summary": SUMMARY})},
                      by_instructions={"did not go through": BACK})


def garage(mode: str = "cold") -> str:
    return DEMO_BUSINESS.replace("timeout_s = 25\n", f'timeout_s = 25\nmode = "{mode}"\nhold = "agent"\n', 1)


def first_stream(port: int) -> EmulatedCall:
    """The caller's first stream, as /voice routes it: signed upgrade, signed parameters, callbacks to us."""
    base, stream_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/media-stream"
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("human"), "ask for a human"),
             Step("wait_turns", 2), Step("pause", 8.0)]
    custom = {"action_base": base, "from": CALLER, "to": CALLED,
              "route_sig": route_signature(TOKEN, CALL, "demo-garage", base)}
    return EmulatedCall(stream_url, "demo-garage", CALL, steps, custom=custom, headers=signed_upgrade(stream_url))


def signed_upgrade(stream_url: str) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(stream_url, {})}


async def back_with_the_agent(rest: FakeTwilioRest, callback_at: float) -> tuple[StreamRequest, CallReport, float]:
    """Twilio opens the stream the back-to-agent TwiML asks for; the caller listens to the agent's answer."""
    await rest.wait_for(lambda: bool(rest.streams), 5.0)
    stream = rest.streams[-1]
    requested_in = asyncio.get_running_loop().time() - callback_at
    second = EmulatedCall(stream.url, stream.parameters["business_id"], CALL, [Step("wait_turns", 1), Step("pause", 1.0)],
                          custom=stream.parameters, headers=signed_upgrade(stream.url))
    report = await asyncio.wait_for(second.run(), 30)
    return stream, report, requested_in


def assert_resumed(stack_fake: object, report: CallReport, stream: StreamRequest, reason: str, why: str) -> None:
    assert stream.parameters["segment"] == "2" and stream.parameters["resume_reason"] == reason
    connection = stack_fake.connections[-1]  # type: ignore[attr-defined]
    seeded = [item for item in connection.created_items if item.get("type") == "message"]
    texts = [content.get("text", "") for item in seeded for content in item.get("content", [])]
    assert any(clip_text("human") in text for text in texts), texts  # the conversation so far…
    assert any(clip_text("handoff") in text for text in texts), texts
    assert any(why in text for text in texts), texts  # …and the note, before the first answer
    instructions = [r.get("instructions", "") for r in connection.responses]
    assert any(why in text for text in instructions), instructions
    assert report.turns and report.turns[0][2] * 20 >= len(BACK[0]) // 8 - 40, report.turns  # the answer played


async def assert_one_record(sessions: object, reason: str) -> None:
    row = await get_call(sessions, CALL)  # type: ignore[arg-type]
    assert row is not None
    assert [part["n"] for part in row.segments] == [1, 2], row.segments
    assert row.segments[0]["end_reason"] == "transferred" and row.segments[1]["note"] == reason
    assert row.transfer["attempts"]["1"]["outcome"] == "back_to_agent" and row.transfer["attempts"]["1"]["status"] == reason
    utterances = await get_utterances(sessions, CALL)  # type: ignore[arg-type]
    first = [u for u in utterances if u.seq < 100_000]
    second = [u for u in utterances if u.seq >= 100_000]
    assert any(clip_text("human") in u.text for u in first) and any(u.text == BACK[1] for u in second)
    shown = await call_show(sessions, CALL, as_json=False)  # type: ignore[arg-type]
    assert shown is not None and f"→ {LINE}: #1 {reason} back_to_agent" in shown, shown
    assert " transferred; #2 " in shown and f"({reason})" in shown


@contextlib.asynccontextmanager
async def transferred(tmp_path: Path, business_toml: str | None = None) -> AsyncIterator[tuple[FakeTwilioRest, OfflineStack]]:
    """The garage on loopback with the fake Twilio, after the caller's first stream asked for a person."""
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    rest.inbound(CALL, CALLER, CALLED)
    try:
        async with running_stack(tmp_path, script(), env={**rest_env(rest), "TWILIO_AUTH_TOKEN": TOKEN},
                                 business_toml=business_toml or DEMO_BUSINESS) as stack:
            await asyncio.wait_for(first_stream(stack.port).run(), 40)
            yield rest, stack
    finally:
        await rest.stop()


async def assert_back_with_the_agent(rest: FakeTwilioRest, stack: OfflineStack, callback_at: float, reason: str,
                                     why: str) -> None:
    """Within 2 s of Twilio's callback the caller is on a new stream with the agent, seeded and told `why`;
    one record with both segments."""
    stream, report, requested_in = await back_with_the_agent(rest, callback_at)
    assert await wait_until(lambda: not stack.app.calls, 5)
    assert await stack.app.writes.drain(10)
    assert requested_in < 2.0, requested_in
    assert_resumed(stack.fake, report, stream, reason, why)
    await assert_one_record(stack.app.sessions, reason)


@VIRTUAL_CLOCK
async def test_a_busy_line_returns_the_caller_to_the_agent_on_the_same_call(tmp_path: Path) -> None:
    async with transferred(tmp_path) as (rest, stack):
        await rest.wait_for(lambda: bool(rest.call(CALL).dialled), 5.0)
        dialled = rest.call(CALL).dialled[-1]
        assert dialled.number == LINE and "attempt=1" in dialled.action
        callback_at = asyncio.get_running_loop().time()
        await rest.dial_outcome(CALL, "busy")
        await assert_back_with_the_agent(rest, stack, callback_at, "busy", "the line was busy")


@VIRTUAL_CLOCK
async def test_a_warm_transfer_holds_the_caller_and_whispers_the_summary_to_the_human(tmp_path: Path) -> None:
    async with transferred(tmp_path, garage("warm")) as (rest, stack):
        await rest.wait_for(lambda: bool(rest.created()) and bool(rest.call(CALL).conference), 5.0)
        leg = rest.created()[0]
        room = rest.conferences[rest.call(CALL).conference]
        await rest.wait_for(lambda: bool(room.hold_said), 5.0)
        # the caller holds with the business's holding line; the human's line rings from the business's number
        assert room.name == f"kb-{CALL}" and "נציג" in room.hold_said[0]
        assert leg.to == LINE and leg.from_ == "+97235550123" and "/handoff/whisper" in leg.url
        assert "summary" not in leg.url and SUMMARY not in unquote_plus(leg.url)  # Twilio logs request URLs
        assert "/handoff/leg-status" in leg.status_callback and "answered" in leg.status_events
        await rest.answer(leg.sid)
        assert any(SUMMARY in said for said in leg.said), leg.said  # the whisper, before joining
        assert leg.conference == room.name and room.joined == [CALL, leg.sid]
        assert await stack.app.writes.drain(10)
        row = await get_call(stack.app.sessions, CALL)
    assert row is not None and row.transfer["mode"] == "warm" and row.transfer["answered_by"] == LINE
    assert row.transfer["attempts"]["1"]["leg_sid"] == leg.sid and row.transfer["answered_at"]


@VIRTUAL_CLOCK
async def test_a_warm_transfer_nobody_answers_returns_the_caller_to_the_agent(tmp_path: Path) -> None:
    async with transferred(tmp_path, garage("warm")) as (rest, stack):
        await rest.wait_for(lambda: bool(rest.created()) and bool(rest.call(CALL).conference), 5.0)
        callback_at = asyncio.get_running_loop().time()
        await rest.finish(rest.created()[0].sid, "no-answer")
        await assert_back_with_the_agent(rest, stack, callback_at, "no-answer", "nobody answered")
