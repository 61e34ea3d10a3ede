"""The TxPacer's jitter buffer on a virtual clock (tests/pacing_sim.py): the diagnosed hold/release
underruns, bursty / jittery / stalled / slow delivery, and a clean resume after running dry; and the
bounds it is measured against (issue 22) — the clairvoyant start (every arrival known) and the causal
bound (the best a rule knowing only the past can do), both computed here from the schedules alone."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.pacing_sim import Delivery, chunked, clairvoyant_start, real_time, simulate

GREETING = bytes([0x11]) * 16000  # 2 s
ANSWER = bytes([0x22]) * 40000  # 5 s
FRAME_MS = 20
LEAD_MS = 20.0  # the jitter buffer keeps each delta in hand a tick before its frame is due
TICK_PHASE = 0.0007  # tests/pacing_sim.py ticks at k·20 ms + this
BURST_S = 0.002  # deltas this close to the previous one came in the same burst


def offsets(delivery: Delivery) -> list[tuple[float, float, float]]:
    """Per delta: (arrival, offset from the real-time schedule anchored at the first delta, carry) in ms —
    offset = arrival − first arrival − audio before it; carry = the part of a frame already in hand that
    waits for this delta (audio before it mod a frame). Delta k is needed `offset + carry` after the first
    delta's arrival on a playback started then: its need offset."""
    out, before = [], 0
    first = delivery.arrivals[0]
    for chunk, at in zip(chunked(delivery.audio), delivery.arrivals):
        audio_ms = before / 8
        out.append((at, (at - first) * 1000 - audio_ms, audio_ms % FRAME_MS))
        before += len(chunk)
    return out


def hindsight_rise(delivery: Delivery) -> float:
    """What the whole of a delivery shows, once it is over: the largest need offset of a delta above the
    running minimum offset up to it. A start `first + min offset + rise` covers every delta of a delivery
    that rises no more."""
    rise, low = 0.0, 0.0
    for _, offset, carry in offsets(delivery)[1:]:
        low = min(low, offset)
        rise = max(rise, offset - low + carry)
    return rise


def hindsight_first_need(delivery: Delivery) -> float:
    """The other thing a whole delivery shows: its largest need offset against the first delta's schedule,
    plus the spread of its bursts around its own line (least squares of arrival on audio) — how far the
    first delta of the next one may fall early in that spread. A start `first + this` covers every delta
    of a delivery that is no later against its line and no more spread."""
    steps = offsets(delivery)
    points, last, before = [], -1.0, 0
    for chunk, at in zip(chunked(delivery.audio), delivery.arrivals):
        if at - last > BURST_S:
            points.append((before / 8, (at - delivery.arrivals[0]) * 1000))
        last, before = at, before + len(chunk)
    if len(points) < 3:
        return 1e6
    mean_a = sum(a for a, _ in points) / len(points)
    mean_t = sum(t for _, t in points) / len(points)
    slope = sum((a - mean_a) * (t - mean_t) for a, t in points) / sum((a - mean_a) ** 2 for a, _ in points)
    residuals = [t - mean_t - slope * (a - mean_a) for a, t in points]
    return max(offset + carry for _, offset, carry in steps[1:]) + max(residuals) - min(residuals)


def learned_start(delivery: Delivery, rise_ms: float, first_need_ms: float, lead_ms: float = 0.0) -> float:
    """The earliest `t` at which every delta not yet arrived — rising no more than `rise_ms` above the lowest
    offset seen by `t`, or needed no later than `first_need_ms` after the first delta (what the call's
    earlier deliveries showed, hindsight_rise and hindsight_first_need) — is in hand `lead_ms` before its
    frame is due: `t − first ≥ min(first_need_ms, min offset by t + rise_ms) + lead_ms`. A rule knowing
    only the past that starts earlier can be made to run dry by a future no worse than the past."""
    first = delivery.arrivals[0]
    steps = offsets(delivery)
    low, start = 0.0, first
    for k, (at, offset, _) in enumerate(steps):
        low = min(low, offset)
        start = max(at, first + (min(first_need_ms, low + rise_ms) + lead_ms) / 1000)
        if k + 1 == len(steps) or start < steps[k + 1][0]:
            break
    return start


def clairvoyant_lead_start(delivery: Delivery, lead_ms: float) -> float:
    """clairvoyant_start with every delta but the first in hand `lead_ms` before its first frame is due: the
    largest need offset is the clairvoyant start (checked against pacing_sim's, frame by frame, below)."""
    needs = [offset + carry for _, offset, carry in offsets(delivery)[1:]]
    return delivery.arrivals[0] + max([0.0, *(n + lead_ms for n in needs)]) / 1000


def causal_start(earlier: list[Delivery], delivery: Delivery, lead_ms: float = 0.0) -> float:
    """The best any causal rule can do on `delivery` after the call's `earlier` deliveries: the learned
    start, or — when this delivery was worse than all of them, so that start would have run dry (or lost
    its lead) — the clairvoyant start (+ the lead), below which nothing avoids it."""
    rise = max(hindsight_rise(d) for d in earlier)
    first_need = max(hindsight_first_need(d) for d in earlier)
    return max(learned_start(delivery, rise, first_need, lead_ms), clairvoyant_lead_start(delivery, lead_ms))


def causal_misses(earlier: list[Delivery], delivery: Delivery) -> bool:
    """Would the learned start (no lead) have run dry: was `delivery` worse than every earlier one?"""
    rise = max(hindsight_rise(d) for d in earlier)
    first_need = max(hindsight_first_need(d) for d in earlier)
    return learned_start(delivery, rise, first_need) < clairvoyant_start(delivery) - 1e-9


def on_tick(t: float) -> float:
    """The first tick of tests/pacing_sim.py at or after `t`: where a pacer that starts on ticks can start."""
    k = -(-round((t - TICK_PHASE) * 1e9) // 20_000_000)
    return k * 0.02 + TICK_PHASE


def jittered(seed: int, spread: float, n: int = 64) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-spread, spread) for _ in range(n)]


def bursts(start: float, audio: bytes, speed: float, size: int = 4) -> list[float]:
    """`size` deltas at once, each burst when its first byte is due at `speed`× real time."""
    times, before, at = [], 0, start
    for i, chunk in enumerate(chunked(audio)):
        if i % size == 0:
            at = start + before / 8000 / speed
        times.append(at)
        before += len(chunk)
    return times


Schedule = Callable[[float, int], list[float]]  # (start, seed) → arrivals of ANSWER's deltas


def smooth(speed: float, spread_s: float) -> Schedule:
    return lambda start, seed: real_time(start, ANSWER, speed=speed,
                                         jitter=jittered(seed, spread_s) if spread_s else None)


def bursty(speed: float) -> Schedule:
    return lambda start, seed: bursts(start, ANSWER, speed)


def slowing(speed: float, from_answer: int) -> Schedule:
    """`speed`× real time, then real time from answer `from_answer` on (compare seeds answer k with 10·s + k)."""
    return lambda start, seed: real_time(start, ANSWER, speed=speed if seed % 10 < from_answer else 1.0)


def slowing_bursts(speed: float, from_answer: int) -> Schedule:
    """Bursts of 4 at `speed`× real time, then at real time from answer `from_answer` on."""
    return lambda start, seed: bursts(start, ANSWER, speed if seed % 10 < from_answer else 1.0)


@dataclass
class Compared:
    """One answer (after the call's first answer was learned from), ms after its first delta."""
    ours: float
    clairvoyant: float  # on the tick at or after clairvoyant_start
    causal: float  # on the tick at or after causal_start (no lead)
    causal_lead: float  # … keeping each delta in hand a tick before its frame
    causal_missed: bool  # the learned start would have run dry
    ran_dry: bool  # ours did


def compare(schedule: Schedule, seed: int) -> tuple[list[Compared], int]:
    """A call: a 4× greeting, six 5 s answers 8 s apart on `schedule`, each shifted by a random part of a tick
    (the tick phase against the first delta is uniform, as live). Returns answers 2–6 compared, and the
    underruns after the greeting."""
    rng = random.Random(seed)
    deliveries = [Delivery("g", GREETING, real_time(0.1 + rng.uniform(0.0, 0.02), GREETING, speed=4.0))]
    for k in range(6):
        deliveries.append(Delivery(f"a{k}", ANSWER, schedule(3.0 + 8.0 * k + rng.uniform(0.0, 0.02), seed * 10 + k)))
    outcome = simulate(deliveries, until=3.0 + 8.0 * 6 + 2.0)
    compared = []
    for k in range(2, 7):
        d, earlier = deliveries[k], deliveries[:k]
        first = d.arrivals[0]
        compared.append(Compared(
            1000 * (outcome.first_sent[d.response_id] - first), 1000 * (on_tick(clairvoyant_start(d)) - first),
            1000 * (on_tick(causal_start(earlier, d)) - first), 1000 * (on_tick(causal_start(earlier, d, LEAD_MS)) - first),
            causal_misses(earlier, d), any(first <= t < first + 8.0 for t in outcome.underrun_at)))
    return compared, len(outcome.underrun_at)


def p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def greeting() -> Delivery:
    return Delivery("g", GREETING, real_time(0.1, GREETING, speed=4.0))


@pytest.mark.parametrize("hold", ["before the first delta", "after the first delta"])
@pytest.mark.parametrize("verdict_ms", [-100, 0, 5, 20, 50, 300])
def test_a_held_answer_never_leaves_before_its_verdict_and_its_release_does_not_stutter(hold: str, verdict_ms: int) -> None:
    """The diagnosed defect (issue 10): a held preemptive answer released around its first delta started
    playing with ~one delta in hand; under real-time delivery the next delta was due exactly when that ran
    out (less the re-framer's carry) — 3 underruns per 5 s answer in this harness before the fix."""
    first = 4.0
    hold_at = first - 0.05 if hold == "before the first delta" else first + 0.01
    release_at = first + verdict_ms / 1000
    if release_at <= hold_at:  # the verdict came first: the bridge never holds (preempt: RELEASE_ON_CREATE)
        hold_at, release_at = None, None  # type: ignore[assignment]
    answer = Delivery("b", ANSWER, real_time(first, ANSWER), hold_at=hold_at, release_at=release_at)
    outcome = simulate([greeting(), answer], until=11.0)
    assert outcome.underruns == 0, outcome.underrun_at
    assert outcome.sent_before_release == 0  # a late hold takes back the frames already queued
    assert b"".join(outcome.payloads).count(b"\x22") == len(ANSWER)  # every byte played, once


def test_without_a_hold_real_time_delivery_never_runs_dry() -> None:
    answer = Delivery("b", ANSWER, real_time(4.0, ANSWER))
    outcome = simulate([greeting(), answer], until=11.0)
    assert outcome.underruns == 0
    added = outcome.first_sent["b"] - 4.0
    assert added <= 0.061, added  # the 40 ms floor kept while GUARDED (one response learned), to the next tick


@pytest.mark.parametrize("seed", range(6))
def test_real_time_with_150ms_jitter_needs_one_response_to_learn_then_never_runs_dry(seed: int) -> None:
    responses = [greeting()]
    start = 3.0
    for k in range(4):
        responses.append(Delivery(f"a{k}", ANSWER, real_time(start, ANSWER, jitter=jittered(seed * 10 + k, 0.150))))
        start += 8.0
    outcome = simulate(responses, until=start + 2.0)
    later = [t for t in outcome.underrun_at if t >= 11.0]  # after the first jittery answer was learned from
    assert later == [], later
    assert outcome.underruns <= 3  # the first jittery answer: the buffer grows at each miss
    added = [outcome.first_sent[f"a{k}"] - responses[k + 1].arrivals[0] for k in range(4)]
    assert max(added) <= 0.400 + 0.021, added  # never more than preroll_max (+ the next tick)
    nominal = [outcome.first_sent[f"a{k}"] - (3.0 + 8.0 * k) for k in range(4)]
    print(f"\nJITTER ±150 ms (seed {seed}): underruns {outcome.underruns} (all in the first jittery answer), "
          f"need {outcome.need_ms} ms, first audio after the first delta {[round(1000 * a) for a in added]} ms, "
          f"after the delta's nominal (unjittered) time {[round(1000 * n) for n in nominal]} ms")


def test_jitter_within_the_initial_buffer_never_runs_dry_even_in_the_first_response() -> None:
    """Nothing learned yet (the call's first response, e.g. a greeting delivered at real time): ±130 ms is a
    rise of at most 260 ms + the carry and a late tick — inside preroll_initial_ms (300)."""
    for seed in range(40):
        first = Delivery("a0", ANSWER, real_time(1.0, ANSWER, jitter=jittered(seed, 0.130)))
        outcome = simulate([first], until=8.0)
        assert outcome.underruns == 0, (seed, outcome.underrun_at)
        assert outcome.first_sent["a0"] - first.arrivals[0] <= 0.321


def test_fast_delivery_starts_the_first_response_well_before_the_initial_buffer() -> None:
    """preroll_initial_ms is a bound, not a wait: deltas running ahead of real time (4×) lower the start as
    they arrive — here after 100 ms of the 300."""
    greeting_only = simulate([greeting()], until=3.0)
    assert greeting_only.underruns == 0 and greeting_only.first_sent["g"] - 0.1 <= 0.121


@pytest.mark.parametrize("speed", [1.2, 1.5, 2.0])
def test_faster_than_real_time_delivery_with_150ms_jitter_starts_sooner_and_stays_near_the_causal_bound(speed: float) -> None:
    """Realtime usually generates faster than real time: ±150 ms of independent jitter per delta on delivery
    at 1.2–2×. A clairvoyant buffer starts far sooner here (later deltas run ahead), but no buffer that only
    knows the past can: the next delta may still be the whole spread later than the first one was, so the
    start stays bounded by the spread less what the delivery runs ahead meanwhile. Knowing each call's
    speed (a least-squares line per answer, the spread around it) was tried here first: p50 221 → 218,
    181 → 181, 148 → 147 ms at 1.2/1.5/2× — the risk sits in the next few deltas, where running ahead has
    not yet helped. The buffer's running-ahead bound (first_need_ms) is that line; under this jitter its
    spread keeps it above the rise bound, so these figures are the rise bound's. Figures printed; the
    assertions keep underruns after the learning answer and the distance to the clairvoyant bound."""
    after_first, over_clairvoyant, clairvoyant, underruns_later = [], [], [], 0
    for seed in range(40):
        responses, start = [greeting()], 3.0
        for k in range(6):
            responses.append(Delivery(f"a{k}", ANSWER, real_time(start, ANSWER, speed=speed,
                                                                  jitter=jittered(seed * 10 + k, 0.150))))
            start += 8.0
        outcome = simulate(responses, until=start + 2.0)
        underruns_later += len([t for t in outcome.underrun_at if t >= 11.0])
        for k in range(1, 6):
            best = clairvoyant_start(responses[k + 1])
            after_first.append(1000 * (outcome.first_sent[f"a{k}"] - responses[k + 1].arrivals[0]))
            clairvoyant.append(1000 * (best - responses[k + 1].arrivals[0]))
            over_clairvoyant.append(1000 * (outcome.first_sent[f"a{k}"] - best))
    for figures in (after_first, over_clairvoyant, clairvoyant):
        figures.sort()
    mid, p90 = len(after_first) // 2, int(len(after_first) * 0.9)
    print(f"\nJITTER ±150 ms at {speed}× real time, 40 calls × 5 learned answers: underruns after the first answer "
          f"{underruns_later} of 200; first audio after the first delta p50 {after_first[mid]:.0f} / p90 "
          f"{after_first[p90]:.0f} ms; clairvoyant p50 {clairvoyant[mid]:.0f} / p90 {clairvoyant[p90]:.0f} ms; "
          f"ours above it p50 {over_clairvoyant[mid]:.0f} / p90 {over_clairvoyant[p90]:.0f} ms")
    assert underruns_later <= 3
    assert after_first[mid] <= 230 and over_clairvoyant[mid] <= 130  # measured 221/181/148 and 122/107/96


def test_first_audio_latency_under_150ms_jitter_over_many_calls() -> None:
    """40 calls × 6 jittery answers: after the first answer (the one learned from) no underrun in 200
    answers but one (seed-dependent: a rise the last 8 answers never showed); the start moves earlier with
    every early delta seen while waiting. Added latency is reported two ways: after the first delta
    arrived (what the buffer adds) and after the answer's unjittered schedule (the lower bound for zero
    underruns is 150 ms there: the latest delta is 150 ms behind it)."""
    after_first, after_nominal, over_clairvoyant, clairvoyant, underruns_later = [], [], [], [], 0
    for seed in range(40):
        responses, start = [greeting()], 3.0
        for k in range(6):
            responses.append(Delivery(f"a{k}", ANSWER, real_time(start, ANSWER, jitter=jittered(seed * 10 + k, 0.150))))
            start += 8.0
        outcome = simulate(responses, until=start + 2.0)
        underruns_later += len([t for t in outcome.underrun_at if t >= 11.0])
        for k in range(1, 6):
            after_first.append(1000 * (outcome.first_sent[f"a{k}"] - responses[k + 1].arrivals[0]))
            after_nominal.append(1000 * (outcome.first_sent[f"a{k}"] - (3.0 + 8.0 * k)))
            best = clairvoyant_start(responses[k + 1])
            clairvoyant.append(1000 * (best - responses[k + 1].arrivals[0]))
            over_clairvoyant.append(1000 * (outcome.first_sent[f"a{k}"] - best))
    after_first.sort()
    after_nominal.sort()
    clairvoyant.sort()
    over_clairvoyant.sort()
    p50_first, p90_first = after_first[len(after_first) // 2], after_first[int(len(after_first) * 0.9)]
    p50_nominal, p90_nominal = after_nominal[len(after_nominal) // 2], after_nominal[int(len(after_nominal) * 0.9)]
    print(f"\nJITTER ±150 ms, 40 calls × 5 learned answers: underruns after the first answer {underruns_later} "
          f"of 200 answers; first audio after the first delta p50 {p50_first:.0f} / p90 {p90_first:.0f} / max "
          f"{after_first[-1]:.0f} ms; after the unjittered schedule p50 {p50_nominal:.0f} / p90 {p90_nominal:.0f} ms "
          f"(zero-underrun bound 150 ms); a clairvoyant buffer (every arrival known in advance) would start "
          f"p50 {clairvoyant[len(clairvoyant) // 2]:.0f} ms after the first delta, ours is p50 "
          f"{over_clairvoyant[len(over_clairvoyant) // 2]:.0f} / p90 {over_clairvoyant[int(len(over_clairvoyant) * 0.9)]:.0f} ms above it")
    assert clairvoyant[len(clairvoyant) // 2] >= 100  # the fixture is as hard as claimed: ±150 ms costs ≥ 100 ms even foreseen
    assert underruns_later <= 2
    assert p50_first <= 310 and p50_nominal <= 290  # before the earliest-offset rule: 337 / 341 ms
    assert after_first[-1] <= 421  # preroll_max + a tick


def test_bursty_delivery_ahead_of_real_time_adds_no_latency_beyond_the_floor() -> None:
    arrivals = []
    t = 3.0
    for i in range(len(chunked(ANSWER))):
        arrivals.append(t)
        t += 0.45 if i % 4 == 3 else 0.0  # four chunks at once, then a pause: faster than real time on average
    outcome = simulate([greeting(), Delivery("b", ANSWER, arrivals)], until=10.0)
    assert outcome.underruns == 0 and outcome.first_sent["b"] - 3.0 <= 0.061


def test_a_400ms_stall_runs_dry_once_then_resumes_with_whole_frames_and_the_buffer_grows() -> None:
    stalled = Delivery("b", ANSWER, real_time(3.0, ANSWER, stall=(5.0, 0.4)))
    outcome = simulate([greeting(), stalled], until=10.0)
    assert outcome.underruns == 1
    assert all(len(p) == 160 for p in outcome.payloads)  # no partial frame, ever
    assert b"".join(outcome.payloads).count(b"\x22") == len(ANSWER)
    assert outcome.need_ms >= 400  # learned: the next answers start with 400 ms in hand (preroll_max)


SCHEDULES: dict[str, Schedule] = {
    "1× clean": smooth(1.0, 0.0), "1× ±10 ms": smooth(1.0, 0.010), "1.5× clean": smooth(1.5, 0.0),
    "1.5× ±10 ms": smooth(1.5, 0.010), "bursts of 4, 1.5×": bursty(1.5), "bursts of 4, 1×": bursty(1.0),
    "1× ±150 ms": smooth(1.0, 0.150), "1.5× ±150 ms": smooth(1.5, 0.150),
    "1.5×, then 1× from the 4th answer": slowing(1.5, 3),
    "bursts of 4, 1.5×, then 1× from the 4th answer": slowing_bursts(1.5, 3),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_the_clairvoyant_start_is_the_largest_need_offset(name: str) -> None:
    for seed in range(5):
        d = Delivery("a", ANSWER, SCHEDULES[name](3.0 + seed * 0.003, seed))
        assert clairvoyant_lead_start(d, 0.0) == pytest.approx(clairvoyant_start(d), abs=1e-9)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_ours_starts_no_sooner_than_the_causal_bound_and_that_no_sooner_than_the_clairvoyant(name: str) -> None:
    """Per answer after the first: the causal bound (what the past justifies) is never below the clairvoyant
    start, and the jitter buffer never starts below the causal bound — where it did not run dry (starting
    below the clairvoyant start is running dry)."""
    answers = [a for seed in range(12) for a in compare(SCHEDULES[name], 500 + seed)[0]]
    for a in answers:
        assert a.causal >= a.clairvoyant - 1e-6 and a.causal_lead >= a.causal - 1e-6
        if not a.ran_dry:
            assert a.ours >= a.causal - 1e-6, a


def test_clean_real_time_waits_the_largest_carry_and_a_tick_of_lead_which_no_buffer_can_halve() -> None:
    """Issue 22's target at clean real-time delivery (p50 ≤ 15 ms) is below what any buffer starting on a
    tick can do with these deltas: at exactly 1×, a delta that completes a frame begun by the one before is
    due the moment it arrives (up to 19.5 ms after the frame's slot would have been, with the fake service's
    chunk sizes), so even the clairvoyant start is p50 ~30 ms after the first delta. Ours waits that and a
    tick of lead (so that no frame leaves at its very slot): the lead-keeping causal bound."""
    answers, underruns = [], 0
    for seed in range(20):
        compared, after_greeting = compare(SCHEDULES["1× clean"], seed)
        answers += compared
        underruns += after_greeting
    print(f"\n1× clean: first audio after the first delta p50 {p50([a.ours for a in answers]):.0f} ms; clairvoyant "
          f"p50 {p50([a.clairvoyant for a in answers]):.0f}, causal {p50([a.causal for a in answers]):.0f}, "
          f"with a tick of lead {p50([a.causal_lead for a in answers]):.0f} ms")
    assert p50([a.clairvoyant for a in answers]) > 15  # the target is out of reach of any start on a tick
    over = [a.ours - a.causal_lead for a in answers]  # a tick more where the bound falls inside the ms ours rounds up
    assert abs(p50(over)) < 1e-6 and max(over) <= 20 + 1e-6 and min(over) > -1e-6 and underruns == 0


@pytest.mark.parametrize("speed", [1.0, 1.5])
def test_under_150ms_jitter_ours_is_within_a_tick_of_the_causal_bound(speed: float) -> None:
    """Issue 22's target under ±150 ms: within 20 ms of the causal bound the test computes, 0 underruns after
    the first answer. Within 20 ms of the lead-keeping bound at p50 (the scaled rise and the lateness + half
    a frame cost up to a tick more); the causal rule itself, trusting the largest rise of the earlier
    answers, would have run dry on more answers than ours does — 0 is not promised by the past."""
    answers = [a for seed in range(20) for a in compare(SCHEDULES[f"{speed:g}× ±150 ms"], seed)[0]]
    over = [a.ours - a.causal_lead for a in answers]
    dry, missed = sum(a.ran_dry for a in answers), sum(a.causal_missed for a in answers)
    print(f"\n{speed:g}× ±150 ms: ours above the causal bound p50 {p50([a.ours - a.causal for a in answers]):.0f} ms, "
          f"above the lead-keeping one p50 {p50(over):.0f} ms; answers run dry: ours {dry}, the causal rule {missed} "
          f"of {len(answers)}")
    assert p50(over) <= 20 + 1e-6
    assert dry <= max(1, missed // 3)


@pytest.mark.parametrize("name", ["1.5×, then 1× from the 4th answer", "bursts of 4, 1.5×, then 1× from the 4th answer"])
def test_a_real_time_answer_after_answers_that_ran_ahead_never_runs_dry(name: str) -> None:
    """The guarantee the 40 ms floor keeps (and a rule that starts learned answers at once lost: measured in
    bench/RESULTS.md, every such call ran dry once): an answer slower than every one learned from cannot be
    told from them by its first delta, so the floor is kept for every answer — bursty or not."""
    for seed in range(12):
        compared, underruns = compare(SCHEDULES[name], seed)
        assert not any(a.ran_dry for a in compared) and underruns == 0, (seed, compared)


@pytest.mark.parametrize("name", ["bursts of 4, 1.5×", "bursts of 4, 1×"])
def test_bursts_are_points_of_a_line_not_jitter(name: str) -> None:
    """Realtime delivers in bursts: four deltas at once, then a gap. Taken as jitter, the gaps taught a
    400 ms spread and every answer waited p50 136 ms (bench/RESULTS.md); as points of the answer's own
    line (least squares over the bursts) the answer starts at the floor — and plays whole."""
    answers, underruns = [], 0
    for seed in range(20):
        compared, after_greeting = compare(SCHEDULES[name], seed)
        answers += compared
        underruns += after_greeting
    ours = [a.ours for a in answers]
    print(f"\n{name}: first audio after the first delta p50 {p50(ours):.0f} / max {max(ours):.0f} ms")
    assert p50(ours) <= 55 and max(ours) <= 60 + 1e-6  # the floor and the wait for its tick (was p50 136)
    assert underruns == 0 and not any(a.ran_dry for a in answers)
