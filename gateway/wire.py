"""Wire formats at the edge: Twilio Media Streams JSON and OpenAI Realtime events ⇄ typed messages.

Decoding is one msgspec pass into a permissive struct (unknown fields ignored), then a typed message
stamped with the arrival time. Anything malformed becomes a WireDecodeError — counted, never raised.
The caller's base64 payload is passed through as a string; only assistant audio is decoded (the
TxPacer has to re-frame it).
"""
from __future__ import annotations

import binascii

import msgspec

from actors.agent_messages import RtFunctionCall
from actors.ingress_messages import (
    EndCall,
    RtAssistantTranscriptDelta,
    RtAssistantTranscriptDone,
    RtAudioDelta,
    RtAudioDone,
    RtError,
    RtOutputItemAdded,
    RtResponseCreated,
    RtResponseDone,
    RtSessionUpdated,
    RtSpeechStarted,
    RtSpeechStopped,
    RtTranscriptDone,
    RtTranscriptFailed,
    TwilioDtmfIn,
    TwilioMarkIn,
    TwilioMediaIn,
    WireDecodeError,
)
from actors.link_messages import RtRateLimits
from actors.wire_messages import RealtimeOutEvent, TwilioOutEvent


# ----------------------------------------------------------------------------- Twilio → us
class _TwMedia(msgspec.Struct):
    payload: str
    track: str = "inbound"
    chunk: str = ""
    timestamp: str = ""


class _TwMediaFormat(msgspec.Struct):
    encoding: str = ""
    sampleRate: int = 0
    channels: int = 0


class _TwStartBody(msgspec.Struct):
    callSid: str = ""
    streamSid: str = ""
    accountSid: str = ""
    customParameters: dict[str, str] = {}
    tracks: list[str] = []
    mediaFormat: _TwMediaFormat | None = None


class _TwName(msgspec.Struct):
    name: str = ""


class _TwDtmf(msgspec.Struct):
    digit: str = ""


class _TwInbound(msgspec.Struct):
    event: str
    sequenceNumber: str = "0"
    streamSid: str = ""
    media: _TwMedia | None = None
    start: _TwStartBody | None = None
    mark: _TwName | None = None
    dtmf: _TwDtmf | None = None


SUPPORTED_MEDIA_FORMAT = ("audio/x-mulaw", 8000, 1)


class TwilioStart(msgspec.Struct, frozen=True):
    call_sid: str
    stream_sid: str
    custom: dict[str, str]
    at: float
    media_format: tuple[str, int, int] = ("", 0, 0)  # encoding, sample rate, channels as announced

    @property
    def format_supported(self) -> bool:
        return self.media_format == SUPPORTED_MEDIA_FORMAT


class TwilioConnected(msgspec.Struct, frozen=True):
    at: float


_twilio_decoder = msgspec.json.Decoder(_TwInbound)

TwilioIn = TwilioMediaIn | TwilioMarkIn | TwilioDtmfIn | TwilioStart | TwilioConnected | EndCall | WireDecodeError


def decode_twilio(raw: str | bytes, at: float) -> TwilioIn:
    try:
        ev = _twilio_decoder.decode(raw)
        kind = ev.event
        if kind == "media" and ev.media is not None:
            payload = ev.media.payload
            # strict base64, checked here so a bad payload never reaches an actor; the string is forwarded
            # untouched and the bytes go along, so the actors never decode a frame again
            raw = binascii.a2b_base64(payload, strict_mode=True) if payload else b""
            if not raw:
                return WireDecodeError("twilio", "empty media payload", at)
            # `chunk` numbers media frames only (sequenceNumber counts every message, marks included)
            return TwilioMediaIn(payload, int(ev.media.chunk or 0), at, raw)
        if kind == "mark" and ev.mark is not None:
            return TwilioMarkIn(ev.mark.name, at)
        if kind == "start" and ev.start is not None:
            st = ev.start
            fmt = st.mediaFormat or _TwMediaFormat()
            return TwilioStart(st.callSid, st.streamSid or ev.streamSid, dict(st.customParameters), at,
                               (fmt.encoding, fmt.sampleRate, fmt.channels))
        if kind == "dtmf" and ev.dtmf is not None:
            return TwilioDtmfIn(ev.dtmf.digit, at)
        if kind == "stop":
            return EndCall("twilio_stop", at)
        if kind == "connected":
            return TwilioConnected(at)
        return WireDecodeError("twilio", f"unexpected event {kind!r}", at)
    except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error, ValueError) as exc:
        return WireDecodeError("twilio", str(exc)[:200], at)


_encoder = msgspec.json.Encoder()


def encode_twilio(event: TwilioOutEvent) -> bytes:
    return _encoder.encode(event)


def encode_realtime(event: RealtimeOutEvent) -> bytes:
    return _encoder.encode(event)


# ----------------------------------------------------------------------------- Realtime → us
class _RtResponse(msgspec.Struct):
    id: str = ""
    status: str = ""
    status_details: dict[str, object] | None = None


class _RtErrorBody(msgspec.Struct):
    type: str = ""
    code: str | None = None
    message: str = ""
    event_id: str | None = None


class _RtItem(msgspec.Struct):
    id: str = ""
    type: str = "message"


class _RtRateLimit(msgspec.Struct):
    name: str = ""
    limit: float = 0
    remaining: float = 0
    reset_seconds: float = 0


class _RtInbound(msgspec.Struct):
    type: str
    item: _RtItem | None = None
    item_id: str = ""
    response_id: str = ""
    audio_start_ms: int = 0
    audio_end_ms: int = 0
    transcript: str = ""
    delta: str = ""
    response: _RtResponse | None = None
    error: _RtErrorBody | None = None
    rate_limits: list[_RtRateLimit] | None = None
    call_id: str = ""
    name: str = ""
    arguments: str = ""


_realtime_decoder = msgspec.json.Decoder(_RtInbound)

IGNORED_REALTIME = frozenset({
    "session.created", "conversation.item.added", "conversation.item.done",
    "conversation.item.created", "input_audio_buffer.committed",
    "response.output_item.done", "response.content_part.added", "response.content_part.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.truncated", "conversation.item.deleted", "input_audio_buffer.cleared",
    "response.function_call_arguments.delta",
})


def decode_realtime(raw: str | bytes, at: float) -> object | None:
    """A typed message, None for events no actor needs, or WireDecodeError."""
    try:
        ev = _realtime_decoder.decode(raw)
        kind = ev.type
        if kind == "response.output_audio.delta":
            return RtAudioDelta(ev.response_id, ev.item_id, binascii.a2b_base64(ev.delta, strict_mode=True), at)
        if kind in IGNORED_REALTIME:
            return None
        if kind == "response.output_item.added":
            item = ev.item or _RtItem()
            return RtOutputItemAdded(ev.response_id, item.id, at, item.type)
        if kind == "response.function_call_arguments.done":
            if not ev.call_id or not ev.name:
                return WireDecodeError("realtime", "function call without call_id or name", at)
            return RtFunctionCall(ev.response_id, ev.item_id, ev.call_id, ev.name, ev.arguments, at)
        if kind == "response.output_audio.done":
            return RtAudioDone(ev.response_id, ev.item_id, at)
        if kind == "input_audio_buffer.speech_started":
            return RtSpeechStarted(ev.item_id, ev.audio_start_ms, at)
        if kind == "input_audio_buffer.speech_stopped":
            return RtSpeechStopped(ev.item_id, ev.audio_end_ms, at)
        if kind == "conversation.item.input_audio_transcription.completed":
            return RtTranscriptDone(ev.item_id, ev.transcript, at)
        if kind == "conversation.item.input_audio_transcription.failed":
            reason = ev.error.message if ev.error else "transcription failed"
            return RtTranscriptFailed(ev.item_id, reason, at)
        if kind == "response.created" and ev.response is not None:
            return RtResponseCreated(ev.response.id, at)
        if kind == "response.done" and ev.response is not None:
            details = ev.response.status_details or {}
            error = details.get("error")
            code = ""
            if isinstance(error, dict):
                code = str(error.get("code") or error.get("type") or "")
            return RtResponseDone(ev.response.id, ev.response.status, str(details.get("reason") or ""), at, code)
        if kind == "response.output_audio_transcript.delta":
            return RtAssistantTranscriptDelta(ev.response_id, ev.item_id, ev.delta, at)
        if kind == "response.output_audio_transcript.done":
            return RtAssistantTranscriptDone(ev.response_id, ev.item_id, ev.transcript, at)
        if kind == "session.updated":
            return RtSessionUpdated(at)
        if kind == "error" and ev.error is not None:
            e = ev.error
            return RtError(e.code or e.type, e.message, e.event_id or "", at, e.type)
        if kind == "rate_limits.updated":
            exhausted = [r.reset_seconds for r in ev.rate_limits or () if r.remaining <= 0]
            return RtRateLimits(max(exhausted, default=0.0), at)
        return None
    except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error, ValueError) as exc:
        return WireDecodeError("realtime", str(exc)[:200], at)


class _AppendOut(msgspec.Struct):
    type: str
    audio: str = ""


_append_decoder = msgspec.json.Decoder(_AppendOut)
_APPEND_PREFIX = b'{"type":"input_audio_buffer.append"'


def unsent_appends(messages: list[bytes]) -> tuple[str, ...]:
    """The audio (base64, in order) of the input_audio_buffer.append events among encoded client events
    that were never written. One append may carry several caller frames (TwilioRx batches them:
    [realtime] append_ms); TwilioRx maps the bytes back onto its frames."""
    return tuple(_append_decoder.decode(m).audio for m in messages if m.startswith(_APPEND_PREFIX))
