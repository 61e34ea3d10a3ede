"""kolbridge command line: serve, demo, db, business, calls, leads, prompt, turn-check."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from gateway.config import ConfigError, load_config, log_audio_mode
from gateway.logs import configure_logging

log = structlog.get_logger("kolbridge")


def _control_plane(args: argparse.Namespace) -> None:
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


async def _serve(args: argparse.Namespace) -> int:
    from gateway.app import App
    from gateway.server import start_server
    from storage.db import create_schema, make_engine, session_factory

    config = load_config(args.config)
    log_audio_mode(config.file.audio, config.source, config.file.realtime.append_ms)
    db = make_engine(config.env.database_url)
    await create_schema(db)
    app = App(config, db, session_factory(db))
    app.start()
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


@contextlib.asynccontextmanager
async def _database(args: argparse.Namespace) -> AsyncIterator[Any]:
    """The configured database, schema ensured, as a session factory; disposed afterwards."""
    from storage.db import create_schema, make_engine, session_factory

    db = make_engine(load_config(args.config).env.database_url)
    try:
        await create_schema(db)
        yield session_factory(db)
    finally:
        await db.dispose()


async def _business(args: argparse.Namespace) -> int:
    from gateway.agent import check_agent
    from gateway.cli.records import business_toml
    from gateway.config.overrides import check_business
    from storage.businesses import BusinessError, get_business, import_business_file, list_businesses

    policy = load_config(args.config).file.tools

    def check(spec: Any) -> list[str]:
        return check_business(spec) + check_agent(spec, policy)

    async with _database(args) as sessions:
        if args.business_cmd == "import":
            for file in args.files:
                try:
                    spec = await import_business_file(sessions, Path(file), check)
                except BusinessError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                print(f"imported {spec.id} ({spec.name}, {spec.language}, numbers: {', '.join(spec.phone_numbers) or '-'})")
        elif args.business_cmd in ("show", "export"):
            view = await get_business(sessions, args.id)
            if view is None:
                print(f"error: no business {args.id!r}", file=sys.stderr)
                return 2
            print(business_toml(view), end="")
        else:
            for b in await list_businesses(sessions):
                state = "active" if b.active else "inactive"
                print(f"{b.id}\t{b.name}\t{b.language}\t{state}\t{', '.join(b.phone_numbers) or '-'}")
        return 0


def _worker_main(options: dict[str, object], index: int) -> int:
    args = argparse.Namespace(**options)
    configure_logging(str(args.log_level))
    structlog.contextvars.bind_contextvars(worker=index)
    return asyncio.run(_serve(args))


def _close_lost_calls(database_url: str, dead_workers: set[str]) -> list[str]:
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


async def _db(args: argparse.Namespace) -> int:
    from storage.db import make_engine, schema_revision

    if args.db_cmd == "dead-letters":
        from gateway.cli.dead_letters import list_letters, retry_letters
        async with _database(args) as sessions:
            code, text = await retry_letters(sessions, args.json) if args.retry else (0, await list_letters(sessions, args.json))
        print(text)
        return code
    async with _database(args):  # applies the migrations
        pass
    engine = make_engine(load_config(args.config).env.database_url)
    try:
        print(f"schema at revision {await schema_revision(engine)}")
    finally:
        await engine.dispose()
    return 0


async def _records(args: argparse.Namespace) -> int:
    from gateway.cli import records

    async with _database(args) as sessions:
        if args.cmd == "calls" and args.calls_cmd == "history":
            text: str | None = await records.calls_history(sessions, args.business, args.json)
        elif args.cmd == "leads":
            text = await records.leads_list(sessions, args.business, args.json)
        elif args.cmd == "calls":
            text = await records.call_show(sessions, args.call_sid, args.json)
        else:
            text = await records.prompt_show(sessions, args.business_id)
        if text is None:
            print("error: not found", file=sys.stderr)
            return 2
        print(text)
        return 0


def _actors(args: argparse.Namespace) -> int:
    from gateway.cli import control as control_cli

    control = load_config(args.config).file.control
    port = args.admin_port or control.admin_port
    if args.actors_cmd == "start":
        convention = args.convention if args.convention is not None else control.convention
        print(control_cli.start_system(port, convention))
        return 0
    code, text = control_cli.status(port) if args.actors_cmd == "status" else control_cli.stop(port)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _call_audio(args: argparse.Namespace) -> int:
    from gateway.app import recordings_dir
    from gateway.recorder import copy_recording

    directory = recordings_dir(load_config(args.config))
    target = Path(args.output or f"{args.call_sid}.wav")
    if not copy_recording(directory, args.call_sid, target):
        print(f"error: no recording of {args.call_sid} in {directory} (a business records its calls with "
              "[business.audio] record = true)", file=sys.stderr)
        return 2
    print(f"{target} (stereo WAV, 8 kHz: left the caller as received, right the AI as played)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kolbridge", description="Twilio ⇄ OpenAI Realtime phone bridge")
    parser.add_argument("--log-level", default="info")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", default=None)
    serve.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (several workers)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)")
    demo = sub.add_parser("demo", help="play a whole Hebrew call offline and print its metrics")
    demo.add_argument("--config", default=None)
    business = sub.add_parser("business", help="manage businesses")
    business.add_argument("--config", default=None)
    bsub = business.add_subparsers(dest="business_cmd", required=True)
    imp = bsub.add_parser("import", help="upsert businesses from TOML files")
    imp.add_argument("files", nargs="+")
    bsub.add_parser("list", help="list businesses")
    for name in ("show", "export"):
        shown = bsub.add_parser(name, help=f"{name} a business as a business file (TOML)")
        shown.add_argument("id")
    calls = sub.add_parser("calls", help="call records")
    calls.add_argument("--config", default=None)
    csub = calls.add_subparsers(dest="calls_cmd", required=True)
    history = csub.add_parser("history", help="recent calls, newest first")
    history.add_argument("--business", default=None)
    history.add_argument("--json", action="store_true")
    show = csub.add_parser("show", help="one call: record, metrics, utterances")
    show.add_argument("call_sid")
    show.add_argument("--json", action="store_true")
    for name, text in (("live", "every live call of every worker and host (the control plane)"),
                       ("inspect", "everything the control plane knows of one live call"),
                       ("hangup", "end a live call cleanly: its worker hangs up, metrics and record as for a stop")):
        live = csub.add_parser(name, help=text)
        if name != "live":
            live.add_argument("call_sid")
        live.add_argument("--admin-port", type=int, default=None)
        if name == "live":
            live.add_argument("--json", action="store_true")
            live.add_argument("--watch", action="store_true", help="refresh every second (Ctrl-C ends)")
    actors = sub.add_parser("actors", help="the standalone actor system of the control plane")
    actors.add_argument("--config", default=None)
    asub = actors.add_subparsers(dest="actors_cmd", required=True)
    astart = asub.add_parser("start", help="start it (and the ControlAdmin on the convention leader)")
    astart.add_argument("--admin-port", type=int, default=None)
    astart.add_argument("--convention", default=None, help="LEADER_HOST:PORT: join as a member host")
    for name in ("status", "stop"):
        asub.add_parser(name, help=f"{name} the actor system").add_argument("--admin-port", type=int, default=None)
    audio = csub.add_parser("audio", help="a recorded call as a stereo WAV (left the caller, right the AI as played)")
    audio.add_argument("call_sid")
    audio.add_argument("-o", "--output", default=None, help="where to write it (default: CALL_SID.wav)")
    leads = sub.add_parser("leads", help="leads the agent collected (save_lead)")
    leads.add_argument("--config", default=None)
    lsub = leads.add_subparsers(dest="leads_cmd", required=True)
    llist = lsub.add_parser("list", help="newest first")
    llist.add_argument("--business", default=None)
    llist.add_argument("--json", action="store_true")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("--config", default=None)
    dsub = db.add_subparsers(dest="db_cmd", required=True)
    dsub.add_parser("upgrade", help="apply the Alembic migrations (serve also does this at start)")
    dsub.add_parser("current", help="print the schema revision")
    dead = dsub.add_parser("dead-letters", help="writes the database refused for a reason of their own, set aside")
    dead.add_argument("--json", action="store_true")
    dead.add_argument("--retry", action="store_true", help="re-apply each: deleted when it lands, else attempts +1")
    prompt = sub.add_parser("prompt", help="prompts")
    prompt.add_argument("--config", default=None)
    psub = prompt.add_subparsers(dest="prompt_cmd", required=True)
    pshow = psub.add_parser("show", help="the full system prompt a call of this business gets")
    pshow.add_argument("business_id")
    audio_check = sub.add_parser("audio-check", help="the articulation measure over time for caller audio")
    audio_check.add_argument("file", help="raw 8 kHz μ-law (.ul) or a 16-bit WAV (its left channel)")
    audio_check.add_argument("--config", default=None)
    audio_check.add_argument("--every-ms", type=int, default=100)
    audio_check.add_argument("--syllables", type=int, default=None)
    audio_check.add_argument("--spectral-hz", type=float, default=None)
    audio_check.add_argument("--rise-db", type=float, default=None)
    check = sub.add_parser("turn-check", help="label transcripts filler/backchannel/turn with a language's lexicon")
    check.add_argument("--lang", default="he")
    check.add_argument("--filler", action="append", default=[], help="extra filler (business addition)")
    check.add_argument("--word", action="append", default=[], help="extra meaningful short word")
    check.add_argument("--backchannel", action="append", default=[], help="extra backchannel (business addition)")
    check.add_argument("texts", nargs="+")
    return parser


def _turn_check(args: argparse.Namespace) -> int:
    from prompts.classifier import classify, load_lexicon

    lexicon = load_lexicon(args.lang).extended(args.filler, args.word, args.backchannel)
    for text in args.texts:
        print(classify(text, lexicon).value)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        if args.cmd == "serve":
            _control_plane(args)
            if args.workers > 1:
                from functools import partial

                from gateway.runtime.workers import run_workers
                args.reuse_port = True
                config = load_config(args.config)
                return run_workers(args.workers, partial(_worker_main, vars(args)),
                                   config.file.server.worker_restarts_per_minute,
                                   partial(_close_lost_calls, config.env.database_url))
            return asyncio.run(_serve(args))
        if args.cmd == "demo":
            from gateway.cli.demo import main_demo
            return main_demo(load_config(args.config).file)
        if args.cmd == "business":
            return asyncio.run(_business(args))
        if args.cmd == "db":
            return asyncio.run(_db(args))
        if args.cmd == "calls" and args.calls_cmd == "audio":
            return _call_audio(args)
        if args.cmd == "calls" and args.calls_cmd in ("live", "inspect", "hangup"):
            from gateway.cli.control import calls_command
            port = args.admin_port or load_config(args.config).file.control.admin_port
            return calls_command(args.calls_cmd, port, getattr(args, "call_sid", ""), getattr(args, "json", False),
                                 getattr(args, "watch", False))
        if args.cmd == "actors":
            return _actors(args)
        if args.cmd in ("calls", "prompt", "leads"):
            return asyncio.run(_records(args))
        if args.cmd == "audio-check":
            from gateway.cli import audio_check
            return audio_check.main(args, load_config(args.config).file.barge_in)
        if args.cmd == "turn-check":
            return _turn_check(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    return 1
