"""JitterBuffer — when the TxPacer may start (or, after running dry, resume) playing a response.

Theory of operation: Realtime deltas cross the internet and arrive in bursts with gaps, sometimes
slower than real time. Starting a response with whatever has arrived leaves no slack: under real-time
delivery the next delta is due exactly when the audio in hand runs out, so every gap becomes an
underrun — a held preemptive answer released when its verdict comes right around its first delta
would begin with about one delta in hand, and so would a plain response.

What a start must cover. Frames are cut from the response's first byte; frame m plays at `t + m·frame`
when playback starts at `t`, and the first frame that needs delta k is the one holding its first byte
(A_k: ms of audio before delta k). So delta k is needed `n_k = o_k + carry_k` after the first delta
arrived, on a playback started then — its *need offset* — where `o_k = arrival_k − first arrival − A_k`
is its offset from the real-time schedule anchored at the first delta and `carry_k = A_k mod frame` the
part of a frame the re-framer holds back until delta k comes. Playback from `t` never runs dry iff
`t ≥ first arrival + n_k` for every k: the clairvoyant start (tests/pacing_sim.py). Frames leave only on
ticks, so a delta arriving within the tick before its frame's slot leaves exactly at the slot, with
nothing in Twilio's buffer: a late tick or a slow packet is then a gap. Every bound below therefore adds
one tick of lead (a frame): each delta in hand a tick before its first frame is due.

Two bounds on the deltas still to come, learned from the call's earlier responses (the last
RESPONSES_KEPT) and from the current one so far, each + the tick of lead:
  * `need_ms` — the *rise*: how far a need offset rose above the running minimum offset. Delivery faster
    than real time never raises the offset, so there the rise is the carry alone (under a frame,
    measured rather than assumed); a late delta raises it by its lateness, and the lateness alone + half
    a frame is taken when that is more (the carry at the next response's latest delta need not be the
    one sampled). Scaled by (n+1)/(n−1) for the n deltas seen (a sample's range understates its spread;
    a short greeting would teach too little). Future deltas are needed by `min offset so far + need_ms`:
    early deltas lower the start as they come.
  * `first_need_ms` — the largest need offset against the first delta's schedule, plus the spread of the
    response's bursts around its own line (least squares; the next response's first delta may fall as
    early in that spread as this one's fell late). Deltas running ahead make it negative: a response
    that runs ahead as the earlier ones did starts on the next tick. Jitter makes it large and leaves
    `need_ms` to decide. Deltas arriving within BURST_MS of the previous one are one point of the line.

Playback starts on the first tick `t` with `t − first arrival ≥ max(preroll_min_ms, min(first_need_ms,
min offset + need_ms))`. The floor (preroll_min_ms, 40 ms: the largest carry + the tick of lead) stays in
every phase: an answer slower than every one learned from cannot be told from them by its first delta, and
at real time the floor is what keeps it whole. A rule without it (LEARNED answers running ahead started on
the next tick) ran dry on every call whose delivery slowed from 1.5× to real time (bench/RESULTS.md, "Answer
sooner"). What the bounds buy under the floor is bursts: deltas arriving in bursts are points of a line, not
a spread, so a bursty answer starts at the floor instead of waiting out the bursts as if they were jitter
(bursts of 4: p50 136 → ~50 ms after the first delta). The phases (`JitterState.phase`):
  * LEARNING — nothing learned yet (the call's first response): need_ms ≥ preroll_initial_ms; deltas
    running ahead still lower the start (a 4× greeting starts after ~100 ms of the 300).
  * GUARDED — fewer than RESPONSES_TO_TRUST responses learned: need_ms alone. One fast greeting does not
    prove that an answer after it will run ahead too.
  * LEARNED — both bounds: clean real-time delivery starts at the floor, bursty delivery at the floor or
    the bursts' line + a tick, jittery delivery when the jitter learned has passed.
A resume after running dry inside a response (or a head-of-queue response the buffer has no arrivals
for) waits for max(preroll_min_ms, need_ms) of queue or of time: the stream is stalling, the floor stays.
An underrun grows both bounds at once (need_ms by UNDERRUN_PENALTY_MS and a tick; first_need_ms to the
same, which ends the running-ahead start) and they shrink only as older responses leave the window — but
after a start on first_need_ms alone (`ahead_start`) it is that trust that failed: the response did not
run ahead as the earlier ones had. Then only the trust ends (for the window); need_ms stays.

The pacer's lead (how far ahead Twilio is fed) stays fixed: slack kept in our queue can still be ducked
and flushed at a barge-in, slack in Twilio's buffer could not. Measured on virtual schedules against the
clairvoyant start and the causal bound (the best a rule knowing only the past can do) in
tests/test_jitter.py and `python -m bench.jitter_floor`; figures in bench/RESULTS.md ("Answer sooner").
Pure and clock-free: every input carries `now`; each step computes first and changes state last.
"""
from __future__ import annotations

import math
from typing import Literal

import msgspec

RESPONSES_KEPT = 8
RESPONSES_TO_LEARN = 1  # until this many responses were learned from, the call is LEARNING
RESPONSES_TO_TRUST = 2  # until this many, GUARDED: the bursts' line is not yet trusted
UNDERRUN_PENALTY_MS = 40
UNKNOWN = -1e9
UNTRUSTED = 1e6  # a need offset that lowers no start
POINTS_KEPT = 512  # a response's (audio before, arrival) pairs kept for its line: ~1 min of deltas
BURST_MS = 2.0  # a delta this close after the previous one came with it: one burst, one point of the line

Phase = Literal["learning", "guarded", "learned"]


class ArrivalTrack(msgspec.Struct):
    response_id: str
    first_at: float
    audio_ms: float = 0.0
    min_offset_ms: float = 0.0  # earliest (arrival − first arrival − audio before it) so far
    max_rise_ms: float = UNKNOWN  # largest need offset above the running minimum offset (carry included)
    max_late_ms: float = UNKNOWN  # largest rise of the offset alone (the lateness part of a rise)
    max_need_ms: float = UNKNOWN  # largest need offset (offset + carry): against the first delta's schedule
    deltas: int = 0
    last_ms: float = 0.0  # the latest delta, ms after the first
    points: list[tuple[float, float]] = msgspec.field(default_factory=list)  # (audio before, ms after first)

    def rise(self, frame_ms: int, scaled: bool) -> float:
        """The rise this delivery can reach: its largest, or its largest lateness + half a frame when that
        is more — the carry at the next response's latest delta is not the one sampled here (the lateness
        alone + a frame and a half was the whole rule before the carry was measured; never less now).
        `scaled`: from the `deltas` seen — a sample's range understates the spread it comes from, by
        (n−1)/(n+1) for a bounded one (the unbiased range estimate of a uniform); a 2 s greeting's 11
        deltas would otherwise teach 20% less than a long answer meets. Only the lateness is scaled:
        the carry is bounded by a frame, not sampled from a spread."""
        if self.max_rise_ms <= UNKNOWN:
            return UNKNOWN
        extra = self.max_late_ms * 2 / (self.deltas - 1) if scaled and self.deltas >= 3 else 0.0
        return max(self.max_rise_ms, self.max_late_ms + frame_ms / 2) + extra

    def first_need(self) -> float:
        """The largest need offset against the first delta's schedule, plus the spread of the arrivals
        around the delivery's own line (its speed), scaled like a range: the first delta is somewhere in
        that spread, and the next response's may come as early as it allows. Fewer than 3 deltas show no
        spread: UNTRUSTED."""
        n = len(self.points)
        if n < 3:
            return UNTRUSTED
        mean_a = sum(a for a, _ in self.points) / n
        mean_t = sum(t for _, t in self.points) / n
        var = sum((a - mean_a) ** 2 for a, _ in self.points)
        slope = sum((a - mean_a) * (t - mean_t) for a, t in self.points) / var if var > 0 else 0.0
        residuals = [t - mean_t - slope * (a - mean_a) for a, t in self.points]
        return self.max_need_ms + (max(residuals) - min(residuals)) * (n + 1) / (n - 1)


class JitterState(msgspec.Struct):
    phase: Phase = "learning"
    need_ms: int = 100
    recent_rise_ms: list[int] = msgspec.field(default_factory=list)  # per finished response, newest last
    recent_need_ms: list[int] = msgspec.field(default_factory=list)  # largest need offset, per response
    first_need_ms: int = 100  # starting this long after the first delta covers every need offset learned
    track: ArrivalTrack | None = None
    waiting_since: float = -1.0  # a start (or resume) is pending since then
    ahead_start: bool = False  # the current run started on first_need_ms alone (need_ms would have waited)
    waits: int = 0
    waited_ms_total: int = 0
    waited_ms_max: int = 0


class JitterBuffer:
    def __init__(self, state: JitterState, frame_ms: int, preroll_min_ms: int, preroll_max_ms: int,
                 preroll_initial_ms: int) -> None:
        self.s = state
        self.frame_ms = frame_ms
        self.min_ms = preroll_min_ms
        self.max_ms = preroll_max_ms
        self.initial_ms = preroll_initial_ms  # before anything is known of this call's delivery
        self._update_need()  # derived from what the state holds (a new call: preroll_initial_ms)

    def arrived(self, response_id: str, audio_ms: float, now: float) -> None:
        """A delta of `audio_ms` for `response_id` arrived at `now`."""
        s = self.s
        track = s.track
        if track is None or track.response_id != response_id:
            if track is not None:
                self._close(track)
            track = s.track = ArrivalTrack(response_id, now)
        elapsed = (now - track.first_at) * 1000.0
        measured = self._measured(track, elapsed)
        point = track.audio_ms == 0 or elapsed - track.last_ms > BURST_MS  # not in the previous delta's burst
        track.min_offset_ms, track.max_late_ms, track.max_rise_ms, track.max_need_ms = measured
        if point and len(track.points) < POINTS_KEPT:
            track.points.append((track.audio_ms, elapsed))
        track.audio_ms += audio_ms
        track.last_ms = elapsed
        track.deltas += 1
        self._update_need()

    def _measured(self, track: ArrivalTrack, elapsed: float) -> tuple[float, float, float, float]:
        """The track's (min offset, max lateness, max rise, max need offset) with a delta arriving `elapsed`
        ms after the first (the first delta's offset is 0 by definition: nothing to measure)."""
        if track.audio_ms == 0:
            return track.min_offset_ms, track.max_late_ms, track.max_rise_ms, track.max_need_ms
        offset = elapsed - track.audio_ms
        carry = track.audio_ms % self.frame_ms  # of the frame this delta completes, already in hand
        min_offset = min(track.min_offset_ms, offset)
        return (min_offset, max(track.max_late_ms, offset - min_offset),
                max(track.max_rise_ms, offset - min_offset + carry), max(track.max_need_ms, offset + carry))

    def _close(self, track: ArrivalTrack) -> None:
        if track.max_rise_ms <= UNKNOWN:
            return  # one delta: nothing learned
        self._learn(math.ceil(track.rise(self.frame_ms, scaled=True)), math.ceil(track.first_need()))

    def _learn(self, rise_ms: int, need_ms: int) -> None:
        """One more response's rise and need offset (or an underrun's), the last RESPONSES_KEPT kept."""
        s = self.s
        rises = [*s.recent_rise_ms, rise_ms][-RESPONSES_KEPT:]
        needs = [*s.recent_need_ms, need_ms][-RESPONSES_KEPT:]
        phase: Phase = ("learned" if len(rises) >= RESPONSES_TO_TRUST
                        else "guarded" if len(rises) >= RESPONSES_TO_LEARN else "learning")
        s.recent_rise_ms, s.recent_need_ms, s.phase = rises, needs, phase

    def _update_need(self) -> None:
        """need_ms and first_need_ms from what was learned and what the current response shows so far, each
        + a tick of lead; first_need_ms only once LEARNED (before, preroll_max_ms: it lowers no start)."""
        s, track = self.s, self.s.track
        rise = max(track.rise(self.frame_ms, scaled=False) if track is not None else UNKNOWN,
                   max(s.recent_rise_ms, default=UNKNOWN))
        need = max(track.max_need_ms if track is not None else UNKNOWN, max(s.recent_need_ms, default=UNKNOWN))
        floor = self.initial_ms if s.phase == "learning" else 0
        need_ms = min(self.max_ms, max(floor, math.ceil(rise) + self.frame_ms))
        first_need_ms = min(self.max_ms, math.ceil(need) + self.frame_ms) if s.phase == "learned" else self.max_ms
        s.need_ms, s.first_need_ms = need_ms, first_need_ms

    def underrun(self) -> None:
        """The queue ran dry inside a response. After a start on first_need_ms alone, the response did not
        run ahead as the earlier ones had: that trust ends (for the window), need_ms stays. Otherwise the
        buffer was too small: grow it at once."""
        s = self.s
        if s.ahead_start:
            rise, need = s.need_ms - self.frame_ms, math.ceil(UNTRUSTED)
        else:
            rise = need = min(self.max_ms, s.need_ms + UNDERRUN_PENALTY_MS)  # learned as a rise: + the tick of lead
        self._learn(rise, need)
        s.ahead_start = False
        self._update_need()

    def ready(self, response_id: str, queued_ms: int, complete: bool, now: float, resuming: bool) -> bool:
        """May playback of `response_id` start (or resume) now?

        Start: every delta still to come is needed no earlier than `first + min offset + need_ms`
        (module docstring), so start once that has passed — at once when the deltas ran ahead. Resume
        after running dry: rebuild max(floor, need_ms) of queue (or wait that long). A complete response
        starts at once."""
        s = self.s
        since = s.waiting_since if s.waiting_since >= 0 else now
        waited = (now - since) * 1000.0
        go, ahead = self._go(response_id, queued_ms, complete, now, resuming, waited)
        if not go:
            s.waiting_since = since
            return False
        s.ahead_start = ahead
        waited_ms = int(round(waited))
        s.waits += 1
        s.waited_ms_total += waited_ms
        s.waited_ms_max = max(s.waited_ms_max, waited_ms)
        s.waiting_since = -1.0
        return True

    def _go(self, response_id: str, queued_ms: int, complete: bool, now: float, resuming: bool,
            waited: float) -> tuple[bool, bool]:
        """(may it start, and only because of first_need_ms)."""
        s, track = self.s, self.s.track
        if complete:
            return True, False
        if resuming or track is None or track.response_id != response_id:  # a stalling stream: the floor stays
            need = max(self.min_ms, s.need_ms)
            return queued_ms >= need or waited >= need, False
        floor = self.min_ms  # every phase: an answer slowing to real time stays whole (module docstring)
        elapsed, by_rise = (now - track.first_at) * 1000.0, s.need_ms + track.min_offset_ms
        go = elapsed >= max(floor, min(s.first_need_ms, by_rise))
        return go, go and elapsed < max(floor, by_rise)

    def reset(self) -> None:
        """A cut or discard: whatever was pending is gone."""
        self.s.waiting_since = -1.0

    def counters(self) -> dict[str, int]:
        s = self.s
        return {"jitter_need_ms": s.need_ms, "jitter_starts": s.waits, "jitter_wait_ms_max": s.waited_ms_max,
                "jitter_wait_ms_total": s.waited_ms_total}
