from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from actors.settings import CallSettings


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
