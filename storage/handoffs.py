"""A call's handoffs on its one record (issue 23): the segments it spent with the agent and its transfer.

A call that a transfer returned to the agent (nobody answered the human line) comes back on a new media
stream with the same CallSid: the record is reopened, not duplicated. `segments` lists each part with the
agent — {n, started_at, ended_at, end_reason, note, metrics} — and the row's own ended_at/end_reason/metrics
are the last part's; a later segment's utterances carry seqs from SEGMENT_SEQ_STRIDE × (n − 1), so none
of the first part's is overwritten and the transcript reads in order. `transfer` holds the transfer's
attempts by number: {mode, number, attempts: {n: {leg_sid, status, answered_at, outcome, summary, move_pending}}, answered_by,
answered_at, outcome}. Every merge is idempotent (a replayed write changes nothing).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import CallRecord, UtteranceRecord, utcnow
from storage.writequeue import CallEndWrite, CallStartWrite, TransferWrite

SEGMENT_SEQ_STRIDE = 100_000  # segment n's utterances are numbered from (n − 1) × this
PROGRESS = frozenset({"", "holding", "dialing", "queued", "initiated", "ringing", "in-progress"})  # not final


def segment_seq_base(segment: int) -> int:
    return (max(segment, 1) - 1) * SEGMENT_SEQ_STRIDE


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def open_segment(row: CallRecord, write: CallStartWrite) -> None:
    """A stream started on this call: its segment is appended once; a later one reopens the record."""
    segments = list(row.segments or [])
    if any(int(part.get("n", 0)) == write.segment for part in segments):
        return
    segments.append({"n": write.segment, "started_at": _stamp(utcnow()), "ended_at": "", "end_reason": "",
                     "note": write.segment_note, "metrics": {}})
    row.segments = sorted(segments, key=lambda part: int(part["n"]))
    if write.segment > 1:  # back with the agent: live again until this segment ends, with no exit of its own yet
        row.ended_at, row.end_reason, row.after_twiml = None, "", ""


def close_segment(row: CallRecord, write: CallEndWrite) -> bool:
    """Our side of segment `write.segment` ended: that segment keeps its end and metrics (once). True when
    it is the call's latest segment — only then are the row's own end and metrics its. (A later segment
    may have started before this end was written: it is not closed by it.)"""
    segments = [dict(part) for part in row.segments or []]
    part = next((part for part in segments if int(part.get("n", 0)) == write.segment), None)
    if part is None:  # a record from before segments, or a start that was never written
        part = {"n": write.segment, "started_at": "", "ended_at": "", "end_reason": "", "note": "", "metrics": {}}
        segments = sorted([*segments, part], key=lambda seen: int(seen["n"]))
    if not part.get("end_reason"):
        part.update(ended_at=_stamp(utcnow()), end_reason=write.reason, metrics=dict(write.metrics))
    row.segments = segments
    return write.segment >= max(int(seen["n"]) for seen in segments)


def merge_transfer(row: CallRecord, write: TransferWrite) -> None:
    transfer: dict[str, Any] = {**(row.transfer or {})}
    attempts = {str(key): dict(value) for key, value in (transfer.get("attempts") or {}).items()}
    attempt = attempts.setdefault(str(write.attempt), {"leg_sid": "", "status": "", "answered_at": "", "outcome": ""})
    for key, value in (("leg_sid", write.leg_sid), ("outcome", write.outcome), ("summary", write.summary)):
        if value:
            attempt[key] = value
    if write.status and not (write.status in PROGRESS and attempt["status"] not in PROGRESS):
        attempt["status"] = write.status  # Twilio's callbacks can arrive out of order: a final status stays
    if write.mode:
        transfer["mode"] = write.mode
    if write.number:
        transfer["number"] = write.number
    if write.move_pending or write.move_done:
        attempt["move_pending"] = not write.move_done
    if write.answered and not attempt["answered_at"]:
        attempt["answered_at"] = _stamp(utcnow())
        transfer["answered_by"], transfer["answered_at"] = transfer.get("number", write.number), attempt["answered_at"]
    if write.outcome:
        transfer["outcome"] = write.outcome
    transfer["attempts"] = attempts
    row.transfer = transfer  # a new dict: the JSON column sees the change


def transfer_of(row: CallRecord | None) -> dict[str, Any]:
    """A call's transfer as stored ({} for no record, or none)."""
    return dict(row.transfer or {}) if row is not None else {}


def attempt_of(row: CallRecord | None, attempt: int) -> dict[str, Any]:
    """A transfer attempt's record as stored ({} when there is none)."""
    return dict((transfer_of(row).get("attempts") or {}).get(str(attempt)) or {})


async def conversation_so_far(sessions: async_sessionmaker[AsyncSession], call_sid: str,
                              limit: int = 200) -> list[tuple[str, str]]:
    """(role, text) of the call's recorded utterances in order — what a segment back with the agent is
    seeded with. Fillers and backchannels are left out: the model never answered them."""
    async with sessions() as session:
        rows = (await session.execute(
            select(UtteranceRecord.role, UtteranceRecord.text, UtteranceRecord.classification)
            .where(UtteranceRecord.call_sid == call_sid).order_by(UtteranceRecord.seq.desc()).limit(limit))).all()
    return [(role, text) for role, text, label in reversed(rows) if text.strip() and label in ("", "turn")]
