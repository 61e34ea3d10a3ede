"""Leads' scheduled callbacks and the scheduler's leader lease, in the database (issue 23).

A lead's callback moves scheduled → dialing → done | scheduled (again, after a spent attempt) | failed |
dnc, every move a conditional UPDATE (`set_callback(expect=…)`), so two schedulers during a lease
hand-over or a late status callback never both win. The lease (`scheduler_lease`, one row per name) is
taken with one atomic UPDATE when expired or already the taker's, or an INSERT when absent (a concurrent
INSERT loses on the primary key) — the same on SQLite and PostgreSQL. A lead saved on a call with the
caller's wish (`callback_at`, the business's local time) is scheduled at once for a business that calls
back (`[business.outbound] callbacks`). Times are UTC.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Business, LeadRecord, SchedulerLease, utcnow
from storage.outbound import outbound_spec, utc


# ---------------------------------------------------------------------- leads' callbacks
async def get_lead(sessions: async_sessionmaker[AsyncSession], lead_id: int) -> LeadRecord | None:
    async with sessions() as session:
        return await session.get(LeadRecord, lead_id)


async def schedule_callback(sessions: async_sessionmaker[AsyncSession], lead_id: int, at: datetime) -> bool:
    """Ask for a callback of a lead at `at` (attempts start over)."""
    async with sessions.begin() as session:
        lead = await session.get(LeadRecord, lead_id)
        if lead is None:
            return False
        lead.callback_at, lead.callback_status, lead.callback_attempts = utc(at), "scheduled", 0
        return True


async def due_callbacks(sessions: async_sessionmaker[AsyncSession], now: datetime, limit: int = 20) -> list[LeadRecord]:
    """Leads whose scheduled callback is due, oldest first."""
    async with sessions() as session:
        rows = await session.execute(select(LeadRecord).where(
            LeadRecord.callback_status == "scheduled", LeadRecord.callback_at <= utc(now))
            .order_by(LeadRecord.callback_at).limit(limit))
        return list(rows.scalars().all())


async def stale_dialing(sessions: async_sessionmaker[AsyncSession], dialled_before: datetime,
                        limit: int = 20) -> list[LeadRecord]:
    """Leads still `dialing` since before `dialled_before`: Twilio's final status callback never came."""
    async with sessions() as session:
        rows = await session.execute(select(LeadRecord).where(
            LeadRecord.callback_status == "dialing", LeadRecord.callback_at <= utc(dialled_before))
            .order_by(LeadRecord.callback_at).limit(limit))
        return list(rows.scalars().all())


async def set_callback(sessions: async_sessionmaker[AsyncSession], lead_id: int, status: str, *,
                       at: datetime | None = None, attempts: int | None = None, call_sid: str | None = None,
                       expect: tuple[str, ...] = ()) -> bool:
    """Move a lead's callback to `status` — only from one of `expect` when given (a conditional UPDATE:
    two schedulers, or a late callback, never both win). True when the row changed."""
    values: dict[str, Any] = {"callback_status": status}
    if at is not None:
        values["callback_at"] = utc(at)
    if attempts is not None:
        values["callback_attempts"] = attempts
    if call_sid is not None:
        values["callback_call_sid"] = call_sid
    query = update(LeadRecord).where(LeadRecord.id == lead_id)
    if expect:
        query = query.where(LeadRecord.callback_status.in_(expect))
    async with sessions.begin() as session:
        result = await session.execute(query.values(**values))
        return bool(getattr(result, "rowcount", 0))


# ---------------------------------------------------------------------- the scheduler's lease
async def take_lease(sessions: async_sessionmaker[AsyncSession], name: str, holder: str, ttl_s: float,
                     now: datetime | None = None) -> bool:
    """Take or renew the lease `name` for `holder`: one atomic UPDATE when it is expired or already ours,
    else an INSERT when there is no row (a concurrent INSERT loses on the primary key). True: we lead."""
    now = utc(now or utcnow())
    expires = now + timedelta(seconds=ttl_s)
    async with sessions.begin() as session:
        result = await session.execute(update(SchedulerLease).where(
            SchedulerLease.name == name, or_(SchedulerLease.expires_at < now, SchedulerLease.holder == holder))
            .values(holder=holder, expires_at=expires))
        if getattr(result, "rowcount", 0):
            return True
    try:
        async with sessions.begin() as session:
            if await session.get(SchedulerLease, name) is not None:
                return False  # someone else's, unexpired
            await session.execute(insert(SchedulerLease).values(name=name, holder=holder, expires_at=expires))
            return True
    except IntegrityError:
        return False


async def release_lease(sessions: async_sessionmaker[AsyncSession], name: str, holder: str) -> None:
    async with sessions.begin() as session:
        await session.execute(delete(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder))


CALLBACK_FIELD = "callback_at"  # save_lead's field: the caller's preferred callback time, business-local
CALLBACK_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def callback_time(value: object, timezone_name: str) -> datetime | None:
    """save_lead's `callback_at` ("2026-12-06T10:30", the business's local time; an offset is honoured) as
    UTC, or None when it is not a time."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
        for pattern in CALLBACK_FORMATS:
            try:
                moment = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    if moment.tzinfo is None:
        try:
            moment = moment.replace(tzinfo=ZoneInfo(timezone_name))
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return utc(moment)


async def callback_of_lead(session: AsyncSession, business_id: str, fields: dict[str, Any]) -> datetime | None:
    """When a lead saved on a call asks to be called back: only for a business with `[business.outbound]
    callbacks = true`; a time that is not one leaves the lead unscheduled (its field kept as said)."""
    if CALLBACK_FIELD not in fields:
        return None
    business = await session.get(Business, business_id)
    if business is None:
        return None
    spec = outbound_spec(business.agent or {})
    return callback_time(fields[CALLBACK_FIELD], spec.timezone) if spec.callbacks else None
