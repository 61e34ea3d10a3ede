"""What the agent did on a call: leads, tool calls, and the webhook outbox (enqueue, claim, settle).

Writes arrive through the worker's ordered write queue and are idempotent (unique per call + tool call
id, or per delivery id). Webhook deliveries are claimed with a conditional UPDATE (state pending, due,
not claimed by a live worker), so two workers never post the same one at once; a worker that dies
holding a claim loses it when `claimed_until` passes.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.callbacks import callback_of_lead
from storage.models import LeadRecord, ToolCallRow, WebhookDelivery, utcnow
from storage.writequeue import LeadWrite, ToolCallWrite, WebhookWrite

AGENT_WRITES = (LeadWrite, ToolCallWrite, WebhookWrite)


async def apply_agent_write(session: AsyncSession, write: LeadWrite | ToolCallWrite | WebhookWrite) -> None:
    if isinstance(write, LeadWrite):
        exists = (await session.execute(select(LeadRecord.id).where(
            LeadRecord.call_sid == write.call_sid, LeadRecord.tool_call_id == write.tool_call_id))).first()
        if exists is None:
            callback_at = await callback_of_lead(session, write.business_id, dict(write.fields))
            session.add(LeadRecord(call_sid=write.call_sid, tool_call_id=write.tool_call_id,
                                   business_id=write.business_id, fields=dict(write.fields), callback_at=callback_at,
                                   callback_status="scheduled" if callback_at is not None else ""))
    elif isinstance(write, ToolCallWrite):
        exists = (await session.execute(select(ToolCallRow.id).where(
            ToolCallRow.call_sid == write.call_sid, ToolCallRow.tool_call_id == write.tool_call_id))).first()
        if exists is None:
            session.add(ToolCallRow(call_sid=write.call_sid, tool_call_id=write.tool_call_id, name=write.name,
                                    arguments=write.arguments, output=write.output, status=write.status,
                                    elapsed_ms=write.elapsed_ms))
    elif await session.get(WebhookDelivery, write.delivery_id) is None:
        session.add(WebhookDelivery(id=write.delivery_id, business_id=write.business_id, call_sid=write.call_sid,
                                    kind=write.kind, body=write.body, state="pending", attempts=0,
                                    next_at=utcnow(), last_error=""))


async def list_leads(sessions: async_sessionmaker[AsyncSession], business_id: str | None = None,
                     limit: int = 100) -> list[LeadRecord]:
    async with sessions() as session:
        query = select(LeadRecord).order_by(LeadRecord.created_at.desc(), LeadRecord.id.desc()).limit(limit)
        if business_id:
            query = query.where(LeadRecord.business_id == business_id)
        return list((await session.execute(query)).scalars().all())


async def call_actions(sessions: async_sessionmaker[AsyncSession],
                       call_sid: str) -> tuple[list[ToolCallRow], list[LeadRecord], list[WebhookDelivery]]:
    async with sessions() as session:
        tools = (await session.execute(select(ToolCallRow).where(ToolCallRow.call_sid == call_sid)
                                       .order_by(ToolCallRow.id))).scalars().all()
        leads = (await session.execute(select(LeadRecord).where(LeadRecord.call_sid == call_sid)
                                       .order_by(LeadRecord.id))).scalars().all()
        hooks = (await session.execute(select(WebhookDelivery).where(WebhookDelivery.call_sid == call_sid)
                                       .order_by(WebhookDelivery.created_at))).scalars().all()
        return list(tools), list(leads), list(hooks)


async def claim_due(sessions: async_sessionmaker[AsyncSession], now: datetime, lease_s: float,
                    limit: int = 20) -> list[WebhookDelivery]:
    """Deliveries due now, each claimed for `lease_s` by this caller (rows another worker holds are skipped)."""
    async with sessions.begin() as session:
        candidates = (await session.execute(
            select(WebhookDelivery.id).where(
                WebhookDelivery.state == "pending", WebhookDelivery.next_at <= now,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))
            .order_by(WebhookDelivery.next_at).limit(limit))).scalars().all()
        claimed = []
        until = now + timedelta(seconds=lease_s)
        for delivery_id in candidates:
            result = await session.execute(
                update(WebhookDelivery).where(
                    WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
                    or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))
                .values(claimed_until=until))
            if getattr(result, "rowcount", 0) == 1:
                claimed.append(delivery_id)
        rows = [await session.get(WebhookDelivery, delivery_id) for delivery_id in claimed]
        return [row for row in rows if row is not None]


async def settle(sessions: async_sessionmaker[AsyncSession], delivery_id: str, delivered: bool, error: str,
                 retry_in_s: float | None) -> None:
    """After an attempt: delivered, retried later (`retry_in_s`), or failed for good (None)."""
    async with sessions.begin() as session:
        row = await session.get(WebhookDelivery, delivery_id)
        if row is None:
            return
        row.attempts += 1
        row.claimed_until = None
        row.last_error = error[:500]
        if delivered:
            row.state, row.delivered_at = "delivered", utcnow()
        elif retry_in_s is None:
            row.state = "failed"
        else:
            row.next_at = utcnow() + timedelta(seconds=retry_in_s)
