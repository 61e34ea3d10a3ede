"""A PostgreSQL stopped in the middle of a call and started again: the caller hears nothing of it, and
afterwards the call's record holds every utterance once and its end (reason, metrics). The server stays
down until the call has gone on without it — the head write retried several times and the utterances of
the following turns queued behind it — not for a fixed time.

The server is a throw-away cluster of Debian's PostgreSQL binaries (scripts/test.sh installs them),
run as the `postgres` user on a free port; skipped where that is impossible (not root, no binaries)."""
from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import EmulatedCall, Step
from storage.calls import get_call, get_utterances
from tests.stack import running_stack

pytestmark = pytest.mark.realtime

CALL = "CA" + "e" * 32


@dataclass
class Postgres:
    bindir: str
    datadir: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        command = [f"{self.bindir}/pg_ctl", "-D", self.datadir, "-l", f"{self.datadir}/log", "-o", options, *args]
        subprocess.run(["su", "postgres", "-c", " ".join(f"'{a}'" for a in command)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def start(self) -> None:
        self.ctl("-w", "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "-w", "stop")


@pytest.fixture
def stoppable_postgres() -> Iterator[Postgres]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or os.geteuid() != 0 or shutil.which("su") is None:
        pytest.skip("needs root and Debian's PostgreSQL binaries (scripts/test.sh installs them)")
    datadir = tempfile.mkdtemp(prefix="kb-pg-", dir="/tmp")
    shutil.chown(datadir, "postgres", "postgres")
    subprocess.run(["su", "postgres", "-c", f"{bins[-1]}/initdb -D {datadir} -A trust -U postgres"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pg = Postgres(bins[-1], datadir, port)
    pg.start()
    try:
        yield pg
    finally:
        try:
            pg.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(datadir, ignore_errors=True)


def script() -> FakeScript:
    def clip(name: str) -> tuple[bytes, str]:
        return load_clip(name), clip_text(name)
    return FakeScript(transcripts=[clip_text("question"), "לא", clip_text("goodbye")],
                      responses=[clip("greeting"), clip("answer")],
                      replies={clip_text("question"): clip("answer"), "לא": clip("alternative"),
                               clip_text("goodbye"): clip("goodbye")}, speed=4.0)


async def test_postgres_down_mid_call_loses_nothing(tmp_path: Path, stoppable_postgres: Postgres) -> None:
    pg = stoppable_postgres
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 0.3), Step("say", load_clip("no"), "no"), Step("wait_turns", 3),
             Step("pause", 0.3), Step("say", load_clip("goodbye"), "goodbye"), Step("wait_turns", 4), Step("hangup")]
    async with running_stack(tmp_path, script(), env={"KOLBRIDGE_DATABASE_URL": pg.url}) as stack:
        call = EmulatedCall(stack.stream_url, "demo-garage", CALL, steps, wait_timeout_s=30)
        task = asyncio.create_task(call.run())
        assert await _until(lambda: CALL in stack.app.calls, 10)
        assert await stack.app.writes.drain(5)  # the call's row exists
        await asyncio.to_thread(pg.stop)
        stopped = time.monotonic()
        # down across the next turn: its utterances queue behind a head retried again and again
        assert await _until(lambda: stack.app.writes.stats()["retried"] >= 3 and stack.app.writes.stats()["queued"] >= 2
                            and call.turns_done >= 2, 30)
        await asyncio.to_thread(pg.start)
        down_s = time.monotonic() - stopped
        report = await asyncio.wait_for(task, 90)
        assert await _until(lambda: not stack.app.calls, 10)
        assert await stack.app.writes.drain(30)
        stats = stack.app.writes.stats()
        utterances = await get_utterances(stack.app.sessions, CALL)
        row = await get_call(stack.app.sessions, CALL)
        summary = stack.app.summaries[-1]
    told = summary["metrics"]
    assert report.waits_timed_out == 0 and report.underruns == 0  # the caller noticed nothing
    assert row is not None and row.end_reason == "twilio_stop" and row.metrics == told
    seqs = [u.seq for u in utterances]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 6  # every utterance, once, in order
    caller = [u.text for u in utterances if u.role == "caller"]
    assert caller == [clip_text("question"), "לא", clip_text("goodbye")]
    assert stats["retried"] >= 1 and stats["queued"] == 0 and not stats["journal_pending"]
    assert stats["dead"] == 0 and stats["dead_journaled"] == 0  # an outage is waited for, never a dead letter
    print(f"\nPG DOWN {down_s:.1f} s: {len(seqs)} utterances and the call end written after recovery; "
          f"write attempts retried {stats['retried']}, applied {stats['applied']}")


async def _until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False
