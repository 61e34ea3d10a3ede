"""A transfer's <Dial> is never followed by an apology (issue 23's defect): Twilio runs the next verb after
any <Dial> that ends, so a caller who talked to the human heard "nobody is available" once the human hung
up. The Dial's action (POST /dial-done, signed) decides with DialCallStatus."""
from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlencode

import pytest
from prometheus_client import REGISTRY
from twilio.request_validator import RequestValidator

from gateway.fallback import NO_ANSWER, FallbackSettings, dial_action_url, dial_done_twiml, fallback_twiml
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import EmulatedCall, Step
from storage.calls import get_call
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack
from tests.test_agent_e2e import rest_env, wait_until
from tests.test_e2e import http

TRANSFER = FallbackSettings(mode="transfer", transfer_number="+97235550999", message="סליחה")
ACTION = "https://bridge.example.com/dial-done?business=demo-garage&kind=fallback"


def test_a_transfer_dial_ends_the_document_and_names_its_action() -> None:
    twiml = fallback_twiml(TRANSFER, "he", "+972501234567", ACTION)
    assert twiml.endswith("</Dial></Response>") and "<Say" not in twiml
    assert 'action="https://bridge.example.com/dial-done?business=demo-garage&amp;kind=fallback"' in twiml
    assert 'method="POST"' in twiml and 'callerId="+972501234567"' in twiml
    # no public URL known: still no apology after the Dial (the call ends when the Dial does)
    assert "<Say" not in fallback_twiml(TRANSFER, "he") and "action=" not in fallback_twiml(TRANSFER, "he")
    assert "<Say" in fallback_twiml(FallbackSettings(), "he")  # the apologise mode is unchanged
    assert dial_action_url("", "demo-garage", "agent") == ""


@pytest.mark.parametrize(("status", "apology"), [("completed", False), ("answered", False), ("busy", True),
                                                 ("no-answer", True), ("failed", True), ("canceled", True)])
def test_after_the_dial_only_an_unanswered_caller_hears_the_apology(status: str, apology: bool) -> None:
    twiml = dial_done_twiml(TRANSFER, "he", status)
    assert ("סליחה" in twiml) is apology and twiml.endswith("<Hangup /></Response>")


def dial_done_post(query: str, form: dict[str, str], signature: str) -> bytes:
    body = urlencode(form).encode()
    return (f"POST /dial-done?{query} HTTP/1.1\r\nHost: bridge.example.com\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def test_the_dial_done_callback_is_signed_and_answers_by_the_dial_status(tmp_path: Path) -> None:
    token, public = "tok", "https://bridge.example.com"
    validator = RequestValidator(token)
    first, last = "business=demo-garage&kind=agent&attempt=1", "business=demo-garage&kind=agent&attempt=2"
    def ended(kind: str) -> float:  # the process's registry is shared with the other tests of this worker
        labels = {"business": "demo-garage", "kind": kind, "status": "no-answer"}
        return REGISTRY.get_sample_value("kolbridge_transfers_ended_total", labels) or 0.0

    before = {kind: ended(kind) for kind in ("agent:back_to_agent", "agent:gave_up")}
    async with running_stack(tmp_path, script=FakeScript(),
                             env={"TWILIO_AUTH_TOKEN": token, "KOLBRIDGE_PUBLIC_URL": public}) as stack:
        outcomes: dict[str, tuple[int, str]] = {}
        for query, dial_status in ((first, "completed"), (first, "no-answer"), (last, "no-answer")):
            form = {"CallSid": "CA" + "7" * 32, "DialCallStatus": dial_status, "DialCallDuration": "42",
                    "From": "+972501234567", "To": "+97235550100"}
            signature = validator.compute_signature(f"{public}/dial-done?{query}", form)
            outcomes[f"{query[-1]}:{dial_status}"] = await http(stack.port, dial_done_post(query, form, signature))
        forged = {"CallSid": "CA" + "7" * 32, "DialCallStatus": "no-answer"}
        refused = await http(stack.port, dial_done_post(first, forged, "bad"))
    assert outcomes["1:completed"] == (200, '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>')
    # nobody answered the first attempt: the caller is back on a stream of the same call with the agent
    status, twiml = outcomes["1:no-answer"]
    assert status == 200 and "<Connect" in twiml and "wss://bridge.example.com/media-stream" in twiml
    assert '<Parameter name="segment" value="2" />' in twiml and '<Parameter name="resume_reason" value="no-answer" />' in twiml
    assert '<Parameter name="from" value="+972501234567" />' in twiml and 'name="route_sig"' in twiml
    # the last attempt: the apology, then the call ends
    status, twiml = outcomes["2:no-answer"]
    assert status == 200 and NO_ANSWER["he"] in twiml and twiml.endswith("<Hangup /></Response>")
    assert refused[0] == 403
    assert {kind: ended(kind) - count for kind, count in before.items()} == {"agent:back_to_agent": 1, "agent:gave_up": 1}


@VIRTUAL_CLOCK
async def test_an_operators_transfer_now_dials_the_human_line_at_once(tmp_path: Path) -> None:
    """The console's "transfer now" reaches the worker as HangupCall(action="transfer") → the app leaves the
    call to the business's human line as transfer_to_human would, with the Dial's action; recorded."""
    rest = await FakeTwilioRest().start()
    call_sid = "CA" + "t" * 32
    steps = [Step("wait_turns", 1), Step("pause", 3.0)]
    try:
        async with running_stack(tmp_path, FakeScript(responses=[(load_clip("greeting"), clip_text("greeting"))]),
                                 env=rest_env(rest)) as stack:
            call = asyncio.create_task(EmulatedCall(stack.stream_url, "demo-garage", call_sid, steps,
                                                    custom={"action_base": "https://bridge.example.com"}).run())
            assert await wait_until(lambda: call_sid in stack.app.calls, 5)
            await asyncio.sleep(1.0)
            stack.app._admin_hangup(call_sid, "transfer")
            assert await wait_until(lambda: call_sid not in stack.app.calls, 5)
            await asyncio.wait_for(call, 30)
            assert await stack.app.writes.drain(10)
            row = await get_call(stack.app.sessions, call_sid)
    finally:
        await rest.stop()
    twiml = rest.updates(call_sid)[0]["Twiml"]
    assert "<Number>+97235550999</Number>" in twiml and "kind=agent" in twiml and "<Say" not in twiml
    assert row is not None and row.end_reason == "admin_transfer" and row.fallback == "transfer:rest"
