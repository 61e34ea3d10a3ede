"""System prompt = layer 1 core role + layer 2 telephony context + layer 3 conversation behaviour
+ layer 4 the business (rendered from its database row). Layers 1–3 and the templates are text files
under prompts/<language>/; nothing business-specific lives in code. Each layer gets a short hash so a
call record shows exactly which prompt it ran with.
"""
from __future__ import annotations

import hashlib
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


class BuiltPrompt(msgspec.Struct, frozen=True):
    instructions: str
    greeting_instructions: str
    layer_hashes: dict[str, str]
    transcription_prompt: str = ""


def _layer_dir(language: str) -> Path:
    path = PROMPTS_DIR / language
    return path if path.is_dir() else PROMPTS_DIR / "en"


def _read(language: str, name: str) -> str:
    return (_layer_dir(language) / f"{name}.txt").read_text(encoding="utf-8").strip()


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def build_prompt(business: BusinessFacts) -> BuiltPrompt:
    layers = {name: _read(business.language, name) for name in LAYER_FILES}
    layers["business"] = Template(_read(business.language, "business")).safe_substitute(
        name=business.name, prompt=business.prompt.strip())
    instructions = "\n\n".join(layers[k] for k in (*LAYER_FILES, "business"))
    greeting = Template(_read(business.language, "greeting")).safe_substitute(greeting=business.greeting.strip())
    hashes = {k: short_hash(v) for k, v in layers.items()}
    words = ", ".join(dict.fromkeys([business.name, *business.vocabulary]))
    transcription = Template(_read(business.language, "transcription")).safe_substitute(
        name=business.name, vocabulary=words)
    return BuiltPrompt(instructions, greeting, hashes, transcription)
