"""Tables. SQLite (aiosqlite) by default; the same models run on PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Business(Base):
    __tablename__ = "businesses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    greeting: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text, default="")
    voice: Mapped[str] = mapped_column(String(32), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    fillers: Mapped[list[str]] = mapped_column(JSON, default=list)
    short_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannels: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)  # the first is the greeting's; [] = [language]
    greetings: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # language → greeting (optional)
    lexicons: Mapped[dict[str, dict[str, list[str]]]] = mapped_column(JSON, default=dict)  # language → additions
    retention_days: Mapped[int] = mapped_column(Integer, default=0)  # recordings and transcripts purged after (0: kept)
    overrides: Mapped[dict[str, dict[str, Any]]] = mapped_column(JSON, default=dict)
    vocabulary: Mapped[list[str]] = mapped_column(JSON, default=list)
    industry: Mapped[str] = mapped_column(String(100), default="")
    value_proposition: Mapped[str] = mapped_column(Text, default="")
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    tone: Mapped[str] = mapped_column(String(200), default="")
    purpose: Mapped[str] = mapped_column(String(32), default="support")
    permissions: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    agent: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # tools, lead form, webhook, transfer, conversation
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)


class CallRecord(Base):
    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_business_caller", "business_id", "from_number", "started_at"),)

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream_sid: Mapped[str] = mapped_column(String(64), default="")
    business_id: Mapped[str] = mapped_column(String(64), index=True)
    from_number: Mapped[str] = mapped_column(String(32), default="")
    to_number: Mapped[str] = mapped_column(String(32), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_reason: Mapped[str] = mapped_column(String(64), default="")
    prompt_hashes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    series: Mapped[dict[str, list[int]]] = mapped_column(JSON, default=dict)  # e.g. truncate_audio_end_ms per cut
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str] = mapped_column(String(128), default="")  # host:pid of the worker that served it
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    fallback: Mapped[str] = mapped_column(String(64), default="")  # e.g. "transfer:rest", "apologise:action"
    after_twiml: Mapped[str] = mapped_column(Text, default="")  # what the stream's action URL answers
    transfer_summary: Mapped[str] = mapped_column(Text, default="")  # transfer_to_human: the agent's summary
    caller_language: Mapped[str] = mapped_column(String(16), default="")  # the language the caller spoke last
    language_switches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # {at_ms, from, to, evidence}
    # handoffs (issue 23): the call's parts with the agent ({n, started_at, ended_at, end_reason, seq_from, offset_ms,
    # note}) and its transfer ({mode, number, legs: [{sid, status, answered_at, ended_at}], answered_by, outcome})
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    transfer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # outbound calls: "inbound" | "outbound"; Twilio's AnsweredBy (human, machine_end_beep, …); the lead called back
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    answered_by: Mapped[str] = mapped_column(String(32), default="")
    lead_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    purpose: Mapped[str] = mapped_column(Text, default="")


class UtteranceRecord(Base):
    __tablename__ = "utterances"
    __table_args__ = (Index("ux_utterances_call_seq", "call_sid", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.call_sid", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # order within the call
    role: Mapped[str] = mapped_column(String(16))  # caller | assistant
    text: Mapped[str] = mapped_column(Text)
    classification: Mapped[str] = mapped_column(String(16), default="")  # filler | turn (caller)
    start_ms: Mapped[int] = mapped_column(Integer, default=-1)  # from the start of the call's audio
    end_ms: Mapped[int] = mapped_column(Integer, default=-1)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    heard_ms: Mapped[int] = mapped_column(Integer, default=-1)


class LeadRecord(Base):
    """A lead the agent collected (save_lead): the fields the business's lead form declares."""

    __tablename__ = "leads"
    __table_args__ = (Index("ux_leads_call_tool", "call_sid", "tool_call_id", unique=True),
                      Index("ix_leads_callback_due", "callback_status", "callback_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    tool_call_id: Mapped[str] = mapped_column(String(128))
    business_id: Mapped[str] = mapped_column(String(64), index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # a scheduled callback (issue 23): when, its state ("" none, scheduled, dialing, done, failed, dnc), tries
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    callback_status: Mapped[str] = mapped_column(String(16), default="")
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_call_sid: Mapped[str] = mapped_column(String(64), default="")


class ToolCallRow(Base):
    """One function call of a call: arguments, output, status and time, as the model saw them."""

    __tablename__ = "tool_calls"
    __table_args__ = (Index("ux_tool_calls_call_tool", "call_sid", "tool_call_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    tool_call_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[str] = mapped_column(Text, default="")
    output: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="")
    elapsed_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """An outbox row: a signed POST to the business's webhook, retried with backoff until delivered."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # also the X-Kolbridge-Delivery header
    business_id: Mapped[str] = mapped_column(String(64), index=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # call_report | lead | transfer
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeadLetter(Base):
    """A write the database refused for a reason of its own (a constraint, its data, a bug in applying it),
    moved aside so the write queue goes on (storage/deadletters.py); `kolbridge db dead-letters --retry`."""

    __tablename__ = "dead_letters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # from the write's JSON: one letter per refused write
    worker: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(32), index=True)  # the write's tag: utterance, call_end, …
    call_sid: Mapped[str] = mapped_column(String(64), default="", index=True)
    write: Mapped[str] = mapped_column(Text)  # the write as msgspec JSON, as the queue holds it
    error_type: Mapped[str] = mapped_column(String(128), default="")  # e.g. IntegrityError
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # retries by `kolbridge db dead-letters --retry`


class ConsoleUser(Base):
    """Someone who may open the operator console: an admin (every business) or one business's user."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | business
    business_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the business user's one business
    password_hash: Mapped[str] = mapped_column(String(256))  # argon2id
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)  # wrong passwords since the last good one
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One action someone took (a login, a hang-up, a business edit, a purge, a user change)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_email: Mapped[str] = mapped_column(String(254), default="")  # "" for the system (the daily purge)
    action: Mapped[str] = mapped_column(String(64))
    business_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    target: Mapped[str] = mapped_column(String(200), default="")  # a call sid, a business id, an email…
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class BusinessVersion(Base):
    """A business file as it was saved from the console: who, when, what (the rollback's source)."""

    __tablename__ = "business_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_email: Mapped[str] = mapped_column(String(254), default="")
    toml: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")


class DoNotCall(Base):
    """A number a business must never dial (outbound calls and callbacks)."""

    __tablename__ = "do_not_call"

    business_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SchedulerLease(Base):
    """One leader across workers and hosts for the callback scheduler: whoever holds an unexpired lease."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
