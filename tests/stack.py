"""A whole stack on loopback for end-to-end tests: fake Realtime, SQLite, gateway server."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

import msgspec

from gateway.app import App
from gateway.config import AppConfig, FileConfig, load_env
from gateway.server import start_server
from sim.fake_realtime import FakeRealtime, FakeScript
from storage.businesses import parse_business, upsert_business
from storage.db import create_schema, make_engine, session_factory
from gateway.demo import DEMO_BUSINESS


class Stack(msgspec.Struct):
    app: App
    fake: FakeRealtime
    port: int

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media-stream"


@contextlib.asynccontextmanager
async def running_stack(tmp: Path, script: FakeScript | None = None, env: dict[str, str] | None = None,
                        file_config: FileConfig | None = None) -> AsyncIterator[Stack]:
    fake = await FakeRealtime(script or FakeScript()).start()
    environ = {"KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'kb.db'}", "KOLBRIDGE_REALTIME_URL": fake.url,
               "OPENAI_API_KEY": "sk-test", **(env or {})}
    config = AppConfig(file_config or FileConfig(), load_env(environ), "test")
    db = make_engine(config.env.database_url)
    await create_schema(db)
    sessions = session_factory(db)
    await upsert_business(sessions, parse_business(DEMO_BUSINESS))
    app = App(config, db, sessions)
    app.start()
    server = await start_server(app, "127.0.0.1", 0)
    try:
        yield Stack(app, fake, list(server.sockets)[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
        await app.shutdown()
        await fake.stop()
        await db.dispose()
