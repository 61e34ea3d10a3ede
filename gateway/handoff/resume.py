"""A stream back on a call after a transfer nobody took (issue 23): what the resumed segment starts from.

The stream's signed parameters say which segment it is (`segment`, 2…) and why the caller is back
(`resume_reason`: busy, no-answer, failed, canceled). The conversation so far is read from the call's
record (its utterances, fillers left out) within RESUME_LOOKUP_S; a database that cannot answer costs the
seeding only — the agent still gets the note and answers, and RESUME_HISTORY_UNAVAILABLE says so.
"""
from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actors.settings import ResumeSettings
from gateway.handoff.twiml import resume_note
from storage.handoffs import conversation_so_far

log = structlog.get_logger("kolbridge.handoff")
RESUME_LOOKUP_S = 1.0


def segment_of(custom: dict[str, str]) -> int:
    try:
        return max(1, int(custom.get("segment", "1")))
    except ValueError:
        return 1


async def resume_for(sessions: async_sessionmaker[AsyncSession], call_sid: str, custom: dict[str, str]) -> ResumeSettings | None:
    """None for a call's first segment; else its seeded conversation and the note."""
    segment = segment_of(custom)
    if segment < 2:
        return None
    reason = custom.get("resume_reason", "")
    try:
        turns = await asyncio.wait_for(conversation_so_far(sessions, call_sid), RESUME_LOOKUP_S)
    except Exception as exc:  # noqa: BLE001 — the agent goes on with the note alone
        log.warning("RESUME_HISTORY_UNAVAILABLE", call_sid=call_sid, segment=segment, error=repr(exc)[:200], exc_info=True)
        turns = []
    seeded = tuple(("assistant" if role == "assistant" else "user", text) for role, text in turns)
    log.info("CALL_RESUMED", call_sid=call_sid, segment=segment, reason=reason, turns_seeded=len(seeded))
    return ResumeSettings(segment, seeded, resume_note(reason))
