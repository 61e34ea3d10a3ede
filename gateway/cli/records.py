"""CLI views of what the database holds: calls, their utterances, businesses, the prompt a call gets."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.agent import describe_tools
from gateway.config.overrides import facts_for
from prompts.builder import build_prompt
from storage.agent_records import call_actions, list_leads
from storage.businesses import BusinessView, get_business
from storage.calls import get_call, get_utterances, list_calls
from storage.models import CallRecord

SUMMARY = ("stt_utterances", "filler_only", "frames_in", "frames_dropped", "barge_in_events", "underruns")


def _call_dict(row: CallRecord) -> dict[str, Any]:
    return {"call_sid": row.call_sid, "stream_sid": row.stream_sid, "business_id": row.business_id,
            "from": row.from_number, "to": row.to_number,
            "started_at": row.started_at.isoformat() if row.started_at else None,
            "ended_at": row.ended_at.isoformat() if row.ended_at else None, "end_reason": row.end_reason,
            "prompt_hashes": row.prompt_hashes, "metrics": row.metrics, "series": row.series,
            "restarts": row.restarts, "fallback": row.fallback, "transfer_summary": row.transfer_summary,
            "caller_language": row.caller_language, "language_switches": list(row.language_switches or []),
            "direction": row.direction, "answered_by": row.answered_by, "lead_id": row.lead_id, "purpose": row.purpose,
            "segments": list(row.segments or []), "transfer": dict(row.transfer or {})}


def handoff_lines(row: CallRecord) -> list[str]:
    """The transfer's attempts and the segments with the agent: "transfer warm → +972…: #1 busy back_to_agent"."""
    transfer = dict(row.transfer or {})
    out = []
    if transfer:
        attempts = [f"#{n} {a.get('status', '')} {a.get('outcome', '')}".rstrip()
                    + (f" (answered {a['answered_at'][11:19]})" if a.get("answered_at") else "")
                    for n, a in sorted((transfer.get("attempts") or {}).items())]
        out.append(f"transfer {transfer.get('mode', '')} → {transfer.get('number', '')}: " + "; ".join(attempts))
    segments = list(row.segments or [])
    if len(segments) > 1:
        out.append("segments: " + "; ".join(f"#{s['n']} {str(s.get('started_at', ''))[11:19]}–{str(s.get('ended_at', ''))[11:19]}"
                                            f" {s.get('end_reason', '')}" + (f" ({s['note']})" if s.get("note") else "")
                                            for s in segments))
    return out


def languages_line(row: CallRecord) -> str:
    """The caller's languages, with the moment of each switch: "he → ar at 12.3 s (7 Arabic words: «…»)"."""
    switches = list(row.language_switches or [])
    first = str(switches[0]["from"]) if switches else row.caller_language or "?"
    steps = [f"→ {s['to']} at {int(s['at_ms']) / 1000:.1f} s ({s['evidence']})" for s in switches]
    return "caller language: " + " ".join([first, *steps])


async def calls_history(sessions: async_sessionmaker[AsyncSession], business: str | None, as_json: bool) -> str:
    rows = await list_calls(sessions, business)
    if as_json:
        return json.dumps([_call_dict(r) for r in rows], ensure_ascii=False, indent=2)
    lines = [f"{r.call_sid}\t{r.business_id}\t{r.direction or 'inbound'}\t{r.started_at:%Y-%m-%d %H:%M:%S}\t{r.end_reason or 'live'}\t"
             + " ".join(f"{k}={(r.metrics or {}).get(k, 0)}" for k in SUMMARY) for r in rows]
    return "\n".join(lines)


async def call_show(sessions: async_sessionmaker[AsyncSession], call_sid: str, as_json: bool) -> str | None:
    row = await get_call(sessions, call_sid)
    if row is None:
        return None
    utterances: list[dict[str, Any]] = [{"seq": u.seq, "role": u.role, "text": u.text, "classification": u.classification,
                   "start_ms": u.start_ms, "end_ms": u.end_ms, "interrupted": u.interrupted, "heard_ms": u.heard_ms}
                  for u in await get_utterances(sessions, call_sid)]
    tools, leads, hooks = await call_actions(sessions, call_sid)
    tool_calls: list[dict[str, Any]] = [{"name": c.name, "arguments": c.arguments, "output": c.output, "status": c.status,
                   "elapsed_ms": c.elapsed_ms} for c in tools]
    lead_rows = [{"fields": lead.fields, "created_at": lead.created_at.isoformat() if lead.created_at else None}
                 for lead in leads]
    webhooks = [{"id": h.id, "kind": h.kind, "state": h.state, "attempts": h.attempts, "last_error": h.last_error,
                 "next_at": h.next_at.isoformat() if h.next_at else None} for h in hooks]
    data = {**_call_dict(row), "utterances": utterances, "tool_calls": tool_calls, "leads": lead_rows,
            "webhooks": webhooks}
    if as_json:
        return json.dumps(data, ensure_ascii=False, indent=2)
    return call_text(row, utterances, tool_calls, lead_rows, webhooks)


def utterance_line(u: dict[str, Any]) -> str:
    when = f"{u['start_ms'] / 1000:7.2f}s" if u["start_ms"] >= 0 else "       -"
    flags = (" [" + u["classification"] + "]" if u["classification"] else "") + (
        " (interrupted" + (f" at {u['heard_ms']} ms" if u["heard_ms"] >= 0 else "") + ")" if u["interrupted"] else "")
    return f"  {when} {u['role']:9s} {u['text']}{flags}"


def call_text(row: CallRecord, utterances: list[dict[str, Any]], tool_calls: list[dict[str, Any]],
              lead_rows: list[dict[str, Any]], webhooks: list[dict[str, Any]]) -> str:
    """`kolbridge calls show` as text: the record, every utterance, what the agent did, the notices."""
    out = [f"call {row.call_sid}  business {row.business_id}  ended: {row.end_reason or 'live'}",
           "prompt layers: " + " ".join(f"{k}={v}" for k, v in (row.prompt_hashes or {}).items()),
           "metrics: " + " ".join(f"{k}={v}" for k, v in sorted((row.metrics or {}).items())), languages_line(row)]
    out += [utterance_line(u) for u in utterances]
    out += handoff_lines(row)
    if row.fallback:
        out.append(f"left by: {row.fallback}" + (f"  summary: {row.transfer_summary}" if row.transfer_summary else ""))
    for c in tool_calls:
        out.append(f"  tool {c['name']}({c['arguments']}) → {c['status']} in {c['elapsed_ms']} ms: {c['output'][:200]}")
    for lead in lead_rows:
        out.append("  lead " + json.dumps(lead["fields"], ensure_ascii=False))
    for h in webhooks:
        out.append(f"  webhook {h['kind']}: {h['state']} after {h['attempts']} attempt(s)"
                   + (f", last error: {h['last_error']}" if h["last_error"] and h["state"] != "delivered" else ""))
    return "\n".join(out)


async def leads_list(sessions: async_sessionmaker[AsyncSession], business: str | None, as_json: bool) -> str:
    rows = await list_leads(sessions, business)
    data = [{"business_id": r.business_id, "call_sid": r.call_sid, "fields": r.fields,
             "created_at": r.created_at.isoformat() if r.created_at else None} for r in rows]
    if as_json:
        return json.dumps(data, ensure_ascii=False, indent=2)
    return "\n".join(f"{d['created_at']}\t{d['business_id']}\t{d['call_sid']}\t"
                     + json.dumps(d["fields"], ensure_ascii=False) for d in data)


def toml_value(value: Any) -> str:
    """A TOML value (inline tables for dicts): enough for what a business file holds."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def business_toml(view: BusinessView) -> str:
    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)
    lines = ["[business]", f"id = {q(view.id)}", f"name = {q(view.name)}", f"language = {q(view.language)}",
             f"phone_numbers = [{', '.join(q(n) for n in view.phone_numbers)}]", f"greeting = {q(view.greeting)}",
             f"prompt = {q(view.prompt)}", f"voice = {q(view.voice)}", f"active = {str(view.active).lower()}",
             f"fillers = [{', '.join(q(w) for w in view.fillers)}]",
             f"short_words = [{', '.join(q(w) for w in view.short_words)}]",
             f"backchannels = [{', '.join(q(w) for w in view.backchannels)}]",
             f"vocabulary = [{', '.join(q(w) for w in view.vocabulary)}]", f"industry = {q(view.industry)}",
             f"value_proposition = {q(view.value_proposition)}",
             f"services = [{', '.join(q(w) for w in view.services)}]", f"tone = {q(view.tone)}",
             f"purpose = {q(view.purpose)}", f"languages = [{', '.join(q(w) for w in view.languages)}]",
             f"retention_days = {view.retention_days}"]
    if view.greetings:
        lines += ["", "[business.greetings]"] + [f"{k} = {q(v)}" for k, v in sorted(view.greetings.items())]
    for language, words in sorted(view.lexicons.items()):
        lines += ["", f"[business.lexicons.{language}]"] + [f"{k} = {toml_value(v)}" for k, v in sorted(words.items())]
    if view.permissions:
        lines += ["", "[business.permissions]"] + [f"{k} = {str(v).lower()}" for k, v in sorted(view.permissions.items())]
    for section, values in sorted(view.overrides.items()):
        lines += ["", f"[business.{section}]"] + [f"{k} = {toml_value(v)}" for k, v in sorted(values.items())]
    agent = view.agent or {}
    for section in ("conversation", "transfer", "webhook", "outbound"):
        if agent.get(section):
            lines += ["", f"[business.{section}]"] + [f"{k} = {toml_value(v)}" for k, v in agent[section].items()]
    for section in ("tools", "lead_fields"):
        for entry in agent.get(section) or []:
            lines += ["", f"[[business.{section}]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


async def prompt_show(sessions: async_sessionmaker[AsyncSession], business_id: str) -> str | None:
    view = await get_business(sessions, business_id)
    if view is None:
        return None
    built = build_prompt(facts_for(view))
    hashes = " ".join(f"{k}={v}" for k, v in built.layer_hashes.items())
    return (f"# system prompt for {view.id} (layers: {hashes})\n\n{built.instructions}\n\n"
            f"# greeting instruction\n\n{built.greeting_instructions}\n\n"
            f"# transcription prompt\n\n{built.transcription_prompt}\n\n"
            f"# tools on the session\n\n{describe_tools(view)}\n")
