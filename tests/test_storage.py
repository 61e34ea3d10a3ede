"""Storage on SQLite and, when KOLBRIDGE_TEST_PG_URL is set (.ci/run starts a local server), PostgreSQL."""
from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.cli.records import call_show
from storage.businesses import BusinessError, business_for_number, get_business, list_businesses, parse_business, upsert_business
from storage.calls import apply_write, get_call, get_utterances, list_calls
from storage.db import alembic_config, create_schema, make_engine, schema_revision, session_factory
from storage.writequeue import CallEndWrite, CallStartWrite, HeartbeatWrite, LanguageSwitchWrite, UtteranceWrite

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
    assert await schema_revision(engine) == ScriptDirectory.from_config(alembic_config()).get_current_head()
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


async def test_agent_records_are_idempotent_and_webhook_claims_exclusive(sessions: async_sessionmaker[AsyncSession]) -> None:
    from datetime import timedelta

    from storage.agent_records import call_actions, claim_due, list_leads, settle
    from storage.models import utcnow
    from storage.writequeue import LeadWrite, ToolCallWrite, WebhookWrite, Write

    writes: list[Write] = [CallStartWrite("CA9", "MZ9", "demo-garage", {}), LeadWrite("CA9", "c1", "demo-garage", {"name": "דני"}),
              ToolCallWrite("CA9", "c1", "save_lead", '{"name": "דני"}', '{"ok": true}', "ok", 0),
              WebhookWrite("d1", "demo-garage", "CA9", "lead", '{"event": "lead.saved"}')]
    for write in writes + writes:  # a replay after a crash writes nothing twice
        await apply_write(sessions, write)
    tools, leads, hooks = await call_actions(sessions, "CA9")
    assert [(t.name, t.status) for t in tools] == [("save_lead", "ok")] and [lead.fields for lead in leads] == [{"name": "דני"}]
    assert [(h.id, h.state) for h in hooks] == [("d1", "pending")]
    assert [lead.call_sid for lead in await list_leads(sessions, "demo-garage")] == ["CA9"]
    now = utcnow()
    first = await claim_due(sessions, now, 60.0)
    assert [r.id for r in first] == ["d1"]
    assert await claim_due(sessions, now, 60.0) == []  # another worker: leased
    await settle(sessions, "d1", False, "HTTP 503", 5.0)
    assert await claim_due(sessions, utcnow(), 60.0) == []  # not due before its backoff
    again = await claim_due(sessions, utcnow() + timedelta(seconds=6), 60.0)
    assert [r.attempts for r in again] == [1]
    await settle(sessions, "d1", True, "", None)
    _, _, hooks = await call_actions(sessions, "CA9")
    assert (hooks[0].state, hooks[0].attempts) == ("delivered", 2)


async def test_a_business_with_agent_sections_exports_and_imports_back(sessions: async_sessionmaker[AsyncSession]) -> None:
    from gateway.cli.records import business_toml

    text_in = (REPO / "examples" / "demo-garage.toml").read_text(encoding="utf-8") + '''
[business.webhook]
url = "https://crm.example.com/kolbridge"
secret = "s"

[[business.tools]]
name = "check_availability"
description = "Free slots"
url = "https://crm.example.com/slots"
timeout_s = 3.0
parameters = { type = "object", properties = { day = { type = "string", enum = ["a", "b"] } }, required = ["day"] }
'''
    spec = parse_business(text_in)
    await upsert_business(sessions, spec)
    view = await get_business(sessions, "demo-garage")
    assert view is not None
    again = parse_business(business_toml(view))
    assert again.tools == spec.tools and again.lead_fields == spec.lead_fields and again.webhook == spec.webhook
    assert again.transfer == spec.transfer and again.conversation == spec.conversation


async def test_a_calls_language_switches_are_recorded_once_each_whatever_the_order(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    switch = LanguageSwitchWrite("CA7", 1, 4200, "he", "ar", "7 Arabic words: «مرحبا بدي احجز»")
    await apply_write(sessions, switch)  # before the call's start (writes race)
    await apply_write(sessions, CallStartWrite("CA7", "MZ7", "demo-garage", {}, "+9725", "+9723", "h:1", "he"))
    await apply_write(sessions, switch)  # a replay
    await apply_write(sessions, LanguageSwitchWrite("CA7", 2, 9100, "ar", "he", "2 short utterances: «כן» «לא»"))
    row = await get_call(sessions, "CA7")
    assert row is not None and row.caller_language == "he"
    assert [(s["seq"], s["at_ms"], s["from"], s["to"]) for s in row.language_switches] == [
        (1, 4200, "he", "ar"), (2, 9100, "ar", "he")]
    shown = await call_show(sessions, "CA7", as_json=False)
    assert shown is not None and "caller language: he → ar at 4.2 s (7 Arabic words: «مرحبا بدي احجز») → he at 9.1 s" in shown


@pytest.mark.parametrize(("languages", "extra", "problem"), [
    ('["ar", "he"]', "", "must begin with business.language"),
    ('["he", "fr"]', "", "'fr' is not a caller language"),
    ('["he", "ar", "ar"]', "", "business.languages: duplicates"),
    ('["he", "ar"]', '[business.greetings]\nru = "здравствуйте"\n', "business.greetings.ru: 'ru' is not in business.languages"),
    ('["he", "ar"]', '[business.lexicons.en]\nfillers = ["um"]\n', "business.lexicons.en: 'en' is not in business.languages"),
])
def test_a_business_files_languages_are_checked_by_name(languages: str, extra: str, problem: str) -> None:
    text = f'[business]\nid="shop"\nname="n"\nlanguage="he"\ngreeting="g"\nlanguages={languages}\n{extra}'
    with pytest.raises(BusinessError, match=re.escape(problem)):
        parse_business(text)


def test_a_business_with_caller_languages_parses_and_a_single_language_reads_as_a_list_of_one() -> None:
    spec = parse_business('[business]\nid="shop"\nname="n"\nlanguage="he"\ngreeting="g"\nlanguages=["he", "ar", "ru"]\n'
                          '[business.greetings]\nar = "أهلا"\n[business.lexicons.ar]\nfillers = ["ووو"]\n')
    assert spec.languages == ["he", "ar", "ru"] and spec.greetings == {"ar": "أهلا"}
    assert spec.lexicons["ar"].fillers == ["ووو"]
    assert parse_business('[business]\nid="shop"\nname="n"\nlanguage="he"\ngreeting="g"\n').languages == ["he"]
