"""The control plane's LiveTable on a virtual (wall) clock: reports from two workers on two hosts."""
from __future__ import annotations

import asyncio

import msgspec

from actors.control_messages import CallClosed, CallOpened, CallRow, WorkerId, WorkerStats
from actors.cores.live_table import LiveTable
from gateway.control.reporter import UTTERANCES_PER_REPORT, ControlReporter
from tests.conftest import VIRTUAL_CLOCK, settings

A = WorkerId("host-a:101", "host-a", 101)
B = WorkerId("host-b:202", "host-b", 202)


def row(sid: str, age: float, frames: int = 0) -> CallRow:
    return CallRow(sid, "garage", "active", age, {"frames_in": frames, "underruns": 0}, "duck", "connected",
                   {"rx": "addr-1"}, {"rx": 0})


def test_calls_of_every_worker_are_listed_oldest_first_and_ended_ones_summarised() -> None:
    table = LiveTable()
    table.handle(CallOpened(A, "CA1", "garage", 1000.0), 1000.0)
    table.handle(CallOpened(B, "CA2", "clinic", 1001.0), 1001.0)
    table.handle(WorkerStats(A, (row("CA1", 2.0, 100),), 0, 1002.0), 1002.0)
    table.handle(WorkerStats(B, (row("CA2", 1.0, 50),), 3, 1002.0), 1002.0)
    live = table.live(1002.0)
    assert [r["call_sid"] for r in live] == ["CA1", "CA2"]
    assert live[0]["worker"] == "host-a:101" and live[0]["frames_in"] == 100 and live[0]["stale"] is False
    assert table.owner("CA2") == B
    detail = table.detail("CA1", 1002.0)
    assert detail is not None and detail["children"] == {"rx": "addr-1"}
    table.handle(CallClosed(A, "CA1", "twilio_stop", {"frames_in": 120}, 1003.0), 1003.0)
    assert [r["call_sid"] for r in table.live(1003.0)] == ["CA2"]
    assert table.ended["CA1"]["reason"] == "twilio_stop" and table.ended["CA1"]["business_id"] == "garage"
    workers = {w["worker"]: w for w in table.worker_rows(1003.0)}
    assert workers["host-b:202"]["reports_dropped"] == 3 and workers["host-b:202"]["calls"] == 1


def test_a_call_its_worker_stops_reporting_is_dropped_and_an_admin_restart_is_healed_by_the_rows() -> None:
    table = LiveTable()
    # the admin restarted mid-call: it never saw CallOpened, the stats row brings the call back
    table.handle(WorkerStats(A, (row("CA1", 30.0), row("CA3", 5.0)), 0, 2000.0), 2000.0)
    assert {r["call_sid"] for r in table.live(2000.0)} == {"CA1", "CA3"}
    assert table.live(2000.0)[0]["age_s"] == 30.0
    # the CallClosed of CA3 was lost with the link: the next stats row without it ends it
    table.handle(WorkerStats(A, (row("CA1", 31.0),), 1, 2001.0), 2001.0)
    assert [r["call_sid"] for r in table.live(2001.0)] == ["CA1"]


def test_a_silent_worker_is_marked_stale_then_forgotten() -> None:
    table = LiveTable(stale_after_s=5.0, forget_after_s=60.0)
    table.handle(WorkerStats(A, (row("CA1", 1.0),), 0, 3000.0), 3000.0)
    table.handle(WorkerStats(B, (), 0, 3010.0), 3010.0)
    assert table.live(3010.0)[0]["stale"] is True
    table.handle(WorkerStats(B, (), 0, 3070.0), 3070.0)
    assert table.live(3070.0) == [] and [w["worker"] for w in table.worker_rows(3070.0)] == ["host-b:202"]


def test_ended_summaries_are_bounded() -> None:
    table = LiveTable(ended_kept=3)
    for k in range(5):
        table.handle(CallClosed(A, f"CA{k}", "twilio_stop", {}, 10.0 + k), 10.0 + k)
    assert list(table.ended) == ["CA2", "CA3", "CA4"]


def said(seq: int, text: str, label: str = "turn", role: str = "caller") -> dict[str, object]:
    return {"seq": seq, "role": role, "text": text, "label": label, "start_ms": 1000 * seq, "end_ms": 1000 * seq + 500,
            "interrupted": False, "heard_ms": -1}


def test_a_live_calls_decided_utterances_build_its_transcript_once_each_in_order() -> None:
    table = LiveTable()
    table.handle(CallOpened(A, "CA1", "garage", 1000.0), 1000.0)
    first = msgspec.structs.replace(row("CA1", 1.0), utterances=(said(1, "שלום", role="assistant"), said(2, "אממ", "filler")),
                                    caller="+972501234567", caller_language="he", speaking="caller")
    table.handle(WorkerStats(A, (first,), 0, 1001.0), 1001.0)
    table.handle(WorkerStats(A, (first,), 0, 1001.5), 1001.5)  # the same report twice adds nothing
    later = msgspec.structs.replace(first, utterances=(said(3, "לא"),), speaking="ai")
    table.handle(WorkerStats(A, (later,), 0, 1002.0), 1002.0)
    live = table.live(1002.0)[0]
    assert (live["caller"], live["caller_language"], live["speaking"], live["utterances"]) == ("+972501234567", "he", "ai", 3)
    detail = table.detail("CA1", 1002.0)
    assert detail is not None and [u["text"] for u in detail["transcript"]] == ["שלום", "אממ", "לא"]  # type: ignore[attr-defined]
    newer = table.detail("CA1", 1002.0, after_seq=2)
    assert newer is not None and newer["transcript"] == [said(3, "לא")]


async def test_the_reporter_sends_each_utterance_once_and_a_burst_over_several_reports() -> None:
    calls = {"CA1": FakeLiveCall([said(k, f"utterance {k}") for k in range(1, 31)])}
    reporter = ControlReporter(calls, FakeEngine(), lambda coro: coro.close(), lambda sid, action: None, port=1)
    base = CallRow("CA1", "garage", "active", 1.0)
    first, second, third = (reporter._with_utterances(base) for _ in range(3))
    assert [u["seq"] for u in first.utterances] == list(range(1, UTTERANCES_PER_REPORT + 1))
    assert [u["seq"] for u in second.utterances] == list(range(UTTERANCES_PER_REPORT + 1, 31))
    assert third.utterances == () and third.caller == "+972501234567" and third.caller_language == "ar"


class FakeLiveCall:
    def __init__(self, decided: list[dict[str, object]]) -> None:
        self.call_id, self.opened_at, self.frames_in = "CA1", 0.0, 0
        self.settings = settings("CA1")
        self.decided = decided
        self.caller_language = "ar"
        self.caller = "+972501234567"


class FakeEngine:
    def tell(self, call_id: str, msg: object) -> bool:
        return True

    def inspect(self, call_id: str) -> None:
        return None


async def test_after_a_lost_report_the_utterances_are_sent_again_and_the_table_has_no_hole() -> None:
    calls = {"CA1": FakeLiveCall([said(k, f"utterance {k}") for k in range(1, 4)])}
    reporter = ControlReporter(calls, FakeEngine(), lambda coro: coro.close(), lambda sid, action: None, port=1)
    reporter.rows["CA1"] = CallRow("CA1", "garage", "active", 1.0)
    table = LiveTable()
    lost = reporter._report(["CA1"])  # carries 1–3; the link's queue was full: dropped
    assert [u["seq"] for u in lost.rows[0].utterances] == [1, 2, 3]
    reporter.link.dropped += 1
    calls["CA1"].decided.append(said(4, "utterance 4"))
    again = reporter._report(["CA1"])
    assert [u["seq"] for u in again.rows[0].utterances] == [1, 2, 3, 4]
    table.handle(again, 1000.0)
    detail = table.detail("CA1", 1000.0)
    assert detail is not None and [u["seq"] for u in detail["transcript"]] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert reporter._report(["CA1"]).rows[0].utterances == ()  # nothing new, nothing lost: nothing sent


class CapturingLink:
    """The control link's face the reporter uses: up, counting drops, keeping what was reported (with when)."""

    def __init__(self) -> None:
        self.up, self.dropped = True, 0
        self.sent: list[tuple[float, object]] = []

    def report(self, msg: object) -> None:
        self.sent.append((asyncio.get_running_loop().time(), msg))


@VIRTUAL_CLOCK
async def test_a_decided_utterance_is_reported_within_a_quarter_second_and_reports_stay_bounded() -> None:
    """Rows go every second; a decided utterance goes at the next 100 ms step (at most one report per 0.25 s),
    so the console shows a caller's words well inside its 2 s, and a talkative worker sends ≤ 4 reports a second."""
    calls = {"CA1": FakeLiveCall([])}
    tasks: list[asyncio.Task[None]] = []
    reporter = ControlReporter(calls, FakeEngine(), lambda coro: tasks.append(asyncio.ensure_future(coro)),
                               lambda sid, action: None, port=1)
    link = CapturingLink()
    reporter.link = link  # type: ignore[assignment]
    reporter.background(reporter._stats())
    loop = asyncio.get_running_loop()
    await asyncio.sleep(3.05)
    quiet = [at for at, _ in link.sent]
    assert len(quiet) == 3  # nothing said: one report a second
    decided_at = loop.time()
    calls["CA1"].decided.append(said(1, "שלום"))
    await asyncio.sleep(0.3)
    [(sent_at, report)] = [(at, msg) for at, msg in link.sent if at > decided_at]
    assert sent_at - decided_at <= 0.25 and [u["seq"] for u in report.rows[0].utterances] == [1]  # type: ignore[attr-defined]
    for k in range(2, 42):  # a caller deciding an utterance every 50 ms for 2 s
        calls["CA1"].decided.append(said(k, f"word {k}"))
        await asyncio.sleep(0.05)
    busy = [at for at, _ in link.sent if at > decided_at + 0.3]
    assert len(busy) <= 2 / 0.25 + 1, len(busy)
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
