"""ConversationClock — silence after the AI's turn, the call's time limit, and keypad entries.

Theory of operation: the silence timer is ARMED when the caller has actually heard the end of the AI's
turn (the TxPacer's playout clock says the AI went inaudible) and nothing else is owed to them. Caller
speech, a new response or audible AI disarm it (IDLE). A filler ("אממ") re-arms it from its transcript
without counting as an answer; a real turn or a keypad entry resets the count of reprompts. When an
armed timer reaches `reprompt_after_s` the clock says REPROMPT (up to `max_reprompts` times), then
GIVE_UP (goodbye + hang-up). Separately, the call's age reaching `max_call_s` says TIME_UP once.
Keypad digits are collected until `dtmf_gap_s` passes without a new one (or "#"), then released as one
entry. Time is an argument; the bridge decides whether the moment is right (no response in flight,
no tool running, not leaving) — if it is not, the timer is simply re-armed.
"""
from __future__ import annotations

import enum

import msgspec

from actors.agent_messages import ConversationSettings


class SilencePhase(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"


class ClockVerdict(enum.Enum):
    NOTHING = "nothing"
    REPROMPT = "reprompt"
    GIVE_UP = "give_up"
    TIME_UP = "time_up"


class ConversationState(msgspec.Struct):
    phase: SilencePhase = SilencePhase.IDLE
    armed_at: float = 0.0
    reprompts: int = 0  # unanswered reprompts in a row
    started_at: float = -1.0
    time_up: bool = False
    digits: str = ""
    last_digit_at: float = 0.0
    reprompts_total: int = 0
    dtmf_digits: int = 0
    dtmf_entries: int = 0


class ConversationClock:
    def __init__(self, state: ConversationState, settings: ConversationSettings) -> None:
        self.state = state
        self.cfg = settings

    def started(self, now: float) -> None:
        if self.state.started_at < 0:
            self.state.started_at = now

    def arm(self, now: float) -> None:
        self.state.phase, self.state.armed_at = SilencePhase.ARMED, now

    def disarm(self) -> None:
        self.state.phase = SilencePhase.IDLE

    def answered(self) -> None:
        """A real turn (or a keypad entry): the caller is here."""
        self.state.reprompts = 0
        self.disarm()

    def verdict(self, now: float) -> ClockVerdict:
        """What the time says now (pure: `fired` commits it)."""
        state, cfg = self.state, self.cfg
        if not state.time_up and state.started_at >= 0 and now - state.started_at >= cfg.max_call_s:
            return ClockVerdict.TIME_UP
        if state.phase is SilencePhase.ARMED and now - state.armed_at >= cfg.reprompt_after_s:
            return ClockVerdict.REPROMPT if state.reprompts < cfg.max_reprompts else ClockVerdict.GIVE_UP
        return ClockVerdict.NOTHING

    def fired(self, verdict: ClockVerdict) -> None:
        state = self.state
        if verdict is ClockVerdict.TIME_UP:
            state.time_up = True
        elif verdict is ClockVerdict.REPROMPT:
            state.reprompts += 1
            state.reprompts_total += 1
        state.phase = SilencePhase.IDLE

    # ------------------------------------------------------------------ keypad
    def digit(self, digit: str, now: float) -> str:
        """Collect a digit; returns the entry when "#" ends it at once, else ""."""
        state = self.state
        state.dtmf_digits += 1
        if digit == "#" and state.digits:
            entry, state.digits = state.digits + "#", ""
            state.dtmf_entries += 1
            return entry
        state.digits += digit[:1]
        state.last_digit_at = now
        return ""

    def keypad_entry(self, now: float) -> str:
        """An entry whose last digit is `dtmf_gap_s` old, else ""."""
        state = self.state
        if not state.digits or now - state.last_digit_at < self.cfg.dtmf_gap_s:
            return ""
        entry, state.digits = state.digits, ""
        state.dtmf_entries += 1
        return entry

    def counters(self) -> dict[str, int]:
        return {"reprompts": self.state.reprompts_total, "dtmf_entries": self.state.dtmf_entries}
