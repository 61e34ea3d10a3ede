"""`kolbridge console`: the operator console served by uvicorn, a process of its own; `kolbridge calls purge`
and `calls erase-number`, the retention jobs the console also runs (console/retention.py).

The session cookie's key comes from KOLBRIDGE_CONSOLE_SECRET, else from a file beside the database
(`console_secret`, created once, owner-only) so sessions survive a restart."""
from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import AppConfig
from gateway.paths import beside_database, recordings_dir
from storage.businesses import BusinessSpec


def business_check(config: AppConfig) -> Any:
    """What `kolbridge business import` checks beyond parse_business: the setting overrides and the agent."""
    from gateway.agent import check_agent
    from gateway.config.overrides import check_business

    policy = config.file.tools

    def check(spec: BusinessSpec) -> list[str]:
        return check_business(spec) + check_agent(spec, policy)
    return check


def session_secret(config: AppConfig) -> str:
    given = os.environ.get("KOLBRIDGE_CONSOLE_SECRET", "")
    if given:
        return given
    path = beside_database(config.env.database_url, "console_secret")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return Path(path).read_text(encoding="utf-8").strip()


def console_settings(args: argparse.Namespace, config: AppConfig, sessions: async_sessionmaker[AsyncSession]) -> Any:
    from console.live import ControlPlane
    from console.settings import ConsoleSettings

    port = args.admin_port or config.file.control.admin_port
    return ConsoleSettings(sessions=sessions, secret_key=session_secret(config), recordings_dir=recordings_dir(config),
                           live=ControlPlane(port), business_check=business_check(config),
                           secure_cookie=config.env.public_url.startswith("https"), max_failures=args.max_failures,
                           lock_s=args.lock_minutes * 60)


async def serve_console(args: argparse.Namespace, config: AppConfig) -> int:
    import uvicorn

    from console.app import build_app
    from storage.db import create_schema, make_engine, session_factory

    engine = make_engine(config.env.database_url)
    try:
        await create_schema(engine)
        app = build_app(console_settings(args, config, session_factory(engine)))
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info", lifespan="on"))
        await server.serve()
    finally:
        await engine.dispose()
    return 0


async def retention_command(args: argparse.Namespace, config: AppConfig,
                            sessions: async_sessionmaker[AsyncSession]) -> int:
    from console.retention import erase_number, purge_expired
    from gateway.cli.users import cli_actor
    from storage.console_queries import Scope
    from storage.models import utcnow

    if args.calls_cmd == "purge":
        purged = await purge_expired(sessions, recordings_dir(config), utcnow(), cli_actor())
        for call in purged:
            print(f"{call.call_sid}\t{call.business_id}\tutterances {call.utterances}\t"
                  f"recording {'removed' if call.recording else '-'}")
        print(f"{len(purged)} calls purged")
        return 0
    erased = await erase_number(sessions, recordings_dir(config), Scope(None), args.e164, cli_actor())
    print(f"{len(erased)} calls of {args.e164} erased" + (": " + ", ".join(erased) if erased else ""))
    return 0
