"""`kolbridge demo`: a whole Hebrew phone call, offline, on loopback.

Composes the product (gateway server, actor engine, SQLite in a temporary directory) with the
offline peers from `sim/` (fake Realtime service, Twilio call emulator): greeting → caller's
question → answer → goodbye → hang-up; prints a timeline and the call's CALL_METRICS.
"""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from gateway.app import App
from gateway.config import REPO_ROOT, AppConfig, FileConfig, load_env, log_audio_mode
from gateway.server import start_server
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeRealtime, FakeScript
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from storage.businesses import parse_business, upsert_business
from storage.db import create_schema, make_engine, session_factory

DEMO_BUSINESS_FILE = REPO_ROOT / "examples" / "demo-garage.toml"
DEMO_BUSINESS = DEMO_BUSINESS_FILE.read_text(encoding="utf-8")


def demo_script() -> FakeScript:
    return FakeScript(
        transcripts=[clip_text("question"), clip_text("goodbye")],
        responses=[(load_clip("greeting"), clip_text("greeting")), (load_clip("answer"), clip_text("answer")),
                   (load_clip("goodbye"), clip_text("goodbye"))])


def demo_steps() -> list[Step]:
    return [Step("wait_turns", 1), Step("pause", 0.4), Step("say", load_clip("question"), "question"),
            Step("wait_turns", 2), Step("pause", 0.3), Step("say", load_clip("goodbye"), "goodbye"),
            Step("wait_turns", 3), Step("hangup")]


async def run_demo_call(file_config: FileConfig, workdir: Path, steps: list[Step] | None = None,
                        script: FakeScript | None = None, business_toml: str = DEMO_BUSINESS,
                        env: dict[str, str] | None = None) -> tuple[CallReport, App, FakeRealtime]:
    fake = await FakeRealtime(script or demo_script()).start()
    environ = {"KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
               "KOLBRIDGE_REALTIME_URL": fake.url, "OPENAI_API_KEY": "sk-offline-demo", **(env or {})}
    config = AppConfig(file_config, load_env(environ), "demo")
    db = make_engine(config.env.database_url)
    await create_schema(db)
    sessions = session_factory(db)
    spec = parse_business(business_toml, "demo business")
    await upsert_business(sessions, spec)
    app = App(config, db, sessions)
    app.start()
    server = await start_server(app, "127.0.0.1", 0)
    port = list(server.sockets)[0].getsockname()[1] if server.sockets else 0
    try:
        call = EmulatedCall(f"ws://127.0.0.1:{port}/media-stream", spec.id, "CA" + "d" * 32,
                            steps or demo_steps())
        report = await asyncio.wait_for(call.run(), 120)
        for _ in range(200):
            if not app.calls:
                break
            await asyncio.sleep(0.01)
    finally:
        server.close()
        await server.wait_closed()
        await app.shutdown()
        await fake.stop()
        await db.dispose()
    return report, app, fake


def print_report(report: CallReport, app: App, fake: FakeRealtime) -> None:
    print("\n── timeline ─────────────────────────────────────────────")
    conn = fake.connections[0] if fake.connections else None
    for t, text in sorted(report.timeline):
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


def main_demo(file_config: FileConfig) -> int:
    log_audio_mode(file_config.audio, "demo")
    with tempfile.TemporaryDirectory(prefix="kolbridge-demo-") as tmp:
        report, app, fake = asyncio.run(run_demo_call(file_config, Path(tmp)))
    print_report(report, app, fake)
    ok = bool(app.summaries) and report.frames_received > 0
    return 0 if ok else 1
