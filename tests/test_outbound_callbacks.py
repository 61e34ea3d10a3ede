"""A caller who asks to be called back at a time (issue 23): with `[business.outbound] callbacks = true`,
save_lead asks for `callback_at` (the model told today's local date), and the saved lead is scheduled at
that business-local time for the scheduler (tests/test_outbound_e2e.py dials it within calling hours)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.agent import agent_spec, save_lead_tool, tools_for
from gateway.outbound.api import authorised
from storage.agent_records import apply_agent_write
from storage.businesses import BusinessView
from storage.callbacks import callback_time
from storage.db import create_schema, make_engine, session_factory
from storage.models import Business, LeadRecord
from storage.writequeue import LeadWrite


def view(agent: dict[str, Any]) -> BusinessView:
    return BusinessView(id="biz", name="Garage", language="he", greeting="hi", prompt="", voice="", active=True,
                        phone_numbers=["+97235550100"], permissions={"collect_lead_details": True}, agent=agent)


def test_save_lead_asks_for_a_callback_time_only_where_the_business_calls_back() -> None:
    with_callbacks = view({"outbound": {"callbacks": True, "timezone": "Asia/Jerusalem"}})
    [lead_tool] = [t for t in tools_for(with_callbacks, agent_spec(with_callbacks)) if t.name == "save_lead"]
    described = lead_tool.parameters["properties"]["callback_at"]["description"]
    today = datetime.now(ZoneInfo("Asia/Jerusalem")).strftime("%Y-%m-%d")
    assert today in described and "callback_at" not in lead_tool.parameters["required"]
    plain = view({})
    [plain_tool] = [t for t in tools_for(plain, agent_spec(plain)) if t.name == "save_lead"]
    assert "callback_at" not in plain_tool.parameters["properties"]
    fixed = save_lead_tool([], datetime(2026, 12, 3, 14, 5, tzinfo=ZoneInfo("Asia/Jerusalem")))
    assert "Thursday 2026-12-03 14:05" in fixed.parameters["properties"]["callback_at"]["description"]


def test_a_callback_time_is_read_in_the_business_time_zone() -> None:
    assert callback_time("2026-12-06T10:30", "Asia/Jerusalem") == datetime(2026, 12, 6, 8, 30, tzinfo=timezone.utc)
    assert callback_time("2026-07-06 10:30", "Asia/Jerusalem") == datetime(2026, 7, 6, 7, 30, tzinfo=timezone.utc)  # summer
    assert callback_time("2026-12-06T10:30+00:00", "Asia/Jerusalem") == datetime(2026, 12, 6, 10, 30, tzinfo=timezone.utc)
    assert callback_time("tomorrow morning", "Asia/Jerusalem") is None and callback_time("", "Asia/Jerusalem") is None


async def test_a_lead_saved_with_a_callback_time_is_scheduled_for_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}")
    try:
        await create_schema(engine)
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            for business_id, agent in (("calls-back", {"outbound": {"callbacks": True}}), ("does-not", {})):
                session.add(Business(id=business_id, name=business_id, language="he", greeting="hi", agent=agent))
        writes = [LeadWrite("CA1", "t1", "calls-back", {"name": "דנה", "callback_at": "2026-12-06T10:30"}),
                  LeadWrite("CA2", "t2", "calls-back", {"name": "רון", "callback_at": "אחרי הצהריים"}),
                  LeadWrite("CA3", "t3", "does-not", {"name": "גל", "callback_at": "2026-12-06T10:30"})]
        for write in [*writes, writes[0]]:  # a replayed write schedules nothing twice
            async with sessions.begin() as session:
                await apply_agent_write(session, write)
        async with sessions() as session:
            leads = {lead.call_sid: lead for lead in (await session.execute(select(LeadRecord))).scalars()}
    finally:
        await engine.dispose()
    assert len(leads) == 3
    scheduled = leads["CA1"]
    assert scheduled.callback_status == "scheduled" and scheduled.callback_at is not None
    assert scheduled.callback_at.replace(tzinfo=timezone.utc) == datetime(2026, 12, 6, 8, 30, tzinfo=timezone.utc)
    assert leads["CA2"].callback_status == "" and leads["CA2"].fields["callback_at"] == "אחרי הצהריים"  # kept as said
    assert leads["CA3"].callback_status == "" and leads["CA3"].callback_at is None


def test_dialling_over_http_always_needs_a_token() -> None:
    """No admin token configured and no bearer: refused even from loopback (a same-host proxy makes every
    client loopback, and a call costs money); a business's own token still dials for it."""
    assert authorised("", "", "") == (False, 401)
    assert authorised("Bearer nope", "", "") == (False, 403)
    own = hashlib.sha256(b"biz-secret").hexdigest()
    assert authorised("Bearer biz-secret", "", own) == (True, 200)
    assert authorised("Bearer admin", "admin", "") == (True, 200)
