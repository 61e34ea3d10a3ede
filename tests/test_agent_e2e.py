"""The agent acts, end to end over real websockets on 127.0.0.1: the fake Realtime service calls tools
(scripted), the business's tool and webhook endpoints are a local receiver, Twilio's REST API is the
fake. Each test checks what the caller hears (the emulator), what the operator sees (records,
metrics, logs) and what is persisted."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from actors.agent_messages import ConversationSettings
from gateway.cli import main as cli_main
from gateway.config import FileConfig, ToolPolicy
from gateway.demo import DEMO_BUSINESS
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from sim.webhook_receiver import BusinessReceiver
from storage.calls import get_call
from tests.sdk_validate import validate_client_event
from tests.stack import running_stack

CALL = "CA" + "a" * 32
SECRET = "whsec-test-1234"


def clip(name: str) -> tuple[bytes, str]:
    return load_clip(name), clip_text(name)


def business(receiver: BusinessReceiver, transfer: str = "+97235550999", tool_timeout_s: float = 3.0) -> str:
    return DEMO_BUSINESS + f'''
[business.transfer]
number = "{transfer}"
caller_id = "+97235550123"
timeout_s = 20

[business.webhook]
url = "{receiver.url('/hook')}"
secret = "{SECRET}"

[[business.tools]]
name = "check_availability"
description = "Free appointment slots for a day"
url = "{receiver.url('/slots')}"
timeout_s = {tool_timeout_s}
parameters = {{ type = "object", properties = {{ day = {{ type = "string" }} }}, required = ["day"] }}

[[business.lead_fields]]
name = "name"
description = "the caller's name"
required = true

[[business.lead_fields]]
name = "phone"
description = "a phone number to call back"
required = true
'''


def config(**conversation: Any) -> FileConfig:
    return FileConfig(tools=ToolPolicy(allow_private_hosts=True, allow_http=True, webhook_poll_s=0.1,
                                       webhook_backoff_initial_s=0.3, webhook_backoff_max_s=0.6),
                      conversation=ConversationSettings(**conversation))


def rest_env(rest: FakeTwilioRest) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_API_KEY": "SK" + "2" * 32, "TWILIO_API_SECRET": "secret",
            "KOLBRIDGE_TWILIO_API_URL": rest.url}


async def wait_until(predicate: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps).run(), 40)
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
    assert "<Dial" in twiml and "+97235550999" in twiml and 'callerId="+97235550123"' in twiml and 'timeout="20"' in twiml
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
    outputs = conn.function_outputs
    assert len(outputs) == 1 and json.loads(outputs[0]["output"])["ok"] is True
    client_events_valid(conn.events)
    print(f"\nTRANSFER: redirect {1000 * (redirect_at - played_end):.0f} ms after the handoff's last frame played")
