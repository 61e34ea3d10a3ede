"""Dead letters: a write the database refuses for a reason of its own is moved aside, not retried forever.

Theory of operation: the write queue (storage/writequeue.py) retries a write, in order, while the
database is *unreachable* (`is_unreachable`: a refused or lost connection, a timeout, OperationalError,
InterfaceError, a connection invalidated) — waiting is the cure. Any other failure (IntegrityError,
DataError, ProgrammingError; a TypeError or KeyError of a buggy apply) would fail the same way forever
and hold up every write behind it: the queue wraps the write as a `DeadLetterWrite` (its JSON, the
error's type and text) and inserts it into `dead_letters` through its own apply — one more idempotent
write, keyed by the letter's id — logs DB_WRITE_DEAD, tells the observers (the gateway's Prometheus
counter: storage imports no gateway module) and goes on with the next write. When that insert fails
too, the letter is appended to a journal beside the queue's (`dead-letters-<owner>.jsonl`, locked for
the worker's life and adopted by the next worker once its owner is gone, like the queue's) and moved
into the table at the next start or when the database is back. `kolbridge db dead-letters` lists them;
`--retry` re-applies each (`retry_dead_letters`): deleted when it lands, attempts and error updated when not.
"""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import IO

import msgspec
import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError, InterfaceError, NotSupportedError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import DeadLetter, utcnow

log = structlog.get_logger("kolbridge.storage")

UNREACHABLE = (OSError, asyncio.TimeoutError, OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
REFUSED = (IntegrityError, DataError, ProgrammingError, NotSupportedError)
# SQLSTATE classes that refuse the write itself: data exception, integrity constraint violation, syntax
# error or access rule violation, feature not supported. Others (08 connection, 53 resources, 57 operator
# intervention, 40 rollback, 58 system error, …) are waited for.
REFUSED_SQLSTATE_CLASSES = ("22", "23", "42", "0A")
_dead_write_observers: list[Callable[[str], None]] = []


def sqlstate(exc: BaseException) -> str:
    """The PostgreSQL SQLSTATE behind a SQLAlchemy error ("" when there is none, e.g. on SQLite)."""
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None) or "")


def is_unreachable(exc: BaseException) -> bool:
    """True when waiting may cure the failure (the database or the way to it is down: retry in order);
    False when the write itself is refused (a constraint, its data, its SQL) or the code applying it is wrong."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if type(getattr(exc, "orig", None)).__name__ == "InvalidCachedStatementError":
        return True  # asyncpg after a migration: the cache is cleared, the next attempt works
    if isinstance(exc, REFUSED):
        return False
    state = sqlstate(exc)
    if state[:2] in REFUSED_SQLSTATE_CLASSES:
        return False  # PostgreSQL refused this write's data or SQL: asyncpg's errors reach us as a plain DBAPIError
    if type(getattr(getattr(exc, "orig", None), "__cause__", None)).__name__ == "DataError":
        return False  # asyncpg refused a parameter before sending it (a wrong type: this write's own bug)
    return isinstance(exc, (*UNREACHABLE, DBAPIError))  # any other database error: retried, as before


def observe_dead_writes(observer: Callable[[str], None]) -> None:
    """`observer(kind)` is called for every write moved to the dead letters."""
    _dead_write_observers.append(observer)


class DeadLetterWrite(msgspec.Struct, tag="dead_letter"):
    """A refused write on its way to `dead_letters` (applied by the queue's apply, idempotently by `id`)."""

    id: str
    worker: str
    kind: str  # the refused write's tag: utterance, call_end, …
    call_sid: str
    write: str  # the refused write, msgspec JSON (its tag included)
    error_type: str
    error: str
    created_at: datetime


def error_text(exc: BaseException) -> str:
    return (str(exc) or repr(exc)).replace("\x00", "\\x00")[:2000]  # PostgreSQL text holds no NUL


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetterWrite)


def adopt_orphans(journal_dir: Path, pattern: str, own: Path, journal: IO[bytes]) -> list[tuple[Path, int]]:
    """Every gone worker's journal matching `pattern` (its lock is free; `own` excepted) appended to `journal`
    and fsync'd, and only then removed: a worker killed in between leaves the orphan for the next one
    (adopted twice at worst — every write is idempotent). Each adopted journal and its number of lines."""
    adopted: list[tuple[Path, int]] = []
    for path in sorted(journal_dir.glob(pattern)):
        if path == own:
            continue
        with open(path, "rb+") as orphan:
            try:
                fcntl.flock(orphan.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its worker lives
            lines = [line for line in orphan.read().splitlines() if line.strip()]
        if lines:
            journal.seek(0, os.SEEK_END)
            journal.write(b"\n".join(lines) + b"\n")
            journal.flush()
            os.fsync(journal.fileno())
            adopted.append((path, len(lines)))
        path.unlink(missing_ok=True)
    return adopted


class DeadLetterJournal:
    """dead-letters-<owner>.jsonl: the letters the table could not take yet, locked while its worker lives."""

    def __init__(self, journal_dir: Path, owner: str) -> None:
        self.path = journal_dir / f"dead-letters-{owner}.jsonl"
        self.file: IO[bytes] = open(self.path, "ab+")  # noqa: SIM115 — held for the worker's life
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.adopted = 0  # gone workers' letters, appended to ours
        for path, letters in adopt_orphans(journal_dir, "dead-letters-*.jsonl", self.path, self.file):
            log.warning("DB_DEAD_LETTERS_ADOPTED", path=str(path), letters=letters)
            self.adopted += letters

    def _write(self, data: bytes) -> None:
        self.file.seek(0, os.SEEK_END)
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())  # rare: a refused write while the database went away

    @property
    def pending(self) -> bool:
        return not self.file.closed and self.file.seek(0, os.SEEK_END) > 0

    def append(self, letter: DeadLetterWrite) -> None:
        self._write(_encoder.encode(letter) + b"\n")

    def letters(self) -> list[DeadLetterWrite]:
        self.file.seek(0)
        letters = []
        for line in self.file.read().splitlines():
            try:
                letters.append(_decoder.decode(line))
            except msgspec.DecodeError:  # a torn last line (killed mid-append)
                log.error("DB_DEAD_LETTER_BAD_LINE", line=line[:200].decode("utf-8", "replace"))
        return letters

    def keep(self, letters: list[DeadLetterWrite]) -> None:
        """Only `letters` stay (the others reached the table): written beside and renamed over the journal,
        so a kill at any moment leaves the old list or the new one, never an empty file."""
        fresh_path = self.path.with_suffix(".jsonl.new")  # not a journal name: never adopted
        fresh: IO[bytes] = open(fresh_path, "wb+")  # noqa: SIM115 — becomes the journal, held for the worker's life
        fcntl.flock(fresh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked before it bears the journal's name
        fresh.write(b"".join(_encoder.encode(letter) + b"\n" for letter in letters))
        fresh.flush()
        os.fsync(fresh.fileno())
        os.replace(fresh_path, self.path)
        stale, self.file = self.file, fresh
        stale.close()

    def close(self) -> None:
        empty = not self.pending
        self.file.close()
        if empty:
            self.path.unlink(missing_ok=True)


class DeadLetters:
    """A write queue's dead letters: filed into the table through the queue's `apply`, else journaled."""

    def __init__(self, apply: Callable[[DeadLetterWrite], Awaitable[None]], journal_dir: Path, owner: str, worker: str,
                 unreachable: Callable[[], None]) -> None:
        self.apply = apply
        self.worker = worker
        self.unreachable = unreachable  # the queue marks an outage: `due` again once a write lands
        self.journal = DeadLetterJournal(journal_dir, owner)
        self.due = self.journal.pending  # the journal is to be moved into the table

    def database_back(self) -> None:
        self.due = self.journal.pending

    def close(self) -> None:
        self.journal.close()

    async def bury(self, kind: str, call_sid: str, encoded_write: bytes, exc: BaseException) -> bool:
        """Set a refused write aside; True when the table took it, False when it was journaled."""
        letter_id = hashlib.sha256(encoded_write).hexdigest()[:32]  # refused again (a replay): the same letter
        letter = DeadLetterWrite(letter_id, self.worker[:128], kind[:32], call_sid[:64], encoded_write.decode(),
                                 type(exc).__name__[:128], error_text(exc), utcnow())
        for observer in _dead_write_observers:
            observer(kind)
        log.error("DB_WRITE_DEAD", kind=kind, call_sid=call_sid, error_type=letter.error_type, error=letter.error[:300],
                  letter=letter.id)
        try:
            await asyncio.wait_for(self.apply(letter), 10.0)
            return True
        except Exception as exc_filing:  # noqa: BLE001 — nothing lost: journaled, moved into the table later
            self.journal.append(letter)
            if is_unreachable(exc_filing):
                self.unreachable()
            log.error("DB_DEAD_LETTER_JOURNALED", letter=letter.id, journal=str(self.journal.path),
                      error=error_text(exc_filing)[:200])
            return False

    async def move(self) -> None:
        """The journal into the table, in order; what the table cannot take yet stays journaled."""
        self.due = False
        letters = self.journal.letters()
        for moved, letter in enumerate(letters):
            try:
                await asyncio.wait_for(self.apply(letter), 10.0)
            except Exception as exc:  # noqa: BLE001 — kept; unreachable: moved again once the database is back
                if is_unreachable(exc):
                    self.unreachable()
                log.warning("DB_DEAD_LETTERS_WAITING", letters=len(letters) - moved, error=error_text(exc)[:200])
                self.journal.keep(letters[moved:])
                return
        self.journal.keep([])
        log.info("DB_DEAD_LETTERS_MOVED", letters=len(letters))


# ---------------------------------------------------------------------- the table
async def record_dead_letter(session: AsyncSession, letter: DeadLetterWrite) -> None:
    """Insert `letter` in the caller's transaction; idempotent (keyed by its id)."""
    if await session.get(DeadLetter, letter.id) is None:
        session.add(DeadLetter(id=letter.id, worker=letter.worker, kind=letter.kind, call_sid=letter.call_sid,
                               write=letter.write, error_type=letter.error_type, error=letter.error,
                               created_at=letter.created_at, attempts=0))


async def list_dead_letters(sessions: async_sessionmaker[AsyncSession]) -> list[DeadLetter]:
    async with sessions() as session:
        query = select(DeadLetter).order_by(DeadLetter.created_at, DeadLetter.id)
        return list((await session.execute(query)).scalars().all())


Reapply = Callable[[str], Awaitable[None]]  # apply one write given as its JSON


async def retry_dead_letters(sessions: async_sessionmaker[AsyncSession], reapply: Reapply) -> list[tuple[DeadLetter, str]]:
    """Re-apply every dead letter, oldest first: deleted when it lands; attempts, retried_at and the error
    updated when not. Each letter with "" (landed) or the new error."""
    outcomes = []
    for letter in await list_dead_letters(sessions):
        try:
            await reapply(letter.write)
        except Exception as exc:  # noqa: BLE001 — recorded on the letter, which stays
            error = f"{type(exc).__name__}: {error_text(exc)}"
            async with sessions.begin() as session:
                await session.execute(update(DeadLetter).where(DeadLetter.id == letter.id).values(
                    attempts=DeadLetter.attempts + 1, retried_at=utcnow(), error_type=type(exc).__name__[:128],
                    error=error_text(exc)))
            outcomes.append((letter, error))
            continue
        async with sessions.begin() as session:
            await session.execute(delete(DeadLetter).where(DeadLetter.id == letter.id))
        outcomes.append((letter, ""))
    return outcomes
