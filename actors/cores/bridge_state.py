"""RealtimeBridge state (what a restart restores) and the session configuration it sends."""
from __future__ import annotations

import msgspec

from actors.agent_messages import RtFunctionCall, RtFunctionTool, RtOutputCreate, ToolCallRecord
from actors.cores.conversation import ConversationState
from actors.cores.departure import DepartureState
from actors.cores.preempt import PreemptState
from actors.cores.rt_errors import RetryState
from actors.cores.session import LinkState
from actors.cores.tools import ToolState
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


class BridgeCounters(msgspec.Struct):
    responses_requested: int = 0
    responses_created: int = 0
    responses_cancelled: int = 0
    answers_deferred: int = 0
    truncates_sent: int = 0
    realtime_errors: int = 0
    realtime_decode_errors: int = 0
    items_deleted: int = 0
    backchannels_kept: int = 0
    events_dropped_link_down: int = 0
    answers_cut_by_drop: int = 0
    responses_retried: int = 0


class BridgeState(msgspec.Struct):
    call_id: str
    session_ready: bool = False
    greeting_requested: bool = False
    active_response: str = ""
    pending_answer: str = ""  # item id of a caller turn waiting for the active response to finish
    truncate_audio_end_ms: list[int] = msgspec.field(default_factory=list)
    answer_latency_ms: list[int] = msgspec.field(default_factory=list)  # caller stopped → the answer's audio plays
    answer_wait_from: float = 0.0  # the caller stopped speaking while the AI was silent; 0: nothing awaited
    awaiting_cut: bool = False
    truncated: dict[str, int] = msgspec.field(default_factory=dict)  # assistant item → heard ms
    spoken: dict[str, str] = msgspec.field(default_factory=dict)  # assistant item → transcript so far
    preempt: PreemptState = msgspec.field(default_factory=PreemptState)
    counters: BridgeCounters = msgspec.field(default_factory=BridgeCounters)
    link: LinkState = msgspec.field(default_factory=LinkState)
    retry: RetryState = msgspec.field(default_factory=RetryState)
    ai_audible: bool = False
    caller_speaking: bool = False
    resume_pending: bool = False  # an answer was cut by a lost link: continue it once restored and silent
    dropped_item: str = ""  # its item: recorded as heard when its playout finishes
    active_item: str = ""  # assistant item of the active response
    turn_item: str = ""  # the caller turn the session heard and has not transcribed yet
    turn_start_ms: int = -1  # its start on the session's audio clock
    tools: ToolState = msgspec.field(default_factory=ToolState)
    departure: DepartureState = msgspec.field(default_factory=DepartureState)
    clock: ConversationState = msgspec.field(default_factory=ConversationState)
    spoke: list[str] = msgspec.field(default_factory=list)  # recent responses that carried a spoken message
    # function calls of a held preemptive answer (acted on at its release, dropped at its discard)
    held_response: str = ""
    held_calls: list[RtFunctionCall] = msgspec.field(default_factory=list)
    held_items: list[str] = msgspec.field(default_factory=list)  # function_call items of speculative/refused calls
    speculative: list[str] = msgspec.field(default_factory=list)  # read-only tools already running
    held_outputs: list[RtOutputCreate] = msgspec.field(default_factory=list)  # results that wait for the release
    held_records: list[ToolCallRecord] = msgspec.field(default_factory=list)
    call_sessions: dict[str, int] = msgspec.field(default_factory=dict)  # tool call id → link generation that made it


def session_update(settings: CallSettings) -> RtSessionUpdate:
    rt, vad = settings.realtime, settings.vad
    noise = RtNoiseReduction(rt.noise_reduction) if rt.noise_reduction else None
    keyword_models = ("gpt-transcribe", "gpt-live-transcribe")
    transcription = RtTranscriptionConfig(
        rt.transcription_model, settings.language,
        prompt=settings.transcription_prompt or None if rt.transcription_model not in keyword_models else None,
        keywords=settings.vocabulary or None if rt.transcription_model in keyword_models else None)
    audio_in = RtAudioInput(
        format=RtFormat(), transcription=transcription,
        turn_detection=RtServerVad(vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms),
        noise_reduction=noise)
    audio = RtAudioConfig(input=audio_in, output=RtAudioOutput(RtFormat(), rt.voice))
    tools = tuple(RtFunctionTool(t.name, t.description, t.parameters) for t in settings.agent.tools)
    return RtSessionUpdate(RtSession(instructions=settings.instructions, audio=audio, tools=tools))
