"""What the console's tests share (no tests of its own): a database on SQLite (and PostgreSQL when
KOLBRIDGE_TEST_PG_URL is set) with two businesses, their users and calls; the console built on it, served
in-process over httpx's ASGI transport; a control plane held in memory; signing in as a browser does."""
from __future__ import annotations

import contextlib
import os
import re
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from console.app import build_app
from console.settings import ConsoleSettings
from gateway.cli.console import business_check
from gateway.config import load_config
from storage.businesses import parse_business, upsert_business
from storage.db import create_schema, make_engine, session_factory
from storage.models import CallRecord, LeadRecord, UtteranceRecord
from storage.users import add_user

PG_URL = os.environ.get("KOLBRIDGE_TEST_PG_URL", "")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="KOLBRIDGE_TEST_PG_URL not set (.ci/run starts PostgreSQL and sets it)"))]
PASSWORD = "correct horse battery"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def business_file(business_id: str, greeting: str = "שלום, במה אפשר לעזור?", number: str = "",
                  retention_days: int = 0) -> str:
    numbers = f'"{number}"' if number else ""
    return (f'[business]\nid = "{business_id}"\nname = "עסק {business_id}"\nlanguage = "he"\n'
            f'greeting = "{greeting}"\nphone_numbers = [{numbers}]\nfillers = ["אהממם"]\n'
            f'retention_days = {retention_days}\n')


async def open_database(backend: str, tmp_path: Path) -> AsyncEngine:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'console.db'}" if backend == "sqlite" else PG_URL)
    if backend == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await create_schema(engine)
    return engine


@pytest.fixture(params=BACKENDS)
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = await open_database(request.param, tmp_path)
    yield session_factory(engine)
    await engine.dispose()


async def two_businesses(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Businesses a and b, an admin, a user of each."""
    await upsert_business(sessions, parse_business(business_file("biz-a", number="+97230000001")))
    await upsert_business(sessions, parse_business(business_file("biz-b", number="+97230000002")))
    await add_user(sessions, "admin@example.com", "admin", None, PASSWORD)
    await add_user(sessions, "a@example.com", "business", "biz-a", PASSWORD)
    await add_user(sessions, "b@example.com", "business", "biz-b", PASSWORD)


async def add_call(sessions: async_sessionmaker[AsyncSession], call_sid: str, business_id: str,
                   started_at: datetime = NOW, seconds: float | None = 30.0, caller: str = "+972501234567",
                   utterances: tuple[tuple[str, str], ...] = (), **fields: Any) -> None:
    """A call record as the gateway leaves it, with (role, text) utterances, 1 s apart."""
    async with sessions.begin() as session:
        session.add(CallRecord(call_sid=call_sid, business_id=business_id, from_number=caller, to_number="+97230000001",
                               started_at=started_at,
                               ended_at=started_at + timedelta(seconds=seconds) if seconds is not None else None,
                               **fields))
        for seq, (role, said) in enumerate(utterances, start=1):
            session.add(UtteranceRecord(call_sid=call_sid, seq=seq, role=role, text=said,
                                        classification="turn" if role == "caller" else "",
                                        start_ms=seq * 1000 if role == "caller" else -1,
                                        end_ms=seq * 1000 + 800 if role == "caller" else -1))


async def add_lead(sessions: async_sessionmaker[AsyncSession], call_sid: str, business_id: str,
                   created_at: datetime = NOW, **lead_fields: Any) -> None:
    async with sessions.begin() as session:
        session.add(LeadRecord(call_sid=call_sid, tool_call_id=f"tc-{call_sid}", business_id=business_id,
                               fields=dict(lead_fields), created_at=created_at))


def write_recording(directory: Path, call_sid: str, seconds: float = 1.0) -> Path:
    """A stereo 8 kHz WAV as the recorder writes it: a tone on the left, silence on the right."""
    directory.mkdir(parents=True, exist_ok=True)
    frames = int(8000 * seconds)
    left = (8000 * np.sin(np.arange(frames) * 2 * np.pi * 440 / 8000)).astype("<i2")
    stereo = np.zeros(2 * frames, dtype="<i2")
    stereo[0::2] = left
    path = directory / f"{call_sid}.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(stereo.tobytes())
    return path


@dataclass
class MemoryControlPlane:
    """The live calls a ControlAdmin would answer with (None: no control plane), and the hang-ups asked of it."""

    rows: list[dict[str, object]] | None = None
    hung_up: list[str] = field(default_factory=list)
    transferred: list[str] = field(default_factory=list)
    transcripts: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # as the workers report them

    async def table(self) -> list[dict[str, object]] | None:
        return None if self.rows is None else list(self.rows)

    async def inspect(self, call_sid: str) -> dict[str, object] | None:
        row = next((r for r in self.rows or [] if r.get("call_sid") == call_sid), None)
        return None if row is None else {**row, "transcript": list(self.transcripts.get(call_sid, []))}

    async def hangup(self, call_sid: str, action: str = "hangup") -> str:
        if not any(row.get("call_sid") == call_sid for row in self.rows or []):
            return ""
        (self.hung_up if action == "hangup" else self.transferred).append(call_sid)
        return "host:1"


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def console_settings(sessions: async_sessionmaker[AsyncSession], tmp_path: Path, **overrides: Any) -> ConsoleSettings:
    settings: dict[str, Any] = dict(
        sessions=sessions, secret_key="test-secret", recordings_dir=tmp_path / "recordings", live=MemoryControlPlane(),
        business_check=business_check(load_config(None, environ={})), purge_every_s=0, clock=Clock())
    settings.update(overrides)
    return ConsoleSettings(**settings)


def client_for(settings: ConsoleSettings, address: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(settings), client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(await client.get("/login"))
    return await client.post("/login", data={"email": email, "password": password, "csrf": token})


@contextlib.asynccontextmanager
async def signed_in(settings: ConsoleSettings, email: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings) as client:
        answer = await sign_in(client, email)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        yield client


async def page_token(client: httpx.AsyncClient, url: str = "/history") -> str:
    return csrf_of(await client.get(url))
