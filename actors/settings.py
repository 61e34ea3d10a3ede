"""What a call is configured with: config.toml's sections, merged with the business's overrides
at call start (gateway/config), then frozen into one CallSettings every child boots with.
"""
from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from actors.agent_messages import AgentSettings


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
    append_ms: Annotated[int, Meta(ge=20, le=200, multiple_of=20)] = 40  # caller audio per input_audio_buffer.append
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


class LanguageSettings(Struct, frozen=True):
    """The caller languages a business allows (issue 21): the first is the greeting's and the call's start.
    One language (or none listed) keeps the call in `CallSettings.language` exactly as before."""

    languages: tuple[str, ...] = ()
    layers: dict[str, str] = {}  # language → the instruction layer added while the caller speaks it
    fillers: dict[str, tuple[str, ...]] = {}  # language → the business's own additions to that lexicon
    short_words: dict[str, tuple[str, ...]] = {}
    backchannels: dict[str, tuple[str, ...]] = {}
    start: str = ""  # a returning caller's last language: the call starts (and is greeted) in it ("" = the first)

    @property
    def switching(self) -> bool:
        return len(self.languages) > 1


class ResumeSettings(Struct, frozen=True):
    """A call back with the agent after a transfer nobody took (issue 23): its segment (1: the call's first
    part, nothing to resume), the conversation so far as the record holds it, and the note the model is
    given (why it has the caller back). The session is seeded with both before the first answer."""

    segment: int = 1
    turns: tuple[tuple[str, str], ...] = ()  # (role "user" | "assistant", text), in order
    note: str = ""


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
    caller_languages: LanguageSettings = LanguageSettings()
    resume: ResumeSettings = ResumeSettings()

    @property
    def first_caller_language(self) -> str:
        """The language the call starts in: a returning caller's last one, else the business's."""
        return self.caller_languages.start or self.language
