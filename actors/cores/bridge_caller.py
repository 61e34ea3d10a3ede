"""The RealtimeBridge's caller part: whether the caller is speaking, hearing the AI, or waiting.

Theory of operation: the session's VAD says when a caller turn starts and stops; its transcript (or
the judge's verdict on it, which is made from that transcript) ends the turn. Until then the turn is
untranscribed, and a lost session takes it along: the link part asks TwilioRx to replay its audio to
the new session from where it started. The TxPacer's playout clock says whether the caller hears the
AI; the time from the caller's last word (while the AI was silent) to the answer's first audible
frame is the answer latency, kept as a series.

Two facts, independent of each other: whether the caller speaks now (the VAD), and which turn waits
for its transcript; a lost session ends both, a rollover (at a quiet moment) the second.
"""
from __future__ import annotations

import msgspec

from actors.cores.bridge_notes import SessionLost, SessionRolledOver, Tell, TurnBegan, TurnText
from actors.ingress_messages import RtSpeechStarted, RtSpeechStopped, RtTranscriptDone, RtTranscriptFailed
from actors.messages import AnswerRequest, DeleteItem, LetStand, PlayoutChanged

SERIES_KEPT = 64


class CallerState(msgspec.Struct):
    speaking: bool = False
    turn_item: str = ""  # the caller turn the session heard and has not transcribed yet
    turn_start_ms: int = -1  # its start on the session's audio clock
    ai_audible: bool = False
    answer_wait_from: float = 0.0  # the caller stopped speaking while the AI was silent; 0: nothing awaited
    answer_latency_ms: list[int] = msgspec.field(default_factory=list)  # caller stopped → the answer's audio plays


class CallerTurns:
    def __init__(self, state: CallerState, tell: Tell) -> None:
        self.state = state
        self.tell = tell

    # ------------------------------------------------------------------ facts
    @property
    def at_rest(self) -> bool:
        """Its share of the quiet rule: the caller is silent, every turn transcribed, the AI inaudible."""
        return not (self.state.speaking or self.state.turn_item or self.state.ai_audible)

    @property
    def untranscribed_turn_from_ms(self) -> int:
        return self.state.turn_start_ms if self.state.turn_item else -1

    # ------------------------------------------------------------------ the caller's turns
    def speech_started(self, msg: RtSpeechStarted, now: float) -> list[object]:
        self.state.speaking = True
        self.state.turn_item, self.state.turn_start_ms = msg.item_id, msg.audio_start_ms
        return []

    def speech_stopped(self, msg: RtSpeechStopped, now: float) -> list[object]:
        self.state.speaking = False
        self.state.answer_wait_from = now if not self.state.ai_audible else 0.0
        return self.tell(TurnBegan(msg.item_id, "user"), now)

    def transcript_done(self, msg: RtTranscriptDone, now: float) -> list[object]:
        self._transcribed(msg.item_id)
        return self.tell(TurnText(msg.item_id, "user", msg.transcript), now)

    def transcript_failed(self, msg: RtTranscriptFailed, now: float) -> list[object]:
        self._transcribed(msg.item_id)
        return []

    def answered(self, msg: AnswerRequest, now: float) -> list[object]:
        self._transcribed(msg.item_id)
        return []

    def not_answered(self, msg: DeleteItem | LetStand, now: float) -> list[object]:
        self._transcribed(msg.item_id)
        self.state.answer_wait_from = 0.0  # nothing to measure: this turn gets no answer
        return []

    def _transcribed(self, item_id: str) -> None:
        """The turn's transcript came (the judge's verdict is made from it): it is no longer in flight."""
        if item_id == self.state.turn_item:
            self.state.turn_item, self.state.turn_start_ms = "", -1

    # ------------------------------------------------------------------ what the caller hears
    def playout_changed(self, msg: PlayoutChanged, now: float) -> list[object]:
        caller = self.state
        if msg.audible and caller.answer_wait_from:  # the caller stopped speaking, now the answer plays
            caller.answer_latency_ms.append(int(round((now - caller.answer_wait_from) * 1000)))
            del caller.answer_latency_ms[:-SERIES_KEPT]
            caller.answer_wait_from = 0.0
        caller.ai_audible = msg.audible
        return []

    # ------------------------------------------------------------------ what the link tells
    def session_lost(self, note: SessionLost, now: float) -> list[object]:
        self.state.turn_item, self.state.turn_start_ms = "", -1  # replayed to the next session (LinkDown)
        self.state.speaking = False
        return []

    def session_rolled_over(self, note: SessionRolledOver, now: float) -> list[object]:
        self.state.turn_item, self.state.turn_start_ms = "", -1  # rolled over at a quiet moment: none in flight
        return []

    def series(self) -> dict[str, list[int]]:
        return {"answer_latency_ms": list(self.state.answer_latency_ms)}
