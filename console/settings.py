"""What the console is built from: its database, where recordings are, the control plane, the login limits."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.businesses import BusinessSpec
from storage.models import utcnow


class LiveSource(Protocol):
    """The live calls (the control plane's ControlAdmin, as `kolbridge calls live` asks it)."""

    async def table(self) -> list[dict[str, object]] | None:
        """Every live call's row, or None when no control plane answers."""

    async def inspect(self, call_sid: str) -> dict[str, object] | None:
        """Everything the control plane knows of one live call (with its decided utterances, "transcript",
        when the workers report them), or None."""

    async def hangup(self, call_sid: str, action: str = "hangup") -> str:
        """Ask the call's worker to hang up (action "transfer": to transfer it to the business's human line now);
        the worker it was sent to ("" when no live call has that sid)."""


BusinessCheck = Callable[[BusinessSpec], list[str]]
Clock = Callable[[], datetime]


@dataclass
class ConsoleSettings:
    sessions: async_sessionmaker[AsyncSession]
    secret_key: str
    recordings_dir: Path
    live: LiveSource
    business_check: BusinessCheck  # the setting overrides `kolbridge business import` checks (gateway/cli/console.py)
    secure_cookie: bool = False  # KOLBRIDGE_PUBLIC_URL is https
    max_failures: int = 5  # wrong passwords in a row that lock an account
    lock_s: float = 15 * 60
    address_max_failures: int = 20  # wrong logins from one address within address_window_s
    address_window_s: float = 15 * 60
    session_max_age_s: int = 12 * 3600
    purge_every_s: float = 24 * 3600  # the retention purge's period (0: never in this process)
    clock: Clock = field(default=utcnow)
