"""One refused write no longer jams the write queue: it goes to the dead letters with its error (the table,
or their journal while the table cannot take it), is counted, and every write behind it lands; a refused
batch is split so only the refused write is set aside; `kolbridge db dead-letters [--retry]` lists and
re-applies them. On SQLite and, with KOLBRIDGE_TEST_PG_URL, PostgreSQL (in a schema of its own)."""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gateway.cli import main
from gateway.control import prom  # noqa: F401 — registers the dead-write counter with the queue
from storage.calls import apply_write, apply_writes, get_call, get_utterances
from storage.db import create_schema, make_engine, session_factory
from storage.deadletters import DeadLetterWrite, is_unreachable, list_dead_letters, retry_dead_letters
from storage.models import Base
from storage.writequeue import CallEndWrite, CallStartWrite, UtteranceWrite, Write, WriteQueue, decode_write

PG_URL = os.environ.get("KOLBRIDGE_TEST_PG_URL", "")
PG_SCHEMA = "kolbridge_dead_letters_test"  # not public: tests/test_storage.py drops that
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="KOLBRIDGE_TEST_PG_URL not set (.ci/run starts PostgreSQL and sets it)"))]
SQLITE_CONSTRAINT = ("CREATE TRIGGER no_poison BEFORE INSERT ON utterances WHEN NEW.text = 'poison' "
                     "BEGIN SELECT RAISE(ABORT, 'no_poison: a poisoned utterance'); END")


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    backend: str

    async def add_constraint(self) -> None:
        """What a migration might add: utterances whose text is 'poison' are refused (IntegrityError)."""
        async with self.engine.begin() as conn:
            await conn.execute(text(SQLITE_CONSTRAINT if self.backend == "sqlite" else
                                    "ALTER TABLE utterances ADD CONSTRAINT no_poison CHECK (text <> 'poison')"))

    async def drop_constraint(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER no_poison" if self.backend == "sqlite" else
                                    "ALTER TABLE utterances DROP CONSTRAINT no_poison"))


async def open_database(backend: str, tmp_path: Path) -> Database:
    if backend == "sqlite":
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    else:
        engine = create_async_engine(PG_URL, connect_args={"server_settings": {"search_path": PG_SCHEMA}})
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    await create_schema(engine)
    return Database(engine, session_factory(engine), backend)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(request.param, tmp_path)
    yield database
    await database.engine.dispose()


def utterance(seq: int, words: str = "") -> UtteranceWrite:
    return UtteranceWrite("CA1", seq, "caller", words or f"turn {seq}", "turn", seq * 1000, seq * 1000 + 500, False, -1)


def a_call_with_a_poisoned_utterance() -> list[Write]:
    return [CallStartWrite("CA1", "MZ1", "demo", {}), utterance(1), utterance(2, "poison"), utterance(3),
            CallEndWrite("CA1", "twilio_stop", {"frames_in": 10}, 0)]


def dead_counted(kind: str) -> float:
    return REGISTRY.get_sample_value("kolbridge_db_writes_dead_total", {"kind": kind}) or 0.0


async def assert_the_call_landed_but_the_poison(db: Database) -> None:
    row = await get_call(db.sessions, "CA1")
    assert row is not None and row.business_id == "demo" and row.end_reason == "twilio_stop"
    assert row.metrics == {"frames_in": 10}
    assert [u.seq for u in await get_utterances(db.sessions, "CA1")] == [1, 3]
    letters = await list_dead_letters(db.sessions)
    assert [(d.kind, d.call_sid, d.error_type, d.attempts) for d in letters] == [("utterance", "CA1", "IntegrityError", 0)]
    assert "no_poison" in letters[0].error
    assert decode_write(letters[0].write) == utterance(2, "poison")


async def test_a_refused_write_between_good_ones_goes_to_the_dead_letters_and_the_rest_land(
        db: Database, tmp_path: Path) -> None:
    await db.add_constraint()
    counted = dead_counted("utterance")
    queue = WriteQueue(lambda write: apply_write(db.sessions, write), tmp_path / "journal", owner="w1")
    queue.start()
    for write in a_call_with_a_poisoned_utterance():
        queue.put(write)
    assert await queue.drain(10)
    assert queue.counters.dead == 1 and queue.counters.applied == 4 and queue.counters.dead_journaled == 0
    assert dead_counted("utterance") == counted + 1
    await queue.close(1)
    await assert_the_call_landed_but_the_poison(db)
    assert not list((tmp_path / "journal").glob("*.jsonl"))


async def test_a_refused_batch_is_split_so_only_the_refused_write_is_set_aside(db: Database, tmp_path: Path) -> None:
    await db.add_constraint()
    queue = WriteQueue(lambda write: apply_write(db.sessions, write), tmp_path / "journal", owner="w1",
                       apply_batch=lambda writes: apply_writes(db.sessions, writes))
    for write in a_call_with_a_poisoned_utterance():
        queue.put(write)  # all waiting before the consumer runs: one batch
    queue.start()
    assert await queue.drain(10)
    assert queue.counters.batches_split == 1 and queue.counters.dead == 1 and queue.counters.applied == 4
    await queue.close(1)
    await assert_the_call_landed_but_the_poison(db)


async def write_a_poisoned_call(db: Database, journal: Path) -> None:
    """A call with one utterance the added constraint refuses, through a write queue, drained and closed."""
    await db.add_constraint()
    queue = WriteQueue(lambda write: apply_write(db.sessions, write), journal, owner="w1")
    queue.start()
    for write in a_call_with_a_poisoned_utterance():
        queue.put(write)
    assert await queue.drain(10)
    await queue.close(1)


async def test_retry_lands_a_letter_once_its_cause_is_fixed(db: Database, tmp_path: Path) -> None:
    await write_a_poisoned_call(db, tmp_path / "journal")

    async def reapply(encoded: str) -> None:
        await apply_write(db.sessions, decode_write(encoded))

    [(letter, error)] = await retry_dead_letters(db.sessions, reapply)  # the constraint still holds
    assert "IntegrityError" in error
    [kept] = await list_dead_letters(db.sessions)
    assert kept.id == letter.id and kept.attempts == 1 and kept.retried_at is not None
    await db.drop_constraint()
    assert [error for _, error in await retry_dead_letters(db.sessions, reapply)] == [""]
    assert await list_dead_letters(db.sessions) == []
    assert [u.text for u in await get_utterances(db.sessions, "CA1")] == ["turn 1", "poison", "turn 3"]


async def test_the_migration_matches_the_model(db: Database) -> None:
    def differences(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))  # every table, every column
    async with db.engine.connect() as conn:
        assert await conn.run_sync(differences) == []


class GoesAwayAfterRefusing:
    """A real database that refuses the poisoned utterance and goes away at that moment: unreachable until
    `back()`; `refused_while_down` is set once a write was refused for it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.down = False
        self.refused_while_down = asyncio.Event()

    async def apply(self, write: Write) -> None:
        if self.down:
            if not isinstance(write, DeadLetterWrite):
                self.refused_while_down.set()
            raise ConnectionRefusedError("database is down")
        try:
            await apply_write(self.db.sessions, write)
        except exc.IntegrityError:
            self.down = True
            raise


async def refused_then_down(tmp_path: Path, owner: str) -> tuple[Database, GoesAwayAfterRefusing, WriteQueue]:
    """A queue whose database refuses the poisoned utterance and then goes away: its letter journaled, the
    writes after it waiting."""
    db = await open_database("sqlite", tmp_path)
    await db.add_constraint()
    database = GoesAwayAfterRefusing(db)
    queue = WriteQueue(database.apply, tmp_path / "journal", backoff_max_s=0.05, owner=owner)
    queue.start()
    for write in a_call_with_a_poisoned_utterance():
        queue.put(write)
    await asyncio.wait_for(database.refused_while_down.wait(), 10)
    return db, database, queue


async def test_a_letter_the_table_cannot_take_is_journaled_and_moved_when_the_database_is_back(
        tmp_path: Path) -> None:
    db, database, queue = await refused_then_down(tmp_path, "w1")  # the letter journaled, utterance 3 waiting
    assert queue.counters.dead_journaled == 1 and queue.dead_letters.journal.pending
    assert await list_dead_letters(db.sessions) == []
    database.down = False
    assert await queue.drain(10)
    assert not queue.dead_letters.journal.pending
    await queue.close(1)
    await assert_the_call_landed_but_the_poison(db)
    assert not list((tmp_path / "journal").glob("*.jsonl"))
    await db.engine.dispose()


async def test_a_gone_workers_journaled_letters_are_moved_by_the_next_worker(tmp_path: Path) -> None:
    db, _, gone = await refused_then_down(tmp_path, "gone")
    await gone.close(0)  # the database never came back for this worker: its writes and its letter journaled
    assert (tmp_path / "journal" / "dead-letters-gone.jsonl").stat().st_size > 0
    heir = WriteQueue(lambda write: apply_write(db.sessions, write), tmp_path / "journal", owner="heir")
    assert heir.dead_letters.journal.adopted == 1 and not (tmp_path / "journal" / "dead-letters-gone.jsonl").exists()
    heir.start()
    assert await heir.drain(10)
    await heir.close(1)
    await assert_the_call_landed_but_the_poison(db)
    await db.engine.dispose()


@pytest.mark.parametrize("error", [
    ConnectionRefusedError("refused"), OSError("no route"), asyncio.TimeoutError(), TimeoutError(),
    exc.OperationalError("SELECT 1", {}, Exception("database is locked")),
    exc.InterfaceError("SELECT 1", {}, Exception("connection closed")),
    exc.DBAPIError("SELECT 1", {}, Exception("terminating connection"), connection_invalidated=True),
    exc.IntegrityError("INSERT", {}, Exception("lost mid-statement"), connection_invalidated=True),
    exc.DBAPIError("SELECT 1", {}, Exception("the database system is shutting down")),
])
def test_an_unreachable_database_is_waited_for(error: BaseException) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize("error", [
    exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
    exc.DataError("INSERT", {}, Exception("value too long")),
    exc.ProgrammingError("INSERT", {}, Exception("column does not exist")),
    exc.StatementError("bind", "INSERT", {}, TypeError("not a str")),
    TypeError("bad"), KeyError("missing"), ValueError("bad"), AttributeError("none"),
])
def test_a_write_refused_for_a_reason_of_its_own_is_not(error: BaseException) -> None:
    assert not is_unreachable(error)


@pytest.mark.skipif(not PG_URL, reason="KOLBRIDGE_TEST_PG_URL not set (.ci/run starts PostgreSQL and sets it)")
async def test_postgresql_refusing_a_writes_data_is_a_dead_letter_not_an_outage(tmp_path: Path) -> None:
    """asyncpg's data errors reach SQLAlchemy as a plain DBAPIError (SQLSTATE class 22) or, for a parameter
    of the wrong type, as an InterfaceError: both are this write's own fault, never "the database is down".
    A SIP caller's From longer than the column, between good writes, must not jam the queue."""
    db = await open_database("postgresql", tmp_path)
    try:
        caught: list[BaseException] = []
        for statement, params in (("INSERT INTO calls (call_sid, stream_sid, business_id, from_number) "
                                   "VALUES ('CAx', 'MZx', 'b', :n)", {"n": "sip:" + "9" * 60}),
                                  ("SELECT 1 WHERE 1 = :n", {"n": "not a number"})):
            try:
                async with db.engine.begin() as conn:
                    await conn.execute(text(statement), params)
            except Exception as exc:  # noqa: BLE001 — the test classifies whatever PostgreSQL raised
                caught.append(exc)
        assert len(caught) == 2 and not any(is_unreachable(exc) for exc in caught), [repr(e)[:200] for e in caught]
        queue = WriteQueue(lambda write: apply_write(db.sessions, write), tmp_path / "journal", owner="w1")
        queue.start()
        long_from = CallStartWrite("CA2", "MZ2", "demo", {}, from_number="sip:" + "9" * 60)
        writes: list[Write] = [CallStartWrite("CA1", "MZ1", "demo", {}), long_from, utterance(1),
                               CallEndWrite("CA1", "twilio_stop", {"frames_in": 10}, 0)]
        for write in writes:
            queue.put(write)
        assert await queue.drain(10)
        await queue.close(1)
        row = await get_call(db.sessions, "CA1")
        assert row is not None and row.end_reason == "twilio_stop"
        letters = await list_dead_letters(db.sessions)
        assert [(d.kind, d.call_sid) for d in letters] == [("call_start", "CA2")]
    finally:
        await db.engine.dispose()


def test_cli_lists_the_dead_letters_and_retry_lands_them_once_the_cause_is_fixed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")

    async def on_the_database(step: Callable[[Database], Awaitable[object]]) -> object:
        db = await open_database("sqlite", tmp_path)  # the CLI's file; a fresh engine per event loop
        try:
            return await step(db)
        finally:
            await db.engine.dispose()

    async def a_poisoned_call(db: Database) -> None:
        await write_a_poisoned_call(db, tmp_path / "journal")

    async def texts(db: Database) -> list[str]:
        return [u.text for u in await get_utterances(db.sessions, "CA1")]

    asyncio.run(on_the_database(a_poisoned_call))
    capsys.readouterr()
    assert main(["db", "dead-letters"]) == 0
    listed = capsys.readouterr().out
    assert "\tutterance\tCA1\tattempts=0\tIntegrityError: " in listed and "no_poison" in listed
    assert main(["db", "dead-letters", "--json"]) == 0
    [letter] = json.loads(capsys.readouterr().out)
    assert letter["kind"] == "utterance" and letter["write"]["text"] == "poison" and letter["attempts"] == 0
    assert main(["db", "dead-letters", "--retry"]) == 1  # the constraint still holds
    assert "0 landed, 1 still dead" in capsys.readouterr().out
    assert main(["db", "dead-letters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["attempts"] == 1
    asyncio.run(on_the_database(Database.drop_constraint))
    assert main(["db", "dead-letters", "--retry"]) == 0
    assert "1 landed, 0 still dead" in capsys.readouterr().out
    assert main(["db", "dead-letters"]) == 0
    assert capsys.readouterr().out.strip() == "no dead letters"
    assert asyncio.run(on_the_database(texts)) == ["turn 1", "poison", "turn 3"]
