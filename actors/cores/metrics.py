"""MetricsCollector core — merges every child's counters into one CALL_METRICS summary.

Theory of operation: children keep their own counters (they are part of their restorable state) and
report them when asked (CollectCounters at call end, or an inspection). The collector keeps the
latest report per role; the summary is their union plus derived figures. In simple mode any dropped
caller frame is a defect, so the summary is logged at WARNING when frames_dropped > 0.
The caller's language is no counter: the collector follows CallerLanguageChanged and the summary
names the language the caller spoke last (`caller_language`) and the sequence (`caller_languages`).
"""
from __future__ import annotations

import msgspec

from actors.language_messages import CallerLanguageChanged
from actors.lifecycle_messages import LogLine, SummarizeCall
from actors.messages import CallSummary, CounterReport

SUMMARY_KEYS = ("stt_utterances", "empty", "short", "filler_only", "frames_in", "frames_forwarded",
                "frames_dropped", "barge_in_events", "barge_in_candidates", "barge_in_rejected")


class MetricsState(msgspec.Struct):
    call_id: str
    started_at: float = 0.0
    reports: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    series: dict[str, list[int]] = msgspec.field(default_factory=dict)
    languages: list[str] = msgspec.field(default_factory=list)  # the caller's, in the order spoken (switches)


class MetricsCore:
    def __init__(self, state: MetricsState, simple_mode: bool = True, first_language: str = "") -> None:
        self.s = state
        self.simple_mode = simple_mode
        if not state.languages and first_language:
            state.languages.append(first_language)

    def snapshot(self) -> MetricsState:
        return self.s

    def handle(self, msg: object, now: float) -> list[object]:
        if isinstance(msg, CounterReport):
            self.s.reports[msg.role] = dict(msg.counters)
            self.s.series.update({k: list(v) for k, v in msg.series.items()})
        elif isinstance(msg, SummarizeCall):
            return self.summarize(msg.reason, now)
        elif isinstance(msg, CallerLanguageChanged):
            self.s.languages = [*self.s.languages, msg.to_language][-32:]
        return []

    def counters(self) -> dict[str, int]:
        return {"roles_reported": len(self.s.reports)}

    def merged(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for counters in self.s.reports.values():
            for key, value in counters.items():
                merged[key] = merged.get(key, 0) + value
        merged["stt_utterances"] = merged.get("stt_utterances_total", 0)
        merged["empty"] = merged.get("stt_empty_count", 0)
        merged["short"] = merged.get("stt_very_short_count", 0)
        merged["filler_only"] = merged.get("stt_filler_only_count", 0)
        merged.setdefault("barge_in_events", 0)
        merged["frames_dropped"] = merged.get("frames_dropped", 0) + max(
            0, merged.get("frames_in", 0) - merged.get("frames_forwarded", 0))
        return merged

    def summarize(self, reason: str, now: float) -> list[object]:
        m = self.merged()
        m["call_duration_ms"] = int(round((now - self.s.started_at) * 1000)) if self.s.started_at else 0
        level = "warning" if self.simple_mode and m["frames_dropped"] > 0 else "info"
        fields: dict[str, object] = {k: m.get(k, 0) for k in SUMMARY_KEYS}
        language = self.s.languages[-1] if self.s.languages else ""
        fields.update({"call_sid": self.s.call_id, "reason": reason, "caller_language": language,
                       "caller_languages": ">".join(self.s.languages), "all": m, "series": self.s.series})
        summary = CallSummary(self.s.call_id, reason, m, dict(self.s.series), language)
        return [LogLine("CALL_METRICS", level, fields), summary]
