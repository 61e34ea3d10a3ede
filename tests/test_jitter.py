"""The TxPacer's jitter buffer on a virtual clock (tests/pacing_sim.py): the diagnosed hold/release
underruns, bursty / jittery / stalled / slow delivery, and a clean resume after running dry."""
from __future__ import annotations

import random

import pytest

from tests.pacing_sim import Delivery, chunked, clairvoyant_start, real_time, simulate

GREETING = bytes([0x11]) * 16000  # 2 s
ANSWER = bytes([0x22]) * 40000  # 5 s


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
    assert added <= 0.061, added  # the 40 ms floor, quantised to the next tick


def jittered(seed: int, spread: float, n: int = 64) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-spread, spread) for _ in range(n)]


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
    start stays bounded by the spread less what the delivery runs ahead meanwhile. A rule that knew each
    call's speed (a least-squares drift per answer, the spread around it) was tried on this fixture: p50
    221 → 218, 181 → 181, 148 → 147 ms at 1.2/1.5/2× — the risk sits in the next few deltas, where running
    ahead has not yet helped — and not kept. Figures printed; the assertions keep underruns after the
    learning answer and the distance to the clairvoyant bound."""
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
