"""The RealtimeBridge's link part: the Realtime session's lifecycle and what a failing world does to it.

Theory of operation: LinkKeeper owns the session link (session.py: connect, lose, reconnect, roll
over, give up — LinkPhase and its LINK_TRANSITIONS) and the retry of a failed response.create
(rt_errors.py). At call start it opens the first connection and configures the session; a restored
session is configured again and re-seeded with the conversation so far. It is the one gate for client
events (`gate`): while no session can receive them they are dropped and counted (their session is
gone; the restore re-sends what matters), and every response.create that passes is tracked for its
retry. Realtime errors are classified: a transient one retries the request (unless it was the
preemptive answer's: its verdict asks again), a fatal one gives the call to the business's fallback
(RealtimeGaveUp). What a lost, restored or replaced session means for the conversation belongs to
the response book and the caller part: this part tells them (SessionLost, SessionRestored,
SessionRolledOver, PreemptFailed) and keeps, for the re-seeding, the turns the other parts tell it
(TurnBegan, TurnText, TurnForgotten).
"""
from __future__ import annotations

import msgspec

from actors.cores.bridge_notes import (
    Facts,
    PreemptFailed,
    SessionLost,
    SessionRestored,
    SessionRolledOver,
    Tell,
    TurnBegan,
    TurnForgotten,
    TurnText,
)
from actors.cores.preempt import FailedRequest
from actors.cores.rt_errors import ErrorClass, ResponseRetry, RetryState, classify
from actors.cores.session import LinkPhase, LinkState, SessionLink
from actors.cores.session_config import session_update
from actors.ingress_messages import RtError, RtResponseCreated, RtResponseDone, RtSessionUpdated, StartCall, Tick, WireDecodeError
from actors.language_messages import CallerLanguageChanged, LanguageSwitched
from actors.lifecycle_messages import LogLine
from actors.link_messages import LinkDown, LinkUp, OpenRealtime, RealtimeConnected, RealtimeConnectFailed, RealtimeGaveUp, RealtimeLost, RtRateLimits
from actors.settings import CallSettings
from actors.wire_messages import RtResponseCreate, RtResponseParams, ToRealtime


class LinkCounters(msgspec.Struct):
    realtime_errors: int = 0
    realtime_decode_errors: int = 0
    events_dropped_link_down: int = 0
    responses_retried: int = 0


class LinkKeeperState(msgspec.Struct):
    session: LinkState = msgspec.field(default_factory=LinkState)
    retry: RetryState = msgspec.field(default_factory=RetryState)
    session_ready: bool = False  # the session confirmed its configuration
    caller_language: str = ""  # decided by the judge ("" = not yet: the first, transcription detecting)
    counters: LinkCounters = msgspec.field(default_factory=LinkCounters)


class LinkKeeper:
    def __init__(self, state: LinkKeeperState, settings: CallSettings, call_id: str, facts: Facts, tell: Tell) -> None:
        self.state = state
        self.settings = settings
        self.call_id = call_id
        self.facts, self.tell = facts, tell
        self.session = SessionLink(state.session, settings.realtime, call_id)
        self.retry = ResponseRetry(state.retry, settings.realtime.response_retry_max)

    # ------------------------------------------------------------------ facts
    @property
    def live(self) -> bool:
        return self.session.can_send

    @property
    def phase(self) -> LinkPhase:
        return self.session.phase

    @property
    def session_open(self) -> bool:
        return self.session.phase is LinkPhase.LIVE

    @property
    def at_rest(self) -> bool:
        """Its share of the quiet rule: a session to write to, no request in flight or waiting for its retry."""
        return self.live and self.retry.settled

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.call_id, event)  # type: ignore[arg-type]

    def _log(self, event: str, level: str, **fields: object) -> LogLine:
        return LogLine(event, level, {"call_sid": self.call_id, **fields})

    def gate(self, actions: list[object]) -> list[object]:
        """The one gate for client events: dropped while no session can receive them; every
        response.create that passes is tracked for its retry."""
        if not self.live:
            kept = [a for a in actions if not isinstance(a, ToRealtime)]
            self.state.counters.events_dropped_link_down += len(actions) - len(kept)
            return kept
        for action in actions:
            if isinstance(action, ToRealtime) and isinstance(action.event, RtResponseCreate):
                params = action.event.response
                self.retry.sent(params.instructions or "" if params else "")
        return actions

    # ------------------------------------------------------------------ the session's life
    def start_call(self, msg: StartCall, now: float) -> list[object]:
        if self.session.started:
            return []
        self.state.caller_language = self.state.caller_language or self.settings.caller_languages.start
        configure = self._out(session_update(self.settings, self.state.caller_language))
        return [self.session.start(now), configure, *self._seed_resumed()]

    def _seed_resumed(self) -> list[object]:
        """A call back from a transfer nobody took: the conversation so far and the note, as items queued for
        the first session (and kept for re-seeding any later one), ahead of the first answer."""
        resume = self.settings.resume
        if resume.segment < 2:
            return []
        for index, (role, text) in enumerate(resume.turns):
            self.session.turn_text(f"seed-{index}", role, text)
        if resume.note:
            self.session.turn_text("seed-note", "system", resume.note)
        items = self.session.reseed()
        return [*[self._out(item) for item in items],
                self._log("SESSION_RESUMED", "info", segment=resume.segment, items_seeded=len(items))]

    def language_changed(self, msg: CallerLanguageChanged, now: float) -> list[object]:
        """The caller speaks another of the business's languages: the session transcribes and answers in it
        from the caller's next utterance (a restored session is configured the same way)."""
        update = self._out(session_update(self.settings, msg.to_language))
        switched = LanguageSwitched(self.call_id, msg.from_language, msg.to_language, msg.evidence, msg.at)
        line = self._log("SESSION_LANGUAGE", "info", language=msg.to_language, sent=self.live)
        self.state.caller_language = msg.to_language
        return [update, switched, line]

    @property
    def language_layer(self) -> str:
        return self.settings.caller_languages.layers.get(self.state.caller_language, "")

    def session_updated(self, msg: RtSessionUpdated, now: float) -> list[object]:
        ready = self._log("REALTIME_SESSION_READY", "info")
        self.state.session_ready = True
        return [ready]

    def tick(self, msg: Tick, now: float) -> list[object]:
        step = self.session.tick(now, self.facts.quiet)
        out: list[object] = []
        if isinstance(step, OpenRealtime):
            event = "REALTIME_ROLLOVER_STARTED" if step.rollover else "REALTIME_CONNECTING"
            out += [step, self._log(event, "info", generation=step.generation, attempt=self.session.state.attempts,
                                    timeout_s=step.timeout_s)]
        elif isinstance(step, str):
            out += self._give_up(step)
        return out + self._retry_due(now) if self.live else out

    def _retry_due(self, now: float) -> list[object]:
        instructions = self.retry.due(now)
        if instructions is None:
            return []
        params = RtResponseParams(instructions=instructions) if instructions else None
        self.state.counters.responses_retried += 1
        return [self._out(RtResponseCreate(params)), self._log("RESPONSE_RETRIED", "info", retried=self.retry.state.retried)]

    def connected(self, msg: RealtimeConnected, now: float) -> list[object]:
        before = self.session.connected(msg.generation, now)
        if before is None:
            return []
        if before is LinkPhase.CONNECTING:
            return [self._log("REALTIME_SESSION_OPEN", "info", generation=msg.generation)]
        items = self.session.reseed()
        configure = self._out(session_update(self.settings, self.state.caller_language))
        out: list[object] = [configure, *[self._out(item) for item in items], LinkUp(now)]
        link = self.session.state
        if before is LinkPhase.ROLLING:
            out.append(self._log("REALTIME_ROLLED_OVER", "info", generation=msg.generation, items_reseeded=len(items),
                                 rollovers=link.rollovers))
            return out + self.tell(SessionRolledOver(), now)
        out.append(self._log("REALTIME_RESTORED", "warning", generation=msg.generation, gap_ms=link.gap_ms[-1],
                             items_reseeded=len(items), reconnects=link.reconnects))
        return out + self.tell(SessionRestored(), now)

    def connect_failed(self, msg: RealtimeConnectFailed, now: float) -> list[object]:
        if not self.session.connect_failed(msg.generation, now):
            return []
        return [self._log("REALTIME_CONNECT_FAILED", "warning", generation=msg.generation, reason=msg.reason,
                          phase=self.session.phase.value, failures=self.session.state.connect_failures)]

    def lost(self, msg: RealtimeLost, now: float) -> list[object]:
        # a caller turn the lost session heard but never transcribed is heard again by the new one
        replay_from, ai_speaking = self.facts.untranscribed_turn_from_ms, bool(self.facts.active_response)
        if not self.session.lost(msg.generation, now):
            return []
        out: list[object] = [LinkDown(msg.unsent_audio, now, replay_from), self._log(
            "REALTIME_LOST", "warning", generation=msg.generation, code=msg.code, reason=msg.reason[:200],
            unsent_appends=len(msg.unsent_audio), ai_speaking=ai_speaking, replay_untranscribed_turn_from_ms=replay_from)]
        self.retry.reset()
        return out + self.tell(SessionLost(), now)

    def _give_up(self, reason: str) -> list[object]:
        if not self.session.give_up(reason):
            return []
        return [LinkDown((), 0.0), RealtimeGaveUp(self.call_id, reason), self._log("REALTIME_UNAVAILABLE", "error", reason=reason)]

    # ------------------------------------------------------------------ responses and errors
    def rate_limits(self, msg: RtRateLimits, now: float) -> list[object]:
        self.retry.rate_limits(msg.reset_s, now)
        return []

    def response_created(self, msg: RtResponseCreated, now: float) -> list[object]:
        self.retry.created()
        return []

    def response_done(self, msg: RtResponseDone, now: float) -> list[object]:
        if msg.status != "failed":
            return []
        self.retry.created_then_failed()
        return self._error(msg.error_code or "response_failed", "", f"response {msg.response_id} failed", now, msg.response_id)

    def error(self, msg: RtError, now: float) -> list[object]:
        return self._error(msg.code, msg.type, msg.message, now, "")

    def decode_error(self, msg: WireDecodeError, now: float) -> list[object]:
        line = self._log("REALTIME_DECODE_ERROR", "warning", reason=msg.reason)
        self.state.counters.realtime_decode_errors += 1
        return [line]

    def _error(self, code: str, error_type: str, message: str, now: float, response_id: str) -> list[object]:
        kind = classify(code, error_type)
        out: list[object] = [LogLine("REALTIME_ERROR", "warning", {"call_sid": self.call_id, "code": code, "class": kind.value,
                                                                   "message": message[:300]})]
        self.state.counters.realtime_errors += 1
        if kind is ErrorClass.SESSION_FATAL:
            return out + self._give_up(f"realtime_{code}")
        if kind is not ErrorClass.RETRY_RESPONSE or not self.retry.state.in_flight:
            return out
        failed = self.facts.failed_request(response_id)
        if failed is FailedRequest.PREEMPTIVE:  # the verdict will ask for an answer itself
            self.retry.drop()
            return out + self.tell(PreemptFailed(), now)
        if failed is FailedRequest.RELEASED:  # the verdict was a turn: retried as a plain answer
            out += self.tell(PreemptFailed(), now)
        if not self.retry.failed(now):
            return out + self._give_up(f"realtime_{code}")
        return out + [LogLine("RESPONSE_RETRY_SCHEDULED", "warning", {
            "call_sid": self.call_id, "code": code, "in_s": round(self.retry.state.due_at - now, 3), "try": self.retry.state.tries})]

    # ------------------------------------------------------------------ the conversation, for re-seeding
    def turn_began(self, note: TurnBegan, now: float) -> list[object]:
        self.session.turn_started(note.item_id, note.role)
        return []

    def turn_text(self, note: TurnText, now: float) -> list[object]:
        self.session.turn_text(note.item_id, note.role, note.text)
        return []

    def turn_forgotten(self, note: TurnForgotten, now: float) -> list[object]:
        self.session.forget(note.item_id)
        return []

    def counters(self) -> dict[str, int]:
        return {**msgspec.structs.asdict(self.state.counters), **self.session.counters(),
                "responses_retry_gave_up": self.retry.state.gave_up}

    def series(self) -> dict[str, list[int]]:
        return {"reconnect_gap_ms": list(self.session.state.gap_ms)}
