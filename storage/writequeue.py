"""One ordered, bounded write queue per worker for call records: nothing lost while the database is down.

Theory of operation: the call path never waits on the database — it `put()`s a write (call start,
utterance, call end, heartbeat) and returns. One consumer task applies the writes strictly in order,
retrying the head with backoff (0.1 s → 2 s) for as long as the database refuses. Writes are
idempotent (keyed by call sid, or call sid + seq for an utterance), so applying one twice is harmless.
When more than `max_items` are waiting, or at shutdown, the queue spills to an append-only journal
(JSON lines, flushed at once, fsync'd off the event loop): from then on every new write is appended behind it, so the order holds, and the
consumer replays the journal before returning to memory. With `apply_batch`, the writes waiting in
memory are applied up to BATCH_MAX at a time in one transaction (one commit for many utterances: the
per-transaction round trips dominated the database's CPU under load); a failed batch is retried whole,
which idempotence makes harmless. A worker's journal carries its pid and is
held with an exclusive lock; at start-up a worker adopts every journal whose lock is free (its worker
is gone) and replays it first.

Only an *unreachable* database is waited for (storage/deadletters.py `is_unreachable`). A write refused
for a reason of its own — a constraint, its data, a bug in applying it — would fail the same way forever
and hold up every write behind it: it goes to the dead letters (the `dead_letters` table, or their
journal while the table cannot take it) with its error, DB_WRITE_DEAD is logged, and the queue goes on.
A refused batch is re-applied one write at a time, so only the refused write is set aside.
Counters: applied, retried, spilled, replayed, adopted, undecodable, dead, dead_journaled, batches_split.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import socket
from collections import deque
from itertools import islice
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, Sequence, Union

import msgspec
import structlog

from storage.deadletters import DeadLetters, DeadLetterWrite, adopt_orphans, error_text, is_unreachable

log = structlog.get_logger("kolbridge.storage")


class CallStartWrite(msgspec.Struct, tag="call_start"):
    call_sid: str
    stream_sid: str
    business_id: str
    prompt_hashes: dict[str, str]
    from_number: str = ""
    to_number: str = ""
    worker: str = ""
    caller_language: str = ""  # the business's first language: the call starts in it
    segment: int = 1  # 2, 3…: the caller is back with the agent after a transfer nobody took (one record)
    segment_note: str = ""  # why (e.g. "busy"), kept with the segment


class LanguageSwitchWrite(msgspec.Struct, tag="language_switch"):
    """The caller's language switched (issue 21): appended to the call's switches (once per seq)."""

    call_sid: str
    seq: int  # 1, 2, … within the call
    at_ms: int  # from the call's start
    from_language: str
    to_language: str
    evidence: str


class UtteranceWrite(msgspec.Struct, tag="utterance"):
    call_sid: str
    seq: int
    role: str
    text: str
    classification: str
    start_ms: int
    end_ms: int
    interrupted: bool
    heard_ms: int


class CallEndWrite(msgspec.Struct, tag="call_end"):
    call_sid: str
    reason: str
    metrics: dict[str, int]
    restarts: int
    series: dict[str, list[int]] = {}
    fallback: str = ""
    after_twiml: str = ""
    segment: int = 1  # which of the call's segments with the agent ended (storage/handoffs.py)


class HeartbeatWrite(msgspec.Struct, tag="heartbeat"):
    worker: str
    metrics: dict[str, dict[str, int]]  # call sid → last known metrics


class LeadWrite(msgspec.Struct, tag="lead"):
    call_sid: str
    tool_call_id: str
    business_id: str
    fields: dict[str, Any]


class ToolCallWrite(msgspec.Struct, tag="tool_call"):
    call_sid: str
    tool_call_id: str
    name: str
    arguments: str
    output: str
    status: str
    elapsed_ms: int


class CallNoteWrite(msgspec.Struct, tag="call_note"):
    call_sid: str
    transfer_summary: str


class TransferWrite(msgspec.Struct, tag="transfer"):
    """A transfer attempt's progress (issue 23), merged into the call's `transfer` by attempt: placed (the
    human's leg or <Dial>), its status as Twilio reports it, who answered and when, the outcome."""

    call_sid: str
    attempt: int  # 1, 2…: the segment whose transfer_to_human placed it
    mode: str = ""  # cold | warm
    number: str = ""
    leg_sid: str = ""
    status: str = ""  # Twilio's: queued ringing in-progress completed busy no-answer failed canceled
    answered: bool = False
    outcome: str = ""  # connected | back_to_agent | gave_up | fell_back_to_cold
    summary: str = ""  # what the agent tells the human (the whisper): kept here, never in a URL Twilio logs
    move_pending: bool = False  # the caller's next step was decided but REST could not move them: retried at each hold
    move_done: bool = False  # … and a retry moved them


class WebhookWrite(msgspec.Struct, tag="webhook"):
    """Enqueue one webhook delivery (the URL and secret are read from the business at delivery time)."""

    delivery_id: str
    business_id: str
    call_sid: str
    kind: str
    body: str


Write = Union[CallStartWrite, UtteranceWrite, CallEndWrite, HeartbeatWrite, LeadWrite, ToolCallWrite, CallNoteWrite,
              WebhookWrite, DeadLetterWrite, LanguageSwitchWrite, TransferWrite]  # a DeadLetterWrite is made by the queue itself, never put()
Apply = Callable[[Write], Awaitable[None]]
ApplyBatch = Callable[[Sequence[Write]], Awaitable[None]]
BATCH_MAX = 64
STOP_WAIT_S = 12.0  # close(): how long the task may take to finish the write in hand (each has 10 s)
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Write)


def decode_write(encoded: bytes | str) -> Write:
    return _decoder.decode(encoded)


class WriteCounters(msgspec.Struct):
    applied: int = 0
    retried: int = 0
    spilled: int = 0
    replayed: int = 0
    adopted: int = 0
    undecodable: int = 0
    dead: int = 0  # refused writes moved to the dead letters
    dead_journaled: int = 0  # dead letters the table could not take at once
    batches_split: int = 0


class WriteQueue:
    def __init__(self, apply: Apply, journal_dir: Path, max_items: int = 5000, backoff_max_s: float = 2.0,
                 owner: str = "", apply_batch: ApplyBatch | None = None) -> None:
        self.apply = apply
        self.apply_batch = apply_batch
        self.batches = 0
        self.journal_dir = journal_dir
        self.max_items = max_items
        self.backoff_max_s = backoff_max_s
        self.memory: deque[Write] = deque()
        self.counters = WriteCounters()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False  # close(): the task finishes the write in hand and stops (never cancelled mid-write)
        self.down_since: float | None = None
        self.worker = owner or f"{socket.gethostname()}:{os.getpid()}"
        journal_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = journal_dir / f"writes-{owner or os.getpid()}.jsonl"
        self.journal: IO[bytes] = open(self.journal_path, "ab+")  # noqa: SIM115 — held for the worker's life
        fcntl.flock(self.journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.replayed_to = 0  # bytes of the journal already applied
        self.pending_at_close = False
        self.unsynced = False
        self._adopt_orphans()
        self.dead_letters = DeadLetters(apply, journal_dir, owner or str(os.getpid()), self.worker, self._went_down)

    # ------------------------------------------------------------------ producer side (never awaits)
    def put(self, write: Write) -> None:
        if self.journal.closed:  # after close(): straight to the journal, replayed at the next start
            with open(self.journal_path, "ab") as journal:
                journal.write(_encoder.encode(write) + b"\n")
                journal.flush()
                os.fsync(journal.fileno())
            self.counters.spilled += 1
            log.warning("DB_WRITE_AFTER_CLOSE", what=type(write).__name__)
            return
        if self._journal_pending() or len(self.memory) >= self.max_items:
            if not self._journal_pending():
                log.warning("DB_QUEUE_SPILLING", queued=len(self.memory), journal=str(self.journal_path))
                self._spill_memory()
            self._append([write])
        else:
            self.memory.append(write)
        self.idle.clear()
        self.wake.set()

    @property
    def depth(self) -> int:
        return len(self.memory) + (1 if self._journal_pending() else 0)

    # ------------------------------------------------------------------ journal
    def _journal_pending(self) -> bool:
        return self.journal.seek(0, os.SEEK_END) > self.replayed_to

    def _append(self, writes: list[Write]) -> None:
        """Appended and flushed to the OS at once (a killed worker loses nothing); fsync'd by the
        consumer off the event loop within ~0.1 s (a power cut can lose that much), and at close."""
        if not writes:
            return
        self.journal.seek(0, os.SEEK_END)
        self.journal.write(b"".join(_encoder.encode(w) + b"\n" for w in writes))
        self.journal.flush()
        self.counters.spilled += len(writes)
        self.unsynced = True

    def _spill_memory(self) -> None:
        writes = list(self.memory)
        self.memory.clear()
        self._append(writes)

    def _adopt_orphans(self) -> None:
        """Journals of workers that are gone (their lock is free) are appended to ours, in file order."""
        for path, writes in adopt_orphans(self.journal_dir, "writes-*.jsonl", self.journal_path, self.journal):
            self.counters.adopted += writes
            log.warning("DB_JOURNAL_ADOPTED", path=str(path), writes=writes)

    def _next_journal_line(self) -> tuple[bytes, int] | None:
        self.journal.seek(self.replayed_to)
        line = self.journal.readline()
        if not line.endswith(b"\n"):
            return None
        return line, self.replayed_to + len(line)

    def _journal_done(self) -> None:
        if self.journal.seek(0, os.SEEK_END) == self.replayed_to:
            self.journal.truncate(0)
            self.journal.flush()
            os.fsync(self.journal.fileno())
            self.replayed_to = 0

    # ------------------------------------------------------------------ consumer
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="db-write-queue")
        if self._journal_pending() or self.dead_letters.due:
            self.idle.clear()
            self.wake.set()

    async def _sync_journal(self) -> None:
        if self.unsynced and not self.journal.closed:
            self.unsynced = False
            await asyncio.to_thread(os.fsync, self.journal.fileno())

    async def _apply_batch(self, writes: list[Write]) -> None:
        """`writes` in one transaction when the queue was given `apply_batch`; a lone write through `apply`."""
        if len(writes) == 1:
            await self.apply(writes[0])
        else:
            assert self.apply_batch is not None  # batches of more than one are only made with it
            await self.apply_batch(writes)
            self.batches += 1

    async def _apply_until_done(self, writes: list[Write]) -> bool:
        """Retried in order while the database is unreachable; refused for a reason of their own, to the dead
        letters (a batch one write at a time, so only the refused write goes). False: the queue is closing
        and the database still unreachable — the writes stay where they are (spilled to the journal)."""
        delay = 0.1
        while True:
            try:
                await asyncio.wait_for(self._apply_batch(writes), 10.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — unreachable: retried, in order; refused: set aside
                if not is_unreachable(exc):
                    return await self._refused(writes, exc)
                if self.stopping:
                    return False
                self.counters.retried += 1
                if self.down_since is None:
                    log.error("DB_WRITE_FAILED", what=type(writes[0]).__name__, error=str(exc)[:200],
                              queued=len(self.memory), exc_info=True)  # once per outage, not per retry
                self._went_down()
                await self._sync_journal()
                await asyncio.sleep(delay)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            if self.down_since is not None:
                log.warning("DB_RECOVERED", down_s=round(asyncio.get_running_loop().time() - self.down_since, 2),
                            queued=len(self.memory), journal_pending=self._journal_pending())
                self.down_since = None
                self.dead_letters.database_back()
            self.counters.applied += len(writes)
            return True

    def _went_down(self) -> None:
        if self.down_since is None:
            self.down_since = asyncio.get_running_loop().time()

    async def _refused(self, writes: list[Write], exc: Exception) -> bool:
        """False: closing with the database gone mid-split — the whole batch stays (replayed idempotently)."""
        if len(writes) > 1:
            self.counters.batches_split += 1
            log.warning("DB_BATCH_SPLIT", writes=len(writes), error_type=type(exc).__name__, error=error_text(exc)[:200])
            for write in writes:
                if not await self._apply_until_done([write]):
                    return False
            return True
        write = writes[0]
        self.counters.dead += 1
        if not await self.dead_letters.bury(str(write.__struct_config__.tag), getattr(write, "call_sid", ""),
                                            _encoder.encode(write), exc):
            self.counters.dead_journaled += 1
        return True

    async def _run(self) -> None:
        while not self.stopping:
            await self.wake.wait()
            self.wake.clear()
            await self._sync_journal()
            while not self.stopping:
                if self.dead_letters.due:  # at start, and when the database is back
                    await self.dead_letters.move()
                if self._journal_pending():
                    entry = self._next_journal_line()
                    if entry is None:
                        self.replayed_to = self.journal.seek(0, os.SEEK_END)  # a torn last line
                        continue
                    line, end = entry
                    try:
                        write = decode_write(line)
                    except msgspec.DecodeError:
                        self.counters.undecodable += 1
                        log.error("DB_JOURNAL_BAD_LINE", line=line[:200].decode("utf-8", "replace"))
                        self.replayed_to = end
                        continue
                    if not await self._apply_until_done([write]):
                        break
                    self.replayed_to = end
                    self.counters.replayed += 1
                    self._journal_done()
                elif self.memory:
                    batch = list(islice(self.memory, BATCH_MAX if self.apply_batch is not None else 1))
                    if not await self._apply_until_done(batch):
                        break
                    for write in batch:  # close() may have spilled the memory meanwhile
                        if self.memory and self.memory[0] is write:
                            self.memory.popleft()
                else:
                    break
            self.idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every write is applied (True), or `timeout_s` passes (False)."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self, timeout_s: float = 5.0) -> None:
        """Apply what can be applied within `timeout_s`; spill the rest to the journal for the next start."""
        await self.drain(timeout_s)
        await self._stop_task()
        if self.memory:
            log.warning("DB_QUEUE_SPILLED_AT_SHUTDOWN", writes=len(self.memory), journal=str(self.journal_path))
            self._spill_memory()
        if self.unsynced:
            os.fsync(self.journal.fileno())
        self.pending_at_close = self._journal_pending()
        self.journal.close()
        self.dead_letters.close()
        if not self.pending_at_close:
            self.journal_path.unlink(missing_ok=True)

    async def _stop_task(self) -> None:
        """The task stops between writes: a write in flight finishes (or fails) first. Cancelling it instead
        could be lost: Python 3.11's `asyncio.wait_for` returns the inner result when the cancellation meets
        an inner call that has just failed, swallowing the CancelledError — the retry loop of an unreachable
        database then went on for ever and close() with it (seen in CI and here: the journal test of
        tests/test_writequeue.py, and any worker's shutdown during an outage). So it is cancelled only if it
        has not stopped within STOP_WAIT_S (a write's own deadline is 10 s), and then not waited for."""
        task = self.task
        if task is None or task.done():
            return
        self.stopping = True
        self.wake.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if not done:
            log.error("DB_QUEUE_STOP_FORCED", waited_s=STOP_WAIT_S, queued=len(self.memory))
            task.cancel()
            return
        if not task.cancelled() and task.exception() is not None:
            log.error("DB_QUEUE_TASK_FAILED", error=repr(task.exception())[:200])

    def stats(self) -> dict[str, Any]:
        pending = self.pending_at_close if self.journal.closed else self._journal_pending()
        return {**msgspec.structs.asdict(self.counters), "queued": len(self.memory), "journal_pending": pending}
