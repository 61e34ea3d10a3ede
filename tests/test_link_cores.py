"""Pure cores of fault handling on a virtual clock: the Realtime link (reconnect, budget, rollover,
re-seeding), error classes and response retries, the caller-audio gap buffer, retry-safe handlers."""
from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors.cores.bridge import BridgeState, RealtimeBridgeCore
from actors.cores.bridge_responses import Owed
from actors.cores.rt_errors import ErrorClass, ResponseRetry, RetryState, classify
from actors.cores.session import LinkPhase, LinkState, SessionLink
from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.ingress_messages import (
    RtAssistantTranscriptDelta,
    RtError,
    RtOutputItemAdded,
    RtResponseCreated,
    RtResponseDone,
    RtSpeechStarted,
    RtSpeechStopped,
    RtTranscriptDone,
    StartCall,
    Tick,
    TwilioMediaIn,
)
from actors.link_messages import (
    FinishResponse,
    LinkDown,
    LinkUp,
    OpenRealtime,
    RealtimeConnected,
    RealtimeConnectFailed,
    RealtimeGaveUp,
    RealtimeLost,
    RtItemCreate,
    RtRateLimits,
)
from actors.messages import AnswerRequest, PlayoutChanged, PreemptiveAnswer, ResponseFinished, Utterance
from actors.settings import RealtimeSettings
from actors.wire_messages import RtAppend, RtResponseCreate, RtSessionUpdate, ToRealtime
from tests.conftest import settings

POLICY = RealtimeSettings()


def link() -> SessionLink:
    return SessionLink(LinkState(), POLICY, "CA1")


def test_call_start_tries_within_one_budget_then_gives_up() -> None:
    lk = link()
    first = lk.start(0.0)
    assert first.generation == 1 and first.timeout_s == POLICY.connect_timeout_s
    assert lk.tick(0.5, quiet=True) is None  # an attempt is in flight
    assert lk.connect_failed(1, 4.0)
    assert lk.tick(4.1, quiet=True) is None  # backoff 0.2 s
    second = lk.tick(4.25, quiet=True)
    assert isinstance(second, OpenRealtime) and second.generation == 2
    assert second.timeout_s == pytest.approx(6.0 - 4.25)  # the rest of the budget, not another 4 s
    assert not lk.connect_failed(1, 5.0)  # stale news of an older attempt
    assert lk.connect_failed(2, 6.0)
    assert lk.tick(6.3, quiet=True) == "realtime_connect_failed"
    assert lk.give_up("realtime_connect_failed") and lk.phase is LinkPhase.FAILED


def test_a_lost_link_reconnects_with_backoff_and_counts_the_gap() -> None:
    lk = link()
    lk.start(0.0)
    assert lk.connected(1, 0.1) is LinkPhase.CONNECTING and lk.phase is LinkPhase.LIVE
    assert not lk.lost(7, 10.0)  # not the live generation
    assert lk.lost(1, 10.0)
    assert lk.state.phase is LinkPhase.RECONNECTING
    delays = []
    now = 10.0
    for generation in range(2, 6):
        while not isinstance(step := lk.tick(now, quiet=True), OpenRealtime):
            now = round(now + 0.01, 2)
        delays.append(now)
        assert step.generation == generation
        now += 0.05
        lk.connect_failed(generation, now)
    gaps = [round(b - a, 2) for a, b in zip(delays, delays[1:])]
    assert gaps == pytest.approx([0.25, 0.45, 0.85], abs=0.011)  # backoff 0.2 → 0.4 → 0.8 (+ the 50 ms each attempt took)
    step = None
    while not isinstance(step, OpenRealtime):
        now = round(now + 0.01, 2)
        step = lk.tick(now, quiet=True)
    assert lk.connected(step.generation, now + 0.1) is LinkPhase.RECONNECTING
    assert lk.state.reconnects == 1 and lk.state.gap_ms == [round((now + 0.1 - 10.0) * 1000)]


def test_reconnects_end_at_the_attempt_limit() -> None:
    lk = SessionLink(LinkState(), RealtimeSettings(reconnect_max_attempts=2, reconnect_budget_s=60), "CA1")
    lk.start(0.0)
    lk.connected(1, 0.0)
    lk.lost(1, 1.0)
    now, reason = 1.0, None
    while reason is None:
        now += 0.05
        step = lk.tick(now, quiet=True)
        if isinstance(step, OpenRealtime):
            lk.connect_failed(step.generation, now)
        elif isinstance(step, str):
            reason = step
    assert reason == "realtime_reconnect_failed" and lk.state.attempts == 2


def test_rollover_waits_for_a_quiet_moment_and_a_failed_one_keeps_the_session() -> None:
    lk = SessionLink(LinkState(), RealtimeSettings(rollover_after_s=100.0), "CA1")
    lk.start(0.0)
    lk.connected(1, 0.0)
    assert lk.tick(99.0, quiet=True) is None
    assert lk.tick(101.0, quiet=False) is None  # the AI or the caller is speaking
    roll = lk.tick(102.0, quiet=True)
    assert isinstance(roll, OpenRealtime) and roll.rollover and lk.phase is LinkPhase.ROLLING
    assert lk.can_send  # the old session keeps serving meanwhile
    assert lk.connect_failed(2, 103.0)
    assert lk.state.phase is LinkPhase.LIVE
    assert lk.tick(104.0, quiet=True) is None  # tried again 30 s later
    again = lk.tick(134.0, quiet=True)
    assert isinstance(again, OpenRealtime) and lk.connected(again.generation, 134.5) is LinkPhase.ROLLING
    assert lk.state.rollovers == 1 and lk.state.session_started_at == 134.5


def test_reseed_keeps_the_most_recent_turns_within_the_budget_in_order() -> None:
    lk = SessionLink(LinkState(), RealtimeSettings(reseed_max_chars=25), "CA1")
    for n, (role, text) in enumerate([("assistant", "שלום, איך אפשר לעזור?"), ("user", "אני רוצה תור"),
                                      ("assistant", "מחר בעשר?"), ("user", ""), ("user", "כן")]):
        lk.turn_started(f"i{n}", role)
        lk.turn_text(f"i{n}", role, text)
    lk.forget("i4")
    lk.turn_started("i5", "user")
    lk.turn_text("i5", "user", "טוב")
    items = lk.reseed()
    assert [(i.item.role, i.item.content[0].type, i.item.content[0].text) for i in items] == [
        ("user", "input_text", "אני רוצה תור"), ("assistant", "output_text", "מחר בעשר?"),
        ("user", "input_text", "טוב")]


def test_error_classes() -> None:
    assert classify("rate_limit_exceeded") is ErrorClass.RETRY_RESPONSE
    assert classify("", "server_error") is ErrorClass.RETRY_RESPONSE
    assert classify("insufficient_quota") is ErrorClass.SESSION_FATAL
    assert classify("invalid_api_key") is ErrorClass.SESSION_FATAL
    assert classify("session_expired") is ErrorClass.SESSION_ENDED
    assert classify("conversation_already_has_active_response") is ErrorClass.PROTOCOL


def test_response_retry_honours_the_rate_limit_reset_and_gives_up() -> None:
    retry = ResponseRetry(RetryState(), max_tries=2)
    retry.sent("")
    retry.rate_limits(3.0, 10.0)
    assert retry.failed(10.0) and retry.state.due_at == 13.0  # backoff 0.5 s, but the limit resets at 13 s
    assert retry.due(12.9) is None and retry.due(13.0) == ""
    assert retry.failed(13.1) and retry.state.due_at == 14.1  # 1 s backoff, reset passed
    assert retry.due(14.1) == ""
    assert not retry.failed(14.2) and retry.state.gave_up == 1


# --------------------------------------------------------------------------- the bridge on a virtual clock
def out_events(actions: list[object]) -> list[Any]:
    return [a.event for a in actions if isinstance(a, ToRealtime)]


def live_bridge() -> RealtimeBridgeCore:
    bridge = RealtimeBridgeCore(BridgeState("CA1"), settings())
    start = bridge.handle(StartCall(settings(), 0.0), 0.0)
    assert isinstance(start[0], OpenRealtime)
    bridge.handle(RealtimeConnected(1, 0.1), 0.1)
    return bridge


def test_a_drop_mid_answer_finishes_it_buffers_audio_restores_and_continues() -> None:
    bridge = live_bridge()
    bridge.handle(RtSpeechStopped("u1", 3000, 1.0), 1.0)
    bridge.handle(RtTranscriptDone("u1", "אני רוצה תור", 1.3), 1.3)
    bridge.handle(AnswerRequest("u1", "אני רוצה תור", 1.3), 1.3)
    bridge.handle(RtResponseCreated("r1", 1.4), 1.4)
    bridge.handle(RtOutputItemAdded("r1", "a1", 1.4), 1.4)
    bridge.handle(RtAssistantTranscriptDelta("r1", "a1", "מחר בעשר", 1.5), 1.5)
    bridge.handle(PlayoutChanged(True, "r1", 1.6), 1.6)
    lost = bridge.handle(RealtimeLost(1, 1006, "connection lost", 2.0, ("AAA=", "BBB=")), 2.0)
    assert LinkDown(("AAA=", "BBB="), 2.0) in lost and FinishResponse("r1", 2.0) in lost
    assert not out_events(lost)
    # while the link is down nothing is written, answers wait
    assert not out_events(bridge.handle(AnswerRequest("u2", "כן", 2.1), 2.1))
    book = bridge.responses.state
    assert book.owed is Owed.ANSWER and book.owed_item == "u2" and book.counters.answers_deferred == 1
    opened = [a for t in (2.1, 2.2, 2.3) for a in bridge.handle(Tick(t), t) if isinstance(a, OpenRealtime)]
    assert [o.generation for o in opened] == [2]
    restored = bridge.handle(RealtimeConnected(2, 2.4), 2.4)
    events = out_events(restored)
    assert isinstance(events[0], RtSessionUpdate)
    seeded = [e for e in events if isinstance(e, RtItemCreate)]
    assert [(e.item.role, e.item.content[0].text) for e in seeded] == [("user", "אני רוצה תור"), ("assistant", "מחר בעשר")]
    assert restored.index(LinkUp(2.4)) > max(restored.index(ToRealtime("CA1", e)) for e in seeded)
    assert isinstance(events[-1], RtResponseCreate)  # the caller's pending turn is answered first
    assert bridge.responses.state.owed is not Owed.RESUME
    finished = bridge.handle(ResponseFinished("r1", "a1", 900, 2.5), 2.5)
    # placed in time: its audio began to play 1.6 s into the call and played 900 ms
    assert finished == [Utterance("CA1", "assistant", "מחר בעשר", "", 1600, 2500, True, 900)]
    assert bridge.counters()["realtime_reconnects"] == 1 and bridge.series()["reconnect_gap_ms"] == [400]


def test_without_a_pending_turn_the_cut_answer_resumes_once_the_caller_heard_the_rest() -> None:
    bridge = live_bridge()
    bridge.handle(RtResponseCreated("r1", 1.0), 1.0)
    bridge.handle(RtOutputItemAdded("r1", "a1", 1.0), 1.0)
    bridge.handle(PlayoutChanged(True, "r1", 1.1), 1.1)
    bridge.handle(RealtimeLost(1, 1001, "maximum duration", 2.0), 2.0)
    bridge.handle(Tick(2.3), 2.3)
    restored = out_events(bridge.handle(RealtimeConnected(2, 2.5), 2.5))
    assert not any(isinstance(e, RtResponseCreate) for e in restored)  # the rest of the answer still plays
    resumed = out_events(bridge.handle(PlayoutChanged(False, "r1", 3.0), 3.0))
    assert isinstance(resumed[0], RtItemCreate) and resumed[0].item.role == "system"
    assert isinstance(resumed[1], RtResponseCreate)


def test_a_rate_limited_preemptive_answer_never_sticks_and_the_turn_is_answered_after_the_reset() -> None:
    bridge = live_bridge()
    assert out_events(bridge.handle(PreemptiveAnswer("u1", 1.0), 1.0))
    bridge.handle(RtRateLimits(1.5, 1.05), 1.05)
    bridge.handle(RtError("rate_limit_exceeded", "slow down", "", 1.1, "rate_limit_error"), 1.1)
    assert bridge.responses.preempt.idle and bridge.link.retry.state.due_at < 0  # the verdict asks for the answer itself
    first = out_events(bridge.handle(AnswerRequest("u1", "כן", 1.2), 1.2))
    assert first == [RtResponseCreate()]
    bridge.handle(RtError("rate_limit_exceeded", "slow down", "", 1.3, "rate_limit_error"), 1.3)
    assert not out_events(bridge.handle(Tick(2.5), 2.5))  # the limit resets at 2.55 s
    assert out_events(bridge.handle(Tick(2.6), 2.6)) == [RtResponseCreate()]
    bridge.handle(RtResponseCreated("r1", 2.7), 2.7)
    assert bridge.counters()["responses_retried"] == 1
    # the next turn can be preemptive again
    bridge.handle(RtResponseDone("r1", "completed", "", 4.0), 4.0)
    assert out_events(bridge.handle(PreemptiveAnswer("u2", 5.0), 5.0)) == [RtResponseCreate()]


def test_a_fatal_error_gives_up_for_the_fallback() -> None:
    bridge = live_bridge()
    out = bridge.handle(RtError("insufficient_quota", "no quota", "", 1.0), 1.0)
    assert RealtimeGaveUp("CA1", "realtime_insufficient_quota") in out and bridge.link.phase is LinkPhase.FAILED
    assert not out_events(bridge.handle(AnswerRequest("u1", "כן", 1.1), 1.1))


def test_the_first_session_failing_to_open_ends_in_the_fallback_within_the_budget() -> None:
    bridge = RealtimeBridgeCore(BridgeState("CA1"), settings())
    start = bridge.handle(StartCall(settings(), 0.0), 0.0)
    assert out_events(start)  # session.update and the greeting wait for the first connection
    gave_up: list[object] = []
    now = 0.0
    first = start[0]
    assert isinstance(first, OpenRealtime)
    attempts = {1: first.timeout_s}  # generation → when the gateway gives up on it
    refused_at = {1: 0.5, 2: 3.0}  # the first two are refused outright; the third never answers
    while not gave_up and now < 20:
        now = round(now + 0.1, 1)
        for generation, deadline in list(attempts.items()):
            if now >= min(deadline, refused_at.get(generation, deadline)):
                del attempts[generation]
                bridge.handle(RealtimeConnectFailed(generation, "HTTP 503", now), now)
        for action in bridge.handle(Tick(now), now):
            if isinstance(action, OpenRealtime):
                attempts[action.generation] = now + action.timeout_s
            if isinstance(action, RealtimeGaveUp):
                gave_up.append(action)
    assert 5.9 <= now <= 6.2 and bridge.link.session.state.generation == 3, now


# --------------------------------------------------------------------------- TwilioRx: the gap buffer
def frame(n: int) -> TwilioMediaIn:
    import base64
    return TwilioMediaIn(base64.b64encode(bytes([n]) * 160).decode(), n + 1, n * 0.02)


def test_caller_frames_during_a_gap_are_replayed_in_order_and_the_oldest_dropped_beyond_the_bound() -> None:
    rx = TwilioRxCore(RxState("CA1"), gap_frames=5)
    sent = [frame(n) for n in range(12)]
    assert rx.handle(sent[0], 0.0)[0] == ToRealtime("CA1", RtAppend(sent[0].payload))
    rx.handle(sent[1], 0.02)
    rx.handle(LinkDown((sent[1].payload,), 0.03), 0.03)  # frame 1 was still queued for the dead socket
    for msg in sent[2:9]:
        assert not any(isinstance(a, ToRealtime) for a in rx.handle(msg, msg.at))
    replay = [a.event.audio for a in rx.handle(LinkUp(0.2), 0.2)
              if isinstance(a, ToRealtime) and isinstance(a.event, RtAppend)]
    assert replay == [m.payload for m in sent[4:9]]  # 8 held, the oldest 3 dropped
    c = rx.s.counters
    assert (c.frames_buffered_gap, c.frames_replayed_gap, c.frames_dropped_gap) == (8, 5, 3)
    assert c.frames_in == 9 and c.frames_forwarded == 6  # frame 0 + the 5 replayed
    assert rx.handle(sent[9], 0.2)[0] == ToRealtime("CA1", RtAppend(sent[9].payload))


def test_a_raising_rx_handler_changes_nothing_so_a_retry_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    import actors.cores.twilio_rx as rx_module

    rx = TwilioRxCore(RxState("CA1", ai_audible=True))
    rx.handle(frame(0), 0.0)
    before = msgspec.msgpack.encode(rx.snapshot())

    def broken(raw: bytes) -> float:
        raise ValueError("bad frame")
    monkeypatch.setattr(rx_module, "raw_level_db", broken)
    with pytest.raises(ValueError):
        rx.handle(frame(1), 0.02)
    assert msgspec.msgpack.encode(rx.snapshot()) == before
    monkeypatch.undo()
    out = rx.handle(frame(1), 0.02)  # the retry: counted once, forwarded once
    assert rx.s.counters.frames_in == 2 and rx.s.counters.frames_forwarded == 2
    assert out[0] == ToRealtime("CA1", RtAppend(frame(1).payload))


def test_speech_started_marks_the_caller_speaking_for_the_rollover() -> None:
    bridge = live_bridge()
    bridge.handle(RtSpeechStarted("u1", 100, 1.0), 1.0)
    assert bridge.caller.state.speaking
    bridge.handle(RtSpeechStopped("u1", 900, 1.8), 1.8)
    assert not bridge.caller.state.speaking


def test_a_turn_the_lost_session_never_transcribed_is_replayed_from_its_start() -> None:
    rx = TwilioRxCore(RxState("CA1"), gap_frames=50)
    sent = [frame(n % 250) for n in range(40)]
    for msg in sent[:30]:
        rx.handle(msg, msg.at)  # frames 0-29 written to the first session (its clock: 0-600 ms)
    # the caller's turn started at 300 ms (frame 15); speech stopped, the transcript never came
    rx.handle(LinkDown((sent[29].payload,), 0.6, replay_from_ms=300), 0.6)
    for msg in sent[30:34]:
        assert not any(isinstance(a, ToRealtime) for a in rx.handle(msg, msg.at))
    replay = [a.event.audio for a in rx.handle(LinkUp(0.7), 0.7)
              if isinstance(a, ToRealtime) and isinstance(a.event, RtAppend)]
    assert replay == [m.payload for m in sent[15:34]]
    c = rx.s.counters
    assert (c.frames_resent_turn, c.frames_replayed_gap, c.frames_dropped_gap) == (14, 5, 0)
    assert c.frames_forwarded == 34 and c.frames_in == 34  # each frame counted once
    # the new session's clock starts at frame 15: a second loss maps its ms onto the right frames
    for msg in sent[34:40]:
        rx.handle(msg, msg.at)
    rx.handle(LinkDown((), 0.9, replay_from_ms=380), 0.9)  # 380 ms into the new session = frame 15 + 19 = 34
    again = [a.event.audio for a in rx.handle(LinkUp(1.0), 1.0)
             if isinstance(a, ToRealtime) and isinstance(a.event, RtAppend)]
    assert again == [m.payload for m in sent[34:40]]


def test_the_bridge_asks_for_the_untranscribed_turn_and_forgets_a_transcribed_one() -> None:
    bridge = live_bridge()
    bridge.handle(RtSpeechStarted("u1", 300, 1.0), 1.0)
    bridge.handle(RtSpeechStopped("u1", 2000, 2.3), 2.3)
    lost = bridge.handle(RealtimeLost(1, 1006, "lost", 2.4), 2.4)
    assert LinkDown((), 2.4, 300) in lost
    bridge.handle(Tick(2.7), 2.7)
    bridge.handle(RealtimeConnected(2, 2.8), 2.8)
    bridge.handle(RtSpeechStarted("u2", 0, 3.0), 3.0)
    bridge.handle(RtTranscriptDone("u2", "כן", 3.5), 3.5)
    assert LinkDown((), 4.0, -1) in bridge.handle(RealtimeLost(2, 1006, "lost", 4.0), 4.0)
