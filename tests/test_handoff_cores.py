"""The handoff's pure parts (issue 23): what follows each report of the human's leg, the TwiML of each
side, the warm leg that cannot be placed, and the record's segments and transfer merged idempotently."""
from __future__ import annotations

import html
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from gateway.handoff.plan import Next, cold_next, next_step
from gateway.handoff.twiml import back_to_agent_twiml, caller_conference_twiml, hold_twiml, join_twiml, resume_note, whisper_twiml
from gateway.handoff.warm import place_leg
from gateway.prewarm import route_is_valid
from storage.businesses import TransferSpec
from storage.handoffs import close_segment, merge_transfer, open_segment, segment_seq_base
from storage.models import CallRecord
from storage.writequeue import CallEndWrite, CallStartWrite, TransferWrite
from tests.stack import running_stack
from tests.test_dial_done import dial_done_post
from tests.test_e2e import http


@pytest.mark.parametrize(("status", "attempt", "answered", "expected"), [
    ("ringing", 1, False, Next.WAIT), ("initiated", 2, False, Next.WAIT),
    ("in-progress", 1, False, Next.CONNECTED), ("completed", 1, True, Next.CONNECTED),
    ("completed", 1, False, Next.BACK_TO_AGENT),  # a warm leg completed without ever being answered
    ("busy", 1, False, Next.BACK_TO_AGENT), ("no-answer", 1, False, Next.BACK_TO_AGENT),
    ("failed", 1, False, Next.BACK_TO_AGENT), ("canceled", 1, False, Next.BACK_TO_AGENT),
    ("busy", 2, False, Next.GIVE_UP), ("no-answer", 3, False, Next.GIVE_UP),
])
def test_each_report_of_the_human_leg_decides_the_callers_next(status: str, attempt: int, answered: bool,
                                                               expected: Next) -> None:
    assert next_step(status, attempt, 2, answered) is expected


def test_a_cold_dial_that_completed_was_taken_and_one_attempt_allowed_gives_up_at_once() -> None:
    assert cold_next("completed", 1, 2) is Next.CONNECTED and cold_next("answered", 1, 2) is Next.CONNECTED
    assert cold_next("busy", 1, 1) is Next.GIVE_UP and cold_next("busy", 1, 2) is Next.BACK_TO_AGENT


def test_the_twiml_of_each_side_of_a_warm_transfer() -> None:
    caller = caller_conference_twiml("CA1", "https://b.example/handoff/hold?x=1", "https://b.example/handoff/caller-done")
    assert 'startConferenceOnEnter="false"' in caller and 'endConferenceOnExit="true"' in caller and ">kb-CA1</Conference>" in caller
    assert 'waitUrl="https://b.example/handoff/hold?x=1"' in caller and 'action="https://b.example/handoff/caller-done"' in caller
    human = whisper_twiml("he", "רוצה תור למחר", True, "https://b.example/handoff/join?call=CA1")
    assert human.index("<Say") < human.index("<Redirect") and "רוצה תור למחר" in human and 'language="he-IL"' in human
    assert "https://b.example/handoff/join?call=CA1</Redirect>" in human and "<Conference" not in human  # joins only after it
    assert "<Say" not in whisper_twiml("he", "x", False, "https://b.example/handoff/join")
    assert 'startConferenceOnEnter="true"' in join_twiml("CA1") and ">kb-CA1</Conference>" in join_twiml("CA1")
    # the default hold music is an audio file <Play> can play (Twilio's twimlet answers TwiML), played once:
    # Twilio asks the waitUrl again when the document ends, so the hold lasts as long as the caller waits
    music = hold_twiml("music", "he", "", "")
    assert "<Play>http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3</Play>" in music and "loop" not in music
    assert "https://x.example/m.mp3" in hold_twiml("music", "he", "https://x.example/m.mp3", "")
    assert "<Say" in hold_twiml("agent", "en", "", "") and "<Pause" in hold_twiml("agent", "en", "", "")


def route_is_valid_for(token: str, twiml: str, call_sid: str, business_id: str, base: str) -> bool:
    """Whether a stream TwiML's parameters carry a valid route signature (as the worker checks at start)."""
    parameters = {name: html.unescape(value) for name, value in re.findall(r'<Parameter name="([^"]+)" value="([^"]*)" />', twiml)}
    return route_is_valid(token, call_sid, business_id, parameters["route_sig"], base, parameters)


def test_the_back_to_agent_stream_is_signed_with_its_segment_and_reason() -> None:
    twiml = back_to_agent_twiml("tok", "wss://b.example/media-stream", "https://b.example", "CA1", "biz", "+97250", "+97235", 2, "busy")
    parameters = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)" />', twiml))
    assert parameters["segment"] == "2" and parameters["resume_reason"] == "busy"
    assert route_is_valid("tok", "CA1", "biz", parameters["route_sig"], "https://b.example", parameters)
    forged = {**parameters, "segment": "5"}  # a stream cannot claim another segment than the one signed
    assert not route_is_valid("tok", "CA1", "biz", parameters["route_sig"], "https://b.example", forged)
    assert "the line was busy" in resume_note("busy") and "save_lead" in resume_note("no-answer")


def refusing_twilio(error: Exception) -> Any:
    """A twilio Client's shape whose calls.create raises `error`."""
    def create(**_: object) -> object:
        raise error
    return SimpleNamespace(client=SimpleNamespace(calls=SimpleNamespace(create=create)))


async def test_a_warm_leg_that_cannot_be_placed_says_why() -> None:
    spec = TransferSpec(number="+97235550999", mode="warm")
    leg, reason = await place_leg(refusing_twilio(ConnectionError("twilio unreachable")), spec, "https://b.example",
                                  "CA1", "biz", 1, "+97235")
    assert leg == "" and "twilio unreachable" in reason


async def test_a_create_that_failed_after_twilio_placed_the_leg_keeps_that_leg() -> None:
    """calls.create timed out after reaching Twilio: the leg rings (its first report recorded it). The caller
    is not sent on to a cold <Dial> of the same line, which would cut off (or ring twice) the human."""
    from gateway.actions import AgentActions

    writes: list[object] = []

    async def reported(call_sid: str, attempt: int) -> str:
        return "CAlate" if (call_sid, attempt) == ("CA1", 2) else ""

    leaver = SimpleNamespace(rest=refusing_twilio(TimeoutError("read timed out")))  # no redirect: a move would be refused
    actions = AgentActions(writes.append, None, lambda: None, lambda *_: True, leaver, reported)  # type: ignore[arg-type]
    profile = SimpleNamespace(segment=2, agent=SimpleNamespace(transfer=TransferSpec(number="", mode="warm")),
                              direction="inbound", caller="+972501234567", called="+97235550100",
                              action_base="https://b.example", business_id="biz")
    call = SimpleNamespace(call_id="CA1", profile=profile)
    await actions._place_leg(call, SimpleNamespace(number="+97235550999"))  # type: ignore[arg-type]
    assert writes == [TransferWrite("CA1", 2, leg_sid="CAlate")]


def test_the_record_keeps_each_segment_and_merges_the_transfer_idempotently() -> None:
    row = CallRecord(call_sid="CA1", segments=[], transfer={})
    open_segment(row, CallStartWrite("CA1", "MZ1", "biz", {}))
    close_segment(row, CallEndWrite("CA1", "transferred", {"frames_in": 10}, 0))
    row.end_reason = "transferred"
    second = CallStartWrite("CA1", "MZ2", "biz", {}, segment=2, segment_note="busy")
    open_segment(row, second)
    open_segment(row, second)  # a replayed write adds nothing
    assert [part["n"] for part in row.segments] == [1, 2] and row.end_reason == "" and row.ended_at is None
    assert row.segments[0]["metrics"] == {"frames_in": 10} and row.segments[1]["note"] == "busy"
    for _ in range(2):
        merge_transfer(row, TransferWrite("CA1", 1, "warm", "+97235550999", "CAleg", "queued"))
        merge_transfer(row, TransferWrite("CA1", 1, leg_sid="CAleg", status="in-progress", answered=True))
    answered_at = row.transfer["answered_at"]
    merge_transfer(row, TransferWrite("CA1", 1, status="completed", outcome="connected"))
    assert row.transfer["answered_by"] == "+97235550999" and row.transfer["answered_at"] == answered_at
    assert row.transfer["attempts"]["1"] == {"leg_sid": "CAleg", "status": "completed", "answered_at": answered_at,
                                             "outcome": "connected"}
    assert segment_seq_base(1) == 0 and segment_seq_base(3) == 200_000
    # Twilio's callbacks can arrive out of order: an "initiated" after the final "no-answer" changes nothing
    merge_transfer(row, TransferWrite("CA1", 2, "warm", "+97235550999", "CAleg2", "no-answer", outcome="back_to_agent"))
    merge_transfer(row, TransferWrite("CA1", 2, leg_sid="CAleg2", status="initiated"))
    assert row.transfer["attempts"]["2"]["status"] == "no-answer"


def test_a_first_segments_end_written_after_the_second_began_does_not_end_the_call() -> None:
    """The back-to-agent stream can be live (29.5 ms after Twilio's callback) before the first segment's end
    is written (it waits up to 2 s for the caller's last audio): each end closes its own segment, and only
    the latest one's is the call's."""
    row = CallRecord(call_sid="CA1", segments=[], transfer={}, after_twiml="<Response><Dial>…</Dial></Response>")
    open_segment(row, CallStartWrite("CA1", "MZ1", "biz", {}))
    open_segment(row, CallStartWrite("CA1", "MZ2", "biz", {}, segment=2, segment_note="busy"))
    assert row.after_twiml == ""  # the first segment's exit is not the second's
    assert not close_segment(row, CallEndWrite("CA1", "transferred", {"frames_in": 10}, 0, segment=1))
    assert [part["end_reason"] for part in row.segments] == ["transferred", ""]  # the second is still live
    assert close_segment(row, CallEndWrite("CA1", "twilio_stop", {"frames_in": 99}, 0, segment=2))
    assert [part["metrics"] for part in row.segments] == [{"frames_in": 10}, {"frames_in": 99}]


async def test_every_handoff_callback_is_signature_checked(tmp_path: Path) -> None:
    """A forged hold, whisper, leg-status or caller-done request is refused (403); a signed one answered."""
    token, public = "tok", "https://bridge.example.com"
    validator = RequestValidator(token)
    async with running_stack(tmp_path, env={"TWILIO_AUTH_TOKEN": token, "KOLBRIDGE_PUBLIC_URL": public}) as stack:
        for path in ("hold", "whisper", "join", "leg-status", "caller-done"):
            query = "business=demo-garage&call=CA1&attempt=1"
            form = {"CallSid": "CAleg", "CallStatus": "ringing"}
            request = dial_done_post(query, form, "forged").replace(b"/dial-done?", f"/handoff/{path}?".encode())
            assert (await http(stack.port, request))[0] == 403, path
            signature = validator.compute_signature(f"{public}/handoff/{path}?{query}", form)
            request = dial_done_post(query, form, signature).replace(b"/dial-done?", f"/handoff/{path}?".encode())
            status, body = await http(stack.port, request)
            assert status == 200 and body.startswith("<?xml"), (path, body)
            if path == "whisper":  # no record of CA1: the introduction alone, then on to join
                assert "<Say" in body and "/handoff/join?" in body
