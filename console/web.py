"""Every page's frame: who is looking (the session's user, re-read from the database on each request, so a
disabled account loses access at once), in which language, and the CSRF token every form carries and every
POST must return (403 without it). Pages render Jinja2 templates from the package with the i18n table."""
from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from console.i18n import LANGUAGES, direction, end_reason, strings
from console.settings import ConsoleSettings
from storage.console_queries import Scope
from storage.users import UserView, get_user

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LANG_COOKIE = "lang"

templates = Jinja2Templates(env=Environment(loader=PackageLoader("console", "templates"),
                                            autoescape=select_autoescape(["html"]), undefined=StrictUndefined))


class Viewer(msgspec.Struct, frozen=True):
    """The signed-in user of one request, what they may see, and how to speak to them."""

    user: UserView
    scope: Scope
    lang: str
    csrf: str


Handler = Callable[[Request, Viewer], Awaitable[Response]]


def console_of(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings = request.app.state.console
    return settings


def language(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE, "")
    return asked if asked in LANGUAGES else "he"


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


async def csrf_ok(request: Request) -> bool:
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected:
        return False
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    return hmac.compare_digest(sent.encode(), expected.encode())


def not_found() -> HTTPException:
    return HTTPException(404)


async def current_user(request: Request) -> UserView | None:
    email = request.session.get("email")
    if not isinstance(email, str):
        return None
    user = await get_user(console_of(request).sessions, email)
    return user if user is not None and not user.disabled else None


def with_language(request: Request, response: Response) -> Response:
    """Remember a language asked for in the query (?lang=en) in a cookie."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="lax", httponly=True,
                            secure=console_of(request).secure_cookie)
    return response


def page(handler: Handler, admin_only: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A signed-in page: redirects to the login when there is no user, 403 on a POST without the CSRF token,
    404 for an admin-only page seen by a business user."""
    async def endpoint(request: Request) -> Response:
        if request.method == "POST" and not await csrf_ok(request):
            raise HTTPException(403, "CSRF token missing or wrong")
        user = await current_user(request)
        if user is None:
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": "/login"})
            return RedirectResponse("/login", status_code=303)
        if admin_only and not user.is_admin:
            raise not_found()
        viewer = Viewer(user, Scope(None if user.is_admin else user.business_id), language(request), csrf_token(request))
        return with_language(request, await handler(request, viewer))
    return endpoint


def render(request: Request, viewer: Viewer | None, name: str, status_code: int = 200, **context: Any) -> Response:
    lang = viewer.lang if viewer is not None else language(request)
    frame = {"t": strings(lang), "reason": lambda code: end_reason(lang, code), "lang": lang, "dir": direction(lang),
             "viewer": viewer, "csrf": csrf_token(request), "path": request.url.path,
             "other_lang": "en" if lang == "he" else "he"}
    return templates.TemplateResponse(request, name, {**frame, **context}, status_code=status_code)


def partial(request: Request) -> bool:
    """An htmx request for a part of the page (the template renders only that part)."""
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-boosted")
