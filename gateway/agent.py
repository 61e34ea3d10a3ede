"""From a business row to what its agent may do on a call: the tools on the session (built-ins by
permission, the business's HTTP tools), the lead form, the transfer line, silence/time limits, and the
checks of tenant URLs at import.

Built-ins: `end_call` always; `transfer_to_human` when the business permits it (with no number
configured the tool tells the model so); `save_lead` when it may collect lead details, its parameters
made from the business's `lead_fields`. Hang-up and transfer leave the call the way the fallback does
(gateway/leaving.py): Twilio's REST API when the worker has credentials, else the stream's `<Connect
action>` URL (the stream is closed and Twilio fetches the TwiML from /stream-ended).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from actors.agent_messages import AgentSettings, ConversationSettings, Directives, ToolDef
from gateway.config import ToolPolicy
from gateway.config.overrides import merged
from gateway.fallback import FallbackSettings
from gateway.http_tools import url_problem
from prompts.builder import load_directives
from storage.businesses import BusinessSpec, BusinessView, HttpToolSpec, LeadFieldSpec, TransferSpec, WebhookSpec
from storage.callbacks import CALLBACK_FIELD
from storage.outbound import outbound_spec

DEFAULT_LEAD_FIELDS = (
    LeadFieldSpec("name", "The caller's full name", True),
    LeadFieldSpec("phone", "A phone number to call back, digits only, as the caller said it", True),
    LeadFieldSpec("need", "What the caller needs, in a short sentence", False),
)

END_CALL = ToolDef("end_call", "End the phone call. Call it only after the conversation is really over and you have "
                   "said goodbye (or the caller asked to hang up); the line is cut after your last words play.",
                   {"type": "object", "properties": {"reason": {"type": "string", "description": "why the call ends"}},
                    "required": ["reason"], "additionalProperties": False})
TRANSFER = ToolDef("transfer_to_human", "Transfer the caller to a human representative of the business, when they ask "
                   "for a person or you cannot help. Say one short handoff sentence; the call is transferred after it.",
                   {"type": "object", "properties": {
                       "reason": {"type": "string", "description": "why the caller needs a person"},
                       "summary": {"type": "string", "description": "a short summary for the representative: who "
                                   "is calling, what they need, what was already said"}},
                    "required": ["reason", "summary"], "additionalProperties": False})


class AgentSpec(msgspec.Struct, frozen=True):
    """The business row's `agent` column, typed."""

    conversation: dict[str, Any] = {}
    transfer: TransferSpec = TransferSpec()
    webhook: WebhookSpec | None = None
    tools: list[HttpToolSpec] = []
    lead_fields: list[LeadFieldSpec] = []


def agent_spec(view: BusinessView) -> AgentSpec:
    return msgspec.convert(view.agent or {}, AgentSpec)


def save_lead_tool(fields: tuple[LeadFieldSpec, ...] | list[LeadFieldSpec], callback_now: datetime | None = None) -> ToolDef:
    """`callback_now`: the business's local time at call start, when it calls leads back ([business.outbound]
    callbacks): the tool then asks when the caller wants the call (the model learns today's date from it)."""
    properties: dict[str, Any] = {f.name: {"type": f.type, "description": f.description} for f in fields}
    if callback_now is not None:
        properties[CALLBACK_FIELD] = {"type": "string", "description": (
            "Only if the caller asked to be called back at a time: when, as local date and time YYYY-MM-DDTHH:MM. "
            f"It is now {callback_now:%A %Y-%m-%d %H:%M} local time. Omit when they gave no time (a person calls back "
            "within working hours).")}
    required = [f.name for f in fields if f.required]
    return ToolDef("save_lead", "Save the caller's details as a lead for the business once you have collected them "
                   "(ask for anything required that is missing first). Call it once per caller.",
                   {"type": "object", "properties": properties, "required": required, "additionalProperties": False})


def transfer_number(view: BusinessView, spec: AgentSpec) -> str:
    """[business.transfer] number, else the fallback's transfer line."""
    if spec.transfer.number:
        return spec.transfer.number
    fallback = msgspec.convert(view.overrides.get("fallback", {}), FallbackSettings)
    return fallback.transfer_number


def tools_for(view: BusinessView, spec: AgentSpec) -> tuple[ToolDef, ...]:
    permissions = view.permissions
    tools = [END_CALL]
    if permissions.get("transfer_to_human"):
        tools.append(TRANSFER)
    if permissions.get("collect_lead_details"):
        outbound = outbound_spec(view.agent or {})
        callback_now = datetime.now(ZoneInfo(outbound.timezone)) if outbound.callbacks else None
        tools.append(save_lead_tool(spec.lead_fields or list(DEFAULT_LEAD_FIELDS), callback_now))
    tools += [ToolDef(t.name, t.description, dict(t.parameters), "http", t.timeout_s, t.read_only) for t in spec.tools]
    return tuple(tools)


def agent_for(base: ConversationSettings, view: BusinessView, spec: AgentSpec) -> AgentSettings:
    directives = msgspec.convert(load_directives(view.language), Directives)
    return AgentSettings(tools_for(view, spec), merged(base, spec.conversation), directives, transfer_number(view, spec))


def check_agent(spec: BusinessSpec, policy: ToolPolicy, resolve: bool = True) -> list[str]:
    """Import-time checks that need the operator's policy: conversation overrides and every tenant URL."""
    problems = []
    try:
        msgspec.convert(spec.conversation, ConversationSettings)
    except msgspec.ValidationError as exc:
        problems.append(f"business.conversation: {exc}")
    for i, tool in enumerate(spec.tools):
        problem = url_problem(tool.url, policy, resolve)
        if problem:
            problems.append(f"business.tools[{i}].url: {problem}")
    if spec.webhook is not None:
        problem = url_problem(spec.webhook.url, policy, resolve)
        if problem:
            problems.append(f"business.webhook.url: {problem}")
    return problems


def describe_tools(view: BusinessView) -> str:
    """For `kolbridge prompt show`: the tools a call of this business gets (no URLs' secrets)."""
    lines = []
    spec = agent_spec(view)
    tools = tools_for(view, spec)
    for tool in tools:
        params = ", ".join(f"{name}{'*' if name in tool.parameters.get('required', []) else ''}"
                           for name in tool.parameters.get("properties", {}))
        where = "built-in" if tool.kind == "builtin" else f"POST {next(t.url for t in spec.tools if t.name == tool.name)}" \
            f" (timeout {tool.timeout_s:g} s)"
        lines.append(f"  {tool.name}({params}) — {where}")
    if "transfer_to_human" in {t.name for t in tools}:
        lines.append(f"  transfer line: {transfer_number(view, spec) or '(none: the tool tells the model so)'}")
    lines.append(f"  webhook: {spec.webhook.url if spec.webhook else '(none)'}")
    return "\n".join(lines)
