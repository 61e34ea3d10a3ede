"""Property-based fuzzing of everything that parses bytes from outside: the Twilio and Realtime
decoders and the HTTP POST shim; none may raise. Each takes FUZZ_EXAMPLES generated inputs: 300 in the
everyday suite, 10,000 with KOLBRIDGE_FUZZ_FULL=1 (tests/conftest.py)."""
from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.ingress_messages import WireDecodeError
from actors.link_messages import RtRateLimits
from gateway.http_shim import rewrite_post
from gateway.wire import decode_realtime, decode_twilio
from tests.conftest import FUZZ_EXAMPLES

FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)

TWILIO_EVENTS = ["connected", "start", "media", "mark", "dtmf", "stop", "other"]
twilio_payloads = st.one_of(st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=40))
twilio_messages = st.fixed_dictionaries({"event": st.sampled_from(TWILIO_EVENTS)}, optional={
    "sequenceNumber": st.one_of(st.text(max_size=5), st.integers()),
    "streamSid": json_values,
    "media": st.one_of(json_values, st.fixed_dictionaries({"payload": twilio_payloads}, optional={
        "chunk": st.one_of(st.text(max_size=6), st.integers()), "track": json_values})),
    "start": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "callSid": json_values, "customParameters": json_values,
        "mediaFormat": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "encoding": json_values, "sampleRate": json_values, "channels": json_values}))})),
    "mark": json_values, "dtmf": json_values, "stop": json_values})


def _raw(draw_value: Any) -> str:
    return json.dumps(draw_value)


@FUZZ
@given(st.one_of(twilio_messages.map(_raw), st.binary(max_size=300), st.text(max_size=300)))
def test_twilio_decoder_never_raises(raw: str | bytes) -> None:
    decode_twilio(raw, 1.0)


def test_twilio_decoder_drops_every_bad_payload_at_the_edge() -> None:
    for payload in ("", "@@@@", "//8", "=AAA", "YWJj ZA==", "\u05d0\u05d1"):
        msg = decode_twilio(json.dumps({"event": "media", "media": {"payload": payload}}), 1.0)
        assert isinstance(msg, WireDecodeError), payload


REALTIME_TYPES = ["response.output_audio.delta", "response.done", "error", "rate_limits.updated",
                  "input_audio_buffer.speech_started", "conversation.item.input_audio_transcription.completed",
                  "response.created", "response.output_item.added", "session.updated", "unknown.event",
                  "response.function_call_arguments.done"]
realtime_messages = st.fixed_dictionaries({"type": st.sampled_from(REALTIME_TYPES)}, optional={
    "delta": st.one_of(st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=20)),
    "response": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "id": json_values, "status": json_values, "status_details": json_values})),
    "error": json_values, "rate_limits": st.one_of(json_values, st.lists(st.fixed_dictionaries({}, optional={
        "name": json_values, "remaining": json_values, "reset_seconds": json_values}), max_size=3)),
    "item_id": json_values, "response_id": json_values, "audio_start_ms": json_values, "transcript": json_values,
    "item": json_values, "call_id": json_values, "name": json_values, "arguments": json_values})


@FUZZ
@given(st.sampled_from(["end_call", "transfer_to_human", "save_lead", "check_availability", "", "nope"]),
       st.one_of(json_values.map(json.dumps), st.text(max_size=60)))
def test_any_function_call_gets_an_answer_and_never_raises(name: str, arguments: str) -> None:
    """Whatever the model sends as a call, the bridge answers it (an output, a run, or a departure) and never raises."""
    from actors.agent_messages import AgentSettings, RtFunctionCall, RtOutputCreate, RunTool, ToolDef
    from actors.cores.bridge import BridgeState, RealtimeBridgeCore
    from actors.ingress_messages import StartCall
    from actors.link_messages import RealtimeConnected
    from actors.wire_messages import ToRealtime
    from gateway.agent import END_CALL, TRANSFER, save_lead_tool
    from storage.businesses import LeadFieldSpec
    from tests.conftest import settings as call_settings

    slots = ToolDef("check_availability", "slots", {"type": "object", "properties": {"day": {"type": "string"}},
                                                    "required": ["day"]}, "http", 2.0)
    agent = AgentSettings((END_CALL, TRANSFER, save_lead_tool([LeadFieldSpec("name", "n", True)]), slots),
                          transfer_number="+97235550999")
    core = RealtimeBridgeCore(BridgeState("CA1"), call_settings(agent=agent))
    core.handle(StartCall(call_settings(agent=agent), 0.0), 0.0)
    core.handle(RealtimeConnected(1, 0.1), 0.1)
    out = core.handle(RtFunctionCall("r1", "fc1", "c1", name, arguments, 1.0), 1.0)
    answered = [a for a in out if isinstance(a, ToRealtime) and isinstance(a.event, RtOutputCreate)]
    assert len(answered) + sum(isinstance(a, RunTool) for a in out) == 1


@FUZZ
@given(st.one_of(realtime_messages.map(_raw), st.binary(max_size=300), st.text(max_size=300)))
def test_realtime_decoder_never_raises(raw: str | bytes) -> None:
    decode_realtime(raw, 1.0)


def test_rate_limits_with_nonsense_values_are_a_decode_error_not_a_crash() -> None:
    bad = decode_realtime('{"type":"rate_limits.updated","rate_limits":[{"remaining":"x"}]}', 1.0)
    assert isinstance(bad, WireDecodeError)
    assert decode_realtime('{"type":"rate_limits.updated","rate_limits":[{"remaining":0,"reset_seconds":2}]}',
                           1.0) == RtRateLimits(2.0, 1.0)


header_lines = st.lists(st.one_of(
    st.tuples(st.sampled_from(["Content-Length", "content-length", "Host", "Transfer-Encoding", "X-Kolbridge-Form"]),
              st.one_of(st.integers(-5, 10**9).map(str), st.text(max_size=12))).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.text(max_size=40)), max_size=6)


@FUZZ
@given(st.text(max_size=30), header_lines, st.binary(max_size=200), st.binary(max_size=100))
def test_http_shim_never_raises_anything_but_value_error(path: str, headers: list[str], body: bytes, junk: bytes) -> None:
    head = ("POST " + path + " HTTP/1.1\r\n" + "\r\n".join(headers)).encode("utf-8", "replace")
    for buffer in (head + b"\r\n\r\n" + body, junk, head + junk):
        try:
            out = rewrite_post(buffer)
        except ValueError:
            continue  # answered with 400 by the connection
        assert out is None or out.startswith(b"GET ")
