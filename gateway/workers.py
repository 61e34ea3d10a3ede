"""`kolbridge serve --workers N`: N worker processes sharing one port with SO_REUSEPORT.

Each worker is a whole gateway (its own event loop, actor engine, ticker and sockets); the kernel
spreads new connections across them. The parent only starts them, forwards SIGINT/SIGTERM, and reaps
them; a worker that dies is logged (its calls end with it) and the others go on.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
from typing import Callable

import structlog

log = structlog.get_logger("kolbridge.workers")


def run_workers(count: int, target: Callable[[int], int]) -> int:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(i,), name=f"kolbridge-worker-{i}") for i in range(count)]
    for proc in procs:
        proc.start()
    log.info("WORKERS_STARTED", workers=count, pids=[p.pid for p in procs])
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive() and proc.pid:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while any(p.is_alive() for p in procs):
        for proc in procs:
            proc.join(timeout=0.2)
            if not proc.is_alive() and proc.exitcode not in (0, None) and not stopping:
                log.error("WORKER_DIED", pid=proc.pid, exitcode=proc.exitcode)
        time.sleep(0.1)
    codes = [p.exitcode for p in procs]
    log.info("WORKERS_STOPPED", exitcodes=codes)
    return 0 if stopping or all(c == 0 for c in codes) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
