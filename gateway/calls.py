"""A worker's live calls: how each starts from Twilio's `start` and how it ends, once.

Start: the business is read and the stream checked (gateway/call_setup.py), the call's CallIO is
built, its start is recorded, its actor tree spawned (the Realtime connection opens when the tree
asks) and it is counted. End — on `stop`, a dropped socket, leaving (gateway/leaving.py) or shutdown —
EndCall goes through the tree, the CALL_METRICS summary comes back; the caller's last audio gets its
chance to reach the Realtime service, and the record, the Prometheus counters, the control plane and
the business's post-call report get the call's metrics before both sockets close and its recording
is written. A call refused before it was served still leaves a record, started and ended at once.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

import structlog

from gateway.call import CallIO, CallServices
from gateway.call_setup import BusinessCache, prepare_call, refused
from gateway.config import AppConfig
from gateway.control import prom
from gateway.handoff.resume import resume_for, segment_of
from gateway.paths import recordings_dir
from gateway.recorder import CallRecorder
from gateway.runtime.engine import ActorEngine
from gateway.wire import TwilioStart
from storage.businesses import E164, BusinessView
from storage.calls import last_caller_language
from storage.writequeue import CallEndWrite, CallStartWrite, WriteQueue

log = structlog.get_logger("kolbridge.gateway")
SUMMARIES_KEPT = 200
RESUME_DRAIN_S = 0.5  # a segment back from a transfer waits this long at most for queued writes (the turns it reads)


class CallObserver(Protocol):
    """Told of every call's start and end (gateway/control/reporter.py's ControlReporter)."""

    def call_opened(self, call: CallIO) -> None: ...
    def call_closed(self, call_sid: str, reason: str, metrics: dict[str, int]) -> None: ...


class WorkerCalls:
    def __init__(self, config: AppConfig, engine: ActorEngine, writes: WriteQueue, worker: str,
                 businesses: BusinessCache, services: CallServices, observer: CallObserver | None,
                 live: dict[str, CallIO]) -> None:
        """`live`: the worker's live calls by sid, kept here (added at start, removed at end)."""
        self.config, self.engine, self.writes, self.worker = config, engine, writes, worker
        self.businesses, self.services, self.observer, self.live = businesses, services, observer, live
        self.summaries: deque[dict[str, Any]] = deque(maxlen=SUMMARIES_KEPT)  # recent calls, for the tests

    async def start(self, ws: Any, start: TwilioStart) -> CallIO | None:
        business_id = start.custom.get("business_id", "")
        business = await self.businesses.get(business_id) if business_id else None
        if refused(start, business, self.live, self.config.env.twilio_auth_token) or business is None:
            return None
        returning = await self._returning_language(business, start)
        if segment_of(start.custom) > 1:  # back from a transfer: this worker's writes of the call land first
            await self.writes.drain(RESUME_DRAIN_S)
        resume = await resume_for(self.businesses.sessions, start.call_sid, start.custom)
        settings, profile, prompt = prepare_call(start, business, self.config.file, returning, resume)
        log.info("CALL_STARTED", call_sid=start.call_sid, stream_sid=start.stream_sid, business_id=business.id,
                 language=business.language, caller_languages=",".join(settings.caller_languages.languages))
        log.info("PROMPT_LAYERS", call_sid=start.call_sid, **prompt.layer_hashes)
        if business.overrides.get("audio"):
            log.warning("AUDIO_MODE_OVERRIDE", call_sid=start.call_sid, business_id=business.id,
                        **business.overrides["audio"])
        recording = start.call_sid if profile.segment < 2 else f"{start.call_sid}.{profile.segment}"  # one file per segment
        recorder = CallRecorder(recordings_dir(self.config), recording) if settings.audio.record else None
        call = CallIO(ws, settings, profile, self.services, recorder)
        self.live[call.call_id] = call
        self.writes.put(CallStartWrite(start.call_sid, start.stream_sid, business.id, dict(prompt.layer_hashes),
                                       profile.caller, start.custom.get("to", ""), self.worker,
                                       settings.first_caller_language, profile.segment,
                                       start.custom.get("resume_reason", "")))
        self.engine.start_call(settings, call, call.opened_at)
        prom.call_started(business.id)
        if self.observer is not None:
            self.observer.call_opened(call)
        return call

    async def _returning_language(self, business: BusinessView, start: TwilioStart) -> str:
        """A caller who spoke another of the business's languages last time is greeted in it (a database
        that cannot answer costs nothing but that: the call starts in the business's first language)."""
        if len(business.languages) < 2:
            return ""
        caller = start.custom.get("from", "")
        if not E164.match(caller):  # a withheld number ("anonymous", a placeholder) is nobody's in particular
            return ""
        try:
            language = await asyncio.wait_for(last_caller_language(self.businesses.sessions, business.id, caller), 0.5)
        except Exception as exc:  # noqa: BLE001 — unreachable, slow: the call goes on in the first language
            log.warning("CALLER_LANGUAGE_LOOKUP_FAILED", call_sid=start.call_sid, error=repr(exc)[:200])
            return ""
        if language and language != business.languages[0]:
            log.info("CALLER_LANGUAGE_RETURNING", call_sid=start.call_sid, language=language)
        return language if language in business.languages[1:] else ""

    def record_unserved(self, call_sid: str, stream_sid: str, business_id: str, from_number: str, to_number: str,
                        reason: str, fallback: str = "") -> None:
        """The record of a call that was never served: started and ended at once, with the reason."""
        self.writes.put(CallStartWrite(call_sid, stream_sid, business_id, {}, from_number, to_number, self.worker))
        self.writes.put(CallEndWrite(call_sid, reason, {}, 0, fallback=fallback))

    async def end(self, call_sid: str, reason: str, fallback: str = "", after: str = "") -> None:
        """End our side of a live call (a second end of the same call does nothing)."""
        call = self.live.pop(call_sid, None)
        if call is None:
            return
        self.engine.tell(call.call_id, call.end_message(reason))
        metrics, series = await self._final_metrics(call)
        self.summaries.append({"call_sid": call.call_id, "reason": reason, "metrics": metrics, "series": series,
                               "restarts": call.restarts, "fallback": fallback})
        self.writes.put(CallEndWrite(call.call_id, reason, metrics, call.restarts, series, fallback, after,
                                     call.profile.segment))
        log.info("CALL_ENDED", call_sid=call.call_id, reason=reason, fallback=fallback)
        language = call.summary.caller_language if call.summary else call.settings.language
        prom.call_ended(call.settings.business_id, reason, {**metrics, "child_restarts": call.restarts}, series, language)
        if self.observer is not None:
            self.observer.call_closed(call.call_id, reason, metrics)
        self.services.actions.post_call_report(call, reason, metrics)
        await call.close()
        if call.recorder is not None:
            seconds = await asyncio.wrap_future(call.recorder.finish())
            if seconds is not None:
                log.info("RECORDING_SAVED", call_sid=call.call_id, path=str(call.recorder.path), seconds=seconds)

    @staticmethod
    async def _final_metrics(call: CallIO) -> tuple[dict[str, int], dict[str, list[int]]]:
        """The summary's metrics and series, with the caller frames that never reached the Realtime service."""
        summary = call.summary
        unsent, why = await call.deliver_caller_audio()  # the caller's last frames, before the record is written
        metrics = dict(summary.metrics) if summary else {}
        if unsent:
            metrics["frames_unsent_at_end"] = unsent
            log.warning("CALLER_AUDIO_UNSENT_AT_END", call_sid=call.call_id, frames=unsent, reason=why)
        return metrics, dict(summary.series) if summary else {}
