"""The console's users: added, listed and disabled from the command line; a login checks the password
(argon2id) and counts wrong ones per account — after `max_failures` in a row the account is locked for
`lock_s`. An unknown email costs the same hash verification as a known one, and a disabled account
answers as a wrong password does, so the answers never tell whether an email exists."""
from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta, timezone

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Business, ConsoleUser

ROLES = ("admin", "business")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD = 8
_HASHER = PasswordHasher()
_UNKNOWN_USER_HASH = _HASHER.hash("an account that does not exist")  # verified against for unknown emails


class UserError(ValueError):
    pass


class UserView(msgspec.Struct, frozen=True):
    """A user, detached from the session: what the console needs to decide what they may see."""

    email: str
    role: str
    business_id: str | None
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginOutcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # wrong password, unknown email or disabled account: one answer for the three
    LOCKED = "locked"  # too many wrong passwords in a row: try again after the lock


def aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes (stored as UTC): the same moment, aware."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _view(row: ConsoleUser) -> UserView:
    return UserView(row.email, row.role, row.business_id, row.disabled)


def normalised_email(email: str) -> str:
    return email.strip().casefold()


async def add_user(sessions: async_sessionmaker[AsyncSession], email: str, role: str, business_id: str | None,
                   password: str) -> UserView:
    email = normalised_email(email)
    if not EMAIL.match(email):
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {list(ROLES)}")
    if (role == "business") != bool(business_id):
        raise UserError("a business user needs --business ID; an admin has none")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    async with sessions.begin() as session:
        if business_id and await session.get(Business, business_id) is None:
            raise UserError(f"no business {business_id!r}")
        if (await session.execute(select(ConsoleUser.id).where(ConsoleUser.email == email))).first() is not None:
            raise UserError(f"{email} already exists")
        row = ConsoleUser(email=email, role=role, business_id=business_id or None, password_hash=_HASHER.hash(password),
                          disabled=False, failed_logins=0)
        session.add(row)
    return _view(row)


async def list_users(sessions: async_sessionmaker[AsyncSession]) -> list[UserView]:
    async with sessions() as session:
        rows = (await session.execute(select(ConsoleUser).order_by(ConsoleUser.email))).scalars().all()
        return [_view(row) for row in rows]


async def get_user(sessions: async_sessionmaker[AsyncSession], email: str) -> UserView | None:
    async with sessions() as session:
        row = (await session.execute(select(ConsoleUser).where(
            ConsoleUser.email == normalised_email(email)))).scalar_one_or_none()
        return _view(row) if row is not None else None


async def set_disabled(sessions: async_sessionmaker[AsyncSession], email: str, disabled: bool = True) -> bool:
    """Disable (or enable) an account; False when there is no such user."""
    async with sessions.begin() as session:
        row = (await session.execute(select(ConsoleUser).where(
            ConsoleUser.email == normalised_email(email)))).scalar_one_or_none()
        if row is None:
            return False
        row.disabled = disabled
        return True


def _password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def check_login(sessions: async_sessionmaker[AsyncSession], email: str, password: str, now: datetime,
                      max_failures: int, lock_s: float) -> tuple[LoginOutcome, UserView | None]:
    """A login attempt: OK with the user, WRONG, or LOCKED (the attempt that reaches `max_failures` locks)."""
    async with sessions.begin() as session:
        row = (await session.execute(select(ConsoleUser).where(
            ConsoleUser.email == normalised_email(email)))).scalar_one_or_none()
        if row is None:
            _password_matches(_UNKNOWN_USER_HASH, password)  # the same work as for a known email
            return LoginOutcome.WRONG, None
        if row.locked_until is not None and aware(row.locked_until) > now:
            return LoginOutcome.LOCKED, None
        if _password_matches(row.password_hash, password) and not row.disabled:
            row.failed_logins, row.locked_until = 0, None
            return LoginOutcome.OK, _view(row)
        row.failed_logins = (row.failed_logins or 0) + 1
        if row.failed_logins >= max_failures:
            row.failed_logins, row.locked_until = 0, now + timedelta(seconds=lock_s)
            return LoginOutcome.LOCKED, None
        return LoginOutcome.WRONG, None
