"""History: the calls in the viewer's scope, filtered and searched (a word the caller or the AI said), 50 a page."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from console.forms import call_filter, mask_number
from console.web import Viewer, console_of, partial, render
from storage.console_queries import PAGE_SIZE, business_ids, call_history, end_reasons
from storage.models import CallRecord


def shown_caller(viewer: Viewer, number: str) -> str:
    return number if viewer.user.is_admin else mask_number(number)


def duration_s(call: CallRecord) -> float | None:
    return (call.ended_at - call.started_at).total_seconds() if call.ended_at and call.started_at else None


async def history_page(request: Request, viewer: Viewer) -> Response:
    sessions = console_of(request).sessions
    wanted = call_filter(request.query_params)
    calls, total = await call_history(sessions, viewer.scope, wanted)
    pages = max(1, -(-total // PAGE_SIZE))
    query = {k: v for k, v in request.query_params.items() if k != "page"}
    context: dict[str, Any] = {"calls": calls, "total": total, "page": wanted.page, "pages": pages, "query": query,
               "wanted": wanted, "caller": lambda n: shown_caller(viewer, n), "duration": duration_s}
    if partial(request):
        return render(request, viewer, "history_rows.html", **context)
    return render(request, viewer, "history.html", businesses=await business_ids(sessions, viewer.scope),
                  reasons=await end_reasons(sessions, viewer.scope), **context)
