"""A warm transfer's callbacks when things go wrong (issue 23's review), each over signed HTTP against the
gateway with the fake Twilio REST API: a human who picks up and hangs up during the whisper never joined
(the caller goes back to the agent, not left on hold); a status report of another leg changes nothing; a
caller who hangs up on hold has the ringing leg cancelled; a conference that ends under a caller whose REST
move failed still takes them where it was decided."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from sim.fake_twilio_rest import FakeTwilioRest
from storage.calls import get_call
from storage.writequeue import CallStartWrite, TransferWrite
from tests.stack import running_stack
from tests.test_agent_e2e import rest_env
from tests.test_e2e import http

TOKEN, PUBLIC = "tok", "https://bridge.example.com"
CALL, LEG, LINE = "CA" + "r" * 32, "CA" + "l" * 32, "+97235550999"


def post(path: str, query: dict[str, str], form: dict[str, str]) -> bytes:
    target = f"{path}?{urlencode(query)}"
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}{target}", form)
    body = urlencode(form).encode()
    return (f"POST {target} HTTP/1.1\r\nHost: bridge.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def test_a_warm_transfers_failure_paths_each_leave_the_caller_somewhere(tmp_path: Path) -> None:
    rest = await FakeTwilioRest().start()
    query = {"business": "demo-garage", "call": CALL, "attempt": "1"}
    try:
        async with running_stack(tmp_path, env={**rest_env(rest), "TWILIO_AUTH_TOKEN": TOKEN,
                                                "KOLBRIDGE_PUBLIC_URL": PUBLIC}) as stack:
            stack.app.writes.put(CallStartWrite(CALL, "MZ1", "demo-garage", {}, "+972501234567", "+97235550100"))
            stack.app.writes.put(TransferWrite(CALL, 1, "warm", LINE, LEG, "queued", summary="wants a quote"))
            assert await stack.app.writes.drain(5)
            # the human picks up: the whisper plays (its summary from the record), and only /handoff/join would
            # say they joined
            status, whisper = await http(stack.port, post("/handoff/whisper", query,
                                                          {"CallSid": LEG, "CallStatus": "in-progress"}))
            assert status == 200 and "wants a quote" in whisper and "/handoff/join?" in whisper
            # a report of some other leg (say, one a timed-out create placed after all) is ignored
            assert (await http(stack.port, post("/handoff/leg-status", query, {"CallSid": "CAother", "CallStatus": "busy"})))[0] == 200
            assert await stack.app.writes.drain(5)
            assert rest.updates(CALL) == []
            # they hang up during the whisper: completed, never joined → the caller is back with the agent
            await http(stack.port, post("/handoff/leg-status", query, {"CallSid": LEG, "CallStatus": "completed"}))
            [moved] = rest.updates(CALL)
            assert "<Connect" in moved["Twiml"] and '<Parameter name="segment" value="2" />' in moved["Twiml"]
            assert '<Parameter name="resume_reason" value="completed" />' in moved["Twiml"]
            # the conference ends under the caller (had that REST move failed): the same decision is run
            status, after = await http(stack.port, post("/handoff/caller-done", query,
                                                        {"CallSid": CALL, "CallStatus": "in-progress", "DialCallStatus": "completed"}))
            assert status == 200 and '<Parameter name="segment" value="2" />' in after
            # a replayed final report does nothing more
            await http(stack.port, post("/handoff/leg-status", query, {"CallSid": LEG, "CallStatus": "completed"}))
            assert len(rest.updates(CALL)) == 1
            assert await stack.app.writes.drain(5)
            row = await get_call(stack.app.sessions, CALL)
            # attempt 2: the caller hangs up on hold while the line rings → the leg is cancelled
            stack.app.writes.put(TransferWrite(CALL, 2, "warm", LINE, "CA" + "m" * 32, "ringing"))
            assert await stack.app.writes.drain(5)
            second = {**query, "attempt": "2"}
            status, gone = await http(stack.port, post("/handoff/caller-done", second,
                                                       {"CallSid": CALL, "CallStatus": "completed", "DialCallStatus": "completed"}))
            assert status == 200 and "<Hangup" in gone
            assert rest.updates("CA" + "m" * 32) == [{"Status": "canceled"}]
            assert await stack.app.writes.drain(5)
            left = await get_call(stack.app.sessions, CALL)
    finally:
        await rest.stop()
    assert row is not None and row.transfer["attempts"]["1"]["outcome"] == "back_to_agent"
    assert row.transfer["attempts"]["1"]["answered_at"] == ""  # picked up is not answered: they never joined
    assert left is not None and left.transfer["attempts"]["2"]["outcome"] == "caller_left"


async def test_an_outbound_call_back_with_the_agent_keeps_its_outbound_facts(tmp_path: Path) -> None:
    """A callback whose transfer nobody took resumes as the outbound call it was: direction, purpose and the
    lead ride on the new stream, signed with its segment (so the agent keeps its outbound layer)."""
    from storage.models import CallRecord, LeadRecord
    from tests.test_handoff_cores import route_is_valid_for

    rest = await FakeTwilioRest().start()
    query = {"business": "demo-garage", "call": CALL, "attempt": "1"}
    try:
        async with running_stack(tmp_path, env={**rest_env(rest), "TWILIO_AUTH_TOKEN": TOKEN,
                                                "KOLBRIDGE_PUBLIC_URL": PUBLIC}) as stack:
            async with stack.app.sessions.begin() as session:
                lead = LeadRecord(call_sid="CA-before", tool_call_id="t1", business_id="demo-garage", fields={"name": "דנה"})
                session.add(lead)
                await session.flush()
                session.add(CallRecord(call_sid=CALL, business_id="demo-garage", from_number="+97235550100",
                                       to_number="+972501234567", direction="outbound", answered_by="human",
                                       purpose="a quote for brakes", lead_id=lead.id))
            stack.app.writes.put(TransferWrite(CALL, 1, "warm", LINE, LEG, "queued"))
            assert await stack.app.writes.drain(5)
            await http(stack.port, post("/handoff/leg-status", query, {"CallSid": LEG, "CallStatus": "busy"}))
    finally:
        await rest.stop()
    [moved] = rest.updates(CALL)
    twiml = moved["Twiml"]
    assert '<Parameter name="direction" value="outbound" />' in twiml and "a quote for brakes" in twiml and "דנה" in twiml
    assert '<Parameter name="segment" value="2" />' in twiml and route_is_valid_for(TOKEN, twiml, CALL, "demo-garage", PUBLIC)


async def test_a_stray_leg_is_cancelled_and_never_joins_the_caller(tmp_path: Path) -> None:
    """A `calls.create` that timed out after reaching Twilio places a leg the transfer went on without (it fell
    back to a cold <Dial> of the same line, or another leg was recorded): its first status report cancels it,
    and if the human picks it up all the same they are hung up on — never whispered into the caller's
    conference, never rung twice for long. A stray leg's final report changes nothing. The same for a leg
    whose first report came before the fallback (recorded, then gone on without), and for a leg placed
    while the caller was hanging up."""
    rest = await FakeTwilioRest().start()
    stray, late, early, orphan = "CA" + "s" * 32, "CA" + "t" * 32, "CA" + "u" * 32, "CA" + "v" * 32
    try:
        async with running_stack(tmp_path, env={**rest_env(rest), "TWILIO_AUTH_TOKEN": TOKEN,
                                                "KOLBRIDGE_PUBLIC_URL": PUBLIC}) as stack:
            stack.app.writes.put(CallStartWrite(CALL, "MZ1", "demo-garage", {}, "+972501234567", "+97235550100"))
            stack.app.writes.put(TransferWrite(CALL, 1, "warm", LINE, LEG, "queued", summary="wants a quote"))
            # attempt 2 fell back to cold: its create gave up, yet Twilio placed the leg
            stack.app.writes.put(TransferWrite(CALL, 2, "warm", LINE, status="holding"))
            stack.app.writes.put(TransferWrite(CALL, 2, "cold", status="dialing", outcome="fell_back_to_cold"))
            assert await stack.app.writes.drain(5)
            first, second = {"business": "demo-garage", "call": CALL, "attempt": "1"}, {"business": "demo-garage", "call": CALL, "attempt": "2"}
            await http(stack.port, post("/handoff/leg-status", first, {"CallSid": stray, "CallStatus": "ringing"}))
            await http(stack.port, post("/handoff/leg-status", second, {"CallSid": late, "CallStatus": "initiated"}))
            status, answered = await http(stack.port, post("/handoff/whisper", second, {"CallSid": late, "CallStatus": "in-progress"}))
            assert status == 200 and "<Hangup" in answered and "/handoff/join" not in answered
            await http(stack.port, post("/handoff/leg-status", first, {"CallSid": stray, "CallStatus": "completed"}))
            # the recorded leg is untouched and still whispered to
            status, whisper = await http(stack.port, post("/handoff/whisper", first, {"CallSid": LEG, "CallStatus": "in-progress"}))
            assert status == 200 and "wants a quote" in whisper and "/handoff/join?" in whisper
            # attempt 3: the leg reports itself (recorded) before the create's failure sends the caller cold
            third = {"business": "demo-garage", "call": CALL, "attempt": "3"}
            stack.app.writes.put(TransferWrite(CALL, 3, "warm", LINE, status="holding"))
            assert await stack.app.writes.drain(5)
            await http(stack.port, post("/handoff/leg-status", third, {"CallSid": early, "CallStatus": "initiated"}))
            assert await stack.app.writes.drain(5) and rest.updates(early) == []
            stack.app.writes.put(TransferWrite(CALL, 3, "cold", status="dialing", outcome="fell_back_to_cold"))
            assert await stack.app.writes.drain(5)
            await http(stack.port, post("/handoff/leg-status", third, {"CallSid": early, "CallStatus": "ringing"}))
            # attempt 4: the caller hangs up on hold while the create is still out; its leg is recorded after
            fourth = {"business": "demo-garage", "call": CALL, "attempt": "4"}
            stack.app.writes.put(TransferWrite(CALL, 4, "warm", LINE, status="holding"))
            assert await stack.app.writes.drain(5)
            await http(stack.port, post("/handoff/caller-done", fourth,
                                        {"CallSid": CALL, "CallStatus": "completed", "DialCallStatus": "completed"}))
            stack.app.writes.put(TransferWrite(CALL, 4, leg_sid=orphan, status="queued"))
            assert await stack.app.writes.drain(5)
            await http(stack.port, post("/handoff/leg-status", fourth, {"CallSid": orphan, "CallStatus": "ringing"}))
            assert await stack.app.writes.drain(5)
            row = await get_call(stack.app.sessions, CALL)
    finally:
        await rest.stop()
    assert rest.updates(stray) == [{"Status": "canceled"}] and rest.updates(late) == [{"Status": "canceled"}]
    assert rest.updates(early) == [{"Status": "canceled"}] and rest.updates(orphan) == [{"Status": "canceled"}]
    assert rest.updates(LEG) == [] and rest.updates(CALL) == []
    assert row is not None and row.transfer["attempts"]["1"]["leg_sid"] == LEG
    assert row.transfer["attempts"]["2"]["leg_sid"] == "" and row.transfer["attempts"]["2"]["outcome"] == "fell_back_to_cold"


async def test_a_held_caller_whose_move_failed_is_moved_at_the_next_hold(tmp_path: Path) -> None:
    """Nobody took the call, but REST failed twice moving the caller back to the agent: they stay held (the
    hold plays on), the record says the move is pending, and the next time Twilio asks for the hold (each
    time its document ends) the move is retried — once: a moved caller is recorded so, and a caller whose
    next segment started is not moved again. A hold URL without its attempt (from before it carried one) is
    the latest attempt's. The cold fallback's move is retried the same way. A caller who hangs up while a
    move is pending keeps the decided outcome, counted once, and no leg is cancelled for it."""
    rest = await FakeTwilioRest().start()
    query = {"business": "demo-garage", "call": CALL, "attempt": "1"}
    third_leg = "CA" + "w" * 32
    try:
        async with running_stack(tmp_path, env={**rest_env(rest), "TWILIO_AUTH_TOKEN": TOKEN,
                                                "KOLBRIDGE_PUBLIC_URL": PUBLIC}) as stack:
            writes = stack.app.writes
            writes.put(CallStartWrite(CALL, "MZ1", "demo-garage", {}, "+972501234567", "+97235550100"))
            writes.put(TransferWrite(CALL, 1, "warm", LINE, LEG, "queued"))
            assert await writes.drain(5)
            rest.fail_path, rest.fail_next = f"/Calls/{CALL}.json", 2
            await http(stack.port, post("/handoff/leg-status", query, {"CallSid": LEG, "CallStatus": "busy"}))
            assert await writes.drain(5)
            pending = await get_call(stack.app.sessions, CALL)
            status, hold = await http(stack.port, post("/handoff/hold", {"business": "demo-garage", "call": CALL}, {"CallSid": CALL}))
            assert status == 200 and "<Play" in hold  # the hold resumes once the retry returned
            assert len(rest.updates(CALL)) == 3 and await writes.drain(5)
            await http(stack.port, post("/handoff/hold", query, {"CallSid": CALL}))  # moved: nothing more
            assert len(rest.updates(CALL)) == 3
            done = await get_call(stack.app.sessions, CALL)
            # marked pending again, but its next segment started: not moved again
            writes.put(TransferWrite(CALL, 1, move_pending=True))
            writes.put(CallStartWrite(CALL, "MZ2", "demo-garage", {}, "+972501234567", "+97235550100", segment=2))
            assert await writes.drain(5)
            await http(stack.port, post("/handoff/hold", query, {"CallSid": CALL}))
            assert len(rest.updates(CALL)) == 3
            # attempt 2 fell back to cold and that move was refused too: the next hold dials the line
            writes.put(TransferWrite(CALL, 2, "warm", LINE, status="holding"))
            writes.put(TransferWrite(CALL, 2, "cold", status="dialing", outcome="fell_back_to_cold", move_pending=True))
            assert await writes.drain(5)
            await http(stack.port, post("/handoff/hold", {**query, "attempt": "2"}, {"CallSid": CALL}))
            assert len(rest.updates(CALL)) == 4
            # attempt 3 gave up, its move pending, and the caller hangs up on hold
            writes.put(TransferWrite(CALL, 3, "warm", LINE, third_leg, "busy", outcome="gave_up", move_pending=True))
            assert await writes.drain(5)
            status, gone = await http(stack.port, post("/handoff/caller-done", {**query, "attempt": "3"},
                                                       {"CallSid": CALL, "CallStatus": "completed", "DialCallStatus": "completed"}))
            assert status == 200 and "<Hangup" in gone and await writes.drain(5)
            left = await get_call(stack.app.sessions, CALL)
    finally:
        await rest.stop()
    moved, cold = rest.updates(CALL)[2]["Twiml"], rest.updates(CALL)[3]["Twiml"]
    assert '<Parameter name="segment" value="2" />' in moved and '<Parameter name="resume_reason" value="busy" />' in moved
    assert pending is not None and pending.transfer["attempts"]["1"]["move_pending"] is True
    assert pending.transfer["attempts"]["1"]["outcome"] == "back_to_agent"
    assert done is not None and done.transfer["attempts"]["1"]["move_pending"] is False
    assert f">{LINE}</Number>" in cold and "/dial-done?business=demo-garage&amp;kind=agent&amp;attempt=2" in cold
    assert left is not None and left.transfer["attempts"]["3"]["outcome"] == "gave_up" and rest.updates(third_leg) == []
