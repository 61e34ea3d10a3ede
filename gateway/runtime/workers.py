"""`kolbridge serve --workers N`: N worker processes sharing one port with SO_REUSEPORT.

Each worker is a whole gateway (its own event loop, actor engine, ticker and sockets); the kernel
spreads new connections across them. The parent starts them, forwards SIGINT/SIGTERM (each worker
drains: see App.drain), and keeps N alive: a worker that dies is replaced after a backoff
(0.5 s doubling to 10 s while deaths repeat), at most `restarts_per_minute` times a minute, and the
calls it was serving are closed in the database at once as `worker_lost` (keeping their last
heartbeat's metrics) — the caller's stream died with the process; the record must not stay "live".
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import structlog

log = structlog.get_logger("kolbridge.workers")
LostCallsCloser = Callable[[set[str]], list[str]]


class WorkerPool:
    def __init__(self, count: int, target: Callable[[int], int], restarts_per_minute: int = 5,
                 close_lost: LostCallsCloser | None = None) -> None:
        self.ctx = mp.get_context("spawn")
        self.count, self.target = count, target
        self.restarts_per_minute = restarts_per_minute
        self.close_lost = close_lost
        self.procs: dict[int, BaseProcess] = {}
        self.restart_times: deque[float] = deque()
        self.due: dict[int, float] = {}  # worker index → when to start its replacement
        self.backoff: dict[int, float] = {}
        self.started_at: dict[int, float] = {}
        self.stopping = False
        self.replaced = 0

    def spawn(self, index: int) -> None:
        proc = self.ctx.Process(target=self.target, args=(index,), name=f"kolbridge-worker-{index}")
        proc.start()
        self.procs[index] = proc
        self.started_at[index] = time.monotonic()

    def _died(self, index: int, proc: BaseProcess) -> None:
        host = socket.gethostname()
        log.error("WORKER_DIED", worker=index, pid=proc.pid, exitcode=proc.exitcode)
        if proc.pid is not None:
            from gateway.control import prom
            prom.worker_died(proc.pid)  # its live-call gauge no longer counts
        if self.close_lost is not None and proc.pid is not None:
            try:
                closed = self.close_lost({f"{host}:{proc.pid}"})
                log.warning("WORKER_CALLS_CLOSED", worker=index, pid=proc.pid, calls=closed)
            except Exception as exc:  # noqa: BLE001 — the database may be down: the workers' sweep retries
                log.error("WORKER_CALLS_CLOSE_FAILED", worker=index, error=str(exc)[:200], exc_info=True)
        now = time.monotonic()
        if now - self.started_at.get(index, now) > 60.0:
            self.backoff.pop(index, None)  # it had been healthy for a minute: start the backoff over
        delay = self.backoff.get(index, 0.25) * 2
        self.backoff[index] = min(10.0, delay)
        self.due[index] = now + delay

    def _restart_allowed(self, now: float) -> bool:
        while self.restart_times and now - self.restart_times[0] > 60.0:
            self.restart_times.popleft()
        return len(self.restart_times) < self.restarts_per_minute

    def step(self) -> None:
        now = time.monotonic()
        for index, proc in list(self.procs.items()):
            proc.join(timeout=0.05)
            if not proc.is_alive():
                del self.procs[index]
                if not self.stopping:
                    self._died(index, proc)
        for index, when in list(self.due.items()):
            if self.stopping or now < when:
                continue
            if not self._restart_allowed(now):
                log.error("WORKER_RESTART_LIMIT", worker=index, per_minute=self.restarts_per_minute)
                self.due[index] = now + 5.0
                continue
            del self.due[index]
            self.restart_times.append(now)
            self.spawn(index)
            self.replaced += 1
            log.warning("WORKER_REPLACED", worker=index, pid=self.procs[index].pid, replaced=self.replaced)

    def stop(self) -> None:
        self.stopping = True
        self.due.clear()
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid:
                proc.terminate()  # SIGTERM: the worker drains its calls, then exits


def run_workers(count: int, target: Callable[[int], int], restarts_per_minute: int = 5,
                close_lost: LostCallsCloser | None = None) -> int:
    pool = WorkerPool(count, target, restarts_per_minute, close_lost)
    for index in range(count):
        pool.spawn(index)
    log.info("WORKERS_STARTED", workers=count, pids=[p.pid for p in pool.procs.values()])

    def stop(signum: int, frame: object) -> None:
        pool.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while pool.procs or (pool.due and not pool.stopping):
        pool.step()
        time.sleep(0.1)
    log.info("WORKERS_STOPPED", replaced=pool.replaced)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
