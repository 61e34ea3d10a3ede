"""Wire formats at the edge: Twilio Media Streams JSON and OpenAI Realtime events ⇄ typed messages.

Decoding is one msgspec pass into a permissive struct (unknown fields ignored), then a typed message
stamped with the arrival time. Anything malformed becomes a WireDecodeError — counted, never raised.
Base64 audio is decoded here, at the edge, once: the caller's payload strictly (a bad one never reaches
an actor), kept both as the string — forwarded untouched — and as its bytes (the levels, the
recording, a batched append); the assistant's because the TxPacer re-frames it.
"""
from __future__ import annotations

import binascii
from collections.abc import Callable

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


def _twilio_mark(ev: _TwInbound, at: float) -> TwilioIn | None:
    return TwilioMarkIn(ev.mark.name, at) if ev.mark is not None else None


def _twilio_start(ev: _TwInbound, at: float) -> TwilioIn | None:
    if ev.start is None:
        return None
    st = ev.start
    fmt = st.mediaFormat or _TwMediaFormat()
    return TwilioStart(st.callSid, st.streamSid or ev.streamSid, dict(st.customParameters), at,
                       (fmt.encoding, fmt.sampleRate, fmt.channels))


def _twilio_dtmf(ev: _TwInbound, at: float) -> TwilioIn | None:
    return TwilioDtmfIn(ev.dtmf.digit, at) if ev.dtmf is not None else None


# every Twilio event but `media` (decoded first, inline: it is 50 a second); None = the event lacks its body
_TWILIO: dict[str, Callable[[_TwInbound, float], TwilioIn | None]] = {
    "mark": _twilio_mark, "start": _twilio_start, "dtmf": _twilio_dtmf,
    "stop": lambda ev, at: EndCall("twilio_stop", at), "connected": lambda ev, at: TwilioConnected(at),
}


def decode_twilio(raw: str | bytes, at: float) -> TwilioIn:
    try:
        ev = _twilio_decoder.decode(raw)
        if ev.event == "media" and ev.media is not None:
            payload = ev.media.payload
            # strict base64, checked here so a bad payload never reaches an actor; the string is forwarded
            # untouched and the bytes go along, so the actors never decode a frame again
            frame = binascii.a2b_base64(payload, strict_mode=True) if payload else b""
            if not frame:
                return WireDecodeError("twilio", "empty media payload", at)
            # `chunk` numbers media frames only (sequenceNumber counts every message, marks included)
            return TwilioMediaIn(payload, int(ev.media.chunk or 0), at, frame)
        decode = _TWILIO.get(ev.event)
        msg = decode(ev, at) if decode is not None else None
        return msg if msg is not None else WireDecodeError("twilio", f"unexpected event {ev.event!r}", at)
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


def _rt_item_added(ev: _RtInbound, at: float) -> object | None:
    item = ev.item or _RtItem()
    return RtOutputItemAdded(ev.response_id, item.id, at, item.type)


def _rt_function_call(ev: _RtInbound, at: float) -> object | None:
    if not ev.call_id or not ev.name:
        return WireDecodeError("realtime", "function call without call_id or name", at)
    return RtFunctionCall(ev.response_id, ev.item_id, ev.call_id, ev.name, ev.arguments, at)


def _rt_transcript_failed(ev: _RtInbound, at: float) -> object | None:
    return RtTranscriptFailed(ev.item_id, ev.error.message if ev.error else "transcription failed", at)


def _rt_response_created(ev: _RtInbound, at: float) -> object | None:
    return RtResponseCreated(ev.response.id, at) if ev.response is not None else None


def _rt_response_done(ev: _RtInbound, at: float) -> object | None:
    if ev.response is None:
        return None
    details = ev.response.status_details or {}
    error = details.get("error")
    code = str(error.get("code") or error.get("type") or "") if isinstance(error, dict) else ""
    return RtResponseDone(ev.response.id, ev.response.status, str(details.get("reason") or ""), at, code)


def _rt_error(ev: _RtInbound, at: float) -> object | None:
    e = ev.error
    return RtError(e.code or e.type, e.message, e.event_id or "", at, e.type) if e is not None else None


def _rt_rate_limits(ev: _RtInbound, at: float) -> object | None:
    exhausted = [r.reset_seconds for r in ev.rate_limits or () if r.remaining <= 0]
    return RtRateLimits(max(exhausted, default=0.0), at)


# every Realtime event an actor needs but the audio delta (decoded first, inline: the most frequent);
# anything else — IGNORED_REALTIME, or unknown — decodes to None
_REALTIME: dict[str, Callable[[_RtInbound, float], object | None]] = {
    "response.output_item.added": _rt_item_added,
    "response.function_call_arguments.done": _rt_function_call,
    "response.output_audio.done": lambda ev, at: RtAudioDone(ev.response_id, ev.item_id, at),
    "input_audio_buffer.speech_started": lambda ev, at: RtSpeechStarted(ev.item_id, ev.audio_start_ms, at),
    "input_audio_buffer.speech_stopped": lambda ev, at: RtSpeechStopped(ev.item_id, ev.audio_end_ms, at),
    "conversation.item.input_audio_transcription.completed": lambda ev, at: RtTranscriptDone(ev.item_id, ev.transcript, at),
    "conversation.item.input_audio_transcription.failed": _rt_transcript_failed,
    "response.created": _rt_response_created,
    "response.done": _rt_response_done,
    "response.output_audio_transcript.delta":
        lambda ev, at: RtAssistantTranscriptDelta(ev.response_id, ev.item_id, ev.delta, at),
    "response.output_audio_transcript.done":
        lambda ev, at: RtAssistantTranscriptDone(ev.response_id, ev.item_id, ev.transcript, at),
    "session.updated": lambda ev, at: RtSessionUpdated(at),
    "error": _rt_error,
    "rate_limits.updated": _rt_rate_limits,
}
assert not IGNORED_REALTIME & set(_REALTIME)


def decode_realtime(raw: str | bytes, at: float) -> object | None:
    """A typed message, None for events no actor needs, or WireDecodeError."""
    try:
        ev = _realtime_decoder.decode(raw)
        if ev.type == "response.output_audio.delta":
            return RtAudioDelta(ev.response_id, ev.item_id, binascii.a2b_base64(ev.delta, strict_mode=True), at)
        decode = _REALTIME.get(ev.type)
        return decode(ev, at) if decode is not None else None
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
