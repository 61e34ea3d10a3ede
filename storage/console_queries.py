"""What the operator console reads and erases, every query scoped: a Scope names the one business a
business user may see (None: an admin, every business), and each function applies it in its SQL — a call,
lead or business outside the scope is simply not found. Everything here runs on SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, and_, case, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.businesses import BusinessView, get_business
from storage.models import Business, CallRecord, LeadRecord, ToolCallRow, UtteranceRecord, WebhookDelivery

PAGE_SIZE = 50


class Scope(msgspec.Struct, frozen=True):
    """The businesses a user may see: `business_id` None is every business (an admin)."""

    business_id: str | None

    def allows(self, business_id: str | None) -> bool:
        return self.business_id is None or business_id == self.business_id


class CallFilter(msgspec.Struct, frozen=True):
    """The history page's filters; None/"" is "any"."""

    business_id: str = ""
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    end_reason: str = ""
    transferred: bool | None = None
    lead_saved: bool | None = None
    fallback: bool | None = None
    word: str = ""
    page: int = 1


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def scoped_calls(scope: Scope, business_id: str = "") -> list[ColumnElement[bool]]:
    """The WHERE terms that keep calls within the scope (and the one business asked for, if any)."""
    terms: list[ColumnElement[bool]] = []
    if scope.business_id is not None:
        terms.append(CallRecord.business_id == scope.business_id)
    if business_id:
        terms.append(CallRecord.business_id == business_id)
    return terms


def in_dates(column: Any, date_from: date | None, date_to: date | None) -> list[ColumnElement[bool]]:
    terms: list[ColumnElement[bool]] = []
    if date_from is not None:
        terms.append(column >= day_start(date_from))
    if date_to is not None:
        terms.append(column < day_start(date_to + timedelta(days=1)))
    return terms


def transferred_term() -> ColumnElement[bool]:
    return or_(CallRecord.end_reason == "transferred", CallRecord.fallback.like("transfer%"))


def fallback_term() -> ColumnElement[bool]:
    return CallRecord.fallback != ""


def shed_term() -> ColumnElement[bool]:
    return CallRecord.end_reason.like("shed%")


def answered_term() -> ColumnElement[bool]:
    """Served by the AI: not shed, and not left to the fallback because the AI was unavailable."""
    return and_(~shed_term(), CallRecord.end_reason != "realtime_unavailable")


def like_pattern(word: str) -> str:
    """`word` anywhere, LIKE's own characters taken literally (escaped with '\\')."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _flag(term: ColumnElement[bool], wanted: bool | None) -> list[ColumnElement[bool]]:
    return [] if wanted is None else [term if wanted else ~term]


def history_terms(scope: Scope, wanted: CallFilter) -> list[ColumnElement[bool]]:
    terms = scoped_calls(scope, wanted.business_id) + in_dates(CallRecord.started_at, wanted.date_from, wanted.date_to)
    if wanted.end_reason:
        terms.append(CallRecord.end_reason == wanted.end_reason)
    terms += _flag(transferred_term(), wanted.transferred) + _flag(fallback_term(), wanted.fallback)
    lead_saved = exists().where(LeadRecord.call_sid == CallRecord.call_sid)
    terms += _flag(lead_saved, wanted.lead_saved)
    if wanted.word.strip():
        said = UtteranceRecord.text.ilike(like_pattern(wanted.word.strip()), escape="\\")
        terms.append(exists().where(UtteranceRecord.call_sid == CallRecord.call_sid, said))
    return terms


async def call_history(sessions: async_sessionmaker[AsyncSession], scope: Scope,
                       wanted: CallFilter) -> tuple[list[CallRecord], int]:
    """One page (PAGE_SIZE, newest first) of the calls that pass the filters, and how many pass in all."""
    terms = history_terms(scope, wanted)
    async with sessions() as session:
        total = (await session.execute(select(func.count()).select_from(CallRecord).where(*terms))).scalar_one()
        query = (select(CallRecord).where(*terms).order_by(CallRecord.started_at.desc(), CallRecord.call_sid)
                 .offset((max(wanted.page, 1) - 1) * PAGE_SIZE).limit(PAGE_SIZE))
        return list((await session.execute(query)).scalars().all()), int(total)


async def end_reasons(sessions: async_sessionmaker[AsyncSession], scope: Scope) -> list[str]:
    async with sessions() as session:
        query = select(CallRecord.end_reason).where(*scoped_calls(scope)).distinct().order_by(CallRecord.end_reason)
        return [reason for reason in (await session.execute(query)).scalars().all() if reason]


class CallDetail(msgspec.Struct):
    call: CallRecord
    utterances: list[UtteranceRecord]
    tool_calls: list[ToolCallRow]
    leads: list[LeadRecord]
    webhooks: list[WebhookDelivery]


async def call_in_scope(sessions: async_sessionmaker[AsyncSession], scope: Scope, call_sid: str) -> CallRecord | None:
    async with sessions() as session:
        query = select(CallRecord).where(CallRecord.call_sid == call_sid, *scoped_calls(scope))
        return (await session.execute(query)).scalar_one_or_none()


async def call_detail(sessions: async_sessionmaker[AsyncSession], scope: Scope, call_sid: str) -> CallDetail | None:
    """A call and everything recorded of it, or None when it is not within the scope."""
    call = await call_in_scope(sessions, scope, call_sid)
    if call is None:
        return None
    async with sessions() as session:
        def of_call(model: Any, order: Any) -> Select[Any]:
            return select(model).where(model.call_sid == call_sid).order_by(order)
        utterances = (await session.execute(of_call(UtteranceRecord, UtteranceRecord.seq))).scalars().all()
        tools = (await session.execute(of_call(ToolCallRow, ToolCallRow.id))).scalars().all()
        leads = (await session.execute(of_call(LeadRecord, LeadRecord.id))).scalars().all()
        hooks = (await session.execute(of_call(WebhookDelivery, WebhookDelivery.created_at))).scalars().all()
    return CallDetail(call, list(utterances), list(tools), list(leads), list(hooks))


async def scoped_leads(sessions: async_sessionmaker[AsyncSession], scope: Scope, business_id: str = "",
                       date_from: date | None = None, date_to: date | None = None,
                       limit: int = 5000) -> list[LeadRecord]:
    terms = in_dates(LeadRecord.created_at, date_from, date_to)
    if scope.business_id is not None:
        terms.append(LeadRecord.business_id == scope.business_id)
    if business_id:
        terms.append(LeadRecord.business_id == business_id)
    async with sessions() as session:
        query = select(LeadRecord).where(*terms).order_by(LeadRecord.created_at.desc(), LeadRecord.id.desc()).limit(limit)
        return list((await session.execute(query)).scalars().all())


async def business_ids(sessions: async_sessionmaker[AsyncSession], scope: Scope) -> list[str]:
    async with sessions() as session:
        query = select(Business.id).order_by(Business.id)
        if scope.business_id is not None:
            query = query.where(Business.id == scope.business_id)
        return list((await session.execute(query)).scalars().all())


async def scoped_business(sessions: async_sessionmaker[AsyncSession], scope: Scope,
                          business_id: str) -> BusinessView | None:
    """A business, or None when there is none of that id within the scope."""
    return await get_business(sessions, business_id) if scope.allows(business_id) else None


async def scoped_businesses(sessions: async_sessionmaker[AsyncSession], scope: Scope) -> list[BusinessView]:
    views = [await get_business(sessions, business_id) for business_id in await business_ids(sessions, scope)]
    return [view for view in views if view is not None]


async def caller_numbers(sessions: async_sessionmaker[AsyncSession], scope: Scope,
                         call_sids: Sequence[str]) -> dict[str, str]:
    """call sid → the caller's number, for those of `call_sids` within the scope (one query for a live table)."""
    if not call_sids:
        return {}
    async with sessions() as session:
        query = select(CallRecord.call_sid, CallRecord.from_number).where(
            CallRecord.call_sid.in_(list(call_sids)), *scoped_calls(scope))
        return {sid: number for sid, number in (await session.execute(query)).all()}


async def calls_of_number(sessions: async_sessionmaker[AsyncSession], scope: Scope, e164: str) -> list[tuple[str, str]]:
    """(call sid, business id) of every call from `e164` within the scope."""
    async with sessions() as session:
        query = select(CallRecord.call_sid, CallRecord.business_id).where(
            CallRecord.from_number == e164, *scoped_calls(scope))
        return [(sid, business) for sid, business in (await session.execute(query)).all()]


async def erase_calls(sessions: async_sessionmaker[AsyncSession], call_sids: Sequence[str]) -> None:
    """Every row of these calls: utterances, leads, tool calls, webhook deliveries and the call records."""
    if not call_sids:
        return
    async with sessions.begin() as session:
        for model in (UtteranceRecord, LeadRecord, ToolCallRow, WebhookDelivery, CallRecord):
            await session.execute(delete(model).where(model.call_sid.in_(list(call_sids))))


async def calls_past_retention(sessions: async_sessionmaker[AsyncSession], now: datetime) -> list[tuple[str, str]]:
    """(call sid, business id) of every call started longer ago than its business's retention_days (> 0)."""
    async with sessions() as session:
        kept = (await session.execute(select(Business.id, Business.retention_days).where(
            Business.retention_days > 0))).all()
        found: list[tuple[str, str]] = []
        for business_id, days in kept:
            query = select(CallRecord.call_sid).where(CallRecord.business_id == business_id,
                                                      CallRecord.started_at < now - timedelta(days=days))
            found += [(sid, business_id) for sid in (await session.execute(query)).scalars().all()]
        return found


async def purge_transcripts(sessions: async_sessionmaker[AsyncSession], call_sids: Sequence[str]) -> dict[str, int]:
    """Delete these calls' utterances and the caller's words kept as evidence of a language switch (their
    records stay: languages and moments, without the words); call sid → utterances deleted, for those that had any."""
    if not call_sids:
        return {}
    async with sessions.begin() as session:
        counted = (await session.execute(select(UtteranceRecord.call_sid, func.count()).where(
            UtteranceRecord.call_sid.in_(list(call_sids))).group_by(UtteranceRecord.call_sid))).all()
        await session.execute(delete(UtteranceRecord).where(UtteranceRecord.call_sid.in_(list(call_sids))))
        calls = (await session.execute(select(CallRecord).where(CallRecord.call_sid.in_(list(call_sids))))).scalars().all()
        for row in calls:
            if row.language_switches:
                row.language_switches = [{**switch, "evidence": ""} for switch in row.language_switches]
        return {sid: int(count) for sid, count in counted}


class DayFigures(msgspec.Struct, frozen=True):
    day: str  # YYYY-MM-DD
    calls: int
    answered: int
    transferred: int
    fallback: int
    shed: int
    barge_ins: int
    utterances: int
    fillers: int
    underruns: int
    leads: int = 0


class Dashboard(msgspec.Struct, frozen=True):
    days: list[DayFigures]
    median_duration_s: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    barge_in_rate: float | None  # barge-ins per answered call
    filler_rate: float | None  # filler-only utterances per caller utterance


def _counted(term: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((term, 1), else_=0)), 0)


def _metric_sum(key: str) -> Any:
    return func.coalesce(func.sum(CallRecord.metrics[key].as_integer()), 0)


def utc_day(session: AsyncSession, column: Any) -> Any:
    """The UTC day of a timestamp: SQLite keeps UTC already; PostgreSQL's date() would use the session's zone."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _day(value: Any) -> str:
    """func.date gives a string on SQLite and a date on PostgreSQL."""
    return value.isoformat() if isinstance(value, date) else str(value)


def percentile(values: Sequence[float], share: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def _daily_calls(session: AsyncSession, terms: list[ColumnElement[bool]]) -> list[DayFigures]:
    day = utc_day(session, CallRecord.started_at)
    query = (select(day, func.count(), _counted(answered_term()), _counted(transferred_term()),
                    _counted(fallback_term()), _counted(shed_term()), _metric_sum("barge_in_events"),
                    _metric_sum("stt_utterances"), _metric_sum("filler_only"), _metric_sum("underruns"))
             .where(*terms).group_by(day).order_by(day))
    return [DayFigures(_day(row[0]), *(int(v) for v in row[1:])) for row in (await session.execute(query)).all()]


async def _daily_leads(session: AsyncSession, scope: Scope, business_id: str, date_from: date | None,
                       date_to: date | None) -> dict[str, int]:
    day = utc_day(session, LeadRecord.created_at)
    terms = in_dates(LeadRecord.created_at, date_from, date_to)
    terms += [LeadRecord.business_id == b for b in (scope.business_id, business_id or None) if b is not None]
    rows = (await session.execute(select(day, func.count()).where(*terms).group_by(day))).all()
    return {_day(d): int(count) for d, count in rows}


async def dashboard(sessions: async_sessionmaker[AsyncSession], scope: Scope, business_id: str = "",
                    date_from: date | None = None, date_to: date | None = None) -> Dashboard:
    """Per-day counts by SQL aggregates; the median duration and the latency percentiles from a scoped SELECT."""
    terms = scoped_calls(scope, business_id) + in_dates(CallRecord.started_at, date_from, date_to)
    async with sessions() as session:
        days = await _daily_calls(session, terms)
        leads = await _daily_leads(session, scope, business_id, date_from, date_to)
        timed = (await session.execute(select(CallRecord.started_at, CallRecord.ended_at, CallRecord.series)
                                       .where(*terms, CallRecord.ended_at.is_not(None)))).all()
    by_day = {figures.day: msgspec.structs.replace(figures, leads=leads.get(figures.day, 0)) for figures in days}
    for lead_day, count in leads.items():
        by_day.setdefault(lead_day, DayFigures(lead_day, 0, 0, 0, 0, 0, 0, 0, 0, 0, count))
    durations = [(ended - started).total_seconds() for started, ended, _ in timed if ended is not None]
    latencies = [float(ms) for _, _, series in timed for ms in (series or {}).get("answer_latency_ms", [])]
    answered = sum(d.answered for d in days)
    utterances = sum(d.utterances for d in days)
    return Dashboard([by_day[d] for d in sorted(by_day)], percentile(durations, 0.5), percentile(latencies, 0.5),
                     percentile(latencies, 0.95), sum(d.barge_ins for d in days) / answered if answered else None,
                     sum(d.fillers for d in days) / utterances if utterances else None)
