"""Every message that crosses an actor boundary, as frozen msgspec Structs.

thespian's ActorTypeDispatcher routes by class name, so every class name here is unique.
Groups:
  settings   — what a call is configured with (built by the gateway from config.toml + DB)
  ingress    — decoded wire events the gateway tells a CallSupervisor (each stamped `at`)
  internal   — child → supervisor → child decisions and reports
  egress     — commands actors hand back to the gateway's event loop (wire-shaped events)
  lifecycle  — snapshots, restore, fault injection, inspection
Outgoing wire events (`tw_*`, `rt_*` below) mirror the Twilio / OpenAI Realtime JSON exactly, so the
gateway only has to `msgspec.json.encode` them.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta, Struct, field

from actors.agent_messages import AgentSettings, RtFunctionTool, RtOutputCreate
from actors.link_messages import RtItemCreate

# ----------------------------------------------------------------------------- settings


class AudioSettings(Struct, frozen=True, forbid_unknown_fields=True):
    simple_mode: bool = True
    audio_guard_enabled: bool = False
    music_mode_enabled: bool = False
    noise_gate_min_frames: Annotated[int, Meta(ge=0, le=100)] = 0
    echo_guard_enabled: bool = True  # vetoes barge-in evidence our own echo explains; gates nothing (cores/echo.py)
    frame_pacing_ms: Annotated[int, Meta(ge=10, le=60)] = 20
    rms_speech_threshold: float = 0.0
    rms_silence_threshold: float = 0.0
    echo_min_delay_ms: Annotated[int, Meta(ge=20, le=1000)] = 40
    echo_max_delay_ms: Annotated[int, Meta(ge=40, le=2000)] = 600
    echo_min_corr: Annotated[float, Meta(ge=0.2, le=1.0)] = 0.6
    echo_margin_db: Annotated[float, Meta(ge=0.0, le=20.0)] = 6.0
    # optional input conditioning (seed §2.3; cores/conditioning.py): off = caller μ-law byte for byte
    highpass_hz: Annotated[int, Meta(ge=0, le=200)] = 0  # 0 (off) or 150–200: hum removal, nothing cut in 300–3,400 Hz
    soft_normalize: bool = False  # very soft levelling of extreme levels only
    record: bool = False  # a stereo WAV per call (left caller as received, right the AI as sent)

    def __post_init__(self) -> None:
        if self.highpass_hz and not 150 <= self.highpass_hz <= 200:
            raise ValueError("highpass_hz must be 0 (off) or 150-200 (no cut inside 300-3,400 Hz)")
        if self.echo_max_delay_ms <= self.echo_min_delay_ms:
            raise ValueError("echo_max_delay_ms must exceed echo_min_delay_ms")


class TxSettings(Struct, frozen=True, forbid_unknown_fields=True):
    tx_lead_ms: Annotated[int, Meta(ge=40, le=1000)] = 100
    mark_every_ms: Annotated[int, Meta(ge=20, le=1000)] = 100
    status_every_ms: Annotated[int, Meta(ge=100, le=600000)] = 5000
    # jitter buffer (actors/cores/jitter.py): a response starts once this much of it is queued (learned per call)
    preroll_min_ms: Annotated[int, Meta(ge=0, le=1000)] = 40  # the re-framer's carry + a tick: real-time delivery never underruns
    preroll_max_ms: Annotated[int, Meta(ge=20, le=2000)] = 400
    preroll_initial_ms: Annotated[int, Meta(ge=0, le=2000)] = 300  # a call's first response; fast delivery starts it at once


class VadSettings(Struct, frozen=True, forbid_unknown_fields=True):
    threshold: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.4
    prefix_padding_ms: Annotated[int, Meta(ge=0, le=2000)] = 300
    silence_duration_ms: Annotated[int, Meta(ge=100, le=5000)] = 600


class RealtimeSettings(Struct, frozen=True, forbid_unknown_fields=True):
    model: str = "gpt-realtime"
    voice: str = "marin"
    transcription_model: str = "gpt-4o-transcribe"
    noise_reduction: Literal["", "near_field", "far_field"] = "near_field"
    connect_timeout_s: Annotated[float, Meta(ge=0.5, le=30.0)] = 4.0  # one connection attempt
    connect_budget_s: Annotated[float, Meta(ge=1.0, le=30.0)] = 6.0  # call start: every attempt, pre-opened included
    reconnect_budget_s: Annotated[float, Meta(ge=1.0, le=120.0)] = 15.0  # mid-call: then the fallback
    reconnect_max_attempts: Annotated[int, Meta(ge=1, le=50)] = 8
    backoff_initial_s: Annotated[float, Meta(ge=0.0, le=5.0)] = 0.2
    backoff_max_s: Annotated[float, Meta(ge=0.1, le=30.0)] = 2.0
    gap_buffer_ms: Annotated[int, Meta(ge=0, le=30000)] = 3000  # caller audio kept while the link is down
    turn_replay_ms: Annotated[int, Meta(ge=0, le=30000)] = 10000  # an untranscribed turn this long is re-sent
    rollover_after_s: Annotated[float, Meta(ge=1.0, le=3600.0)] = 3000.0  # new session at a quiet moment
    reseed_max_chars: Annotated[int, Meta(ge=0, le=100000)] = 6000  # history re-sent to a new session
    response_retry_max: Annotated[int, Meta(ge=0, le=20)] = 5  # rate limit / server error on response.create


class BargeInSettings(Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    candidate_ms: Annotated[int, Meta(ge=60, le=2000)] = 240  # caller energy above the floor this long while the AI speaks → candidate
    confirm_after_ms: Annotated[int, Meta(ge=200, le=10000)] = 1000  # a candidate still speaking this long after onset is a real interruption
    energy_delta_db: Annotated[float, Meta(ge=1.0, le=40.0)] = 9.0  # "above the floor" means floor + this
    floor_init_db: float = 40.0
    floor_min_db: float = 30.0
    candidate_action: Literal["duck", "pause", "none"] = "duck"
    duck_gain_db: Annotated[float, Meta(ge=-40.0, le=0.0)] = -12.0
    candidate_timeout_ms: Annotated[int, Meta(ge=100, le=10000)] = 1500  # no server speech and quiet this long → restore
    transcript_timeout_ms: Annotated[int, Meta(ge=500, le=20000)] = 4000  # speech stopped but no transcript this long → restore
    long_speech_ms: Annotated[int, Meta(ge=100, le=10000)] = 700  # an empty transcript of speech at least this long fails open (a turn)
    preemptive_answer: bool = True  # response.create at speech_stopped, audio held until the transcript is classified
    # fast confirmation from the audio (cores/articulation.py): a candidate that is clearly articulated speech
    # is cut without waiting for the transcript; a steady one (filler, hum, breath) waits for it
    articulation_confirm: bool = True
    articulation_syllables: Annotated[int, Meta(ge=2, le=20)] = 3  # level rises (onset included) in one run
    articulation_rise_db: Annotated[float, Meta(ge=2.0, le=30.0)] = 6.0  # a fall and a rise of this much: a syllable
    articulation_spectral_hz: Annotated[float, Meta(ge=0.0, le=2000.0)] = 250.0  # spread of the spectral centroid
    language_fillers: tuple[str, ...] = ()  # business additions to the language's filler list
    language_short_words: tuple[str, ...] = ()
    language_backchannels: tuple[str, ...] = ()


class CallSettings(Struct, frozen=True):
    """Everything one call needs, resolved once at call start."""

    call_id: str
    stream_sid: str
    business_id: str
    language: str
    instructions: str
    greeting: str
    audio: AudioSettings = AudioSettings()
    tx: TxSettings = TxSettings()
    vad: VadSettings = VadSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    barge_in: BargeInSettings = BargeInSettings()
    transcription_prompt: str = ""
    vocabulary: tuple[str, ...] = ()
    agent: AgentSettings = AgentSettings()


# ----------------------------------------------------------------------------- ingress


class StartCall(Struct, frozen=True):
    settings: CallSettings
    at: float


class Tick(Struct, frozen=True):
    """The worker's one clock: absolute deadlines t0 + k·20 ms. `timers`: also for the judge's and the
    bridge's timeouts (every JUDGE_TICK_EVERY-th tick of a call; the pacer gets every tick it wants)."""

    at: float
    timers: bool = False


class TwilioMediaIn(Struct, frozen=True):
    payload: str  # base64 μ-law, passed through untouched
    seq: int
    at: float


class TwilioMarkIn(Struct, frozen=True):
    name: str
    at: float


class TwilioDtmfIn(Struct, frozen=True):
    digit: str
    at: float


class WireDecodeError(Struct, frozen=True):
    source: Literal["twilio", "realtime"]
    reason: str
    at: float


class RtSessionUpdated(Struct, frozen=True):
    at: float


class RtSpeechStarted(Struct, frozen=True):
    item_id: str
    audio_start_ms: int
    at: float


class RtSpeechStopped(Struct, frozen=True):
    item_id: str
    audio_end_ms: int
    at: float


class RtTranscriptDone(Struct, frozen=True):
    item_id: str
    transcript: str
    at: float


class RtTranscriptFailed(Struct, frozen=True):
    item_id: str
    reason: str
    at: float


class RtResponseCreated(Struct, frozen=True):
    response_id: str
    at: float


class RtAudioDelta(Struct, frozen=True):
    response_id: str
    item_id: str
    audio: bytes  # μ-law, base64-decoded at the edge (the sender must re-frame it)
    at: float


class RtAudioDone(Struct, frozen=True):
    response_id: str
    item_id: str
    at: float


class RtAssistantTranscriptDone(Struct, frozen=True):
    response_id: str
    item_id: str
    transcript: str
    at: float


class RtAssistantTranscriptDelta(Struct, frozen=True):
    response_id: str
    item_id: str
    delta: str
    at: float


class RtResponseDone(Struct, frozen=True):
    response_id: str
    status: str
    reason: str
    at: float
    error_code: str = ""  # status "failed": status_details.error.code (or its type)


class RtError(Struct, frozen=True):
    code: str
    message: str
    event_id: str
    at: float
    type: str = ""  # invalid_request_error | server_error | …


class EndCall(Struct, frozen=True):
    reason: str
    at: float


# ----------------------------------------------------------------------------- internal


class AnswerRequest(Struct, frozen=True):
    """Judge → Bridge: the caller finished a turn that deserves an answer."""

    item_id: str
    transcript: str
    at: float
    after_cut: bool = False  # the AI is being cut for this turn: answer only after the truncate


class PlayoutChanged(Struct, frozen=True):
    """Pacer → Judge: whether the AI is audible to the caller right now (from the playout clock)."""

    audible: bool
    response_id: str
    at: float


class TurnEnding(Struct, frozen=True):
    """Pacer → Judge: the playing response is complete and only its last ~1.2 s (its last sentence) is left."""

    response_id: str
    at: float


class ResponseFinished(Struct, frozen=True):
    """Pacer → Bridge/Judge: the last frame of a response has been played (end mark echoed)."""

    response_id: str
    item_id: str
    played_ms: int
    at: float


class CounterReport(Struct, frozen=True):
    role: str
    counters: dict[str, int]
    at: float
    series: dict[str, list[int]] = {}


class CallerLevel(Struct, frozen=True):
    """TwilioRx → Judge, only while the AI is audible: a speech-like caller frame's level, the tracked floor,
    and the articulation of its run so far (syllables, spectral spread; 0 when not measured)."""

    level_db: float
    floor_db: float
    at: float
    syllables: int = 0
    spectral_hz: float = 0.0
    echo: bool = False  # speech-like, but our own echo explains it: no barge-in evidence


class PlayedLevels(Struct, frozen=True):
    """TxPacer → TwilioRx (echo guard on): the levels of frames sent, from the first one's playout time."""

    first_play_at: float
    levels_db: tuple[float, ...]
    at: float


class DuckPlayout(Struct, frozen=True):
    gain_db: float
    at: float


class PausePlayout(Struct, frozen=True):
    at: float


class RestorePlayout(Struct, frozen=True):
    at: float


class DeleteItem(Struct, frozen=True):
    """Judge → Bridge: remove a filler-only caller item so the model never sees it."""

    item_id: str
    at: float


class LetStand(Struct, frozen=True):
    """Judge → Bridge: a backchannel over the AI — the caller's item stays (the model may use it), but it
    gets no answer: a preemptive answer started for it is dropped."""

    item_id: str
    at: float


class CollectCounters(Struct, frozen=True):
    at: float


class SampleCounters(Struct, frozen=True):
    """Supervisor → children, mid-call (the control plane's stats row): report your counters, change nothing."""

    at: float


class CallSummary(Struct, frozen=True):
    call_id: str
    reason: str
    metrics: dict[str, int]
    series: dict[str, list[int]] = {}


# ----------------------------------------------------------------------------- egress: Twilio wire events


class TwMediaBody(Struct, frozen=True):
    payload: str


class TwMedia(Struct, frozen=True, tag="media", tag_field="event"):
    streamSid: str
    media: TwMediaBody


class TwMarkBody(Struct, frozen=True):
    name: str


class TwMark(Struct, frozen=True, tag="mark", tag_field="event"):
    streamSid: str
    mark: TwMarkBody


class TwClear(Struct, frozen=True, tag="clear", tag_field="event"):
    streamSid: str


TwilioOutEvent = Union[TwMedia, TwMark, TwClear]


class ToTwilio(Struct, frozen=True):
    """Only the TxPacer builds this: one batch of Twilio events per tick, in send order."""

    call_id: str
    events: tuple[TwilioOutEvent, ...]


# ----------------------------------------------------------------------------- egress: Realtime client events


class RtFormat(Struct, frozen=True):
    type: str = "audio/pcmu"


class RtTranscriptionConfig(Struct, frozen=True, omit_defaults=True):
    model: str
    language: str
    prompt: str | None = None  # gpt-4o-transcribe: free text that biases recognition
    keywords: tuple[str, ...] | None = None  # gpt-transcribe / gpt-live-transcribe: words to expect


class RtNoiseReduction(Struct, frozen=True):
    type: str


class RtServerVad(Struct, frozen=True):
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    type: str = "server_vad"
    create_response: bool = False
    interrupt_response: bool = False


class RtAudioInput(Struct, frozen=True):
    format: RtFormat
    transcription: RtTranscriptionConfig
    turn_detection: RtServerVad
    noise_reduction: RtNoiseReduction | None = None  # encoded as null: explicitly off


class RtAudioOutput(Struct, frozen=True):
    format: RtFormat
    voice: str


class RtAudioConfig(Struct, frozen=True):
    input: RtAudioInput
    output: RtAudioOutput


class RtSession(Struct, frozen=True):
    instructions: str
    audio: RtAudioConfig
    output_modalities: tuple[str, ...] = ("audio",)
    type: str = "realtime"
    tools: tuple[RtFunctionTool, ...] = ()
    tool_choice: str = "auto"


class RtSessionUpdate(Struct, frozen=True, tag="session.update", tag_field="type"):
    session: RtSession


class RtAppend(Struct, frozen=True, tag="input_audio_buffer.append", tag_field="type"):
    audio: str


class RtResponseParams(Struct, frozen=True, omit_defaults=True):
    instructions: str | None = None


class RtResponseCreate(Struct, frozen=True, tag="response.create", tag_field="type", omit_defaults=True):
    response: RtResponseParams | None = None


class RtResponseCancel(Struct, frozen=True, tag="response.cancel", tag_field="type"):
    response_id: str


class RtItemTruncate(Struct, frozen=True, tag="conversation.item.truncate", tag_field="type"):
    item_id: str
    audio_end_ms: int
    content_index: int = 0


class RtItemDelete(Struct, frozen=True, tag="conversation.item.delete", tag_field="type"):
    item_id: str


RealtimeOutEvent = Union[RtSessionUpdate, RtAppend, RtResponseCreate, RtResponseCancel, RtItemTruncate, RtItemDelete,
                         RtItemCreate, RtOutputCreate]


class ToRealtime(Struct, frozen=True):
    call_id: str
    event: RealtimeOutEvent


# ----------------------------------------------------------------------------- lifecycle


class LogLine(Struct, frozen=True):
    """A core's log action; the shell writes it with structlog."""

    event: str
    level: str = "info"
    fields: dict[str, object] = field(default_factory=dict)


class ChildSnapshot(Struct, frozen=True):
    role: str
    state: bytes  # msgpack of the core's state struct


class RestoreState(Struct, frozen=True):
    state: bytes


class InjectFault(Struct, frozen=True):
    """Test and ops hook: the child's handler raises on this message (→ PoisonMessage), or it exits, or
    ("next") it raises on the next message it gets from the call — which may come down a lane."""

    role: str
    mode: Literal["raise", "exit", "next"] = "raise"


class InspectCall(Struct, frozen=True):
    pass


class CallInspection(Struct, frozen=True):
    call_id: str
    phase: str
    children: dict[str, str]
    restarts: dict[str, int]
    business_id: str = ""
    started_at: float = 0.0
    counters: dict[str, int] = {}  # the children's latest counter reports, merged
    last_decision: str = ""  # the judge's latest: duck, cut, restore, filler, backchannel, answer
    realtime: str = ""  # connected, reconnecting, failed


class ChildRestarted(Struct, frozen=True):
    call_id: str
    role: str
    cause: str
    restarts: int


def encode_state(state: Struct) -> bytes:
    return msgspec.msgpack.encode(state)


class CutPlayout(Struct, frozen=True):
    """Judge → Pacer: stop the AI now (flush the queue, Twilio `clear`, report what was heard)."""

    reason: str
    at: float


class PlayoutCut(Struct, frozen=True):
    """Pacer → Bridge: the AI was cut; `heard_ms` of `item_id` reached the caller's ear."""

    response_id: str
    item_id: str
    heard_ms: int
    sent_ms: int
    at: float
    generated_ms: int = 0  # sent + flushed: how much audio of the item had been generated by the cut


class ChildBoot(Struct, frozen=True):
    """Supervisor → new child: who it is, its settings, where egress goes, and state to restore."""

    role: str
    settings: CallSettings
    egress: object  # thespian ActorAddress of the gateway's external requester
    state: bytes | None
    at: float


class SummarizeCall(Struct, frozen=True):
    reason: str
    at: float


class PreemptiveAnswer(Struct, frozen=True):
    """Judge → Bridge at speech_stopped (AI silent): start the answer before the transcript is classified."""

    item_id: str
    at: float


class HoldAudio(Struct, frozen=True):
    """Bridge → Pacer: queue this response's frames aside until ReleaseAudio or DiscardAudio."""

    response_id: str
    at: float


class ReleaseAudio(Struct, frozen=True):
    response_id: str
    at: float


class DiscardAudio(Struct, frozen=True):
    response_id: str
    at: float


class RtOutputItemAdded(Struct, frozen=True):
    response_id: str
    item_id: str
    at: float
    kind: str = "message"  # message (the AI speaks) | function_call


class Utterance(Struct, frozen=True):
    """Egress, for the call record: one caller turn (with its label) or one assistant transcript."""

    call_id: str
    role: Literal["caller", "assistant"]
    text: str
    label: str  # caller: filler | backchannel | turn | echo; assistant: ""
    start_ms: int  # from the start of the call's audio; -1 if unknown
    end_ms: int
    interrupted: bool  # caller: this turn cut the AI; assistant: the caller cut it
    heard_ms: int = -1  # assistant, when cut: how much of it the caller heard


class RegisterCall(Struct, frozen=True):
    """Gateway → AdminActor: a call's supervisor to include in live inspection."""

    call_id: str
    supervisor: object  # thespian ActorAddress


class UnregisterCall(Struct, frozen=True):
    call_id: str


class ListCalls(Struct, frozen=True):
    request_id: int


class AdminSweep(Struct, frozen=True):
    """AdminActor → itself: every inspection reply queued before this one has arrived."""

    request_id: int
    round: int


class LiveCalls(Struct, frozen=True):
    request_id: int
    calls: tuple[CallInspection, ...]
