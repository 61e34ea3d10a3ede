"""`kolbridge demo`: a whole Hebrew phone call, offline, on loopback.

Composes the product (gateway server, actor engine, SQLite in a temporary directory) with the
offline peers from `sim/` (fake Realtime service, Twilio call emulator): greeting → caller's
question → answer (a filler and a real "לא" over it) → the caller asks for a person → the AI says it
is transferring → the call is redirected to the business's human line through a local fake of Twilio's
REST API (`<Dial>`); prints a timeline and the call's CALL_METRICS. Then a second, shorter call on the
same garage from an Arabic speaker: the agent follows the caller into Arabic (transcription, lexicon,
answers), an Arabic filler over the answer cuts nothing, an Arabic "لا" is answered.
"""
from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import structlog

from gateway.app import App
from gateway.config import AppConfig, FileConfig, load_env, log_audio_mode
from gateway.recorder import copy_recording, wait_for_writer
from gateway.server import start_server
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeRealtime, FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from storage.businesses import parse_business, upsert_business
from storage.db import create_schema, make_engine, session_factory

# examples/ is installed as the package kolbridge_examples: the demo works from a non-editable install
DEMO_BUSINESS = resources.files("kolbridge_examples").joinpath("demo-garage.toml").read_text(encoding="utf-8")
DEMO_RECORDING = "demo-call.wav"


def demo_script() -> FakeScript:
    """What the fake Realtime service "hears" and "says", in order."""
    def clip(name: str) -> tuple[bytes, str]:
        return load_clip(name), clip_text(name)

    return FakeScript(
        transcripts=[clip_text("question"), "אממ", "לא", "אמממ...", "לא", clip_text("human")],
        responses=[clip("greeting"), clip("answer")],
        replies={clip_text("question"): clip("long_answer"), "לא": clip("alternative"),
                 clip_text("human"): clip("handoff")},
        calls={clip_text("human"): ("transfer_to_human", {
            "reason": "the caller asked for a person",
            "summary": "wants a service appointment; the offered slots did not suit"})},
        speed=1.5)  # generation only a little faster than real time, so a cut lands mid-generation


def demo_steps() -> list[Step]:
    """The caller: a question, a filler over the AI's long answer (ignored), a real "לא" over it (cut),
    a filler while the AI is silent (no answer), a lone "לא" (answered), asks for a person (transferred)."""
    return [Step("wait_turns", 1), Step("pause", 0.4), Step("say", load_clip("question"), "question"),
            Step("wait_playing", 1.5), Step("say", load_clip("filler"), "filler over the AI"),
            Step("pause", 2.0), Step("say", load_clip("no"), "לא over the AI"),
            Step("wait_turns", 3), Step("pause", 0.5), Step("say", load_clip("filler"), "filler, AI silent"),
            Step("pause", 2.0), Step("say", load_clip("no"), "לא, AI silent"),
            Step("wait_turns", 4), Step("pause", 0.3), Step("say", load_clip("human"), "asks for a person"),
            Step("wait_turns", 5), Step("pause", 5.0), Step("hangup")]


ARABIC_CALL = "CA" + "a" * 32


def arabic_script() -> FakeScript:
    """The second caller speaks Arabic; once kolbridge follows them into it, the agent answers in Arabic."""
    def clip(name: str) -> tuple[bytes, str]:
        return load_clip(name), clip_text(name)

    return FakeScript(transcripts=[clip_text("question_ar"), clip_text("hmm_ar"), clip_text("no_ar")],
                      responses=[clip("greeting")],
                      replies={clip_text("question_ar"): clip("answer_ar"), clip_text("no_ar"): clip("alternative_ar")},
                      speed=1.5)


def arabic_steps() -> list[Step]:
    """A question in Arabic, an Arabic filler over the answer (ignored), an Arabic "لا" over it (cut, answered)."""
    return [Step("wait_turns", 1), Step("pause", 0.4), Step("say", load_clip("question_ar"), "question in Arabic"),
            Step("wait_playing", 1.0), Step("say", load_clip("hmm_ar"), "Arabic filler over the AI"),
            Step("pause", 1.5), Step("say", load_clip("no_ar"), "لا over the AI"),
            Step("wait_turns", 3), Step("pause", 1.0), Step("hangup")]


class OfflineStack(msgspec.Struct):
    app: App
    fake: FakeRealtime
    port: int

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media-stream"


@contextlib.asynccontextmanager
async def offline_stack(file_config: FileConfig, workdir: Path, script: FakeScript | None = None,
                        business_toml: str = DEMO_BUSINESS, env: dict[str, str] | None = None,
                        db_name: str = "demo.db") -> AsyncIterator[OfflineStack]:
    """The product on loopback against the fake Realtime service, with one business in SQLite."""
    fake = await FakeRealtime(script or demo_script()).start()
    environ = {"KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / db_name}",
               "KOLBRIDGE_REALTIME_URL": fake.url, "OPENAI_API_KEY": "sk-offline-demo", **(env or {})}
    config = AppConfig(file_config, load_env(environ), "demo")
    db = make_engine(config.env.database_url)
    await create_schema(db)
    sessions = session_factory(db)
    await upsert_business(sessions, parse_business(business_toml, "demo business"))
    app = App(config, db, sessions)
    app.start()
    server = await start_server(app, "127.0.0.1", 0)
    try:
        yield OfflineStack(app, fake, list(server.sockets)[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
        await app.shutdown()
        await fake.stop()
        await db.dispose()


async def run_demo_call(file_config: FileConfig, workdir: Path, steps: list[Step] | None = None,
                        script: FakeScript | None = None, business_toml: str = DEMO_BUSINESS,
                        env: dict[str, str] | None = None, call_sid: str = "CA" + "d" * 32,
                        db_name: str = "demo.db") -> tuple[CallReport, App, FakeRealtime]:
    rest = await FakeTwilioRest().start()
    rest_env = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_KEY": "SK" + "0" * 32,
                "TWILIO_API_SECRET": "offline-demo", "KOLBRIDGE_TWILIO_API_URL": rest.url}
    try:
        async with offline_stack(file_config, workdir, script, business_toml, {**rest_env, **(env or {})},
                                 db_name) as stack:
            business_id = parse_business(business_toml).id
            call = EmulatedCall(stack.stream_url, business_id, call_sid, steps or demo_steps())
            report = await asyncio.wait_for(call.run(), 120)
            for _ in range(200):
                if not stack.app.calls:
                    break
                await asyncio.sleep(0.01)
    finally:
        await rest.stop()
    for request in rest.requests:  # what Twilio's REST API was asked, on the call's timeline
        twiml = request.form.get("Twiml", "")
        what = f"redirect to {twiml[twiml.find('<Dial'):twiml.find('</Dial>') + 7]}" if "<Dial" in twiml else \
            " ".join(f"{k}={v}" for k, v in request.form.items())
        report.timeline.append((request.at - report.t0, f"twilio REST: call update, {what}"))
    return report, stack.app, stack.fake


DECISIONS = {"[BARGE-IN] candidate": "kolbridge: caller energy over the AI → candidate, AI ducked",
             "[BARGE-IN] rejected": "kolbridge: filler → barge-in rejected, AI volume restored",
             "[BARGE-IN] CUT": "kolbridge: barge-in confirmed → clear + cancel + truncate",
             "[BARGE-IN] restored": "kolbridge: candidate timed out, AI volume restored",
             "[GREETING] Barge-in now ENABLED for rest of call": "kolbridge: greeting played, barge-in enabled",
             "LEAVE_CALL": "kolbridge: the handoff sentence played to its end → leave the call",
             "SESSION_LANGUAGE": "kolbridge: session.update → transcription and answers in the caller's language"}


class DecisionRecorder:
    """A structlog processor that keeps the bridge's decisions, with loop time, for the timeline."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        text = DECISIONS.get(str(event.get("event")))
        if event.get("event") == "CALLER_SAID":
            text = f"kolbridge: heard {event.get('text')!r} → {event.get('label')}"
        elif event.get("event") == "TOOL_CALLED":
            text = f"kolbridge: the model calls {event.get('name')}"
        elif event.get("event") == "CALLER_LANGUAGE":
            text = f"kolbridge: the caller speaks {event.get('to')} (was {event.get('from')}): {event.get('evidence')}"
        elif event.get("event") == "TRUNCATE":
            text = f"kolbridge: truncate at {event.get('audio_end_ms')} ms heard"
        if text:
            try:
                self.events.append((asyncio.get_running_loop().time(), text))
            except RuntimeError:
                pass
        return event


RECORDER = DecisionRecorder()


def print_report(report: CallReport, app: App, fake: FakeRealtime) -> None:
    print("\n── timeline ─────────────────────────────────────────────")
    conn = fake.connections[0] if fake.connections else None
    decisions = [(t - report.t0, text) for t, text in RECORDER.events]
    for t, text in sorted(report.timeline + decisions):
        print(f"  {t:6.2f}s  {text}")
    if conn is not None:
        print("── what the AI said (fake Realtime service) ─────────────")
        for r in conn.responses:
            print(f"  {r['id']}: {len(r['audio']) * 1000 // 8000} ms of audio, {r['status']}")
    print("── figures ──────────────────────────────────────────────")
    gaps = report.gap_stats()
    print(f"  AI frames received {report.frames_received}, played {len(report.played_audio) // 160}, "
          f"underruns {report.underruns}, clears {len(report.clears)}")
    print(f"  TX pacing |gap-20ms| after lead: p50 {gaps['p50']} ms, p99 {gaps['p99']} ms, max {gaps['max']} ms "
          f"(n={gaps['n']})")
    if conn is not None:
        same = bytes(conn.appended) == bytes(report.caller_audio[:len(conn.appended)])
        print(f"  caller frames sent {report.frames_sent}, reached the Realtime service "
              f"{len(conn.appended) // 160} (byte-identical: {same})")
    for summary in app.summaries:
        m: dict[str, Any] = summary["metrics"]
        keys = ("stt_utterances", "empty", "short", "filler_only", "frames_in", "frames_forwarded",
                "frames_dropped", "barge_in_events")
        print("CALL_METRICS " + " ".join(f"{k}={m.get(k, 0)}" for k in keys))


async def stored_record(workdir: Path, call_sid: str, db_name: str = "demo.db") -> str:
    from gateway.cli.records import call_show

    db = make_engine(f"sqlite+aiosqlite:///{workdir / db_name}")
    try:
        return await call_show(session_factory(db), call_sid, as_json=False) or "(no record)"
    finally:
        await db.dispose()


def main_demo(file_config: FileConfig, keep: bool = False) -> int:
    """`keep`: the calls go to ./kolbridge.db and ./recordings (the defaults `kolbridge console` reads)."""
    log_audio_mode(file_config.audio, "demo", file_config.realtime.append_ms)
    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[RECORDER, *processors])
    db_name = "kolbridge.db" if keep else "demo.db"
    with tempfile.TemporaryDirectory(prefix="kolbridge-demo-") as tmp:
        where = Path.cwd() if keep else Path(tmp)
        recorded = msgspec.structs.replace(
            file_config, audio=msgspec.structs.replace(file_config.audio, record=True),
            server=msgspec.structs.replace(file_config.server, recordings_dir=str(where / "recordings")))
        sids = (f"CA{uuid.uuid4().hex}", f"CA{uuid.uuid4().hex}") if keep else ("CA" + "d" * 32, ARABIC_CALL)
        report, app, fake = asyncio.run(run_demo_call(recorded, where, call_sid=sids[0], db_name=db_name))
        record = asyncio.run(stored_record(where, report.call_sid, db_name))
        wait_for_writer()
        saved = copy_recording(where / "recordings", report.call_sid, Path(DEMO_RECORDING))
        print_report(report, app, fake)
        print("── the call's record (kolbridge calls show) ─────────────")
        print(record)
        RECORDER.events.clear()
        arabic, arabic_app, arabic_fake = asyncio.run(run_demo_call(
            recorded, where, arabic_steps(), arabic_script(), call_sid=sids[1], db_name=db_name))
        print("\n══ a second caller, in Arabic, on the same Hebrew garage ═══")
        print_report(arabic, arabic_app, arabic_fake)
        print("── the call's record (kolbridge calls show) ─────────────")
        print(asyncio.run(stored_record(where, sids[1], db_name)))
    if saved:
        print(f"── the call as the caller heard it: {Path(DEMO_RECORDING).resolve()} "
              "(stereo WAV: left the caller, right the AI as played)")
    if keep:
        print(f"── both calls are kept in {Path('kolbridge.db').resolve()}: `kolbridge users add you@example.com "
              "--role admin` then `kolbridge console` and open http://127.0.0.1:8090")
    ok = bool(app.summaries) and report.frames_received > 0 and bool(arabic_app.summaries)
    return 0 if ok else 1
