"""Decoded wire events the gateway tells a call's actors, each stamped `at` (the loop's time when
it arrived): Twilio's and the Realtime API's, plus the call's start, end and the 20 ms Tick.
"""
from __future__ import annotations

from typing import Literal

from msgspec import Struct

from actors.settings import CallSettings


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
    raw: bytes = b""  # the same frame decoded (the edge decodes it to validate it anyway); b"": not given


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


class RtOutputItemAdded(Struct, frozen=True):
    response_id: str
    item_id: str
    at: float
    kind: str = "message"  # message (the AI speaks) | function_call
