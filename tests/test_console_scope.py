"""Tenant scoping: a business user of A sees only A — B's call, its JSON, recording and waveform, B's leads,
B's business page and its forms answer 404 (not 403), and no list shows B; an admin sees both."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.console_queries import (
    CallFilter,
    Scope,
    call_history,
    caller_numbers,
    scoped_business,
    scoped_businesses,
    scoped_leads,
)
from tests.test_console_support import (
    MemoryControlPlane,
    add_call,
    add_lead,
    console_settings,
    page_token,
    sessions,
    signed_in,
    two_businesses,
    write_recording,
)

__all__ = ["sessions"]


async def two_tenants(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    await add_call(sessions, "CA-A1", "biz-a", utterances=(("caller", "שלום אני צריך תור"),), caller="+972501110001")
    await add_call(sessions, "CA-B1", "biz-b", utterances=(("caller", "שלום אני צריך תור"),), caller="+972502220002")
    await add_lead(sessions, "CA-A1", "biz-a", name="אבי")
    await add_lead(sessions, "CA-B1", "biz-b", name="בני")
    for call_sid in ("CA-A1", "CA-B1"):
        write_recording(tmp_path / "recordings", call_sid)


async def test_another_business_is_not_found(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_tenants(sessions, tmp_path)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        for url in ("/calls/CA-B1", "/calls/CA-B1/call.json", "/calls/CA-B1/audio.wav", "/calls/CA-B1/peaks.json",
                    "/businesses/biz-b", "/calls/no-such-call"):
            assert (await client.get(url)).status_code == 404, url
        token = await page_token(client)
        for url in ("/businesses/biz-b/preview", "/businesses/biz-b/save", "/businesses/biz-b/classify",
                    "/businesses/biz-b/rollback/1"):
            assert (await client.post(url, data={"csrf": token, "toml": "", "text": "כן"})).status_code == 404, url
        for url in ("/calls/CA-A1", "/calls/CA-A1/call.json", "/calls/CA-A1/audio.wav", "/calls/CA-A1/peaks.json",
                    "/businesses/biz-a"):
            assert (await client.get(url)).status_code == 200, url


async def test_no_list_shows_another_business(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_tenants(sessions, tmp_path)
    live = MemoryControlPlane([{"call_sid": "CA-A1", "business_id": "biz-a", "phase": "talking", "age_s": 3.0},
                               {"call_sid": "CA-B1", "business_id": "biz-b", "phase": "talking", "age_s": 5.0}])
    async with signed_in(console_settings(sessions, tmp_path, live=live), "a@example.com") as client:
        pages = {url: (await client.get(url)).text for url in
                 ("/history", "/history?q=תור", "/leads", "/leads.csv", "/businesses", "/dashboard", "/live",
                  "/retention", "/audit", "/history?business=biz-b")}
        for url, text in pages.items():
            assert "CA-B1" not in text and "biz-b" not in text and "בני" not in text, url
        assert "CA-A1" in pages["/history"] and "אבי" in pages["/leads.csv"] and "CA-A1" in pages["/leads.csv"]
        assert "+972••••••001" in pages["/live"] and "+972501110001" not in pages["/live"]  # masked
        token = await page_token(client)
        assert (await client.post("/live/CA-B1/hangup", data={"csrf": token})).status_code == 404
        assert live.hung_up == []
    async with signed_in(console_settings(sessions, tmp_path, live=live), "admin@example.com") as admin:
        history, csv = (await admin.get("/history")).text, (await admin.get("/leads.csv")).text
        assert "CA-A1" in history and "CA-B1" in history and "בני" in csv and "אבי" in csv
        assert "+972502220002" in (await admin.get("/live")).text


async def test_the_storage_functions_apply_the_scope(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_tenants(sessions, tmp_path)
    calls, total = await call_history(sessions, Scope("biz-a"), CallFilter(business_id="biz-b"))
    assert (calls, total) == ([], 0)  # asking for B within A's scope finds nothing
    assert [lead.business_id for lead in await scoped_leads(sessions, Scope("biz-a"), "biz-b")] == []
    assert {lead.business_id for lead in await scoped_leads(sessions, Scope(None))} == {"biz-a", "biz-b"}
    assert await scoped_business(sessions, Scope("biz-a"), "biz-b") is None
    assert [b.id for b in await scoped_businesses(sessions, Scope("biz-a"))] == ["biz-a"]
    assert [b.id for b in await scoped_businesses(sessions, Scope(None))] == ["biz-a", "biz-b"]
    assert await caller_numbers(sessions, Scope("biz-a"), ["CA-A1", "CA-B1"]) == {"CA-A1": "+972501110001"}
