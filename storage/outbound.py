"""Outbound calls in the database: a business's `[business.outbound]` settings (validated at import), its
do-not-call list, the record of an outbound call (written when Twilio accepted it, completed when it is
answered or ends unanswered), a lead's scheduled callback, and the scheduler's leader lease.

Unlike a live call's writes these are awaited (they come from `calls dial`, the HTTP endpoint, the
scheduler and Twilio's callbacks, never from the audio path) so their caller learns of a failure. Every
write is idempotent or conditional. Times are UTC; SQLite hands them back naive (`as_utc`).
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Business, CallRecord, DoNotCall, LeadRecord, SchedulerLease, utcnow

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class OutboundSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[business.outbound]`: how and when the business calls out."""

    caller_id: str = ""  # the Twilio number we call from (default: the business's first phone number)
    hours: str = "09:00-18:00"  # calling hours, local time, start before end
    timezone: str = "Asia/Jerusalem"
    days_off: list[str] = msgspec.field(default_factory=lambda: ["saturday"])  # weekday names and dates (YYYY-MM-DD): no calls at all
    voicemail_message: str = ""  # left on an answering machine (default: a sentence in the business's language)
    voicemail_messages: dict[str, str] = {}  # per language, overriding voicemail_message
    max_attempts: int = 3  # a scheduled callback's tries before it is failed
    retry_after_min: int = 30  # after busy, no answer, a machine or a failed dial
    amd: bool = True  # answering-machine detection (MachineDetection=DetectMessageEnd)
    api_token_sha256: str = ""  # hex SHA-256 of the business's token for POST /outbound/calls ("" = admin only)
    callbacks: bool = False  # save_lead asks when the caller wants to be called back; the scheduler calls them then


def parse_hours(hours: str) -> tuple[int, int]:
    """"09:00-18:00" → (540, 1080) minutes after local midnight; ValueError when malformed or empty."""
    match = HOURS.match(hours.strip())
    if match is None:
        raise ValueError(f"{hours!r} is not HH:MM-HH:MM")
    start, end = int(match[1]) * 60 + int(match[2]), int(match[3]) * 60 + int(match[4])
    if not start < end <= 24 * 60:
        raise ValueError(f"{hours!r}: the start must be before the end, within one day")
    return start, end


def parse_days_off(days_off: list[str]) -> tuple[frozenset[int], frozenset[date]]:
    """Weekday names → their numbers (Monday 0), ISO dates → dates; ValueError names the bad entry."""
    weekdays: set[int] = set()
    dates: set[date] = set()
    for entry in days_off:
        name = entry.strip().lower()
        if name in WEEKDAYS:
            weekdays.add(WEEKDAYS.index(name))
            continue
        try:
            dates.add(date.fromisoformat(name))
        except ValueError:
            raise ValueError(f"{entry!r} is neither a weekday name nor a date (YYYY-MM-DD)") from None
    return frozenset(weekdays), frozenset(dates)


def outbound_problems(spec: OutboundSpec, phone_numbers: list[str]) -> list[str]:
    """Field-named problems of `[business.outbound]` (empty when it is sound)."""
    where, problems = "business.outbound", []
    if spec.caller_id and not E164.match(spec.caller_id):
        problems.append(f"{where}.caller_id: {spec.caller_id!r} is not an E.164 number")
    for name, check in (("hours", lambda: parse_hours(spec.hours)), ("days_off", lambda: parse_days_off(spec.days_off))):
        try:
            check()
        except ValueError as exc:
            problems.append(f"{where}.{name}: {exc}")
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.timezone: {spec.timezone!r} is not an IANA time zone")
    if len(parse_days_off_safe(spec.days_off)) >= 7:
        problems.append(f"{where}.days_off: every weekday is off: no call could ever be placed")
    if not 1 <= spec.max_attempts <= 10:
        problems.append(f"{where}.max_attempts: {spec.max_attempts} is not within 1-10")
    if not 5 <= spec.retry_after_min <= 7 * 24 * 60:
        problems.append(f"{where}.retry_after_min: {spec.retry_after_min} is not within 5 min-7 days")
    if spec.api_token_sha256 and not re.fullmatch(r"[0-9a-f]{64}", spec.api_token_sha256):
        problems.append(f"{where}.api_token_sha256: must be 64 lowercase hex digits (sha256 of the token)")
    return problems


def parse_days_off_safe(days_off: list[str]) -> frozenset[int]:
    try:
        return parse_days_off(days_off)[0]
    except ValueError:
        return frozenset()


def outbound_spec(agent: dict[str, Any]) -> OutboundSpec:
    """The business's outbound settings from its row's `agent` column (defaults when none were imported)."""
    return msgspec.convert(agent.get("outbound") or {}, OutboundSpec)


def as_utc(stamp: datetime | None) -> datetime | None:
    return stamp.replace(tzinfo=timezone.utc) if stamp is not None and stamp.tzinfo is None else stamp


def utc(stamp: datetime) -> datetime:
    """Any aware time as UTC before it is written or compared (SQLite keeps the wall time and drops the zone)."""
    return stamp.astimezone(timezone.utc) if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------- the do-not-call list
def normalise(number: str) -> str:
    return re.sub(r"[\s\-().]", "", number)


async def dnc_add(sessions: async_sessionmaker[AsyncSession], business_id: str, number: str, reason: str = "") -> bool:
    """Add a number (True if it was not listed yet)."""
    async with sessions.begin() as session:
        if await session.get(DoNotCall, (business_id, normalise(number))) is not None:
            return False
        session.add(DoNotCall(business_id=business_id, number=normalise(number), reason=reason, added_at=utcnow()))
        return True


async def dnc_remove(sessions: async_sessionmaker[AsyncSession], business_id: str, number: str) -> bool:
    async with sessions.begin() as session:
        result = await session.execute(delete(DoNotCall).where(DoNotCall.business_id == business_id,
                                                                DoNotCall.number == normalise(number)))
        return bool(getattr(result, "rowcount", 0))


async def dnc_list(sessions: async_sessionmaker[AsyncSession], business_id: str) -> list[DoNotCall]:
    async with sessions() as session:
        rows = await session.execute(select(DoNotCall).where(DoNotCall.business_id == business_id)
                                     .order_by(DoNotCall.number))
        return list(rows.scalars().all())


async def dnc_listed(sessions: async_sessionmaker[AsyncSession], business_id: str, number: str) -> bool:
    async with sessions() as session:
        return await session.get(DoNotCall, (business_id, normalise(number))) is not None


# ---------------------------------------------------------------------- outbound call records
async def record_outbound_call(sessions: async_sessionmaker[AsyncSession], call_sid: str, business_id: str,
                               from_number: str, to_number: str, lead_id: int | None, purpose: str,
                               answered_by: str = "", end_reason: str = "") -> None:
    """Create or complete the call's record as an outbound call (idempotent: Twilio's callbacks may race the
    dialler's own write, and a stream's start may have created the row first)."""
    async with sessions.begin() as session:
        row = await session.get(CallRecord, call_sid)
        if row is None:
            row = CallRecord(call_sid=call_sid, business_id=business_id, started_at=utcnow())
            session.add(row)
        row.business_id, row.direction = business_id, "outbound"
        row.from_number, row.to_number = row.from_number or from_number, row.to_number or to_number
        row.lead_id = lead_id if lead_id is not None else row.lead_id
        row.purpose = purpose or row.purpose or ""
        row.answered_by = answered_by or row.answered_by or ""
        if end_reason and not row.end_reason:
            row.end_reason, row.ended_at = end_reason, utcnow()


async def end_unanswered(sessions: async_sessionmaker[AsyncSession], call_sid: str, status: str) -> bool:
    """Twilio's final CallStatus for an outbound call: the record ends with it unless a stream (or the
    voicemail) ended it already. True when this write ended it."""
    async with sessions.begin() as session:
        row = await session.get(CallRecord, call_sid)
        if row is None or row.end_reason:
            return False
        row.end_reason, row.ended_at = status.replace("-", "_"), utcnow()
        return True


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
