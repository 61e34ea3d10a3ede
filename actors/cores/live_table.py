"""LiveTable core — the control plane's picture of every live call, on every worker and host.

Theory of operation: workers report (CallOpened, a WorkerStats row set every second, CallClosed);
the table keeps the last row of every live call, which worker owns it, and the summaries of the last
`ended_kept` calls. A worker that stops reporting (its process died, or the link broke) is stale
after `stale_after_s`: its calls stay listed, marked stale, until it reports again (they are then
refreshed or dropped) or until `forget_after_s` (a dead worker's calls are closed by the gateway's
worker_lost sweep; the admin only shows). Time is wall-clock seconds, passed in.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import msgspec

from actors.control_messages import CallClosed, CallOpened, CallRow, WorkerId, WorkerStats

TRANSCRIPT_KEPT = 300  # utterances of a live call the table keeps (the console's live transcript)


def seq_of(utterance: Mapping[str, object]) -> int:
    """An utterance's number within its call (as the worker reports it; 0 if missing)."""
    return int(str(utterance.get("seq", 0)))


class LiveCall(msgspec.Struct):
    call_sid: str
    business_id: str
    worker: WorkerId
    opened_at: float
    row: CallRow | None = None
    seen_at: float = 0.0
    transcript: list[dict[str, object]] = msgspec.field(default_factory=list)  # decided utterances, by seq


class WorkerSeen(msgspec.Struct):
    worker: WorkerId
    seen_at: float
    reports_dropped: int = 0


class LiveTable:
    def __init__(self, ended_kept: int = 200, stale_after_s: float = 5.0, forget_after_s: float = 120.0) -> None:
        self.calls: dict[str, LiveCall] = {}
        self.ended: OrderedDict[str, dict[str, object]] = OrderedDict()
        self.workers: dict[str, WorkerSeen] = {}
        self.ended_kept = ended_kept
        self.stale_after_s = stale_after_s
        self.forget_after_s = forget_after_s

    def handle(self, msg: object, now: float) -> None:
        if isinstance(msg, CallOpened):
            self._seen(msg.source, now)
            self.calls[msg.call_sid] = LiveCall(msg.call_sid, msg.business_id, msg.source, msg.at, seen_at=now)
        elif isinstance(msg, WorkerStats):
            self._seen(msg.source, now, msg.reports_dropped)
            reported = {row.call_sid: row for row in msg.rows}
            gone = [sid for sid, live in self.calls.items()  # calls of this worker it no longer reports: ended
                    if live.worker.worker == msg.source.worker and sid not in reported]
            for sid in gone:
                del self.calls[sid]
            for sid, row in reported.items():
                if sid not in self.calls:  # the admin (re)started mid-call: the worker's rows bring it back
                    self.calls[sid] = LiveCall(sid, row.business_id, msg.source, now - row.age_s)
                self.calls[sid].row, self.calls[sid].seen_at = row, now
                self._transcribe(self.calls[sid], row)
        elif isinstance(msg, CallClosed):
            self._seen(msg.source, now)
            closed = self.calls.pop(msg.call_sid, None)
            self.ended[msg.call_sid] = {"call_sid": msg.call_sid, "reason": msg.reason, "worker": msg.source.worker,
                                        "business_id": closed.business_id if closed else "", "ended_at": msg.at,
                                        "metrics": dict(msg.metrics)}
            while len(self.ended) > self.ended_kept:
                self.ended.popitem(last=False)
        self._forget(now)

    @staticmethod
    def _transcribe(call: LiveCall, row: CallRow) -> None:
        """A report's new utterances, appended once each (a report sent twice adds nothing)."""
        last = seq_of(call.transcript[-1]) if call.transcript else 0
        fresh = [u for u in row.utterances if seq_of(u) > last]
        if fresh:
            call.transcript = (call.transcript + fresh)[-TRANSCRIPT_KEPT:]

    def _seen(self, source: WorkerId, now: float, dropped: int | None = None) -> None:
        seen = self.workers.setdefault(source.worker, WorkerSeen(source, now))
        seen.seen_at = now
        if dropped is not None:
            seen.reports_dropped = dropped

    def _forget(self, now: float) -> None:
        gone = {w for w, seen in self.workers.items() if now - seen.seen_at > self.forget_after_s}
        for worker in gone:
            del self.workers[worker]
        for sid in [sid for sid, call in self.calls.items() if call.worker.worker in gone]:
            del self.calls[sid]

    def owner(self, call_sid: str) -> WorkerId | None:
        call = self.calls.get(call_sid)
        return call.worker if call else None

    def row(self, call: LiveCall, now: float) -> dict[str, object]:
        row = call.row
        stale = now - self.workers[call.worker.worker].seen_at > self.stale_after_s \
            if call.worker.worker in self.workers else True
        out: dict[str, object] = {"call_sid": call.call_sid, "business_id": call.business_id,
                                  "worker": call.worker.worker, "host": call.worker.host, "pid": call.worker.pid,
                                  "age_s": round(now - call.opened_at, 1), "stale": stale}
        if row is not None:
            out.update({"phase": row.phase, "realtime": row.realtime, "last_decision": row.last_decision,
                        "caller": row.caller, "caller_language": row.caller_language, "speaking": row.speaking,
                        "utterances": len(call.transcript), **row.counters})
        return out

    def live(self, now: float) -> list[dict[str, object]]:
        """One row a call, oldest first."""
        return [self.row(call, now) for call in sorted(self.calls.values(), key=lambda c: c.opened_at)]

    def detail(self, call_sid: str, now: float, after_seq: int = 0) -> dict[str, object] | None:
        """One call's row, its actors and its transcript (the utterances after `after_seq`)."""
        call = self.calls.get(call_sid)
        if call is None:
            return None
        out = self.row(call, now)
        out["transcript"] = [u for u in call.transcript if seq_of(u) > after_seq]
        if call.row is not None:
            out.update({"children": dict(call.row.children), "restarts": dict(call.row.restarts),
                        "counters": dict(call.row.counters)})
        return out

    def worker_rows(self, now: float) -> list[dict[str, object]]:
        return [{"worker": w, "host": s.worker.host, "pid": s.worker.pid, "seen_s_ago": round(now - s.seen_at, 1),
                 "reports_dropped": s.reports_dropped, "calls": sum(1 for c in self.calls.values()
                                                                     if c.worker.worker == w)}
                for w, s in sorted(self.workers.items())]
