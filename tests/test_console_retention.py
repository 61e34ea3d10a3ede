"""Retention: the purge removes the recordings and transcripts of calls older than their business's
retention_days (keeping the call rows, each purge in the audit log) and keeps the newer ones; erasing a
caller number removes that caller's calls, utterances, leads and recordings; both from the console and
from the command line."""
from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.retention import erase_number, purge_expired
from gateway.cli import main
from storage.audit import list_audit
from storage.businesses import parse_business, upsert_business
from storage.calls import get_call, get_utterances
from storage.console_queries import Scope, scoped_leads
from storage.db import make_engine, session_factory
from storage.models import utcnow
from tests.test_console_support import (
    NOW,
    add_call,
    add_lead,
    business_file,
    console_settings,
    page_token,
    sessions,
    signed_in,
    two_businesses,
    write_recording,
)

__all__ = ["sessions"]
T = TypeVar("T")
SAID = (("caller", "שלום"), ("assistant", "שלום לך"))


SWITCH = {"seq": 1, "at_ms": 4200, "from": "he", "to": "ar", "evidence": "3 Arabic words: «مرحبا بدي دور»"}


async def aged_calls(sessions: async_sessionmaker[AsyncSession], recordings: Path, now: datetime = NOW) -> None:
    """biz-a keeps 30 days; biz-b keeps everything: calls of each, 40 and 10 days old."""
    await two_businesses(sessions)
    await upsert_business(sessions, parse_business(business_file("biz-a", number="+97230000001", retention_days=30)))
    for call_sid, business, age in (("CA-OLD", "biz-a", 40), ("CA-NEW", "biz-a", 10), ("CB-OLD", "biz-b", 40)):
        await add_call(sessions, call_sid, business, now - timedelta(days=age), utterances=SAID,
                       language_switches=[SWITCH], caller_language="ar")
        write_recording(recordings, call_sid)


async def test_purge_removes_what_is_past_retention_only(sessions: async_sessionmaker[AsyncSession],
                                                         tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    await aged_calls(sessions, recordings)
    purged = await purge_expired(sessions, recordings, NOW, "ops@example.com")
    assert [(p.call_sid, p.utterances, p.recording) for p in purged] == [("CA-OLD", 2, True)]
    assert not (recordings / "CA-OLD.wav").exists() and await get_utterances(sessions, "CA-OLD") == []
    old, new = await get_call(sessions, "CA-OLD"), await get_call(sessions, "CA-NEW")
    assert old is not None and new is not None  # the record stays: its languages and moments, not the caller's words
    assert old.language_switches == [{**SWITCH, "evidence": ""}] and old.caller_language == "ar"
    assert new.language_switches == [SWITCH]
    for kept in ("CA-NEW", "CB-OLD"):
        assert (recordings / f"{kept}.wav").exists() and len(await get_utterances(sessions, kept)) == 2
    assert [(e.action, e.target, e.business_id) for e in await list_audit(sessions, None)][0] == ("purged", "CA-OLD", "biz-a")
    assert await purge_expired(sessions, recordings, NOW) == []  # nothing left to purge: no second audit row
    assert [e.action for e in await list_audit(sessions, None)].count("purged") == 1


async def test_erase_number_removes_everything_of_that_caller(sessions: async_sessionmaker[AsyncSession],
                                                              tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    await two_businesses(sessions)
    for call_sid, caller in (("CA-1", "+972501111111"), ("CA-2", "+972501111111"), ("CA-3", "+972502222222")):
        await add_call(sessions, call_sid, "biz-a", caller=caller, utterances=SAID)
        await add_lead(sessions, call_sid, "biz-a", name=call_sid)
        write_recording(recordings, call_sid)
    await add_call(sessions, "CB-1", "biz-b", caller="+972501111111", utterances=SAID)
    erased = await erase_number(sessions, recordings, Scope("biz-a"), "+972501111111", "a@example.com")
    assert sorted(erased) == ["CA-1", "CA-2"]
    for gone in ("CA-1", "CA-2"):
        assert await get_call(sessions, gone) is None and await get_utterances(sessions, gone) == []
        assert not (recordings / f"{gone}.wav").exists()
    assert [lead.call_sid for lead in await scoped_leads(sessions, Scope(None))] == ["CA-3"]
    assert await get_call(sessions, "CA-3") is not None and (recordings / "CA-3.wav").exists()
    assert await get_call(sessions, "CB-1") is not None  # another business's call is outside A's scope
    entry = (await list_audit(sessions, "biz-a"))[0]
    assert (entry.action, entry.user_email, sorted(entry.detail["call_sids"])) == ("erase_number", "a@example.com",
                                                                                  ["CA-1", "CA-2"])


async def test_the_retention_page_erases_and_purges(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    await aged_calls(sessions, recordings)
    await add_call(sessions, "CA-ERASE", "biz-a", caller="+972509999999")
    await add_call(sessions, "CB-ERASE", "biz-b", caller="+972509999999")
    settings = console_settings(sessions, tmp_path)
    async with signed_in(settings, "a@example.com") as client:
        token = await page_token(client, "/retention")
        assert (await client.post("/retention/purge", data={"csrf": token})).status_code == 404  # admins only
        answer = await client.post("/retention/erase", data={"csrf": token, "number": "+972509999999"})
        assert answer.status_code == 200 and await get_call(sessions, "CA-ERASE") is None
        assert await get_call(sessions, "CB-ERASE") is not None  # B's call of the same number: not A's to erase
    async with signed_in(settings, "admin@example.com") as admin:
        token = await page_token(admin, "/retention")
        assert (await admin.post("/retention/purge", data={"csrf": token})).status_code == 200
    assert not (recordings / "CA-OLD.wav").exists() and (recordings / "CB-OLD.wav").exists()
    assert ("purged", "admin@example.com") in [(e.action, e.user_email) for e in await list_audit(sessions, None)]


def in_database(url: str, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run `work` on the database at `url` (the command line runs its own event loop, so the test has none)."""
    async def run() -> T:
        engine = make_engine(url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()
    return asyncio.run(run())


def test_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", url)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["db", "upgrade"]) == 0
    in_database(url, lambda sessions: aged_calls(sessions, tmp_path / "recordings", utcnow()))  # beside the database
    assert main(["users", "add", "ops@example.com", "--role", "business", "--business", "biz-a", "--password-stdin"]) == 0
    assert main(["users", "add", "x@example.com", "--role", "business", "--password-stdin"]) == 2  # no --business
    assert main(["users", "disable", "ops@example.com"]) == 0
    assert main(["users", "list"]) == 0
    assert "ops@example.com\tbusiness\tbiz-a\tdisabled" in capsys.readouterr().out
    assert main(["calls", "purge"]) == 0
    assert "1 calls purged" in capsys.readouterr().out and not (tmp_path / "recordings" / "CA-OLD.wav").exists()
    assert main(["calls", "erase-number", "+972501234567"]) == 0
    assert "3 calls of +972501234567 erased" in capsys.readouterr().out
    assert in_database(url, lambda sessions: get_call(sessions, "CB-OLD")) is None
    actions = {e.action for e in in_database(url, lambda sessions: list_audit(sessions, None))}
    assert {"user_add", "user_disable", "purged", "erase_number"} <= actions
