"""The caller's language inside one call, on a virtual clock: the judge decides it and changes its lexicon;
the bridge pins transcription, adds the instruction layer, records the switch; the summary names it."""
from __future__ import annotations

from typing import Any

from actors.children import make_judge, make_metrics
from actors.cores.bridge import BridgeState, RealtimeBridgeCore
from actors.cores.judge import BargeInJudgeCore
from actors.cores.metrics import MetricsCore
from actors.cores.session_config import session_update
from actors.ingress_messages import (
    RtResponseCreated,
    RtResponseDone,
    RtSpeechStarted,
    RtSpeechStopped,
    RtTranscriptDone,
    StartCall,
    Tick,
)
from actors.language_messages import CallerLanguageChanged, LanguageSwitched
from actors.lifecycle_messages import LogLine, SummarizeCall
from actors.link_messages import RealtimeConnected, RealtimeLost
from actors.messages import (
    AnswerRequest,
    CallerLevel,
    CallSummary,
    CutPlayout,
    DeleteItem,
    DiscardAudio,
    LetStand,
    PlayoutChanged,
    PreemptiveAnswer,
    ResponseFinished,
    RestorePlayout,
    Utterance,
)
from actors.settings import CallSettings, LanguageSettings
from actors.wire_messages import RtResponseCancel, RtResponseCreate, RtSessionUpdate, ToRealtime
from gateway.config.overrides import language_settings_for
from prompts.builder import caller_language_layers
from storage.businesses import BusinessView
from tests.conftest import settings

LAYERS = caller_language_layers("he", ("he", "ar", "ru", "en"))


def multilingual() -> CallSettings:
    return settings(caller_languages=LanguageSettings(("he", "ar", "ru", "en"), LAYERS, {"ar": ("ووو",)}))


def judge() -> BargeInJudgeCore:
    core = make_judge(multilingual(), None)
    assert isinstance(core, BargeInJudgeCore)
    core.handle(ResponseFinished("greet", "g", 3000, 2.0), 2.0)  # the greeting played
    return core


def kinds(actions: list[object]) -> list[type]:
    return [type(a) for a in actions if not isinstance(a, (LogLine, Utterance))]


def said(core: BargeInJudgeCore, item: str, text: str, at: float) -> list[object]:
    core.handle(RtSpeechStarted(item, int(at * 1000) - 900, at - 0.9), at - 0.9)
    core.handle(CallerLevel(70.0, 40.0, at - 0.8), at - 0.8)  # the caller's own voice: no echo
    core.handle(RtSpeechStopped(item, int(at * 1000) - 300, at - 0.3), at - 0.3)
    return core.handle(RtTranscriptDone(item, text, at), at)


def over_the_ai(core: BargeInJudgeCore, item: str, text: str, at: float) -> list[object]:
    """The AI speaks; the caller makes a sound over it for 300 ms (a candidate), then its transcript."""
    core.handle(PlayoutChanged(True, f"r-{item}", at - 1.0), at - 1.0)
    for k in range(15):
        t = at - 0.9 + 0.02 * k
        core.handle(CallerLevel(70.0, 40.0, t), t)
    core.handle(RtSpeechStarted(item, 4800, at - 0.8), at - 0.8)
    core.handle(RtSpeechStopped(item, 5300, at - 0.3), at - 0.3)
    return core.handle(RtTranscriptDone(item, text, at), at)


def test_one_long_arabic_utterance_switches_ahead_of_its_answer_and_the_lexicon_follows() -> None:
    core = judge()
    out = said(core, "u1", "مرحبا بدي احجز دور للسيارة بكرا الصبح", 5.0)
    assert kinds(out) == [CallerLanguageChanged, AnswerRequest]  # the bridge re-configures before it answers
    changed = out[0]
    assert isinstance(changed, CallerLanguageChanged) and (changed.from_language, changed.to_language) == ("he", "ar")
    line = next(a for a in out if isinstance(a, LogLine) and a.event == "CALLER_LANGUAGE")
    assert line.fields["from"] == "he" and line.fields["to"] == "ar" and "Arabic words" in str(line.fields["evidence"])
    assert core.lexicon.language == "ar"
    # an Arabic filler over the AI: restored, deleted, no answer; the business's own Arabic filler too
    filler = over_the_ai(core, "u2", "اممم", 8.0)
    assert kinds(filler) == [DeleteItem, RestorePlayout]
    business_filler = over_the_ai(core, "u3", "ووو", 11.0)
    assert kinds(business_filler) == [DeleteItem, RestorePlayout]
    # "لا" alone is a real turn: it cuts the AI and is answered
    no = over_the_ai(core, "u4", "لا", 14.0)
    assert kinds(no) == [CutPlayout, AnswerRequest]
    assert core.counters()["caller_language_switches"] == 1


def test_hebrew_with_english_words_never_switches_and_keeps_the_hebrew_lexicon() -> None:
    core = judge()
    for k, text in enumerate(("אני צריך appointment למחר", "זה ה-update של הרכב", "ok", "ok", "אממ", "thanks")):
        out = said(core, f"u{k}", text, 5.0 + 3 * k)
        assert not any(isinstance(a, CallerLanguageChanged) for a in out), text
    assert core.lexicon.language == "he" and core.counters()["caller_language_switches"] == 0


def test_russian_then_back_to_hebrew_is_followed_both_ways() -> None:
    core = judge()
    first = said(core, "u1", "здравствуйте мне нужно записаться на ремонт", 5.0)
    assert [a.to_language for a in first if isinstance(a, CallerLanguageChanged)] == ["ru"]
    assert kinds(said(core, "u2", "нет", 8.0)) == [AnswerRequest]  # a short Russian word is a turn
    back = said(core, "u3", "סליחה אני אמשיך בעברית בבקשה", 11.0)
    assert [a.to_language for a in back if isinstance(a, CallerLanguageChanged)] == ["he"]
    assert core.lexicon.language == "he"


def test_our_own_echo_is_no_evidence_of_the_callers_language() -> None:
    core = judge()
    core.handle(PlayoutChanged(True, "r1", 4.0), 4.0)
    core.handle(RtSpeechStarted("e1", 1000, 4.2), 4.2)
    core.handle(CallerLevel(60.0, 40.0, 4.3, echo=True), 4.3)
    core.handle(RtSpeechStopped("e1", 2000, 4.8), 4.8)
    out = core.handle(RtTranscriptDone("e1", "здравствуйте мне нужно записаться на ремонт", 5.0), 5.0)
    assert not any(isinstance(a, CallerLanguageChanged) for a in out)
    assert any(isinstance(a, Utterance) and a.label == "echo" for a in out)


def test_a_one_language_business_has_no_detector_and_pins_transcription() -> None:
    core = make_judge(settings(), None)
    assert isinstance(core, BargeInJudgeCore) and core.language is None
    out = core.handle(RtTranscriptDone("u1", "مرحبا بدي احجز دور للسيارة بكرا", 5.0), 5.0)
    assert not any(isinstance(a, CallerLanguageChanged) for a in out)
    assert session_update(settings()).session.audio.input.transcription.language == "he"
    assert "caller_language_switches" not in core.counters()


# --------------------------------------------------------------------------- the bridge
def events(actions: list[object]) -> list[Any]:
    return [a.event for a in actions if isinstance(a, ToRealtime)]


def live_bridge() -> RealtimeBridgeCore:
    bridge = RealtimeBridgeCore(BridgeState("CA1"), multilingual())
    start = bridge.handle(StartCall(multilingual(), 0.0), 0.0)
    first = next(e for e in events(start) if isinstance(e, RtSessionUpdate))
    assert first.session.audio.input.transcription.language is None  # detected per utterance at first
    assert first.session.instructions == "be helpful"
    bridge.handle(RealtimeConnected(1, 0.1), 0.1)
    return bridge


def test_a_switch_pins_transcription_adds_the_layer_and_is_recorded() -> None:
    bridge = live_bridge()
    out = bridge.handle(CallerLanguageChanged("CA1", "he", "ar", "7 Arabic words: «…»", 5.0), 5.0)
    update = next(e for e in events(out) if isinstance(e, RtSessionUpdate))
    assert update.session.audio.input.transcription.language == "ar"
    assert update.session.instructions == f"be helpful\n\n{LAYERS['ar']}" and "ערבית" in LAYERS["ar"]
    assert LanguageSwitched("CA1", "he", "ar", "7 Arabic words: «…»", 5.0) in out
    # the answer that follows is asked after the update; a response-level instruction carries the layer too
    answer = events(bridge.handle(AnswerRequest("u1", "…", 5.0), 5.0))
    assert answer == [RtResponseCreate()]
    bridge.handle(RtResponseCreated("r1", 5.1), 5.1)
    # a restored session is configured in the caller's language again
    bridge.handle(RealtimeLost(1, 1006, "lost", 6.0), 6.0)
    for t in (6.1, 6.2, 6.3):
        bridge.handle(Tick(t), t)
    restored = events(bridge.handle(RealtimeConnected(2, 6.4), 6.4))
    again = next(e for e in restored if isinstance(e, RtSessionUpdate))
    assert again.session.audio.input.transcription.language == "ar" and LAYERS["ar"] in again.session.instructions


def test_a_preemptive_answer_asked_in_the_old_language_is_discarded_and_asked_again() -> None:
    bridge = live_bridge()
    assert events(bridge.handle(PreemptiveAnswer("u1", 4.0), 4.0)) == [RtResponseCreate()]
    bridge.handle(RtResponseCreated("r1", 4.1), 4.1)
    switched = bridge.handle(CallerLanguageChanged("CA1", "he", "ru", "…", 4.5), 4.5)
    assert any(isinstance(a, LogLine) and a.event == "PREEMPTIVE_ANSWER discarded" for a in switched)
    assert RtResponseCancel("r1") in events(switched)
    # the verdict's answer waits for the cancelled response, then is asked in the new language's session
    assert events(bridge.handle(AnswerRequest("u1", "нет", 4.6), 4.6)) == []
    assert events(bridge.handle(RtResponseDone("r1", "cancelled", "", 4.7), 4.7)) == [RtResponseCreate()]


def test_the_summary_names_the_language_the_caller_spoke_last() -> None:
    metrics = make_metrics(multilingual(), None)
    assert isinstance(metrics, MetricsCore)
    metrics.handle(CallerLanguageChanged("CA1", "he", "ar", "…", 5.0), 5.0)
    out = metrics.handle(SummarizeCall("hangup", 9.0), 9.0)
    summary = next(a for a in out if isinstance(a, CallSummary))
    line = next(a for a in out if isinstance(a, LogLine) and a.event == "CALL_METRICS")
    assert summary.caller_language == "ar"
    assert line.fields["caller_language"] == "ar" and line.fields["caller_languages"] == "he>ar"


def test_a_business_view_becomes_the_calls_language_settings() -> None:
    view = BusinessView("garage", "n", "he", "g", "", "", True, [], languages=["he", "ar"],
                        lexicons={"ar": {"fillers": ["ووو"], "short_words": [], "backchannels": ["ايوا"]}})
    spoken = language_settings_for(view, {"ar": "layer"})
    assert spoken == LanguageSettings(("he", "ar"), {"ar": "layer"}, {"ar": ("ووو",)}, {}, {"ar": ("ايوا",)})
    assert language_settings_for(BusinessView("g", "n", "he", "g", "", "", True, []), {}) == LanguageSettings(("he",))


def test_a_switch_while_a_discarded_preemptive_answer_awaits_its_creation_leaves_nothing_stuck() -> None:
    bridge = live_bridge()
    assert events(bridge.handle(PreemptiveAnswer("u1", 4.0), 4.0)) == [RtResponseCreate()]
    assert events(bridge.handle(LetStand("u1", 4.1), 4.1)) == []  # a backchannel: discard once it is created
    assert isinstance(events(bridge.handle(CallerLanguageChanged("CA1", "he", "ar", "…", 4.2), 4.2))[0], RtSessionUpdate)
    created = bridge.handle(RtResponseCreated("r1", 4.3), 4.3)
    assert RtResponseCancel("r1") in events(created) and DiscardAudio("r1", 4.3) in created
    bridge.handle(RtResponseDone("r1", "cancelled", "", 4.4), 4.4)
    assert bridge.responses.preempt.idle
    assert events(bridge.handle(AnswerRequest("u2", "لا", 5.0), 5.0)) == [RtResponseCreate()]
    assert bridge.counters()["preemptive_discarded"] == 1


def test_an_arabic_filler_before_the_call_switched_is_judged_as_the_arabic_filler_it_is() -> None:
    core = judge()
    assert kinds(over_the_ai(core, "u1", "يعني", 8.0)) == [DeleteItem, RestorePlayout]  # no cut, no answer
    assert core.lexicon.language == "he"  # one short Arabic utterance: pending, not switched
    # a second short one switches (the rule), and is itself judged in Arabic: a listener's "طيب", no cut, no answer
    assert kinds(over_the_ai(core, "u2", "طيب", 11.0)) == [CallerLanguageChanged, LetStand, RestorePlayout]
    assert kinds(over_the_ai(core, "u3", "לא", 14.0)) == [CutPlayout, AnswerRequest]  # Hebrew judged in Hebrew
