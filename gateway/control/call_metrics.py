"""The call counters the gateway shows, and where each is shown: the one list of their key names.

A key is a CALL_METRICS key (the actors' counters, merged at the call's end) and, for a live call, a
counter of its children (CallInspection.counters). Each entry says whether it is summed into a
Prometheus counter over ended calls (gateway/control/prom.py), carried in the control plane's live
rows (gateway/control/reporter.py), and shown as a column and in the totals line of `kolbridge calls
live` (gateway/cli/control.py). `restarts` is the one row figure not read from the counters: the
reporter sums the children's restarts into it.
"""
from __future__ import annotations

from typing import NamedTuple


class Shown(NamedTuple):
    key: str
    counter: str = ""  # Prometheus: kolbridge_<counter>_total, summed over ended calls ("" = not counted)
    live: bool = False  # read from a live call's counters into its control-plane row
    column: str = ""  # the header of its column in `kolbridge calls live` ("" = no column)
    width: int = 0  # that column's width
    total: str = ""  # its label in the totals line of `kolbridge calls live` ("" = not totalled)


RESTARTS = "restarts"

SHOWN = (
    Shown("frames_in", "frames_in", True, "in", 9, "frames in"),
    Shown("frames_forwarded", "frames_forwarded", True, "fwd", 9),
    Shown("frames_dropped", "frames_dropped", True, "drop", 7, "dropped"),
    Shown("frames_sent", "", True, "sent", 9),
    Shown("underruns", "underruns", True, "undr", 5, "underruns"),
    Shown("barge_in_candidates", "barge_in_candidates", True, "cand", 5),
    Shown("barge_in_events", "barge_in_events", True, "cuts", 5, "cuts"),
    Shown("barge_in_rejected", "barge_in_rejected", True, "rej", 5),
    Shown("stt_filler_only_count", "fillers", True, "fill", 5),
    Shown(RESTARTS, "", False, "rst", 4),
    Shown("backchannels", "", True),
    Shown("echo_vetoes", "echo_vetoes", True),
    Shown("realtime_reconnects", "realtime_reconnects", True),
    Shown("jitter_need_ms", "", True),
    Shown("barge_in_by_articulation", "barge_in_by_articulation"),
    Shown("frames_unsent_at_end", "frames_unsent_at_end"),
)

COUNTED = {m.key: m.counter for m in SHOWN if m.counter}  # CALL_METRICS key → Prometheus counter name
ROW_KEYS = tuple(m.key for m in SHOWN if m.live)  # a live call's counters copied into its row
COLUMNS = tuple((m.key, m.width, m.column) for m in SHOWN if m.column)  # `calls live`: key, width, header
TOTALLED = tuple((m.key, m.total) for m in SHOWN if m.total)  # `calls live`: the totals line
