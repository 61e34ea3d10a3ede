"""What actors hand the gateway to write on a socket: Structs that mirror the Twilio Media Streams
and OpenAI Realtime JSON exactly, so the gateway only `msgspec.json.encode`s them.
"""
from __future__ import annotations

from typing import Union

from msgspec import Struct

from actors.agent_messages import RtFunctionTool, RtOutputCreate
from actors.link_messages import RtItemCreate


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


class RtFormat(Struct, frozen=True):
    type: str = "audio/pcmu"


class RtTranscriptionConfig(Struct, frozen=True, omit_defaults=True):
    model: str
    language: str | None = None  # ISO-639-1; omitted, the model detects it per utterance
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


def b64_size(text: str) -> int:
    """Bytes a padded base64 string (an append's audio, a Twilio payload) decodes to, without decoding it."""
    return len(text) // 4 * 3 - (2 if text.endswith("==") else 1 if text.endswith("=") else 0)


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
