"""Call records: written at call start, completed at call end. The gateway writes through the
ordered write queue (storage/writequeue.py) with `apply_write`: every write is idempotent."""
from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.agent_records import AGENT_WRITES, apply_agent_write
from storage.deadletters import DeadLetterWrite, record_dead_letter
from storage.handoffs import attempt_of, close_segment, merge_transfer, open_segment
from storage.models import CallRecord, UtteranceRecord, utcnow
from storage.writequeue import CallEndWrite, CallNoteWrite, CallStartWrite, HeartbeatWrite, LanguageSwitchWrite, TransferWrite, UtteranceWrite, Write


async def _call_row(session: AsyncSession, call_sid: str) -> CallRecord:
    """The call's row, created empty if the call start has not been written yet (writes race)."""
    row = await session.get(CallRecord, call_sid)
    if row is None:
        row = CallRecord(call_sid=call_sid, business_id="")
        session.add(row)
        await session.flush()
    return row


async def get_call(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> CallRecord | None:
    async with sessions() as session:
        return await session.get(CallRecord, call_sid)


async def reported_leg(sessions: async_sessionmaker[AsyncSession], call_sid: str, attempt: int) -> str:
    """The human leg Twilio has reported for a transfer attempt (its first status callback records it), or ""."""
    return str(attempt_of(await get_call(sessions, call_sid), attempt).get("leg_sid", ""))


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


async def last_caller_language(sessions: async_sessionmaker[AsyncSession], business_id: str, from_number: str) -> str:
    """The language this caller spoke last on a call to this business ("" if none is known)."""
    if not from_number:
        return ""
    async with sessions() as session:
        query = (select(CallRecord.caller_language)
                 .where(CallRecord.business_id == business_id, CallRecord.from_number == from_number,
                        CallRecord.caller_language != "", CallRecord.ended_at.is_not(None))
                 .order_by(CallRecord.started_at.desc()).limit(1))
        return (await session.execute(query)).scalar() or ""


async def apply_write(sessions: async_sessionmaker[AsyncSession], write: Write) -> None:
    """Apply one queued write; idempotent, so a replay after a crash or an outage never duplicates."""
    async with sessions.begin() as session:
        await apply_in(session, write)


async def apply_writes(sessions: async_sessionmaker[AsyncSession], writes: Sequence[Write]) -> None:
    """Apply queued writes in order in one transaction (one commit); all or none."""
    async with sessions.begin() as session:
        for write in writes:
            await apply_in(session, write)
            await session.flush()  # the next write of the batch sees this one's rows


async def apply_in(session: AsyncSession, write: Write) -> None:
    """One write inside the caller's transaction."""
    if isinstance(write, AGENT_WRITES):
        await apply_agent_write(session, write)
        return
    if isinstance(write, DeadLetterWrite):  # a write the queue set aside (storage/deadletters.py)
        await record_dead_letter(session, write)
        return
    if isinstance(write, UtteranceWrite):
        exists = (await session.execute(select(UtteranceRecord.id).where(
            UtteranceRecord.call_sid == write.call_sid, UtteranceRecord.seq == write.seq))).first()
        if exists is None:
            await _call_row(session, write.call_sid)
            session.add(UtteranceRecord(
                call_sid=write.call_sid, seq=write.seq, role=write.role, text=write.text,
                classification=write.classification, start_ms=write.start_ms, end_ms=write.end_ms,
                interrupted=write.interrupted, heard_ms=write.heard_ms))
        return
    if isinstance(write, HeartbeatWrite):
        now = utcnow()
        for call_sid, metrics in write.metrics.items():
            row = await session.get(CallRecord, call_sid)
            if row is not None and not row.end_reason:
                row.heartbeat_at, row.worker, row.metrics = now, write.worker, dict(metrics)
        return
    row = await _call_row(session, write.call_sid)
    if isinstance(write, CallStartWrite):
        row.stream_sid, row.business_id, row.prompt_hashes = write.stream_sid, write.business_id, write.prompt_hashes
        row.from_number, row.to_number, row.worker = write.from_number, write.to_number, write.worker
        row.heartbeat_at = utcnow()
        row.caller_language = row.caller_language or write.caller_language  # a switch may have been written first
        open_segment(row, write)
    elif isinstance(write, LanguageSwitchWrite):
        switches = list(row.language_switches or [])
        if all(switch.get("seq") != write.seq for switch in switches):
            switches.append({"seq": write.seq, "at_ms": write.at_ms, "from": write.from_language,
                             "to": write.to_language, "evidence": write.evidence})
            switches.sort(key=lambda switch: int(switch["seq"]))
            row.language_switches = switches  # a new list: the JSON column sees the change
            row.caller_language = str(switches[-1]["to"])
    elif isinstance(write, CallNoteWrite):
        row.transfer_summary = write.transfer_summary
    elif isinstance(write, TransferWrite):
        merge_transfer(row, write)
    elif isinstance(write, CallEndWrite) and close_segment(row, write):  # the latest segment: the call's own end
        row.ended_at, row.end_reason, row.metrics, row.restarts = utcnow(), write.reason, dict(write.metrics), write.restarts
        row.series, row.fallback, row.after_twiml = dict(write.series), write.fallback, write.after_twiml


async def close_lost_calls(sessions: async_sessionmaker[AsyncSession], stale_before: datetime,
                           dead_workers: Collection[str] = ()) -> list[str]:
    """Calls still 'live' whose worker is gone (named dead, or no heartbeat since `stale_before`): closed
    as worker_lost, keeping their last known metrics."""
    async with sessions.begin() as session:
        rows = (await session.execute(select(CallRecord).where(CallRecord.end_reason == ""))).scalars().all()
        closed = []
        for row in rows:
            beat = row.heartbeat_at or row.started_at
            if beat is not None and beat.tzinfo is None:
                beat = beat.replace(tzinfo=timezone.utc)
            if row.worker in dead_workers or (beat is not None and beat < stale_before):
                row.end_reason, row.ended_at = "worker_lost", utcnow()
                closed.append(row.call_sid)
        return closed


async def after_twiml(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> str:
    async with sessions() as session:
        row = await session.get(CallRecord, call_sid)
        return row.after_twiml if row is not None else ""
