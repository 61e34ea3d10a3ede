"""Dashboard: per business (or all the viewer may see) and date range — calls, answered, transferred,
fallback and shed per day, leads per day, median duration, answer latency p50/p95, barge-in and filler
rates, underruns; counted by SQL aggregates (storage/console_queries.py), drawn with uPlot."""
from __future__ import annotations

import json
from datetime import date, timedelta

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console.forms import day
from console.web import Viewer, console_of, render
from storage.console_queries import Dashboard, business_ids, dashboard

DEFAULT_DAYS = 30
MAX_CHART_DAYS = 400
TOTALLED = ("calls", "answered", "transferred", "fallback", "shed", "barge_ins", "utterances", "fillers", "underruns",
            "leads")


async def figures(request: Request, viewer: Viewer) -> tuple[Dashboard, dict[str, str]]:
    query = request.query_params
    date_to = day(query.get("to")) or console_of(request).clock().date()
    date_from = day(query.get("from")) or date_to - timedelta(days=DEFAULT_DAYS - 1)
    business_id = query.get("business", "")
    shown = await dashboard(console_of(request).sessions, viewer.scope, business_id, date_from, date_to)
    return shown, {"business": business_id, "from": date_from.isoformat(), "to": date_to.isoformat()}


def every_day(shown: Dashboard, query: dict[str, str]) -> list[dict[str, object]]:
    """The chart's points: every day of the range (at most MAX_CHART_DAYS), zero where nothing happened."""
    found = {d.day: msgspec.to_builtins(d) for d in shown.days}
    first, last = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
    days = [first + timedelta(days=i) for i in range(min((last - first).days + 1, MAX_CHART_DAYS))]
    empty = dict.fromkeys(TOTALLED, 0)
    return [found.get(d.isoformat(), {"day": d.isoformat(), **empty}) for d in days]


def totals(shown: Dashboard) -> dict[str, int]:
    return {key: sum(int(getattr(d, key)) for d in shown.days) for key in TOTALLED}


async def dashboard_page(request: Request, viewer: Viewer) -> Response:
    shown, query = await figures(request, viewer)
    return render(request, viewer, "dashboard.html", figures=shown, totals=totals(shown), query=query,
                  chart=json.dumps(every_day(shown, query)),
                  businesses=await business_ids(console_of(request).sessions, viewer.scope))


async def dashboard_json(request: Request, viewer: Viewer) -> Response:
    shown, query = await figures(request, viewer)
    return JSONResponse({"query": query, "totals": totals(shown), **msgspec.to_builtins(shown)})
