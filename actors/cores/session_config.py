"""The Realtime session's configuration, as the bridge sends it at call start and to every restored session.

The GA session: audio/pcmu both ways, input transcription in the business's language (with its
vocabulary as keywords for the models that take them, else as a prompt), server VAD that never
answers or interrupts on its own (the judge decides), the business's instructions and tools.
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


def session_update(settings: CallSettings) -> RtSessionUpdate:
    rt, vad = settings.realtime, settings.vad
    noise = RtNoiseReduction(rt.noise_reduction) if rt.noise_reduction else None
    keyword_model = rt.transcription_model in KEYWORD_MODELS
    transcription = RtTranscriptionConfig(
        rt.transcription_model, settings.language,
        prompt=None if keyword_model else settings.transcription_prompt or None,
        keywords=settings.vocabulary or None if keyword_model else None)
    audio_in = RtAudioInput(
        format=RtFormat(), transcription=transcription,
        turn_detection=RtServerVad(vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms),
        noise_reduction=noise)
    audio = RtAudioConfig(input=audio_in, output=RtAudioOutput(RtFormat(), rt.voice))
    tools = tuple(RtFunctionTool(t.name, t.description, t.parameters) for t in settings.agent.tools)
    return RtSessionUpdate(RtSession(instructions=settings.instructions, audio=audio, tools=tools))
