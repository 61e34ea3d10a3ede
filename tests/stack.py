"""A whole stack on loopback for end-to-end tests (the demo's offline stack with a test database)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

from gateway.cli.demo import DEMO_BUSINESS, OfflineStack, offline_stack
from gateway.config import FileConfig
from sim.fake_realtime import FakeScript


@contextlib.asynccontextmanager
async def running_stack(tmp: Path, script: FakeScript | None = None, env: dict[str, str] | None = None,
                        file_config: FileConfig | None = None,
                        business_toml: str = DEMO_BUSINESS) -> AsyncIterator[OfflineStack]:
    async with offline_stack(file_config or FileConfig(), tmp, script or FakeScript(), business_toml, env=env,
                             db_name="kb.db") as stack:
        yield stack
