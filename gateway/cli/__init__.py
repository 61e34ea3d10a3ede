"""kolbridge command line: serve, demo, business, calls, actors, leads, db, prompt, audio-check, turn-check.

Their arguments are declared in gateway/cli/arguments.py (`db` here), `serve` runs in gateway/cli/serve.py."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from gateway.cli import arguments
from gateway.config import ConfigError, load_config
from gateway.logs import configure_logging

log = structlog.get_logger("kolbridge")


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
    from gateway.cli.console import business_check
    from gateway.cli.records import business_toml
    from storage.businesses import BusinessError, get_business, import_business_file, list_businesses

    check = business_check(load_config(args.config))  # the console's business editor checks the same

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


async def _console_jobs(args: argparse.Namespace) -> int:
    """`kolbridge users …`, `calls purge`, `calls erase-number` (gateway/cli/users.py, gateway/cli/console.py)."""
    from gateway.cli.console import retention_command
    from gateway.cli.users import users_command

    async with _database(args) as sessions:
        if args.cmd == "users":
            return await users_command(args, sessions)
        return await retention_command(args, load_config(args.config), sessions)


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


def _calls(args: argparse.Namespace) -> int:
    """`kolbridge calls …`: a recording, the control plane (live, inspect, hangup), or the records."""
    if args.calls_cmd == "audio":
        return _call_audio(args)
    if args.calls_cmd in ("dial", "dnc", "callback"):
        return asyncio.run(_outbound(args))
    if args.calls_cmd in ("purge", "erase-number"):
        return asyncio.run(_console_jobs(args))
    if args.calls_cmd in ("live", "inspect", "hangup"):
        from gateway.cli.control import calls_command
        port = args.admin_port or load_config(args.config).file.control.admin_port
        return calls_command(args.calls_cmd, port, getattr(args, "call_sid", ""), getattr(args, "json", False),
                             getattr(args, "watch", False))
    return asyncio.run(_records(args))



async def _outbound(args: argparse.Namespace) -> int:
    """`kolbridge calls dial|dnc|callback` (gateway/outbound/commands.py)."""
    from gateway.outbound.commands import outbound_command

    async with _database(args) as sessions:
        return await outbound_command(args, load_config(args.config), sessions)


def _call_audio(args: argparse.Namespace) -> int:
    from gateway.paths import recordings_dir
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
    arguments.add_serve(sub)
    arguments.add_demo(sub)
    arguments.add_business(sub)
    arguments.add_calls(sub)
    arguments.add_actors(sub)
    arguments.add_leads(sub)
    db = sub.add_parser("db", help="database schema")
    db.add_argument("--config", default=None)
    dsub = db.add_subparsers(dest="db_cmd", required=True)
    dsub.add_parser("upgrade", help="apply the Alembic migrations (serve also does this at start)")
    dsub.add_parser("current", help="print the schema revision")
    dead = dsub.add_parser("dead-letters", help="writes the database refused for a reason of their own, set aside")
    dead.add_argument("--json", action="store_true")
    dead.add_argument("--retry", action="store_true", help="re-apply each: deleted when it lands, else attempts +1")
    arguments.add_prompt(sub)
    arguments.add_audio_check(sub)
    arguments.add_turn_check(sub)
    arguments.add_users(sub)
    arguments.add_console(sub)
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
            from gateway.cli.serve import serve_command
            return serve_command(args)
        if args.cmd == "demo":
            from gateway.cli.demo import main_demo
            return main_demo(load_config(args.config).file, keep=args.keep)
        if args.cmd == "business":
            return asyncio.run(_business(args))
        if args.cmd == "db":
            return asyncio.run(_db(args))
        if args.cmd == "calls":
            return _calls(args)
        if args.cmd == "actors":
            return _actors(args)
        if args.cmd in ("prompt", "leads"):
            return asyncio.run(_records(args))
        if args.cmd == "audio-check":
            from gateway.cli import audio_check
            return audio_check.main(args, load_config(args.config).file.barge_in)
        if args.cmd == "turn-check":
            return _turn_check(args)
        if args.cmd == "users":
            return asyncio.run(_console_jobs(args))
        if args.cmd == "console":
            from gateway.cli.console import serve_console
            return asyncio.run(serve_console(args, load_config(args.config)))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    return 1
