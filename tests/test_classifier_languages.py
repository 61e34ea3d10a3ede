"""The turn classifier per language on hidden sets (tests/data/turns/<language>.tsv: `text<TAB>label`, "#"
comments), and the normalisation of Arabic and Russian transcripts — which leaves Hebrew and English as they were."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompts.classifier import TurnLabel, classify, load_lexicon, normalise

HIDDEN = Path(__file__).resolve().parent / "data" / "turns"
MIN_ROWS = 40
MIN_ACCURACY = 0.95


def hidden_set(language: str) -> list[tuple[str, TurnLabel]]:
    rows = []
    for line in (HIDDEN / f"{language}.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line:
            continue
        text, label = line.split("\t")
        rows.append((text, TurnLabel(label)))
    return rows


@pytest.mark.parametrize("language", ["he", "ar", "ru"])
def test_the_classifier_scores_on_the_hidden_set(language: str) -> None:
    rows = hidden_set(language)
    lexicon = load_lexicon(language)
    assert lexicon.language == language and len(rows) >= MIN_ROWS
    missed = [(text, label.value, classify(text, lexicon).value) for text, label in rows if classify(text, lexicon) is not label]
    accuracy = 1 - len(missed) / len(rows)
    print(f"{language}: {accuracy:.1%} of {len(rows)}, missed {missed}")
    assert accuracy >= MIN_ACCURACY, missed


@pytest.mark.parametrize("language", ["ar", "ru"])
def test_the_lexicon_is_its_own_not_the_english_fallback(language: str) -> None:
    lexicon = load_lexicon(language)
    assert lexicon.fillers and lexicon.short_words and lexicon.backchannels and lexicon.stop_words
    assert lexicon.fillers != load_lexicon("en").fillers
    assert not lexicon.stop_words & lexicon.backchannels  # a stop word is never a listener signal


def test_arabic_tashkeel_tatweel_hamza_forms_and_elongations() -> None:
    assert normalise("لَا") == normalise("لا") == normalise("لاااا") == normalise("لاـــ") == ["لا"]
    assert normalise("يـــعـــني...") == ["يعني"]
    assert normalise("أكيد") == normalise("اكيد") and normalise("آه") == normalise("اه") == normalise("ااااه")
    assert normalise("إمم") == normalise("امممم") == ["ام"]
    assert normalise("طَيِّب، تمااام؟") == ["طيب", "تمام"]
    assert normalise("على ثانيةً") == ["علي", "ثانيه"]  # alef maksura → yeh, teh marbuta → heh


def test_russian_yo_drawls_and_repetitions() -> None:
    assert normalise("Ещё") == normalise("еще") == ["еще"]
    assert normalise("Э-э-э...") == normalise("эээ") == ["э"]
    assert normalise("ну-у-у") == ["ну"] and normalise("Да-а") == ["да"]
    assert normalise("да-да") == ["да", "да"] and normalise("угу-угу") == ["угу", "угу"]
    assert normalise("из-за") == ["из", "за"] and normalise("кто-то") == ["кто", "то"]  # words, not drawls
    assert normalise("за́втра") == ["завтра"]  # a stress mark is not a word break


def test_arabic_and_russian_calls_by_label() -> None:
    ar, ru = load_lexicon("ar"), load_lexicon("ru")
    assert [classify(t, ar) for t in ("يعني", "اه اه", "لا", "آه بس قديش؟")] == \
        [TurnLabel.FILLER, TurnLabel.BACKCHANNEL, TurnLabel.TURN, TurnLabel.TURN]
    assert [classify(t, ru) for t in ("э-э, ну", "да-да", "нет", "ага, а сколько?")] == \
        [TurnLabel.FILLER, TurnLabel.BACKCHANNEL, TurnLabel.TURN, TurnLabel.TURN]


# ------------------------------------------------------------------ Hebrew and English as they were
_BEFORE_MARKS = re.compile("[\u0591-\u05bd\u05bf-\u05c7]")
_BEFORE_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)
_BEFORE_ELONGATION = re.compile(r"(\w)\1+", re.UNICODE)


def normalise_before_issue_21(text: str) -> list[str]:
    """prompts.classifier.normalise as it was before Arabic and Russian (commit 2653e4d)."""
    text = _BEFORE_MARKS.sub("", unicodedata.normalize("NFC", text)).casefold()
    text = _BEFORE_NOT_WORD.sub(" ", text.replace("_", " "))
    return [_BEFORE_ELONGATION.sub(r"\1", token) for token in text.split()]


HEBREW_AND_LATIN = st.text(st.sampled_from([chr(c) for c in range(0x0591, 0x05f5)]
                                           + list("abcxyzABCXYZ éÉüß-–—_.,!?…'\"\u0301\u0300\u200f0123")), max_size=24)


@settings(max_examples=400, deadline=None)
@given(HEBREW_AND_LATIN)
def test_hebrew_and_english_normalise_exactly_as_before(text: str) -> None:
    assert normalise(text) == normalise_before_issue_21(text)


def test_the_hebrew_and_english_lexicons_are_unchanged_by_the_new_steps() -> None:
    for language in ("he", "en"):
        lexicon = load_lexicon(language)
        for words in (lexicon.fillers, lexicon.short_words, lexicon.backchannels, lexicon.stop_words):
            assert all(normalise_before_issue_21(word) == [word] for word in words)
