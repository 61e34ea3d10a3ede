"""Call records: written at call start, completed at call end; a failed write is retried and logged."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sqlalchemy import select

from storage.models import CallRecord, UtteranceRecord, utcnow

log = structlog.get_logger("kolbridge.storage")


async def _retry(what: str, call_sid: str, op: Callable[[], Awaitable[None]], attempts: int = 3) -> bool:
    for attempt in range(1, attempts + 1):
        try:
            await op()
            return True
        except Exception as exc:  # noqa: BLE001 — every DB failure is retried, then logged
            log.warning("DB_WRITE_FAILED", what=what, call_sid=call_sid, attempt=attempt, error=str(exc)[:200],
                        exc_info=True)
            await asyncio.sleep(0.1 * attempt)
    log.error("DB_WRITE_GAVE_UP", what=what, call_sid=call_sid)
    return False


async def _call_row(session: AsyncSession, call_sid: str) -> CallRecord:
    """The call's row, created empty if the call start has not been written yet (writes race)."""
    row = await session.get(CallRecord, call_sid)
    if row is None:
        row = CallRecord(call_sid=call_sid, business_id="")
        session.add(row)
        await session.flush()
    return row


async def record_call_start(sessions: async_sessionmaker[AsyncSession], call_sid: str, stream_sid: str,
                            business_id: str, prompt_hashes: dict[str, str], from_number: str = "",
                            to_number: str = "") -> bool:
    async def op() -> None:
        async with sessions.begin() as session:
            row = await _call_row(session, call_sid)
            row.stream_sid, row.business_id, row.prompt_hashes = stream_sid, business_id, prompt_hashes
            row.from_number, row.to_number = from_number, to_number
    return await _retry("call_start", call_sid, op)


async def record_call_end(sessions: async_sessionmaker[AsyncSession], call_sid: str, reason: str,
                          metrics: dict[str, int], restarts: int, series: dict[str, list[int]] | None = None) -> bool:
    async def op() -> None:
        async with sessions.begin() as session:
            row = await _call_row(session, call_sid)
            row.ended_at, row.end_reason, row.metrics, row.restarts = utcnow(), reason, dict(metrics), restarts
            row.series = dict(series or {})
    return await _retry("call_end", call_sid, op)


async def get_call(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> CallRecord | None:
    async with sessions() as session:
        return await session.get(CallRecord, call_sid)


async def record_utterance(sessions: async_sessionmaker[AsyncSession], call_sid: str, seq: int, role: str,
                           text: str, classification: str, start_ms: int, end_ms: int, interrupted: bool,
                           heard_ms: int) -> bool:
    async def op() -> None:
        async with sessions.begin() as session:
            await _call_row(session, call_sid)
            session.add(UtteranceRecord(call_sid=call_sid, seq=seq, role=role, text=text,
                                        classification=classification, start_ms=start_ms, end_ms=end_ms,
                                        interrupted=interrupted, heard_ms=heard_ms))
    return await _retry("utterance", call_sid, op)


async def get_utterances(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> list[UtteranceRecord]:
    async with sessions() as session:
        rows = await session.execute(select(UtteranceRecord).where(UtteranceRecord.call_sid == call_sid)
                                     .order_by(UtteranceRecord.seq))
        return list(rows.scalars().all())


async def list_calls(sessions: async_sessionmaker[AsyncSession], business_id: str | None = None,
                     limit: int = 50) -> list[CallRecord]:
    async with sessions() as session:
        query = select(CallRecord).order_by(CallRecord.started_at.desc()).limit(limit)
        if business_id:
            query = query.where(CallRecord.business_id == business_id)
        return list((await session.execute(query)).scalars().all())
