"""Admission (gateway/admission.py): the pure rule, then a full worker end to end — /voice answers the
business's fallback, logged, counted and recorded; a stream beyond the cap is refused; room again, routed."""
from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from gateway.admission import SATURATION_WINDOW, Shed, admit, recent_lateness_ms
from gateway.config import FileConfig, ServerSettings
from sim.twilio_emulator import EmulatedCall, Step
from storage.calls import get_call
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack
from tests.test_e2e import http
from tests.test_faults_e2e import _script, ended, wait_until

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK


def test_the_cap_and_saturation_each_refuse_and_nothing_else_does() -> None:
    assert admit(9, 10, 5.0, 40.0) is Shed.NO
    assert admit(10, 10, 5.0, 40.0) is Shed.MAX_CALLS
    assert admit(10_000, 0, 5.0, 40.0) is Shed.NO  # no cap
    assert admit(3, 10, 40.0, 40.0) is Shed.SATURATED
    assert admit(3, 10, 400.0, 0.0) is Shed.NO  # saturation check off


def test_one_late_tick_is_not_saturation_a_loop_that_stays_behind_is() -> None:
    steady = [1.0] * SATURATION_WINDOW
    assert recent_lateness_ms(steady[:-1] + [250.0]) == 1.0  # a collection, a call start
    assert recent_lateness_ms(steady[:40] + [60.0] * 10) == 60.0  # a tenth of the last second that late
    assert recent_lateness_ms([60.0] * 200 + steady) == 1.0  # recovered: only the last second counts
    assert recent_lateness_ms([90.0] * 10) == 0.0  # too few ticks to judge


def voice(call_sid: str) -> bytes:
    form = f"CallSid={call_sid}&From=%2B972501234567&To=%2B97235550123".encode()
    return (b"POST /voice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)


def shed_count(reason: str) -> float:
    return REGISTRY.get_sample_value("kolbridge_calls_shed_total", {"business": "demo-garage", "reason": reason}) or 0.0


async def test_a_full_worker_sends_new_calls_to_the_fallback_and_routes_again_when_there_is_room(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect

    config = FileConfig(server=ServerSettings(max_calls=1))
    steps = [Step("wait_turns", 1), Step("pause", 1.0), Step("hangup")]
    async with running_stack(tmp_path, _script(4.0), file_config=config) as stack:
        first = asyncio.create_task(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "1" * 32, steps).run())
        assert await wait_until(lambda: bool(stack.app.calls), 5)
        before = shed_count("max_calls")
        status, body = await http(stack.port, voice("CA" + "2" * 32))
        assert status == 200 and "<Connect" not in body and "<Say" in body  # the business's fallback, at once
        assert shed_count("max_calls") == before + 1
        extra = await connect(stack.stream_url)  # a stream /voice did not route: the cap holds there too
        await asyncio.wait_for(extra.wait_closed(), 5)
        assert extra.close_code == 1013
        report = await asyncio.wait_for(first, 30)  # the live call was never disturbed
        assert report.frames_received > 0 and report.underruns == 0
        await ended(stack)
        row = await get_call(stack.app.sessions, "CA" + "2" * 32)
        status, body = await http(stack.port, voice("CA" + "3" * 32))  # room again
        assert status == 200 and "<Connect" in body
    assert row is not None and row.end_reason == "shed_max_calls" and row.fallback.endswith(":voice")


async def test_a_saturated_worker_sheds_at_voice_until_its_ticker_recovers(tmp_path: Path) -> None:
    steps = [Step("wait_turns", 1), Step("hangup")]
    async with running_stack(tmp_path, _script(4.0)) as stack:  # shipped defaults: shed at 40 ms, no cap
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "4" * 32, steps).run(), 30)
        assert report.frames_received > 0
        await ended(stack)
        before = shed_count("saturated")
        stack.app.ticker.stats.late_ms.extend([60.0] * SATURATION_WINDOW)  # a second of ticks three frames late
        status, body = await http(stack.port, voice("CA" + "5" * 32))
        assert status == 200 and "<Connect" not in body
        assert shed_count("saturated") == before + 1
        assert await wait_until(lambda: recent_lateness_ms(stack.app.ticker.stats.late_ms) < 40.0, 5)  # real ticks again
        status, body = await http(stack.port, voice("CA" + "6" * 32))
        assert status == 200 and "<Connect" in body
        assert await stack.app.writes.drain(10)
        row = await get_call(stack.app.sessions, "CA" + "5" * 32)
    assert row is not None and row.end_reason == "shed_saturated"
