"""The console's ASGI application: its routes, the signed session cookie, static files, error pages, and the
daily retention purge running beside it."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from console import auth, businesses, call_page, dashboard, history, leads, live, retention_page
from console.retention import purge_daily
from console.settings import ConsoleSettings
from console.web import Viewer, current_user, page, render

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "kolbridge_console"


async def home(request: Request, viewer: Viewer) -> Response:
    return RedirectResponse("/history", status_code=303)


def routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route("/", page(home)),
        Route("/login", auth.login_form), Route("/login", auth.login, methods=post),
        Route("/logout", auth.logout, methods=post),
        Route("/live", page(live.live_page)), Route("/live/{call_sid}", page(live.live_call_page)),
        Route("/live/{call_sid}/hangup", page(live.live_hangup), methods=post),
        Route("/live/{call_sid}/transfer", page(live.live_transfer), methods=post),
        Route("/history", page(history.history_page)),
        Route("/calls/{call_sid}", page(call_page.call_page)),
        Route("/calls/{call_sid}/call.json", page(call_page.call_json)),
        Route("/calls/{call_sid}/audio.wav", page(call_page.call_audio)),
        Route("/calls/{call_sid}/peaks.json", page(call_page.call_peaks)),
        Route("/leads", page(leads.leads_page)), Route("/leads.csv", page(leads.leads_export)),
        Route("/businesses", page(businesses.businesses_page)),
        Route("/businesses/{business_id}", page(businesses.business_view)),
        Route("/businesses/{business_id}/preview", page(businesses.business_preview), methods=post),
        Route("/businesses/{business_id}/save", page(businesses.business_save), methods=post),
        Route("/businesses/{business_id}/rollback/{version_id:int}", page(businesses.business_rollback), methods=post),
        Route("/businesses/{business_id}/classify", page(businesses.business_classify), methods=post),
        Route("/dashboard", page(dashboard.dashboard_page)), Route("/dashboard.json", page(dashboard.dashboard_json)),
        Route("/retention", page(retention_page.retention_view)),
        Route("/retention/erase", page(retention_page.erase_caller), methods=post),
        Route("/retention/purge", page(retention_page.purge_now, admin_only=True), methods=post),
        Route("/audit", page(retention_page.audit_page)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


async def error_page(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    key = {403: "forbidden", 404: "not_found"}.get(status, "not_found")
    user = await current_user(request) if "session" in request.scope else None
    return render(request, None, "error.html", status_code=status, message=key, signed_in=user is not None)


def build_app(settings: ConsoleSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        purging = (asyncio.create_task(purge_daily(settings.sessions, settings.recordings_dir, settings.purge_every_s))
                   if settings.purge_every_s > 0 else None)
        try:
            yield
        finally:
            if purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging

    app = Starlette(routes=routes(), lifespan=lifespan, exception_handlers={HTTPException: error_page},
                    middleware=[Middleware(GZipMiddleware, minimum_size=1000),
                                Middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie=SESSION_COOKIE,
                                           max_age=settings.session_max_age_s, same_site="lax",
                                           https_only=settings.secure_cookie)])
    app.state.console = settings
    app.state.login_attempts = auth.AttemptCounter()
    return app
