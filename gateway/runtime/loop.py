"""Which asyncio event loop a worker runs: the standard one, or uvloop (libuv; the per-frame path is
socket reads and writes on hundreds of connections, where the loop's own cost is a visible share).

uvloop is a dependency on the platforms it supports; `[server] event_loop = "asyncio"` opts out, and a
missing uvloop falls back to asyncio with a warning. Logged once per worker as EVENT_LOOP.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from importlib import metadata
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("kolbridge.loop")
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], which: str) -> T:
    """asyncio.run(main) on the chosen loop."""
    if which == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("EVENT_LOOP", loop="asyncio", wanted="uvloop", reason="uvloop is not installed")
        else:
            log.info("EVENT_LOOP", loop="uvloop", version=metadata.version("uvloop"))
            return uvloop.run(main)
    else:
        log.info("EVENT_LOOP", loop="asyncio")
    return asyncio.run(main)
