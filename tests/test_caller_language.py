"""The caller-language detector (actors/cores/caller_language.py) on sequences of caller transcripts."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.cores.caller_language import (
    SWITCH_WORDS,
    CallerLanguage,
    CallerLanguageState,
    LanguagePhase,
    Script,
    initial_state,
    words_by_script,
)
from actors.ingress_messages import RtSpeechStarted, RtTranscriptDone
from actors.language_messages import CallerLanguageChanged
from actors.lifecycle_messages import LogLine, encode_state

REPO = Path(__file__).resolve().parent.parent
GARAGE = ["he", "ar", "ru", "en"]


def detector(languages: list[str] | None = None) -> CallerLanguage:
    languages = languages or GARAGE
    return CallerLanguage(initial_state("CA-lang", languages), languages)


def say(core: CallerLanguage, *transcripts: str, start: float = 10.0) -> list[CallerLanguageChanged]:
    """Feed the transcripts one second apart; the language changes decided, in order."""
    changes = []
    for n, text in enumerate(transcripts):
        out = core.handle(RtTranscriptDone(f"item_{n}", text, start + n), start + n)
        changes += [m for m in out if isinstance(m, CallerLanguageChanged)]
    return changes


def hops(changes: list[CallerLanguageChanged]) -> list[tuple[str, str]]:
    return [(c.from_language, c.to_language) for c in changes]


# ------------------------------------------------------------------ Hebrew with English words stays Hebrew
@pytest.mark.parametrize("text", ["אני צריך appointment", "זה ה-update", "יש לי meeting ב-5", "אוקיי, send לי את ה-link",
                                  "תעשה לי cancel", "בupdate האחרון", "ok", "אני צריך appointment for", "קוראים לי David Cohen"])
def test_hebrew_with_english_words_stays_hebrew(text: str) -> None:
    core = detector()
    assert say(core, text, text, text, "כן", text) == []
    assert core.state.language == "he"


def test_a_lone_ok_never_switches() -> None:
    core = detector()
    assert say(core, *["ok", "okay", "OK!", "Okay.", "yes", "no", "ok ok", "hello", "bye", "hmm", "um"] * 3) == []
    assert core.state.language == "he" and core.state.phase is LanguagePhase.SETTLED


# ------------------------------------------------------------------ Arabic after a Hebrew greeting
def test_one_arabic_utterance_of_three_words_switches() -> None:
    core = detector()
    changes = say(core, "بدي موعد بكرا")
    assert hops(changes) == [("he", "ar")]
    assert changes[0].evidence == "3 Arabic words: «بدي موعد بكرا»" and changes[0].at == 10.0
    assert core.state.language == "ar"


def test_one_short_arabic_utterance_does_not_switch_and_two_in_a_row_do() -> None:
    core = detector()
    assert say(core, "لا") == [] and core.state.phase is LanguagePhase.PENDING
    changes = say(core, "شو؟", start=20.0)
    assert hops(changes) == [("he", "ar")] and changes[0].evidence == "2 short utterances: «لا» «شو؟»"


def test_the_short_ones_must_be_consecutive_and_of_one_language() -> None:
    core = detector()
    assert say(core, "لا", "כן", "لا", "כן") == [] and core.state.language == "he"  # Hebrew in between: forgotten
    assert say(core, "استنى", "Стоп", "لحظة") == [] and core.state.pending_language == "ar"  # Russian in between
    assert hops(say(core, "ok", "بس")) == [("he", "ar")]  # "ok" is no evidence: it breaks nothing


def test_diacritics_tatweel_digits_and_punctuation_are_not_words() -> None:
    core = detector()
    assert say(core, "بَدِّي ٣ مَوْعِد!!! 054-1234567") == [] and core.state.pending_language == "ar"  # two words
    assert [w for _, w in words_by_script("يـــعـــني، ٢٠٢٤ — 12:30 ?")] == ["يـــعـــني"]
    assert words_by_script("כֵּן, אֶמְמ 3") == [(Script.HEBREW, "כֵּן"), (Script.HEBREW, "אֶמְמ")]


# ------------------------------------------------------------------ Russian, English, and back
def test_russian_switches_by_the_same_rule() -> None:
    core = detector()
    assert say(core, "Да") == []
    assert hops(say(core, "Здравствуйте, машина не заводится")) == [("he", "ru")]


def test_english_speaker_switches_a_hebrew_business_with_english_in_its_list() -> None:
    core = detector()
    assert hops(say(core, "Hi, I need an appointment for my car")) == [("he", "en")]


def test_a_caller_who_switches_back_is_followed_back() -> None:
    core = detector()
    changes = say(core, "بدي موعد بكرا الصبح", "لا", "طيب", "רגע, אני מדבר עברית", "כן", "نعم", "تمام", "ок", "כן כן")
    assert hops(changes) == [("he", "ar"), ("ar", "he"), ("he", "ar")]
    assert [c.at for c in changes] == [10.0, 13.0, 16.0] and core.state.language == "ar"
    assert core.counters() == {"caller_language_utterances": 8, "caller_language_switches": 3}


def test_latin_is_english_unless_another_listed_latin_language_matches_better() -> None:
    core = detector(["he", "fr", "en"])
    assert hops(say(core, "Bonjour, je voudrais un rendez-vous pour ma voiture")) == [("he", "fr")]
    assert hops(say(core, "Sorry, I don't speak French, can you help me", start=20.0)) == [("fr", "en")]
    assert detector(["he", "en", "fr"]).read("Mercedes Benz Sprinter").language == "en"  # no function words: English


# ------------------------------------------------------------------ what never switches
def test_a_language_not_in_the_list_never_switches() -> None:
    core = detector(["he", "en"])
    assert say(core, "بدي موعد بكرا الصبح", "لا", "لا", "Здравствуйте, мне нужен мастер", "да", "да",
               "Γεια σας, θέλω ραντεβού") == []
    assert core.state.language == "he" and core.state.utterances == 0


def test_a_one_language_business_never_switches() -> None:
    core = detector(["he"])
    assert say(core, "Hello, I need an appointment please", "yes", "yes", "بدي موعد بكرا", "no", "Давайте завтра") == []
    assert core.state.language == "he"


def test_other_messages_are_ignored() -> None:
    core = detector()
    assert core.handle(RtSpeechStarted("item", 0, 1.0), 1.0) == [] and core.state == initial_state("CA-lang", GARAGE)


# ------------------------------------------------------------------ decisions, log, snapshot
def test_each_switch_is_a_decision_and_a_caller_language_log_line() -> None:
    core = detector()
    out = core.handle(RtTranscriptDone("i1", "مرحبا، بدي موعد بكرا", 5.0), 5.0)
    assert out == [CallerLanguageChanged("CA-lang", "he", "ar", "4 Arabic words: «مرحبا، بدي موعد بكرا»", 5.0),
                   LogLine("CALLER_LANGUAGE", "info", {"call_sid": "CA-lang", "from": "he", "to": "ar",
                                                       "evidence": "4 Arabic words: «مرحبا، بدي موعد بكرا»"})]
    long = core.handle(RtTranscriptDone("i2", "Здравствуйте " * 40, 6.0), 6.0)
    assert isinstance(long[0], CallerLanguageChanged) and len(long[0].evidence) < 100


def test_the_state_survives_a_snapshot_and_restore() -> None:
    core = detector()
    say(core, "بدي موعد بكرا الصبح", "Да")
    restored_state = msgspec.msgpack.decode(encode_state(core.snapshot()), type=CallerLanguageState)
    restored = CallerLanguage(restored_state, GARAGE)
    assert restored.state == core.state and restored.state.pending_language == "ru"
    assert hops(say(restored, "Нет", start=30.0)) == [("ar", "ru")]
    assert hops(restored.state.switches) == [("he", "ar"), ("ar", "ru")]


def test_a_state_outside_the_list_is_refused() -> None:
    with pytest.raises(ValueError):
        CallerLanguage(CallerLanguageState("CA", "fr"), ["he", "en"])
    with pytest.raises(ValueError):
        CallerLanguage(CallerLanguageState("CA", "he"), [])


def test_message_class_names_are_unique_across_the_message_modules() -> None:
    names: list[str] = []
    for path in sorted((REPO / "actors").glob("*messages.py")) + [REPO / "actors" / "settings.py"]:
        names += [n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.ClassDef)]
    assert "CallerLanguageChanged" in names and len(names) == len(set(names))


# ------------------------------------------------------------------ property: only listed languages, consistent hops
WORDS = ["אני", "צריך", "תור", "כן", "לא", "אממ", "בדיקה", "مرحبا", "بدي", "موعد", "لا", "يعني", "ممم", "آه",
         "Здравствуйте", "нет", "да", "э-э", "машина", "hello", "ok", "I", "need", "the", "car", "je", "voudrais", "la",
         "Γεια", "σας", "你好", "054", "12:30", "?", "ה-update", "بَدِّي", "كֵּן"]
TRANSCRIPT = st.one_of(st.lists(st.sampled_from(WORDS), max_size=7).map(" ".join), st.text(max_size=20))
LANGUAGES = st.lists(st.sampled_from(["he", "ar", "ru", "en", "fr", "es", "de", "el", "xx"]), min_size=1, max_size=5,
                     unique=True)


@settings(max_examples=300, deadline=None)
@given(LANGUAGES, st.lists(TRANSCRIPT, max_size=25))
def test_any_transcripts_yield_only_listed_languages_and_consistent_hops(languages: list[str], transcripts: list[str]) -> None:
    core = detector(languages)
    out: list[object] = []
    for n, text in enumerate(transcripts):
        out += core.handle(RtTranscriptDone(f"i{n}", text, float(n)), float(n))
    changes = [m for m in out if isinstance(m, CallerLanguageChanged)]
    logs = [m for m in out if isinstance(m, LogLine)]
    assert len(out) == 2 * len(changes) and [(log.fields["from"], log.fields["to"]) for log in logs] == hops(changes)
    language = languages[0]
    for change in changes:
        assert change.from_language == language and change.to_language != language
        assert change.to_language in languages
        language = change.to_language
    assert core.state.language == language
    if len(languages) == 1:
        assert changes == []
    for change in changes:  # one long utterance, or two short ones
        long = re.fullmatch(r"(\d+) (Hebrew|Arabic|Cyrillic|Latin) words: «.*»", change.evidence, re.S)
        assert (long is not None and int(long.group(1)) >= SWITCH_WORDS) or change.evidence.startswith("2 short utterances: «")
