"""Business files (TOML) → rows. Import is an upsert by id, all-or-nothing, with field-named errors."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Literal

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prompts.builder import caller_languages_for
from storage.models import Business, PhoneNumber, utcnow
from storage.outbound import OutboundSpec, outbound_problems

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
TOOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")
RESERVED_TOOLS = ("end_call", "transfer_to_human", "save_lead")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TransferSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """transfer_to_human: where the call goes, with what caller ID and ring timeout, and how (issue 23):
    `cold` redirects the caller to `<Dial>` the line; `warm` holds the caller in a conference (hold music
    or a holding line) while the line is called and — with `whisper` — told the agent's summary before
    joining. Either way, a line that is busy or does not answer returns the caller to the agent, who is
    told why; after `max_attempts` failed attempts the caller hears the apology and the call ends."""

    number: str = ""
    caller_id: str = ""
    timeout_s: int = 25
    mode: Literal["cold", "warm"] = "cold"
    whisper: bool = True  # warm: the human hears the summary before joining
    hold: Literal["music", "agent"] = "music"  # warm: what the caller hears while the line rings
    hold_url: str = ""  # warm, hold = "music": an audio URL (default: Twilio's hold music)
    hold_message: str = ""  # warm, hold = "agent": the holding line (default: in the business's language)
    max_attempts: int = 2  # failed attempts before the apology (1: the first failure ends the call)


class WebhookSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    secret: str = ""  # HMAC-SHA256 of the body in X-Kolbridge-Signature


class HttpToolSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str
    url: str
    parameters: dict[str, Any]
    timeout_s: float = 5.0
    read_only: bool = False  # it only answers (changes nothing): may run before the caller's turn is confirmed


class LeadFieldSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str
    required: bool = False
    type: str = "string"  # string | integer | number | boolean


class LexiconAdditions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A business's own words for one caller language, merged with that language's lexicon (prompts/lexicon/)."""

    fillers: list[str] = []
    short_words: list[str] = []
    backchannels: list[str] = []


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
    backchannels: list[str] = []  # lexicon additions: listener words that do not cut the AI mid-sentence
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
    conversation: dict[str, Any] = {}  # overrides of config.toml [conversation]: silence, time limit, keypad
    transfer: TransferSpec = TransferSpec()
    webhook: WebhookSpec | None = None
    tools: list[HttpToolSpec] = []
    lead_fields: list[LeadFieldSpec] = []
    languages: list[str] = []  # caller languages, the first the greeting's ([] = [language]: no switching)
    greetings: dict[str, str] = {}  # language → greeting for a caller in it (optional; else the first's)
    lexicons: dict[str, LexiconAdditions] = {}  # language → this business's own words in it
    retention_days: int = 0  # recordings and transcripts older than this are purged (0 = kept)
    outbound: OutboundSpec = OutboundSpec()  # calling out: hours, caller ID, voicemail, retries (storage/outbound.py)


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
    agent: dict[str, Any] = {}  # conversation, transfer, webhook, tools, lead_fields (as imported)
    backchannels: list[str] = []
    languages: list[str] = []  # never empty once read from a row: [language] when the file named none
    greetings: dict[str, str] = {}
    lexicons: dict[str, dict[str, list[str]]] = {}
    retention_days: int = 0


def agent_problems(spec: BusinessSpec) -> list[str]:
    """Tools and lead form: names, JSON schemas, timeouts (URL policy is the gateway's: it knows the operator's)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    problems = []
    names: set[str] = set()
    for i, tool in enumerate(spec.tools):
        where = f"business.tools[{i}]"
        if not TOOL_NAME.match(tool.name) or tool.name in RESERVED_TOOLS:
            problems.append(f"{where}.name: {tool.name!r} must be 1-64 letters, digits, '_' or '-' and not a built-in")
        if tool.name in names:
            problems.append(f"{where}.name: {tool.name!r} declared twice")
        names.add(tool.name)
        if not tool.description.strip():
            problems.append(f"{where}.description: must not be empty (the model chooses tools by it)")
        if not 0.5 <= tool.timeout_s <= 30.0:
            problems.append(f"{where}.timeout_s: {tool.timeout_s} is not within 0.5-30 s")
        try:
            Draft202012Validator.check_schema(tool.parameters)
        except SchemaError as exc:
            problems.append(f"{where}.parameters: not a valid JSON schema: {exc.message}")
            continue
        if tool.parameters.get("type") != "object":
            problems.append(f"{where}.parameters: the schema's type must be \"object\"")
    seen_fields: set[str] = set()
    for i, lead_field in enumerate(spec.lead_fields):
        where = f"business.lead_fields[{i}]"
        if not FIELD_NAME.match(lead_field.name) or lead_field.name in seen_fields:
            problems.append(f"{where}.name: {lead_field.name!r} must be a unique lowercase identifier")
        seen_fields.add(lead_field.name)
        if lead_field.type not in ("string", "integer", "number", "boolean"):
            problems.append(f"{where}.type: {lead_field.type!r} is not string, integer, number or boolean")
    if spec.transfer.number and not E164.match(spec.transfer.number):
        problems.append(f"business.transfer.number: {spec.transfer.number!r} is not an E.164 number")
    if spec.transfer.caller_id and not E164.match(spec.transfer.caller_id):
        problems.append(f"business.transfer.caller_id: {spec.transfer.caller_id!r} is not an E.164 number")
    if not 1 <= spec.transfer.max_attempts <= 5:
        problems.append("business.transfer.max_attempts: between 1 and 5")
    if not 5 <= spec.transfer.timeout_s <= 120:
        problems.append("business.transfer.timeout_s: between 5 and 120 seconds")
    if spec.transfer.hold_url and not spec.transfer.hold_url.startswith(("https://", "http://")):
        problems.append(f"business.transfer.hold_url: {spec.transfer.hold_url!r} is not an http(s) URL")
    if not 5 <= spec.transfer.timeout_s <= 120:
        problems.append(f"business.transfer.timeout_s: {spec.transfer.timeout_s} is not within 5-120 s")
    return problems


def language_problems(spec: BusinessSpec) -> list[str]:
    """languages: known, unique, led by `language`; greetings and lexicons only for listed languages."""
    problems = []
    listed = spec.languages or [spec.language]
    allowed = caller_languages_for(spec.language)
    for i, language in enumerate(spec.languages):
        if language not in allowed:
            problems.append(f"business.languages[{i}]: {language!r} is not a caller language of a {spec.language!r} "
                            f"business (one of {sorted(allowed)})")
    if len(set(listed)) != len(listed):
        problems.append("business.languages: duplicates")
    if listed[0] != spec.language:
        problems.append(f"business.languages: must begin with business.language ({spec.language!r}), the greeting's")
    for language, text in spec.greetings.items():
        if language not in listed:
            problems.append(f"business.greetings.{language}: {language!r} is not in business.languages")
        elif not text.strip():
            problems.append(f"business.greetings.{language}: must not be empty")
    for language in spec.lexicons:
        if language not in listed:
            problems.append(f"business.lexicons.{language}: {language!r} is not in business.languages")
    if not 0 <= spec.retention_days <= 3650:
        problems.append(f"business.retention_days: {spec.retention_days} is not within 0-3650 (0 keeps everything)")
    return problems


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
    problems += language_problems(spec)
    problems += agent_problems(spec)
    problems += outbound_problems(spec.outbound, spec.phone_numbers)
    if problems:
        raise BusinessError(f"{source}: " + "; ".join(problems))
    return spec if spec.languages else msgspec.structs.replace(spec, languages=[spec.language])


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
        row.backchannels = list(spec.backchannels)
        row.overrides = {k: v for k, v in (("audio", spec.audio), ("barge_in", spec.barge_in), ("vad", spec.vad),
                                           ("realtime", spec.realtime), ("fallback", spec.fallback)) if v}
        row.vocabulary = list(spec.vocabulary)
        row.languages, row.greetings = list(spec.languages or [spec.language]), dict(spec.greetings)
        row.lexicons = {language: msgspec.structs.asdict(words) for language, words in spec.lexicons.items()}
        row.retention_days = spec.retention_days
        row.industry, row.value_proposition, row.tone, row.purpose = (
            spec.industry, spec.value_proposition, spec.tone, spec.purpose)
        row.services, row.permissions = list(spec.services), msgspec.structs.asdict(spec.permissions)
        row.agent = msgspec.to_builtins({"conversation": spec.conversation, "transfer": spec.transfer,
                                         "webhook": spec.webhook, "tools": spec.tools, "lead_fields": spec.lead_fields, "outbound": spec.outbound})
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
                            row.purpose or "support", dict(row.permissions or {}), dict(row.agent or {}),
                            list(row.backchannels or []), list(row.languages or [row.language]),
                            dict(row.greetings or {}), dict(row.lexicons or {}), row.retention_days or 0)


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
