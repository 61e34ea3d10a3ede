"""The audit log (every action someone took in the console or with `kolbridge users|calls purge|erase-number`)
and the versions of business files saved from the console (who, when, what: the rollback's source)."""
from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import AuditEntry, BusinessVersion, utcnow


class AuditView(msgspec.Struct, frozen=True):
    id: int
    at: str
    user_email: str
    action: str
    business_id: str | None
    target: str
    detail: dict[str, Any]


class VersionView(msgspec.Struct, frozen=True):
    id: int
    business_id: str
    at: str
    user_email: str
    toml: str
    note: str


def audit_row(user_email: str, action: str, business_id: str | None, target: str = "",
              detail: dict[str, Any] | None = None) -> AuditEntry:
    """An audit row to add inside the caller's own transaction (the action and its record commit together)."""
    return AuditEntry(at=utcnow(), user_email=user_email, action=action, business_id=business_id,
                      target=target[:200], detail=dict(detail or {}))


async def record_audit(sessions: async_sessionmaker[AsyncSession], user_email: str, action: str,
                       business_id: str | None, target: str = "", detail: dict[str, Any] | None = None) -> None:
    async with sessions.begin() as session:
        session.add(audit_row(user_email, action, business_id, target, detail))


async def list_audit(sessions: async_sessionmaker[AsyncSession], business_id: str | None,
                     limit: int = 200) -> list[AuditView]:
    """Newest first; `business_id` None lists every row (an admin's view), else that business's rows only."""
    async with sessions() as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if business_id is not None:
            query = query.where(AuditEntry.business_id == business_id)
        rows = (await session.execute(query)).scalars().all()
        return [AuditView(r.id, r.at.isoformat(timespec="seconds"), r.user_email, r.action, r.business_id, r.target,
                          dict(r.detail or {})) for r in rows]


async def save_version(sessions: async_sessionmaker[AsyncSession], business_id: str, user_email: str, toml: str,
                       note: str, action: str) -> int:
    """A business file as saved, and its audit row, in one transaction; the version's id."""
    async with sessions.begin() as session:
        version = BusinessVersion(business_id=business_id, at=utcnow(), user_email=user_email, toml=toml, note=note)
        session.add(version)
        await session.flush()
        session.add(audit_row(user_email, action, business_id, business_id, {"version": version.id, "note": note}))
        return version.id


def _version_view(row: BusinessVersion) -> VersionView:
    return VersionView(row.id, row.business_id, row.at.isoformat(timespec="seconds"), row.user_email, row.toml, row.note)


async def list_versions(sessions: async_sessionmaker[AsyncSession], business_id: str) -> list[VersionView]:
    async with sessions() as session:
        rows = (await session.execute(select(BusinessVersion).where(BusinessVersion.business_id == business_id)
                                      .order_by(BusinessVersion.id.desc()))).scalars().all()
        return [_version_view(row) for row in rows]


async def get_version(sessions: async_sessionmaker[AsyncSession], business_id: str, version_id: int) -> VersionView | None:
    """One version of one business (None when the id belongs to another business: the caller's scope holds)."""
    async with sessions() as session:
        row = (await session.execute(select(BusinessVersion).where(
            BusinessVersion.id == version_id, BusinessVersion.business_id == business_id))).scalar_one_or_none()
        return _version_view(row) if row is not None else None
