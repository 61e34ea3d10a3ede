"""`kolbridge serve`: the control plane made ready, then one worker on this process's event loop, or
N worker processes sharing the port (gateway/runtime/workers.py). A worker runs until SIGINT/SIGTERM,
then drains (App.drain: new streams refused, live calls may finish within the grace) and shuts down;
a second signal ends the grace."""
from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import structlog

from gateway.config import load_config, log_audio_mode
from gateway.logs import configure_logging

log = structlog.get_logger("kolbridge")


def serve_command(args: argparse.Namespace) -> int:
    prepare_control_plane(args)
    if args.workers > 1:
        from functools import partial

        from gateway.runtime.workers import run_workers
        args.reuse_port = True
        config = load_config(args.config)
        return run_workers(args.workers, partial(worker_main, vars(args)), config.file.server.worker_restarts_per_minute,
                           partial(close_lost_calls_of, config.env.database_url))
    return asyncio.run(serve(args))


def prepare_control_plane(args: argparse.Namespace) -> None:
    """Before any worker: the actor system (started when none runs on the admin port) and, for several
    workers, prometheus_client's multiprocess directory (set before a worker imports it)."""
    import os
    import tempfile

    control = load_config(args.config).file.control
    if control.enabled:
        from gateway.cli.control import start_system
        try:
            log.info("CONTROL_PLANE", detail=start_system(control.admin_port, control.convention))
        except Exception as exc:  # noqa: BLE001 — calls do not need it: serve goes on, reports are dropped
            log.error("CONTROL_PLANE_START_FAILED", port=control.admin_port, error=str(exc)[:300], exc_info=True)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = Path(control.metrics_dir or Path(tempfile.gettempdir()) / f"kolbridge-metrics-{args.port}")
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


async def serve(args: argparse.Namespace) -> int:
    from gateway.app import App
    from gateway.server import start_server
    from storage.db import create_schema, make_engine, session_factory

    config = load_config(args.config)
    log_audio_mode(config.file.audio, config.source, config.file.realtime.append_ms)
    db = make_engine(config.env.database_url)
    await create_schema(db)
    app = App(config, db, session_factory(db))
    app.start()
    from gateway.outbound.scheduler import start_scheduler
    start_scheduler(app)  # scheduled callbacks: every worker competes for the lease, one dials
    server = await start_server(app, args.host, args.port, reuse_port=args.reuse_port)
    log.info("SERVING", host=args.host, port=args.port, realtime_url=config.env.realtime_url,
             signatures=bool(config.env.twilio_auth_token))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    grace = [config.file.server.shutdown_grace_s]

    def on_signal() -> None:
        if stop.is_set():
            grace[0] = 0.0  # a second signal: no more grace
            app.drain_deadline = 0.0
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    log.info("SHUTTING_DOWN", calls=len(app.calls), grace_s=grace[0])
    await app.drain(grace[0])  # new streams refused, /voice answers the fallback, live calls may finish
    server.close()
    await app.shutdown()
    await server.wait_closed()
    await db.dispose()
    return 0


def worker_main(options: dict[str, object], index: int) -> int:
    args = argparse.Namespace(**options)
    configure_logging(str(args.log_level))
    structlog.contextvars.bind_contextvars(worker=index)
    return asyncio.run(serve(args))


def close_lost_calls_of(database_url: str, dead_workers: set[str]) -> list[str]:
    """The parent of `serve --workers`: close the calls of a worker that died (worker_lost)."""
    from datetime import datetime, timezone

    from storage.calls import close_lost_calls
    from storage.db import make_engine, session_factory

    async def run() -> list[str]:
        engine = make_engine(database_url)
        try:
            never = datetime(1970, 1, 1, tzinfo=timezone.utc)
            return await asyncio.wait_for(close_lost_calls(session_factory(engine), never, dead_workers), 10)
        finally:
            await engine.dispose()
    return asyncio.run(run())
