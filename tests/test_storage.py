"""Storage on SQLite and, when KOLBRIDGE_TEST_PG_URL is set (.ci/run starts a local server), PostgreSQL."""
from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.businesses import BusinessError, business_for_number, get_business, list_businesses, parse_business, upsert_business
from storage.calls import apply_write, get_call, get_utterances, list_calls
from storage.writequeue import CallEndWrite, CallStartWrite, HeartbeatWrite, UtteranceWrite
from storage.db import create_schema, make_engine, schema_revision, session_factory

PG_URL = os.environ.get("KOLBRIDGE_TEST_PG_URL", "")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="KOLBRIDGE_TEST_PG_URL not set (.ci/run starts PostgreSQL and sets it)"))]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=BACKENDS)
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else PG_URL
    engine = make_engine(url)
    if request.param == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await create_schema(engine)
    await create_schema(engine)  # idempotent
    assert await schema_revision(engine) == "0003"
    yield session_factory(engine)
    await engine.dispose()


async def test_businesses_upsert_route_and_list(sessions: async_sessionmaker[AsyncSession]) -> None:
    for name in ("demo-garage.toml", "english-clinic.toml"):
        await upsert_business(sessions, parse_business((REPO / "examples" / name).read_text(encoding="utf-8")))
    garage = await business_for_number(sessions, "+97235550123")
    assert garage is not None and garage.name == "מוסך הדגמה" and garage.permissions["schedule_appointments"]
    assert garage.overrides["barge_in"]["candidate_action"] == "duck" and "טסט" in garage.vocabulary
    assert [b.id for b in await list_businesses(sessions)] == ["demo-garage", "riverside-clinic"]
    thief = parse_business('[business]\nid="thief"\nname="t"\nlanguage="en"\ngreeting="g"\n'
                           'phone_numbers=["+15555550142"]\n')
    with pytest.raises(BusinessError, match="already routed"):
        await upsert_business(sessions, thief)
    assert await get_business(sessions, "thief") is None  # nothing half-written


async def test_call_record_with_utterances(sessions: async_sessionmaker[AsyncSession]) -> None:
    # writes race (an utterance may land before its call's start) and may be replayed: all idempotent
    first = UtteranceWrite("CA1", 1, "caller", "לא", "turn", 1200, 1500, True, -1)
    await apply_write(sessions, first)
    await apply_write(sessions, CallStartWrite("CA1", "MZ1", "demo-garage", {"core_role": "abc"}, "+9725", "+9723", "h:1"))
    await apply_write(sessions, HeartbeatWrite("h:1", {"CA1": {"frames_in": 5}}))
    await apply_write(sessions, UtteranceWrite("CA1", 2, "assistant", "בסדר", "", -1, -1, True, 640))
    await apply_write(sessions, first)  # a replay
    await apply_write(sessions, CallEndWrite("CA1", "twilio_stop", {"frames_in": 10}, 1, {"truncate_audio_end_ms": [640]}))
    await apply_write(sessions, HeartbeatWrite("h:1", {"CA1": {"frames_in": 7}}))  # late: must not reopen the call
    row = await get_call(sessions, "CA1")
    assert row is not None and row.business_id == "demo-garage" and row.from_number == "+9725"
    assert row.metrics == {"frames_in": 10} and row.series == {"truncate_audio_end_ms": [640]} and row.ended_at
    assert row.end_reason == "twilio_stop" and row.worker == "h:1"
    utterances = await get_utterances(sessions, "CA1")
    assert [(u.seq, u.role, u.text, u.interrupted) for u in utterances] == [
        (1, "caller", "לא", True), (2, "assistant", "בסדר", True)]
    assert [c.call_sid for c in await list_calls(sessions, "demo-garage")] == ["CA1"]
    assert await list_calls(sessions, "other") == []
