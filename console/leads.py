"""Leads: the viewer's businesses' leads, filtered by business and dates, and the same rows as CSV."""
from __future__ import annotations

import csv
import io
import json

from starlette.requests import Request
from starlette.responses import Response

from console.forms import day
from console.web import Viewer, console_of, render
from storage.console_queries import business_ids, scoped_leads
from storage.models import LeadRecord

CSV_FIXED = ("created_at", "business_id", "call_sid")


async def _leads(request: Request, viewer: Viewer) -> list[LeadRecord]:
    query = request.query_params
    return await scoped_leads(console_of(request).sessions, viewer.scope, query.get("business", ""),
                              day(query.get("from")), day(query.get("to")))


def leads_csv(leads: list[LeadRecord]) -> str:
    """One row a lead: when, business, call, then every field any of them has (a column each, sorted)."""
    names = sorted({name for lead in leads for name in (lead.fields or {})})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_FIXED, *names])
    for lead in leads:
        values = [lead.fields.get(name, "") for name in names]
        writer.writerow([lead.created_at.isoformat() if lead.created_at else "", lead.business_id, lead.call_sid,
                         *(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values)])
    return out.getvalue()


async def leads_page(request: Request, viewer: Viewer) -> Response:
    leads = await _leads(request, viewer)
    return render(request, viewer, "leads.html", leads=leads[:500], query=dict(request.query_params),
                  businesses=await business_ids(console_of(request).sessions, viewer.scope))


async def leads_export(request: Request, viewer: Viewer) -> Response:
    body = "\ufeff" + leads_csv(await _leads(request, viewer))  # the BOM: spreadsheets read the Hebrew as UTF-8
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="leads.csv"'})
