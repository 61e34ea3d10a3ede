"""Signing in and out. Wrong passwords are counted per account in the database (storage/users.py locks it
after `max_failures`) and per client address here, in memory: `address_max_failures` within
`address_window_s` and that address is refused until the window passes. Unknown emails are counted per
email too, so an unknown email locks exactly as a known one would — the answer never says which it was.
Every attempt is in the audit log."""
from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.web import console_of, csrf_ok, current_user, render, with_language
from storage.audit import record_audit
from storage.users import LoginOutcome, UserView, check_login, get_user, normalised_email


class AttemptCounter:
    """Failures per key (an address, an unknown email) within a sliding window."""

    def __init__(self) -> None:
        self.failures: dict[str, deque[datetime]] = defaultdict(deque)

    def _recent(self, key: str, now: datetime, window_s: float) -> deque[datetime]:
        times = self.failures[key]
        while times and times[0] <= now - timedelta(seconds=window_s):
            times.popleft()
        return times

    def count(self, key: str, now: datetime, window_s: float) -> int:
        return len(self._recent(key, now, window_s))

    def fail(self, key: str, now: datetime, window_s: float) -> int:
        times = self._recent(key, now, window_s)
        times.append(now)
        return len(times)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def login_form(request: Request) -> Response:
    if await current_user(request) is not None:
        return RedirectResponse("/", status_code=303)
    return with_language(request, render(request, None, "login.html", error=""))


async def _attempt(request: Request, email: str, password: str, address: str) -> tuple[LoginOutcome, UserView | None]:
    """The outcome of one attempt, counting it against the address (and the email, when it is unknown)."""
    console = console_of(request)
    now = console.clock()
    limits: AttemptCounter = request.app.state.login_attempts
    if limits.count(f"address:{address}", now, console.address_window_s) >= console.address_max_failures:
        return LoginOutcome.LOCKED, None
    if limits.count(f"email:{email}", now, console.lock_s) >= console.max_failures:
        return LoginOutcome.LOCKED, None
    outcome, user = await check_login(console.sessions, email, password, now, console.max_failures, console.lock_s)
    if outcome is not LoginOutcome.OK:
        limits.fail(f"address:{address}", now, console.address_window_s)
    if outcome is LoginOutcome.WRONG and await get_user(console.sessions, email) is None:
        # an unknown email locks at the same attempt a known one would
        if limits.fail(f"email:{email}", now, console.lock_s) >= console.max_failures:
            return LoginOutcome.LOCKED, None
    return outcome, user


async def login(request: Request) -> Response:
    if not await csrf_ok(request):
        raise HTTPException(403, "CSRF token missing or wrong")
    form = await request.form()
    email = normalised_email(str(form.get("email", "")))
    address = client_address(request)
    outcome, user = await _attempt(request, email, str(form.get("password", "")), address)
    await record_audit(console_of(request).sessions, email, f"login_{outcome.value}", user.business_id if user else None,
                       email, {"address": address})
    if outcome is LoginOutcome.OK and user is not None:
        request.session.clear()  # a new session: a new CSRF token
        request.session["email"] = user.email
        return RedirectResponse("/", status_code=303)
    error = "login_locked" if outcome is LoginOutcome.LOCKED else "login_wrong"
    return render(request, None, "login.html", status_code=429 if outcome is LoginOutcome.LOCKED else 401, error=error)


async def logout(request: Request) -> Response:
    if not await csrf_ok(request):
        raise HTTPException(403, "CSRF token missing or wrong")
    user = await current_user(request)
    if user is not None:
        await record_audit(console_of(request).sessions, user.email, "logout", user.business_id, user.email)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
