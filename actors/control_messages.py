"""The control plane's vocabulary: workers ⇄ the global ControlAdmin, the CLI ⇄ the ControlAdmin.

These cross processes and hosts (thespian's multiprocTCPBase pickles them), so they carry plain data
only. Class names are unique across actors/*messages.py (thespian routes by class name).
"""
from __future__ import annotations

from msgspec import Struct, field


class WorkerId(Struct, frozen=True):
    worker: str  # "host:pid" — unique across hosts
    host: str
    pid: int


class CallOpened(Struct, frozen=True):
    """Worker → admin: a call started on this worker."""

    source: WorkerId
    call_sid: str
    business_id: str
    at: float  # wall-clock (time.time()): the processes share no monotonic clock


class CallRow(Struct, frozen=True):
    """One live call, as its worker sees it (sent every second)."""

    call_sid: str
    business_id: str
    phase: str
    age_s: float
    counters: dict[str, int] = field(default_factory=dict)  # frames, underruns, barge-in, fillers, restarts…
    last_decision: str = ""
    realtime: str = ""  # connected / reconnecting / fallback
    children: dict[str, str] = field(default_factory=dict)  # role → actor address (in its worker)
    restarts: dict[str, int] = field(default_factory=dict)
    # for the operator console: the utterances decided since the worker's previous report (bounded per
    # report; {seq, role, text, label, start_ms, end_ms, interrupted, heard_ms}), the caller's number,
    # the caller's language and who is speaking ("ai", "caller", "both" or "")
    utterances: tuple[dict[str, object], ...] = ()
    caller: str = ""
    caller_language: str = ""
    speaking: str = ""


class WorkerStats(Struct, frozen=True):
    """Worker → admin, every second: every live call of the worker (a worker with none still reports)."""

    source: WorkerId
    rows: tuple[CallRow, ...]
    reports_dropped: int
    at: float


class CallClosed(Struct, frozen=True):
    """Worker → admin: a call ended, with its CALL_METRICS summary."""

    source: WorkerId
    call_sid: str
    reason: str
    metrics: dict[str, int]
    at: float


class Ping(Struct, frozen=True):
    """Worker → admin: are you there (answered with Pong)."""


class Pong(Struct, frozen=True):
    calls: int


class ListLive(Struct, frozen=True):
    """CLI/HTTP → admin: the live table (answered with LiveTable)."""

    include_ended: bool = False


class LiveTableReply(Struct, frozen=True):
    rows: tuple[dict[str, object], ...]
    ended: tuple[dict[str, object], ...] = ()
    workers: tuple[dict[str, object], ...] = ()
    at: float = 0.0


class InspectLive(Struct, frozen=True):
    call_sid: str
    after_seq: int = 0  # the transcript's utterances after this one (the console polls for what is new)


class InspectReply(Struct, frozen=True):
    call_sid: str
    found: bool
    detail: dict[str, object] = field(default_factory=dict)


class HangupCall(Struct, frozen=True):
    """CLI/console → admin → the owning worker: end this call cleanly (as a Twilio stop), or with
    `action="transfer"` move it to the business's human line now (the operator's "transfer now")."""

    call_sid: str
    reason: str = "admin_hangup"
    action: str = "hangup"  # hangup | transfer


class HangupReply(Struct, frozen=True):
    call_sid: str
    sent_to: str  # the owning worker, or "" when no live call has that sid
