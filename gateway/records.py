"""CLI views of what the database holds: calls, their utterances, businesses, the prompt a call gets."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.overrides import facts_for
from prompts.builder import build_prompt
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
            "restarts": row.restarts}


async def calls_history(sessions: async_sessionmaker[AsyncSession], business: str | None, as_json: bool) -> str:
    rows = await list_calls(sessions, business)
    if as_json:
        return json.dumps([_call_dict(r) for r in rows], ensure_ascii=False, indent=2)
    lines = [f"{r.call_sid}\t{r.business_id}\t{r.started_at:%Y-%m-%d %H:%M:%S}\t{r.end_reason or 'live'}\t"
             + " ".join(f"{k}={(r.metrics or {}).get(k, 0)}" for k in SUMMARY) for r in rows]
    return "\n".join(lines)


async def call_show(sessions: async_sessionmaker[AsyncSession], call_sid: str, as_json: bool) -> str | None:
    row = await get_call(sessions, call_sid)
    if row is None:
        return None
    utterances: list[dict[str, Any]] = [{"seq": u.seq, "role": u.role, "text": u.text, "classification": u.classification,
                   "start_ms": u.start_ms, "end_ms": u.end_ms, "interrupted": u.interrupted, "heard_ms": u.heard_ms}
                  for u in await get_utterances(sessions, call_sid)]
    data = {**_call_dict(row), "utterances": utterances}
    if as_json:
        return json.dumps(data, ensure_ascii=False, indent=2)
    out = [f"call {row.call_sid}  business {row.business_id}  ended: {row.end_reason or 'live'}",
           "prompt layers: " + " ".join(f"{k}={v}" for k, v in (row.prompt_hashes or {}).items()),
           "metrics: " + " ".join(f"{k}={v}" for k, v in sorted((row.metrics or {}).items()))]
    for u in utterances:
        when = f"{u['start_ms'] / 1000:7.2f}s" if u["start_ms"] >= 0 else "       -"
        flags = (" [" + u["classification"] + "]" if u["classification"] else "") + (
            " (interrupted" + (f" at {u['heard_ms']} ms" if u["heard_ms"] >= 0 else "") + ")" if u["interrupted"] else "")
        out.append(f"  {when} {u['role']:9s} {u['text']}{flags}")
    return "\n".join(out)


def business_toml(view: BusinessView) -> str:
    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)
    lines = ["[business]", f"id = {q(view.id)}", f"name = {q(view.name)}", f"language = {q(view.language)}",
             f"phone_numbers = [{', '.join(q(n) for n in view.phone_numbers)}]", f"greeting = {q(view.greeting)}",
             f"prompt = {q(view.prompt)}", f"voice = {q(view.voice)}", f"active = {str(view.active).lower()}",
             f"fillers = [{', '.join(q(w) for w in view.fillers)}]",
             f"short_words = [{', '.join(q(w) for w in view.short_words)}]",
             f"vocabulary = [{', '.join(q(w) for w in view.vocabulary)}]", f"industry = {q(view.industry)}",
             f"value_proposition = {q(view.value_proposition)}",
             f"services = [{', '.join(q(w) for w in view.services)}]", f"tone = {q(view.tone)}",
             f"purpose = {q(view.purpose)}"]
    if view.permissions:
        lines += ["", "[business.permissions]"] + [f"{k} = {str(v).lower()}" for k, v in sorted(view.permissions.items())]
    for section, values in sorted(view.overrides.items()):
        lines += ["", f"[business.{section}]"] + [f"{k} = {json.dumps(v, ensure_ascii=False)}"
                                                  for k, v in sorted(values.items())]
    return "\n".join(lines) + "\n"


async def prompt_show(sessions: async_sessionmaker[AsyncSession], business_id: str) -> str | None:
    view = await get_business(sessions, business_id)
    if view is None:
        return None
    built = build_prompt(facts_for(view))
    hashes = " ".join(f"{k}={v}" for k, v in built.layer_hashes.items())
    return (f"# system prompt for {view.id} (layers: {hashes})\n\n{built.instructions}\n\n"
            f"# greeting instruction\n\n{built.greeting_instructions}\n\n"
            f"# transcription prompt\n\n{built.transcription_prompt}\n")
