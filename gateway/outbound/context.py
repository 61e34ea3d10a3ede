"""What an answered outbound call carries to its stream, and what the agent is told on it.

/voice puts the call's outbound facts into the stream's `<Parameter>`s (`stream_extra`): the direction,
who answered, the lead and its details (bounded JSON), the purpose — all signed into `route_sig`
(gateway/prewarm.py), so a stream cannot claim them unless a Twilio-signed /voice gave them. At the
stream's start `outbound_context` reads them back (a wire input: a malformed lead is dropped, counted
in the log) and `outbound_prompt` adds the outbound layer (prompts/<language>/outbound.txt: its first
part joins the instructions, the part after a `---` line replaces the greeting instruction: on an
outbound call the agent opens by saying who it is and why it calls).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from string import Template
from typing import Any

import msgspec
import structlog

from prompts.builder import PROMPTS_DIR, BuiltPrompt, short_hash

log = structlog.get_logger("kolbridge.outbound")
LEAD_JSON_MAX = 600  # the lead's details as a stream parameter
NO_PURPOSE = {"he": "לחזור אליו/ה בעקבות הפנייה שלו/ה", "en": "to follow up on their inquiry"}
NOTHING_KNOWN = {"he": "אין פרטים נוספים", "en": "nothing more"}


class OutboundContext(msgspec.Struct, frozen=True):
    callee: str  # the number we called
    purpose: str = ""
    lead_id: str = ""
    lead: dict[str, Any] = {}  # the lead's fields, as saved
    answered_by: str = ""  # Twilio's AnsweredBy (human, unknown, …)


def lead_json(fields: Mapping[str, Any]) -> str:
    """The lead's fields as compact JSON within LEAD_JSON_MAX characters (the longest values cut first)."""
    data = {str(k): (v if isinstance(v, (int, float, bool)) else str(v)) for k, v in fields.items()}
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    while len(text) > LEAD_JSON_MAX and data:
        longest = max(data, key=lambda k: len(str(data[k])))
        value = str(data[longest])
        data[longest] = value[: max(0, len(value) - (len(text) - LEAD_JSON_MAX) - 1)] + "…" if len(value) > 8 else ""
        if not data[longest]:
            del data[longest]
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text


def stream_extra(context: OutboundContext) -> dict[str, str]:
    """The outbound parameters of the call's `<Stream>` (signed with the others by `stream_twiml`)."""
    return {"direction": "outbound", "answered_by": context.answered_by, "lead_id": context.lead_id,
            "purpose": context.purpose, "lead": lead_json(context.lead)}


def outbound_context(custom: Mapping[str, str]) -> OutboundContext | None:
    """The outbound facts of a stream's start (None for an inbound call)."""
    if custom.get("direction") != "outbound":
        return None
    lead: dict[str, Any] = {}
    if custom.get("lead"):
        try:
            decoded = json.loads(custom["lead"])
            lead = decoded if isinstance(decoded, dict) else {}
        except ValueError:
            log.warning("OUTBOUND_LEAD_PARAMETER_INVALID", call_sid=custom.get("call_sid", ""))
    return OutboundContext(custom.get("to", ""), custom.get("purpose", ""), custom.get("lead_id", ""), lead,
                           custom.get("answered_by", ""))


def _layer_texts(language: str) -> tuple[str, str]:
    path = PROMPTS_DIR / language / "outbound.txt"
    if not path.exists():
        path = PROMPTS_DIR / "en" / "outbound.txt"
    layer, _, greeting = path.read_text(encoding="utf-8").partition("\n---\n")
    return layer.strip(), greeting.strip()


def outbound_prompt(prompt: BuiltPrompt, context: OutboundContext, business: str, language: str) -> BuiltPrompt:
    """The call's prompt with the outbound layer after the others and the outbound opening as its greeting."""
    known = "; ".join(f"{k}: {v}" for k, v in context.lead.items() if str(v).strip())
    values = {"callee": context.callee or "?", "business": business,
              "purpose": context.purpose.strip() or NO_PURPOSE.get(language, NO_PURPOSE["en"]),
              "lead": known or NOTHING_KNOWN.get(language, NOTHING_KNOWN["en"])}
    layer, greeting = (Template(text).safe_substitute(values) for text in _layer_texts(language))
    return msgspec.structs.replace(prompt, instructions=f"{prompt.instructions}\n\n{layer}", greeting_instructions=greeting,
                                   layer_hashes={**prompt.layer_hashes, "outbound": short_hash(layer)})
