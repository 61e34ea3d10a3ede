"""The console's doors: signing in, the lock after wrong passwords (per account and per address, an unknown
email answered as a known one), the CSRF token on every POST, the session cookie's flags, the language."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.i18n import STRINGS
from storage.audit import list_audit
from storage.users import set_disabled
from tests.test_console_support import (
    PASSWORD,
    Clock,
    client_for,
    console_settings,
    csrf_of,
    page_token,
    sessions,
    sign_in,
    signed_in,
    two_businesses,
)

__all__ = ["sessions"]


def shown(key: str, lang: str = "he") -> str:
    """A string of the i18n table as a page shows it (HTML-escaped)."""
    return str(escape(STRINGS[lang][key]))


async def test_a_good_password_signs_in_and_is_audited(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        history = await client.get("/history")
        assert history.status_code == 200 and "a@example.com" in history.text
    actions = [(e.action, e.target) for e in await list_audit(sessions, None)]
    assert ("login_ok", "a@example.com") in actions


async def test_signed_out_pages_send_to_the_login(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    async with client_for(console_settings(sessions, tmp_path)) as client:
        answer = await client.get("/history")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


@pytest.mark.parametrize("email", ["a@example.com", "nobody@example.com"])
async def test_wrong_passwords_lock_the_account_without_telling_whether_it_exists(
        sessions: async_sessionmaker[AsyncSession], tmp_path: Path, email: str) -> None:
    await two_businesses(sessions)
    async with client_for(console_settings(sessions, tmp_path, max_failures=3)) as client:
        answers = [await sign_in(client, email, "wrong password") for _ in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert shown("login_wrong") in answers[0].text and shown("login_locked") in answers[2].text
        locked = await sign_in(client, email, PASSWORD)  # the right password, but locked
        assert locked.status_code == 429 and shown("login_locked") in locked.text
    assert ("login_locked", email) in [(e.action, e.target) for e in await list_audit(sessions, None)]


async def test_the_lock_ends_after_its_time(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    clock = Clock()
    settings = console_settings(sessions, tmp_path, max_failures=2, lock_s=600, clock=clock)
    async with client_for(settings) as client:
        for _ in range(2):
            await sign_in(client, "a@example.com", "wrong password")
        assert (await sign_in(client, "a@example.com")).status_code == 429
        clock.now += timedelta(seconds=601)
        assert (await sign_in(client, "a@example.com")).status_code == 303


async def test_one_address_is_limited_across_accounts(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    settings = console_settings(sessions, tmp_path, max_failures=10, address_max_failures=3)
    async with client_for(settings, "10.0.0.7") as client:
        for email in ("x@example.com", "y@example.com", "z@example.com"):
            assert (await sign_in(client, email, "guess")).status_code == 401
        assert (await sign_in(client, "a@example.com")).status_code == 429  # this address is refused
    async with client_for(settings, "10.0.0.8") as other:
        assert (await sign_in(other, "a@example.com")).status_code == 303  # the account itself is not locked


async def test_every_post_needs_the_csrf_token(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    settings = console_settings(sessions, tmp_path)
    async with client_for(settings) as anonymous:
        await anonymous.get("/login")
        refused = await anonymous.post("/login", data={"email": "a@example.com", "password": PASSWORD})
        assert refused.status_code == 403
    async with signed_in(settings, "admin@example.com") as client:
        for url, data in (("/logout", {}), ("/businesses/biz-a/save", {"toml": "x"}), ("/retention/purge", {}),
                          ("/retention/erase", {"number": "+972501234567"}), ("/live/CA1/hangup", {}),
                          ("/businesses/biz-a/classify", {"text": "כן"})):
            assert (await client.post(url, data=data)).status_code == 403, url
            assert (await client.post(url, data={**data, "csrf": "forged"})).status_code == 403, url
        token = await page_token(client)
        assert (await client.post("/businesses/biz-a/classify", data={"text": "כן", "csrf": token})).status_code == 200
        assert (await client.post("/businesses/biz-a/classify", data={"text": "כן"},
                                  headers={"X-CSRF-Token": token})).status_code == 200  # htmx sends it as a header


async def test_a_disabled_user_is_signed_out_at_once(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        await set_disabled(sessions, "a@example.com")
        assert (await client.get("/history")).status_code == 303
        assert (await sign_in(client, "a@example.com")).status_code == 401


@pytest.mark.parametrize("secure", [False, True])
async def test_the_session_cookie_is_signed_httponly_and_lax(sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
                                                             secure: bool) -> None:
    await two_businesses(sessions)
    async with client_for(console_settings(sessions, tmp_path, secure_cookie=secure)) as client:
        answer = await sign_in(client, "a@example.com")
        cookie = answer.headers["set-cookie"].lower()
        assert "kolbridge_console=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert ("secure" in cookie.split("; ")) is secure


async def test_hebrew_first_with_an_english_toggle(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    assert set(STRINGS["he"]) == set(STRINGS["en"])
    async with client_for(console_settings(sessions, tmp_path)) as client:
        hebrew = await client.get("/login")
        assert '<html dir="rtl" lang="he">' in hebrew.text and shown("login") in hebrew.text
        english = await client.get("/login?lang=en")
        assert '<html dir="ltr" lang="en">' in english.text and shown("password", "en") in english.text
        assert '<html dir="ltr" lang="en">' in (await client.get("/login")).text  # remembered in a cookie
        assert csrf_of(english)
