"""The retention page (each business's retention, erase one caller number, run the purge now) and the audit log."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from console.retention import erase_number, purge_expired
from console.web import Viewer, console_of, render
from storage.audit import list_audit
from storage.businesses import E164
from storage.console_queries import scoped_businesses


async def retention_page(request: Request, viewer: Viewer, message: str = "", count: int = 0) -> Response:
    businesses = await scoped_businesses(console_of(request).sessions, viewer.scope)
    return render(request, viewer, "retention.html", businesses=businesses, message=message, count=count)


async def retention_view(request: Request, viewer: Viewer) -> Response:
    return await retention_page(request, viewer)


async def erase_caller(request: Request, viewer: Viewer) -> Response:
    number = str((await request.form()).get("number", "")).strip()
    if not E164.match(number):
        return await retention_page(request, viewer, "not_found")
    console = console_of(request)
    erased = await erase_number(console.sessions, console.recordings_dir, viewer.scope, number, viewer.user.email)
    return await retention_page(request, viewer, "erased", len(erased))


async def purge_now(request: Request, viewer: Viewer) -> Response:
    console = console_of(request)
    purged = await purge_expired(console.sessions, console.recordings_dir, console.clock(), viewer.user.email)
    return await retention_page(request, viewer, "purged", len(purged))


async def audit_page(request: Request, viewer: Viewer) -> Response:
    entries = await list_audit(console_of(request).sessions, viewer.scope.business_id)
    return render(request, viewer, "audit.html", entries=entries)
