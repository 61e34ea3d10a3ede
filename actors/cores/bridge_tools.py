"""The RealtimeBridge's tools part: the model's function calls, run by the ToolDesk (tools.py).

Theory of operation: a call is validated and answered by the desk — an output at once (a built-in, a
refusal), or a RunTool for the gateway, whose ToolDone brings the output later (a running tool past its
deadline is answered with a timeout on a tick). An output is sent as soon as it is known — to the
session that made the call; a session restored since never saw the call and gets the result as a system
note instead, and every result joins the history a restored session is re-seeded with. The answer to
the results is owed (OweAnswer) once every tool called in the turn has answered, and asked for, like
every answer, once no response is active. A tool slower than `slow_tool_s` gets one holding line, only
while the AI is silent. `end_call` and `transfer_to_human` are told to the conduct part (Leave). The
calls of a held preemptive answer wait with it (bridge_held.py): made at its release, dropped at its
discard. States per call: RUNNING (in the desk) → DONE (output sent); HeldCalls: EMPTY ⇄ HOLDING.
"""
from __future__ import annotations

import msgspec

from actors.agent_messages import RtFunctionCall, RtOutputCreate, RunTool, ToolCallRecord, ToolDone
from actors.cores.bridge_held import HeldCalls, HeldCallsState
from actors.cores.bridge_notes import AskResponse, Facts, HeldAnswerReleased, Leave, OweAnswer, Tell, TurnText
from actors.cores.tools import ToolDesk, ToolState
from actors.ingress_messages import Tick
from actors.lifecycle_messages import LogLine
from actors.link_messages import RtItemCreate, RtMessageItem, RtTextContent
from actors.settings import CallSettings
from actors.wire_messages import RtItemDelete, ToRealtime

CALLS_KEPT = 32


class ToolCallsState(msgspec.Struct):
    tools: ToolState = msgspec.field(default_factory=ToolState)
    held: HeldCallsState = msgspec.field(default_factory=HeldCallsState)
    call_sessions: dict[str, int] = msgspec.field(default_factory=dict)  # tool call id → link generation that made it


class ToolCalls:
    def __init__(self, state: ToolCallsState, settings: CallSettings, call_id: str, facts: Facts, tell: Tell) -> None:
        self.state = state
        self.settings = settings
        self.call_id = call_id
        self.facts, self.tell = facts, tell
        self.desk = ToolDesk(state.tools, settings.agent, call_id)
        self.held = HeldCalls(state.held)

    @property
    def at_rest(self) -> bool:
        """Its share of the quiet rule: no tool running."""
        return not self.desk.busy

    def _out(self, event: object) -> ToRealtime:
        return ToRealtime(self.call_id, event)  # type: ignore[arg-type]

    def _log(self, event: str, **fields: object) -> LogLine:
        return LogLine(event, "info", {"call_sid": self.call_id, **fields})

    # ------------------------------------------------------------------ function calls
    def function_call(self, msg: RtFunctionCall, now: float) -> list[object]:
        sessions = self.state.call_sessions
        sessions.setdefault(msg.tool_call_id, self.facts.generation)
        if len(sessions) > CALLS_KEPT:
            del sessions[next(iter(sessions))]
        if self.facts.preempt_holds(msg.response_id):
            return self._hold_call(msg, now)
        events, leave = self.desk.called(msg, now)
        if not events and leave is None:
            return []  # a call id seen before
        out = self._outputs(events, now)
        out.append(self._log("TOOL_CALLED", name=msg.name, tool_call_id=msg.tool_call_id))
        if leave is not None:
            out += self.tell(Leave(leave, msg.response_id), now)
        return out + self._tool_answer(now)

    def _hold_call(self, msg: RtFunctionCall, now: float) -> list[object]:
        """A preemptive answer's call waits for the transcript's verdict — a filler's answer must not act.
        A read-only business tool starts at once (speculatively); only its result waits."""
        tool = self.desk.tools.get(msg.name)
        if tool is None or tool.kind != "http" or not tool.read_only:
            self.held.hold(msg)
            return [self._log("TOOL_CALL_HELD", name=msg.name, tool_call_id=msg.tool_call_id)]
        events, _ = self.desk.called(msg, now)
        runs = [e for e in events if isinstance(e, RunTool)]
        if not runs:
            self.held.refused(msg, events)
            return []
        self.held.started(msg)
        return [*runs, self._log("TOOL_CALL_SPECULATIVE", name=msg.name, tool_call_id=msg.tool_call_id)]

    def tool_done(self, msg: ToolDone, now: float) -> list[object]:
        events = self.desk.done(msg, now)
        if not events:
            return [self._log("TOOL_RESULT_LATE", tool_call_id=msg.tool_call_id, status=msg.status)]
        if self.held.is_speculative(msg.tool_call_id):  # its answer is still held: so is the result
            self.held.stash(events)
            return [self._log("TOOL_DONE_HELD", tool_call_id=msg.tool_call_id, status=msg.status, elapsed_ms=msg.elapsed_ms)]
        out = self._outputs(events, now)
        out.append(self._log("TOOL_DONE", tool_call_id=msg.tool_call_id, status=msg.status, elapsed_ms=msg.elapsed_ms))
        return out + self._tool_answer(now)

    def _outputs(self, events: list[object], now: float) -> list[object]:
        """Function outputs as client events — to the session that made the call; a session restored since
        never saw it, so it gets the result as a system note instead (a function_call_output would be refused).
        Every result also joins the history a restored session is re-seeded with (as a system note)."""
        out: list[object] = []
        generation = self.facts.generation
        for event in events:
            if isinstance(event, ToolCallRecord):
                out += self.tell(TurnText(f"tool:{event.tool_call_id}", "system",
                                          f"[tool {event.name} ({event.status}): {event.output[:400]}]"), now)
            if not isinstance(event, RtOutputCreate):
                out.append(event)
            elif self.state.call_sessions.pop(event.item.call_id, generation) == generation:
                out.append(self._out(event))
            else:
                note = f"[result of the tool call you made before the line dropped: {event.item.output[:400]}]"
                out.append(self._out(RtItemCreate(RtMessageItem("system", (RtTextContent("input_text", note),)))))
        return out

    def _tool_answer(self, now: float) -> list[object]:
        """All tools of the turn answered: the model speaks next (after the active response)."""
        if self.desk.busy or self.facts.leaving or self.facts.answer_owed:
            return []
        return self.tell(OweAnswer("tool"), now)

    # ------------------------------------------------------------------ the calls of a held preemptive answer
    def release_held_calls(self, note: HeldAnswerReleased, now: float) -> list[object]:
        """The held answer was released: its calls are made, and the results that waited are sent."""
        if not self.held.holding:
            return []
        taken = self.held.take()
        out = self._outputs([*taken.outputs, *taken.records], now)
        for call in taken.calls:
            out += self.function_call(call, now)
        return out + self._tool_answer(now)

    def settle_held_calls(self, msg: object, now: float) -> list[object]:
        """The held answer was discarded (or its session lost): its calls are dropped with it — their
        items deleted, so the model never sees them — and a speculative run is cancelled."""
        if not self.held.holding or self.facts.preempt_holds(self.held.response_id):
            return []
        taken = self.held.take()
        for tool_call_id in taken.speculative:
            self.desk.cancel(tool_call_id)
        out: list[object] = [self._out(RtItemDelete(item)) for item in [*taken.items, *(call.item_id for call in taken.calls)]]
        return out + [self._log("TOOL_CALL_DISCARDED", count=len(taken.calls) + len(taken.items),
                                reason="its answer was discarded (the turn was a filler)")]

    # ------------------------------------------------------------------ the clock
    def tick(self, msg: Tick, now: float) -> list[object]:
        """A tool past its deadline is answered with a timeout."""
        out = self._outputs(self.desk.tick(now), now)
        return out + self._tool_answer(now) if out else out

    def holding_line(self, msg: Tick, now: float) -> list[object]:
        """One holding line for a slow tool, only while the AI is silent and the call goes on."""
        if not self.desk.holding_due(now) or self.facts.active_response or self.facts.ai_audible or self.facts.leaving:
            return []
        self.desk.holding_sent()
        return self.tell(AskResponse(self.settings.agent.directives.holding), now) + [self._log("TOOL_HOLDING_LINE")]

    def counters(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.state.tools.counters)

    def series(self) -> dict[str, list[int]]:
        return {"tool_ms": list(self.state.tools.elapsed_ms)}
