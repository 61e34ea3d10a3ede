"""The turn classifier over a table of Hebrew and English phone transcripts."""
from __future__ import annotations

import pytest

from gateway.cli import main
from prompts.classifier import TurnLabel, classify, load_lexicon, normalise

HE = load_lexicon("he")
EN = load_lexicon("en")

F, B, T = TurnLabel.FILLER, TurnLabel.BACKCHANNEL, TurnLabel.TURN
CASES: list[tuple[str, str, TurnLabel]] = [
    # Hebrew fillers, elongated, punctuated, with niqqud
    ("he", "אמ", F), ("he", "אממ", F), ("he", "אמממ", F), ("he", "אממממממממ", F), ("he", "אה", F),
    ("he", "אהה", F), ("he", "אההה", F), ("he", "אההההההה", F), ("he", "הממ", F), ("he", "הממממ", F),
    ("he", "אהמ", F), ("he", "אהממ", F), ("he", "ממ", F), ("he", "מממ", F), ("he", "אה…", F),
    ("he", "אממ, אה", F), ("he", "אממ... אה...", F), ("he", "  אממ?  ", F), ("he", "אֶמְמְמ", F),
    ("he", "אֶה", F), ("he", "הֶמְמ", F), ("he", "אממ-אה", F), ("he", "\"אממ\"", F), ("he", "אה, אה, אה", F),
    ("he", "umm", F), ("he", "Ehm", F), ("he", "", F), ("he", "...", F), ("he", " ? ! ", F), ("he", "—", F),
    # short real words are turns
    ("he", "לא", T), ("he", "די", T), ("he", "מה", T), ("he", "רגע", T), ("he", "עצור", T),
    ("he", "שנייה", T), ("he", "טוב", T), ("he", "לא!", T), ("he", "מה?", T), ("he", "לאאאא", T),
    # backchannels: listener signals (the judge decides whether they cut: not while the AI is mid-sentence)
    ("he", "כן", B), ("he", "כן כן", B), ("he", "כֵּן", B), ("he", "אוקיי", B), ("he", "נכון", B), ("he", "בסדר", B),
    ("he", "אממ כן", B), ("he", "כן, נכון", B), ("he", "ברור.", B),
    # a stop word or content after a backchannel makes it a turn
    ("he", "כן, אבל כמה זה עולה?", T), ("he", "כן רגע", T), ("he", "לא לא", T), ("he", "בסדר, ומה המחיר", T),
    # filler + content is a turn ("he", "אממ אני רוצה לשמוע עוד", T), ("he", "אהה טוב, תסביר לי איך זה עובד", T),
    ("he", "הממ, כמה זה עולה", T), ("he", "אה… לא", T), ("he", "אממממ רגע", T),
    # real words that start like fillers: whole-token match only
    ("he", "ממש", T), ("he", "אמא", T), ("he", "אמת", T), ("he", "המשך", T), ("he", "אהבה", T),
    ("he", "אם", T), ("he", "המספר שלי", T), ("he", "אמרתי לא", T), ("he", "ממש לא", T),
    # English
    ("en", "um", F), ("en", "Ummmm...", F), ("en", "uh, um", F), ("en", "hmm", F), ("en", "Hmmmm?", F),
    ("en", "erm", F), ("en", "mm-mm", F), ("en", "no", T), ("en", "yes", B), ("en", "stop", T), ("en", "wait", T),
    ("en", "um, how much is it?", T), ("en", "uh no", T), ("en", "umbrella", T), ("en", "hmm okay", B),
    ("en", "yeah right", B), ("en", "yes but how much", T), ("en", "okay wait", T),
    ("en", "Um... what?", T), ("en", "", F),
]


@pytest.mark.parametrize("lang, text, label", CASES)
def test_classify(lang: str, text: str, label: TurnLabel) -> None:
    assert classify(text, HE if lang == "he" else EN) is label


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 50


def test_normalise_strips_marks_and_collapses_elongations() -> None:
    assert normalise("אֶמְמְמְמ, אָה…") == ["אמ", "אה"]
    assert normalise("UMMMM... Hmm!") == ["um", "hm"]


def test_business_additions_extend_the_lexicon() -> None:
    extended = HE.extended(fillers=["יאללה"], short_words=["אה"])
    assert classify("יאללה", HE) is T and classify("יאללה", extended) is F
    assert classify("אה", extended) is T  # a business may declare a sound meaningful


def test_turn_check_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn-check", "--lang", "he", "--backchannel", "יאללה", "אממ", "לא", "אהה טוב", "אה…", "כן כן",
                 "יאללה"]) == 0
    assert capsys.readouterr().out.split() == ["filler", "turn", "turn", "filler", "backchannel", "backchannel"]
