"""BargeInJudge core on a virtual clock: phase A candidate, phase B confirm/reject, greeting window."""
from __future__ import annotations

from actors.cores.judge import BargeInJudgeCore, JudgePhase, JudgeState
from actors.ingress_messages import RtAssistantTranscriptDone, RtSpeechStarted, RtSpeechStopped, RtTranscriptDone, RtTranscriptFailed, Tick
from actors.lifecycle_messages import LogLine
from actors.messages import (
    AnswerRequest,
    CallerLevel,
    CutPlayout,
    DeleteItem,
    DuckPlayout,
    LetStand,
    PausePlayout,
    PlayoutChanged,
    ResponseFinished,
    RestorePlayout,
    TurnEnding,
    Utterance,
)
from actors.settings import BargeInSettings
from prompts.classifier import load_lexicon

FLOOR = 40.0
LOUD, QUIET = 70.0, 41.0


def judge(**cfg: object) -> BargeInJudgeCore:
    return BargeInJudgeCore(JudgeState("CA1"), BargeInSettings(**cfg), load_lexicon("he"))  # type: ignore[arg-type]


def speaking(core: BargeInJudgeCore, t: float = 5.0) -> None:
    core.handle(ResponseFinished("greet", "g", 3000, t - 1), t - 1)
    core.handle(PlayoutChanged(True, "r1", t), t)
    assert core.s.phase is JudgePhase.AI_SPEAKING


def frames(core: BargeInJudgeCore, start: float, n: int, level: float, syllables: int = 0,
           spectral_hz: float = 0.0) -> list[tuple[float, list[object]]]:
    out = []
    for k in range(n):
        t = start + 0.02 * k
        out.append((t, core.handle(CallerLevel(level, FLOOR, t, syllables, spectral_hz), t)))
    return out


def first(kind: type, timeline: list[tuple[float, list[object]]]) -> float | None:
    return next((t for t, acts in timeline if any(isinstance(a, kind) for a in acts)), None)


def kinds(actions: list[object]) -> list[type]:
    return [type(a) for a in actions if not isinstance(a, (LogLine, Utterance))]


def test_candidate_after_240ms_of_energy_ducks_the_ai() -> None:
    core = judge()
    speaking(core)
    timeline = frames(core, 10.0, 20, LOUD)
    t = first(DuckPlayout, timeline)
    assert t is not None and abs((t - 10.0) - 0.22) < 1e-6  # the 12th frame: 240 ms accumulated
    assert core.s.phase.value == "candidate" and core.s.counters.barge_in_candidates == 1
    assert DuckPlayout(-12.0, t) in timeline[11][1]


def test_noise_below_floor_plus_delta_never_makes_a_candidate() -> None:
    core = judge()
    speaking(core)
    timeline = frames(core, 10.0, 200, QUIET + 8.0)
    assert first(DuckPlayout, timeline) is None and core.s.counters.barge_in_candidates == 0


def test_short_clicks_are_leaked_away() -> None:
    core = judge()
    speaking(core)
    for k in range(20):  # 100 ms of energy, 200 ms of quiet, repeated
        frames(core, 10.0 + k * 0.3, 5, LOUD)
        frames(core, 10.1 + k * 0.3, 10, QUIET)
    assert core.s.counters.barge_in_candidates == 0


def test_no_barge_in_during_the_greeting() -> None:
    core = judge()
    core.handle(PlayoutChanged(True, "greet", 0.1), 0.1)
    timeline = frames(core, 0.5, 100, LOUD)
    assert first(DuckPlayout, timeline) is None and first(CutPlayout, timeline) is None
    protect = core.handle(RtSpeechStarted("u0", 400, 0.6), 0.6)
    assert any(isinstance(a, LogLine) and a.event.startswith("[GREETING PROTECT]") for a in protect)
    done = core.handle(ResponseFinished("greet", "g", 3000, 3.0), 3.0)
    assert any(isinstance(a, LogLine) and a.event == "[GREETING] Barge-in now ENABLED for rest of call" for a in done)


def candidate_then_transcript(text: str, stop_ms: int, stop_at: float, heard_at: float) -> tuple[
        BargeInJudgeCore, list[object]]:
    """The AI speaks; the caller talks over it for 300 ms (a candidate), stops, and the transcript comes."""
    core = judge()
    speaking(core)
    frames(core, 10.0, 15, LOUD)
    core.handle(RtSpeechStarted("u1", 4800, 10.1), 10.1)
    frames(core, 10.3, int((stop_at - 10.3) / 0.02), QUIET)
    core.handle(RtSpeechStopped("u1", stop_ms, stop_at), stop_at)
    return core, core.handle(RtTranscriptDone("u1", text, heard_at), heard_at)


def test_filler_rejects_the_candidate_restores_and_deletes_the_item() -> None:
    core, out = candidate_then_transcript("אממממ", 5300, 11.0, 11.3)
    assert kinds(out) == [DeleteItem, RestorePlayout]
    assert core.s.phase is JudgePhase.AI_SPEAKING
    c = core.s.counters
    assert (c.barge_in_rejected, c.barge_in_events, c.stt_filler_only_count, c.answers_requested) == (1, 0, 1, 0)


def test_real_word_confirms_cuts_then_answers() -> None:
    core, out = candidate_then_transcript("לא", 5100, 10.9, 11.2)
    assert kinds(out) == [CutPlayout, AnswerRequest]
    assert Utterance("CA1", "caller", "לא", "turn", 4800, 5100, True) in out
    assert AnswerRequest("u1", "לא", 11.2, after_cut=True) in out
    assert core.s.counters.barge_in_events == 1 and core.s.phase is JudgePhase.AI_SILENT


def test_sustained_speech_confirms_without_the_transcript() -> None:
    core = judge(confirm_after_ms=1000)
    speaking(core)
    timeline = frames(core, 10.0, 80, LOUD, syllables=3)  # syllables, but a flat spectrum (a bad line)
    cut_at = first(CutPlayout, timeline)
    assert cut_at is not None and abs(cut_at - 11.0) < 0.021
    assert core.s.counters.barge_in_by_duration == 1 and core.s.counters.barge_in_events == 1
    # the transcript that follows is answered, without a second cut
    out = core.handle(RtTranscriptDone("u9", "אני רוצה לדבר עם מישהו", 12.0), 12.0)
    assert kinds(out) == [AnswerRequest]


def test_candidate_without_server_speech_is_restored_on_timeout() -> None:
    core = judge(candidate_timeout_ms=1500)
    speaking(core)
    frames(core, 10.0, 13, LOUD)
    frames(core, 10.26, 10, QUIET)
    assert core.handle(Tick(11.0), 11.0) == []
    out = core.handle(Tick(11.8), 11.8)
    assert kinds(out) == [RestorePlayout] and core.s.counters.barge_in_timeouts == 1


def test_pause_action_per_business() -> None:
    core = judge(candidate_action="pause")
    speaking(core)
    assert first(PausePlayout, frames(core, 10.0, 15, LOUD)) is not None


def test_ai_silent_filler_gets_no_answer_and_short_word_does() -> None:
    core = judge()
    speaking(core)
    core.handle(PlayoutChanged(False, "r1", 8.0), 8.0)
    assert kinds(core.handle(RtTranscriptDone("u1", "אההה", 9.0), 9.0)) == [DeleteItem]
    assert kinds(core.handle(RtTranscriptDone("u2", "לא", 10.0), 10.0)) == [AnswerRequest]


def test_fail_open_on_failed_or_empty_long_speech() -> None:
    core = judge()
    speaking(core)
    core.handle(PlayoutChanged(False, "r1", 8.0), 8.0)
    core.handle(RtSpeechStarted("u1", 1000, 9.0), 9.0)
    core.handle(RtSpeechStopped("u1", 2500, 10.6), 10.6)
    assert kinds(core.handle(RtTranscriptDone("u1", "", 11.0), 11.0)) == [AnswerRequest]
    core.handle(RtSpeechStarted("u2", 3000, 12.0), 12.0)
    core.handle(RtSpeechStopped("u2", 3200, 12.3), 12.3)
    assert kinds(core.handle(RtTranscriptDone("u2", "", 12.6), 12.6)) == [DeleteItem]  # a short empty blip
    assert kinds(core.handle(RtTranscriptFailed("u3", "server error", 13.0), 13.0)) == [AnswerRequest]
    c = core.s.counters
    assert (c.stt_fail_open_count, c.stt_empty_count, c.stt_failed_count) == (2, 3, 1)


def test_a_backchannel_over_the_ai_restores_keeps_the_words_and_gets_no_answer() -> None:
    """Issue 9: a lone "כן" mid-sentence is a listener signal — no cut, no answer, the item is kept."""
    core, out = candidate_then_transcript("כן כן", 5300, 11.0, 11.3)
    assert kinds(out) == [LetStand, RestorePlayout]
    assert Utterance("CA1", "caller", "כן כן", "backchannel", 4800, 5300, False) in out
    assert core.s.phase is JudgePhase.AI_SPEAKING
    c = core.s.counters
    assert (c.backchannels, c.barge_in_rejected, c.barge_in_events, c.answers_requested) == (1, 1, 0, 0)
    # without a candidate (too short to duck): still no cut and no answer
    out = core.handle(RtTranscriptDone("u2", "נכון", 12.0), 12.0)
    assert kinds(out) == [LetStand] and core.s.counters.backchannels == 2


def test_a_backchannel_after_the_ai_finished_is_an_answer_and_stop_words_always_cut() -> None:
    core = judge()
    speaking(core)
    assert kinds(core.handle(RtTranscriptDone("u1", "כן, אבל כמה זה עולה?", 9.0), 9.0)) == [CutPlayout, AnswerRequest]
    core = judge()
    speaking(core)
    assert kinds(core.handle(RtTranscriptDone("u1", "כן רגע", 9.0), 9.0)) == [CutPlayout, AnswerRequest]
    core.handle(PlayoutChanged(False, "r1", 9.5), 9.5)
    out = core.handle(RtTranscriptDone("u2", "כן", 10.0), 10.0)  # the AI asked and finished: "yes" is the answer
    assert kinds(out) == [AnswerRequest]
    assert Utterance("CA1", "caller", "כן", "turn", -1, -1, False) in out  # recorded as what it was: an answer


def test_sustained_speech_without_the_articulation_measure_confirms_on_duration_alone() -> None:
    core = judge(confirm_after_ms=1000, articulation_confirm=False)
    speaking(core)
    timeline = frames(core, 10.0, 80, LOUD)
    cut_at = first(CutPlayout, timeline)
    assert cut_at is not None and abs(cut_at - 11.0) < 0.021


def test_articulated_speech_is_cut_as_soon_as_the_reading_passes() -> None:
    core = judge()
    speaking(core)
    early = frames(core, 10.0, 20, LOUD, syllables=2, spectral_hz=600.0)  # a candidate, not yet articulated
    assert first(DuckPlayout, early) is not None and first(CutPlayout, early) is None
    late = frames(core, 10.4, 3, LOUD, syllables=3, spectral_hz=600.0)
    assert first(CutPlayout, late) == 10.4
    assert core.s.counters.barge_in_by_articulation == 1 and core.s.counters.barge_in_events == 1
    cut = next(a for a in late[0][1] if isinstance(a, LogLine) and a.event == "[BARGE-IN] CUT")
    assert cut.fields["reason"] == "articulated speech" and cut.fields["onset_ms"] == 400


def test_a_steady_candidate_waits_for_the_transcript_however_long() -> None:
    core = judge(confirm_after_ms=1000)
    speaking(core)
    core.handle(RtSpeechStarted("u1", 4800, 10.05), 10.05)
    hum = frames(core, 10.0, 150, LOUD, syllables=1, spectral_hz=50.0)  # 3 s of "אממממ"
    assert first(DuckPlayout, hum) is not None and first(CutPlayout, hum) is None
    assert core.s.phase is JudgePhase.CANDIDATE
    core.handle(RtSpeechStopped("u1", 7800, 13.0), 13.0)
    out = core.handle(RtTranscriptDone("u1", "אממממ", 13.3), 13.3)
    assert RestorePlayout(13.3) in out and core.s.counters.barge_in_events == 0


def test_many_syllables_with_a_steady_spectrum_are_not_articulated() -> None:
    core = judge()
    speaking(core)
    timeline = frames(core, 10.0, 40, LOUD, syllables=5, spectral_hz=120.0)
    assert first(CutPlayout, timeline) is None  # 0.8 s: under the duration rule too
    assert core.s.counters.barge_in_by_articulation == 0


def test_a_transcript_of_our_own_echo_is_dropped() -> None:
    core = judge()
    speaking(core)
    core.handle(RtSpeechStarted("e1", 4800, 10.0), 10.0)
    for k in range(40):  # the server heard speech; every frame of it was explained by our echo
        t = 10.0 + 0.02 * k
        assert core.handle(CallerLevel(LOUD, FLOOR, t, echo=True), t) == []
    core.handle(RtSpeechStopped("e1", 5600, 10.9), 10.9)
    out = core.handle(RtTranscriptDone("e1", "יש לנו מקום מחר בתשע", 11.2), 11.2)
    assert kinds(out) == [DeleteItem]
    assert Utterance("CA1", "caller", "יש לנו מקום מחר בתשע", "echo", 4800, 5600, False) in out
    assert core.s.counters.echo_transcripts == 1 and core.s.counters.barge_in_events == 0
    assert core.s.counters.barge_in_candidates == 0 and core.s.phase is JudgePhase.AI_SPEAKING


def test_a_short_real_word_over_the_echo_still_cuts() -> None:
    core = judge()
    speaking(core)
    core.handle(RtSpeechStarted("u1", 4800, 10.0), 10.0)
    for k in range(20):
        t = 10.0 + 0.02 * k
        core.handle(CallerLevel(LOUD, FLOOR, t, echo=k % 4 != 0), t)  # "לא" louder than the echo, in places
    core.handle(RtSpeechStopped("u1", 5200, 10.5), 10.5)
    out = core.handle(RtTranscriptDone("u1", "לא", 10.8), 10.8)
    assert CutPlayout("transcript confirms a turn", 10.8) in out


def test_a_yes_to_the_ais_question_during_its_last_sentence_is_an_answer() -> None:
    """"...יש מקום מחר בתשע, מתאים לך?" — a "כן" over its last sentence answers it; earlier it is a backchannel."""
    core = judge()
    speaking(core)
    core.handle(RtAssistantTranscriptDone("r1", "a1", "יש לנו מקום מחר בתשע. מתאים לך?", 5.2), 5.2)
    early = core.handle(RtTranscriptDone("u1", "כן", 6.0), 6.0)  # mid-answer, the question not yet reached
    assert kinds(early) == [LetStand]
    core.handle(TurnEnding("r1", 7.0), 7.0)
    out = core.handle(RtTranscriptDone("u2", "כן", 7.5), 7.5)
    assert kinds(out) == [CutPlayout, AnswerRequest]
    said = next(a for a in out if isinstance(a, LogLine) and a.event == "CALLER_SAID")
    assert said.fields["label"] == "turn" and "question" in str(said.fields["reason"])


def test_a_yes_during_the_last_sentence_of_a_statement_stays_a_backchannel() -> None:
    core = judge()
    speaking(core)
    core.handle(RtAssistantTranscriptDone("r1", "a1", "הטיפול לוקח בערך שעתיים.", 5.2), 5.2)
    core.handle(TurnEnding("r1", 7.0), 7.0)
    assert kinds(core.handle(RtTranscriptDone("u2", "כן", 7.5), 7.5)) == [LetStand]


def test_a_finished_question_does_not_make_the_next_answers_yes_an_answer() -> None:
    """The greeting asked "איך אפשר לעזור?"; mid-way through the next answer a "כן" is a backchannel again."""
    core = judge()
    core.handle(RtAssistantTranscriptDone("greet", "g", "שלום, איך אפשר לעזור?", 1.0), 1.0)
    core.handle(TurnEnding("greet", 2.0), 2.0)
    speaking(core)  # the greeting finished (ResponseFinished), the answer plays
    assert kinds(core.handle(RtTranscriptDone("u1", "כן כן", 6.0), 6.0)) == [LetStand]


def test_the_clear_latency_series_runs_from_the_callers_first_sound() -> None:
    """"רגע, ... לא": the pause between the words leaks the energy accumulator, not the onset of the speech."""
    core = judge()
    speaking(core)
    frames(core, 10.0, 8, LOUD, syllables=2, spectral_hz=300.0)  # "רגע" (160 ms), then a 260 ms pause
    out = frames(core, 10.42, 8, LOUD, syllables=3, spectral_hz=300.0)
    cut_at = first(CutPlayout, out)
    assert cut_at is not None and cut_at > 10.42
    assert core.series()["barge_in_clear_ms"] == [int(round((cut_at - 10.0) * 1000))]  # not from 10.42
