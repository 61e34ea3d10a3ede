"""Prometheus metrics (`GET /metrics`), correct under `serve --workers N`.

Theory of operation: every worker updates its own metrics; with `PROMETHEUS_MULTIPROC_DIR` set (serve
sets it, to a fresh directory, before any worker starts) prometheus_client keeps them in per-process
files and any worker's scrape merges all workers' (its MultiProcessCollector); without it (a single
process: the demo, the tests) the process's own registry answers. A call's counters are added once,
when it ends, from its CALL_METRICS (so a scrape's sums equal the records'); the histograms take the
call's measured series (answer latency, onset → clear, the truncate point's uncertainty) and its
duration; `live_calls` and `ticker_lateness_seconds` are gauges (summed / max over live workers; a
dead worker's are removed by the parent). `serve` prepares the directory (gateway/cli/__init__.py).
The per-call series carry the business as a label; the counters summed from CALL_METRICS are named in
gateway/control/call_metrics.py. Per worker: failed handshakes by reason, and the ticker's lateness.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from gateway.control.call_metrics import COUNTED
from storage.deadletters import observe_dead_writes

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

CALLS = Counter("kolbridge_calls", "Calls ended, by end reason and the language the caller spoke last",
                ["business", "end_reason", "caller_language"])
TRANSFERS = Counter("kolbridge_transfers_ended", "Transfers' <Dial> outcomes (DialCallStatus), by kind: agent or fallback",
                    ["business", "kind", "status"])
LANGUAGE_SWITCHES = Counter("kolbridge_caller_language_switches", "The caller's language switched, by the language switched to",
                            ["business", "to"])
COUNTERS = {key: Counter(f"kolbridge_{name}", f"Sum over ended calls of CALL_METRICS {key}", ["business"])
            for key, name in COUNTED.items()}
RESTARTS = Counter("kolbridge_child_restarts", "Actor children restarted mid-call", ["business"])
ANSWER = Histogram("kolbridge_answer_latency_seconds", "Caller stops speaking → AI audio playing", ["business"],
                   buckets=(0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0))
CLEAR = Histogram("kolbridge_barge_in_clear_seconds", "Barge-in: the caller's first sound → Twilio clear", ["business"],
                  buckets=(0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0))
TRUNCATE = Histogram("kolbridge_truncate_error_ms", "Truncate point: schedule estimate − last echoed mark (ms)",
                     ["business"], buckets=(0, 10, 20, 40, 60, 80, 100, 150, 250))
DURATION = Histogram("kolbridge_call_duration_seconds", "Call duration", ["business"],
                     buckets=(10, 30, 60, 120, 300, 600, 1200, 3600))
LIVE = Gauge("kolbridge_live_calls", "Calls in progress", ["business"], multiprocess_mode="livesum")
SHED = Counter("kolbridge_calls_shed", "New calls sent to the fallback because the worker was full, by reason",
               ["business", "reason"])
HANDSHAKES = Counter("kolbridge_handshakes_failed", "Opening handshakes that failed at the edge, by reason",
                     ["reason"])
LATENESS = Gauge("kolbridge_ticker_lateness_seconds", "p99 lateness of the 20 ms ticker over the last minute",
                 multiprocess_mode="max")


def worker_died(pid: int) -> None:
    if os.environ.get(ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def call_started(business: str) -> None:
    LIVE.labels(business).inc()


def transfer_ended(business: str, kind: str, status: str) -> None:
    TRANSFERS.labels(business, kind, status).inc()


def language_switched(business: str, to_language: str) -> None:
    LANGUAGE_SWITCHES.labels(business, to_language).inc()


def call_ended(business: str, reason: str, metrics: dict[str, int], series: dict[str, list[int]],
               caller_language: str = "") -> None:
    LIVE.labels(business).dec()
    CALLS.labels(business, reason, caller_language).inc()
    for key, counter in COUNTERS.items():
        value = metrics.get(key, 0)
        if value > 0:
            counter.labels(business).inc(value)
    restarts = metrics.get("child_restarts", 0)
    if restarts > 0:
        RESTARTS.labels(business).inc(restarts)
    for ms in series.get("answer_latency_ms", []):
        ANSWER.labels(business).observe(ms / 1000)
    for ms in series.get("barge_in_clear_ms", []):
        CLEAR.labels(business).observe(ms / 1000)
    for ms in series.get("truncate_uncertainty_ms", []):
        TRUNCATE.labels(business).observe(ms)
    DURATION.labels(business).observe(metrics.get("call_duration_ms", 0) / 1000)


def call_shed(business: str, reason: str) -> None:
    SHED.labels(business, reason).inc()


OUTBOUND = Counter("kolbridge_outbound_calls", "Outbound calls by outcome: placed, refused_<why> (dnc, invalid…), "
                   "human, machine, fax, busy, no_answer, failed, canceled, callback_dnc, callback_failed",
                   ["business", "outcome"])


def outbound_call(business: str, outcome: str) -> None:
    OUTBOUND.labels(business, outcome).inc()


def handshake_failed(reason: str) -> None:
    HANDSHAKES.labels(reason).inc()


def ticker_lateness(p99_ms: float) -> None:
    LATENESS.set(p99_ms / 1000)


def scrape() -> bytes:
    if os.environ.get(ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest())


# per worker, by write kind: the write queue's refused writes (storage imports no gateway module: it is told here)
DEAD_WRITES = Counter("kolbridge_db_writes_dead", "Writes the database refused for a reason of their own, moved to the dead letters",
                      ["kind"])


def db_write_dead(kind: str) -> None:
    DEAD_WRITES.labels(kind).inc()


observe_dead_writes(db_write_dead)
