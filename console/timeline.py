"""A call's timeline: the caller's and the AI's lanes, each utterance placed by its start_ms/end_ms as a share
of the call's length (the page draws them with CSS percentages), fillers and backchannels marked, an
interrupted AI utterance cut where the caller stopped hearing it (its start + heard_ms), tool calls placed by
their time from the call's start. The worker records no start for an AI utterance (start_ms = -1): such an
utterance is placed after what came before it in the call's order and marked estimated."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec

from storage.models import CallRecord, ToolCallRow, UtteranceRecord

AI_ESTIMATE_MS = 2000  # the length shown for an AI utterance whose playout time was not recorded


class Placed(msgspec.Struct, frozen=True):
    seq: int
    role: str
    text: str
    classification: str
    start_ms: int
    end_ms: int
    left: float  # % of the call's length
    width: float
    interrupted: bool
    cut: float | None  # % of the call's length: where the caller stopped hearing it
    estimated: bool


class Marker(msgspec.Struct, frozen=True):
    label: str
    at_ms: int
    left: float


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _spans(utterances: list[UtteranceRecord]) -> list[tuple[UtteranceRecord, int, int, bool]]:
    """(utterance, start, end, estimated) in the call's order, an AI utterance without times after the last end."""
    spans: list[tuple[UtteranceRecord, int, int, bool]] = []
    last_end = 0
    for u in utterances:
        if u.start_ms >= 0:
            start, end, estimated = u.start_ms, max(u.end_ms, u.start_ms), False
        else:
            length = u.heard_ms if u.interrupted and u.heard_ms > 0 else AI_ESTIMATE_MS
            start, end, estimated = last_end, last_end + length, True
        spans.append((u, start, end, estimated))
        last_end = max(last_end, end)
    return spans


def call_length_ms(call: CallRecord, utterances: list[UtteranceRecord]) -> int:
    ends = [end for _, _, end, _ in _spans(utterances)]
    recorded = int((_utc(call.ended_at) - _utc(call.started_at)).total_seconds() * 1000) if call.ended_at else 0
    return max([recorded, 1, *ends])


def place(call: CallRecord, utterances: list[UtteranceRecord], tool_calls: list[ToolCallRow]) -> dict[str, Any]:
    """The lanes and markers of the call detail page's timeline."""
    length = call_length_ms(call, utterances)

    def share(ms: int) -> float:
        return round(100.0 * min(max(ms, 0), length) / length, 3)
    placed = []
    for u, start, end, estimated in _spans(utterances):
        cut = share(start + u.heard_ms) if u.interrupted and u.heard_ms >= 0 else None
        placed.append(Placed(u.seq, u.role, u.text, u.classification, start, end, share(start),
                             max(share(end) - share(start), 0.4), u.interrupted, cut, estimated))
    markers = []
    for tool in tool_calls:
        at = int((_utc(tool.created_at) - _utc(call.started_at)).total_seconds() * 1000) if tool.created_at else 0
        markers.append(Marker(tool.name, at, share(at)))
    if call.end_reason == "transferred" or call.fallback.startswith("transfer"):
        markers.append(Marker("transfer", length, 100.0))
    return {"length_ms": length, "caller": [p for p in placed if p.role == "caller"],
            "assistant": [p for p in placed if p.role != "caller"], "markers": markers}
