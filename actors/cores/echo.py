"""Echo path estimator — is the caller's energy our own voice coming back (speakerphone, hybrid echo)?

Theory of operation (minimal echo control, as the seed asks: it never gates or alters a caller frame,
it only vetoes barge-in evidence):
  * The TxPacer reports the level of every frame it sends, stamped with the frame's slot on the
    playout schedule (20 ms slots of the monotonic clock): the reference — what the caller's phone
    played, ducks included. TwilioRx records the level of every caller frame while the AI is audible,
    stamped with its arrival slot.
  * Every `estimate_every` caller frames (25: twice a second) the last `window` slots of the caller's
    envelope are correlated (Pearson, on dB) with the reference delayed by every candidate delay in
    [`min_delay_ms`, `max_delay_ms`]. The best delay is taken when its correlation reaches `min_corr`;
    the loss is the median of reference − caller over the loudest quarter of the reference (where the
    echo stands clear of the line noise). An estimate is kept until a better-correlated one replaces
    it, so double talk (which spoils the correlation) never erases a known echo path.
  * With a path known, a caller frame whose level is at most the echo predicted for its slot (the
    loudest reference within ±1 slot of the delay, minus the loss) plus `margin_db` is explained by
    the echo: it does not count toward a barge-in candidate (counted as an echo veto). A caller
    talking over the echo is louder than the echo by more than the margin and still counts.
The greeting (barge-in off) is where the path is usually learned first.
"""
from __future__ import annotations

import msgspec
import numpy as np

SLOT_S = 0.02
RING = 512  # slots kept (10.24 s): window + the largest delay, with room
SILENT_DB = 0.0  # the level of digital silence (ulaw.level_db)
MIN_LOSS_DB = 3.0  # an echo is always quieter than what was played (speakerphone, line hybrid)


def slot_of(t: float) -> int:
    return int(round(t / SLOT_S))


class EchoState(msgspec.Struct):
    ref_db: list[float] = msgspec.field(default_factory=lambda: [SILENT_DB] * RING)
    ref_slot: list[int] = msgspec.field(default_factory=lambda: [-1] * RING)
    caller_db: list[float] = msgspec.field(default_factory=lambda: [SILENT_DB] * RING)
    caller_slot: list[int] = msgspec.field(default_factory=lambda: [-1] * RING)
    frames_since_estimate: int = 0
    known: bool = False
    delay_slots: int = 0
    loss_db: float = 0.0
    corr: float = 0.0
    estimates: int = 0


class EchoEstimator:
    def __init__(self, state: EchoState, min_delay_ms: int = 40, max_delay_ms: int = 600, window: int = 100,
                 estimate_every: int = 25, min_corr: float = 0.6, margin_db: float = 6.0) -> None:
        self.s = state
        # working copies (numpy: per-frame writes are cheap); the state's lists are refreshed by sync()
        self.ref_db = np.array(state.ref_db, dtype=np.float64)
        self.ref_slot = np.array(state.ref_slot, dtype=np.int64)
        self.caller_db = np.array(state.caller_db, dtype=np.float64)
        self.caller_slot = np.array(state.caller_slot, dtype=np.int64)
        self.delays = np.arange(max(1, min_delay_ms // 20), max_delay_ms // 20 + 1)
        self.window = window
        self.estimate_every = estimate_every
        self.min_corr = min_corr
        self.margin_db = margin_db

    def played(self, first_play_at: float, levels_db: tuple[float, ...]) -> None:
        slots = slot_of(first_play_at) + np.arange(len(levels_db))
        self.ref_db[slots % RING], self.ref_slot[slots % RING] = levels_db, slots

    def sync(self) -> EchoState:
        """The state with the working arrays written back (a snapshot for a restarted TwilioRx)."""
        s = self.s
        s.ref_db, s.ref_slot = self.ref_db.tolist(), self.ref_slot.tolist()
        s.caller_db, s.caller_slot = self.caller_db.tolist(), self.caller_slot.tolist()
        return s

    def heard(self, now: float, level_db: float) -> bool:
        """Record one caller frame (while the AI is audible); True if the echo explains its energy."""
        s = self.s
        slot = slot_of(now)
        explained = self._explains(slot, level_db)
        self.caller_db[slot % RING], self.caller_slot[slot % RING] = level_db, slot
        s.frames_since_estimate += 1
        if s.frames_since_estimate >= self.estimate_every:
            s.frames_since_estimate = 0
            self._estimate(slot)
        return explained

    def _explains(self, slot: int, level_db: float) -> bool:
        s = self.s
        if not s.known:
            return False
        expected = max(self._ref(slot - s.delay_slots + k) for k in (-1, 0, 1)) - s.loss_db
        return expected > SILENT_DB and level_db <= expected + self.margin_db

    def _ref(self, slot: int) -> float:
        return float(self.ref_db[slot % RING]) if self.ref_slot[slot % RING] == slot else SILENT_DB

    def _estimate(self, now_slot: int) -> None:
        s = self.s
        slots = np.arange(now_slot - self.window + 1, now_slot + 1)
        heard = self.caller_slot[slots % RING] == slots
        if heard.sum() < (self.window // 2 if s.known else self.window // 4):
            return  # the first estimate from 0.5 s of the AI: the greeting's echo is learned early
        caller = self.caller_db[slots[heard] % RING]
        shifted = slots[heard][None, :] - self.delays[:, None]
        ring = shifted % RING
        ref = np.where(self.ref_slot[ring] == shifted, self.ref_db[ring], SILENT_DB)
        ref_dev = ref - ref.mean(axis=1, keepdims=True)
        caller_dev = caller - caller.mean()
        denom = np.sqrt((ref_dev ** 2).sum(axis=1) * (caller_dev ** 2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(denom > 0, (ref_dev * caller_dev).sum(axis=1) / denom, 0.0)
        best = int(np.argmax(corr))
        if corr[best] < self.min_corr or np.std(ref[best]) < 3.0:
            return  # no clear echo in this window (or double talk, or the AI was silent): keep what is known
        if s.known and corr[best] < s.corr - 0.2:
            return
        if best in (0, len(self.delays) - 1):
            return  # a peak at the edge of the searched range is not a located delay
        loud = ref[best] >= np.percentile(ref[best], 75)
        loss = float(np.median(ref[best][loud] - caller[loud]))
        if loss < MIN_LOSS_DB:
            return  # louder than what we played: the caller's own sound happened to follow our envelope
        s.known, s.delay_slots, s.loss_db, s.corr = True, int(self.delays[best]), loss, float(corr[best])
        s.estimates += 1

    @property
    def delay_ms(self) -> int:
        return self.s.delay_slots * 20 if self.s.known else -1
