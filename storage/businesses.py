"""Business files (TOML) → rows. Import is an upsert by id, all-or-nothing, with field-named errors."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Business, PhoneNumber, utcnow

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
BUSINESS_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
LANGUAGES = {"he", "en", "ar", "ru", "fr", "es", "de"}


class BusinessError(ValueError):
    pass


class Permissions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the assistant may do for this business (rendered into the prompt's business layer)."""

    collect_lead_details: bool = False
    schedule_appointments: bool = False
    answer_faqs: bool = True
    transfer_to_human: bool = False
    take_payments: bool = False


PURPOSES = ("lead_generation", "support", "scheduling", "sales", "information")


class BusinessSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    language: str
    greeting: str
    phone_numbers: list[str] = []
    prompt: str = ""
    voice: str = ""
    active: bool = True
    fillers: list[str] = []  # lexicon additions: sounds this business's callers make that mean nothing
    short_words: list[str] = []  # lexicon additions: short words that are always real turns
    vocabulary: list[str] = []  # names, services, places callers say: biases speech recognition
    industry: str = ""
    value_proposition: str = ""
    services: list[str] = []
    tone: str = ""
    purpose: str = "support"
    permissions: Permissions = Permissions()
    audio: dict[str, Any] = {}  # overrides of config.toml [audio], checked by the gateway
    barge_in: dict[str, Any] = {}  # overrides of config.toml [barge_in]
    vad: dict[str, Any] = {}  # overrides of config.toml [vad]
    realtime: dict[str, Any] = {}  # overrides of config.toml [realtime]: voice, transcription_model, noise_reduction
    fallback: dict[str, Any] = {}  # when the AI is unavailable: mode, transfer_number, message… (gateway/fallback.py)


class BusinessFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    business: BusinessSpec


class BusinessView(msgspec.Struct, frozen=True):
    """What a call needs of a business, detached from the ORM session."""

    id: str
    name: str
    language: str
    greeting: str
    prompt: str
    voice: str
    active: bool
    phone_numbers: list[str]
    fillers: list[str] = []
    short_words: list[str] = []
    overrides: dict[str, dict[str, Any]] = {}
    vocabulary: list[str] = []
    industry: str = ""
    value_proposition: str = ""
    services: list[str] = []
    tone: str = ""
    purpose: str = "support"
    permissions: dict[str, bool] = {}


def parse_business(text: str, source: str = "<business file>") -> BusinessSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BusinessError(f"{source}: not valid TOML: {exc}") from exc
    try:
        spec = msgspec.convert(data, BusinessFile).business
    except msgspec.ValidationError as exc:
        raise BusinessError(f"{source}: {exc}") from exc
    problems = []
    if not BUSINESS_ID.match(spec.id):
        problems.append("business.id: use 2-64 lowercase letters, digits, '-' or '_'")
    if not spec.name.strip():
        problems.append("business.name: must not be empty")
    if spec.language not in LANGUAGES:
        problems.append(f"business.language: {spec.language!r} is not one of {sorted(LANGUAGES)}")
    if not spec.greeting.strip():
        problems.append("business.greeting: must not be empty")
    for i, number in enumerate(spec.phone_numbers):
        if not E164.match(number):
            problems.append(f"business.phone_numbers[{i}]: {number!r} is not an E.164 number (+<digits>)")
    if spec.purpose not in PURPOSES:
        problems.append(f"business.purpose: {spec.purpose!r} is not one of {list(PURPOSES)}")
    if len(set(spec.phone_numbers)) != len(spec.phone_numbers):
        problems.append("business.phone_numbers: duplicates")
    if problems:
        raise BusinessError(f"{source}: " + "; ".join(problems))
    return spec


async def upsert_business(sessions: async_sessionmaker[AsyncSession], spec: BusinessSpec) -> None:
    async with sessions.begin() as session:
        taken = (await session.execute(select(PhoneNumber).where(
            PhoneNumber.e164.in_(spec.phone_numbers), PhoneNumber.business_id != spec.id))).scalars().all()
        if taken:
            owners = ", ".join(f"{p.e164} → {p.business_id}" for p in taken)
            raise BusinessError(f"business.phone_numbers: already routed to another business ({owners})")
        row = await session.get(Business, spec.id)
        if row is None:
            row = Business(id=spec.id)
            session.add(row)
        row.name, row.language, row.greeting = spec.name, spec.language, spec.greeting
        row.prompt, row.voice, row.active = spec.prompt, spec.voice, spec.active
        row.fillers, row.short_words = list(spec.fillers), list(spec.short_words)
        row.overrides = {k: v for k, v in (("audio", spec.audio), ("barge_in", spec.barge_in), ("vad", spec.vad),
                                           ("realtime", spec.realtime), ("fallback", spec.fallback)) if v}
        row.vocabulary = list(spec.vocabulary)
        row.industry, row.value_proposition, row.tone, row.purpose = (
            spec.industry, spec.value_proposition, spec.tone, spec.purpose)
        row.services, row.permissions = list(spec.services), msgspec.structs.asdict(spec.permissions)
        row.updated_at = utcnow()  # every import is a new version for the serving processes' caches
        await session.execute(delete(PhoneNumber).where(PhoneNumber.business_id == spec.id))
        await session.flush()
        session.add_all(PhoneNumber(e164=n, business_id=spec.id) for n in spec.phone_numbers)


OverrideCheck = Callable[[BusinessSpec], list[str]]


async def import_business_file(sessions: async_sessionmaker[AsyncSession], path: Path,
                               check: OverrideCheck | None = None) -> BusinessSpec:
    """Parse, validate (the caller checks the setting overrides it knows), then upsert in one transaction."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BusinessError(f"{path}: cannot read: {exc.strerror}") from exc
    spec = parse_business(text, str(path))
    problems = check(spec) if check else []
    if problems:
        raise BusinessError(f"{path}: " + "; ".join(problems))
    await upsert_business(sessions, spec)
    return spec


async def get_business(sessions: async_sessionmaker[AsyncSession], business_id: str) -> BusinessView | None:
    async with sessions() as session:
        row = await session.get(Business, business_id)
        if row is None:
            return None
        numbers = (await session.execute(select(PhoneNumber.e164).where(
            PhoneNumber.business_id == business_id).order_by(PhoneNumber.e164))).scalars().all()
        return BusinessView(row.id, row.name, row.language, row.greeting, row.prompt, row.voice, row.active,
                            list(numbers), list(row.fillers or []), list(row.short_words or []),
                            dict(row.overrides or {}), list(row.vocabulary or []), row.industry or "",
                            row.value_proposition or "", list(row.services or []), row.tone or "",
                            row.purpose or "support", dict(row.permissions or {}))


async def list_businesses(sessions: async_sessionmaker[AsyncSession]) -> list[BusinessView]:
    async with sessions() as session:
        ids = (await session.execute(select(Business.id).order_by(Business.id))).scalars().all()
    views = [await get_business(sessions, business_id) for business_id in ids]
    return [v for v in views if v is not None]


async def business_for_number(sessions: async_sessionmaker[AsyncSession], e164: str) -> BusinessView | None:
    async with sessions() as session:
        row = await session.get(PhoneNumber, e164)
        business_id = row.business_id if row else None
    return await get_business(sessions, business_id) if business_id else None


async def business_version(sessions: async_sessionmaker[AsyncSession], business_id: str) -> str | None:
    """The row's last update time, as a cache key (None if there is no such business)."""
    async with sessions() as session:
        stamp = (await session.execute(select(Business.updated_at).where(Business.id == business_id))).scalar()
    return stamp.isoformat() if stamp is not None else None
