"""Outbound calls end to end on loopback (issue 23): the gateway, the fake Realtime service, the Twilio emulator
and the fake Twilio control plane (sim/fake_twilio_*), every webhook between them signed and checked.

- POST /outbound/calls (admin token) → Twilio's calls.create with To, From, our signed /voice URL,
  DetectMessageEnd and the status callback; a person answers → the stream TwiML with the outbound facts,
  signed; the media stream opens and the fake Realtime session's instructions carry the outbound layer
  (the purpose, the lead's details) and the greeting is the outbound opening; the record says outbound,
  human, the lead, the purpose; the lead's scheduled callback is done;
- `kolbridge calls dial` → a machine answers after its greeting → the voicemail `<Say>` and `<Hangup/>`,
  the record ends `voicemail` with answered_by machine_end_beep;
- a number on the do-not-call list is never dialled (API, CLI, scheduler); a business's token dials for
  its own business only;
- the scheduler (as the lease holder) dials a due callback within the calling hours; a no-answer status
  callback puts it back on the schedule.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from twilio.request_validator import RequestValidator

from gateway.cli import main as cli_main
from gateway.cli.demo import DEMO_BUSINESS, OfflineStack
from gateway.outbound.dialer import Dialer
from gateway.outbound.scheduler import CallbackScheduler
from sim.fake_realtime import FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import EmulatedCall, Step
from storage.businesses import parse_business, upsert_business
from storage.callbacks import get_lead
from storage.calls import get_call
from storage.models import LeadRecord
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack
from tests.test_agent_e2e import clip, rest_env, wait_until

pytestmark = VIRTUAL_CLOCK

TOKEN, ADMIN, BIZ_TOKEN = "outbound-token", "admin-secret", "garage-api-token"
CALLEE, OURS = "+972501112233", "+97235550123"
PURPOSE = "to confirm the service appointment for the Mazda"
BUSINESS = DEMO_BUSINESS + f'''
[business.outbound]
voicemail_message = "שלום, כאן מוסך הדגמה. חזרו אלינו למספר ${{number}}."
api_token_sha256 = "{hashlib.sha256(BIZ_TOKEN.encode()).hexdigest()}"
'''
OTHER = '[business]\nid = "other-shop"\nname = "Other"\nlanguage = "en"\ngreeting = "Hi"\nphone_numbers = ["+97235550777"]\n'


def env(rest: FakeTwilioRest) -> dict[str, str]:
    return {**rest_env(rest), "TWILIO_AUTH_TOKEN": TOKEN, "KOLBRIDGE_ADMIN_TOKEN": ADMIN}


async def post(port: int, path: str, body: dict[str, Any], token: str = ADMIN) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()  # ASCII: non-ASCII as \\u escapes
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload or b"{}")


async def add_lead(sessions: Any, business_id: str = "demo-garage", status: str = "scheduled",
                   phone: str = CALLEE, at: datetime | None = None) -> int:
    async with sessions.begin() as session:
        lead = LeadRecord(call_sid="CA-earlier", tool_call_id=f"t-{phone}-{status}", business_id=business_id,
                          fields={"name": "דנה כהן", "phone": phone, "car": "מאזדה 3 2019"},
                          callback_at=at or datetime(2026, 1, 1, tzinfo=timezone.utc), callback_status=status)
        session.add(lead)
        await session.flush()
        return lead.id


async def test_a_person_answers_an_outbound_call_and_the_agent_opens_with_the_outbound_layer(tmp_path: Path) -> None:
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    script = FakeScript(responses=[clip("greeting")])
    try:
        async with running_stack(tmp_path, script, env=env(rest), business_toml=BUSINESS) as stack:
            lead_id = await add_lead(stack.app.sessions)
            status, answer = await post(stack.port, "/outbound/calls",
                                        {"business": "demo-garage", "to": CALLEE, "lead_id": lead_id, "purpose": PURPOSE})
            assert status == 201 and answer["outcome"] == "created", answer
            [call] = rest.created()
            assert call.sid == answer["call_sid"] and call.to == CALLEE and call.from_ == OURS
            assert call.machine_detection == "DetectMessageEnd"
            assert call.url.startswith(f"http://127.0.0.1:{stack.port}/voice?business=demo-garage&direction=outbound")
            assert f"lead={lead_id}" in call.url and "/outbound-status?business=demo-garage" in call.status_callback
            assert {"initiated", "answered", "completed"} <= set(call.status_events)
            twiml = await rest.answer(call.sid, "human")
            assert "<Stream" in twiml and not rest.webhooks.errors, rest.webhooks.errors
            [stream] = rest.streams
            assert stream.parameters["direction"] == "outbound" and stream.parameters["purpose"] == PURPOSE
            assert "מאזדה 3 2019" in stream.parameters["lead"] and stream.parameters["route_sig"]
            signed = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(stack.stream_url, {})}
            steps = [Step("wait_turns", 1), Step("hangup")]
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", call.sid, steps, headers=signed,
                                                         custom=stream.parameters).run(), 30)
            assert report.frames_received > 0  # the agent's opening played
            # a forged purpose is refused: the parameters are signed
            forged = {**stream.parameters, "purpose": "to sell them something else"}
            refused = await EmulatedCall(stack.stream_url, "demo-garage", call.sid, steps, headers=signed, custom=forged,
                                         wait_timeout_s=2).run()
            assert refused.close_code == 1008 and refused.frames_received == 0
            assert await wait_until(lambda: not stack.app.calls, 5)
            assert await stack.app.writes.drain(10)
            row = await get_call(stack.app.sessions, call.sid)
            lead = await get_lead(stack.app.sessions, lead_id)
            session = stack.fake.connections[0].of_type("session.update")[0]["session"]
            greeting = stack.fake.connections[0].of_type("response.create")[0]["response"]["instructions"]
    finally:
        await rest.close()
        await rest.stop()
    instructions = session["instructions"]
    assert "שיחה יוצאת" in instructions and PURPOSE in instructions and "מאזדה 3 2019" in instructions
    assert CALLEE in instructions and "מוסך הדגמה" in instructions
    assert "מוסך הדגמה" in greeting and PURPOSE in greeting and "הגעתם למוסך" not in greeting  # not the inbound greeting
    assert row is not None and row.direction == "outbound" and row.answered_by == "human"
    assert row.lead_id == lead_id and row.purpose == PURPOSE and row.to_number == CALLEE
    assert lead is not None and lead.callback_status == "done"


async def test_a_machine_gets_the_voicemail_and_a_hang_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    try:
        async with running_stack(tmp_path, FakeScript(), env=env(rest), business_toml=BUSINESS) as stack:
            for key, value in {**env(rest), "KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"}.items():
                monkeypatch.setenv(key, value)
            argv = ["calls", "dial", "--business", "demo-garage", "--to", CALLEE, "--purpose", PURPOSE,
                    "--public-url", f"http://127.0.0.1:{stack.port}"]
            assert await asyncio.to_thread(cli_main, argv) == 0
            [call] = rest.created()
            assert call.machine_detection == "DetectMessageEnd" and call.from_ == OURS
            twiml = await rest.answer(call.sid, "machine_end_beep")
            await rest.settle()
            row = await get_call(stack.app.sessions, call.sid)
            assert not stack.fake.connections and not rest.streams  # no agent for a machine
    finally:
        await rest.close()
        await rest.stop()
    assert "<Say" in twiml and twiml.endswith("<Hangup /></Response>") and "<Stream" not in twiml
    assert call.said == [f"שלום, כאן מוסך הדגמה. חזרו אלינו למספר {OURS}."] and call.status == "completed"
    assert row is not None and row.direction == "outbound" and row.answered_by == "machine_end_beep"
    assert row.end_reason == "voicemail" and row.purpose == PURPOSE


async def test_a_number_on_the_do_not_call_list_is_never_dialled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    try:
        async with running_stack(tmp_path, FakeScript(), env=env(rest), business_toml=BUSINESS) as stack:
            await upsert_business(stack.app.sessions, parse_business(OTHER))
            for key, value in {**env(rest), "KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"}.items():
                monkeypatch.setenv(key, value)
            assert await asyncio.to_thread(cli_main, ["calls", "dnc", "add", CALLEE, "--business", "demo-garage"]) == 0
            status, answer = await post(stack.port, "/outbound/calls", {"business": "demo-garage", "to": CALLEE})
            assert status == 409 and answer["outcome"] == "dnc"
            argv = ["calls", "dial", "--business", "demo-garage", "--to", CALLEE, "--public-url", f"http://127.0.0.1:{stack.port}"]
            assert await asyncio.to_thread(cli_main, argv) == 3
            lead_id = await add_lead(stack.app.sessions)
            tuesday_10 = datetime(2026, 12, 8, 10, 0, tzinfo=ZoneInfo("Asia/Jerusalem"))
            assert await scheduler(stack, "test-worker").step(tuesday_10) == [(lead_id, "dnc")]
            assert (lead := await get_lead(stack.app.sessions, lead_id)) is not None and lead.callback_status == "dnc"
            assert not rest.created() and not [r for r in rest.requests if r.path.endswith("/Calls.json")]
            # a business's own token dials for it alone; another business's token is refused
            status, answer = await post(stack.port, "/outbound/calls", {"business": "demo-garage", "to": "+972501112299"},
                                        token=BIZ_TOKEN)
            assert status == 201, answer
            status, _ = await post(stack.port, "/outbound/calls", {"business": "other-shop", "to": "+972501112299"},
                                   token=BIZ_TOKEN)
            assert status == 403
            status, _ = await post(stack.port, "/outbound/calls", {"business": "demo-garage", "to": "+972501112299"},
                                   token="wrong")
            assert status == 403 and len(rest.created()) == 1
    finally:
        await rest.close()
        await rest.stop()


SUNDAY_9 = datetime(2026, 12, 13, 9, 0, tzinfo=ZoneInfo("Asia/Jerusalem"))  # within the garage's calling hours


@contextlib.asynccontextmanager
async def a_due_callback(tmp_path: Path) -> AsyncIterator[tuple[FakeTwilioRest, OfflineStack, int]]:
    """The garage with the fake Twilio and one lead whose callback is due: (rest, stack, lead id)."""
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    try:
        async with running_stack(tmp_path, FakeScript(), env=env(rest), business_toml=BUSINESS) as stack:
            yield rest, stack, await add_lead(stack.app.sessions)
    finally:
        await rest.close()
        await rest.stop()


def scheduler(stack: OfflineStack, holder: str = "host-a:1") -> CallbackScheduler:
    return CallbackScheduler(stack.app.sessions, Dialer(stack.app.sessions, stack.app.twilio_rest,
                                                        f"http://127.0.0.1:{stack.port}"), holder)


async def test_the_scheduler_dials_a_due_callback_and_a_no_answer_puts_it_back(tmp_path: Path) -> None:
    async with a_due_callback(tmp_path) as (rest, stack, lead_id):
        one, two = scheduler(stack, "host-a:1"), scheduler(stack, "host-b:2")
        saturday = datetime(2026, 12, 12, 10, 0, tzinfo=ZoneInfo("Asia/Jerusalem"))  # a day off
        assert await one.step(saturday) == [(lead_id, "wait")] and await two.step(saturday) == []  # one leader
        assert not rest.created()
        lead = await get_lead(stack.app.sessions, lead_id)
        assert lead is not None and lead.callback_at is not None
        assert lead.callback_at.replace(tzinfo=timezone.utc) == SUNDAY_9.astimezone(timezone.utc)
        assert await one.step(SUNDAY_9) == [(lead_id, "dialed")]
        [call] = rest.created()
        assert call.to == CALLEE and f"lead={lead_id}" in call.url
        await rest.finish(call.sid, "no-answer")
        await rest.settle()
        lead = await get_lead(stack.app.sessions, lead_id)
        row = await get_call(stack.app.sessions, call.sid)
    assert not rest.webhooks.errors, rest.webhooks.errors
    assert lead is not None and lead.callback_status == "scheduled" and lead.callback_attempts == 1
    assert lead.callback_at is not None and lead.callback_call_sid == call.sid
    assert row is not None and row.direction == "outbound" and row.end_reason == "no_answer"


async def test_a_dial_whose_status_never_comes_back_is_a_spent_attempt(tmp_path: Path) -> None:
    """Twilio's final status callback is lost: the lead does not wait in `dialing` for ever — after
    DIALING_LOST_S the attempt counts as failed and the callback is rescheduled (CALLBACK_STATUS_LOST)."""
    from datetime import timedelta

    from gateway.outbound.scheduler import DIALING_LOST_S

    async with a_due_callback(tmp_path) as (_, stack, lead_id):
        leader = scheduler(stack)
        assert await leader.step(SUNDAY_9) == [(lead_id, "dialed")]
        almost = SUNDAY_9 + timedelta(seconds=DIALING_LOST_S - 60)
        assert await leader.step(almost) == []  # still ringing, as far as anyone knows
        lost = SUNDAY_9 + timedelta(seconds=DIALING_LOST_S + 1)
        assert await leader.step(lost) == [(lead_id, "lost_scheduled")]
        lead = await get_lead(stack.app.sessions, lead_id)
    assert lead is not None and lead.callback_status == "scheduled" and lead.callback_attempts == 1
    assert lead.callback_at is not None and lead.callback_at.replace(tzinfo=timezone.utc) > lost


async def test_a_callback_answered_while_the_worker_sheds_is_tried_again(tmp_path: Path) -> None:
    """The person who answers hears the business's apology (the worker drains or is full), not the agent:
    the lead is not `done` — the attempt is spent and the callback rescheduled."""
    async with a_due_callback(tmp_path) as (rest, stack, lead_id):
        assert await scheduler(stack).step(SUNDAY_9) == [(lead_id, "dialed")]
        [call] = rest.created()
        stack.app.draining = True
        twiml = await rest.answer(call.sid, "human")
        await rest.settle()
        lead = await get_lead(stack.app.sessions, lead_id)
        row = await get_call(stack.app.sessions, call.sid)
    assert "<Say" in twiml and "<Hangup" in twiml and "<Connect" not in twiml
    assert row is not None and row.end_reason == "shed_outbound"
    assert lead is not None and lead.callback_status == "scheduled" and lead.callback_attempts == 1


async def test_the_lease_has_one_holder_until_it_expires(tmp_path: Path) -> None:
    from datetime import timedelta

    from storage.callbacks import take_lease
    from storage.db import create_schema, make_engine, session_factory

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'lease.db'}")
    try:
        await create_schema(engine)
        sessions = session_factory(engine)
        t0 = datetime(2026, 12, 8, 8, 0, tzinfo=timezone.utc)
        assert await take_lease(sessions, "callbacks", "a", 15, t0)  # no row yet: inserted
        assert not await take_lease(sessions, "callbacks", "b", 15, t0 + timedelta(seconds=5))
        assert await take_lease(sessions, "callbacks", "a", 15, t0 + timedelta(seconds=10))  # renewed to t0 + 25 s
        assert not await take_lease(sessions, "callbacks", "b", 15, t0 + timedelta(seconds=20))
        assert await take_lease(sessions, "callbacks", "b", 15, t0 + timedelta(seconds=26))  # a stopped renewing
        assert not await take_lease(sessions, "callbacks", "a", 15, t0 + timedelta(seconds=27))
    finally:
        await engine.dispose()
