"""System prompt = layer 1 core role + layer 2 telephony context + layer 3 conversation behaviour
+ layer 4 the business (rendered from its database row). Layers 1–3 and the templates are text files
under prompts/<language>/; nothing business-specific lives in code. Each layer gets a short hash so a
call record shows exactly which prompt it ran with.
"""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from string import Template

import msgspec

PROMPTS_DIR = Path(__file__).resolve().parent
LAYER_FILES = ("core_role", "telephony", "behaviour")


class BusinessFacts(msgspec.Struct, frozen=True):
    name: str
    language: str
    greeting: str
    prompt: str
    vocabulary: tuple[str, ...] = ()
    industry: str = ""
    value_proposition: str = ""
    services: tuple[str, ...] = ()
    tone: str = ""
    purpose: str = "support"
    permissions: dict[str, bool] = {}
    languages: tuple[str, ...] = ()  # caller languages (the first = language); more than one: detected per call


class BuiltPrompt(msgspec.Struct, frozen=True):
    instructions: str
    greeting_instructions: str
    layer_hashes: dict[str, str]
    transcription_prompt: str = ""
    language_layers: dict[str, str] = {}  # caller language → the layer added while the caller speaks it


def _layer_dir(language: str) -> Path:
    path = PROMPTS_DIR / language
    return path if path.is_dir() else PROMPTS_DIR / "en"


def _read(language: str, name: str, suffix: str = ".txt") -> str:
    return (_layer_dir(language) / f"{name}{suffix}").read_text(encoding="utf-8").strip()


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


class _PermissionTexts(msgspec.Struct, forbid_unknown_fields=True):
    allowed: dict[str, str]
    forbidden: dict[str, str]
    purposes: dict[str, str]
    none: str


def render_business_layer(business: BusinessFacts) -> str:
    """Layer 4 from the business row: the template and the permission sentences are data files."""
    texts = msgspec.convert(tomllib.loads(_read(business.language, "permissions", ".toml")), _PermissionTexts)
    allowed = [texts.allowed[k] for k, on in sorted(business.permissions.items()) if on and k in texts.allowed]
    forbidden = [texts.forbidden[k] for k, on in sorted(business.permissions.items()) if not on and k in texts.forbidden]
    text = Template(_read(business.language, "business")).safe_substitute(
        name=business.name, industry=business.industry, value_proposition=business.value_proposition,
        services=", ".join(business.services), tone=business.tone,
        purpose=texts.purposes.get(business.purpose, business.purpose),
        allowed="; ".join(allowed) or texts.none, forbidden="; ".join(forbidden) or texts.none,
        prompt=business.prompt.strip())
    lines = [line for line in text.splitlines() if line.strip() and not line.rstrip().endswith(": .")]
    if lines and lines[-1].rstrip().endswith(":"):  # a heading with nothing under it
        lines.pop()
    return "\n".join(lines)


def build_prompt(business: BusinessFacts) -> BuiltPrompt:
    layers = {name: _read(business.language, name) for name in LAYER_FILES}
    layers["business"] = render_business_layer(business)
    instructions = "\n\n".join(layers[k] for k in (*LAYER_FILES, "business"))
    greeting = Template(_read(business.language, "greeting")).safe_substitute(greeting=business.greeting.strip())
    hashes = {k: short_hash(v) for k, v in layers.items()}
    language_layers = caller_language_layers(business.language, business.languages)
    if language_layers:
        hashes["caller_language"] = short_hash("\n".join(f"{k}={v}" for k, v in sorted(language_layers.items())))
    words = ", ".join(dict.fromkeys([business.name, *business.vocabulary]))
    several = len(business.languages) > 1  # transcription detects the language: no prompt may name one
    transcription = Template(_read(business.language, "transcription_any" if several else "transcription")).safe_substitute(
        name=business.name, vocabulary=words)
    return BuiltPrompt(instructions, greeting, hashes, transcription, language_layers)


def _layer_texts(business_language: str) -> dict[str, str]:
    path = _layer_dir(business_language) / "caller_language.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {key: value for key, value in data.items() if isinstance(value, str)}


def caller_languages_for(business_language: str) -> set[str]:
    """The languages a business in `business_language` may list for its callers: its own, and each one its
    prompts have a layer for (prompts/<language>/caller_language.toml) and the lexicons know."""
    from prompts.classifier import LEXICON_DIR
    known = {path.stem for path in LEXICON_DIR.glob("*.toml")}
    return {business_language} | (set(_layer_texts(business_language)) & known)


def caller_language_layers(business_language: str, languages: tuple[str, ...]) -> dict[str, str]:
    """The layer for each caller language but the first (the business's own: its instructions as they are)."""
    texts = _layer_texts(business_language)
    return {language: texts[language] for language in languages[1:] if language in texts}


def load_directives(language: str) -> dict[str, str]:
    """Response-level instructions for the moments the bridge decides (prompts/<language>/directives.toml)."""
    data = tomllib.loads(_read(language, "directives", ".toml"))
    return {key: value for key, value in data.items() if isinstance(value, str)}
