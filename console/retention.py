"""Retention: recordings and transcripts of calls older than their business's retention_days are purged (the
call record stays, an audit row says `purged`) — by `kolbridge calls purge` and daily by the console; and
everything of one caller number is erased on request (the console's form, `kolbridge calls erase-number`)."""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.recordings import remove_recording
from storage.audit import record_audit
from storage.console_queries import Scope, calls_of_number, calls_past_retention, erase_calls, purge_transcripts
from storage.models import utcnow

log = structlog.get_logger("kolbridge.console")


class Purged(msgspec.Struct, frozen=True):
    call_sid: str
    business_id: str
    utterances: int
    recording: bool


async def purge_expired(sessions: async_sessionmaker[AsyncSession], recordings: Path, now: datetime,
                        user_email: str = "") -> list[Purged]:
    """Every call past its business's retention loses its utterances and its recording; each call that lost
    something gets an audit row `purged` (a call purged before is passed over quietly)."""
    expired = await calls_past_retention(sessions, now)
    deleted = await purge_transcripts(sessions, [sid for sid, _ in expired])
    purged = []
    for call_sid, business_id in expired:
        removed = remove_recording(recordings, call_sid)
        if removed or deleted.get(call_sid):
            purged.append(Purged(call_sid, business_id, deleted.get(call_sid, 0), removed))
            await record_audit(sessions, user_email, "purged", business_id, call_sid,
                               {"utterances": deleted.get(call_sid, 0), "recording": removed})
    return purged


async def erase_number(sessions: async_sessionmaker[AsyncSession], recordings: Path, scope: Scope, e164: str,
                       user_email: str) -> list[str]:
    """Every call of `e164` within the scope: its rows and its recording, gone; one audit row per business."""
    calls = await calls_of_number(sessions, scope, e164)
    await erase_calls(sessions, [sid for sid, _ in calls])
    for call_sid, _ in calls:
        remove_recording(recordings, call_sid)
    businesses: list[str | None] = [*sorted({business for _, business in calls})] or [scope.business_id]
    for business_id in businesses:
        erased = [sid for sid, business in calls if business == business_id]
        await record_audit(sessions, user_email, "erase_number", business_id, e164[:-3] + "•••",
                           {"calls": len(erased), "call_sids": erased})
    return [sid for sid, _ in calls]


async def purge_daily(sessions: async_sessionmaker[AsyncSession], recordings: Path, every_s: float) -> None:
    """The console's background purge: at start, then every `every_s` (a failure is logged, the loop goes on)."""
    while True:
        try:
            purged = await purge_expired(sessions, recordings, utcnow())
            log.info("RETENTION_PURGED", calls=len(purged))
        except Exception as exc:  # noqa: BLE001 — a database outage must not end the loop
            log.warning("RETENTION_PURGE_FAILED", error=str(exc))
        await asyncio.sleep(every_s)
