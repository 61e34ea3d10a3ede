"""The RealtimeBridge's response book: the model's responses, and the answers owed to the caller.

Theory of operation: at call start the greeting is asked for as an ordinary response, so it flows
through the TxPacer like any other. Afterwards the book acts only on decisions: AnswerRequest (from the
BargeInJudge) → `response.create`, or the release of a preemptive answer (preempt.py) started at
speech_stopped; DeleteItem → `conversation.item.delete` (and the discard of a preemptive answer to that
filler); PlayoutCut (from the TxPacer) → `response.cancel` if that response is still generating, then
`conversation.item.truncate` at what the caller heard (spoken.py keeps the words they heard). One
response generates at a time: an answer asked for while another is active, while a cut is awaited or
while no session can take it is owed, and asked for the moment nothing is in the way. A lost link
finishes the answer in flight (what was received plays to its end) and owes its continuation, asked
for once a session is back and the caller heard the rest.

What is owed (Owed, OWED_TRANSITIONS): NOTHING; ANSWER (a caller turn, a tool's result or a keypad
entry waits for its answer); RESUME (an answer a lost link cut waits to be continued). An owed answer
supersedes a resume: the caller spoke since, so they are answered, not the cut sentence.
"""
from __future__ import annotations

import enum

import msgspec

from actors.cores import bridge_notes as notes
from actors.cores.preempt import Preemption, PreemptState
from actors.cores.spoken import Spoken, SpokenState
from actors.ingress_messages import RtAssistantTranscriptDelta, RtAssistantTranscriptDone, RtOutputItemAdded, RtResponseCreated, RtResponseDone, StartCall
from actors.language_messages import CallerLanguageChanged
from actors.lifecycle_messages import LogLine
from actors.link_messages import FinishResponse, RtItemCreate, RtMessageItem, RtTextContent
from actors.messages import AnswerRequest, DeleteItem, DiscardAudio, LetStand, PlayoutChanged, PlayoutCut, PreemptiveAnswer, ResponseFinished, Utterance
from actors.settings import CallSettings
from actors.wire_messages import RtItemDelete, RtItemTruncate, RtResponseCancel, RtResponseCreate, RtResponseParams, ToRealtime

RESUME_NOTE = ("The line dropped for a moment while you were speaking; your previous message was cut where "
               "it ends above. Continue naturally from there in the same language, without repeating "
               "what was already said.")


PLAYING_KEPT = 16  # responses whose first play is remembered (an utterance is decided within seconds of it)


class Owed(enum.Enum):
    NOTHING = "nothing"
    ANSWER = "answer"
    RESUME = "resume"


OWED_TRANSITIONS: dict[tuple[Owed, str], Owed] = {
    (Owed.NOTHING, "defer"): Owed.ANSWER,
    (Owed.RESUME, "defer"): Owed.ANSWER,
    (Owed.ANSWER, "defer"): Owed.ANSWER,
    (Owed.NOTHING, "cut_by_drop"): Owed.RESUME,
    (Owed.RESUME, "cut_by_drop"): Owed.RESUME,
    (Owed.ANSWER, "answered"): Owed.NOTHING,
    (Owed.RESUME, "resumed"): Owed.NOTHING,
}


class ResponseCounters(msgspec.Struct):
    responses_requested: int = 0
    responses_created: int = 0
    responses_cancelled: int = 0
    answers_deferred: int = 0
    truncates_sent: int = 0
    items_deleted: int = 0
    backchannels_kept: int = 0
    answers_cut_by_drop: int = 0


class ResponseBookState(msgspec.Struct):
    greeting_requested: bool = False
    active_response: str = ""
    active_item: str = ""  # assistant item of the active response
    awaiting_cut: bool = False  # the judge cut the AI; the pacer's PlayoutCut (what was heard) is due
    owed: Owed = Owed.NOTHING
    owed_item: str = ""  # what the owed answer is for: a caller item, "tool" or "keypad"
    spoken: SpokenState = msgspec.field(default_factory=SpokenState)  # what the AI said, what was heard of it
    preempt: PreemptState = msgspec.field(default_factory=PreemptState)
    counters: ResponseCounters = msgspec.field(default_factory=ResponseCounters)
    call_started_at: float = -1.0  # StartCall: the AI's utterances are placed in time from it, as the caller's are
    playing_since_ms: dict[str, int] = msgspec.field(default_factory=dict)  # response → its audio's first play


class ResponseBook:
    def __init__(self, state: ResponseBookState, settings: CallSettings, call_id: str, facts: notes.Facts, tell: notes.Tell) -> None:
        self.state = state
        self.settings = settings
        self.call_id = call_id
        self.facts, self.tell = facts, tell
        self.preempt = Preemption(state.preempt)
        self.spoken = Spoken(state.spoken)

    # ------------------------------------------------------------------ facts
    @property
    def at_rest(self) -> bool:
        """Its share of the quiet rule: nothing generating, owed, awaiting its cut or preempted."""
        book = self.state
        return not (book.active_response or book.owed is not Owed.NOTHING or book.awaiting_cut or not self.preempt.idle)

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.call_id, event)  # type: ignore[arg-type]

    def _log(self, event: str, **fields: object) -> LogLine:
        return LogLine(event, "info", {"call_sid": self.call_id, **fields})

    def _owe(self, event: str, item: str = "") -> None:
        nxt = OWED_TRANSITIONS.get((self.state.owed, event))
        if nxt is not None:
            self.state.owed, self.state.owed_item = nxt, item

    # ------------------------------------------------------------------ verdicts on the caller's turns
    def answer_request(self, msg: AnswerRequest, now: float) -> list[object]:
        if self.preempt.covers(msg.item_id):
            released = self.preempt.release(now)
            return released + self.tell(notes.HeldAnswerReleased(), now)
        discarding = self.preempt.discarding  # its cancel is under way: the answer follows the response's end
        out = [] if self.preempt.idle or discarding else self._discard_preempt(now)
        if msg.after_cut:
            self.state.awaiting_cut = True
        if discarding or self.state.active_response or self.state.awaiting_cut or not self.facts.live:
            deferred = self._log("ANSWER_DEFERRED", item_id=msg.item_id)
            self._owe("defer", msg.item_id)
            self.state.counters.answers_deferred += 1
            return out + [deferred]
        return out + self._create()

    def preemptive_answer(self, msg: PreemptiveAnswer, now: float) -> list[object]:
        book = self.state
        if book.active_response or book.awaiting_cut or book.owed is Owed.ANSWER or not self.preempt.idle or not self.facts.live:
            return []
        started = self._log("PREEMPTIVE_ANSWER started", item_id=msg.item_id)
        self.preempt.requested(msg.item_id)
        return self._create() + [started]

    def delete_item(self, msg: DeleteItem, now: float) -> list[object]:
        """A filler: its item goes, and so does a preemptive answer to it; the turn gets no answer."""
        out = self._discard_covering(msg.item_id, now) + [self._out(RtItemDelete(msg.item_id))]
        self.state.counters.items_deleted += 1
        return out + self.tell(notes.TurnForgotten(msg.item_id), now)

    def let_stand(self, msg: LetStand, now: float) -> list[object]:
        """A backchannel: its item stays for the model; a preemptive answer to it goes; no answer."""
        out = self._discard_covering(msg.item_id, now)
        self.state.counters.backchannels_kept += 1
        return out

    def _discard_covering(self, item_id: str, now: float) -> list[object]:
        return self._discard_preempt(now) if self.preempt.covers(item_id) else []

    def _discard_preempt(self, now: float) -> list[object]:
        events, internal = self.preempt.discard(self.state.active_response, now)
        return [self._out(e) for e in events] + internal + [self._log("PREEMPTIVE_ANSWER discarded")]

    # ------------------------------------------------------------------ the model's responses
    def greet(self, msg: StartCall, now: float) -> list[object]:
        if self.state.greeting_requested:
            return []
        out = self._create(self.settings.greeting) + [self._log("[GREETING] requested")]
        self.state.greeting_requested = True
        self.state.call_started_at = now
        return out

    def ask_response(self, note: notes.AskResponse, now: float) -> list[object]:
        return self._create(note.instructions)

    def owe_answer(self, note: notes.OweAnswer, now: float) -> list[object]:
        if self.state.owed is not Owed.ANSWER:
            self._owe("defer", note.reason)
        return self._answer_owed()

    def response_created(self, msg: RtResponseCreated, now: float) -> list[object]:
        self.state.active_response = msg.response_id
        self.state.counters.responses_created += 1
        if self.preempt.idle:
            return []
        events, internal = self.preempt.created(msg.response_id, now)
        return [self._out(e) for e in events] + internal

    def item_added(self, msg: RtOutputItemAdded, now: float) -> list[object]:
        out = self.tell(notes.TurnBegan(msg.item_id, "assistant"), now)
        if msg.response_id == self.state.active_response:
            self.state.active_item = msg.item_id
        return out + [self._out(e) for e in self.preempt.item_added(msg.response_id, msg.item_id)]

    def response_done(self, msg: RtResponseDone, now: float) -> list[object]:
        """Generation ended; a failed one is the link part's to retry (or give up)."""
        if self.state.active_response == msg.response_id:
            self.state.active_response = ""
        if msg.status == "cancelled":
            self.state.counters.responses_cancelled += 1
        self.preempt.response_done(msg.response_id)
        return [] if msg.status == "failed" else self._answer_owed()

    def transcript_delta(self, msg: RtAssistantTranscriptDelta, now: float) -> list[object]:
        self.spoken.delta(msg.item_id, msg.delta)
        return []

    def assistant_said(self, msg: RtAssistantTranscriptDone, now: float) -> list[object]:
        if not self.spoken.done(msg.item_id):  # recorded at the cut, with what was heard
            return []
        said = [self._log("AI_SAID", text=msg.transcript), self._placed(msg.response_id, msg.transcript, -1, False)]
        return self.tell(notes.TurnText(msg.item_id, "assistant", msg.transcript), now) + said

    # ------------------------------------------------------------------ what the caller hears
    def playout_changed(self, msg: PlayoutChanged, now: float) -> list[object]:
        out = self._resume(now)
        book = self.state
        if msg.audible and msg.response_id and msg.response_id not in book.playing_since_ms and book.call_started_at >= 0:
            book.playing_since_ms[msg.response_id] = int(round((msg.at - book.call_started_at) * 1000))
            for old in list(book.playing_since_ms)[:-PLAYING_KEPT]:
                del book.playing_since_ms[old]
        return out

    def _placed(self, response_id: str, text: str, played_ms: int, interrupted: bool, heard_ms: int = -1) -> Utterance:
        """The AI's utterance placed in time: from when its audio began to play, for `played_ms` (-1: unknown)."""
        start = self.state.playing_since_ms.get(response_id, -1)
        end = start + played_ms if start >= 0 and played_ms >= 0 else -1
        return Utterance(self.call_id, "assistant", text, "", start, end, interrupted, heard_ms)

    def playout_cut(self, msg: PlayoutCut, now: float) -> list[object]:
        out: list[object] = []
        if self.state.active_response and self.state.active_response == msg.response_id:
            out.append(self._out(RtResponseCancel(msg.response_id)))
        self.state.awaiting_cut = False
        if not msg.item_id:
            return out + self._answer_owed()
        end_ms = min(msg.heard_ms, msg.sent_ms)
        out += [self._out(RtItemTruncate(msg.item_id, end_ms)),
                self._log("TRUNCATE", item_id=msg.item_id, audio_end_ms=end_ms, sent_ms=msg.sent_ms)]
        heard_text = self.spoken.cut(msg.item_id, end_ms, msg.generated_ms)
        self.state.counters.truncates_sent += 1
        out.append(self._placed(msg.response_id, heard_text, end_ms, True, end_ms))
        return out + self.tell(notes.TurnText(msg.item_id, "assistant", heard_text), now) + self._answer_owed()

    def response_finished(self, msg: ResponseFinished, now: float) -> list[object]:
        text = self.spoken.finished(msg.item_id)
        return [] if text is None else [self._placed(msg.response_id, text, msg.played_ms, True, msg.played_ms)]

    # ------------------------------------------------------------------ asking for answers
    def language_changed(self, msg: CallerLanguageChanged, now: float) -> list[object]:
        """A preemptive answer was asked in the old language: it goes, and the verdict asks again."""
        return [] if self.preempt.idle or self.preempt.discarding else self._discard_preempt(now)

    def _create(self, instructions: str | None = None) -> list[object]:
        layer = self.facts.language_layer  # response-level instructions replace the session's: the layer goes too
        if instructions is not None and layer:
            instructions = f"{instructions}\n\n{layer}"
        params = RtResponseParams(instructions=instructions) if instructions is not None else None
        self.state.counters.responses_requested += 1
        return [self._out(RtResponseCreate(params))]

    def _answer_owed(self) -> list[object]:
        book = self.state
        if book.owed is not Owed.ANSWER or book.active_response or book.awaiting_cut or not self.facts.live:
            return []
        self._owe("answered")
        return self._create()

    def _resume(self, now: float) -> list[object]:
        book = self.state
        if book.owed is not Owed.RESUME or not self.facts.session_open or self.facts.ai_audible or book.active_response \
                or book.awaiting_cut or not self.preempt.idle:
            return []
        note = RtItemCreate(RtMessageItem("system", (RtTextContent("input_text", RESUME_NOTE),)))
        self._owe("resumed")
        return [self._out(note)] + self._create() + [self._log("ANSWER_RESUMED")]

    # ------------------------------------------------------------------ what the link tells
    def session_lost(self, note: notes.SessionLost, now: float) -> list[object]:
        book = self.state
        held = self.preempt.held_response
        out: list[object] = [DiscardAudio(held, now)] if held else []
        cut = book.active_response if book.active_response != held else ""
        if cut:
            # the answer in flight gets no more audio: what was received plays to its end, and the model
            # continues from the re-seeded context once the session is back and the caller heard it all
            out.append(FinishResponse(cut, now))
            out += self._cut_by_drop(book.active_item, now)
        self.preempt.abandon()  # its session is gone; the verdict takes the normal path
        book.active_response = book.active_item = ""
        return out

    def _cut_by_drop(self, item: str, now: float) -> list[object]:
        self.state.counters.answers_cut_by_drop += 1
        self._owe("cut_by_drop")
        if not item:
            return []
        return self.tell(notes.TurnText(item, "assistant", self.spoken.dropped(item)), now)

    def session_restored(self, note: notes.SessionRestored, now: float) -> list[object]:
        return self._answer_owed() + self._resume(now)

    def preempt_failed(self, note: notes.PreemptFailed, now: float) -> list[object]:
        self.preempt.abandon()
        return self._answer_owed()  # a turn that waited for the discarded answer's end is asked for now

    def counters(self) -> dict[str, int]:
        preempt = self.preempt.state
        return {**msgspec.structs.asdict(self.state.counters), "preemptive_requested": preempt.requested,
                "preemptive_used": preempt.used, "preemptive_discarded": preempt.discarded}

    def series(self) -> dict[str, list[int]]:
        return {"truncate_audio_end_ms": list(self.state.spoken.truncate_audio_end_ms)}
