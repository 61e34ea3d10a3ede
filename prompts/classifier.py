"""Turn classifier: is a caller transcript only filler sounds, a listener's backchannel, or a real turn?

Theory of operation: normalise, tokenise, look every token up. Normalising strips Hebrew niqqud and
cantillation, punctuation and dashes, lower-cases Latin letters and collapses letter elongations
("אמממממ" → "אמ", "ummm" → "um"), and the lexicon's own entries are normalised the same way. Arabic
as Lucene's ArabicNormalizer does it: tashkeel and tatweel removed, hamza/madda alef forms to a bare
alef, alef maksura to yeh, teh marbuta to heh ("لَا" → "لا", "يـــعني" → "يعني", "أكيد" = "اكيد").
Russian: "ё" is "е", and a drawl written with hyphens is one elongated word ("ну-у-у" → "ну", "э-э" →
"э"; "да-да" stays two words). Each of these touches only Arabic or Cyrillic letters. A
transcript is `filler` only when every token is a filler sound (empty and punctuation-only
transcripts included); a `backchannel` when its tokens are backchannels ("כן", "נכון", "בסדר") and
fillers, at least one backchannel; any other meaningful token makes it a `turn`, and a stop word
("לא", "רגע", "די", "עצור", "אבל") always does — "כן, אבל כמה זה עולה?" is a turn. Whether a
backchannel cuts the AI is the judge's call (it does not while the AI is mid-sentence; after the AI's
turn it is an answer). Length never decides: "לא" is a turn.
Matching is whole-token, never prefix: "ממש", "אמא", "אמת", "המשך", "אהבה" are words. The lists are
data (prompts/lexicon/<language>.toml), extended per business.
"""
from __future__ import annotations

import enum
import re
import tomllib
import unicodedata
from pathlib import Path

import msgspec

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"
_HEBREW_MARKS = re.compile("[\u0591-\u05bd\u05bf-\u05c7]")  # niqqud + cantillation (maqaf U+05BE kept as dash)
_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)
_ELONGATION = re.compile(r"(\w)\1+", re.UNICODE)
# Arabic: Quranic annotation signs, tashkeel (harakat, tanween, shadda, sukun, superscript alef), small high signs, tatweel
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed\u0640]")
_LETTER_FORMS = str.maketrans({"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",  # أ إ آ ٱ → ا
                               "\u0649": "\u064a", "\u0629": "\u0647",  # ى → ي, ة → ه
                               "\u0451": "\u0435"})  # ё → е
_CYRILLIC_STRESS = re.compile("(?<=[\u0400-\u04ff])[\u0300\u0301]")  # "за́втра": a stress mark, not a word break
_CYRILLIC_DRAWL = re.compile("([\u0400-\u04ff])(?:-\\1)+(?![\u0400-\u04ff])")  # "ну-у-у", "да-а", "э-э-э"


class TurnLabel(str, enum.Enum):
    FILLER = "filler"
    BACKCHANNEL = "backchannel"
    TURN = "turn"


class Lexicon(msgspec.Struct, frozen=True):
    language: str
    fillers: frozenset[str]
    short_words: frozenset[str]
    backchannels: frozenset[str] = frozenset()
    stop_words: frozenset[str] = frozenset()

    def extended(self, fillers: list[str] | None = None, short_words: list[str] | None = None,
                 backchannels: list[str] | None = None) -> "Lexicon":
        return Lexicon(self.language, self.fillers | _normalised_set(fillers or []),
                       self.short_words | _normalised_set(short_words or []),
                       self.backchannels | _normalised_set(backchannels or []), self.stop_words)


class _LexiconFile(msgspec.Struct, forbid_unknown_fields=True):
    language: str
    fillers: list[str]
    short_words: list[str] = []
    backchannels: list[str] = []
    stop_words: list[str] = []


def normalise(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text)
    text = _HEBREW_MARKS.sub("", text)
    text = _CYRILLIC_STRESS.sub("", _ARABIC_MARKS.sub("", text)).casefold().translate(_LETTER_FORMS)
    text = _CYRILLIC_DRAWL.sub(r"\1", text)
    text = _NOT_WORD.sub(" ", text.replace("_", " "))
    return [_ELONGATION.sub(r"\1", token) for token in text.split()]


def _normalised_set(words: list[str]) -> frozenset[str]:
    return frozenset(token for word in words for token in normalise(word))


def load_lexicon(language: str) -> Lexicon:
    path = LEXICON_DIR / f"{language}.toml"
    if not path.exists():
        path = LEXICON_DIR / "en.toml"
    data = msgspec.convert(tomllib.loads(path.read_text(encoding="utf-8")), _LexiconFile)
    return Lexicon(language, _normalised_set(data.fillers), _normalised_set(data.short_words),
                   _normalised_set(data.backchannels), _normalised_set(data.stop_words))


def classify(transcript: str, lexicon: Lexicon) -> TurnLabel:
    backchannel = False
    for token in normalise(transcript):
        if token in lexicon.stop_words:
            return TurnLabel.TURN
        if token in lexicon.backchannels:
            backchannel = True
        elif token in lexicon.short_words or token not in lexicon.fillers:
            return TurnLabel.TURN
    return TurnLabel.BACKCHANNEL if backchannel else TurnLabel.FILLER
