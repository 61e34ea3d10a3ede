"""The Realtime link of one call: connect, lose, reconnect, roll over, give up — and what to re-seed.

Theory of operation: a call's Realtime session is a sequence of connections, numbered by
`generation`. The gateway opens a connection only when told (OpenRealtime) and reports what became of
it (RealtimeConnected / RealtimeConnectFailed / RealtimeLost, each naming its generation; news of an
older generation is stale and ignored). At call start one attempt budget (`connect_budget_s`, the
pre-opened connection included) covers every try; mid-call a lost link is retried with exponential
backoff (`backoff_initial_s` → `backoff_max_s`) within `reconnect_budget_s` and
`reconnect_max_attempts`; past either the link FAILS and the business's fallback takes the call.
A session restored after a loss starts empty, so it is sent the same session.update and the
conversation so far as text items: caller turns as transcribed, the AI's turns as heard (cut where
they were cut), most recent last, within `reseed_max_chars`. Before the 60-minute session limit, at
a quiet moment (AI silent, caller silent, nothing pending) the link ROLLS over: a new connection is
opened beside the live one and the gateway switches to it, with nothing lost in between.

Phases: CONNECTING → LIVE ⇄ RECONNECTING, LIVE → ROLLING → LIVE, {CONNECTING, RECONNECTING, LIVE} → FAILED.
Time is an argument; the bridge ticks this every 100 ms.
"""
from __future__ import annotations

import enum

import msgspec

from actors.link_messages import OpenRealtime, RtItemCreate, RtMessageItem, RtTextContent
from actors.settings import RealtimeSettings

HISTORY_KEPT = 200


class LinkPhase(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ROLLING = "rolling"
    FAILED = "failed"


LINK_TRANSITIONS: dict[tuple[LinkPhase, str], LinkPhase] = {
    (LinkPhase.CONNECTING, "connected"): LinkPhase.LIVE,
    (LinkPhase.CONNECTING, "give_up"): LinkPhase.FAILED,
    (LinkPhase.LIVE, "lost"): LinkPhase.RECONNECTING,
    (LinkPhase.LIVE, "roll"): LinkPhase.ROLLING,
    (LinkPhase.LIVE, "give_up"): LinkPhase.FAILED,
    (LinkPhase.ROLLING, "connected"): LinkPhase.LIVE,
    (LinkPhase.ROLLING, "roll_failed"): LinkPhase.LIVE,
    (LinkPhase.ROLLING, "lost"): LinkPhase.RECONNECTING,
    (LinkPhase.ROLLING, "give_up"): LinkPhase.FAILED,
    (LinkPhase.RECONNECTING, "connected"): LinkPhase.LIVE,
    (LinkPhase.RECONNECTING, "give_up"): LinkPhase.FAILED,
}


class HistoryTurn(msgspec.Struct):
    item_id: str
    role: str  # "user" | "assistant"
    text: str = ""


class LinkState(msgspec.Struct):
    phase: LinkPhase = LinkPhase.CONNECTING
    generation: int = 0
    in_flight: bool = False  # an OpenRealtime is out and its answer has not come back
    episode_started_at: float = -1.0  # call start, or when the link was lost
    attempts: int = 0  # in this episode
    next_attempt_at: float = -1.0
    session_started_at: float = 0.0
    lost_at: float = -1.0
    reconnects: int = 0
    rollovers: int = 0
    connect_failures: int = 0
    gap_ms: list[int] = msgspec.field(default_factory=list)
    history: list[HistoryTurn] = msgspec.field(default_factory=list)
    give_up_reason: str = ""


class SessionLink:
    def __init__(self, state: LinkState, policy: RealtimeSettings, call_id: str) -> None:
        self.state = state
        self.policy = policy
        self.call_id = call_id

    # ------------------------------------------------------------------ phases
    @property
    def phase(self) -> LinkPhase:
        return self.state.phase

    @property
    def started(self) -> bool:
        """The call's first connection was asked for."""
        return self.state.generation > 0

    @property
    def can_send(self) -> bool:
        """Client events may be written: to the live session, or queued for the first one."""
        return self.state.phase in (LinkPhase.LIVE, LinkPhase.ROLLING, LinkPhase.CONNECTING)

    def _go(self, event: str) -> bool:
        nxt = LINK_TRANSITIONS.get((self.state.phase, event))
        if nxt is None:
            return False
        self.state.phase = nxt
        return True

    def _open(self, now: float, rollover: bool = False) -> OpenRealtime:
        budget = self.policy.connect_budget_s if self.state.phase is LinkPhase.CONNECTING else self.policy.reconnect_budget_s
        remaining = budget - (now - self.state.episode_started_at) if not rollover else self.policy.connect_timeout_s
        self.state.generation += 1
        self.state.attempts += 1
        self.state.in_flight = True
        self.state.next_attempt_at = -1.0
        timeout = max(0.1, min(self.policy.connect_timeout_s, remaining))
        return OpenRealtime(self.call_id, self.state.generation, round(timeout, 3), rollover)

    def start(self, now: float) -> OpenRealtime:
        self.state.episode_started_at = now
        return self._open(now)

    def connected(self, generation: int, now: float) -> LinkPhase | None:
        """The phase the link was in when `generation` came up, or None when that news is stale."""
        if generation != self.state.generation or not self.state.in_flight:
            return None
        before = self.state.phase
        if not self._go("connected"):
            return None
        self.state.in_flight = False
        self.state.attempts = 0
        self.state.session_started_at = now
        if before is LinkPhase.RECONNECTING:
            self.state.reconnects += 1
            self.state.gap_ms.append(int(round((now - self.state.lost_at) * 1000)))
            del self.state.gap_ms[:-64]
        elif before is LinkPhase.ROLLING:
            self.state.rollovers += 1
        return before

    def connect_failed(self, generation: int, now: float) -> bool:
        """Schedule the next try; False if stale. A failed rollover leaves the live session in place."""
        if generation != self.state.generation or not self.state.in_flight:
            return False
        self.state.in_flight = False
        self.state.connect_failures += 1
        if self.state.phase is LinkPhase.ROLLING:
            self._go("roll_failed")
            self.state.session_started_at = now - self.policy.rollover_after_s + 30.0  # try again in 30 s
            return True
        self.state.next_attempt_at = now + self._backoff()
        return True

    def lost(self, generation: int, now: float) -> bool:
        """The live connection is gone; False if stale (an older generation, or not live)."""
        if self.state.phase is LinkPhase.ROLLING and generation == self.state.generation - 1:
            pass  # the old session died while the new one was opening: the new one becomes the restore
        elif generation != self.state.generation or self.state.phase not in (LinkPhase.LIVE, LinkPhase.ROLLING):
            return False
        was_rolling = self.state.phase is LinkPhase.ROLLING
        self._go("lost")
        self.state.lost_at = now
        self.state.episode_started_at = now
        self.state.attempts = 0
        if was_rolling and self.state.in_flight:
            self.state.attempts = 1  # the rollover's attempt counts as the first reconnect
        else:
            self.state.in_flight = False
            self.state.next_attempt_at = now + self.policy.backoff_initial_s
        return True

    def give_up(self, reason: str) -> bool:
        if not self._go("give_up"):
            return False
        self.state.give_up_reason = reason
        self.state.in_flight = False
        return True

    def _backoff(self) -> float:
        delay = self.policy.backoff_initial_s * (2 ** max(0, self.state.attempts - 1))
        return float(min(self.policy.backoff_max_s, delay))

    def tick(self, now: float, quiet: bool) -> OpenRealtime | str | None:
        """An OpenRealtime to send, a reason to give up, or None."""
        phase = self.state.phase
        if phase in (LinkPhase.CONNECTING, LinkPhase.RECONNECTING):
            if self.state.in_flight or self.state.next_attempt_at < 0:
                return None
            budget = self.policy.connect_budget_s if phase is LinkPhase.CONNECTING else self.policy.reconnect_budget_s
            spent = now - self.state.episode_started_at
            if spent >= budget or (phase is LinkPhase.RECONNECTING and self.state.attempts >= self.policy.reconnect_max_attempts):
                return "realtime_connect_failed" if phase is LinkPhase.CONNECTING else "realtime_reconnect_failed"
            if now >= self.state.next_attempt_at:
                return self._open(now)
            return None
        if phase is LinkPhase.LIVE and quiet and now - self.state.session_started_at >= self.policy.rollover_after_s:
            self._go("roll")
            return self._open(now, rollover=True)
        return None

    # ------------------------------------------------------------------ conversation history
    def turn_started(self, item_id: str, role: str) -> None:
        if any(turn.item_id == item_id for turn in self.state.history[-8:]):
            return
        self.state.history.append(HistoryTurn(item_id, role))
        del self.state.history[:-HISTORY_KEPT]

    def turn_text(self, item_id: str, role: str, text: str) -> None:
        for turn in reversed(self.state.history):
            if turn.item_id == item_id:
                turn.text = text
                return
        self.state.history.append(HistoryTurn(item_id, role, text))
        del self.state.history[:-HISTORY_KEPT]

    def forget(self, item_id: str) -> None:
        self.state.history = [turn for turn in self.state.history if turn.item_id != item_id]

    def reseed(self) -> list[RtItemCreate]:
        """The conversation as text items, most recent last, within the character budget."""
        budget = self.policy.reseed_max_chars
        kept: list[HistoryTurn] = []
        for turn in reversed(self.state.history):
            text = turn.text.strip()
            if not text:
                continue
            if len(text) > budget:
                break
            budget -= len(text)
            kept.append(turn)
        items = []
        for turn in reversed(kept):
            kind = "output_text" if turn.role == "assistant" else "input_text"
            role = turn.role if turn.role in ("user", "system") else "assistant"
            items.append(RtItemCreate(RtMessageItem(role, (RtTextContent(kind, turn.text.strip()),))))  # type: ignore[arg-type]
        return items

    def counters(self) -> dict[str, int]:
        return {"realtime_reconnects": self.state.reconnects, "realtime_rollovers": self.state.rollovers,
                "realtime_connect_failures": self.state.connect_failures,
                "reconnect_gap_ms_max": max(self.state.gap_ms, default=0)}
