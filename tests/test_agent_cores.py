"""The agent's cores on a virtual clock, through the RealtimeBridge core: function calls (validated,
refused, run, timed out), leaving only after the last words played, silence reprompts and limits,
keypad entries, and the calls of a held preemptive answer."""
from __future__ import annotations

import json
from typing import Any

from actors.agent_messages import (
    AgentSettings,
    ConversationSettings,
    LeaveCall,
    RtFunctionCall,
    RtOutputCreate,
    RunTool,
    SaveLead,
    ToolCallRecord,
    ToolDef,
    ToolDone,
)
from actors.cores.bridge import BridgeState, RealtimeBridgeCore
from actors.cores.conversation import ClockVerdict, ConversationClock, ConversationState
from actors.cores.departure import Departure, DeparturePhase, DepartureState
from actors.ingress_messages import RtOutputItemAdded, RtResponseCreated, RtResponseDone, RtSpeechStarted, RtSpeechStopped, StartCall, Tick, TwilioDtmfIn
from actors.link_messages import RealtimeConnected, RealtimeLost, RtItemCreate
from actors.messages import AnswerRequest, DeleteItem, PlayoutChanged, PlayoutCut, PreemptiveAnswer, ResponseFinished
from actors.wire_messages import RtItemDelete, RtResponseCreate, ToRealtime
from gateway.agent import END_CALL, TRANSFER, save_lead_tool
from storage.businesses import LeadFieldSpec
from tests.conftest import settings

SLOTS = ToolDef("check_availability", "slots", {"type": "object", "properties": {"day": {"type": "string"}},
                                                "required": ["day"], "additionalProperties": False}, "http", 2.0)
LEAD = save_lead_tool([LeadFieldSpec("name", "name", True), LeadFieldSpec("phone", "phone", True)])


def bridge(transfer: str = "+97235550999", **conversation: Any) -> RealtimeBridgeCore:
    agent = AgentSettings((END_CALL, TRANSFER, LEAD, SLOTS), ConversationSettings(**conversation), transfer_number=transfer)
    call = settings(agent=agent)
    core = RealtimeBridgeCore(BridgeState("CA1"), call)
    core.handle(StartCall(call, 0.0), 0.0)
    core.handle(RealtimeConnected(1, 0.1), 0.1)
    return core


def events(actions: list[object], kind: type) -> list[Any]:
    return [a.event for a in actions if isinstance(a, ToRealtime) and isinstance(a.event, kind)]


def of(actions: list[object], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def greeting_played(core: RealtimeBridgeCore, at: float = 4.0) -> None:
    core.handle(RtResponseCreated("r0", 0.2), 0.2)
    core.handle(RtOutputItemAdded("r0", "a0", 0.2), 0.2)
    core.handle(RtResponseDone("r0", "completed", "", 1.0), 1.0)
    core.handle(PlayoutChanged(True, "r0", 0.3), 0.3)
    core.handle(ResponseFinished("r0", "a0", 3000, at), at)
    core.handle(PlayoutChanged(False, "r0", at), at)


def call(core: RealtimeBridgeCore, name: str, arguments: Any, response: str = "r1", call_id: str = "c1",
         at: float = 5.0) -> list[object]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return core.handle(RtFunctionCall(response, "fc-" + call_id, call_id, name, text, at), at)


def output(actions: list[object]) -> dict[str, Any]:
    found = events(actions, RtOutputCreate)
    assert len(found) == 1, actions
    return dict(json.loads(found[0].item.output))


def test_arguments_are_validated_and_a_bad_call_gets_an_error_the_model_can_use() -> None:
    core = bridge()
    core.handle(RtResponseCreated("r1", 4.9), 4.9)
    bad_json = call(core, "check_availability", "{not json", call_id="c1")
    assert output(bad_json)["detail"] == "arguments are not a JSON object" and not of(bad_json, RunTool)
    missing = output(call(core, "check_availability", {"when": "monday"}, call_id="c2"))
    assert missing["error"] == "invalid arguments" and "'day' is a required property" in missing["detail"]
    unknown = output(call(core, "book_table", {}, call_id="c3"))
    assert unknown == {"ok": False, "error": "there is no tool named 'book_table'"}
    assert call(core, "book_table", {}, call_id="c3") == []  # the same call id again: ignored
    records = [r.status for r in of(bad_json, ToolCallRecord)]
    assert records == ["invalid"]
    counters = core.counters()
    assert (counters["tool_calls"], counters["tool_invalid_arguments"], counters["tool_unknown"]) == (3, 2, 1)
    # once the response that called them is done, the model gets to answer the errors
    done = core.handle(RtResponseDone("r1", "completed", "", 5.1), 5.1)
    assert len(events(done, RtResponseCreate)) == 1


def test_an_http_tool_runs_outside_and_its_answer_or_the_backstop_comes_back() -> None:
    core = bridge(slow_tool_s=0.5)
    greeting_played(core)
    core.handle(RtResponseCreated("r1", 4.9), 4.9)
    started = call(core, "check_availability", {"day": "monday"})
    assert of(started, RunTool) == [RunTool("CA1", "c1", "check_availability", {"day": "monday"}, 2.0)]
    assert not events(core.handle(RtResponseDone("r1", "completed", "", 5.05), 5.05), RtResponseCreate)
    # slow: one holding line while the AI is silent
    holding = core.handle(Tick(5.6), 5.6)
    assert [e.response.instructions for e in events(holding, RtResponseCreate)] == [core.settings.agent.directives.holding]
    assert not events(core.handle(Tick(5.8), 5.8), RtResponseCreate)
    # the gateway never answered: at timeout + 1 s the desk answers for it
    assert not events(core.handle(Tick(7.9), 7.9), RtOutputCreate)
    late = core.handle(Tick(8.1), 8.1)
    assert output(late) == {"ok": False, "error": "the tool did not answer in time"}
    assert of(late, ToolCallRecord)[0].status == "timeout"
    assert core.handle(ToolDone("c1", True, "{}", "ok", 3100, 8.2), 8.2)[0].event == "TOOL_RESULT_LATE"  # type: ignore[attr-defined]


def test_end_call_leaves_only_when_the_goodbye_has_played() -> None:
    core = bridge()
    greeting_played(core)
    core.handle(RtResponseCreated("r1", 5.0), 5.0)
    core.handle(RtOutputItemAdded("r1", "a1", 5.0), 5.0)
    acts = call(core, "end_call", {"reason": "done"}, at=5.5)
    assert output(acts)["ok"] is True and not of(acts, LeaveCall)
    assert not of(core.handle(RtResponseDone("r1", "completed", "", 5.6), 5.6), LeaveCall)  # still playing
    assert not of(core.handle(AnswerRequest("u9", "wait", 6.0), 6.0), RtResponseCreate)  # no new answer while leaving
    left = core.handle(ResponseFinished("r1", "a1", 2000, 7.0), 7.0)
    assert of(left, LeaveCall) == [LeaveCall("CA1", "hangup", "agent_hangup", "done")]


def test_a_silent_trigger_asks_for_the_handoff_sentence_then_transfers_after_it() -> None:
    core = bridge()
    greeting_played(core)
    core.handle(RtResponseCreated("r1", 5.0), 5.0)
    call(core, "transfer_to_human", {"reason": "asked", "summary": "wants a person"})
    asked = core.handle(RtResponseDone("r1", "completed", "", 5.2), 5.2)
    assert [e.response.instructions for e in events(asked, RtResponseCreate)] == [core.settings.agent.directives.handoff]
    core.handle(RtResponseCreated("r2", 5.3), 5.3)
    core.handle(RtOutputItemAdded("r2", "a2", 5.3), 5.3)
    assert not of(core.handle(RtResponseDone("r2", "completed", "", 5.8), 5.8), LeaveCall)
    cut = core.handle(PlayoutCut("r2", "a2", 900, 1000, 6.5), 6.5)  # the caller barged in: they heard what they will
    assert of(cut, LeaveCall) == [LeaveCall("CA1", "transfer", "transferred", "asked", "wants a person", "+97235550999")]


def test_transfer_without_a_line_says_so_and_the_call_goes_on() -> None:
    core = bridge(transfer="")
    acts = call(core, "transfer_to_human", {"reason": "asked", "summary": "s"})
    assert output(acts)["ok"] is False and "no human line" in output(acts)["error"]
    assert not core.conduct.departure.active


def test_a_departure_whose_goodbye_never_plays_leaves_at_its_deadline() -> None:
    departure = Departure(DepartureState(), leave_timeout_s=20.0)
    departure.start(LeaveCall("CA1", "hangup", "agent_hangup", "done"), "r1", "bye", 1.0)
    assert not departure.overdue(20.9)
    assert departure.overdue(21.0) and departure.state.phase is DeparturePhase.LEAVING
    assert not departure.overdue(30.0)  # once


def test_save_lead_stores_the_fields_and_a_held_preemptive_answers_calls_wait_for_the_verdict() -> None:
    core = bridge()
    greeting_played(core)
    # the caller stops speaking, a preemptive answer starts and calls save_lead before the transcript
    core.handle(PreemptiveAnswer("u1", 5.0), 5.0)
    core.handle(RtResponseCreated("r1", 5.1), 5.1)
    held = call(core, "save_lead", {"name": "Dana", "phone": "0501234567"}, at=5.2)
    assert not of(held, SaveLead) and not events(held, RtOutputCreate)
    released = core.handle(AnswerRequest("u1", "I'm Dana, 0501234567", 5.4), 5.4)
    assert of(released, SaveLead) == [SaveLead("CA1", "c1", {"name": "Dana", "phone": "0501234567"})]
    assert output(released) == {"ok": True, "result": "saved"}
    # the same on an answer to a filler: the call is dropped with the answer
    core.handle(RtResponseDone("r1", "completed", "", 5.5), 5.5)
    core.handle(PreemptiveAnswer("u2", 8.0), 8.0)
    core.handle(RtResponseCreated("r2", 8.1), 8.1)
    call(core, "end_call", {"reason": "bye"}, response="r2", call_id="c2", at=8.2)
    dropped = core.handle(DeleteItem("u2", 8.4), 8.4)
    assert not core.conduct.departure.active and any(getattr(a, "event", "") == "TOOL_CALL_DISCARDED" for a in dropped)
    assert "fc-c2" in [e.item_id for e in events(dropped, RtItemDelete)]  # the model never sees the call


def test_silence_reprompts_a_filler_is_no_answer_a_turn_resets_then_goodbye() -> None:
    core = bridge(reprompt_after_s=8.0, max_reprompts=2)
    greeting_played(core, at=4.0)
    assert not events(core.handle(Tick(11.9), 11.9), RtResponseCreate)
    first = core.handle(Tick(12.0), 12.0)
    assert [e.response.instructions for e in events(first, RtResponseCreate)] == [core.settings.agent.directives.reprompt]
    core.handle(RtResponseCreated("r1", 12.1), 12.1)
    core.handle(RtResponseDone("r1", "completed", "", 12.5), 12.5)
    core.handle(PlayoutChanged(True, "r1", 12.3), 12.3)
    core.handle(PlayoutChanged(False, "r1", 14.0), 14.0)
    core.handle(RtSpeechStarted("u1", 0, 15.0), 15.0)  # the caller makes a sound…
    assert not events(core.handle(Tick(22.5), 22.5), RtResponseCreate)
    core.handle(RtSpeechStopped("u1", 800, 15.6), 15.6)
    core.handle(DeleteItem("u1", 16.0), 16.0)  # …a filler: the silence restarts, the count stays
    second = core.handle(Tick(24.0), 24.0)
    assert len(events(second, RtResponseCreate)) == 1 and core.conduct.clock.state.reprompts == 2
    core.handle(RtResponseCreated("r2", 24.1), 24.1)
    core.handle(RtResponseDone("r2", "completed", "", 24.5), 24.5)
    core.handle(PlayoutChanged(False, "r2", 26.0), 26.0)
    goodbye = core.handle(Tick(34.0), 34.0)
    assert [e.response.instructions for e in events(goodbye, RtResponseCreate)] == [
        core.settings.agent.directives.goodbye_silence]
    core.handle(RtResponseCreated("r3", 34.1), 34.1)
    core.handle(RtOutputItemAdded("r3", "a3", 34.1), 34.1)
    core.handle(RtResponseDone("r3", "completed", "", 34.5), 34.5)
    left = core.handle(ResponseFinished("r3", "a3", 1500, 36.0), 36.0)
    assert of(left, LeaveCall) == [LeaveCall("CA1", "hangup", "silence_timeout", "no answer to reprompts")]


def test_a_real_turn_resets_the_reprompt_count() -> None:
    clock = ConversationClock(ConversationState(), ConversationSettings(reprompt_after_s=8.0, max_reprompts=1))
    clock.started(0.0)
    clock.arm(1.0)
    assert clock.verdict(9.0) is ClockVerdict.REPROMPT
    clock.fired(ClockVerdict.REPROMPT)
    clock.arm(10.0)
    assert clock.verdict(18.0) is ClockVerdict.GIVE_UP
    clock.answered()
    clock.arm(20.0)
    assert clock.verdict(28.0) is ClockVerdict.REPROMPT
    assert clock.verdict(1200.0) is ClockVerdict.TIME_UP


def test_the_time_limit_says_goodbye_and_leaves() -> None:
    core = bridge(max_call_s=60.0)
    greeting_played(core)
    core.handle(AnswerRequest("u1", "question", 5.0), 5.0)  # a long conversation…
    core.handle(RtResponseCreated("r1", 5.1), 5.1)
    assert not events(core.handle(Tick(60.0), 60.0), RtResponseCreate)  # …the answer in flight plays first
    core.handle(RtResponseDone("r1", "completed", "", 60.2), 60.2)
    # (the goodbye was requested as soon as no response was active)
    departure = core.conduct.departure.state
    assert departure.phase is DeparturePhase.AWAIT_GOODBYE and departure.leave is not None
    assert departure.leave.end_reason == "max_duration"


def test_keypad_digits_become_one_entry_and_get_an_answer() -> None:
    core = bridge(dtmf_gap_s=1.0)
    greeting_played(core)
    assert core.handle(TwilioDtmfIn("1", 5.0), 5.0) == []
    core.handle(TwilioDtmfIn("2", 5.5), 5.5)
    assert not events(core.handle(Tick(6.4), 6.4), RtItemCreate)
    entry = core.handle(Tick(6.6), 6.6)
    texts = [e.item.content[0].text for e in events(entry, RtItemCreate)]
    assert texts == ["[the caller pressed: 1 2]"] and len(events(entry, RtResponseCreate)) == 1
    hashed = core.handle(TwilioDtmfIn("4", 9.0), 9.0) + core.handle(TwilioDtmfIn("#", 9.1), 9.1)
    assert [e.item.content[0].text for e in events(hashed, RtItemCreate)] == ["[the caller pressed: 4 #]"]


def test_a_read_only_tool_starts_before_the_verdict_and_its_result_waits_for_it() -> None:
    lookup = ToolDef("check_availability", "slots", SLOTS.parameters, "http", 2.0, read_only=True)
    agent = AgentSettings((END_CALL, lookup), ConversationSettings())
    core = RealtimeBridgeCore(BridgeState("CA1"), settings(agent=agent))
    core.handle(StartCall(settings(agent=agent), 0.0), 0.0)
    core.handle(RealtimeConnected(1, 0.1), 0.1)
    greeting_played(core)
    core.handle(PreemptiveAnswer("u1", 5.0), 5.0)
    core.handle(RtResponseCreated("r1", 5.1), 5.1)
    started = call(core, "check_availability", {"day": "monday"}, at=5.2)
    assert of(started, RunTool) and not events(started, RtOutputCreate)  # running already, speculatively
    waiting = core.handle(ToolDone("c1", True, '{"slots": []}', "ok", 40, 5.25), 5.25)
    assert not events(waiting, RtOutputCreate) and not of(waiting, ToolCallRecord)  # the result waits for the verdict
    released = core.handle(AnswerRequest("u1", "anything on monday?", 5.4), 5.4)
    assert output(released) == {"slots": []} and of(released, ToolCallRecord)[0].status == "ok"
    core.handle(RtResponseDone("r1", "completed", "", 5.5), 5.5)
    # a filler's answer: the speculative call is cancelled and its items deleted; a late result is ignored
    core.handle(PreemptiveAnswer("u2", 8.0), 8.0)
    core.handle(RtResponseCreated("r2", 8.1), 8.1)
    call(core, "check_availability", {"day": "tuesday"}, response="r2", call_id="c2", at=8.2)
    dropped = core.handle(DeleteItem("u2", 8.4), 8.4)
    assert "fc-c2" in [e.item_id for e in events(dropped, RtItemDelete)]
    late = core.handle(ToolDone("c2", True, "{}", "ok", 300, 8.5), 8.5)
    assert not events(late, RtOutputCreate) and core.counters()["tool_late_results"] == 1


def tool_running_when_the_link_drops() -> RealtimeBridgeCore:
    """A bridge whose session 1 called check_availability (c1) and was lost at 5.3 s, the tool still running."""
    core = bridge()
    greeting_played(core)
    core.handle(RtResponseCreated("r1", 5.0), 5.0)
    call(core, "check_availability", {"day": "monday"}, at=5.1)
    core.handle(RtResponseDone("r1", "completed", "", 5.2), 5.2)
    core.handle(RealtimeLost(1, 1006, "connection lost", 5.3), 5.3)
    return core


def test_a_tool_result_that_arrives_while_the_link_is_down_reaches_the_restored_session() -> None:
    core = tool_running_when_the_link_drops()
    down = core.handle(ToolDone("c1", True, '{"slots": ["9:00"]}', "ok", 250, 5.4), 5.4)
    assert not events(down, RtOutputCreate)  # no session to take it…
    for at in (5.5, 5.6, 5.7):
        core.handle(Tick(at), at)
    restored = core.handle(RealtimeConnected(2, 5.8), 5.8)
    notes = [e.item.content[0].text for e in events(restored, RtItemCreate) if e.item.role == "system"]
    assert notes == ['[tool check_availability (ok): {"slots": ["9:00"]}]']  # …the new one is told
    assert events(restored, RtResponseCreate)  # and the model answers with it


def test_a_result_for_a_call_the_lost_session_made_reaches_the_new_one_as_a_note() -> None:
    core = tool_running_when_the_link_drops()
    for at in (5.5, 5.6, 5.7):
        core.handle(Tick(at), at)
    core.handle(RealtimeConnected(2, 5.8), 5.8)
    late = core.handle(ToolDone("c1", True, '{"slots": []}', "ok", 900, 6.2), 6.2)
    assert not events(late, RtOutputCreate)  # the new session never saw call c1: it would refuse the output
    notes = [e.item.content[0].text for e in events(late, RtItemCreate)]
    assert notes == ['[result of the tool call you made before the line dropped: {"slots": []}]']
    assert events(late, RtResponseCreate)


def test_the_silence_clock_starts_after_a_filler_whose_preemptive_answer_then_failed() -> None:
    """A filler's verdict comes while the preemptive answer to it is still requested, then the request fails
    (a rate limit): nothing reaches the caller, and the silence must still be counted — a reprompt
    follows, not dead air until the call's time limit (found in review: the clock only started at a
    fully quiet moment, and nothing started it once the failed request cleared)."""
    from actors.ingress_messages import RtError
    core = bridge(reprompt_after_s=8.0, max_reprompts=2)
    greeting_played(core, at=4.0)
    core.handle(RtSpeechStarted("u1", 0, 5.0), 5.0)
    core.handle(RtSpeechStopped("u1", 800, 5.6), 5.6)
    requested = core.handle(PreemptiveAnswer("u1", 5.6), 5.6)
    assert events(requested, RtResponseCreate)  # the preemptive answer is asked for
    core.handle(DeleteItem("u1", 6.0), 6.0)  # "אממ": no answer; the preemptive request is still in flight
    core.handle(RtError("rate_limit_exceeded", "slow down", "", 6.1, "rate_limit_error"), 6.1)
    reprompts = [a for t in (10.0, 12.0, 14.0, 16.0, 20.0) for a in events(core.handle(Tick(t), t), RtResponseCreate)
                 if a.response.instructions == core.settings.agent.directives.reprompt]
    assert len(reprompts) == 1
