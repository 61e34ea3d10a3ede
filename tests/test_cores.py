"""Pure cores other than the pacer: bridge, judge, TwilioRx, metrics, supervision."""
from __future__ import annotations

import msgspec

from actors.cores.bridge import BridgeState, RealtimeBridgeCore
from actors.cores.metrics import MetricsCore, MetricsState
from actors.cores.supervision import CallPhase, SupervisionCore
from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.ingress_messages import RtAudioDelta, RtResponseCreated, RtResponseDone, StartCall, Tick, TwilioMediaIn, WireDecodeError
from actors.lifecycle_messages import LogLine, SummarizeCall
from actors.messages import AnswerRequest, CallSummary, CounterReport, PlayoutCut
from actors.wire_messages import RtAppend, RtItemTruncate, RtResponseCancel, RtResponseCreate, RtSessionUpdate, ToRealtime
from tests.conftest import settings
from tests.sdk_validate import validate_client_event


def rt_events(actions: list[object]) -> list[object]:
    return [a.event for a in actions if isinstance(a, ToRealtime)]


def test_bridge_configures_ga_session_and_greets_once_through_the_sdk_models() -> None:
    core = RealtimeBridgeCore(BridgeState("CA1"), settings())
    events = rt_events(core.handle(StartCall(settings(), 0.0), 0.0))
    assert [type(e) for e in events] == [RtSessionUpdate, RtResponseCreate]
    for event in events:
        validate_client_event(msgspec.json.decode(msgspec.json.encode(event)))
    session = msgspec.to_builtins(events[0])["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["transcription"]["language"] == "he"
    td = session["audio"]["input"]["turn_detection"]
    assert td == {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 300, "silence_duration_ms": 600,
                  "create_response": False, "interrupt_response": False}
    assert rt_events(core.handle(StartCall(settings(), 1.0), 1.0)) == []  # greeting never twice


def test_bridge_defers_an_answer_while_a_response_is_active() -> None:
    core = RealtimeBridgeCore(BridgeState("CA1"), settings())
    core.handle(RtResponseCreated("r1", 0.0), 0.0)
    assert rt_events(core.handle(AnswerRequest("u1", "מה", 0.1), 0.1)) == []
    after = rt_events(core.handle(RtResponseDone("r1", "completed", "", 0.2), 0.2))
    assert after == [RtResponseCreate()]
    assert rt_events(core.handle(AnswerRequest("u2", "כן", 0.3), 0.3)) == [RtResponseCreate()]


def test_bridge_cancels_and_truncates_on_cut() -> None:
    core = RealtimeBridgeCore(BridgeState("CA1"), settings())
    core.handle(RtResponseCreated("r1", 0.0), 0.0)
    events = rt_events(core.handle(PlayoutCut("r1", "i1", 1234, 2000, 1.0), 1.0))
    assert events == [RtResponseCancel("r1"), RtItemTruncate("i1", 1234)]
    for event in events:
        validate_client_event(msgspec.json.decode(msgspec.json.encode(event)))
    core.handle(RtResponseDone("r1", "cancelled", "client_cancelled", 1.1), 1.1)
    # already finished generating: no cancel, only the truncate
    assert rt_events(core.handle(PlayoutCut("r1", "i1", 500, 400, 2.0), 2.0)) == [RtItemTruncate("i1", 400)]
    assert core.responses.state.counters.responses_cancelled == 1


def test_rx_passes_the_payload_through_untouched_and_counts_gaps() -> None:
    core = TwilioRxCore(RxState("CA1"))
    payloads = ["//79/f39", "AAAAAAAA", "gICAgICA"]
    out = [core.handle(TwilioMediaIn(p, seq, 0.0), 0.0) for p, seq in zip(payloads, (1, 2, 5))]
    assert [a[0].event for a in out] == [RtAppend(p) for p in payloads]  # type: ignore[attr-defined]
    validate_client_event(msgspec.json.decode(msgspec.json.encode(RtAppend(payloads[0]))))
    c = core.s.counters
    assert (c.frames_in, c.frames_forwarded, c.seq_gaps) == (3, 3, 2)
    core.handle(WireDecodeError("twilio", "bad json", 0.0), 0.0)
    assert c.twilio_decode_errors == 1


def test_metrics_summary_merges_reports_and_warns_on_drops() -> None:
    core = MetricsCore(MetricsState("CA1", started_at=1.0))
    core.handle(CounterReport("rx", {"frames_in": 10, "frames_forwarded": 9, "frames_dropped": 0}, 2.0), 2.0)
    core.handle(CounterReport("judge", {"stt_utterances_total": 2, "stt_empty_count": 1, "barge_in_events": 0}, 2.0), 2.0)
    out = core.handle(SummarizeCall("twilio_stop", 3.5), 3.5)
    line = next(a for a in out if isinstance(a, LogLine))
    summary = next(a for a in out if isinstance(a, CallSummary))
    assert line.event == "CALL_METRICS" and line.level == "warning"
    assert summary.metrics["frames_dropped"] == 1 and summary.metrics["stt_utterances"] == 2
    assert summary.metrics["empty"] == 1 and summary.metrics["call_duration_ms"] == 2500


def test_supervision_buffers_a_restarting_role_and_replays_in_order() -> None:
    core = SupervisionCore("CA1")
    assert core.go("start") and core.phase is CallPhase.ACTIVE
    assert [core.route(Tick(0.02 * k, timers=k == 4)) for k in range(5)] == [["pacer"]] * 4 + [["pacer", "judge", "bridge"]]
    assert core.child_failed("pacer") and not core.child_failed("pacer")
    delta = RtAudioDelta("r", "i", b"x", 0.1)
    assert core.route(Tick(0.02)) == [] and core.route(delta) == []
    assert core.route(RtResponseCreated("r", 0.1)) == ["bridge"]  # the pacer's copy is buffered
    core.snapshot_received("pacer", b"state")
    state, buffered = core.child_exited("pacer")  # type: ignore[misc]
    assert state == b"state"
    assert buffered == [Tick(0.02), delta, RtResponseCreated("r", 0.1)]
    assert core.restarts["pacer"] == 1 and core.route(Tick(0.04)) == ["pacer"]
    assert not core.go("summarized") and core.go("end") and core.go("summarized")
