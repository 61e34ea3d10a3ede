"""What a call's actor tree hands to the gateway: the outbound commands, declared once.

A child (and the supervisor) sends these to the call's egress address, the gateway's external
requester; the gateway's engine drains them after each `tell` and hands each to the call's sink.
`CallSink` is the sink's side (one method per command, plus the end of the call); `TO_SINK` says
which method takes which message — typed against `CallSink`, so a route to a method the sink lacks
does not type-check. The shell's `EGRESS` (what a child sends straight to the gateway) and the
engine's dispatch both come from `TO_SINK`; `TickWanted` and `Lanes` are for the engine itself.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from actors.agent_messages import LeaveCall, RunTool, SaveLead, ToolCallRecord
from actors.lane_messages import Lanes, TickWanted
from actors.language_messages import LanguageSwitched
from actors.lifecycle_messages import ChildRestarted
from actors.link_messages import OpenRealtime, RealtimeGaveUp
from actors.messages import CallSummary, Utterance
from actors.wire_messages import RealtimeOutEvent, ToRealtime, ToTwilio, TwilioOutEvent


class CallSink(Protocol):
    """The gateway's side of one call (gateway/call.py's CallIO)."""

    def to_twilio(self, events: tuple[TwilioOutEvent, ...]) -> None: ...
    def to_realtime(self, event: RealtimeOutEvent) -> None: ...
    def utterance(self, event: Utterance) -> None: ...
    def child_restarted(self, event: ChildRestarted) -> None: ...
    def open_realtime(self, command: OpenRealtime) -> None: ...
    def realtime_unavailable(self, command: RealtimeGaveUp) -> None: ...
    def run_tool(self, command: RunTool) -> None: ...
    def save_lead(self, command: SaveLead) -> None: ...
    def tool_record(self, record: ToolCallRecord) -> None: ...
    def language_switched(self, event: LanguageSwitched) -> None: ...
    def leave_call(self, command: LeaveCall) -> None: ...
    def call_ended(self, summary: CallSummary) -> None: ...


# every outbound command: its message type, and how the call's sink takes it
TO_SINK: dict[type, Callable[[CallSink, Any], None]] = {
    ToTwilio: lambda sink, out: sink.to_twilio(out.events),
    ToRealtime: lambda sink, out: sink.to_realtime(out.event),
    Utterance: lambda sink, out: sink.utterance(out),
    ChildRestarted: lambda sink, out: sink.child_restarted(out),
    OpenRealtime: lambda sink, out: sink.open_realtime(out),
    RealtimeGaveUp: lambda sink, out: sink.realtime_unavailable(out),
    RunTool: lambda sink, out: sink.run_tool(out),
    SaveLead: lambda sink, out: sink.save_lead(out),
    ToolCallRecord: lambda sink, out: sink.tool_record(out),
    LeaveCall: lambda sink, out: sink.leave_call(out),
    LanguageSwitched: lambda sink, out: sink.language_switched(out),
}

# what an actor sends straight to the egress address (the call's summary goes there too, handled apart)
EGRESS: tuple[type, ...] = (*TO_SINK, TickWanted, Lanes)
