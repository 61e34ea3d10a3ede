"""`kolbridge serve` as a real process: SIGTERM drains (grace, then `server_shutdown`, /voice answers the
fallback, new streams refused) and `--workers 2` replaces a killed worker and closes its calls as
`worker_lost`. The fake Realtime service and the emulated callers run in the test process."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from gateway.config import REPO_ROOT
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeRealtime, FakeScript
from sim.twilio_emulator import EmulatedCall, Step
from storage.calls import get_call
from storage.db import make_engine, session_factory

pytestmark = pytest.mark.realtime


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def script() -> FakeScript:
    return FakeScript(transcripts=[clip_text("question")], responses=[(load_clip("greeting"), clip_text("greeting")),
                      (load_clip("answer"), clip_text("answer"))], speed=4.0)


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, env: dict[str, str], log: Path) -> None:
        self.proc, self.port, self.env, self.log = proc, port, env, log

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media-stream"

    async def record(self, call_sid: str) -> Any:
        engine = make_engine(self.env["KOLBRIDGE_DATABASE_URL"])
        try:
            return await get_call(session_factory(engine), call_sid)
        finally:
            await engine.dispose()


async def serve(tmp: Path, fake: FakeRealtime, *extra: str, config_extra: str = "",
                admin_port: int | None = None) -> Served:
    """`kolbridge serve` on a free port; the control plane off, or on `admin_port` (the test stops it)."""
    config = tmp / "config.toml"
    control = f"enabled = true\nadmin_port = {admin_port}" if admin_port else "enabled = false\nadmin_port = 1900"
    config.write_text((REPO_ROOT / "config.toml").read_text(encoding="utf-8").replace(
        "shutdown_grace_s = 30.0", "shutdown_grace_s = 2.0").replace(
        "heartbeat_s = 10.0", "heartbeat_s = 1.0").replace(
        "enabled = true\nadmin_port = 1900", control) + config_extra, encoding="utf-8")
    env = {**os.environ, "KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'kb.db'}",
           "KOLBRIDGE_REALTIME_URL": fake.url, "OPENAI_API_KEY": "sk-test"}
    cli = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*cli, "business", "--config", str(config), "import",
                    str(REPO_ROOT / "examples" / "demo-garage.toml")], env=env, check=True, capture_output=True, cwd=tmp)
    port = free_port()
    log = tmp / "serve.log"
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--config", str(config), *extra], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True)
    served = Served(proc, port, env, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with connect(served.stream_url, open_timeout=1) as ws:
                await ws.close()
            return served
        except OSError:
            await asyncio.sleep(0.2)
    kill_tree(proc)
    raise AssertionError("serve did not come up: " + log.read_text()[-2000:])


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """serve and everything it started (its workers, in its own session): a failed test leaves no
    orphan behind to take the CPU from the tests after it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


async def post_voice(port: int, call_sid: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = f"CallSid={call_sid}&From=%2B972501234567&To=%2B97235550123"
    writer.write(f"POST /voice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return data.decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtime]:
    service = await FakeRealtime(script()).start()
    yield service
    await service.stop()


def long_call(sid: str, seconds: float) -> EmulatedCall:
    return EmulatedCall("", "demo-garage", sid, [Step("pause", seconds), Step("hangup")], wait_timeout_s=15)


async def test_sigterm_drains_live_calls_then_ends_them_as_server_shutdown(tmp_path: Path, fake: FakeRealtime) -> None:
    served = await serve(tmp_path, fake)
    try:
        calls = {sid: long_call(sid, secs) for sid, secs in (("CA" + "1" * 32, 30), ("CA" + "2" * 32, 30),
                                                              ("CA" + "3" * 32, 1.5))}
        for call in calls.values():
            call.url = served.stream_url
        tasks = [asyncio.create_task(c.run()) for c in calls.values()]
        assert await _until(lambda: len(fake.connections) == 3 and all(c.responses for c in fake.connections), 15)
        await asyncio.sleep(0.5)
        served.proc.send_signal(signal.SIGTERM)
        sigterm = time.monotonic()
        await asyncio.sleep(0.3)
        twiml = await post_voice(served.port, "CA" + "9" * 32)  # a new call while draining: the fallback
        async with connect(served.stream_url) as ws:  # a new stream while draining: refused
            await asyncio.wait_for(ws.wait_closed(), 5)
            refused = ws.close_code
        reports = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        ended_after = time.monotonic() - sigterm
        assert served.proc.wait(30) == 0
    finally:
        if served.proc.poll() is None:
            kill_tree(served.proc)
    log = served.log.read_text()
    assert "<Say" in twiml and "<Connect" not in twiml and refused == 1013
    assert "DRAINING" in log
    assert log.count('"AUDIO_MODE"') == 1 and '"append_ms": 40' in log  # logged once, with the append size
    records = {sid: await served.record(sid) for sid in calls}
    reasons = {sid: r.end_reason for sid, r in records.items()}
    assert reasons == {"CA" + "1" * 32: "server_shutdown", "CA" + "2" * 32: "server_shutdown",
                       "CA" + "3" * 32: "twilio_stop"}, reasons
    assert all(r.metrics.get("frames_in", 0) > 0 for r in records.values())  # CALL_METRICS persisted
    assert 2.0 <= ended_after < 6.0, ended_after  # the grace (2 s), then the rest ended
    assert all(r.frames_received > 0 for r in reports)
    print(f"\nSIGTERM: 1 call finished within the 2 s grace, 2 ended {ended_after:.1f} s after the signal as "
          "server_shutdown; /voice answered the fallback, a new stream got 1013")


async def test_a_killed_worker_is_replaced_and_its_calls_closed_as_worker_lost(tmp_path: Path,
                                                                               fake: FakeRealtime) -> None:
    served = await serve(tmp_path, fake, "--workers", "2")
    assert await _until(lambda: served.log.read_text().count("SERVING") == 2, 30)
    try:
        # SO_REUSEPORT spreads calls by a hash: start calls in threes until both workers serve some
        sids: list[str] = []
        tasks: list[asyncio.Task[Any]] = []
        workers: dict[str, str] = {}
        pids: list[int] = []
        while len(pids) < 2 and len(sids) < 12:
            batch = [f"CA{n:032d}" for n in range(len(sids) + 1, len(sids) + 4)]
            for sid in batch:
                call = long_call(sid, 20)
                call.url = served.stream_url
                tasks.append(asyncio.create_task(call.run()))
            sids += batch
            expected = len(sids)
            assert await _until(lambda: len(fake.connections) == expected, 15)  # noqa: B023 — awaited here
            await asyncio.sleep(1.5)  # call starts written, heartbeats on
            workers = {sid: (await served.record(sid)).worker for sid in sids}
            pids = sorted({int(w.rsplit(":", 1)[1]) for w in workers.values()})
        if len(pids) < 2:  # 12 calls on one worker: about 1 in 2,000 runs
            pytest.skip("the kernel put every call on one worker this time")
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        lost = [sid for sid, w in workers.items() if w.endswith(f":{victim}")]
        assert await _until_async(lambda: _all_reasons(served, lost, "worker_lost"), 10)
        closed_after = time.monotonic() - killed
        assert await _until(lambda: "WORKER_REPLACED" in served.log.read_text(), 10)
        # the replacement serves: a new call goes through (whichever worker the kernel picks)
        new = EmulatedCall(served.stream_url, "demo-garage", "CA" + "a" * 32,
                           [Step("wait_turns", 1), Step("hangup")], wait_timeout_s=15)
        report = await asyncio.wait_for(new.run(), 30)
        assert report.frames_received > 0 and report.waits_timed_out == 0
        survivors = [sid for sid in sids if sid not in lost]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(30)
        except subprocess.TimeoutExpired:
            kill_tree(served.proc)
    for sid in lost:
        row = await served.record(sid)
        assert row.end_reason == "worker_lost" and row.metrics.get("frames_in", 0) > 0  # last heartbeat's metrics
    for sid in survivors:
        assert (await served.record(sid)).end_reason != "worker_lost"
    print(f"\nKILL -9: {len(lost)} calls of worker {victim} closed as worker_lost {closed_after:.2f} s later; "
          "worker replaced; a new call served")


async def _all_reasons(served: Served, sids: list[str], reason: str) -> bool:
    for sid in sids:
        if (await served.record(sid)).end_reason != reason:
            return False
    return True


async def _until_async(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False
