"""`kolbridge db dead-letters [--json] [--retry]`: the writes the database refused for a reason of their own,
set aside by the write queue (storage/deadletters.py); `--retry` re-applies each once the cause is fixed."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.calls import apply_write
from storage.deadletters import list_dead_letters, retry_dead_letters
from storage.models import DeadLetter
from storage.writequeue import decode_write


def _letter_dict(letter: DeadLetter) -> dict[str, Any]:
    return {"id": letter.id, "worker": letter.worker, "kind": letter.kind, "call_sid": letter.call_sid,
            "write": json.loads(letter.write), "error_type": letter.error_type, "error": letter.error,
            "created_at": letter.created_at.isoformat() if letter.created_at else None,
            "retried_at": letter.retried_at.isoformat() if letter.retried_at else None, "attempts": letter.attempts}


async def list_letters(sessions: async_sessionmaker[AsyncSession], as_json: bool) -> str:
    letters = await list_dead_letters(sessions)
    if as_json:
        return json.dumps([_letter_dict(letter) for letter in letters], ensure_ascii=False, indent=2)
    return "\n".join(f"{letter.id}\t{letter.created_at:%Y-%m-%d %H:%M:%S}\t{letter.kind}\t{letter.call_sid or '-'}\t"
                     f"attempts={letter.attempts}\t{letter.error_type}: {letter.error[:160]}" for letter in letters) \
        or "no dead letters"


async def retry_letters(sessions: async_sessionmaker[AsyncSession], as_json: bool) -> tuple[int, str]:
    """Each letter re-applied: (0, report) when every one landed, else (1, report)."""
    async def reapply(encoded_write: str) -> None:
        await apply_write(sessions, decode_write(encoded_write))

    outcomes = await retry_dead_letters(sessions, reapply)
    failed = sum(1 for _, error in outcomes if error)
    if as_json:
        text = json.dumps([{"id": letter.id, "kind": letter.kind, "call_sid": letter.call_sid, "landed": not error,
                            "error": error} for letter, error in outcomes], ensure_ascii=False, indent=2)
    else:
        lines = [f"{letter.id}\t{letter.kind}\t{letter.call_sid or '-'}\t{f'still dead: {error[:160]}' if error else 'landed'}"
                 for letter, error in outcomes]
        text = "\n".join([*lines, f"{len(outcomes) - failed} landed, {failed} still dead"])
    return (1 if failed else 0), text
