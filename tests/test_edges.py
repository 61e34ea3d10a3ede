"""Edges: wire decoding, configuration, prompt layers, business files, the CLI."""
from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path

import pytest

from actors.ingress_messages import (
    EndCall,
    RtAudioDelta,
    RtError,
    RtResponseDone,
    RtSpeechStarted,
    RtTranscriptDone,
    TwilioMarkIn,
    TwilioMediaIn,
    WireDecodeError,
)
from actors.link_messages import RtRateLimits
from gateway.cli import main
from gateway.config import ConfigError, load_config
from gateway.wire import TwilioStart, decode_realtime, decode_twilio
from prompts.builder import BusinessFacts, build_prompt
from storage.businesses import BusinessError, get_business, parse_business, upsert_business
from storage.db import create_schema, make_engine, session_factory

REPO = Path(__file__).resolve().parent.parent


def test_twilio_events_decode_to_typed_messages() -> None:
    media = decode_twilio(json.dumps({"event": "media", "sequenceNumber": "9", "media": {
        "track": "inbound", "chunk": "4", "timestamp": "60", "payload": "//8="}}), 1.0)
    assert media == TwilioMediaIn("//8=", 4, 1.0, b"\xff\xff")  # the bytes travel with the string
    start = decode_twilio(json.dumps({"event": "start", "streamSid": "MZ1", "start": {
        "callSid": "CA1", "streamSid": "MZ1", "customParameters": {"business_id": "b"}}}), 1.0)
    assert start == TwilioStart("CA1", "MZ1", {"business_id": "b"}, 1.0) and not start.format_supported
    start = decode_twilio(json.dumps({"event": "start", "start": {"callSid": "CA1", "mediaFormat": {
        "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}), 1.0)
    assert isinstance(start, TwilioStart) and start.format_supported
    l16 = decode_twilio(json.dumps({"event": "start", "start": {"callSid": "CA1", "mediaFormat": {
        "encoding": "audio/l16", "sampleRate": 16000, "channels": 1}}}), 1.0)
    assert isinstance(l16, TwilioStart) and not l16.format_supported
    assert decode_twilio('{"event":"mark","mark":{"name":"m3"}}', 2.0) == TwilioMarkIn("m3", 2.0)
    assert decode_twilio('{"event":"stop"}', 3.0) == EndCall("twilio_stop", 3.0)
    for bad in ("{nope", '{"event":"media","media":{"payload":5}}', '{"event":"media"}', "[]",
                '{"event":"media","media":{"payload":"x","chunk":"abc"}}',
                '{"event":"media","media":{"payload":"not base64!"}}', '{"event":"media","media":{"payload":"//8"}}',
                '{"event":"media","media":{"payload":""}}'):
        assert isinstance(decode_twilio(bad, 0.0), WireDecodeError), bad


def test_realtime_events_decode_to_typed_messages() -> None:
    delta = decode_realtime(json.dumps({"type": "response.output_audio.delta", "response_id": "r", "item_id": "i",
                                        "delta": base64.b64encode(b"\x01\x02").decode()}), 1.0)
    assert delta == RtAudioDelta("r", "i", b"\x01\x02", 1.0)
    assert decode_realtime('{"type":"input_audio_buffer.speech_started","audio_start_ms":120,"item_id":"u"}', 1.0) \
        == RtSpeechStarted("u", 120, 1.0)
    assert decode_realtime('{"type":"conversation.item.input_audio_transcription.completed","item_id":"u",'
                           '"transcript":"לא"}', 1.0) == RtTranscriptDone("u", "לא", 1.0)
    done = decode_realtime('{"type":"response.done","response":{"id":"r","status":"cancelled",'
                           '"status_details":{"reason":"client_cancelled"}}}', 1.0)
    assert done == RtResponseDone("r", "cancelled", "client_cancelled", 1.0)
    err = decode_realtime('{"type":"error","error":{"type":"invalid_request_error","code":null,"message":"m"}}', 1.0)
    assert err == RtError("invalid_request_error", "m", "", 1.0, "invalid_request_error")
    assert decode_realtime('{"type":"rate_limits.updated","rate_limits":[]}', 1.0) == RtRateLimits(0.0, 1.0)
    limits = ('{"type":"rate_limits.updated","rate_limits":[{"name":"requests","limit":100,"remaining":0,'
              '"reset_seconds":1.5},{"name":"tokens","limit":9000,"remaining":8000,"reset_seconds":9}]}')
    assert decode_realtime(limits, 1.0) == RtRateLimits(1.5, 1.0)  # only an exhausted limit delays a retry
    failed = decode_realtime('{"type":"response.done","response":{"id":"r","status":"failed","status_details":'
                             '{"type":"failed","error":{"type":"server_error","code":"rate_limit_exceeded"}}}}', 1.0)
    assert failed == RtResponseDone("r", "failed", "", 1.0, "rate_limit_exceeded")
    assert isinstance(decode_realtime('{"type":"response.output_audio.delta","delta":"***"}', 1.0), WireDecodeError)
    assert isinstance(decode_realtime("not json", 1.0), WireDecodeError)


def test_config_is_the_single_source_and_refuses_unknown_keys(tmp_path: Path) -> None:
    cfg = load_config(str(REPO / "config.toml"), {})
    a = cfg.file.audio
    assert (a.simple_mode, a.audio_guard_enabled, a.music_mode_enabled, a.noise_gate_min_frames) == (True, False, False, 0)
    assert cfg.file.tx.tx_lead_ms == 100 and cfg.file.vad.silence_duration_ms == 600
    bad = tmp_path / "bad.toml"
    bad.write_text("[audio]\nsimple_mode = true\nrms_gate = 3\n")
    with pytest.raises(ConfigError, match="rms_gate"):
        load_config(str(bad), {})
    bad.write_text("[tx]\ntx_lead_ms = 'fast'\n")
    with pytest.raises(ConfigError, match="tx_lead_ms"):
        load_config(str(bad), {})


def test_prompt_is_four_layers_from_data_files() -> None:
    facts = BusinessFacts("מוסך בדיקה", "he", "שלום לכם", "פתוח בימים א-ה.")
    built = build_prompt(facts)
    assert list(built.layer_hashes) == ["core_role", "telephony", "behaviour", "business"]
    for name in ("core_role", "telephony", "behaviour"):
        assert (REPO / "prompts" / "he" / f"{name}.txt").read_text(encoding="utf-8").strip() in built.instructions
    assert "מוסך בדיקה" in built.instructions and "פתוח בימים א-ה." in built.instructions
    assert "שלום לכם" in built.greeting_instructions
    other = build_prompt(BusinessFacts("Clinic", "en", "Hello", "Open daily."))
    assert other.layer_hashes["business"] != built.layer_hashes["business"]
    assert "Clinic" in other.instructions


@pytest.mark.parametrize("text, problem", [
    ('[business]\nid = "x"\n', "missing required field `name` - at `$.business`"),
    ('[business]\nid="good-id"\nname="n"\nlanguage="xx"\ngreeting="g"\n', "business.language"),
    ('[business]\nid="good-id"\nname="n"\nlanguage="he"\ngreeting="g"\nphone_numbers=["035550123"]\n',
     "business.phone_numbers[0]"),
    ('[business]\nid="good-id"\nname="n"\nlanguage="he"\ngreeting="g"\ncolour="red"\n', "colour"),
    ('[business]\nid="good-id"\nname="n"\nlanguage="he"\n', "greeting"),
    ("[business\n", "not valid TOML"),
])
def test_business_file_errors_name_the_field(text: str, problem: str) -> None:
    with pytest.raises(BusinessError, match=re.escape(problem)):
        parse_business(text)


async def test_business_upsert_and_number_conflict(tmp_path: Path) -> None:
    db = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    await create_schema(db)
    sessions = session_factory(db)
    base = '[business]\nid="{id}"\nname="{name}"\nlanguage="he"\ngreeting="g"\nphone_numbers=["+97235550123"]\n'
    await upsert_business(sessions, parse_business(base.format(id="one", name="first")))
    await upsert_business(sessions, parse_business(base.format(id="one", name="renamed")))
    view = await get_business(sessions, "one")
    assert view is not None and view.name == "renamed" and view.phone_numbers == ["+97235550123"]
    with pytest.raises(BusinessError, match="already routed"):
        await upsert_business(sessions, parse_business(base.format(id="two", name="second")))
    assert await get_business(sessions, "two") is None  # nothing half-written
    await db.dispose()


def test_cli_business_import_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    assert main(["business", "import", str(REPO / "examples" / "demo-garage.toml")]) == 0
    assert main(["business", "list"]) == 0
    out = capsys.readouterr().out
    assert "imported demo-garage" in out and "demo-garage\tמוסך הדגמה\the\tactive\t+97235550123" in out
    assert main(["business", "export", "demo-garage"]) == 0
    exported = capsys.readouterr().out
    again = tmp_path / "again.toml"
    again.write_text(exported, encoding="utf-8")
    original = parse_business((REPO / "examples" / "demo-garage.toml").read_text(encoding="utf-8"))
    assert parse_business(exported) == original  # export → import round-trips
    assert main(["business", "import", str(again)]) == 0
    capsys.readouterr()
    assert main(["prompt", "show", "demo-garage"]) == 0
    prompt = capsys.readouterr().out
    assert "מוסך הדגמה" in prompt and "core_role=" in prompt and "שלום, הגעתם למוסך הדגמה" in prompt
    assert main(["business", "show", "nope"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[business]\nid="x!"\nname="n"\nlanguage="he"\ngreeting="g"\n')
    assert main(["business", "import", str(bad)]) == 2
    assert "business.id" in capsys.readouterr().err
    asyncio.set_event_loop(asyncio.new_event_loop())


def test_business_layer_is_rendered_from_the_row() -> None:
    import msgspec

    from gateway.config.overrides import facts_for
    from storage.businesses import BusinessView, Permissions

    spec = parse_business((REPO / "examples" / "english-clinic.toml").read_text(encoding="utf-8"))
    view = BusinessView(spec.id, spec.name, spec.language, spec.greeting, spec.prompt, spec.voice, spec.active,
                        spec.phone_numbers, [], [], {}, spec.vocabulary, spec.industry, spec.value_proposition,
                        spec.services, spec.tone, spec.purpose, msgspec.structs.asdict(spec.permissions))
    built = build_prompt(facts_for(view))
    assert "Services: check-ups, vaccinations, minor injuries, prescription renewals." in built.instructions
    assert "You must not: ask for or take payment details." in built.instructions
    assert "schedule appointments" in built.instructions.split("You may:")[1].split("\n")[0]
    assert "Dr. Okafor" in built.transcription_prompt
    bare = build_prompt(BusinessFacts("Shop", "en", "Hi", "", permissions=msgspec.structs.asdict(Permissions())))
    assert "Industry" not in bare.instructions and "More about the business" not in bare.instructions
