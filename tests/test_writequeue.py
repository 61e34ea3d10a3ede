"""The ordered database write queue: retries in order while the database is down, spills to the
journal past its bound, replays it (also a dead worker's) on recovery, and never duplicates a row."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from storage.calls import apply_in, apply_write, get_call, get_utterances
from storage.db import create_schema, make_engine, session_factory
from storage.writequeue import CallEndWrite, CallStartWrite, UtteranceWrite, Write, WriteQueue
from tests.conftest import VIRTUAL_CLOCK


def utterance(seq: int) -> UtteranceWrite:
    return UtteranceWrite("CA1", seq, "caller", f"turn {seq}", "turn", seq * 1000, seq * 1000 + 500, False, -1)


class FlakyDatabase:
    """Applies writes into a list; refuses while `down` is set."""

    def __init__(self) -> None:
        self.rows: list[Write] = []
        self.down = False
        self.attempts = 0

    async def apply(self, write: Write) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError("database is down")
        self.rows.append(write)


async def test_writes_wait_in_order_while_the_database_is_down(tmp_path: Path) -> None:
    db = FlakyDatabase()
    queue = WriteQueue(db.apply, tmp_path, max_items=100, backoff_max_s=0.05)
    queue.start()
    db.down = True
    writes: list[Write] = [CallStartWrite("CA1", "MZ1", "biz", {}), *[utterance(n) for n in range(1, 6)]]
    for write in writes:
        queue.put(write)
    await asyncio.sleep(0.3)
    assert db.rows == [] and queue.counters.retried >= 3
    db.down = False
    assert await queue.drain(5)
    assert db.rows == writes and queue.counters.spilled == 0
    await queue.close(1)
    assert not list(tmp_path.glob("*.jsonl"))  # nothing left over


async def test_past_its_bound_the_queue_spills_to_the_journal_and_replays_it_in_order(tmp_path: Path) -> None:
    db = FlakyDatabase()
    queue = WriteQueue(db.apply, tmp_path, max_items=3, backoff_max_s=0.05)
    queue.start()
    db.down = True
    writes: list[Write] = [utterance(n) for n in range(1, 11)]
    for write in writes:
        queue.put(write)
    assert queue.counters.spilled >= 7 and queue.journal_path.stat().st_size > 0
    db.down = False
    assert await queue.drain(5)
    assert db.rows[-10:] == writes and len(set(map(id, db.rows))) == len(db.rows)
    # the head write may have been applied before the spill and again from the journal: harmless (keyed)
    assert [w.seq for w in db.rows if isinstance(w, UtteranceWrite)][-10:] == list(range(1, 11))
    assert queue.journal_path.stat().st_size == 0
    await queue.close(1)


async def test_what_is_left_at_shutdown_is_journaled_and_replayed_by_the_next_worker(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    await create_schema(engine)
    sessions = session_factory(engine)
    down = {"yes": True}

    async def apply(write: Write) -> None:
        if down["yes"]:
            raise ConnectionRefusedError("database is down")
        await apply_write(sessions, write)

    dead = WriteQueue(apply, tmp_path / "journal", max_items=100, backoff_max_s=0.05, owner="worker-a")
    dead.start()
    writes: list[Write] = [CallStartWrite("CA1", "MZ1", "demo", {"core": "x"}), utterance(1), utterance(2),
                           CallEndWrite("CA1", "twilio_stop", {"frames_in": 10}, 0)]
    for write in writes:
        dead.put(write)
    await dead.close(0.2)  # the database never came back for this worker: everything is journaled
    assert (tmp_path / "journal" / "writes-worker-a.jsonl").stat().st_size > 0
    down["yes"] = False
    heir = WriteQueue(apply, tmp_path / "journal", max_items=100, owner="worker-b")
    assert heir.counters.adopted == 4 and not (tmp_path / "journal" / "writes-worker-a.jsonl").exists()
    heir.start()
    heir.put(utterance(2))  # a duplicate write (e.g. a replay after a crash): applied idempotently
    assert await heir.drain(5)
    await heir.close(1)
    row = await get_call(sessions, "CA1")
    assert row is not None and row.end_reason == "twilio_stop" and row.metrics == {"frames_in": 10}
    assert [u.seq for u in await get_utterances(sessions, "CA1")] == [1, 2]
    await engine.dispose()


async def test_a_live_workers_journal_is_not_adopted(tmp_path: Path) -> None:
    db = FlakyDatabase()
    live = WriteQueue(db.apply, tmp_path, owner="live")
    live._append([utterance(1)])
    other = WriteQueue(db.apply, tmp_path, owner="other")
    assert other.counters.adopted == 0 and live.journal_path.exists()
    await other.close(0.1)
    live.start()
    assert await live.drain(2)
    await live.close(0.1)


async def test_a_gone_workers_empty_journal_is_removed_not_kept_forever(tmp_path: Path) -> None:
    (tmp_path / "writes-gone.jsonl").write_bytes(b"")
    queue = WriteQueue(FlakyDatabase().apply, tmp_path, owner="me")
    assert queue.counters.adopted == 0 and not (tmp_path / "writes-gone.jsonl").exists()
    await queue.close(0.1)


@pytest.mark.parametrize("bad", [b"{not json\n", b'{"kind":"nope"}\n'])
async def test_a_corrupt_journal_line_is_counted_and_skipped(tmp_path: Path, bad: bytes) -> None:
    (tmp_path / "writes-gone.jsonl").write_bytes(bad + b'{"type":"utterance","call_sid":"CA1","seq":1,"role":"caller",'
                                                 b'"text":"x","classification":"turn","start_ms":0,"end_ms":1,'
                                                 b'"interrupted":false,"heard_ms":-1}\n')
    db = FlakyDatabase()
    queue = WriteQueue(db.apply, tmp_path, owner="me")
    queue.start()
    assert await queue.drain(2)
    assert queue.counters.undecodable == 1 and [w.seq for w in db.rows if isinstance(w, UtteranceWrite)] == [1]
    await queue.close(0.1)


async def test_calls_whose_worker_is_gone_are_closed_as_worker_lost_with_their_last_metrics(tmp_path: Path) -> None:
    from datetime import timedelta

    from storage.calls import close_lost_calls
    from storage.models import utcnow
    from storage.writequeue import HeartbeatWrite

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    await create_schema(engine)
    sessions = session_factory(engine)
    for sid, worker in (("CAdead", "host:1"), ("CAstale", "host:2"), ("CAlive", "host:3"), ("CAdone", "host:1")):
        await apply_write(sessions, CallStartWrite(sid, "MZ", "demo", {}, worker=worker))
    await apply_write(sessions, CallEndWrite("CAdone", "twilio_stop", {"frames_in": 5}, 0))
    await apply_write(sessions, HeartbeatWrite("host:1", {"CAdead": {"frames_in": 321}}))
    await apply_write(sessions, HeartbeatWrite("host:3", {"CAlive": {"frames_in": 99}}))
    async with sessions.begin() as session:  # host:2 stopped beating two minutes ago
        from storage.models import CallRecord
        row = await session.get(CallRecord, "CAstale")
        assert row is not None
        row.heartbeat_at = utcnow() - timedelta(seconds=120)
    closed = await close_lost_calls(sessions, utcnow() - timedelta(seconds=60), {"host:1"})
    assert sorted(closed) == ["CAdead", "CAstale"]
    rows = {sid: await get_call(sessions, sid) for sid in ("CAdead", "CAstale", "CAlive", "CAdone")}
    assert {sid: r.end_reason for sid, r in rows.items() if r} == {
        "CAdead": "worker_lost", "CAstale": "worker_lost", "CAlive": "", "CAdone": "twilio_stop"}
    assert rows["CAdead"] is not None and rows["CAdead"].metrics == {"frames_in": 321}  # the last heartbeat's
    await engine.dispose()


async def test_batches_apply_in_order_in_one_transaction_and_a_failed_batch_is_retried_whole(tmp_path: Path) -> None:
    """With apply_batch the waiting writes go up to BATCH_MAX at a time; against a real SQLite database a
    batch that fails half-way is rolled back and re-applied whole — no row twice, none lost."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    await create_schema(engine)
    sessions = session_factory(engine)
    failures = [2]  # the first two batches fail after their writes were applied (inside the transaction)

    async def flaky_batch(writes: Sequence[Write]) -> None:
        async with sessions.begin() as session:
            for write in writes:
                await apply_in(session, write)
            await session.flush()
            if failures[0]:
                failures[0] -= 1
                raise ConnectionResetError("lost at commit")

    queue = WriteQueue(lambda write: apply_write(sessions, write), tmp_path / "journal", max_items=1000,
                       backoff_max_s=0.05, apply_batch=flaky_batch)
    writes: list[Write] = [CallStartWrite("CA1", "MZ1", "biz", {}), *[utterance(n) for n in range(1, 150)]]
    for write in writes:
        queue.put(write)  # all waiting before the consumer runs: batches of BATCH_MAX
    queue.start()
    assert await queue.drain(10)
    assert queue.batches >= 3 and queue.counters.retried == 2 and queue.counters.applied == len(writes)
    assert [u.seq for u in await get_utterances(sessions, "CA1")] == list(range(1, 150))
    await queue.close(1)
    await engine.dispose()


@VIRTUAL_CLOCK
async def test_close_lets_the_write_in_hand_finish_instead_of_cancelling_it(tmp_path: Path) -> None:
    """close() after its drain deadline no longer cancels the task mid-write: a database call cancelled half-way
    could wait for ever on a driver that never answers the cancellation (a hung close, seen in CI). The write
    in hand finishes, nothing is spilled, and the queue stops."""
    started, release = asyncio.Event(), asyncio.Event()
    applied: list[Write] = []

    async def slow_apply(write: Write) -> None:
        started.set()
        await release.wait()  # a database call still running when close() gives up draining
        applied.append(write)

    queue = WriteQueue(slow_apply, tmp_path, owner="w1")
    queue.start()
    queue.put(utterance(1))
    await asyncio.wait_for(started.wait(), 1)
    closing = asyncio.create_task(queue.close(0.05))
    while not queue.stopping:  # the drain deadline passed: the queue asked its task to stop
        await asyncio.sleep(0.01)
    assert not closing.done() and applied == []  # close waits for the write in hand…
    release.set()
    await asyncio.wait_for(closing, 1)
    assert applied == [utterance(1)] and queue.task is not None and queue.task.done() and not queue.task.cancelled()
    assert queue.counters.spilled == 0 and not (tmp_path / "writes-w1.jsonl").exists()  # …and nothing was spilled


@VIRTUAL_CLOCK
async def test_close_during_an_outage_always_returns_and_spills(tmp_path: Path) -> None:
    """close() during an outage returns and leaves the write in the journal, wherever the retry loop is (200
    closes at different moments of it). The hang it guards against needed close()'s cancellation to meet a
    write that had just failed in the same loop iteration (3.11's wait_for then returns the failure and the
    cancellation is lost); the virtual clock cannot line that up, so this checks the stop that no longer
    depends on it: the task is asked to stop between writes, never cancelled to end."""

    async def down(write: Write) -> None:
        await asyncio.sleep(0)
        raise ConnectionRefusedError("database is down")

    for attempt in range(200):
        queue = WriteQueue(down, tmp_path / str(attempt), backoff_max_s=0.01, owner="w1")
        queue.start()
        queue.put(utterance(1))
        await asyncio.sleep(0.001 * (attempt % 17))  # close at a different point of the retry loop each time
        await asyncio.wait_for(queue.close(0.005 * (attempt % 5)), 20)
        assert queue.pending_at_close and (tmp_path / str(attempt) / "writes-w1.jsonl").stat().st_size > 0
