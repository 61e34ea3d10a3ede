"""The Realtime session's configuration, as the bridge sends it at call start and to every restored session.

The GA session: audio/pcmu both ways, input transcription in the business's language (with its
vocabulary as keywords for the models that take them, else as a prompt), server VAD that never
answers or interrupts on its own (the judge decides), the business's instructions and tools.
A business with several caller languages starts with transcription that detects the language per
utterance; once the caller's language is decided (CallerLanguageChanged) transcription is pinned to
it and the instructions gain that language's layer ("the caller speaks Arabic; answer in Arabic").
"""
from __future__ import annotations

from actors.agent_messages import RtFunctionTool
from actors.settings import CallSettings
from actors.wire_messages import (
    RtAudioConfig,
    RtAudioInput,
    RtAudioOutput,
    RtFormat,
    RtNoiseReduction,
    RtServerVad,
    RtSession,
    RtSessionUpdate,
    RtTranscriptionConfig,
)

KEYWORD_MODELS = ("gpt-transcribe", "gpt-live-transcribe")


def instructions_for(settings: CallSettings, caller_language: str) -> str:
    """The session's instructions while the caller speaks `caller_language` ("" = not decided yet)."""
    layer = settings.caller_languages.layers.get(caller_language, "")
    return f"{settings.instructions}\n\n{layer}" if layer else settings.instructions


def transcription_language(settings: CallSettings, caller_language: str) -> str | None:
    """Pinned to the caller's language once decided; detected per utterance before, if several are allowed."""
    if caller_language:
        return caller_language
    return None if settings.caller_languages.switching else settings.language


def session_update(settings: CallSettings, caller_language: str = "") -> RtSessionUpdate:
    rt, vad = settings.realtime, settings.vad
    noise = RtNoiseReduction(rt.noise_reduction) if rt.noise_reduction else None
    keyword_model = rt.transcription_model in KEYWORD_MODELS
    transcription = RtTranscriptionConfig(
        rt.transcription_model, transcription_language(settings, caller_language),
        prompt=None if keyword_model else settings.transcription_prompt or None,
        keywords=settings.vocabulary or None if keyword_model else None)
    audio_in = RtAudioInput(
        format=RtFormat(), transcription=transcription,
        turn_detection=RtServerVad(vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms),
        noise_reduction=noise)
    audio = RtAudioConfig(input=audio_in, output=RtAudioOutput(RtFormat(), rt.voice))
    tools = tuple(RtFunctionTool(t.name, t.description, t.parameters) for t in settings.agent.tools)
    return RtSessionUpdate(RtSession(instructions=instructions_for(settings, caller_language), audio=audio, tools=tools))
