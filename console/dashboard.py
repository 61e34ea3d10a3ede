"""Dashboard: per business (or all the viewer may see) and date range — calls, answered, transferred,
fallback and shed per day, leads per day, median duration, answer latency p50/p95, barge-in and filler
rates, underruns; counted by SQL aggregates (storage/console_queries.py), drawn with uPlot."""
from __future__ import annotations

import json
from datetime import timedelta

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console.forms import day
from console.web import Viewer, console_of, render
from storage.console_queries import Dashboard, business_ids, dashboard

DEFAULT_DAYS = 30


async def figures(request: Request, viewer: Viewer) -> tuple[Dashboard, dict[str, str]]:
    query = request.query_params
    date_to = day(query.get("to")) or console_of(request).clock().date()
    date_from = day(query.get("from")) or date_to - timedelta(days=DEFAULT_DAYS - 1)
    business_id = query.get("business", "")
    shown = await dashboard(console_of(request).sessions, viewer.scope, business_id, date_from, date_to)
    return shown, {"business": business_id, "from": date_from.isoformat(), "to": date_to.isoformat()}


def totals(shown: Dashboard) -> dict[str, int]:
    keys = ("calls", "answered", "transferred", "fallback", "shed", "barge_ins", "utterances", "fillers", "underruns",
            "leads")
    return {key: sum(int(getattr(d, key)) for d in shown.days) for key in keys}


async def dashboard_page(request: Request, viewer: Viewer) -> Response:
    shown, query = await figures(request, viewer)
    return render(request, viewer, "dashboard.html", figures=shown, totals=totals(shown), query=query,
                  chart=json.dumps(msgspec.to_builtins(shown.days)),
                  businesses=await business_ids(console_of(request).sessions, viewer.scope))


async def dashboard_json(request: Request, viewer: Viewer) -> Response:
    shown, query = await figures(request, viewer)
    return JSONResponse({"query": query, "totals": totals(shown), **msgspec.to_builtins(shown)})
