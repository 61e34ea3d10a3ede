"""JitterBuffer — when the TxPacer may start (or, after running dry, resume) playing a response.

Theory of operation: Realtime deltas cross the internet and arrive in bursts with gaps, sometimes
slower than real time. Starting a response with whatever has arrived leaves no slack: under real-time
delivery the next delta is due exactly when the audio in hand runs out (less, since the re-framer
holds back a partial frame), so every gap becomes an underrun — a held preemptive answer released
when its verdict comes right around its first delta would begin with about one delta in hand, and so
would a plain response.

So playback of a response starts once the latest a delta can be, by what this call has shown, has
passed. For every delta the buffer measures its offset from a real-time schedule anchored at the
response's first delta (`arrival − first arrival − audio before it`) and how far that offset rises
above its running minimum — how late a delta can be against a schedule anchored at an early one;
delivery faster than real time never rises. Each response's rise is scaled by (n+1)/(n−1) for its n
deltas (a short greeting's sample understates the spread). `need_ms` = the largest over the last RESPONSES_KEPT
responses + the re-framer's carry (one frame) and half a frame for a late tick, within
[preroll_min_ms, preroll_max_ms]; until RESPONSES_TO_LEARN responses were seen it is at least
preroll_initial_ms — one answer's learning: 3 would also cover the second and third answers of a call
whose first one understated its jitter (2 underruns instead of 42 in tests/test_jitter.py's 40 jittery
calls) but would make the first three answers of a real-time, jitter-free call wait 300 ms instead of 40.
A response then starts at `first + min offset seen + need_ms`: every delta seen while waiting that
turned out early (a smaller offset) moves the start earlier, because later deltas can only rise
`need_ms` above it. Under ±150 ms of independent jitter per delta no buffer can promise zero underruns
with less than 150 ms after the response's unjittered schedule (the latest delta is that late); this
one starts p50 ~280 ms after it (tests/test_jitter.py, 40 calls). Never earlier than `preroll_min_ms`
after the first delta, at once if a held answer is released late or the response is complete.
`need_ms` grows at once after an underrun (a late delta beyond the buffer) and shrinks slowly, as older
responses leave the window, when deltas run ahead. The same rule re-buffers after a mid-response underrun,
so a dry queue resumes with slack instead of stuttering frame by frame.
The pacer's lead (how far ahead Twilio is fed) stays fixed: slack kept in our queue can still be
ducked and flushed at a barge-in, slack in Twilio's buffer could not.
Pure and clock-free: every input carries `now`.
"""
from __future__ import annotations

import msgspec

RESPONSES_KEPT = 8
RESPONSES_TO_LEARN = 1  # until this many responses were seen, preroll_initial_ms stays the floor
UNDERRUN_PENALTY_MS = 40
UNKNOWN = -1e9


class ArrivalTrack(msgspec.Struct):
    response_id: str
    first_at: float
    audio_ms: float = 0.0
    min_offset_ms: float = 0.0  # earliest (arrival − first arrival − audio before it) so far
    max_late_ms: float = UNKNOWN  # largest rise of that offset above its running minimum
    deltas: int = 0

    def late_estimate(self) -> float:
        """The rise this delivery can reach, from the `deltas` seen: a sample's range understates the
        spread it comes from, by (n−1)/(n+1) for a bounded one (the unbiased range estimate of a
        uniform) — a 2 s greeting's 11 deltas would otherwise teach 20% less than a long answer meets."""
        if self.max_late_ms <= UNKNOWN or self.deltas < 3:
            return self.max_late_ms
        return self.max_late_ms * (self.deltas + 1) / (self.deltas - 1)


class JitterState(msgspec.Struct):
    need_ms: int = 100
    recent_late_ms: list[int] = msgspec.field(default_factory=list)  # per finished response, newest last
    track: ArrivalTrack | None = None
    waiting_since: float = -1.0  # a start (or resume) is pending since then
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
        track.deltas += 1
        if track.audio_ms > 0:
            offset = (now - track.first_at) * 1000.0 - track.audio_ms
            track.min_offset_ms = min(track.min_offset_ms, offset)
            track.max_late_ms = max(track.max_late_ms, offset - track.min_offset_ms)
        track.audio_ms += audio_ms
        self._update_need()

    def _close(self, track: ArrivalTrack) -> None:
        if track.max_late_ms <= UNKNOWN:
            return  # one delta: nothing learned
        self._learn(int(track.late_estimate()))

    def _learn(self, late_ms: int) -> None:
        """One more response's lateness (or an underrun's), the last RESPONSES_KEPT kept."""
        self.s.recent_late_ms.append(late_ms)
        del self.s.recent_late_ms[:-RESPONSES_KEPT]

    def _update_need(self) -> None:
        s = self.s
        current = s.track.max_late_ms if s.track is not None else UNKNOWN
        late = max([current, *s.recent_late_ms])
        floor = self.min_ms if len(s.recent_late_ms) >= RESPONSES_TO_LEARN else self.initial_ms
        s.need_ms = int(min(self.max_ms, max(floor, late + self.frame_ms * 3 / 2)))  # + the carry, a late tick

    def underrun(self) -> None:
        """The queue ran dry inside a response: the buffer was too small — grow it at once."""
        self._learn(min(self.max_ms, self.s.need_ms + UNDERRUN_PENALTY_MS))
        self._update_need()

    def ready(self, response_id: str, queued_ms: int, complete: bool, now: float, resuming: bool) -> bool:
        """May playback of `response_id` start (or resume) now?

        Start: a delta k of the response arrives by `first + min_offset + audio_before_k + late`; playing
        from `t`, its audio is due at `t + audio_before_k` — so `t ≥ first + min_offset + late` (+ the
        frame the re-framer holds back and a late tick), however much is already queued. Resume after
        running dry: rebuild `need_ms` of queue (or wait that long). A complete response starts at once."""
        s = self.s
        if s.waiting_since < 0:
            s.waiting_since = now
        waited = (now - s.waiting_since) * 1000.0
        track = s.track
        if complete:
            go = True
        elif resuming or track is None or track.response_id != response_id:
            go = queued_ms >= s.need_ms or waited >= s.need_ms
        else:  # the latest a delta can be: need_ms above the earliest offset seen, never before the floor
            go = (now - track.first_at) * 1000.0 >= max(self.min_ms, s.need_ms + track.min_offset_ms)
        if go:
            waited_ms = int(round(waited))
            s.waits += 1
            s.waited_ms_total += waited_ms
            s.waited_ms_max = max(s.waited_ms_max, waited_ms)
            s.waiting_since = -1.0
        return go

    def reset(self) -> None:
        """A cut or discard: whatever was pending is gone."""
        self.s.waiting_since = -1.0

    def counters(self) -> dict[str, int]:
        s = self.s
        return {"jitter_need_ms": s.need_ms, "jitter_starts": s.waits, "jitter_wait_ms_max": s.waited_ms_max,
                "jitter_wait_ms_total": s.waited_ms_total}
