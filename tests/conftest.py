from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import structlog

from actors.settings import CallSettings


def _a_database_per_xdist_worker() -> None:
    """The PostgreSQL tests drop and re-create their database's schema: under pytest-xdist each worker gets a
    database of its own (`<name>_gw0`, …, created on first use), so they never meet."""
    url, worker = os.environ.get("KOLBRIDGE_TEST_PG_URL", ""), os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker:
        return
    base, _, name = url.rpartition("/")
    own = f"{name}_{worker}"

    async def create_if_missing() -> None:
        import asyncpg
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", own):
                try:
                    await conn.execute(f'CREATE DATABASE "{own}"')
                except asyncpg.DuplicateDatabaseError:
                    pass  # the other group's worker of the same name created it first (scripts/test.sh)
        finally:
            await conn.close()

    asyncio.run(create_if_missing())
    os.environ["KOLBRIDGE_TEST_PG_URL"] = f"{base}/{own}"


_a_database_per_xdist_worker()

# Whole calls on the virtual clock (tests/virtual_time.py). Before moving the clock to the next timer the
# loop runs a few no-op cycles (select with no wait), so a chain of coroutines can set its own timers
# first; looptime's default of 42 cost a quarter of these tests' time in empty cycles, 5 is enough here.
VIRTUAL_CLOCK = pytest.mark.looptime(noop_cycles=5)

# The fuzzers' example count: 300 in the everyday suite; KOLBRIDGE_FUZZ_FULL=1 runs the full 10,000 each.
FUZZ_EXAMPLES = 10_000 if os.environ.get("KOLBRIDGE_FUZZ_FULL") == "1" else 300


def settings(call_id: str = "CA1", **kw: object) -> CallSettings:
    base: dict[str, object] = dict(call_id=call_id, stream_sid="MZ1", business_id="biz", language="he",
                                   instructions="be helpful", greeting="say hello")
    base.update(kw)
    return CallSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """CLI tests configure structlog onto pytest's captured stderr; never let that leak to the next test."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True, scope="session")
def _db_threads_visible_to_virtual_time() -> Iterator[None]:
    """aiosqlite's statements are seen as outside work by a loop on the virtual clock (tests/virtual_time.py);
    the wrapper asks the running loop, so on the wall clock it changes nothing."""
    from tests.virtual_time import track_aiosqlite
    with track_aiosqlite():
        yield
