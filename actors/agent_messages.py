"""The agent's vocabulary: tools on the session, function calls and their outputs, leaving the call
(hang-up / transfer), leads, silence and time limits, keypad digits.

Groups:
  settings — what a call may do (built by the gateway from the business row + config.toml)
  ingress  — the model's function call (decoded at the edge), a tool's result from the gateway
  egress   — run a tool, save a lead, record a tool call, leave the call (Twilio REST / action URL)
  wire     — the client events the tools add (session.tools entries, function_call_output items)
Class names are unique across actors/*messages.py (thespian routes by class name).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

# ----------------------------------------------------------------------------- settings

BUILTIN_TOOLS = ("end_call", "transfer_to_human", "save_lead")


class ToolDef(Struct, frozen=True):
    """One function tool of a call: a built-in (decided in the bridge) or the business's HTTP tool
    (run by the gateway). `parameters` is a JSON schema, checked at import."""

    name: str
    description: str
    parameters: dict[str, Any]
    kind: Literal["builtin", "http"] = "builtin"
    timeout_s: float = 5.0
    read_only: bool = False  # changes nothing: may start before the caller's turn is confirmed


class ConversationSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """Silence and time limits, keypad input, tool pacing (config.toml [conversation], per business
    [business.conversation])."""

    reprompt_after_s: Annotated[float, Meta(ge=2.0, le=120.0)] = 8.0  # caller silent this long after the AI finished
    max_reprompts: Annotated[int, Meta(ge=0, le=10)] = 2  # then a goodbye and the call ends
    max_call_s: Annotated[float, Meta(ge=30.0, le=14400.0)] = 1200.0  # then a polite goodbye and the call ends
    dtmf: bool = True  # keypad digits reach the model as "[the caller pressed …]"
    dtmf_gap_s: Annotated[float, Meta(ge=0.2, le=10.0)] = 1.2  # digits pressed closer than this are one entry
    slow_tool_s: Annotated[float, Meta(ge=0.3, le=30.0)] = 1.5  # a tool slower than this gets a holding line
    tool_timeout_s: Annotated[float, Meta(ge=0.5, le=60.0)] = 5.0  # default for tools that set none
    leave_timeout_s: Annotated[float, Meta(ge=2.0, le=120.0)] = 20.0  # goodbye never finished playing: leave anyway


class Directives(Struct, frozen=True):
    """Short response-level instructions in the call's language (prompts/<language>/directives.toml)."""

    reprompt: str = "The caller has been silent. Ask briefly whether they are still there."
    goodbye_silence: str = "The caller is not answering. Say a short goodbye."
    goodbye_time: str = "The call has reached its time limit. Say a short, polite goodbye."
    goodbye: str = "Say a short goodbye."
    handoff: str = "Tell the caller in one short sentence that you are transferring them now."
    holding: str = "Tell the caller in a few words that you are checking. Do not answer yet."
    keypad: str = "[the caller pressed: $digits]"


class AgentSettings(Struct, frozen=True):
    tools: tuple[ToolDef, ...] = ()
    conversation: ConversationSettings = ConversationSettings()
    directives: Directives = Directives()
    transfer_number: str = ""  # empty: transfer_to_human answers that no human line is configured


# ----------------------------------------------------------------------------- ingress


class RtFunctionCall(Struct, frozen=True):
    """`response.function_call_arguments.done`: the model calls a tool (arguments still JSON text)."""

    response_id: str
    item_id: str
    tool_call_id: str  # the wire's call_id
    name: str
    arguments: str
    at: float


class ToolDone(Struct, frozen=True):
    """Gateway → Bridge: an HTTP tool's answer (or its failure) for a function call."""

    tool_call_id: str
    ok: bool
    output: str  # JSON text for the model
    status: str  # ok | error | timeout | refused
    elapsed_ms: int
    at: float


# ----------------------------------------------------------------------------- egress


class RunTool(Struct, frozen=True):
    call_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    timeout_s: float


class SaveLead(Struct, frozen=True):
    call_id: str
    tool_call_id: str
    fields: dict[str, Any]


class ToolCallRecord(Struct, frozen=True):
    """For the call record and metrics: one finished function call."""

    call_id: str
    tool_call_id: str
    name: str
    arguments: str
    output: str
    status: str  # ok | error | invalid | timeout | refused | unknown
    elapsed_ms: int


class LeaveCall(Struct, frozen=True):
    """Bridge → gateway: the AI has finished speaking; hang up or transfer the call now."""

    call_id: str
    kind: Literal["hangup", "transfer"]
    end_reason: str  # agent_hangup | transferred | silence_timeout | max_duration
    reason: str  # the model's own words, or the limit
    summary: str = ""  # transfer: for the human and the record
    number: str = ""


# ----------------------------------------------------------------------------- wire: client events


class RtFunctionTool(Struct, frozen=True):
    name: str
    description: str
    parameters: dict[str, Any]
    type: str = "function"


class RtFunctionOutput(Struct, frozen=True):
    call_id: str
    output: str
    type: str = "function_call_output"


class RtOutputCreate(Struct, frozen=True, tag="conversation.item.create", tag_field="type"):
    """`conversation.item.create` with a function_call_output item (the message-item form is RtItemCreate)."""

    item: RtFunctionOutput
