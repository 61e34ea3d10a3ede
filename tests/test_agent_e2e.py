"""The agent acts, end to end over real websockets on 127.0.0.1: the fake Realtime service calls tools
(scripted), the business's tool and webhook endpoints are a local receiver, Twilio's REST API is the
fake. Each test checks what the caller hears (the emulator), what the operator sees (records,
metrics, logs) and what is persisted."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from actors.agent_messages import ConversationSettings
from gateway.cli import main as cli_main
from gateway.cli.demo import DEMO_BUSINESS
from gateway.config import FileConfig, ToolPolicy
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import EmulatedCall, Step
from sim.webhook_receiver import BusinessReceiver
from storage.agent_records import call_actions
from storage.calls import get_call
from tests.conftest import VIRTUAL_CLOCK
from tests.sdk_validate import validate_client_event
from tests.stack import running_stack

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK

CALL = "CA" + "a" * 32
SECRET = "whsec-test-1234"


def clip(name: str) -> tuple[bytes, str]:
    return load_clip(name), clip_text(name)


def business(receiver: BusinessReceiver, tool_timeout_s: float = 3.0) -> str:
    """The demo garage (its transfer line +97235550999, caller ID +97235550123, 25 s; a name/phone/car/service
    lead form) with a webhook and an HTTP tool on the local receiver."""
    return DEMO_BUSINESS + f'''
[business.webhook]
url = "{receiver.url('/hook')}"
secret = "{SECRET}"

[[business.tools]]
name = "check_availability"
description = "Free appointment slots for a day"
url = "{receiver.url('/slots')}"
timeout_s = {tool_timeout_s}
parameters = {{ type = "object", properties = {{ day = {{ type = "string" }} }}, required = ["day"] }}
'''


def config(**conversation: Any) -> FileConfig:
    return FileConfig(tools=ToolPolicy(allow_private_hosts=True, allow_http=True, webhook_poll_s=0.1,
                                       webhook_backoff_initial_s=0.3, webhook_backoff_max_s=0.6),
                      conversation=ConversationSettings(**conversation))


def rest_env(rest: FakeTwilioRest) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_API_KEY": "SK" + "2" * 32, "TWILIO_API_SECRET": "secret",
            "KOLBRIDGE_TWILIO_API_URL": rest.url}


async def hooks_delivered(sessions: Any, count: int, timeout: float = 5.0) -> bool:
    """The call's webhook rows are `count`, all delivered (the deliverer marks a row once its POST answered)."""
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        _, _, hooks = await call_actions(sessions, CALL)
        if len(hooks) == count and all(h.state == "delivered" for h in hooks):
            return True
        await asyncio.sleep(0.02)
    return False


async def wait_until(predicate: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def client_events_valid(events: list[tuple[float, dict[str, Any]]]) -> None:
    for _, event in events:
        validate_client_event(event)


async def test_transfer_redirects_to_the_business_line_after_the_handoff_played(tmp_path: Path) -> None:
    receiver = await BusinessReceiver(secret=SECRET).start()
    rest = await FakeTwilioRest().start()
    human = clip_text("human")
    script = FakeScript(transcripts=[human], responses=[clip("greeting")], replies={human: clip("handoff")},
                        calls={human: ("transfer_to_human", {"reason": "asked for a person",
                                                             "summary": "wants a service appointment tomorrow"})})
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("human"), "ask for a human"),
             Step("wait_turns", 2), Step("pause", 8.0)]
    try:
        async with running_stack(tmp_path, script, env=rest_env(rest), file_config=config(),
                                 business_toml=business(receiver)) as stack:
            call = EmulatedCall(stack.stream_url, "demo-garage", CALL, steps,
                                custom={"action_base": "https://bridge.example.com"})  # as /voice sets it
            report = await asyncio.wait_for(call.run(), 40)
            assert await wait_until(lambda: not stack.app.calls, 5)
            assert await stack.app.writes.drain(10)
            row = await get_call(stack.app.sessions, CALL)
            assert await wait_until(lambda: len(receiver.at("/hook")) >= 2, 5)
            conn = stack.fake.connections[0]
    finally:
        await rest.stop()
        await receiver.stop()
    updates = rest.updates(CALL)
    assert len(updates) == 1, updates
    twiml = updates[0]["Twiml"]
    assert "<Dial" in twiml and "+97235550999" in twiml and 'callerId="+97235550123"' in twiml and 'timeout="25"' in twiml
    # the Dial ends the document: what follows it is the action's (an apology only if nobody answered)
    assert twiml.endswith("</Dial></Response>") and "<Say" not in twiml
    assert 'action="https://bridge.example.com/dial-done?business=demo-garage&amp;kind=agent&amp;attempt=1"' in twiml
    # the caller heard the whole handoff sentence before the redirect
    handoff_ms = len(load_clip("handoff")) // 8
    assert report.turns[-1][2] * 20 >= handoff_ms - 40, report.turns
    played_end = report.t0 + report.turns[-1][1]
    redirect_at = rest.requests[0].at
    assert redirect_at >= played_end - 0.05, (redirect_at - played_end)
    assert row is not None and row.end_reason == "transferred" and row.fallback == "transfer:rest"
    assert row.transfer_summary == "wants a service appointment tomorrow"
    kinds = [r.headers.get("X-Kolbridge-Event") for r in receiver.at("/hook")]
    assert "transfer" in kinds and "call_report" in kinds and all(r.signed for r in receiver.at("/hook"))
    call_report = next(r.body for r in receiver.at("/hook") if r.headers.get("X-Kolbridge-Event") == "call_report")
    assert call_report["segment"] == 1 and call_report["may_resume"] is True  # a transfer nobody takes comes back
    outputs = conn.function_outputs
    assert len(outputs) == 1 and json.loads(outputs[0]["output"])["ok"] is True
    client_events_valid(conn.events)
    print(f"\nTRANSFER: redirect {1000 * (redirect_at - played_end):.0f} ms after the handoff's last frame played")


async def test_tools_answer_refuse_bad_arguments_and_save_a_lead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    receiver = await BusinessReceiver(secret=SECRET, answers={"/slots": {"slots": ["09:00", "13:00"]}}).start()
    question, no, details = clip_text("question"), "לא", "קוראים לי דני, 0501234567"
    script = FakeScript(
        transcripts=[question, no, details], responses=[clip("greeting")],
        replies={question: clip("answer"), no: clip("alternative"), details: clip("goodbye")},
        calls={question: ("check_availability", {"day": "מחר"}), no: ("check_availability", {"when": "מחר"}),
               details: ("save_lead", {"name": "דני", "phone": "0501234567"})},
        after_tool={"check_availability": clip("answer"), "save_lead": clip("goodbye")})
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 0.3), Step("say", load_clip("no"), "לא"),
             Step("wait_turns", 3), Step("pause", 0.3), Step("say", load_clip("question"), "details"),
             Step("wait_turns", 4), Step("pause", 0.5), Step("hangup")]
    try:
        async with running_stack(tmp_path, script, file_config=config(), business_toml=business(receiver)) as stack:
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 60)
            assert await wait_until(lambda: not stack.app.calls, 5)
            assert await stack.app.writes.drain(10)
            assert await wait_until(lambda: len(receiver.at("/hook")) >= 2, 5)  # the lead notice and the report
            assert await hooks_delivered(stack.app.sessions, 2)  # …and their rows say so (written after the POST)
            conn = stack.fake.connections[0]
            metrics = stack.app.summaries[-1]["metrics"]
    finally:
        await receiver.stop()
    # the tool got the call, signed; its answer went back to the model, which went on talking
    slots = receiver.at("/slots")
    assert len(slots) == 1 and slots[0].signed and slots[0].body == {
        "call_sid": CALL, "business_id": "demo-garage", "name": "check_availability", "arguments": {"day": "מחר"}}
    outputs = [json.loads(o["output"]) for o in conn.function_outputs]
    assert outputs[0] == {"slots": ["09:00", "13:00"]}
    assert outputs[1]["ok"] is False and outputs[1]["error"] == "invalid arguments" and "day" in outputs[1]["detail"]
    assert outputs[2] == {"ok": True, "result": "saved"}
    # every output was followed by a response that played (the model continued): 1 greeting + 3 replies + 3 after tools
    assert len(conn.responses) == 7 and all(r["status"] == "completed" for r in conn.responses)
    assert report.waits_timed_out == 0 and report.underruns == 0
    assert metrics["tool_calls"] == 3 and metrics["tool_ok"] == 2 and metrics["tool_invalid_arguments"] == 1
    assert metrics["leads_saved"] == 1
    client_events_valid(conn.events)
    # the operator: `kolbridge leads list --json` and `kolbridge calls show --json`
    logs = capsys.readouterr().out
    assert "TOOL_CALL " in logs and SECRET not in logs  # the webhook secret never reaches the logs (nor the model)
    assert all(SECRET not in json.dumps(e, ensure_ascii=False) for _, e in conn.events)
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    assert await asyncio.to_thread(cli_main, ["leads", "list", "--json"]) == 0
    leads = json.loads(capsys.readouterr().out)
    assert leads == [{"business_id": "demo-garage", "call_sid": CALL, "fields": {"name": "דני", "phone": "0501234567"},
                      "created_at": leads[0]["created_at"]}]
    assert await asyncio.to_thread(cli_main, ["calls", "show", CALL, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in shown["tool_calls"]] == ["ok", "invalid", "ok"]
    assert {h["kind"]: h["state"] for h in shown["webhooks"]} == {"lead": "delivered", "call_report": "delivered"}
    report_body = next(r for r in receiver.at("/hook") if r.headers.get("X-Kolbridge-Event") == "call_report").body
    assert report_body["end_reason"] == "twilio_stop" and report_body["lead"] == {"name": "דני", "phone": "0501234567"}
    assert report_body["segment"] == 1 and report_body["may_resume"] is False
    assert [t["name"] for t in report_body["tool_calls"]] == ["check_availability", "check_availability", "save_lead"]
    assert any(u["role"] == "caller" for u in report_body["transcript"]) and report_body["metrics"]["tool_calls"] == 3


@pytest.mark.parametrize("call_before_audio", [False, True])
async def test_end_call_hangs_up_only_after_the_goodbye_played(tmp_path: Path, call_before_audio: bool) -> None:
    rest = await FakeTwilioRest().start()
    bye = clip_text("goodbye")
    script = FakeScript(transcripts=[bye], responses=[clip("greeting")], replies={bye: clip("long_answer")},
                        calls={bye: ("end_call", {"reason": "the caller said goodbye"})},
                        call_before_audio=call_before_audio)
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("goodbye"), "goodbye"),
             Step("pause", 25.0)]
    try:
        async with running_stack(tmp_path, script, env=rest_env(rest), file_config=config()) as stack:
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 60)
            assert await wait_until(lambda: not stack.app.calls, 5)
            assert await stack.app.writes.drain(10)
            row = await get_call(stack.app.sessions, CALL)
    finally:
        await rest.stop()
    updates = rest.updates(CALL)
    assert updates == [{"Status": "completed"}]
    goodbye_ms = len(load_clip("long_answer")) // 8
    assert report.turns[-1][2] * 20 >= goodbye_ms - 40  # the whole goodbye was heard
    played_end = report.t0 + report.turns[-1][1]
    assert rest.requests[0].at >= played_end - 0.05
    assert row is not None and row.end_reason == "agent_hangup" and row.fallback == "hangup:rest"
    print(f"\nEND_CALL (call {'before' if call_before_audio else 'after'} audio): hang-up "
          f"{1000 * (rest.requests[0].at - played_end):.0f} ms after the goodbye's last frame played")


async def test_silence_gets_reprompts_then_a_goodbye_and_a_hang_up(tmp_path: Path) -> None:
    script = FakeScript(transcripts=["אממ"], responses=[clip("greeting")],
                        by_instructions={"שותק": clip("alternative"), "לא עונה": clip("goodbye")})
    steps = [Step("wait_turns", 2), Step("pause", 0.5), Step("say", load_clip("filler"), "filler"), Step("pause", 40.0)]
    async with running_stack(tmp_path, script, file_config=config(reprompt_after_s=2.0, max_reprompts=2)) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 60)
        assert await wait_until(lambda: not stack.app.calls, 5)
        assert await stack.app.writes.drain(10)
        row = await get_call(stack.app.sessions, CALL)
        twiml = await stack.app.stream_ended_twiml(CALL)
        conn = stack.fake.connections[0]
    instructed = [r["instructions"] or "" for r in conn.responses[1:] if r["status"] == "completed"]
    # a filler after the first reprompt is not an answer: still two reprompts, then the goodbye
    assert len(instructed) == 3 and "שותק" in instructed[0] and "שותק" in instructed[1] and "לא עונה" in instructed[2]
    assert [len(t) for t in report.turns] == [3, 3, 3, 3] and report.turns[-1][2] * 20 >= len(load_clip("goodbye")) // 8 - 40
    gaps = [report.turns[i + 1][0] - report.turns[i][1] for i in range(3)]
    gaps[1] = report.turns[2][0] - report.said_at["filler"][1]  # the filler restarted the silence, without an answer
    assert 1.9 <= gaps[0] <= 2.8 and 1.9 <= gaps[2] <= 2.8, gaps  # 2 s after the caller heard the end, + first audio
    assert 2.5 <= gaps[1] <= 3.8, gaps  # + the VAD's 600 ms of silence and the transcript's delay
    assert row is not None and row.end_reason == "silence_timeout" and row.fallback == "hangup:action"
    assert "<Hangup" in twiml  # no REST credentials here: Twilio gets the hang-up from the action URL
    print(f"\nSILENCE: gaps before reprompt/reprompt/goodbye {[round(g, 2) for g in gaps]} s (2 s configured)")


async def test_a_keypad_entry_reaches_the_model_and_is_answered(tmp_path: Path) -> None:
    entry = "[המתקשר הקיש במקלדת: 3 5]"
    script = FakeScript(transcripts=[], responses=[clip("greeting")], replies={entry: clip("answer")})
    steps = [Step("wait_turns", 1), Step("dtmf", "35"), Step("wait_turns", 2), Step("pause", 0.3), Step("hangup")]
    async with running_stack(tmp_path, script, file_config=config()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 40)
        assert await wait_until(lambda: not stack.app.calls, 5)
        conn = stack.fake.connections[0]
        metrics = stack.app.summaries[-1]["metrics"]
    texts = [c["content"][0]["text"] for c in conn.created_items if c.get("role") == "user"]
    assert texts == [entry]
    assert len(report.turns) == 2 and report.waits_timed_out == 0
    assert report.turns[1][2] * 20 >= len(load_clip("answer")) // 8 - 40
    assert metrics["dtmf_digits"] == 2 and metrics["dtmf_entries"] == 1
    client_events_valid(conn.events)


@pytest.mark.looptime(False)  # on the wall clock: a stalled event loop must show (the virtual clock would wait)
@pytest.mark.stall
async def test_a_tool_that_hangs_times_out_with_a_holding_line_and_no_stutter(tmp_path: Path) -> None:
    receiver = await BusinessReceiver(secret=SECRET, delay_s={"/slots": 30.0}).start()
    question = clip_text("question")
    script = FakeScript(transcripts=[question], responses=[clip("greeting")], replies={question: (b"", "")},
                        calls={question: ("check_availability", {"day": "מחר"})},
                        by_instructions={"בודק": clip("alternative")}, after_tool={"check_availability": clip("answer")})
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 1.0), Step("hangup")]
    try:
        async with running_stack(tmp_path, script, file_config=config(slow_tool_s=0.5),
                                 business_toml=business(receiver, tool_timeout_s=1.0)) as stack:
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 60)
            assert await wait_until(lambda: not stack.app.calls, 5)
            conn = stack.fake.connections[0]
            metrics = stack.app.summaries[-1]["metrics"]
            gaps = report.gap_stats()
    finally:
        await receiver.stop()
    called, answered = conn.function_calls[0]["at"], conn.function_outputs[0]["at"]
    assert json.loads(conn.function_outputs[0]["output"]) == {"ok": False, "error": "the tool failed (timeout)"}
    assert 1.0 <= answered - called <= 1.5, answered - called  # timeout_s + 0.5 s at most
    instructed = [r["instructions"] or "" for r in conn.responses]
    assert sum("בודק" in i for i in instructed) == 1  # one holding line while the tool ran
    # the holding line and then the answer after the timeout both played, without a stutter
    assert report.underruns == 0 and report.waits_timed_out == 0 and gaps["p99"] <= 5.0, gaps
    assert metrics["tool_timeouts"] == 1 and metrics["tool_holding_lines"] == 1 and metrics["underruns"] == 0
    print(f"\nSLOW TOOL: timeout output {1000 * (answered - called):.0f} ms after the call (timeout 1000 ms); "
          f"pacing p99 |gap-20ms| {gaps['p99']} ms, underruns {report.underruns}")


# on the wall clock: a delivery's next attempt is due by the database's clock (utcnow), which the virtual clock
# does not move — on a fast idle box the virtual 10 s passed before the 0.6 s backoff had, in wall time
@pytest.mark.looptime(False)
async def test_the_post_call_report_is_redelivered_after_the_webhook_was_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    receiver = await BusinessReceiver(secret=SECRET, down=True).start()
    script = FakeScript(transcripts=[], responses=[clip("greeting")])
    steps = [Step("wait_turns", 1), Step("pause", 0.2), Step("hangup")]
    try:
        async with running_stack(tmp_path, script, file_config=config(), business_toml=business(receiver)) as stack:
            await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 30)
            assert await wait_until(lambda: not stack.app.calls, 5)
            assert await wait_until(lambda: len(receiver.at("/hook")) >= 2, 10)  # refused twice while down
            receiver.down = False
            assert await wait_until(lambda: stack.app.webhooks.delivered == 1, 10)
            failures = stack.app.webhooks.retried
    finally:
        await receiver.stop()
    posts = receiver.at("/hook")
    assert len({p.headers["X-Kolbridge-Delivery"] for p in posts}) == 1  # the same delivery, retried
    assert all(p.signed for p in posts) and posts[-1].body["end_reason"] == "twilio_stop" and failures >= 2
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["calls", "show", CALL, "--json"]) == 0
    hooks = json.loads(capsys.readouterr().out)["webhooks"]
    assert len(hooks) == 1 and hooks[0]["state"] == "delivered" and hooks[0]["attempts"] == len(posts)
    print(f"\nWEBHOOK: delivered after {len(posts)} attempts ({failures} refused while the receiver was down)")
