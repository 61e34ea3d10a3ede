"""The control plane's LiveTable on a virtual (wall) clock: reports from two workers on two hosts."""
from __future__ import annotations

from actors.control_messages import CallClosed, CallOpened, CallRow, WorkerId, WorkerStats
from actors.cores.live_table import LiveTable

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
