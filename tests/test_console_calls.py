"""History (filters, the word search on both databases, pages of 50) and a call's detail page: the timeline
with its lanes, greyed fillers and the cut mark, the recording served with its waveform's peaks, the JSON."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.i18n import STRINGS
from console.recordings import peaks
from storage.console_queries import CallFilter, Scope, call_history
from storage.models import ToolCallRow, UtteranceRecord
from tests.test_console_support import (
    NOW,
    add_call,
    add_lead,
    console_settings,
    sessions,
    signed_in,
    two_businesses,
    write_recording,
)

__all__ = ["sessions"]


async def test_the_word_search_finds_the_call_that_said_it(sessions: async_sessionmaker[AsyncSession],
                                                           tmp_path: Path) -> None:
    await two_businesses(sessions)
    await add_call(sessions, "CA-BRAKES", "biz-a", utterances=(("caller", "יש לי בעיה בבלמים"), ("assistant", "נבדוק")))
    await add_call(sessions, "CA-TEST", "biz-a", utterances=(("caller", "אני צריך טסט"),))
    await add_call(sessions, "CA-PCT", "biz-a", utterances=(("caller", "הנחה של 100% בדיוק"),))
    found, total = await call_history(sessions, Scope(None), CallFilter(word="בבלמים"))
    assert [c.call_sid for c in found] == ["CA-BRAKES"] and total == 1
    assert [c.call_sid for c in (await call_history(sessions, Scope(None), CallFilter(word="100%")))[0]] == ["CA-PCT"]
    assert (await call_history(sessions, Scope(None), CallFilter(word="%")))[1] == 1  # LIKE's own characters are literal
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        page = (await client.get("/history", params={"q": "טסט"})).text
        assert "/calls/CA-TEST" in page and "/calls/CA-BRAKES" not in page
        rows = await client.get("/history", params={"q": "בבלמים"}, headers={"HX-Request": "true"})
        assert "/calls/CA-BRAKES" in rows.text and "<html" not in rows.text  # htmx: the rows alone


async def test_the_history_filters(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    await add_call(sessions, "CA-TRANSFER", "biz-a", end_reason="transferred", fallback="transfer:agent")
    await add_call(sessions, "CA-FALLBACK", "biz-a", end_reason="realtime_unavailable", fallback="apologise:rest")
    await add_call(sessions, "CA-LEAD", "biz-a", end_reason="agent_hangup", started_at=NOW - timedelta(days=3))
    await add_lead(sessions, "CA-LEAD", "biz-a", name="x")

    async def sids(**wanted: object) -> set[str]:
        return {c.call_sid for c in (await call_history(sessions, Scope(None), CallFilter(**wanted)))[0]}  # type: ignore[arg-type]
    assert await sids(transferred=True) == {"CA-TRANSFER"}
    assert await sids(fallback=True) == {"CA-TRANSFER", "CA-FALLBACK"}
    assert await sids(fallback=False) == {"CA-LEAD"}
    assert await sids(lead_saved=True) == {"CA-LEAD"} and await sids(lead_saved=False) == {"CA-TRANSFER", "CA-FALLBACK"}
    assert await sids(end_reason="realtime_unavailable") == {"CA-FALLBACK"}
    assert await sids(date_to=(NOW - timedelta(days=1)).date()) == {"CA-LEAD"}
    assert await sids(date_from=NOW.date(), date_to=NOW.date()) == {"CA-TRANSFER", "CA-FALLBACK"}


async def test_pages_of_fifty(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    for i in range(55):
        await add_call(sessions, f"CA{i:03d}", "biz-a", started_at=NOW - timedelta(minutes=i))
    first, total = await call_history(sessions, Scope(None), CallFilter())
    second, _ = await call_history(sessions, Scope(None), CallFilter(page=2))
    assert total == 55 and len(first) == 50 and [c.call_sid for c in second] == [f"CA{i:03d}" for i in range(50, 55)]
    async with signed_in(console_settings(sessions, tmp_path), "admin@example.com") as client:
        page = (await client.get("/history", params={"page": "2"})).text
        assert "/calls/CA054" in page and "/calls/CA000" not in page and "page=1" in page


async def interrupted_call(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_call(sessions, "CA-CUT", "biz-a", seconds=10.0)
    async with sessions.begin() as session:
        session.add_all([
            UtteranceRecord(call_sid="CA-CUT", seq=1, role="caller", text="שלום", classification="turn", start_ms=1000,
                            end_ms=2000),
            UtteranceRecord(call_sid="CA-CUT", seq=2, role="assistant", text="שלום, איך אפשר לעזור היום", start_ms=-1,
                            end_ms=-1, interrupted=True, heard_ms=1500),
            UtteranceRecord(call_sid="CA-CUT", seq=3, role="caller", text="אממ", classification="filler", start_ms=3000,
                            end_ms=3300),
            ToolCallRow(call_sid="CA-CUT", tool_call_id="t1", name="save_lead", arguments="{}", output="ok",
                        status="ok", elapsed_ms=12, created_at=NOW + timedelta(seconds=5))])


async def test_the_call_page_places_utterances_and_marks_the_cut(sessions: async_sessionmaker[AsyncSession],
                                                                 tmp_path: Path) -> None:
    await two_businesses(sessions)
    await interrupted_call(sessions)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        page = (await client.get("/calls/CA-CUT")).text
    caller = re.findall(r'class="utt caller (\w*)" style="left: ([\d.]+)%; width: ([\d.]+)%"\s+data-start-ms="(\d+)"', page)
    assert caller == [("turn", "10.0", "10.0", "1000"), ("filler", "30.0", "3.0", "3000")]  # 10 s call: 1 s = 10 %
    assert 'class="cut" style="left: 35.0%"' in page  # the AI began at 2 s (after the caller), heard 1.5 s
    assert 'class="marker" style="left: 50.0%"' in page and "save_lead" in page
    assert "✂" in page and STRINGS["he"]["no_recording"] in page and "<audio" not in page


async def test_the_recording_is_served_with_its_peaks(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    await interrupted_call(sessions)
    path = write_recording(tmp_path / "recordings", "CA-CUT", seconds=2.0)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        page = (await client.get("/calls/CA-CUT")).text
        assert '<audio id="player"' in page and 'src="/calls/CA-CUT/audio.wav"' in page
        audio = await client.get("/calls/CA-CUT/audio.wav")
        assert audio.status_code == 200 and audio.content == path.read_bytes() and audio.headers["content-type"] == "audio/wav"
        assert "content-encoding" not in audio.headers  # gzip leaves the recording alone (ranges stay ranges)
        ranged = await client.get("/calls/CA-CUT/audio.wav", headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100  # the player seeks by ranges
        download = await client.get("/calls/CA-CUT/audio.wav?download=1")
        assert "attachment" in download.headers["content-disposition"]
        shown = (await client.get("/calls/CA-CUT/peaks.json")).json()
        document = (await client.get("/calls/CA-CUT/call.json")).json()
    assert shown["seconds"] == 2.0 and len(shown["channels"]) == 2 and len(shown["channels"][0]) == 1000
    assert 0.2 < max(shown["channels"][0]) <= 0.25 and max(shown["channels"][1]) == 0.0  # the tone left, silence right
    assert shown == peaks(path)
    assert [u["text"] for u in document["utterances"]][0] == "שלום" and document["tool_calls"][0]["name"] == "save_lead"
    assert document["from"] == "+972••••••567"  # a business user's download is masked too


async def test_the_call_page_shows_the_handoff_and_each_segment_with_the_agent(sessions: async_sessionmaker[AsyncSession],
                                                                              tmp_path: Path) -> None:
    """A call a busy line returned to the agent (issue 23): the owner sees the transfer's attempts and outcome
    and both segments; the other tenant's user gets a 404 for it."""
    await two_businesses(sessions)
    transfer = {"mode": "warm", "number": "+97235550999", "outcome": "back_to_agent",
                "attempts": {"1": {"leg_sid": "CAleg", "status": "busy", "answered_at": "", "outcome": "back_to_agent",
                                   "summary": "רוצה הצעת מחיר <ל-בלמים>"}}}
    segments = [{"n": 1, "started_at": "2026-12-01T10:00:00.000+00:00", "ended_at": "2026-12-01T10:01:00.000+00:00",
                 "end_reason": "transferred", "note": "", "metrics": {}},
                {"n": 2, "started_at": "2026-12-01T10:01:20.000+00:00", "ended_at": "2026-12-01T10:02:00.000+00:00",
                 "end_reason": "twilio_stop", "note": "busy", "metrics": {}}]
    await add_call(sessions, "CA-BACK", "biz-a", utterances=(("caller", "נציג בבקשה"), ("assistant", "הקו תפוס")),
                   transfer=transfer, segments=segments)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        page = (await client.get("/calls/CA-BACK")).text
        document = (await client.get("/calls/CA-BACK/call.json")).json()
    assert STRINGS["he"]["handoff"] in page and "warm → +97235550999" in page and "#1: <bdi dir=\"ltr\">busy back_to_agent</bdi>" in page
    assert f"{STRINGS['he']['whisper']}: רוצה הצעת מחיר &lt;ל-בלמים&gt;" in page  # what the human was told, escaped
    assert STRINGS["he"]["segments"] in page and "#2 10:01:20–10:02:00 twilio_stop (busy)" in page
    assert document["transfer"] == transfer and [part["n"] for part in document["segments"]] == [1, 2]
    async with signed_in(console_settings(sessions, tmp_path), "b@example.com") as client:
        assert (await client.get("/calls/CA-BACK")).status_code == 404


async def test_the_leads_page_shows_each_scheduled_callback(sessions: async_sessionmaker[AsyncSession],
                                                           tmp_path: Path) -> None:
    """The owner sees which leads the agent calls back, when, and how it went (issue 23); B's user none of A's."""
    from datetime import datetime, timezone

    from sqlalchemy import update

    from storage.models import LeadRecord
    from tests.test_console_support import add_lead

    await two_businesses(sessions)
    await add_call(sessions, "CA-L1", "biz-a")
    await add_lead(sessions, "CA-L1", "biz-a", name="דנה")
    async with sessions.begin() as session:
        await session.execute(update(LeadRecord).where(LeadRecord.call_sid == "CA-L1").values(
            callback_status="scheduled", callback_at=datetime(2026, 12, 6, 8, 30, tzinfo=timezone.utc), callback_attempts=1))
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        page = (await client.get("/leads")).text
    assert STRINGS["he"]["callback"] in page and STRINGS["he"]["callback_scheduled"] in page
    assert "2026-12-06 08:30 UTC" in page and "×1" in page
    async with signed_in(console_settings(sessions, tmp_path), "b@example.com") as client:
        assert "דנה" not in (await client.get("/leads")).text
