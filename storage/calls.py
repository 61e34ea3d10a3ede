"""Call records: written at call start, completed at call end; a failed write is retried and logged."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import CallRecord, utcnow

log = structlog.get_logger("kolbridge.storage")


async def _retry(what: str, call_sid: str, op: Callable[[], Awaitable[None]], attempts: int = 3) -> bool:
    for attempt in range(1, attempts + 1):
        try:
            await op()
            return True
        except Exception as exc:  # noqa: BLE001 — every DB failure is retried, then logged
            log.warning("DB_WRITE_FAILED", what=what, call_sid=call_sid, attempt=attempt, error=str(exc)[:200])
            await asyncio.sleep(0.1 * attempt)
    log.error("DB_WRITE_GAVE_UP", what=what, call_sid=call_sid)
    return False


async def record_call_start(sessions: async_sessionmaker[AsyncSession], call_sid: str, stream_sid: str,
                            business_id: str, prompt_hashes: dict[str, str]) -> bool:
    async def op() -> None:
        async with sessions.begin() as session:
            row = await session.get(CallRecord, call_sid)
            if row is None:
                session.add(CallRecord(call_sid=call_sid, stream_sid=stream_sid, business_id=business_id,
                                       prompt_hashes=prompt_hashes))
    return await _retry("call_start", call_sid, op)


async def record_call_end(sessions: async_sessionmaker[AsyncSession], call_sid: str, reason: str,
                          metrics: dict[str, int], restarts: int, series: dict[str, list[int]] | None = None) -> bool:
    async def op() -> None:
        async with sessions.begin() as session:
            row = await session.get(CallRecord, call_sid)
            if row is None:
                row = CallRecord(call_sid=call_sid, business_id="")
                session.add(row)
            row.ended_at, row.end_reason, row.metrics, row.restarts = utcnow(), reason, dict(metrics), restarts
            row.series = dict(series or {})
    return await _retry("call_end", call_sid, op)


async def get_call(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> CallRecord | None:
    async with sessions() as session:
        return await session.get(CallRecord, call_sid)
