"""Re-framing of Realtime audio deltas into Twilio frames.

Theory of operation: deltas arrive in any size. Each response has its own carry-over buffer; full
160-byte frames are cut from the front as soon as they exist, the remainder waits for the next delta
of the same response. When the response's audio ends, the remainder is padded with μ-law silence
(0xFF) to a whole frame. A delta from a different response first closes the open one, so bytes of two
responses never share a frame.
"""
from __future__ import annotations

import msgspec

ULAW_SILENCE = 0xFF


class CutFrame(msgspec.Struct, frozen=True):
    response_id: str
    item_id: str
    payload: bytes  # exactly frame_bytes long; b"" marks the end of a response with no audio left
    last: bool


class ReframerState(msgspec.Struct):
    response_id: str = ""
    item_id: str = ""
    rest: bytes = b""


class Reframer:
    def __init__(self, frame_bytes: int = 160, state: ReframerState | None = None) -> None:
        self.frame_bytes = frame_bytes
        self.state = state or ReframerState()

    def push(self, response_id: str, item_id: str, audio: bytes) -> list[CutFrame]:
        frames: list[CutFrame] = []
        st = self.state
        if st.response_id and (st.response_id != response_id or st.item_id != item_id):
            frames.extend(self.finish(st.response_id))
            st = self.state
        st.response_id, st.item_id = response_id, item_id
        data = st.rest + audio if st.rest else audio
        n = self.frame_bytes
        full = len(data) - len(data) % n
        for off in range(0, full, n):
            frames.append(CutFrame(response_id, item_id, data[off : off + n], False))
        st.rest = data[full:]
        return frames

    def finish(self, response_id: str) -> list[CutFrame]:
        """Close `response_id`: pad the remainder; the returned last frame carries `last=True`."""
        st = self.state
        if st.response_id != response_id:
            return []
        rest, item_id = st.rest, st.item_id
        self.state = ReframerState()
        if rest:
            padded = rest + bytes([ULAW_SILENCE]) * (self.frame_bytes - len(rest))
            return [CutFrame(response_id, item_id, padded, True)]
        return [CutFrame(response_id, item_id, b"", True)]

    def drop(self, response_id: str) -> int:
        """Forget a cut response's remainder; returns the bytes dropped."""
        if self.state.response_id != response_id:
            return 0
        dropped = len(self.state.rest)
        self.state = ReframerState()
        return dropped
