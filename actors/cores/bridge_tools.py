"""The RealtimeBridge's function calls around a held preemptive answer and a lost link. Mixed into
RealtimeBridgeCore through BridgeAgentMixin.

A preemptive answer (preempt.py) is generated before the caller's turn is classified and held until
it is. Its function calls are held with it: made when it is released, dropped — their items deleted,
so the model never sees them — when the turn was a filler. A business tool declared `read_only` may
start at once (speculatively); only its result waits for the verdict. Tool outputs go to the session
that made the call; a session restored since never saw it and gets the result as a system note, and
every result joins the history a restored session is re-seeded with.
"""
from __future__ import annotations

from actors.agent_messages import RtFunctionCall, RtOutputCreate, RunTool, ToolCallRecord
from actors.cores.bridge_state import BridgeState
from actors.cores.preempt import Preemption, PreemptPhase
from actors.cores.session import SessionLink
from actors.cores.tools import ToolDesk
from actors.lifecycle_messages import LogLine
from actors.link_messages import RtItemCreate, RtMessageItem, RtTextContent
from actors.wire_messages import RtItemDelete, ToRealtime


class BridgeToolsMixin:
    s: BridgeState
    desk: ToolDesk
    preempt: Preemption
    link: SessionLink

    def _out(self, event: object) -> ToRealtime:
        raise NotImplementedError

    def _log_agent(self, event: str, **fields: object) -> LogLine:
        raise NotImplementedError

    def _agent_event(self, msg: object, now: float) -> list[object]:
        raise NotImplementedError

    def _tool_answer(self) -> list[object]:
        raise NotImplementedError

    def _hold_call(self, msg: RtFunctionCall, now: float) -> list[object]:
        """A preemptive answer's call waits for the transcript's verdict — a filler's answer must not act.
        A read-only business tool starts at once (speculatively); only its result waits."""
        s = self.s
        s.held_response = msg.response_id
        tool = self.desk.tools.get(msg.name)
        if tool is not None and tool.kind == "http" and tool.read_only:
            events, _ = self.desk.called(msg, now)
            runs = [e for e in events if isinstance(e, RunTool)]
            if runs:
                s.speculative.append(msg.tool_call_id)
                s.held_items.append(msg.item_id)
                return [*runs, self._log_agent("TOOL_CALL_SPECULATIVE", name=msg.name, tool_call_id=msg.tool_call_id)]
            self._stash(events)  # refused at once (bad arguments): the error waits with the answer (bad arguments): the error waits with the answer
            s.held_items.append(msg.item_id)
            return []
        s.held_calls.append(msg)
        return [self._log_agent("TOOL_CALL_HELD", name=msg.name, tool_call_id=msg.tool_call_id)]

    def _outputs(self, events: list[object]) -> list[object]:
        """Function outputs as client events — to the session that made the call; a session restored since
        never saw it, so it gets the result as a system note instead (a function_call_output would be refused).
        Every result also joins the history a restored session is re-seeded with (as a system note)."""
        out: list[object] = []
        generation = self.link.s.generation
        for event in events:
            if isinstance(event, ToolCallRecord):
                self.link.turn_text(f"tool:{event.tool_call_id}", "system",
                                    f"[tool {event.name} ({event.status}): {event.output[:400]}]")
            if not isinstance(event, RtOutputCreate):
                out.append(event)
                continue
            made_on = self.s.call_sessions.pop(event.item.call_id, generation)
            if made_on == generation:
                out.append(self._out(event))
            else:
                note = f"[result of the tool call you made before the line dropped: {event.item.output[:400]}]"
                out.append(self._out(RtItemCreate(RtMessageItem("system", (RtTextContent("input_text", note),)))))
        return out

    def _stash(self, events: list[object]) -> None:
        self.s.held_outputs.extend(e for e in events if isinstance(e, RtOutputCreate))
        self.s.held_records.extend(e for e in events if isinstance(e, ToolCallRecord))

    def _held_calls(self, released: bool, now: float) -> list[object]:
        """Calls of a held preemptive answer: made (and held results sent) once it is released; dropped —
        with their items, so the model never sees them — when it was discarded."""
        s = self.s
        if not s.held_response:
            return []
        held = self.preempt.s
        if not released and held.phase in (PreemptPhase.HELD, PreemptPhase.REQUESTED) and held.response_id == s.held_response:
            return []
        calls, speculative, items = s.held_calls, s.speculative, s.held_items
        outputs, records = s.held_outputs, s.held_records
        s.held_calls, s.speculative, s.held_items, s.held_outputs, s.held_records = [], [], [], [], []
        s.held_response = ""
        if not released:
            for tool_call_id in speculative:
                self.desk.cancel(tool_call_id)
            out: list[object] = [self._out(RtItemDelete(item)) for item in [*items, *(c.item_id for c in calls)]]
            return out + [self._log_agent("TOOL_CALL_DISCARDED", count=len(calls) + len(items),
                                          reason="its answer was discarded (the turn was a filler)")]
        out = self._outputs([*outputs, *records])
        for call in calls:
            out += self._agent_event(call, now)
        return out + self._tool_answer()
