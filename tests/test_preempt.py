"""Preemptive answers: bridge and pacer cores, on a virtual clock."""
from __future__ import annotations

import base64

from actors.cores.bridge import BridgeState, RealtimeBridgeCore
from actors.cores.pacer import PacerState, TxPacerCore
from actors.ingress_messages import RtAudioDelta, RtOutputItemAdded, RtResponseCreated, Tick
from actors.messages import AnswerRequest, DeleteItem, DiscardAudio, HoldAudio, LetStand, PreemptiveAnswer, ReleaseAudio
from actors.wire_messages import RtItemDelete, RtResponseCancel, RtResponseCreate, ToRealtime, ToTwilio, TwMedia
from tests.conftest import settings


def split(actions: list[object]) -> tuple[list[object], list[object]]:
    wire: list[object] = [a.event for a in actions if isinstance(a, ToRealtime)]
    internal = [a for a in actions if not isinstance(a, ToRealtime) and type(a).__name__ != "LogLine"]
    return wire, internal


def test_turn_releases_the_held_answer_without_a_second_create() -> None:
    b = RealtimeBridgeCore(BridgeState("CA1"), settings())
    assert split(b.handle(PreemptiveAnswer("u1", 1.0), 1.0))[0] == [RtResponseCreate()]
    assert split(b.handle(RtResponseCreated("r1", 1.1), 1.1))[1] == [HoldAudio("r1", 1.1)]
    wire, internal = split(b.handle(AnswerRequest("u1", "כן", 1.4), 1.4))
    assert wire == [] and internal == [ReleaseAudio("r1", 1.4)]


def test_filler_discards_the_held_answer_and_deletes_its_item() -> None:
    b = RealtimeBridgeCore(BridgeState("CA1"), settings())
    b.handle(PreemptiveAnswer("u1", 1.0), 1.0)
    b.handle(RtResponseCreated("r1", 1.1), 1.1)
    b.handle(RtOutputItemAdded("r1", "a1", 1.1), 1.1)
    wire, internal = split(b.handle(DeleteItem("u1", 1.4), 1.4))
    assert wire == [RtResponseCancel("r1"), RtItemDelete("a1"), RtItemDelete("u1")]
    assert internal == [DiscardAudio("r1", 1.4)]


def test_a_backchannel_drops_the_held_answer_but_keeps_the_callers_words() -> None:
    b = RealtimeBridgeCore(BridgeState("CA1"), settings())
    b.handle(PreemptiveAnswer("u1", 1.0), 1.0)
    b.handle(RtResponseCreated("r1", 1.1), 1.1)
    b.handle(RtOutputItemAdded("r1", "a1", 1.1), 1.1)
    wire, internal = split(b.handle(LetStand("u1", 1.4), 1.4))
    assert wire == [RtResponseCancel("r1"), RtItemDelete("a1")]  # the answer goes; "כן" (u1) stays
    assert internal == [DiscardAudio("r1", 1.4)]
    assert b.responses.state.counters.backchannels_kept == 1


def test_verdicts_before_response_created_are_applied_on_creation() -> None:
    b = RealtimeBridgeCore(BridgeState("CA1"), settings())
    b.handle(PreemptiveAnswer("u1", 1.0), 1.0)
    assert split(b.handle(DeleteItem("u1", 1.05), 1.05))[0] == [RtItemDelete("u1")]
    wire, internal = split(b.handle(RtResponseCreated("r1", 1.1), 1.1))
    assert wire == [RtResponseCancel("r1")] and internal == [DiscardAudio("r1", 1.1)]
    assert split(b.handle(RtOutputItemAdded("r1", "a1", 1.1), 1.1))[0] == [RtItemDelete("a1")]
    c = RealtimeBridgeCore(BridgeState("CA2"), settings())
    c.handle(PreemptiveAnswer("u2", 2.0), 2.0)
    assert split(c.handle(AnswerRequest("u2", "לא", 2.05), 2.05)) == ([], [])
    assert split(c.handle(RtResponseCreated("r2", 2.1), 2.1)) == ([], [])  # plays as it comes


def test_no_preemption_while_a_response_is_active() -> None:
    b = RealtimeBridgeCore(BridgeState("CA1"), settings())
    b.handle(RtResponseCreated("r0", 0.5), 0.5)
    assert split(b.handle(PreemptiveAnswer("u1", 1.0), 1.0))[0] == []


def test_pacer_holds_then_releases_or_discards() -> None:
    p = TxPacerCore(PacerState("CA1", "MZ1"))
    p.handle(HoldAudio("r1", 0.0), 0.0)
    p.handle(RtAudioDelta("r1", "a1", b"\x01" * 800, 0.0), 0.0)
    assert not [a for a in p.handle(Tick(0.02), 0.02) if isinstance(a, ToTwilio)]
    p.handle(ReleaseAudio("r1", 0.03), 0.03)
    assert not [a for a in p.handle(Tick(0.04), 0.04) if isinstance(a, ToTwilio)]  # the jitter pre-roll (100 ms)
    sent = [e for a in p.handle(Tick(0.12), 0.12) if isinstance(a, ToTwilio) for e in a.events if isinstance(e, TwMedia)]
    assert [base64.b64decode(e.media.payload) for e in sent] == [b"\x01" * 160] * 5
    q = TxPacerCore(PacerState("CA2", "MZ2"))
    q.handle(HoldAudio("r2", 0.0), 0.0)
    q.handle(RtAudioDelta("r2", "a2", b"\x02" * 800, 0.0), 0.0)
    q.handle(DiscardAudio("r2", 0.1), 0.1)
    q.handle(RtAudioDelta("r2", "a2", b"\x02" * 800, 0.15), 0.15)
    assert not [a for a in q.handle(Tick(0.2), 0.2) if isinstance(a, ToTwilio)]
    assert q.s.counters.frames_flushed == 5 and q.s.counters.late_deltas_dropped == 1
