"""Preemptive answers: start generating at speech_stopped, play only once the transcript says "turn".

Theory of operation: the Realtime transcript of a caller turn arrives only after the turn is
committed, and a response takes a while to produce its first audio. Waiting for one before starting
the other makes the caller wait for their sum. So when the caller stops speaking while the AI is
silent, the bridge asks for a response at once and the TxPacer holds its audio. The classified
transcript then releases it (a turn) or discards it (a filler: cancel, drop the held audio, delete the
assistant item) — the caller hears an answer after max(transcript, first audio), never an answer to
"אממ". A verdict that arrives before `response.created` is remembered and applied when it does.

Phases: IDLE → REQUESTED → HELD → IDLE, with REQUESTED → {RELEASE_ON_CREATE, DISCARD_ON_CREATE} and
DISCARDING (waiting for the assistant item id to delete it).
"""
from __future__ import annotations

import enum

import msgspec

from actors.messages import DiscardAudio, HoldAudio, ReleaseAudio
from actors.wire_messages import RtItemDelete, RtResponseCancel


class PreemptPhase(enum.Enum):
    IDLE = "idle"
    REQUESTED = "requested"
    RELEASE_ON_CREATE = "release_on_create"
    DISCARD_ON_CREATE = "discard_on_create"
    HELD = "held"
    DISCARDING = "discarding"


class PreemptState(msgspec.Struct):
    phase: PreemptPhase = PreemptPhase.IDLE
    user_item: str = ""
    response_id: str = ""
    assistant_item: str = ""
    requested: int = 0
    used: int = 0
    discarded: int = 0


class Preemption:
    def __init__(self, state: PreemptState) -> None:
        self.s = state

    @property
    def idle(self) -> bool:
        return self.s.phase is PreemptPhase.IDLE

    def covers(self, user_item: str) -> bool:
        return not self.idle and self.s.user_item == user_item

    def requested(self, user_item: str) -> None:
        self.s.phase, self.s.user_item, self.s.response_id, self.s.assistant_item = \
            PreemptPhase.REQUESTED, user_item, "", ""
        self.s.requested += 1

    def created(self, response_id: str, now: float) -> tuple[list[object], list[object]]:
        """(client events, internal messages) when a response is created while one was requested."""
        phase = self.s.phase
        if phase is PreemptPhase.REQUESTED:
            self.s.phase, self.s.response_id = PreemptPhase.HELD, response_id
            return [], [HoldAudio(response_id, now)]
        if phase is PreemptPhase.RELEASE_ON_CREATE:
            self.s.phase = PreemptPhase.IDLE
            return [], []
        if phase is PreemptPhase.DISCARD_ON_CREATE:
            self.s.phase, self.s.response_id = PreemptPhase.DISCARDING, response_id
            return [RtResponseCancel(response_id)], [DiscardAudio(response_id, now)]
        return [], []

    def item_added(self, response_id: str, item_id: str) -> list[object]:
        if response_id != self.s.response_id or self.idle:
            return []
        self.s.assistant_item = item_id
        if self.s.phase is PreemptPhase.DISCARDING:
            self.s.phase = PreemptPhase.IDLE
            return [RtItemDelete(item_id)]
        return []

    def release(self, now: float) -> list[object]:
        """The transcript was a turn: play the held answer (or let it play when it is created)."""
        self.s.used += 1
        if self.s.phase is PreemptPhase.REQUESTED:
            self.s.phase = PreemptPhase.RELEASE_ON_CREATE
            return []
        response_id = self.s.response_id
        self.s.phase = PreemptPhase.IDLE
        return [ReleaseAudio(response_id, now)]

    def discard(self, active_response: str, now: float) -> tuple[list[object], list[object]]:
        """The transcript was a filler (or the caller went on): drop the answer and its item."""
        self.s.discarded += 1
        if self.s.phase is PreemptPhase.REQUESTED:
            self.s.phase = PreemptPhase.DISCARD_ON_CREATE
            return [], []
        rid, item = self.s.response_id, self.s.assistant_item
        events: list[object] = [RtResponseCancel(rid)] if active_response == rid else []
        if item:
            events.append(RtItemDelete(item))
            self.s.phase = PreemptPhase.IDLE
        else:
            self.s.phase = PreemptPhase.DISCARDING
        return events, [DiscardAudio(rid, now)]
