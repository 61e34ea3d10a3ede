"""The live calls page: the control plane's rows (polled twice a second by htmx, gzipped), the hang-up (confirmed, with
the CSRF token, audited), and a page that says so when no control plane runs."""
from __future__ import annotations

import socket
from pathlib import Path

from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.i18n import STRINGS
from console.live import ControlPlane
from storage.audit import list_audit
from storage.businesses import parse_business, upsert_business
from storage.models import UtteranceRecord
from tests.test_console_support import (
    MemoryControlPlane,
    add_call,
    business_file,
    console_settings,
    page_token,
    sessions,
    signed_in,
    two_businesses,
)

__all__ = ["sessions"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_without_a_control_plane_the_page_says_so(sessions: async_sessionmaker[AsyncSession],
                                                        tmp_path: Path) -> None:
    await two_businesses(sessions)
    nobody = ControlPlane(closed_port())
    assert await nobody.table() is None and await nobody.hangup("CA1") == ""
    async with signed_in(console_settings(sessions, tmp_path, live=nobody), "admin@example.com") as client:
        page = await client.get("/live")
    assert page.status_code == 200 and str(escape(STRINGS["he"]["no_control_plane"])) in page.text


async def test_live_rows_refresh_and_a_hangup_is_sent_and_audited(sessions: async_sessionmaker[AsyncSession],
                                                                   tmp_path: Path) -> None:
    await two_businesses(sessions)
    await add_call(sessions, "CA-LIVE", "biz-a", seconds=None, caller="+972501112233")
    live = MemoryControlPlane([{"call_sid": "CA-LIVE", "business_id": "biz-a", "phase": "talking", "age_s": 12.4,
                                "barge_in_events": 2, "realtime": "connected", "last_decision": "turn", "worker": "h:1"}])
    async with signed_in(console_settings(sessions, tmp_path, live=live), "admin@example.com") as client:
        page = (await client.get("/live")).text
        assert 'hx-trigger="every 500ms"' in page and "+972501112233" in page and "connected" in page
        rows = await client.get("/live", headers={"HX-Request": "true"})
        assert "<html" not in rows.text and 'hx-post="/live/CA-LIVE/hangup"' in rows.text and "hx-confirm" in rows.text
        token = await page_token(client, "/live")
        answer = await client.post("/live/CA-LIVE/hangup", data={"csrf": token}, headers={"HX-Request": "true"})
        assert answer.status_code == 200 and str(escape(STRINGS["he"]["hangup_sent"])) in answer.text
        assert (await client.post("/live/CA-GONE/hangup", data={"csrf": token})).status_code == 404
    assert live.hung_up == ["CA-LIVE"]
    entry = (await list_audit(sessions, "biz-a"))[0]
    assert (entry.action, entry.target, entry.user_email, entry.detail) == (
        "hangup", "CA-LIVE", "admin@example.com", {"sent_to": "host:1"})


async def test_one_live_call_shows_its_transcript_as_it_grows(sessions: async_sessionmaker[AsyncSession],
                                                              tmp_path: Path) -> None:
    await two_businesses(sessions)
    await add_call(sessions, "CA-LIVE", "biz-a", seconds=None, utterances=(("caller", "שלום"),))
    live = MemoryControlPlane([{"call_sid": "CA-LIVE", "business_id": "biz-a", "phase": "talking", "age_s": 4.0},
                               {"call_sid": "CB-LIVE", "business_id": "biz-b", "phase": "talking", "age_s": 2.0}])
    async with signed_in(console_settings(sessions, tmp_path, live=live), "a@example.com") as client:
        page = (await client.get("/live/CA-LIVE")).text
        assert 'hx-trigger="every 500ms"' in page and "שלום" in page and "אני צריך תור למחר" not in page
        async with sessions.begin() as session:  # the worker writes the next decided utterance
            session.add(UtteranceRecord(call_sid="CA-LIVE", seq=2, role="caller", text="אני צריך תור למחר",
                                        classification="turn", start_ms=3000, end_ms=4200))
        body = (await client.get("/live/CA-LIVE", headers={"HX-Request": "true"})).text
        assert "<html" not in body and "אני צריך תור למחר" in body
        assert (await client.get("/live/CB-LIVE")).status_code == 404  # another business's live call
        live.rows = []  # the call ended
        assert str(escape(STRINGS["he"]["call_ended"])) in (await client.get("/live/CA-LIVE")).text


async def test_the_control_planes_transcript_comes_first(sessions: async_sessionmaker[AsyncSession],
                                                         tmp_path: Path) -> None:
    """Workers that report decided utterances: the page shows them before the database has them, and a
    business user sees the reported caller's number masked when the database has no record yet."""
    await two_businesses(sessions)
    live = MemoryControlPlane([{"call_sid": "CA-NEW", "business_id": "biz-a", "phase": "talking", "age_s": 1.0,
                                "caller": "+972501239876", "speaking": "caller"}])
    live.transcripts["CA-NEW"] = [
        {"seq": 1, "role": "caller", "text": "אממ", "label": "filler", "interrupted": False, "heard_ms": -1},
        {"seq": 2, "role": "assistant", "text": "שלום, איך", "label": "", "interrupted": True, "heard_ms": 900}]
    async with signed_in(console_settings(sessions, tmp_path, live=live), "a@example.com") as client:
        page = (await client.get("/live/CA-NEW")).text
        table = (await client.get("/live")).text
    assert '<li class="caller filler">' in page and "שלום, איך" in page and "900 ms" in page
    assert "<dd>המתקשר</dd>" in page  # who is speaking, in words
    assert "+972••••••876" in page and "+972••••••876" in table and "+972501239876" not in table + page


async def test_the_live_tables_traffic_at_a_hundred_calls(sessions: async_sessionmaker[AsyncSession],
                                                          tmp_path: Path) -> None:
    """One viewer polls twice a second: at 100 live calls that stays within 20 KB a second (gzip)."""
    await two_businesses(sessions)
    rows: list[dict[str, object]] = [
        {"call_sid": f"CA{k:032d}", "business_id": "biz-a", "phase": "active", "age_s": 10.0 + k, "barge_in_events": k % 3,
         "realtime": "connected", "last_decision": "turn", "worker": f"host-1:{4000 + k % 4}", "frames_in": 500 * k}
        for k in range(100)]
    async with signed_in(console_settings(sessions, tmp_path, live=MemoryControlPlane(rows)), "admin@example.com") as client:
        polled = await client.get("/live", headers={"HX-Request": "true", "Accept-Encoding": "gzip"})
    assert polled.headers["content-encoding"] == "gzip" and polled.text.count("/hangup") == 100
    per_second = 2 * polled.num_bytes_downloaded
    assert per_second <= 20_000, per_second
    print(f"\nlive page at 100 calls: {polled.num_bytes_downloaded} bytes a poll, {per_second} bytes/s per viewer")


async def test_transfer_now_goes_to_the_businesses_human_line_and_is_audited(
        sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    with_line = business_file("biz-a", number="+97230000001") + '\n[business.transfer]\nnumber = "+97235550999"\n'
    await upsert_business(sessions, parse_business(with_line))
    await add_call(sessions, "CA-LIVE", "biz-a", seconds=None)
    await add_call(sessions, "CB-LIVE", "biz-b", seconds=None)
    live = MemoryControlPlane([{"call_sid": "CA-LIVE", "business_id": "biz-a", "phase": "talking", "age_s": 4.0},
                               {"call_sid": "CB-LIVE", "business_id": "biz-b", "phase": "talking", "age_s": 2.0}])
    async with signed_in(console_settings(sessions, tmp_path, live=live), "admin@example.com") as client:
        with_button = (await client.get("/live/CA-LIVE")).text
        without_button = (await client.get("/live/CB-LIVE")).text
        token = await page_token(client, "/live")
        sent = await client.post("/live/CA-LIVE/transfer", data={"csrf": token}, headers={"HX-Target": "live-call",
                                                                                         "HX-Request": "true"})
        refused = await client.post("/live/CB-LIVE/transfer", data={"csrf": token}, headers={"HX-Request": "true"})
        forged = await client.post("/live/CA-LIVE/transfer", data={}, headers={"HX-Request": "true"})
    assert 'hx-post="/live/CA-LIVE/transfer"' in with_button and "/transfer" not in without_button
    assert sent.status_code == 200 and refused.status_code == 409 and forged.status_code == 403
    assert str(escape(STRINGS["he"]["no_transfer_line"])) in refused.text
    async with signed_in(console_settings(sessions, tmp_path, live=live), "b@example.com") as other:
        token = await page_token(other, "/live")
        foreign = await other.post("/live/CA-LIVE/transfer", data={"csrf": token}, headers={"HX-Request": "true"})
    assert foreign.status_code == 404  # a user of biz-b: biz-a's live call does not exist for them
    assert live.transferred == ["CA-LIVE"] and live.hung_up == []
    entry = (await list_audit(sessions, "biz-a"))[0]
    assert (entry.action, entry.target, entry.detail) == ("transfer", "CA-LIVE", {"sent_to": "host:1"})
    # a refused transfer did nothing (biz-b's user signing in is its only row)
    assert [e.action for e in await list_audit(sessions, "biz-b")] == ["login_ok"]


async def test_a_call_its_worker_has_not_sampled_yet_is_listed_not_an_error(
        sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    """The control plane lists a call from its CallOpened before its worker's first row (no phase, no
    counters yet): the page shows it (found by the console's bench: 500s at 50 calls)."""
    await two_businesses(sessions)
    await add_call(sessions, "CA-NEW", "biz-a", seconds=None)
    live = MemoryControlPlane([{"call_sid": "CA-NEW", "business_id": "biz-a", "age_s": 0.3, "worker": "h:1",
                                "stale": False}])
    async with signed_in(console_settings(sessions, tmp_path, live=live), "admin@example.com") as client:
        rows = await client.get("/live", headers={"HX-Request": "true"})
        one = await client.get("/live/CA-NEW", headers={"HX-Request": "true"})
    assert rows.status_code == 200 and "/live/CA-NEW" in rows.text
    assert one.status_code == 200
