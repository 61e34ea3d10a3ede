"""Outbound calls in the database: a business's `[business.outbound]` settings (validated at import), its
do-not-call list and the record of an outbound call (written when Twilio accepted it, completed when it is
answered or ends unanswered). Leads' scheduled callbacks and the scheduler's lease: storage/callbacks.py.

Unlike a live call's writes these are awaited (they come from `calls dial`, the HTTP endpoint, the
scheduler and Twilio's callbacks, never from the audio path) so their caller learns of a failure. Every
write is idempotent or conditional. Times are UTC; SQLite hands them back naive (`as_utc`).
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import CallRecord, DoNotCall, utcnow

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
