"""The actor tree in-process (thespian simpleSystemBase), driven on a virtual clock."""
from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import structlog

from actors.agent_messages import (
    AgentSettings,
    LeaveCall,
    RtFunctionCall,
    RtOutputCreate,
    RunTool,
    SaveLead,
    ToolCallRecord,
    ToolDef,
    ToolDone,
)
from actors.ingress_messages import EndCall, RtAudioDelta, RtAudioDone, RtResponseCreated, RtResponseDone, RtTranscriptDone, Tick, TwilioMarkIn, TwilioMediaIn
from actors.language_messages import LanguageSwitched
from actors.lifecycle_messages import ChildRestarted, InjectFault
from actors.link_messages import OpenRealtime, RealtimeGaveUp
from actors.messages import CallSummary, Utterance
from actors.wire_messages import RealtimeOutEvent, RtAppend, RtResponseCreate, RtSessionUpdate, TwilioOutEvent, TwMark, TwMedia
from gateway.runtime.engine import ActorEngine
from tests.conftest import settings

GREETING = bytes((i * 13) % 251 for i in range(160 * 150 + 33))


class RecordingSink:
    def __init__(self) -> None:
        self.twilio: list[TwilioOutEvent] = []
        self.realtime: list[RealtimeOutEvent] = []
        self.summary: CallSummary | None = None
        self.restarts: list[ChildRestarted] = []
        self.utterances: list[Utterance] = []
        self.opens: list[OpenRealtime] = []
        self.gave_up: list[RealtimeGaveUp] = []
        self.agent: list[object] = []

    def to_twilio(self, events: tuple[TwilioOutEvent, ...]) -> None:
        self.twilio.extend(events)

    def to_realtime(self, event: RealtimeOutEvent) -> None:
        self.realtime.append(event)

    def call_ended(self, summary: CallSummary) -> None:
        self.summary = summary

    def child_restarted(self, event: ChildRestarted) -> None:
        self.restarts.append(event)

    def utterance(self, event: Utterance) -> None:
        self.utterances.append(event)

    def open_realtime(self, command: OpenRealtime) -> None:
        self.opens.append(command)

    def realtime_unavailable(self, command: RealtimeGaveUp) -> None:
        self.gave_up.append(command)

    def run_tool(self, command: RunTool) -> None:
        self.agent.append(command)

    def save_lead(self, command: SaveLead) -> None:
        self.agent.append(command)

    def tool_record(self, record: ToolCallRecord) -> None:
        self.agent.append(record)

    def leave_call(self, command: LeaveCall) -> None:
        self.agent.append(command)

    def language_switched(self, event: LanguageSwitched) -> None:
        self.agent.append(event)

    def media_bytes(self) -> bytes:
        return b"".join(base64.b64decode(e.media.payload) for e in self.twilio if isinstance(e, TwMedia))


@pytest.fixture
def engine() -> Iterator[ActorEngine]:
    e = ActorEngine()
    yield e
    e.shutdown()


FAULTS = {20: InjectFault("rx"), 35: InjectFault("bridge"), 50: InjectFault("pacer"), 65: InjectFault("judge"),
          80: InjectFault("metrics"), 95: InjectFault("pacer", mode="exit"), 110: InjectFault("rx", mode="exit"),
          125: InjectFault("judge", mode="exit"), 140: InjectFault("bridge", mode="exit"),
          155: InjectFault("metrics", mode="exit")}


def play_call(engine: ActorEngine, faults: dict[int, InjectFault]) -> tuple[RecordingSink, list[str]]:
    sink = RecordingSink()
    engine.start_call(settings(), sink, 0.0)
    assert [type(e) for e in sink.realtime] == [RtSessionUpdate, RtResponseCreate]
    caller = [base64.b64encode(bytes([k % 256]) * 160).decode() for k in range(200)]
    engine.tell("CA1", RtResponseCreated("r1", 0.01))
    chunks = [GREETING[i:i + 1337] for i in range(0, len(GREETING), 1337)]
    echoed = 0
    for k in range(200):
        now = 0.02 * (k + 1)
        if k in faults:
            engine.tell("CA1", faults[k])
        if k < len(chunks):  # deltas arrive faster than real time
            engine.tell("CA1", RtAudioDelta("r1", "a1", chunks[k], now))
        elif k == len(chunks):
            engine.tell("CA1", RtAudioDone("r1", "a1", now))
            engine.tell("CA1", RtResponseDone("r1", "completed", "", now))
        engine.tell("CA1", TwilioMediaIn(caller[k], k + 1, now))
        engine.tell_all(Tick(now))
        names = [e.mark.name for e in sink.twilio if isinstance(e, TwMark)]
        for name in names[echoed:max(echoed, len(names) - 5)]:  # Twilio echoes ~100 ms later
            engine.tell("CA1", TwilioMarkIn(name, now))
        echoed = max(echoed, len(names) - 5)
    return sink, caller


def audio(payloads: list[str]) -> bytes:
    """Base64 payloads (a frame each, or a batch of frames) as the bytes they carry, in order."""
    return b"".join(base64.b64decode(p) for p in payloads)


def test_greeting_and_caller_audio_flow_through_the_tree(engine: ActorEngine) -> None:
    sink, caller = play_call(engine, {})
    assert sink.media_bytes() == GREETING + b"\xff" * (160 - len(GREETING) % 160)
    appends = [e.audio for e in sink.realtime if isinstance(e, RtAppend)]
    assert audio(appends) == audio(caller) and len(appends) == (len(caller) + 1) // 2  # 40 ms per append
    engine.tell("CA1", RtTranscriptDone("u1", "כן", 4.1))
    assert sink.realtime[-1] == RtResponseCreate()
    assert sink.utterances == [Utterance("CA1", "caller", "כן", "turn", -1, -1, False)]
    engine.tell("CA1", EndCall("twilio_stop", 4.2))
    assert sink.summary is not None
    m = sink.summary.metrics
    assert (m["frames_in"], m["frames_forwarded"], m["frames_dropped"]) == (200, 200, 0)
    assert m["frames_sent"] == len(GREETING) // 160 + 1 and m["underruns"] == 0
    assert m["stt_utterances"] == 1 and m["short"] == 1
    assert engine.active_calls() == []


def test_every_child_fails_mid_call_and_no_frame_is_lost_or_repeated(engine: ActorEngine) -> None:
    with structlog.testing.capture_logs() as logs:
        sink, caller = play_call(engine, FAULTS)
    failed = [e for e in logs if e["event"] == "CHILD_FAILED"]
    assert len(failed) == 5 and all("InjectedFault" in e["traceback"] for e in failed)  # the operator sees why
    assert sorted((r.role, r.restarts) for r in sink.restarts) == sorted(
        [(role, n) for role in ("rx", "bridge", "pacer", "judge", "metrics") for n in (1, 2)])
    assert sink.media_bytes() == GREETING + b"\xff" * (160 - len(GREETING) % 160)
    assert audio([e.audio for e in sink.realtime if isinstance(e, RtAppend)]) == audio(caller)
    assert sum(isinstance(e, RtResponseCreate) for e in sink.realtime) == 1  # the greeting, once
    inspection = engine.inspect("CA1")
    assert inspection is not None and inspection.phase == "active"
    assert inspection.restarts == {"rx": 2, "bridge": 2, "pacer": 2, "judge": 2, "metrics": 2}
    engine.tell("CA1", EndCall("twilio_stop", 5.0))
    assert sink.summary is not None
    m = sink.summary.metrics
    assert (m["frames_in"], m["frames_forwarded"], m["underruns"]) == (200, 200, 0)


def test_a_message_that_fails_down_a_lane_restarts_its_child_and_is_replayed_once(engine: ActorEngine) -> None:
    """Caller frames and ticks go straight to TwilioRx / TxPacer (the lanes): a failure there comes back to
    the engine as a PoisonMessage and must restart the child exactly as a failure the supervisor saw."""
    lane_faults = {30: InjectFault("rx", mode="next"), 60: InjectFault("pacer", mode="next"),
                   90: InjectFault("rx", mode="next")}
    with structlog.testing.capture_logs() as logs:
        sink, caller = play_call(engine, lane_faults)
    failed = [(e["role"], e["message"]) for e in logs if e["event"] == "CHILD_FAILED"]
    assert sorted(failed) == [("pacer", "Tick"), ("rx", "TwilioMediaIn"), ("rx", "TwilioMediaIn")]
    assert engine.lane_failures == 3  # they came down the lanes, not through the supervisor
    assert sorted((r.role, r.restarts) for r in sink.restarts) == [("pacer", 1), ("rx", 1), ("rx", 2)]
    assert audio([e.audio for e in sink.realtime if isinstance(e, RtAppend)]) == audio(caller)  # the failed frame, once
    assert sink.media_bytes() == GREETING + b"\xff" * (160 - len(GREETING) % 160)
    assert engine.lanes["CA1"][0] is not None and engine.lanes["CA1"][1] is not None  # reopened
    engine.tell("CA1", EndCall("twilio_stop", 5.0))
    assert sink.summary is not None
    assert (sink.summary.metrics["frames_in"], sink.summary.metrics["frames_forwarded"]) == (200, 200)


def test_an_idle_call_gets_only_timer_ticks_and_wakes_with_its_audio(engine: ActorEngine) -> None:
    sink = RecordingSink()
    engine.start_call(settings(), sink, 0.0)
    engine.tell_all(Tick(0.02))
    assert "CA1" not in engine.ticking  # nothing queued: the pacer said so on its first tick
    engine.tell("CA1", RtResponseCreated("r1", 0.03))
    engine.tell("CA1", RtAudioDelta("r1", "a1", b"\x01" * 1600, 0.04))
    assert "CA1" in engine.ticking
    for k in range(3, 30):
        engine.tell_all(Tick(0.02 * k))
    assert sink.media_bytes() == b"\x01" * 1600
    assert "CA1" not in engine.ticking  # all sent: idle again


def test_a_failure_before_the_first_audio_loses_nothing(engine: ActorEngine) -> None:
    sink = RecordingSink()
    engine.start_call(settings(), sink, 0.0)
    engine.tell("CA1", InjectFault("pacer"))
    engine.tell("CA1", RtResponseCreated("r1", 0.01))
    engine.tell("CA1", RtAudioDelta("r1", "a1", b"\x01" * 320, 0.02))
    engine.tell_all(Tick(0.34))  # after the jitter pre-roll (preroll_initial_ms, 300 ms from the first delta)
    assert sink.media_bytes() == b"\x01" * 320
    assert [r.role for r in sink.restarts] == ["pacer"]


def test_a_function_call_crosses_the_tree_and_a_restarted_bridge_keeps_it(engine: ActorEngine) -> None:
    """An HTTP tool's call leaves the tree as RunTool; the bridge fails while it runs; the answer still
    reaches the model from the replacement (the running call was in the restored state)."""
    tool = ToolDef("check_availability", "slots", {"type": "object", "properties": {"day": {"type": "string"}},
                                                   "required": ["day"]}, "http", 3.0)
    sink = RecordingSink()
    engine.start_call(settings(agent=AgentSettings(tools=(tool,))), sink, 0.0)
    session = sink.realtime[0]
    assert isinstance(session, RtSessionUpdate) and [t.name for t in session.session.tools] == ["check_availability"]
    engine.tell("CA1", RtResponseCreated("r1", 0.01))
    engine.tell("CA1", RtFunctionCall("r1", "fc1", "call_1", "check_availability", '{"day": "monday"}', 0.02))
    assert [type(a) for a in sink.agent] == [RunTool]
    engine.tell("CA1", InjectFault("bridge"))
    engine.tell("CA1", RtResponseDone("r1", "completed", "", 0.03))
    engine.tell("CA1", ToolDone("call_1", True, '{"slots": ["9:00"]}', "ok", 120, 0.2))
    outputs = [e for e in sink.realtime if isinstance(e, RtOutputCreate)]
    assert [(o.item.call_id, o.item.output) for o in outputs] == [("call_1", '{"slots": ["9:00"]}')]
    assert isinstance(sink.realtime[-1], RtResponseCreate)  # the model continues with the result
    assert [r.role for r in sink.restarts] == ["bridge"]
    record = sink.agent[-1]
    assert isinstance(record, ToolCallRecord) and (record.status, record.elapsed_ms) == ("ok", 120)


def test_admin_actor_lists_live_calls(engine: ActorEngine) -> None:
    for call_id in ("CA3", "CA1", "CA2"):
        engine.start_call(settings(call_id), RecordingSink(), 1.0)
    engine.tell("CA2", InjectFault("pacer"))
    live = engine.live_calls()
    assert [c.call_id for c in live] == ["CA1", "CA2", "CA3"]
    assert all(c.phase == "active" and c.business_id == "biz" and c.started_at == 1.0 for c in live)
    assert live[1].restarts["pacer"] == 1 and set(live[0].children) == {"rx", "bridge", "pacer", "judge", "metrics"}
    engine.tell("CA1", EndCall("twilio_stop", 2.0))
    assert [c.call_id for c in engine.live_calls()] == ["CA2", "CA3"]
