"""What a worker tells the control plane, and what it does when told to hang up.

Theory of operation: call start and end are reported as they happen; every `stats_every_s` a
WorkerStats row set covers every live call — sooner (at most every UTTERANCE_REPORT_GAP_S) when a call has
a decided utterance not reported yet, so the console shows a caller's words within a fraction of a second.
Building a row asks the call's actors (SampleCounters: each child reports its counters, nothing changes;
then the supervisor's inspection), which costs
~0.1–0.2 ms of event-loop time a call — so the rows are refreshed a slice of the calls at a time
(every 100 ms, a tenth of them), never in one stall of the 20 ms ticker. Nothing is sampled while the
link is down. The reports leave through ControlLink's thread; the loop never waits on the system.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

import msgspec
import structlog

from actors.control_messages import CallClosed, CallOpened, CallRow, WorkerId, WorkerStats
from actors.cores.live_table import seq_of
from actors.lifecycle_messages import CallInspection
from actors.messages import SampleCounters
from actors.settings import CallSettings
from gateway.control.call_metrics import RESTARTS, ROW_KEYS
from gateway.control.link import ControlLink

log = structlog.get_logger("kolbridge.control")

SLICES = 10


UTTERANCES_PER_REPORT = 20  # a call's decided utterances per report, at most (the rest follow in the next)
# a decided utterance is reported at the next 100 ms step, not the next second's report — at most one report
# per this gap (so ≤ 4 reports a second, however many calls speak; each report is the rows already sampled)
UTTERANCE_REPORT_GAP_S = 0.25


class LiveCall(Protocol):
    """What the reporter reads of a live call (gateway/call.py's CallIO)."""

    call_id: str
    settings: CallSettings
    opened_at: float
    frames_in: int
    caller_language: str

    @property
    def decided(self) -> Sequence[dict[str, object]]:
        """The latest decided utterances, each with its seq."""

    @property
    def caller(self) -> str: ...


class Engine(Protocol):
    def tell(self, call_id: str, msg: Any) -> bool: ...
    def inspect(self, call_id: str) -> CallInspection | None: ...


class ControlReporter:
    def __init__(self, calls: Mapping[str, LiveCall], engine: Engine,
                 background: Callable[[Coroutine[Any, Any, None]], None], on_hangup: Callable[[str, str], None],
                 port: int, stats_every_s: float = 1.0) -> None:
        """`calls` and `engine` are the worker's own; `background` runs a task; `on_hangup(call_sid, action)` ends a
        call as the agent's end_call would, or transfers it as transfer_to_human would (the app knows how)."""
        self.calls, self.engine, self.background, self.on_hangup = calls, engine, background, on_hangup
        host = socket.gethostname()
        self.source = WorkerId(f"{host}:{os.getpid()}", host, os.getpid())
        self.link = ControlLink(port, self.source, asyncio.get_running_loop(), self.hangup)
        self.stats_every_s = stats_every_s
        self.rows: dict[str, CallRow] = {}
        self.reported_seq: dict[str, int] = {}  # a call's last utterance sent to the control plane
        self.dropped_seen = 0  # the link's dropped reports when utterances were last sent
        self.frames_sent: dict[str, int] = {}  # a call's frames sent at its previous sample: is the AI speaking

    def start(self) -> None:
        self.link.start()
        self.background(self._stats())

    def stop(self) -> None:
        self.link.stop()

    def call_opened(self, call: LiveCall) -> None:
        self.link.report(CallOpened(self.source, call.call_id, call.settings.business_id, time.time()))

    def call_closed(self, call_sid: str, reason: str, metrics: dict[str, int]) -> None:
        self.rows.pop(call_sid, None)
        self.reported_seq.pop(call_sid, None)
        self.frames_sent.pop(call_sid, None)
        self.link.report(CallClosed(self.source, call_sid, reason, metrics, time.time()))

    def hangup(self, call_sid: str, action: str = "hangup") -> None:
        """On the event loop (the link hands it over)."""
        if call_sid not in self.calls:
            log.warning("CONTROL_HANGUP_UNKNOWN", call_sid=call_sid, action=action)
            return
        self.on_hangup(call_sid, action)

    async def _stats(self) -> None:
        tick, loop = 0, asyncio.get_running_loop()  # the loop's clock: monotonic, and virtual in the tests
        next_report = loop.time() + self.stats_every_s
        last_report = -UTTERANCE_REPORT_GAP_S
        while True:
            await asyncio.sleep(self.stats_every_s / SLICES)
            if not self.link.up:
                continue
            sids = sorted(self.calls)
            for sid in sids[tick % SLICES::SLICES]:
                row = self._row(sid)
                if row is not None:
                    self.rows[sid] = row
            tick += 1
            now = loop.time()
            if now >= next_report or (now >= last_report + UTTERANCE_REPORT_GAP_S and self._has_fresh_utterances(sids)):
                next_report = now + self.stats_every_s
                last_report = now
                self.link.report(self._report(sids))

    def _has_fresh_utterances(self, sids: list[str]) -> bool:
        """A decided utterance not reported yet: the console shows words as they are decided, not a second late."""
        for sid in sids:
            call = self.calls.get(sid)
            if call is not None and call.decided and seq_of(call.decided[-1]) > self.reported_seq.get(sid, 0):
                return True
        return False

    def _report(self, sids: list[str]) -> WorkerStats:
        """Every live call is in every report (a call missing from it has ended): one not sampled yet goes with
        what the gateway knows of it. After a lost report its utterances are sent again (the table keeps
        each once)."""
        if self.link.dropped != self.dropped_seen:
            self.dropped_seen = self.link.dropped
            self.reported_seq.clear()
        live = tuple(self._with_utterances(self.rows.get(sid) or self._placeholder(sid)) for sid in sids if sid in self.calls)
        return WorkerStats(self.source, live, self.link.dropped, time.time())

    def _with_utterances(self, row: CallRow) -> CallRow:
        """The row as reported: with the utterances decided since the call's previous report (at most
        UTTERANCES_PER_REPORT: a burst goes out over the next seconds), its caller and language."""
        call = self.calls[row.call_sid]
        after = self.reported_seq.get(row.call_sid, 0)
        fresh = tuple(u for u in call.decided if seq_of(u) > after)[:UTTERANCES_PER_REPORT]
        if fresh:
            self.reported_seq[row.call_sid] = seq_of(fresh[-1])
        return msgspec.structs.replace(row, utterances=fresh, caller=call.caller, caller_language=call.caller_language)

    def _placeholder(self, call_sid: str) -> CallRow:
        call = self.calls[call_sid]
        age = asyncio.get_running_loop().time() - call.opened_at
        return CallRow(call_sid, call.settings.business_id, "starting", round(age, 1), {"frames_in": call.frames_in})

    def _row(self, call_sid: str) -> CallRow | None:
        engine = self.engine
        now = asyncio.get_running_loop().time()
        engine.tell(call_sid, SampleCounters(now))
        seen = engine.inspect(call_sid)
        if seen is None:
            return None
        counters = {key: seen.counters.get(key, 0) for key in ROW_KEYS}
        counters[RESTARTS] = sum(seen.restarts.values())
        return CallRow(call_sid, seen.business_id, seen.phase, round(now - seen.started_at, 1), counters,
                       seen.last_decision, seen.realtime, dict(seen.children), dict(seen.restarts),
                       speaking=self._speaking(call_sid, seen.counters))

    def _speaking(self, call_sid: str, counters: Mapping[str, int]) -> str:
        """The AI speaks if frames went out since the previous sample; the caller, if the server heard speech
        start that no transcript has ended yet."""
        sent = counters.get("frames_sent", 0)
        ai = sent > self.frames_sent.get(call_sid, sent)
        self.frames_sent[call_sid] = sent
        caller = counters.get("speech_started_count", 0) > counters.get("stt_utterances_total", 0)
        return {(True, True): "both", (True, False): "ai", (False, True): "caller"}.get((ai, caller), "")
