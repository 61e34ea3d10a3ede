"""From a business row to a call: overrides of config.toml settings (checked against the known keys
and ranges at import, merged over the file's settings at call start; storage keeps them as plain
JSON) and the facts its prompt is built from."""
from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from actors.settings import AudioSettings, BargeInSettings, LanguageSettings, RealtimeSettings, VadSettings
from gateway.fallback import FallbackSettings, check_fallback
from prompts.builder import BusinessFacts
from storage.businesses import BusinessSpec, BusinessView

SECTIONS: dict[str, type[msgspec.Struct]] = {"audio": AudioSettings, "barge_in": BargeInSettings,
                                             "vad": VadSettings, "realtime": RealtimeSettings}
S = TypeVar("S", bound=msgspec.Struct)


def merged(base: S, overrides: dict[str, Any]) -> S:
    if not overrides:
        return base
    return msgspec.convert({**msgspec.to_builtins(base), **overrides}, type(base))


def check_business(spec: BusinessSpec) -> list[str]:
    problems = []
    for section, values in (("audio", spec.audio), ("barge_in", spec.barge_in), ("vad", spec.vad),
                            ("realtime", spec.realtime)):
        try:
            msgspec.convert(values, SECTIONS[section])
        except msgspec.ValidationError as exc:
            problems.append(f"business.{section}: {exc}")
    return problems + check_fallback(spec.fallback)


def barge_in_for(base: BargeInSettings, business: BusinessView) -> BargeInSettings:
    settings = merged(base, business.overrides.get("barge_in", {}))
    return msgspec.structs.replace(settings, language_fillers=tuple(business.fillers),
                                   language_short_words=tuple(business.short_words),
                                   language_backchannels=tuple(business.backchannels))


def audio_for(base: AudioSettings, business: BusinessView) -> AudioSettings:
    return merged(base, business.overrides.get("audio", {}))


def vad_for(base: VadSettings, business: BusinessView) -> VadSettings:
    return merged(base, business.overrides.get("vad", {}))


def realtime_for(base: RealtimeSettings, business: BusinessView) -> RealtimeSettings:
    settings = merged(base, business.overrides.get("realtime", {}))
    return msgspec.structs.replace(settings, voice=business.voice) if business.voice else settings


def fallback_for(business: BusinessView) -> FallbackSettings:
    return msgspec.convert(business.overrides.get("fallback", {}), FallbackSettings)


def facts_for(view: BusinessView) -> BusinessFacts:
    """What the prompt builder needs of a business row."""
    return BusinessFacts(view.name, view.language, view.greeting, view.prompt, tuple(view.vocabulary),
                         view.industry, view.value_proposition, tuple(view.services), view.tone, view.purpose,
                         dict(view.permissions), tuple(view.languages or [view.language]))


def language_settings_for(view: BusinessView, layers: dict[str, str]) -> LanguageSettings:
    """The caller languages of a call: the list, each one's instruction layer and the business's own words
    for each lexicon (the first language's are the business's top-level lists, as before)."""
    languages = tuple(view.languages or [view.language])
    if len(languages) == 1:
        return LanguageSettings(languages)
    words = {language: view.lexicons.get(language, {}) for language in languages}

    def lists(kind: str) -> dict[str, tuple[str, ...]]:
        return {language: tuple(entry.get(kind, [])) for language, entry in words.items() if entry.get(kind)}
    return LanguageSettings(languages, dict(layers), lists("fillers"), lists("short_words"), lists("backchannels"))
