"""Preemptive answers: start generating at speech_stopped, play only once the transcript says "turn".

Theory of operation: the Realtime transcript of a caller turn arrives only after the turn is
committed, and a response takes a while to produce its first audio. Waiting for one before starting
the other makes the caller wait for their sum. So when the caller stops speaking while the AI is
silent, the bridge asks for a response at once and the TxPacer holds its audio. The classified
transcript then releases it (a turn) or discards it (a filler: cancel, drop the held audio, delete the
assistant item) — the caller hears an answer after max(transcript, first audio), never an answer to
"אממ". A verdict that arrives before `response.created` is remembered and applied when it does.

Phases (PREEMPT_TRANSITIONS): IDLE → REQUESTED → HELD → IDLE; a verdict before the response exists
turns REQUESTED into RELEASE_ON_CREATE or DISCARD_ON_CREATE; a discard whose assistant item is not
known yet waits in DISCARDING for it (or for the response's end: then no item will come). A lost
session or a failed request abandons the answer from any phase (the verdict takes the normal path).
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


_BUSY = (PreemptPhase.REQUESTED, PreemptPhase.RELEASE_ON_CREATE, PreemptPhase.DISCARD_ON_CREATE, PreemptPhase.HELD,
         PreemptPhase.DISCARDING)
PREEMPT_TRANSITIONS: dict[tuple[PreemptPhase, str], PreemptPhase] = {
    (PreemptPhase.IDLE, "request"): PreemptPhase.REQUESTED,
    (PreemptPhase.REQUESTED, "created"): PreemptPhase.HELD,
    (PreemptPhase.RELEASE_ON_CREATE, "created"): PreemptPhase.IDLE,
    (PreemptPhase.DISCARD_ON_CREATE, "created"): PreemptPhase.DISCARDING,
    (PreemptPhase.REQUESTED, "release"): PreemptPhase.RELEASE_ON_CREATE,
    **{(phase, "release"): PreemptPhase.IDLE for phase in _BUSY if phase is not PreemptPhase.REQUESTED},
    (PreemptPhase.REQUESTED, "discard"): PreemptPhase.DISCARD_ON_CREATE,
    **{(phase, "discard"): PreemptPhase.DISCARDING for phase in _BUSY if phase is not PreemptPhase.REQUESTED},
    (PreemptPhase.DISCARDING, "item_deleted"): PreemptPhase.IDLE,
    (PreemptPhase.DISCARDING, "response_done"): PreemptPhase.IDLE,
    **{(phase, "abandon"): PreemptPhase.IDLE for phase in _BUSY},
}


class FailedRequest(enum.Enum):
    """What a failed response.create was, for the preemptive answer."""

    PLAIN = "plain"  # not the preemptive one: retry it
    PREEMPTIVE = "preemptive"  # the preemptive one, before its verdict: the verdict asks for an answer itself
    RELEASED = "released"  # the preemptive one, already released: retried as a plain answer


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
        self.state = state

    def _go(self, event: str) -> bool:
        nxt = PREEMPT_TRANSITIONS.get((self.state.phase, event))
        if nxt is None:
            return False
        self.state.phase = nxt
        return True

    # ------------------------------------------------------------------ queries
    @property
    def idle(self) -> bool:
        return self.state.phase is PreemptPhase.IDLE

    @property
    def discarding(self) -> bool:
        """A discarded answer still on its way out (its cancel, its item's deletion)."""
        return self.state.phase in (PreemptPhase.DISCARD_ON_CREATE, PreemptPhase.DISCARDING)

    def covers(self, user_item: str) -> bool:
        """The preemptive answer, still to be released or discarded, is for `user_item`."""
        return not self.idle and not self.discarding and self.state.user_item == user_item

    def holds(self, response_id: str) -> bool:
        """`response_id` is the preemptive answer, still waiting for its verdict."""
        return self.state.phase in (PreemptPhase.HELD, PreemptPhase.REQUESTED) and self.state.response_id == response_id

    @property
    def held_response(self) -> str:
        return self.state.response_id if self.state.phase is PreemptPhase.HELD else ""

    def failed_request(self, response_id: str) -> FailedRequest:
        phase = self.state.phase
        held_failed = phase is PreemptPhase.HELD and bool(response_id) and response_id == self.state.response_id
        if phase in (PreemptPhase.REQUESTED, PreemptPhase.DISCARD_ON_CREATE) or held_failed:
            return FailedRequest.PREEMPTIVE
        if phase is PreemptPhase.RELEASE_ON_CREATE:
            return FailedRequest.RELEASED
        return FailedRequest.PLAIN

    # ------------------------------------------------------------------ events
    def requested(self, user_item: str) -> None:
        self.state.user_item, self.state.response_id, self.state.assistant_item = user_item, "", ""
        self.state.requested += 1
        self._go("request")

    def created(self, response_id: str, now: float) -> tuple[list[object], list[object]]:
        """(client events, internal messages) when a response is created while one was requested."""
        phase = self.state.phase
        if not self._go("created"):
            return [], []
        if phase is PreemptPhase.REQUESTED:
            self.state.response_id = response_id
            return [], [HoldAudio(response_id, now)]
        if phase is PreemptPhase.DISCARD_ON_CREATE:
            self.state.response_id = response_id
            return [RtResponseCancel(response_id)], [DiscardAudio(response_id, now)]
        return [], []

    def item_added(self, response_id: str, item_id: str) -> list[object]:
        if response_id != self.state.response_id or self.idle:
            return []
        self.state.assistant_item = item_id
        return [RtItemDelete(item_id)] if self._go("item_deleted") else []

    def response_done(self, response_id: str) -> None:
        """A discarded answer ended before its item was known: no item will come, nothing is left to delete."""
        if response_id == self.state.response_id:
            self._go("response_done")

    def release(self, now: float) -> list[object]:
        """The transcript was a turn: play the held answer (or let it play when it is created)."""
        phase, response_id = self.state.phase, self.state.response_id
        self.state.used += 1
        self._go("release")
        return [] if phase is PreemptPhase.REQUESTED else [ReleaseAudio(response_id, now)]

    def discard(self, active_response: str, now: float) -> tuple[list[object], list[object]]:
        """The transcript was a filler (or the caller went on): drop the answer and its item. One already
        being discarded is left to finish (its cancel and deletion are under way, or wait for its creation)."""
        if self.discarding or self.idle:
            return [], []
        phase, response_id, item = self.state.phase, self.state.response_id, self.state.assistant_item
        self.state.discarded += 1
        self._go("discard")
        if phase is PreemptPhase.REQUESTED:
            return [], []
        events: list[object] = [RtResponseCancel(response_id)] if active_response == response_id else []
        if item:
            events.append(RtItemDelete(item))
            self._go("item_deleted")
        return events, [DiscardAudio(response_id, now)]

    def abandon(self) -> None:
        """Its session is gone, or its request failed: the verdict takes the normal path."""
        self._go("abandon")
