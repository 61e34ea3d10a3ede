"""Playout clock: what the caller has actually heard, from our send schedule and Twilio's mark echoes.

Theory of operation: the pacer sends frame k of a continuous run so that Twilio starts playing it at
`anchor + k·20 ms`; Twilio plays in order at real time, so the send schedule *is* the playout
schedule until the buffer runs dry (then a new run is anchored). Every ~100 ms of audio, and after
the last frame of each response, a uniquely named mark is sent; its echo proves the audio before it
was played. Echoes that Twilio returns because of a `clear` prove nothing and are ignored.
`heard_ms(now)` for the item being played is the larger of the last echoed position and the schedule
estimate, capped at what was sent.
"""
from __future__ import annotations

import msgspec


class PendingMark(msgspec.Struct):
    response_id: str
    item_id: str
    item_ms: int  # position in the item at the end of the audio before this mark
    end: bool  # the last mark of its response


class PlayoutState(msgspec.Struct):
    mark_seq: int = 0
    pending: dict[str, PendingMark] = msgspec.field(default_factory=dict)
    cleared: list[str] = msgspec.field(default_factory=list)
    item_id: str = ""
    response_id: str = ""
    item_origin: float = 0.0  # when the item's first byte started (or would have started) playing
    item_sent_ms: int = 0
    item_echoed_ms: int = 0
    echoed: int = 0
    echoed_after_clear: int = 0


class EchoResult(msgspec.Struct, frozen=True):
    known: bool
    mark: PendingMark | None
    idle: bool  # no mark is pending any more: everything sent has been played


class PlayoutClock:
    def __init__(self, state: PlayoutState | None = None) -> None:
        self.state = state or PlayoutState()

    def frame_scheduled(self, response_id: str, item_id: str, play_at: float, frame_ms: int) -> None:
        st = self.state
        if item_id != st.item_id:
            st.item_id, st.response_id = item_id, response_id
            st.item_origin, st.item_sent_ms, st.item_echoed_ms = play_at, 0, 0
        st.item_sent_ms += frame_ms

    def reanchored(self, now: float) -> None:
        """The buffer ran dry and a new run starts at `now`: the item resumes where it stopped."""
        st = self.state
        if st.item_id:
            st.item_origin = now - st.item_sent_ms / 1000.0

    def new_mark(self, end: bool) -> str:
        st = self.state
        st.mark_seq += 1
        name = f"{'e' if end else 'm'}{st.mark_seq}"
        st.pending[name] = PendingMark(st.response_id, st.item_id, st.item_sent_ms, end)
        return name

    def echo(self, name: str) -> EchoResult:
        st = self.state
        if name in st.cleared:
            st.cleared.remove(name)
            st.echoed_after_clear += 1
            return EchoResult(True, None, not st.pending)
        mark = st.pending.pop(name, None)
        if mark is None:
            return EchoResult(False, None, not st.pending)
        st.echoed += 1
        if mark.item_id == st.item_id:
            st.item_echoed_ms = max(st.item_echoed_ms, mark.item_ms)
        return EchoResult(True, mark, not st.pending)

    def heard_ms(self, now: float) -> int:
        st = self.state
        if not st.item_id:
            return 0
        estimate = int(round((now - st.item_origin) * 1000.0))
        return max(st.item_echoed_ms, min(st.item_sent_ms, max(0, estimate)))

    def clear(self) -> int:
        """Twilio was told to `clear`: every pending mark will echo at once and means nothing."""
        st = self.state
        names = list(st.pending)
        st.cleared.extend(names)
        st.pending.clear()
        return len(names)

    def forget_item(self) -> None:
        st = self.state
        st.item_id = st.response_id = ""
        st.item_sent_ms = st.item_echoed_ms = 0

    @property
    def marks_pending(self) -> int:
        return len(self.state.pending)
