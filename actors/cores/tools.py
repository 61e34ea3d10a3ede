"""ToolDesk — the model's function calls for one call, decided without I/O.

Theory of operation: `response.function_call_arguments.done` reaches the bridge as RtFunctionCall.
The desk parses the arguments and validates them against the tool's JSON schema; a call it cannot
honour (unknown tool, arguments that are not a JSON object or break the schema) is answered at once
with an error output the model can recover from — never raised. Built-ins are decisions made here:
`end_call` and `transfer_to_human` become a Departure request (the bridge lets the AI finish speaking,
then leaves), `save_lead` becomes a SaveLead for the gateway. The business's HTTP tools become
RunTool for the gateway, which answers ToolDone; the desk keeps them RUNNING with a deadline
(timeout + a margin: the gateway enforces the timeout itself, the desk only backstops it) and says
when one has been slow long enough to deserve a holding line. Every finished call produces one
ToolCallRecord. A call id seen before is ignored (the event can come twice around a cancel).
States per call: RUNNING → DONE (output sent). Computes first, changes state last.
"""
from __future__ import annotations

import json
from typing import Any

import msgspec
from jsonschema import Draft202012Validator

from actors.agent_messages import (
    AgentSettings,
    LeaveCall,
    RtFunctionCall,
    RtFunctionOutput,
    RtOutputCreate,
    RunTool,
    SaveLead,
    ToolCallRecord,
    ToolDef,
    ToolDone,
)

BACKSTOP_MARGIN_S = 1.0
RECORD_CHARS = 4000
SEEN_KEPT = 64


class RunningTool(msgspec.Struct):
    tool_call_id: str
    name: str
    arguments: str
    started_at: float
    deadline: float
    holding: bool = False


class ToolCounters(msgspec.Struct):
    tool_calls: int = 0
    tool_ok: int = 0
    tool_errors: int = 0
    tool_invalid_arguments: int = 0
    tool_unknown: int = 0
    tool_timeouts: int = 0
    tool_late_results: int = 0
    tool_holding_lines: int = 0
    leads_saved: int = 0


class ToolState(msgspec.Struct):
    running: dict[str, RunningTool] = msgspec.field(default_factory=dict)
    seen: list[str] = msgspec.field(default_factory=list)
    elapsed_ms: list[int] = msgspec.field(default_factory=list)
    counters: ToolCounters = msgspec.field(default_factory=ToolCounters)


def output_event(tool_call_id: str, payload: dict[str, Any]) -> RtOutputCreate:
    return RtOutputCreate(RtFunctionOutput(tool_call_id, json.dumps(payload, ensure_ascii=False)))


class ToolDesk:
    def __init__(self, state: ToolState, agent: AgentSettings, call_id: str) -> None:
        self.state = state
        self.agent = agent
        self.call_id = call_id
        self.tools: dict[str, ToolDef] = {tool.name: tool for tool in agent.tools}
        self._validators: dict[str, Draft202012Validator] = {}

    @property
    def busy(self) -> bool:
        return bool(self.state.running)

    def _validator(self, tool: ToolDef) -> Draft202012Validator:
        validator = self._validators.get(tool.name)
        if validator is None:
            validator = self._validators[tool.name] = Draft202012Validator(tool.parameters)
        return validator

    def _record(self, msg: RtFunctionCall | RunningTool, output: str, status: str, elapsed_ms: int) -> ToolCallRecord:
        return ToolCallRecord(self.call_id, msg.tool_call_id, msg.name, msg.arguments[:RECORD_CHARS],
                              output[:RECORD_CHARS], status, elapsed_ms)

    def _answer(self, msg: RtFunctionCall, payload: dict[str, Any], status: str) -> list[object]:
        event = output_event(msg.tool_call_id, payload)
        return [event, self._record(msg, event.item.output, status, 0)]

    def called(self, msg: RtFunctionCall, now: float) -> tuple[list[object], LeaveCall | None]:
        """Client events (outputs) and egress for one function call, and a departure if it asks for one."""
        state = self.state
        if msg.tool_call_id in state.seen or msg.tool_call_id in state.running:
            return [], None
        tool = self.tools.get(msg.name)
        out: list[object]
        leave: LeaveCall | None = None
        status = "ok"
        if tool is None:
            status = "unknown"
            out = self._answer(msg, {"ok": False, "error": f"there is no tool named {msg.name!r}"}, status)
        else:
            try:
                arguments = json.loads(msg.arguments or "{}")
            except ValueError:
                arguments = None
            problem = "arguments are not a JSON object" if not isinstance(arguments, dict) else ""
            if not problem:
                errors = sorted(self._validator(tool).iter_errors(arguments), key=lambda e: list(e.path))
                if errors:
                    where = "/".join(str(p) for p in errors[0].path) or "arguments"
                    problem = f"{where}: {errors[0].message}"[:300]
            if problem:
                status = "invalid"
                out = self._answer(msg, {"ok": False, "error": "invalid arguments", "detail": problem,
                                         "hint": "call the tool again with arguments that match its parameters"}, status)
            else:
                assert isinstance(arguments, dict)
                out, leave, status = self._run(tool, msg, arguments, now)
        # state last
        state.counters.tool_calls += 1
        if status == "running":
            assert tool is not None
            state.running[msg.tool_call_id] = RunningTool(msg.tool_call_id, msg.name, msg.arguments, now,
                                                      now + tool.timeout_s + BACKSTOP_MARGIN_S)
        else:
            self._seen(msg.tool_call_id)
            self._count(status)
        if any(isinstance(a, SaveLead) for a in out):
            state.counters.leads_saved += 1
        return out, leave

    def _run(self, tool: ToolDef, msg: RtFunctionCall, arguments: dict[str, Any],
             now: float) -> tuple[list[object], LeaveCall | None, str]:
        if tool.kind == "http":
            return [RunTool(self.call_id, msg.tool_call_id, tool.name, arguments, tool.timeout_s)], None, "running"
        if tool.name == "end_call":
            reason = str(arguments.get("reason", ""))
            leave = LeaveCall(self.call_id, "hangup", "agent_hangup", reason)
            return self._answer(msg, {"ok": True, "result": "the call ends after your goodbye has played"}, "ok"), leave, "ok"
        if tool.name == "transfer_to_human":
            number = self.agent.transfer_number
            if not number:
                return self._answer(msg, {"ok": False, "error": "no human line is configured for this business; "
                                          "offer to take a message or a call back instead"}, "error"), None, "error"
            leave = LeaveCall(self.call_id, "transfer", "transferred", str(arguments.get("reason", "")),
                              str(arguments.get("summary", "")), number)
            return self._answer(msg, {"ok": True, "result": "the call is transferred after your handoff sentence"},
                                "ok"), leave, "ok"
        if tool.name == "save_lead":
            fields = {k: v for k, v in arguments.items() if v not in ("", None)}
            return [SaveLead(self.call_id, msg.tool_call_id, fields),
                    *self._answer(msg, {"ok": True, "result": "saved"}, "ok")], None, "ok"
        return self._answer(msg, {"ok": False, "error": f"the tool {tool.name!r} is not available"}, "error"), None, "error"

    def done(self, msg: ToolDone, now: float) -> list[object]:
        running = self.state.running.get(msg.tool_call_id)
        if running is None:
            self.state.counters.tool_late_results += 1
            return []
        event = RtOutputCreate(RtFunctionOutput(msg.tool_call_id, msg.output))
        out: list[object] = [event, self._record(running, msg.output, msg.status, msg.elapsed_ms)]
        self._finish(msg.tool_call_id, msg.status, msg.elapsed_ms)
        return out

    def cancel(self, tool_call_id: str) -> None:
        """A running call whose answer was discarded: its result, if it ever comes, is ignored."""
        if self.state.running.pop(tool_call_id, None) is not None:
            self._seen(tool_call_id)

    def tick(self, now: float) -> list[object]:
        """Backstop: a running tool past its deadline is answered with a timeout."""
        out: list[object] = []
        for running in [r for r in self.state.running.values() if now >= r.deadline]:
            elapsed = int((now - running.started_at) * 1000)
            event = output_event(running.tool_call_id, {"ok": False, "error": "the tool did not answer in time"})
            out += [event, self._record(running, event.item.output, "timeout", elapsed)]
            self._finish(running.tool_call_id, "timeout", elapsed)
        return out

    def holding_due(self, now: float) -> bool:
        slow = self.agent.conversation.slow_tool_s
        return any(not r.holding and now - r.started_at >= slow for r in self.state.running.values())

    def holding_sent(self) -> None:
        for running in self.state.running.values():
            running.holding = True
        self.state.counters.tool_holding_lines += 1

    def _finish(self, tool_call_id: str, status: str, elapsed_ms: int) -> None:
        self.state.running.pop(tool_call_id, None)
        self._seen(tool_call_id)
        self.state.elapsed_ms.append(elapsed_ms)
        del self.state.elapsed_ms[:-64]
        self._count(status)

    def _count(self, status: str) -> None:
        """One counter per finished call, by its status (anything unnamed is an error)."""
        counters = self.state.counters
        if status == "ok":
            counters.tool_ok += 1
        elif status == "invalid":
            counters.tool_invalid_arguments += 1
        elif status == "unknown":
            counters.tool_unknown += 1
        elif status == "timeout":
            counters.tool_timeouts += 1
        else:
            counters.tool_errors += 1

    def _seen(self, tool_call_id: str) -> None:
        self.state.seen.append(tool_call_id)
        del self.state.seen[:-SEEN_KEPT]

