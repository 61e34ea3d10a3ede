"""CallerLanguage core — which of the business's languages the caller speaks, decided from what they say.

Theory of operation: each caller transcript is evidence. Its letters are sorted by script (Hebrew,
Arabic, Cyrillic, Latin; digits, punctuation, niqqud, tashkeel and tatweel are no letters) into words,
a word being a run of one script's letters ("ה-update", "בupdate": a Hebrew word and a Latin one), and
words, not letters, are counted: "אני צריך appointment" is two Hebrew words and one Latin. Sounds and
international words in any script are no evidence (NEUTRAL: "ok", "yes", "no", "hello", "um", "אוקיי",
"ممم", "э-э"): a lone "ok" never switches. The script with the most words is the utterance's, a tie
with the current language's script keeping it: a minority of English inside Hebrew is code-switching
("זה ה-update" stays Hebrew). Its language is the listed one of that script; Latin is English unless
another listed Latin language's function words match better (ties: current, English, list order). A
script of no listed language is no evidence: a language outside the list never switches.
Hysteresis, the same both ways (a caller who switches back is followed back):
  SETTLED  an utterance in another listed language with ≥ SWITCH_WORDS words of its script switches;
           a shorter one is remembered → PENDING.
  PENDING  a second short one in that language switches; one in the current language → SETTLED; one in
           yet another listed language is remembered instead; no evidence changes nothing.
The list's first language is the call's start (the greeting's), unless the caller's last call with the
business was in another listed one (greeted in it); a one-language list never switches.
Decisions: CallerLanguageChanged and a CALLER_LANGUAGE log line (from, to, evidence) — each built
from the transcript first, the state changed last.
"""
from __future__ import annotations

import enum
import unicodedata
from collections import Counter
from typing import Sequence

import msgspec

from actors.ingress_messages import RtTranscriptDone
from actors.language_messages import CallerLanguageChanged
from actors.lifecycle_messages import LogLine
from prompts.classifier import normalise

SWITCH_WORDS = 3  # one utterance this long in another listed language switches; two shorter ones in a row do
MAX_SWITCHES_KEPT = 16
EXCERPT_CHARS = 48


class Script(enum.Enum):
    HEBREW = "Hebrew"
    ARABIC = "Arabic"
    CYRILLIC = "Cyrillic"
    LATIN = "Latin"


SCRIPT_OF: dict[str, Script] = {"he": Script.HEBREW, "ar": Script.ARABIC, "ru": Script.CYRILLIC, "uk": Script.CYRILLIC,
                                "en": Script.LATIN, "fr": Script.LATIN, "es": Script.LATIN, "de": Script.LATIN}
_RANGES: tuple[tuple[int, int, Script], ...] = (
    (0x0041, 0x024F, Script.LATIN), (0x1E00, 0x1EFF, Script.LATIN),
    (0x0400, 0x052F, Script.CYRILLIC), (0x1C80, 0x1C8F, Script.CYRILLIC),
    (0x0590, 0x05FF, Script.HEBREW), (0xFB1D, 0xFB4F, Script.HEBREW),
    (0x0600, 0x06FF, Script.ARABIC), (0x0750, 0x077F, Script.ARABIC), (0x08A0, 0x08FF, Script.ARABIC),
    (0xFB50, 0xFDFF, Script.ARABIC), (0xFE70, 0xFEFF, Script.ARABIC),
)
_INSIDE_WORD = frozenset("'’\u05f3\u05f4")  # apostrophes, geresh, gershayim: "c'est", "צ'יפס" are one word
_TATWEEL = "\u0640"


def _keys(words: str) -> frozenset[str]:
    return frozenset(" ".join(normalise(word)) for word in words.split())


# sounds and words every caller uses whatever their language: no evidence (normalised like transcripts)
NEUTRAL = _keys("ok okay okey yes no hello hi bye um umm uh uhm hmm hm mm ah eh oh er erm ehm"
                " אוקיי אוקי הלו ביי אמ אממ אה אהה הממ ממ אהמ אע"
                " اوكي الو باي ممم امم اه إإإ هممم"
                " ок окей алло э-э эм мм хм а")
# function words that tell the Latin-script languages apart (a language without a list wins no tie by words)
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _keys("the i you is are and to of my it this that what need want can please have for with do how when where"
                " i'm don't"),
    "fr": _keys("je le la les est et un une des pour avec mon ma vous c'est oui merci bonjour pas besoin quand où comment"
                " voiture"),
    "es": _keys("el la los las es y un una para con mi usted sí gracias hola necesito quiero cuando dónde cómo coche cita"),
    "de": _keys("der die das ist und ich ein eine mit für mein sie ja danke hallo brauche möchte wann wo wie auto termin"),
}


def script_of(char: str) -> Script | None:
    """The script of a letter; None for anything that is not a letter (digits, punctuation, marks, tatweel)."""
    if not char.isalpha() or char == _TATWEEL:
        return None
    code = ord(char)
    return next((script for low, high, script in _RANGES if low <= code <= high), None)


def words_by_script(text: str) -> list[tuple[Script, str]]:
    """The runs of letters of one script: marks inside a word (niqqud, tashkeel, tatweel) and apostrophes do not end it."""
    words: list[tuple[Script, str]] = []
    script: Script | None = None
    letters: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        kind = script_of(char)
        if kind is None and script is not None and (char in _INSIDE_WORD or char == _TATWEEL
                                                    or unicodedata.category(char).startswith("M")):
            letters.append(char)
            continue
        if kind is not script and script is not None:
            words.append((script, "".join(letters)))
            letters = []
        script = kind
        if kind is not None:
            letters.append(char)
    if script is not None:
        words.append((script, "".join(letters)))
    return words


class Reading(msgspec.Struct, frozen=True):
    """One utterance's evidence: the listed language it is in ("" = none) and its words of that script."""

    language: str = ""
    words: int = 0
    excerpt: str = ""


class Verdict(enum.Enum):
    NONE = "none"  # no evidence: nothing changes
    STAY = "stay"  # the current language: a remembered short one is forgotten
    PEND = "pend"  # a first short one in another listed language
    SWITCH = "switch"


class LanguagePhase(enum.Enum):
    SETTLED = "settled"
    PENDING = "pending"  # one short utterance in another listed language: a second in a row switches


class CallerLanguageState(msgspec.Struct):
    call_id: str
    language: str  # the caller's language now (the list's first at the start)
    phase: LanguagePhase = LanguagePhase.SETTLED
    pending_language: str = ""
    pending_excerpt: str = ""
    utterances: int = 0  # transcripts that were evidence of a listed language
    switched: int = 0
    switches: list[CallerLanguageChanged] = msgspec.field(default_factory=list)  # the latest MAX_SWITCHES_KEPT


def initial_state(call_id: str, languages: Sequence[str], start: str = "") -> CallerLanguageState:
    """The call starts in `start` (a returning caller's last language) if listed, else in the list's first."""
    return CallerLanguageState(call_id, start if start in languages else languages[0])


class CallerLanguage:
    def __init__(self, state: CallerLanguageState, languages: Sequence[str]) -> None:
        if not languages or state.language not in languages:
            raise ValueError(f"the caller's language {state.language!r} is not one of {list(languages)}")
        self.state = state
        self.languages = tuple(languages)

    def snapshot(self) -> CallerLanguageState:
        return self.state

    def counters(self) -> dict[str, int]:
        return {"caller_language_utterances": self.state.utterances, "caller_language_switches": self.state.switched}

    def handle(self, msg: object, now: float) -> list[object]:
        if not isinstance(msg, RtTranscriptDone):
            return []
        reading = self.read(msg.transcript)
        verdict = self._verdict(reading)
        changed = self._changed(reading, now) if verdict is Verdict.SWITCH else None
        self._apply(verdict, reading, changed)
        if changed is None:
            return []
        return [changed, LogLine("CALLER_LANGUAGE", "info", {"call_sid": changed.call_id, "from": changed.from_language,
                                                            "to": changed.to_language, "evidence": changed.evidence})]

    # ------------------------------------------------------------------ reading
    def read(self, transcript: str) -> Reading:
        counts: Counter[Script] = Counter()
        latin: list[str] = []
        for word_script, word in words_by_script(transcript):
            key = " ".join(normalise(word))
            if key and key not in NEUTRAL:
                counts[word_script] += 1
                latin += [key] if word_script is Script.LATIN else []
        script = self._dominant(counts)
        if script is None:
            return Reading()
        language = self._language_of(script, latin)
        return Reading(language, counts[script], _excerpt(transcript)) if language else Reading()

    def _dominant(self, counts: Counter[Script]) -> Script | None:
        """The script with the most words; a tie with the current language's script keeps it, any other tie is no evidence."""
        if not counts:
            return None
        most = max(counts.values())
        leaders = [script for script, count in counts.items() if count == most]
        current = SCRIPT_OF.get(self.state.language)
        if current in leaders:
            return current
        return leaders[0] if len(leaders) == 1 else None

    def _language_of(self, script: Script, latin: list[str]) -> str:
        candidates = [language for language in self.languages if SCRIPT_OF.get(language) is script]
        if len(candidates) <= 1:
            return candidates[0] if candidates else ""
        scores = {language: sum(word in FUNCTION_WORDS.get(language, frozenset()) for word in latin) for language in candidates}
        best = max(scores.values())
        preferred = (self.state.language, "en", *candidates)
        return next(language for language in preferred if scores.get(language) == best)

    # ------------------------------------------------------------------ deciding
    def _verdict(self, reading: Reading) -> Verdict:
        state = self.state
        if not reading.language:
            return Verdict.NONE
        if reading.language == state.language:
            return Verdict.STAY
        if reading.words >= SWITCH_WORDS:
            return Verdict.SWITCH
        pending_same = state.phase is LanguagePhase.PENDING and state.pending_language == reading.language
        return Verdict.SWITCH if pending_same else Verdict.PEND

    def _changed(self, reading: Reading, now: float) -> CallerLanguageChanged:
        state = self.state
        if reading.words >= SWITCH_WORDS:
            script = SCRIPT_OF[reading.language].value
            evidence = f"{reading.words} {script} words: «{reading.excerpt}»"
        else:
            evidence = f"2 short utterances: «{state.pending_excerpt}» «{reading.excerpt}»"
        return CallerLanguageChanged(state.call_id, state.language, reading.language, evidence, now)

    def _apply(self, verdict: Verdict, reading: Reading, changed: CallerLanguageChanged | None) -> None:
        state = self.state
        if verdict is Verdict.NONE:
            return
        state.utterances += 1
        pending = verdict is Verdict.PEND
        state.phase = LanguagePhase.PENDING if pending else LanguagePhase.SETTLED
        state.pending_language, state.pending_excerpt = (reading.language, reading.excerpt) if pending else ("", "")
        if changed is not None:
            state.language = changed.to_language
            state.switched += 1
            state.switches = [*state.switches, changed][-MAX_SWITCHES_KEPT:]


def _excerpt(transcript: str) -> str:
    text = " ".join(transcript.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"
