"""BargeInJudge core — decides whether a caller turn gets an answer (and, later, whether it cuts the AI).

Theory of operation (this stage): the judge follows the AI's audibility from the TxPacer's playout
clock and the greeting window, and classifies every completed caller transcript. A non-empty
transcript asks the RealtimeBridge for an answer; an empty one is counted and left alone. The
two-phase barge-in (energy candidate, transcript confirmation) plugs in here: the states below are
the ones it will drive.
"""
from __future__ import annotations

import enum

import msgspec

from actors.messages import (
    AnswerRequest, LogLine, PlayoutChanged, ResponseFinished, RtSpeechStarted, RtSpeechStopped,
    RtTranscriptDone, RtTranscriptFailed,
)

VERY_SHORT_CHARS = 5


class JudgePhase(enum.Enum):
    GREETING = "greeting"  # barge-in off until the greeting has played
    AI_SILENT = "ai_silent"
    AI_SPEAKING = "ai_speaking"


# (phase, event) -> next phase
TRANSITIONS: dict[tuple[JudgePhase, str], JudgePhase] = {
    (JudgePhase.GREETING, "greeting_played"): JudgePhase.AI_SILENT,
    (JudgePhase.AI_SILENT, "audible"): JudgePhase.AI_SPEAKING,
    (JudgePhase.AI_SPEAKING, "silent"): JudgePhase.AI_SILENT,
}


class JudgeCounters(msgspec.Struct):
    stt_utterances_total: int = 0
    stt_empty_count: int = 0
    stt_very_short_count: int = 0
    stt_filler_only_count: int = 0
    stt_failed_count: int = 0
    speech_started_count: int = 0
    barge_in_candidates: int = 0
    barge_in_events: int = 0
    barge_in_rejected: int = 0


class JudgeState(msgspec.Struct):
    call_id: str
    phase: JudgePhase = JudgePhase.GREETING
    caller_speaking: bool = False
    counters: JudgeCounters = msgspec.field(default_factory=JudgeCounters)


class BargeInJudgeCore:
    def __init__(self, state: JudgeState) -> None:
        self.s = state

    def snapshot(self) -> JudgeState:
        return self.s

    def _go(self, event: str) -> bool:
        nxt = TRANSITIONS.get((self.s.phase, event))
        if nxt is None:
            return False
        self.s.phase = nxt
        return True

    def handle(self, msg: object, now: float) -> list[object]:
        s, c = self.s, self.s.counters
        if isinstance(msg, ResponseFinished):
            if s.phase is JudgePhase.GREETING and self._go("greeting_played"):
                return [LogLine("[GREETING] Barge-in now ENABLED for rest of call", "info", {"call_sid": s.call_id})]
            return []
        if isinstance(msg, PlayoutChanged):
            if s.phase is JudgePhase.GREETING:
                return []
            self._go("audible" if msg.audible else "silent")
            return []
        if isinstance(msg, RtSpeechStarted):
            s.caller_speaking = True
            c.speech_started_count += 1
            if s.phase is JudgePhase.GREETING:
                return [LogLine("[GREETING PROTECT] caller speech during greeting, no barge-in", "info",
                                {"call_sid": s.call_id, "item_id": msg.item_id})]
            return []
        if isinstance(msg, RtSpeechStopped):
            s.caller_speaking = False
            return []
        if isinstance(msg, RtTranscriptDone):
            return self._transcript(msg.item_id, msg.transcript, now)
        if isinstance(msg, RtTranscriptFailed):
            c.stt_utterances_total += 1
            c.stt_failed_count += 1
            return [LogLine("STT_FAILED fail-open: answering", "warning", {"call_sid": s.call_id, "reason": msg.reason}),
                    AnswerRequest(msg.item_id, "", now)]
        return []

    def _transcript(self, item_id: str, transcript: str, now: float) -> list[object]:
        s, c = self.s, self.s.counters
        text = transcript.strip()
        c.stt_utterances_total += 1
        if not text:
            c.stt_empty_count += 1
            return [LogLine("STT_EMPTY no answer", "info", {"call_sid": s.call_id, "item_id": item_id})]
        if len(text) < VERY_SHORT_CHARS:
            c.stt_very_short_count += 1
        return [LogLine("CALLER_SAID", "info", {"call_sid": s.call_id, "item_id": item_id, "text": text,
                                                "decision": "answer"}),
                AnswerRequest(item_id, text, now)]

    def counters(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.s.counters)
