"""The dashboard's figures against the same figures computed here, in Python, from the rows the test wrote:
calls, answered, transferred, fallback and shed per day, barge-ins, fillers, underruns, leads per day, the
median duration and the answer latency percentiles — on SQLite and PostgreSQL, within the viewer's scope."""
from __future__ import annotations

import random
import statistics
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from storage.console_queries import Scope, dashboard
from storage.db import session_factory
from tests.test_console_support import (
    NOW,
    PG_URL,
    add_call,
    add_lead,
    console_settings,
    open_database,
    sessions,
    signed_in,
    two_businesses,
)

__all__ = ["sessions"]

REASONS = ("agent_hangup", "twilio_stop", "transferred", "realtime_unavailable", "shed_capacity", "silence_timeout")


async def random_calls(sessions: async_sessionmaker[AsyncSession], count: int) -> list[dict[str, Any]]:
    """`count` calls over five days on two businesses, with random outcomes and metrics; what was written."""
    chosen = random.Random(20)
    written = []
    for i in range(count):
        reason = chosen.choice(REASONS)
        call: dict[str, Any] = {"call_sid": f"CA{i:03d}", "business_id": chosen.choice(["biz-a", "biz-b"]),
                "started_at": NOW - timedelta(days=chosen.randrange(5), minutes=chosen.randrange(600)),
                "seconds": chosen.uniform(5, 300), "end_reason": reason,
                "fallback": {"transferred": "transfer:agent", "realtime_unavailable": "apologise:rest"}.get(reason, ""),
                "metrics": {"barge_in_events": chosen.randrange(4), "stt_utterances": chosen.randrange(1, 20),
                            "filler_only": chosen.randrange(3), "underruns": chosen.randrange(2)},
                "series": {"answer_latency_ms": [chosen.randrange(300, 2000) for _ in range(chosen.randrange(4))]}}
        await add_call(sessions, call["call_sid"], call["business_id"], call["started_at"], call["seconds"],
                       end_reason=reason, fallback=call["fallback"], metrics=call["metrics"], series=call["series"])
        if chosen.random() < 0.3:
            await add_lead(sessions, call["call_sid"], call["business_id"], call["started_at"] + timedelta(minutes=1))
            call["lead_day"] = (call["started_at"] + timedelta(minutes=1)).date().isoformat()
        written.append(call)
    return written


def expected(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures, computed from the written rows (the definitions docs/console.md gives)."""
    days: dict[str, dict[str, int]] = {}
    for c in calls:
        day = days.setdefault(c["started_at"].date().isoformat(), dict.fromkeys(
            ("calls", "answered", "transferred", "fallback", "shed", "barge_ins", "utterances", "fillers", "underruns",
             "leads"), 0))
        shed = c["end_reason"].startswith("shed")
        day["calls"] += 1
        day["shed"] += shed
        day["answered"] += not shed and c["end_reason"] != "realtime_unavailable"
        day["transferred"] += c["end_reason"] == "transferred"
        day["fallback"] += c["fallback"] != ""
        for key, metric in (("barge_ins", "barge_in_events"), ("utterances", "stt_utterances"),
                            ("fillers", "filler_only"), ("underruns", "underruns")):
            day[key] += c["metrics"][metric]
    for c in calls:
        if "lead_day" in c:
            days.setdefault(c["lead_day"], dict.fromkeys(next(iter(days.values())), 0))["leads"] += 1
    latencies = [ms for c in calls for ms in c["series"]["answer_latency_ms"]]
    answered = sum(d["answered"] for d in days.values())
    return {"days": [{"day": d, **days[d]} for d in sorted(days)],
            "median_duration_s": statistics.median(c["seconds"] for c in calls),
            "latency_p50_ms": float(np.percentile(latencies, 50)), "latency_p95_ms": float(np.percentile(latencies, 95)),
            "barge_in_rate": sum(d["barge_ins"] for d in days.values()) / answered,
            "filler_rate": sum(d["fillers"] for d in days.values()) / sum(d["utterances"] for d in days.values())}


def close(measured: dict[str, Any], wanted: dict[str, Any]) -> None:
    assert measured["days"] == wanted["days"]
    for key in ("median_duration_s", "latency_p50_ms", "latency_p95_ms", "barge_in_rate", "filler_rate"):
        assert abs(measured[key] - wanted[key]) < 1e-3, key


async def test_the_figures_equal_what_the_rows_say(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    calls = await random_calls(sessions, 80)
    everything = msgspec.to_builtins(await dashboard(sessions, Scope(None)))
    close(everything, expected(calls))
    only_a = msgspec.to_builtins(await dashboard(sessions, Scope("biz-a")))
    close(only_a, expected([c for c in calls if c["business_id"] == "biz-a"]))
    two_days = [c for c in calls if c["started_at"].date() >= (NOW - timedelta(days=1)).date()]
    recent = msgspec.to_builtins(await dashboard(sessions, Scope(None), date_from=(NOW - timedelta(days=1)).date(),
                                                 date_to=NOW.date()))
    close(recent, expected(two_days))  # calls start 02:00-12:00: a lead a minute later falls on its call's day


async def test_the_dashboard_page_shows_the_viewers_figures(sessions: async_sessionmaker[AsyncSession],
                                                            tmp_path: Path) -> None:
    await two_businesses(sessions)
    calls = await random_calls(sessions, 30)
    async with signed_in(console_settings(sessions, tmp_path), "b@example.com") as client:
        shown = (await client.get("/dashboard.json")).json()
        page = (await client.get("/dashboard")).text
    mine = [c for c in calls if c["business_id"] == "biz-b"]
    assert shown["totals"]["calls"] == len(mine) and f'id="total-calls">{len(mine)}<' in page
    assert shown["totals"]["leads"] == sum("lead_day" in c for c in mine)
    assert 'id="dashboard-data"' in page and "uPlot.iife.min.js" in page


@pytest.mark.skipif(not PG_URL, reason="KOLBRIDGE_TEST_PG_URL not set (.ci/run starts PostgreSQL and sets it)")
async def test_days_are_utc_days_in_any_session_zone(tmp_path: Path) -> None:
    """12:00 UTC is already tomorrow at UTC+14: PostgreSQL's date() would say so; the dashboard counts UTC days."""
    engine = await open_database("postgresql", tmp_path)
    await engine.dispose()
    engine = create_async_engine(PG_URL, connect_args={"server_settings": {"timezone": "Pacific/Kiritimati"}})
    sessions = session_factory(engine)
    try:
        await add_call(sessions, "CA1", "biz-a", NOW)
        await add_lead(sessions, "CA1", "biz-a", NOW)
        shown = await dashboard(sessions, Scope(None))
        assert [(d.day, d.calls, d.leads) for d in shown.days] == [(NOW.date().isoformat(), 1, 1)]
    finally:
        await engine.dispose()
