"""TxPacer core on a virtual clock: schedule, lead, re-framing, marks, playout clock, cut, restore."""
from __future__ import annotations

import base64

import msgspec

from actors.cores.pacer import PacerState, TxPacerCore
from actors.ingress_messages import RtAudioDelta, RtAudioDone, Tick, TwilioMarkIn
from actors.messages import CutPlayout, PlayoutChanged, PlayoutCut, ResponseFinished, TurnEnding
from actors.wire_messages import ToTwilio, TwClear, TwMark, TwMedia

AUDIO = bytes((i * 7) % 255 for i in range(160 * 40 + 70))  # 40 full frames + 70 bytes


def pacer(lead_ms: int = 100, preroll_ms: int = 0) -> TxPacerCore:
    """The schedule tests feed whole responses at t=0: no jitter pre-roll unless asked (test_jitter.py)."""
    return TxPacerCore(PacerState("CA1", "MZ1"), 20, lead_ms, 100, 5000, preroll_ms, 300, preroll_ms)


def feed(p: TxPacerCore, audio: bytes, sizes: tuple[int, ...] = (700, 1337, 160, 2400, 999), rid: str = "r1") -> None:
    pos, i = 0, 0
    while pos < len(audio):
        chunk = audio[pos:pos + sizes[i % len(sizes)]]
        p.handle(RtAudioDelta(rid, "i" + rid, chunk, 0.0), 0.0)
        pos += len(chunk)
        i += 1


def run(p: TxPacerCore, start: float, ticks: int, jitter: tuple[float, ...] = (0.0,)) -> list[tuple[float, list[object]]]:
    out = []
    for k in range(ticks):
        now = start + k * 0.02 + jitter[k % len(jitter)]
        out.append((now, p.handle(Tick(now), now)))
    return out


def media(actions: list[object]) -> list[bytes]:
    frames = []
    for a in actions:
        if isinstance(a, ToTwilio):
            frames += [base64.b64decode(e.media.payload) for e in a.events if isinstance(e, TwMedia)]
    return frames


def marks(actions: list[object]) -> list[str]:
    return [e.mark.name for a in actions if isinstance(a, ToTwilio) for e in a.events if isinstance(e, TwMark)]


def test_lead_then_one_frame_per_tick_and_exact_audio() -> None:
    p = pacer()
    feed(p, AUDIO)
    p.handle(RtAudioDone("r1", "ir1", 0.0), 0.0)
    ticks = run(p, 1.0, 60, jitter=(0.0, 0.004, 0.009, 0.001, 0.006))
    per_tick = [len(media(a)) for _, a in ticks]
    assert per_tick[0] == 5  # 100 ms lead
    assert set(per_tick[1:37]) == {1}  # then exactly one frame per tick despite up to 9 ms jitter
    sent = b"".join(f for _, a in ticks for f in media(a))
    assert sent == AUDIO + b"\xff" * 90  # in order, nothing repeated, last frame padded
    assert p.s.counters.underruns == 0 and p.s.counters.frames_sent == 41


def test_late_tick_catches_up_without_underrun() -> None:
    p = pacer()
    feed(p, AUDIO)
    first = p.handle(Tick(0.04), 0.04)  # after the jitter buffer's two-frame floor
    assert len(media(first)) == 5
    late = p.handle(Tick(0.115), 0.115)  # 3 ticks missed, still inside the 100 ms lead
    assert len(media(late)) == 4
    assert p.s.counters.underruns == 0


def test_starvation_mid_response_counts_an_underrun() -> None:
    p = pacer()
    feed(p, AUDIO[:160 * 6])
    run(p, 0.0, 20)
    feed(p, AUDIO[160 * 6:160 * 12])
    again = p.handle(Tick(0.5), 0.5)
    assert len(media(again)) == 5
    assert p.s.counters.underruns == 1


def test_marks_every_100ms_and_end_mark_drive_the_playout_clock() -> None:
    p = pacer()
    feed(p, AUDIO)
    p.handle(RtAudioDone("r1", "ir1", 0.0), 0.0)
    ticks = run(p, 0.0, 50)
    names = [n for _, a in ticks for n in marks(a)]
    assert len(names) == 9 and names[-1].startswith("e")  # 8 marks for 41 frames + the end mark
    audible = [x for _, a in ticks for x in a if isinstance(x, PlayoutChanged)]
    assert audible == [PlayoutChanged(True, "r1", 0.0)]
    out: list[object] = []
    for name in names:
        out += p.handle(TwilioMarkIn(name, 1.0), 1.0)
    finished = [x for x in out if isinstance(x, ResponseFinished)]
    assert finished == [ResponseFinished("r1", "ir1", 820, 1.0)]
    assert PlayoutChanged(False, "r1", 1.0) in out


def test_cut_flushes_clears_reports_heard_ms_and_ignores_clear_echoes() -> None:
    p = pacer()
    feed(p, AUDIO)
    ticks = run(p, 10.0, 20)  # 24 frames sent by t = 10.38
    names = [n for _, a in ticks for n in marks(a)]
    p.handle(TwilioMarkIn(names[0], 10.1), 10.1)  # first 100 ms heard
    out = p.handle(CutPlayout("test", 10.305), 10.305)
    clears = [e for a in out if isinstance(a, ToTwilio) for e in a.events if isinstance(e, TwClear)]
    assert len(clears) == 1
    cut = next(a for a in out if isinstance(a, PlayoutCut))
    assert cut.item_id == "ir1" and cut.heard_ms == 305 and cut.sent_ms == 480
    # Twilio echoes the pending marks because of the clear: they are not "heard"
    echoes: list[object] = []
    for name in names[1:]:
        echoes += p.handle(TwilioMarkIn(name, 10.31), 10.31)
    assert not [e for e in echoes if isinstance(e, ResponseFinished)]
    assert p.clock.state.echoed_after_clear == len(names) - 1
    # the cut response's remaining audio never goes out
    p.handle(RtAudioDelta("r1", "ir1", b"\x01" * 800, 10.32), 10.32)
    assert media(p.handle(Tick(10.34), 10.34)) == []
    assert p.s.counters.late_deltas_dropped == 1


def test_snapshot_restore_continues_the_same_stream() -> None:
    a, b = pacer(), pacer()
    for p in (a, b):
        feed(p, AUDIO)
        p.handle(RtAudioDone("r1", "ir1", 0.0), 0.0)
    first = run(a, 0.0, 10)
    run(b, 0.0, 10)
    blob = msgspec.msgpack.encode(b.snapshot())
    restored = TxPacerCore(msgspec.msgpack.decode(blob, type=PacerState), 20, 100, 100, 5000, 0, 300, 0)
    rest_a = run(a, 0.2, 40)
    rest_b = run(restored, 0.2, 40)
    assert [media(x) for _, x in rest_a] == [media(x) for _, x in rest_b]
    assert b"".join(f for _, x in first + rest_a for f in media(x)) == AUDIO + b"\xff" * 90


def test_the_last_sentence_of_a_complete_response_is_announced_once() -> None:
    p = pacer()
    feed(p, AUDIO)  # 41 frames: 820 ms
    timeline = run(p, 1.0, 10)
    endings = [(t, a) for t, acts in timeline for a in acts if isinstance(a, TurnEnding)]
    assert endings == []  # the response is not complete yet: its end may be far away
    p.handle(RtAudioDone("r1", "ir1", 1.2), 1.2)
    timeline = run(p, 1.2, 40)
    endings = [(t, a) for t, acts in timeline for a in acts if isinstance(a, TurnEnding)]
    assert len(endings) == 1 and endings[0][1].response_id == "r1" and endings[0][0] == 1.2
