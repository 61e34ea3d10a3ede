"""Echo guard on a virtual clock: the AI's voice comes back on the caller's line (speakerphone).

The pacer's PlayedLevels are made from the frames "played"; the caller's line is line noise plus the
echo (sim.audio.EchoPath: delayed, attenuated, band-limited), optionally with the caller talking over
it; TwilioRx measures and the judge decides, as in a call.
"""
from __future__ import annotations

import base64

import numpy as np
import pytest

from actors.cores.echo import EchoEstimator, EchoState
from actors.cores.judge import BargeInJudgeCore, JudgeState
from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.cores.ulaw import raw_level_db
from actors.ingress_messages import TwilioMediaIn
from actors.messages import CallerLevel, CutPlayout, DuckPlayout, PlayedLevels, PlayoutChanged, ResponseFinished
from actors.settings import AudioSettings, BargeInSettings
from prompts.classifier import load_lexicon
from sim.audio import EchoPath, frames_of, load_clip, mix_noise, mix_pcm, noise_frames

T0 = 50.0
NOISE = 120.0


class Outcome:
    def __init__(self) -> None:
        self.levels: list[CallerLevel] = []
        self.ducks: list[float] = []
        self.cuts: list[float] = []


def run_call(delay_ms: float, loss_db: float, guard: bool = True, talk_at_s: float | None = None,
             seed: int = 3) -> tuple[TwilioRxCore, Outcome]:
    rng = np.random.default_rng(seed)
    ai = frames_of(load_clip("long_answer") + load_clip("answer"))  # ~16 s of the AI talking
    rx = TwilioRxCore(RxState("CA1"), audio=AudioSettings(echo_guard_enabled=guard))
    judge = BargeInJudgeCore(JudgeState("CA1"), BargeInSettings(), load_lexicon("he"))
    judge.handle(ResponseFinished("greet", "g", 3000, T0 - 1), T0 - 1)
    for core in (rx, judge):
        core.handle(PlayoutChanged(True, "r1", T0), T0)
    echo = EchoPath(delay_ms, loss_db)
    talk = frames_of(mix_noise(b"".join(frames_of(load_clip("interrupt"))), rng, NOISE)) if talk_at_s else []
    noise = noise_frames(rng, NOISE, len(ai))
    outcome = Outcome()
    for k, played in enumerate(ai):
        t = T0 + 0.02 * k
        if k % 5 == 0:  # the pacer reports ~100 ms ahead of playout, with each mark
            batch = ai[k:k + 5]
            rx.handle(PlayedLevels(t, tuple(raw_level_db(f) for f in batch), t - 0.1), t - 0.1)
        echo.push(played, t)
        line = noise[k]
        if talk_at_s is not None and 0 <= k - int(talk_at_s / 0.02) < len(talk):
            line = talk[k - int(talk_at_s / 0.02)]
        echoed = echo.echo_at(t)
        if echoed is not None:
            line = mix_pcm(line, echoed)
        for action in rx.handle(TwilioMediaIn(base64.b64encode(line).decode(), k + 1, t), t):
            if isinstance(action, CallerLevel):
                outcome.levels.append(action)
                for decision in judge.handle(action, t):
                    if isinstance(decision, DuckPlayout):
                        outcome.ducks.append(t)
                    if isinstance(decision, CutPlayout):
                        outcome.cuts.append(t)
    return rx, outcome


@pytest.mark.parametrize(("delay_ms", "loss_db"), [(150, 10), (250, 15), (400, 10), (300, 25)])
def test_echo_path_is_learned_and_never_makes_a_candidate(delay_ms: float, loss_db: float) -> None:
    rx, outcome = run_call(delay_ms, loss_db)
    counters = rx.counters()
    print(f"\necho {delay_ms:.0f} ms / -{loss_db:.0f} dB: estimated {counters['echo_delay_ms']} ms / "
          f"-{counters['echo_loss_db']} dB, vetoes {counters['echo_vetoes']}, frames to the judge "
          f"{len(outcome.levels)}")
    assert abs(counters["echo_delay_ms"] - delay_ms) <= 40
    # the band-limit takes the voice's energy under 300 Hz away too: the level loss is 2-5 dB above the gain's
    assert loss_db - 2 <= counters["echo_loss_db"] <= loss_db + 7
    assert outcome.ducks == [] and outcome.cuts == []


def test_without_the_guard_the_same_echo_makes_candidates() -> None:
    _, outcome = run_call(250, 10, guard=False)
    # the test above is not vacuous: unguarded, this echo is articulated speech and cuts the AI itself
    assert outcome.ducks or outcome.cuts


def test_a_real_interruption_over_the_echo_still_cuts() -> None:
    rx, outcome = run_call(250, 10, talk_at_s=6.0)
    assert rx.counters()["echo_vetoes"] > 0
    assert outcome.cuts and 6.0 <= outcome.cuts[0] - T0 <= 6.0 + 0.6


def test_the_estimate_survives_double_talk_and_a_silent_ai() -> None:
    state = EchoState()
    est = EchoEstimator(state, window=50, estimate_every=10)
    rng = np.random.default_rng(0)
    ref = 60 + 10 * np.sin(np.arange(400) / 3.0) + rng.normal(0, 2, 400)
    for k in range(0, 400, 5):
        est.played(k * 0.02, tuple(ref[k:k + 5]))
    for k in range(200):
        est.heard(k * 0.02, max(40.0, ref[k - 10] - 15 if k >= 10 else 40.0))
    assert state.known and state.delay_slots == 10
    known = (state.delay_slots, round(state.loss_db))
    for k in range(200, 300):  # the caller talks loudly over it: correlation lost, the path is kept
        est.heard(k * 0.02, 75.0 + rng.normal(0, 6))
    assert (state.delay_slots, round(state.loss_db)) == known
