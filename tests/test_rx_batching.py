"""TwilioRx batches caller frames into fewer input_audio_buffer.append events ([realtime] append_ms)
without losing, repeating or reordering a byte — through link drops, replays, rollovers and the end of
the call. Pure core on a virtual clock; the wire encoding and `unsent_appends` are the gateway's own."""
from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.ingress_messages import TwilioMediaIn
from actors.link_messages import LinkDown, LinkUp
from actors.messages import CollectCounters
from actors.wire_messages import RtAppend, ToRealtime
from gateway.wire import decode_twilio, encode_realtime, unsent_appends

ODD_SIZES = (160, 80, 320, 160, 1, 160, 480)  # Twilio sends 160; the bridge must not depend on it


def frame(n: int, odd: bool = False) -> TwilioMediaIn:
    """Frame n as the edge decodes it: its bytes say which frame it is."""
    size = ODD_SIZES[n % len(ODD_SIZES)] if odd else 160
    body = (bytes([n % 256, n // 256 % 256]) * size)[:size]
    wire = '{"event":"media","media":{"chunk":"%d","payload":"%s"}}' % (n + 1, base64.b64encode(body).decode())
    msg = decode_twilio(wire, n * 0.02)
    assert isinstance(msg, TwilioMediaIn) and msg.raw == body
    return msg


def appended(actions: list[object]) -> list[bytes]:
    return [base64.b64decode(a.event.audio) for a in actions if isinstance(a, ToRealtime) and isinstance(a.event, RtAppend)]


def test_two_frames_per_append_and_the_last_one_leaves_at_the_end_of_the_call() -> None:
    rx = TwilioRxCore(RxState("CA1"), append_frames=2)
    frames = [frame(n) for n in range(5)]
    out = [appended(rx.handle(f, f.at)) for f in frames]
    assert [len(x) for x in out] == [0, 1, 0, 1, 0]  # an append every second frame
    assert out[1] == [frames[0].raw + frames[1].raw] and out[3] == [frames[2].raw + frames[3].raw]
    assert appended(rx.handle(CollectCounters(0.1), 0.1)) == [frames[4].raw]  # nothing stays behind
    assert rx.s.counters.frames_forwarded == rx.s.counters.frames_in == 5
    assert appended(rx.handle(CollectCounters(0.2), 0.2)) == []  # and nothing twice


def test_one_frame_per_append_forwards_the_callers_own_string() -> None:
    rx = TwilioRxCore(RxState("CA1"), append_frames=1)
    f = frame(7)
    assert rx.handle(f, f.at)[0] == ToRealtime("CA1", RtAppend(f.payload))


def test_a_batch_left_unsent_at_a_drop_counts_as_its_frames() -> None:
    rx = TwilioRxCore(RxState("CA1"), gap_frames=100, append_frames=2)
    frames = [frame(n) for n in range(5)]
    out = [encode_realtime(a.event) for f in frames for a in rx.handle(f, f.at) if isinstance(a, ToRealtime)]
    assert len(out) == 2  # 0+1 written; 2+3 still queued; 4 waits for its batch
    rx.handle(LinkDown(unsent_appends(out[1:]), 0.1), 0.1)
    c = rx.s.counters
    assert (c.frames_forwarded, c.frames_buffered_gap) == (2, 3)
    assert appended(rx.handle(LinkUp(0.2), 0.2)) == [f.raw for f in frames[2:]]  # replayed once each


Op = tuple[str, int]
OPS = st.lists(st.one_of(st.tuples(st.just("frames"), st.integers(1, 7)), st.tuples(st.just("write"), st.integers(0, 4)),
                         st.tuples(st.just("drop"), st.just(0)), st.tuples(st.just("up"), st.just(0))), max_size=40)


@settings(max_examples=300, deadline=None)
@given(append_frames=st.integers(1, 5), ops=OPS, odd=st.booleans())
def test_every_caller_byte_reaches_the_service_once_and_in_order(append_frames: int, ops: list[Op], odd: bool) -> None:
    """A model of the gateway: appends queue for the socket and are written in arbitrary amounts; a drop
    hands back what was never written (unsent_appends), a link-up replays, a link-up while up is a
    rollover. Whatever happens, the service receives exactly the caller's bytes — frames of any size."""
    rx = TwilioRxCore(RxState("CA1"), gap_frames=10_000, turn_frames=0, append_frames=append_frames)
    queue: list[bytes] = []  # encoded appends not yet written to the socket
    received = bytearray()
    sent = bytearray()
    up, n, now = True, 0, 0.0

    def emit(actions: list[object]) -> None:
        queue.extend(encode_realtime(a.event) for a in actions if isinstance(a, ToRealtime))

    for op, count in ops:
        now += 0.02
        if op == "frames":
            for _ in range(count):
                f = frame(n, odd)
                n += 1
                sent += f.raw
                emit(rx.handle(f, now))
        elif op == "write":
            for message in queue[:count]:
                received += base64.b64decode(unsent_appends([message])[0])
            del queue[:count]
        elif op == "drop" and up:
            rx.handle(LinkDown(unsent_appends(queue), now), now)
            queue.clear()
            up = False
        elif op == "up":
            emit(rx.handle(LinkUp(now), now))
            up = True
    if not up:
        emit(rx.handle(LinkUp(now), now))
    emit(rx.handle(CollectCounters(now), now))
    for message in queue:
        received += base64.b64decode(unsent_appends([message])[0])
    assert bytes(received) == bytes(sent)
    c = rx.s.counters
    assert c.frames_in == n and c.frames_forwarded == n and c.frames_dropped_gap == 0


def test_a_rollover_starts_the_new_sessions_audio_with_the_frame_waiting_for_its_batch() -> None:
    """The new session's clock (replay_from_ms of a later loss) counts from the first frame it received —
    the one that was waiting for its batch when the rollover came, not the next one."""
    rx = TwilioRxCore(RxState("CA1"), gap_frames=100, turn_frames=100, append_frames=2)
    frames = [frame(n) for n in range(10)]
    for f in frames[:3]:
        rx.handle(f, f.at)  # frames 0+1 appended to the old session; frame 2 waits
    rx.handle(LinkUp(0.05), 0.05)  # the rollover: a new session from here
    for f in frames[3:]:
        rx.handle(f, f.at)  # 2+3, 4+5, 6+7, 8+9 to the new session
    rx.handle(LinkDown((), 0.2, replay_from_ms=40), 0.2)  # its turn began 40 ms into its audio: frame 4
    replay = appended(rx.handle(LinkUp(0.3), 0.3))
    assert replay == [f.raw for f in frames[4:]]
