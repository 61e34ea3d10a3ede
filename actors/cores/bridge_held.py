"""The function calls of a held preemptive answer: kept until its verdict, made or dropped with it.

Theory of operation: a preemptive answer (preempt.py) is generated before the caller's turn is
classified and held until it is. Its function calls are held with it: made when it is released,
dropped — their items deleted, so the model never sees them — when the turn was a filler. A business
tool declared `read_only` may start at once (speculatively); only its result waits for the verdict,
and a speculative run whose answer is dropped is cancelled (its late result is ignored).

States: EMPTY (no held answer has called anything) → HOLDING (`response_id` names the held answer)
→ EMPTY when `take` hands everything over at the verdict.
"""
from __future__ import annotations

import msgspec

from actors.agent_messages import RtFunctionCall, RtOutputCreate, ToolCallRecord


class HeldCallsState(msgspec.Struct):
    response_id: str = ""  # the held preemptive answer whose calls wait ("" = EMPTY)
    calls: list[RtFunctionCall] = msgspec.field(default_factory=list)
    items: list[str] = msgspec.field(default_factory=list)  # function_call items of speculative or refused calls
    speculative: list[str] = msgspec.field(default_factory=list)  # read-only tools already running
    outputs: list[RtOutputCreate] = msgspec.field(default_factory=list)  # results that wait for the release
    records: list[ToolCallRecord] = msgspec.field(default_factory=list)


class HeldCalls:
    def __init__(self, state: HeldCallsState) -> None:
        self.state = state

    @property
    def holding(self) -> bool:
        return bool(self.state.response_id)

    @property
    def response_id(self) -> str:
        return self.state.response_id

    def is_speculative(self, tool_call_id: str) -> bool:
        return tool_call_id in self.state.speculative

    def hold(self, call: RtFunctionCall) -> None:
        """A call that waits for the verdict to be made."""
        self.state.response_id = call.response_id
        self.state.calls.append(call)

    def started(self, call: RtFunctionCall) -> None:
        """A read-only call already running: its item goes if the answer is dropped."""
        self.state.response_id = call.response_id
        self.state.speculative.append(call.tool_call_id)
        self.state.items.append(call.item_id)

    def refused(self, call: RtFunctionCall, events: list[object]) -> None:
        """A call answered at once (bad arguments): the answer waits with the held answer."""
        self.state.response_id = call.response_id
        self.stash(events)
        self.state.items.append(call.item_id)

    def stash(self, events: list[object]) -> None:
        """Results (and their records) that wait for the release."""
        self.state.outputs.extend(e for e in events if isinstance(e, RtOutputCreate))
        self.state.records.extend(e for e in events if isinstance(e, ToolCallRecord))

    def take(self) -> HeldCallsState:
        """Everything held, handed over at the verdict; nothing is held after."""
        taken = msgspec.structs.replace(self.state)
        held = self.state
        held.response_id, held.calls, held.items, held.speculative, held.outputs, held.records = "", [], [], [], [], []
        return taken
