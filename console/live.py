"""Live calls: the control plane's rows (as `kolbridge calls live` gets them), refreshed twice a second by htmx
polling, within the viewer's scope, the caller masked for a business user; a hang-up (confirmed, a POST with
the CSRF token, audited) goes the way `kolbridge calls hangup` goes. No control plane: the page says so."""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from actors.control_messages import HangupCall, HangupReply, InspectLive, InspectReply, ListLive, LiveTableReply
from console.history import shown_caller
from console.web import Viewer, console_of, not_found, partial, render
from gateway.agent import agent_spec
from gateway.control.link import ask_admin
from storage.audit import record_audit
from storage.console_queries import CallDetail, Scope, call_detail, caller_numbers, scoped_business


class ControlPlane:
    """The ControlAdmin on the actor system's admin port; every ask runs on a thread (thespian blocks)."""

    def __init__(self, admin_port: int) -> None:
        self.admin_port = admin_port

    async def table(self) -> list[dict[str, object]] | None:
        reply = await run_in_threadpool(ask_admin, self.admin_port, ListLive())
        return list(reply.rows) if isinstance(reply, LiveTableReply) else None

    async def inspect(self, call_sid: str) -> dict[str, object] | None:
        answer = await run_in_threadpool(ask_admin, self.admin_port, InspectLive(call_sid))
        return dict(answer.detail) if isinstance(answer, InspectReply) and answer.found else None

    async def hangup(self, call_sid: str, action: str = "hangup") -> str:
        """Hang up (or, with action "transfer", transfer now): the worker it was sent to ("" if none)."""
        command = HangupCall(call_sid, "admin_transfer" if action == "transfer" else "admin_hangup", action)
        answer = await run_in_threadpool(ask_admin, self.admin_port, command)
        return answer.sent_to if isinstance(answer, HangupReply) and answer.sent_to else ""


def visible(rows: list[dict[str, object]], scope: Scope) -> list[dict[str, object]]:
    return [row for row in rows if scope.allows(str(row.get("business_id", "")))]


async def live_rows(request: Request, viewer: Viewer) -> tuple[list[dict[str, object]] | None, dict[str, str]]:
    """The rows the viewer may see (None: no control plane) and each call's caller as they may see it."""
    console = console_of(request)
    rows = await console.live.table()
    if rows is None:
        return None, {}
    rows = sorted(visible(rows, viewer.scope), key=lambda r: -float(str(r.get("age_s", 0) or 0)))
    numbers = await caller_numbers(console.sessions, viewer.scope, [str(row.get("call_sid", "")) for row in rows])
    numbers = {**{str(r.get("call_sid", "")): str(r.get("caller", "")) for r in rows if r.get("caller")}, **numbers}
    callers = {sid: shown_caller(viewer, number) for sid, number in numbers.items()}
    return rows, callers


async def live_page(request: Request, viewer: Viewer) -> Response:
    rows, callers = await live_rows(request, viewer)
    name = "live_rows.html" if partial(request) else "live.html"
    return render(request, viewer, name, rows=rows, callers=callers, message=request.query_params.get("sent", ""))


async def _live_call(request: Request, viewer: Viewer, call_sid: str) -> dict[str, object]:
    rows = await console_of(request).live.table() or []
    row = next((r for r in visible(rows, viewer.scope) if r.get("call_sid") == call_sid), None)
    if row is None:
        raise not_found()
    return row


async def live_hangup(request: Request, viewer: Viewer) -> Response:
    return await _operator_action(request, viewer, "hangup")


async def live_transfer(request: Request, viewer: Viewer) -> Response:
    """Transfer now, to the business's human line (refused, 409, when it has none)."""
    return await _operator_action(request, viewer, "transfer")


async def transfer_line(request: Request, viewer: Viewer, business_id: str) -> str:
    business = await scoped_business(console_of(request).sessions, viewer.scope, business_id)
    return agent_spec(business).transfer.number if business is not None else ""


async def _operator_action(request: Request, viewer: Viewer, action: str) -> Response:
    call_sid = request.path_params["call_sid"]
    row = await _live_call(request, viewer, call_sid)
    console = console_of(request)
    business_id = str(row.get("business_id", ""))
    if action == "transfer" and not await transfer_line(request, viewer, business_id):
        return render(request, viewer, "live_call_body.html", status_code=409, call_sid=call_sid, row=row, detail=None,
                      caller="", control_plane=True, transcript=[], can_transfer=False, message="no_transfer_line")
    sent_to = await console.live.hangup(call_sid, action)
    await record_audit(console.sessions, viewer.user.email, action, business_id, call_sid, {"sent_to": sent_to})
    if request.headers.get("hx-target") == "live-call":
        return await live_call_page(request, viewer)
    rows, callers = await live_rows(request, viewer)
    return render(request, viewer, "live_rows.html", rows=rows, callers=callers,
                  message=f"{action}_sent" if sent_to else "not_found")


def transcript_lines(inspected: dict[str, object] | None, detail: CallDetail | None) -> list[dict[str, object]]:
    """The live call's decided utterances: as the control plane has them when its workers report them (within
    a second of each decision), else as the database has them (written through the worker's write queue)."""
    reported = inspected.get("transcript") if inspected is not None else None
    whole = isinstance(reported, list) and bool(reported) and isinstance(reported[0], dict) and reported[0].get("seq", 1) == 1
    if isinstance(reported, list) and whole:  # else its beginning was never reported (an admin restarted): the database
        return [{"role": u.get("role", ""), "text": u.get("text", ""), "label": u.get("label", ""),
                 "interrupted": bool(u.get("interrupted")), "heard_ms": u.get("heard_ms", -1)}
                for u in reported if isinstance(u, dict)]
    return [{"role": u.role, "text": u.text, "label": u.classification, "interrupted": u.interrupted,
             "heard_ms": u.heard_ms} for u in (detail.utterances if detail is not None else [])]


async def live_call_page(request: Request, viewer: Viewer) -> Response:
    """One live call: its control-plane row and its transcript so far, refreshed every second; after it ends,
    a link to its detail page."""
    call_sid = request.path_params["call_sid"]
    console = console_of(request)
    rows = await console.live.table()
    row = next((r for r in visible(rows or [], viewer.scope) if r.get("call_sid") == call_sid), None)
    detail = await call_detail(console.sessions, viewer.scope, call_sid)
    if row is None and detail is None:
        raise not_found()
    inspected = await console.live.inspect(call_sid) if row is not None else None
    number = detail.call.from_number if detail is not None else str((row or {}).get("caller", ""))
    name = "live_call_body.html" if partial(request) else "live_call.html"
    can_transfer = row is not None and bool(await transfer_line(request, viewer, str(row.get("business_id", ""))))
    return render(request, viewer, name, call_sid=call_sid, row=row, detail=detail, caller=shown_caller(viewer, number),
                  control_plane=rows is not None, transcript=transcript_lines(inspected, detail), can_transfer=can_transfer)
