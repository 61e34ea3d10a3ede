"""bench/ws_impl.py still measures what it says: each side handles its load, for both implementations
(a tiny run; the figures themselves are bench/RESULTS.md's, not a test's). The counts allow for the
edges of the window (a peer's first messages before the measurement starts, a delta still in flight at
its end)."""
from __future__ import annotations

import math
from typing import Callable

import pytest

from bench.ws_impl import one_run

pytestmark = pytest.mark.realtime

CONNS, SECONDS = 3, 0.5


@pytest.mark.parametrize("impl", ["websockets", "picows"])
def test_both_sides_handle_their_load(impl: str, unused_tcp_port_factory: Callable[[], int]) -> None:
    most = 2 * CONNS * (math.ceil(SECONDS / 0.020) + 1)  # each media message received and answered
    server_us, server_messages = one_run("server", impl, CONNS, SECONDS, unused_tcp_port_factory())
    assert 0.8 * most <= server_messages <= most and server_us > 0
    most = 2 * CONNS * (math.ceil(SECONDS / 0.040) + 1)  # each append sent (both ends of the window) and its delta received
    client_us, client_messages = one_run("client", impl, CONNS, SECONDS, unused_tcp_port_factory())
    assert 0.8 * most <= client_messages <= most and client_us > 0
