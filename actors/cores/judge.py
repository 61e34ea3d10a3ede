"""BargeInJudge core — whether the caller interrupts the AI, and whether a caller turn gets an answer.

Theory of operation (two phases):
  A. While the AI is audible (the TxPacer's playout clock, after the greeting), TwilioRx sends the
     level of every caller frame with the tracked noise floor. Energy above floor + delta accumulates
     (leaky, 20 ms a frame); at `candidate_ms` the turn becomes a CANDIDATE and the AI is ducked
     (or paused, per business) — nothing is cut yet.
  B. The transcript decides: a `turn` confirms (CutPlayout → Twilio clear, response.cancel, truncate
     at what was heard; then an answer), a `filler` rejects (restore the AI's volume, delete the
     filler item, no answer), a `backchannel` while the AI is mid-utterance rejects too but keeps the
     item (LetStand: the model may use the "כן"; no answer) — after the AI's turn it is an answer, and
     so it is while the last sentence of a turn that asks a question plays (TurnEnding from the pacer,
     the AI's transcript ending with "?").
     Fast confirmation from the audio: a candidate whose run is clearly articulated speech (TwilioRx's
     articulation reading: syllables and spectral spread over the thresholds) is cut at once, without
     waiting for the transcript; a steady one (filler, hum, breath) stays a candidate and waits for it.
     A candidate still speaking `confirm_after_ms` after onset is confirmed without the transcript —
     with the articulation measure on, only if its run showed the syllables (never a steady hum).
     A candidate that goes quiet with no server speech, or whose transcript never comes, is restored
     on a timeout. Our own echo is no evidence (TwilioRx marks frames it explains): a transcript of a
     span with echo and no energy of the caller's own, while the AI speaks, is the server hearing us —
     dropped (label "echo"), never a cut or an answer.
`turn`s get answers whatever the AI is doing (backchannels once the AI is done, fillers never); an
empty transcript of long speech or a failed transcription fails open (answered, counted). The greeting is protected: no barge-in until it played.
The caller's language (a business with several): every transcript that is not our echo is evidence for
the CallerLanguage core (caller_language.py); the transcript is labelled with the lexicon of the listed
language it is in (an Arabic "يعني" is a filler before the call has switched), else of the language
spoken so far, and on a switch (CallerLanguageChanged, sent ahead of that transcript's verdict,
so the bridge re-configures the session before it asks for the answer) the next one is labelled with
the new language's lexicon, merged with the business's own words for it.
"""
from __future__ import annotations

import enum
from typing import Any, Callable, Mapping

import msgspec

from actors.cores.articulation import RUN_END_QUIET_MS
from actors.cores.caller_language import CallerLanguage, CallerLanguageState, initial_state
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
    PreemptiveAnswer,
    ResponseFinished,
    RestorePlayout,
    TurnEnding,
    Utterance,
)
from actors.settings import BargeInSettings
from prompts.classifier import Lexicon, TurnLabel, classify

VERY_SHORT_CHARS = 5
PREFIX_S = 0.5  # caller frames this long before speech_started belong to that speech
SPEECH_GAP_S = RUN_END_QUIET_MS / 1000  # as the articulation meter: a quiet this long ends a run of speech
ECHO_TAIL_S = 1.5  # the echo outlives our playout (≤ 0.6 s) and the server's VAD waits its silence (0.6 s)


class JudgePhase(enum.Enum):
    GREETING = "greeting"  # barge-in off until the greeting has played
    AI_SILENT = "ai_silent"
    AI_SPEAKING = "ai_speaking"
    CANDIDATE = "candidate"  # caller energy over the AI: ducked, waiting for the transcript


TRANSITIONS: dict[tuple[JudgePhase, str], JudgePhase] = {
    (JudgePhase.GREETING, "greeting_played"): JudgePhase.AI_SILENT,
    (JudgePhase.AI_SILENT, "audible"): JudgePhase.AI_SPEAKING,
    (JudgePhase.AI_SPEAKING, "silent"): JudgePhase.AI_SILENT,
    (JudgePhase.AI_SPEAKING, "energy"): JudgePhase.CANDIDATE,
    (JudgePhase.AI_SPEAKING, "confirm"): JudgePhase.AI_SILENT,
    (JudgePhase.CANDIDATE, "confirm"): JudgePhase.AI_SILENT,
    (JudgePhase.CANDIDATE, "reject"): JudgePhase.AI_SPEAKING,
    (JudgePhase.CANDIDATE, "silent"): JudgePhase.AI_SILENT,
}


class JudgeCounters(msgspec.Struct):
    stt_utterances_total: int = 0
    stt_empty_count: int = 0
    stt_very_short_count: int = 0
    stt_filler_only_count: int = 0
    backchannels: int = 0  # listener signals over the AI: no cut, no answer
    stt_failed_count: int = 0
    echo_transcripts: int = 0  # the server transcribed our own echo: dropped, never a cut or an answer
    stt_fail_open_count: int = 0
    speech_started_count: int = 0
    barge_in_candidates: int = 0
    barge_in_events: int = 0
    barge_in_rejected: int = 0
    barge_in_by_duration: int = 0
    barge_in_by_articulation: int = 0
    barge_in_timeouts: int = 0
    answers_requested: int = 0


class SpeechSpan(msgspec.Struct):
    start_ms: int
    end_ms: int = -1
    stopped_at: float = 0.0
    voiced: int = 0  # caller frames over the AI with energy of the caller's own (CallerLevel, not echo)
    echoed: int = 0  # …and frames whose energy our echo explained


class JudgeState(msgspec.Struct):
    call_id: str
    phase: JudgePhase = JudgePhase.GREETING
    voiced_ms: int = 0
    onset_at: float = 0.0
    last_voice_at: float = 0.0
    last_echo_at: float = 0.0
    clear_ms: list[int] = msgspec.field(default_factory=list)  # barge-in onset → cut, per cut
    last_voice_at_any: float = 0.0  # the last caller frame of the caller's own, in any phase
    speech_onset_at: float = 0.0  # the first of them after a silence (the articulation meter's run start)
    silent_since: float = 0.0  # when the AI stopped being audible (0 while it is)
    asked: str = ""  # the latest response whose transcript ends with a question
    ending: str = ""  # the response whose last sentence is playing (TurnEnding)
    candidate_at: float = 0.0
    candidate_items: list[str] = msgspec.field(default_factory=list)
    cut_items: list[str] = msgspec.field(default_factory=list)
    speech: dict[str, SpeechSpan] = msgspec.field(default_factory=dict)
    counters: JudgeCounters = msgspec.field(default_factory=JudgeCounters)
    caller_language: CallerLanguageState | None = None  # with two or more caller languages


class BargeInJudgeCore:
    def __init__(self, state: JudgeState, settings: BargeInSettings, lexicon: Lexicon,
                 lexicons: Mapping[str, Lexicon] | None = None, start_language: str = "") -> None:
        """`lexicons`: one per caller language, the business's first language first (two or more: detected);
        the call starts in `start_language` when it is one of them."""
        self.s = state
        self.cfg = settings
        self.first_lexicon = lexicon
        self.lexicons = dict(lexicons or {})
        self.language: CallerLanguage | None = None
        if len(self.lexicons) > 1:
            if state.caller_language is None:
                state.caller_language = initial_state(state.call_id, tuple(self.lexicons), start_language)
            self.language = CallerLanguage(state.caller_language, tuple(self.lexicons))

    @property
    def lexicon(self) -> Lexicon:
        """The lexicon of the language the caller speaks."""
        if self.language is None:
            return self.first_lexicon
        return self.lexicons.get(self.language.state.language, self.first_lexicon)

    def snapshot(self) -> JudgeState:
        return self.s

    def counters(self) -> dict[str, int]:
        language = self.language.counters() if self.language is not None else {}
        return {**msgspec.structs.asdict(self.s.counters), **language}

    def _go(self, event: str) -> bool:
        nxt = TRANSITIONS.get((self.s.phase, event))
        if nxt is None:
            return False
        self.s.phase = nxt
        return True

    def _log(self, event: str, **fields: object) -> LogLine:
        return LogLine(event, "info", {"call_sid": self.s.call_id, **fields})

    def handle(self, msg: object, now: float) -> list[object]:
        handler = JUDGE_HANDLERS.get(type(msg))
        return [] if handler is None else handler(self, msg, now)

    # ------------------------------------------------------------------ the AI's side
    def _response_finished(self, msg: ResponseFinished, now: float) -> list[object]:
        s = self.s
        if s.ending == msg.response_id:
            s.ending = ""  # that turn is over: its question no longer makes a "כן" an answer mid-sentence
        if s.phase is JudgePhase.GREETING and self._go("greeting_played"):
            return [self._log("[GREETING] Barge-in now ENABLED for rest of call")]
        return []

    def _playout_changed(self, msg: PlayoutChanged, now: float) -> list[object]:
        s = self.s
        s.silent_since = 0.0 if msg.audible else now
        if s.phase is JudgePhase.GREETING:
            return []
        was_candidate = s.phase is JudgePhase.CANDIDATE
        self._go("audible" if msg.audible else "silent")
        s.voiced_ms = 0
        return [RestorePlayout(now)] if was_candidate and not msg.audible else []

    def _assistant_said(self, msg: RtAssistantTranscriptDone, now: float) -> list[object]:
        self.s.asked = msg.response_id if msg.transcript.rstrip().endswith(("?", "؟")) else ""
        return []

    def _turn_ending(self, msg: TurnEnding, now: float) -> list[object]:
        self.s.ending = msg.response_id
        return []

    # ------------------------------------------------------------------ the caller's speech, as the server hears it
    def _speech_started(self, msg: RtSpeechStarted, now: float) -> list[object]:
        s = self.s
        s.counters.speech_started_count += 1
        started = SpeechSpan(msg.audio_start_ms)
        # the server's speech began up to its prefix padding before it said so
        started.voiced = int(now - s.last_voice_at_any <= PREFIX_S) if s.last_voice_at_any else 0
        started.echoed = int(now - s.last_echo_at <= PREFIX_S) if s.last_echo_at else 0
        s.speech[msg.item_id] = started
        if len(s.speech) > 32:
            del s.speech[next(iter(s.speech))]
        if s.phase is JudgePhase.CANDIDATE:
            s.candidate_items.append(msg.item_id)
        if s.phase is JudgePhase.GREETING:
            return [self._log("[GREETING PROTECT] caller speech during the greeting: no barge-in", item_id=msg.item_id)]
        return []

    def _speech_stopped(self, msg: RtSpeechStopped, now: float) -> list[object]:
        span = self.s.speech.get(msg.item_id)
        if span is not None:
            span.end_ms, span.stopped_at = msg.audio_end_ms, now
        if self.cfg.preemptive_answer and self.s.phase is JudgePhase.AI_SILENT:
            return [PreemptiveAnswer(msg.item_id, now)]
        return []

    def _transcript_done(self, msg: RtTranscriptDone, now: float) -> list[object]:
        echo = self._is_echo(msg.item_id)  # our own voice is no evidence of the caller's language
        verdict = self._transcript(msg.item_id, msg.transcript, now, failed=False)
        if self.language is None or echo:
            return verdict
        return self.language.handle(msg, now) + verdict

    def _transcript_failed(self, msg: RtTranscriptFailed, now: float) -> list[object]:
        self.s.counters.stt_failed_count += 1
        return self._transcript(msg.item_id, "", now, failed=True)

    # ------------------------------------------------------------------ phase A
    def _level(self, msg: CallerLevel, now: float) -> list[object]:
        own = self._remember(msg, now)
        if not own or not self.cfg.enabled or self.s.phase not in (JudgePhase.AI_SPEAKING, JudgePhase.CANDIDATE):
            return []  # our own voice coming back is evidence of nothing
        self._accumulate(now)
        if self.s.phase is JudgePhase.AI_SPEAKING and self.s.voiced_ms >= self.cfg.candidate_ms and self._go("energy"):
            return self._candidate(msg, now)
        return self._confirm(msg, now)

    def _remember(self, msg: CallerLevel, now: float) -> bool:
        """Whatever the phase (the greeting, the echo's tail after the AI stopped): remembered for the
        transcript. True when the frame carries energy of the caller's own."""
        s = self.s
        open_span = next((sp for sp in reversed(s.speech.values()) if sp.end_ms < 0), None)
        own = not msg.echo and msg.level_db > msg.floor_db + self.cfg.energy_delta_db
        if msg.echo:
            s.last_echo_at = now
        elif own:
            if now - s.last_voice_at_any > SPEECH_GAP_S:  # the caller starts speaking (pauses within speech do not count)
                s.speech_onset_at = now
            s.last_voice_at_any = now
        if open_span is not None:
            open_span.echoed += msg.echo
            open_span.voiced += own
        return own

    def _accumulate(self, now: float) -> None:
        """Frames in between were quiet (TwilioRx sends only speech-like ones): leak 20 ms for each."""
        s = self.s
        quiet_frames = int(round((now - s.last_voice_at) / 0.02)) - 1 if s.last_voice_at else 0
        s.voiced_ms = max(0, s.voiced_ms - 20 * max(0, quiet_frames))
        if s.voiced_ms == 0:
            s.onset_at = now
        s.voiced_ms += 20
        s.last_voice_at = now

    def _candidate(self, msg: CallerLevel, now: float) -> list[object]:
        s, cfg = self.s, self.cfg
        s.candidate_at, s.candidate_items = now, []
        s.counters.barge_in_candidates += 1
        action: list[object] = []
        if cfg.candidate_action == "duck":
            action.append(DuckPlayout(cfg.duck_gain_db, now))
        elif cfg.candidate_action == "pause":
            action.append(PausePlayout(now))
        return action + [self._log("[BARGE-IN] candidate", reason="caller energy over the AI", voiced_ms=s.voiced_ms,
                                   action=cfg.candidate_action, level_db=round(msg.level_db, 1), floor_db=round(msg.floor_db, 1))]

    def _confirm(self, msg: CallerLevel, now: float) -> list[object]:
        """A candidate confirmed by the audio alone: clearly articulated, or sustained speech."""
        s, cfg = self.s, self.cfg
        articulated = cfg.articulation_confirm and msg.syllables >= cfg.articulation_syllables \
            and msg.spectral_hz >= cfg.articulation_spectral_hz
        onset_ms = round((now - s.onset_at) * 1000)
        if articulated and s.phase is JudgePhase.AI_SPEAKING and s.voiced_ms >= cfg.candidate_ms // 2:
            # clearly articulated speech cuts before the energy rule alone would make it a candidate
            # (pauses between words leak the accumulator): candidate and confirmation in one step
            s.counters.barge_in_candidates += 1
            s.candidate_items = []
        elif s.phase is not JudgePhase.CANDIDATE or s.voiced_ms < cfg.candidate_ms:
            return []
        if articulated:
            s.counters.barge_in_by_articulation += 1
            s.cut_items.extend(s.candidate_items)
            return self._cut(now, "articulated speech", onset_ms=onset_ms, syllables=msg.syllables,
                             spectral_hz=round(msg.spectral_hz))
        # with the articulation measure on, the duration rule needs the syllables (a flat spectrum may be
        # a bad line): a steady hum or a breath, however long, waits for the transcript
        steady = cfg.articulation_confirm and msg.syllables < cfg.articulation_syllables
        if onset_ms >= cfg.confirm_after_ms and not steady:
            s.counters.barge_in_by_duration += 1
            s.cut_items.extend(s.candidate_items)
            return self._cut(now, "sustained speech", onset_ms=onset_ms)
        return []

    def _timeouts(self, msg: Tick, now: float) -> list[object]:
        s, cfg = self.s, self.cfg
        if s.phase is not JudgePhase.CANDIDATE:
            return []
        spans = [s.speech[i] for i in s.candidate_items if i in s.speech]
        if not spans:
            expired = (now - max(s.last_voice_at, s.candidate_at)) * 1000 >= cfg.candidate_timeout_ms
        else:
            stopped = [sp.stopped_at for sp in spans if sp.end_ms >= 0]
            expired = bool(stopped) and (now - max(stopped)) * 1000 >= cfg.transcript_timeout_ms
        if not expired or not self._go("reject"):
            return []
        s.counters.barge_in_timeouts += 1
        s.voiced_ms = 0
        return [RestorePlayout(now), self._log("[BARGE-IN] restored", reason="timeout, no confirming speech")]

    # ------------------------------------------------------------------ phase B
    def series(self) -> dict[str, list[int]]:
        return {"barge_in_clear_ms": list(self.s.clear_ms)}

    def _cut(self, now: float, reason: str, **fields: object) -> list[object]:
        onset = self.s.speech_onset_at or self.s.onset_at
        if onset and self.s.phase in (JudgePhase.CANDIDATE, JudgePhase.AI_SPEAKING):
            self.s.clear_ms.append(int(round((now - onset) * 1000)))  # the caller's first sound → the pacer's clear
            del self.s.clear_ms[:-64]
        self._go("confirm")
        self.s.counters.barge_in_events += 1
        self.s.voiced_ms = 0
        return [CutPlayout(reason, now), self._log("[BARGE-IN] CUT", reason=reason, **fields)]

    def _transcript(self, item_id: str, transcript: str, now: float, failed: bool) -> list[object]:
        text = transcript.strip()
        self.s.counters.stt_utterances_total += 1
        if self._is_echo(item_id):
            return self._echo(item_id, text, now)
        label, reason = self._label(item_id, text, failed)
        said = self._log("CALLER_SAID", item_id=item_id, text=text, label=label.value, reason=reason, phase=self.s.phase.value)
        if label is not TurnLabel.TURN:
            return [said, *self._no_turn(item_id, text, label, now)]
        return [said, *self._turn(item_id, text, label, now)]

    def _echo(self, item_id: str, text: str, now: float) -> list[object]:
        """The server heard our echo (no caller energy of the caller's own the whole time): drop it."""
        s = self.s
        s.counters.echo_transcripts += 1
        echo_span = s.speech[item_id]
        return [self._log("CALLER_SAID", item_id=item_id, text=text, label="echo",
                          reason="only our own echo was on the line", phase=s.phase.value),
                Utterance(s.call_id, "caller", text, "echo", echo_span.start_ms, echo_span.end_ms, False),
                DeleteItem(item_id, now)]

    def _lexicon_of(self, text: str) -> Lexicon:
        """The lexicon of the listed language the transcript is in ("يعني" is an Arabic filler before the call
        has switched to Arabic), else of the language the caller speaks."""
        if self.language is None:
            return self.first_lexicon
        spoken = self.language.read(text).language
        return self.lexicons.get(spoken, self.lexicon) if spoken else self.lexicon

    def _label(self, item_id: str, text: str, failed: bool) -> tuple[TurnLabel, str]:
        """The transcript's label (the lexicon's, failing open to a turn; a backchannel after the AI's turn or
        to its question is an answer), and why."""
        s, c = self.s, self.s.counters
        label = classify(text, self._lexicon_of(text))
        reason = "lexicon"
        if not text:
            c.stt_empty_count += 1
            span = s.speech.get(item_id)
            long_speech = span is not None and span.end_ms - span.start_ms >= self.cfg.long_speech_ms
            if failed or long_speech:
                label, reason = TurnLabel.TURN, "fail-open: transcription failed" if failed else "fail-open: empty transcript of long speech"
                c.stt_fail_open_count += 1
        elif len(text) < VERY_SHORT_CHARS:
            c.stt_very_short_count += 1
        if label is TurnLabel.FILLER:
            c.stt_filler_only_count += 1
        mid_utterance = s.phase in (JudgePhase.CANDIDATE, JudgePhase.AI_SPEAKING) and item_id not in s.cut_items
        if label is TurnLabel.BACKCHANNEL and not mid_utterance:
            label, reason = TurnLabel.TURN, "backchannel after the AI's turn: an answer"
        elif label is TurnLabel.BACKCHANNEL and s.asked and s.asked == s.ending:
            label, reason = TurnLabel.TURN, "backchannel to the AI's question (its last sentence): an answer"
        return label, reason

    def _no_turn(self, item_id: str, text: str, label: TurnLabel, now: float) -> list[object]:
        """A filler is deleted (the model never sees it); a listener's "כן" over the AI stays for the model
        (LetStand). Neither cuts nor gets an answer; a candidate is rejected, the AI restored."""
        s, c = self.s, self.s.counters
        out: list[object] = [self._utterance(item_id, text, label, interrupted=False)]
        if label is TurnLabel.BACKCHANNEL:
            c.backchannels += 1
            out.append(LetStand(item_id, now))
        else:
            out.append(DeleteItem(item_id, now))
        if s.phase is JudgePhase.CANDIDATE:
            self._go("reject")
            c.barge_in_rejected += 1
            s.voiced_ms = 0
            out += [RestorePlayout(now), self._log("[BARGE-IN] rejected", reason=label.value, text=text)]
        return out

    def _turn(self, item_id: str, text: str, label: TurnLabel, now: float) -> list[object]:
        """A turn gets an answer — after cutting the AI, if it is still speaking."""
        s = self.s
        out: list[object] = []
        cutting = False
        if item_id in s.cut_items:
            s.cut_items.remove(item_id)
            out.append(self._utterance(item_id, text, label, interrupted=True))
        elif s.phase in (JudgePhase.CANDIDATE, JudgePhase.AI_SPEAKING) and self.cfg.enabled:
            out += self._cut(now, "transcript confirms a turn", text=text)
            cutting = True
            out.append(self._utterance(item_id, text, label, interrupted=True))
        else:
            out.append(self._utterance(item_id, text, label, interrupted=False))
        s.counters.answers_requested += 1
        out.append(AnswerRequest(item_id, text, now, after_cut=cutting))
        return out

    def _is_echo(self, item_id: str) -> bool:
        """Speech the server heard that was only our echo: echo frames, none of the caller's own, and it
        ended within the echo's tail after the AI stopped (TwilioRx keeps listening that long)."""
        s = self.s
        span = s.speech.get(item_id)
        if span is None or span.voiced or not span.echoed:
            return False
        if s.phase in (JudgePhase.AI_SPEAKING, JudgePhase.CANDIDATE, JudgePhase.GREETING):
            return True
        return bool(s.silent_since) and 0 < span.stopped_at <= s.silent_since + ECHO_TAIL_S

    def _utterance(self, item_id: str, text: str, label: TurnLabel, interrupted: bool) -> Utterance:
        span = self.s.speech.get(item_id)
        start, end = (span.start_ms, span.end_ms) if span is not None else (-1, -1)
        return Utterance(self.s.call_id, "caller", text, label.value, start, end, interrupted)


JUDGE_HANDLERS: dict[type, Callable[[BargeInJudgeCore, Any, float], list[object]]] = {
    CallerLevel: BargeInJudgeCore._level,
    Tick: BargeInJudgeCore._timeouts,
    ResponseFinished: BargeInJudgeCore._response_finished,
    PlayoutChanged: BargeInJudgeCore._playout_changed,
    RtSpeechStarted: BargeInJudgeCore._speech_started,
    RtSpeechStopped: BargeInJudgeCore._speech_stopped,
    RtAssistantTranscriptDone: BargeInJudgeCore._assistant_said,
    TurnEnding: BargeInJudgeCore._turn_ending,
    RtTranscriptDone: BargeInJudgeCore._transcript_done,
    RtTranscriptFailed: BargeInJudgeCore._transcript_failed,
}
