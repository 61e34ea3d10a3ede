"""App: one worker's state — config, actor engine, ticker, database, live calls — and call start/end.

A call starts on Twilio's `start` event: the business named by `customParameters.business_id` is
read (cached briefly, never per frame), its prompt is built from the layer files, the call's actor
tree is spawned and its Realtime connection opened. It ends on `stop`, a dropped socket, the
business's fallback when no Realtime session can be had, or shutdown: EndCall goes through the tree,
the CALL_METRICS summary comes back and is saved. Every database write goes through the worker's
ordered write queue (storage/writequeue.py); live calls send a heartbeat, and calls whose worker is
gone are closed as `worker_lost` at start-up and periodically.
"""
from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from actors.agent_messages import LeaveCall
from actors.ingress_messages import Tick
from actors.messages import Utterance
from actors.settings import CallSettings
from gateway import actions
from gateway.admission import Shed, admit, recent_lateness_ms
from gateway.agent import agent_for, agent_spec
from gateway.call import CallIO
from gateway.config import AppConfig
from gateway.config.overrides import audio_for, barge_in_for, facts_for, fallback_for, realtime_for, vad_for
from gateway.control import prom
from gateway.control.reporter import ControlReporter
from gateway.fallback import FallbackSettings, TwilioRest, fallback_twiml, hangup_twiml
from gateway.http_tools import TenantHttp
from gateway.prewarm import Prewarmer, route_is_valid
from gateway.recorder import CallRecorder
from gateway.runtime.engine import ActorEngine
from gateway.runtime.gcwatch import GcWatch
from gateway.runtime.ticker import Ticker
from gateway.webhooks import WebhookDeliverer
from gateway.wire import TwilioStart
from prompts.builder import build_prompt
from storage.businesses import BusinessView, business_version, get_business
from storage.calls import after_twiml, apply_write, apply_writes, close_lost_calls
from storage.db import sqlite_file
from storage.models import utcnow
from storage.writequeue import CallEndWrite, CallStartWrite, HeartbeatWrite, UtteranceWrite, WriteQueue

log = structlog.get_logger("kolbridge.gateway")


def beside_database(database_url: str, name: str) -> Path:
    """Next to the SQLite file, else in the working directory (the journal, the recordings)."""
    database = sqlite_file(database_url)
    return (database.resolve().parent if database is not None else Path.cwd()) / name


def recordings_dir(config: AppConfig) -> Path:
    server = config.file.server
    return Path(server.recordings_dir) if server.recordings_dir else beside_database(config.env.database_url, "recordings")
BUSINESS_TTL_S = 30.0
SUMMARIES_KEPT = 200


def _prewarm(client: AsyncOpenAI) -> None:
    """Import what the first call would otherwise import on the event loop (measured: a 196 ms stall of
    the 20 ms ticker at the first call's Realtime connect)."""
    import openai.types.realtime  # noqa: F401
    from openai.lib import _websocket  # noqa: F401
    from openai.resources.realtime import realtime  # noqa: F401

    client.realtime  # noqa: B018 — builds the lazily created resource


class App:
    def __init__(self, config: AppConfig, db: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.config = config
        self.db = db
        self.sessions = sessions
        self.engine = ActorEngine()
        self.ticker = Ticker(self._tick, config.file.audio.frame_pacing_ms / 1000.0)
        self.gc_watch = GcWatch()
        self.openai = AsyncOpenAI(api_key=config.env.openai_api_key or "sk-unset",
                                  websocket_base_url=config.env.realtime_url)
        self.calls: dict[str, CallIO] = {}
        self.business_cache: dict[str, tuple[float, BusinessView | None, str | None]] = {}
        self.summaries: deque[dict[str, Any]] = deque(maxlen=SUMMARIES_KEPT)  # recent calls, for /healthz & tests
        self.twilio_decode_errors = 0
        self._ticker_task: asyncio.Task[None] | None = None
        self.prewarmer = Prewarmer(self.connect_realtime, config.file.realtime.connect_budget_s + 4.0)
        self._pending: set[asyncio.Task[Any]] = set()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        server = config.file.server
        journal = Path(server.journal_dir) if server.journal_dir else beside_database(config.env.database_url, "journal")
        self.writes = WriteQueue(lambda write: apply_write(sessions, write), journal, server.db_queue_max,
                                 apply_batch=lambda writes: apply_writes(sessions, writes))
        env = config.env
        self.twilio_rest: TwilioRest | None = None
        if env.twilio_account_sid and env.twilio_api_key and env.twilio_api_secret:
            self.twilio_rest = TwilioRest(env.twilio_account_sid, env.twilio_api_secret, env.twilio_api_url,
                                          env.twilio_api_key)
        elif env.twilio_account_sid and env.twilio_auth_token:
            self.twilio_rest = TwilioRest(env.twilio_account_sid, env.twilio_auth_token, env.twilio_api_url)
        # call sid → TwiML for the stream's action URL, until Twilio asks (bounded: with REST it never does;
        # the call's record holds the same TwiML for any worker)
        self.after_stream: dict[str, str] = {}
        self.draining = False
        self.drain_deadline = 0.0
        self.pending_streams = 0
        self.refused_streams = 0
        self.tenant_http = TenantHttp(config.file.tools)
        self.webhooks = WebhookDeliverer(self)
        self.control: ControlReporter | None = None

    def start(self) -> None:
        _prewarm(self.openai)
        self.gc_watch.install(tune=self.config.file.server.gc_tuning)
        self._ticker_task = asyncio.create_task(self.ticker.run(), name="ticker")
        self.writes.start()
        self.background(self._housekeeping())
        self.background(self.webhooks.run())
        control = self.config.file.control
        if control.enabled:
            self.control = ControlReporter(self.calls, self.engine, self.background, self._admin_hangup,
                                           control.admin_port, control.stats_every_s)
            self.control.start()
        if self.twilio_rest is None:
            log.warning("FALLBACK_WITHOUT_REST", detail="TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN (or TWILIO_API_KEY/SECRET) not set: when the AI "
                        "is unavailable the stream is closed and Twilio fetches the fallback TwiML from the "
                        "<Connect action> URL (/stream-ended); a call whose TwiML lacks it is hung up. The agent's end_call and "
                        "transfer_to_human take the same path: the stream is closed once the last words played and "
                        "Twilio fetches the hang-up or <Dial> from the action URL")
        policy = self.config.file.tools
        if policy.allow_private_hosts or policy.allow_http:
            log.warning("TENANT_URL_POLICY_RELAXED", allow_private_hosts=policy.allow_private_hosts,
                        allow_http=policy.allow_http, detail="business tools and webhooks may reach local/plain-http "
                        "addresses: for tests and the offline demo only")
        gc.collect()
        gc.freeze()  # start-up objects never scanned again: keeps collector pauses off the 20 ms clock

    def _admin_hangup(self, call_sid: str) -> None:
        """`kolbridge calls hangup`: hang up as the agent's end_call does (REST or the action URL)."""
        call = self.calls.get(call_sid)
        if call is not None:
            self.background(actions.leave(self, call, LeaveCall(
                call_sid, "hangup", "admin_hangup", "an operator hung up (kolbridge calls hangup)")))

    async def connect_realtime(self, model: str) -> Any:
        """The one way a Realtime connection is opened (the pre-opener and every call attempt); the
        caller bounds it with its own timeout."""
        return await self.openai.realtime.connect(model=model).enter()

    async def _housekeeping(self) -> None:
        """Heartbeat of live calls (with last known metrics) and the worker_lost sweep."""
        server = self.config.file.server
        next_sweep = 0.0
        while True:
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + server.worker_lost_after_s / 2
                await self.sweep_lost_calls()
            if self.calls:
                self.writes.put(HeartbeatWrite(self.worker, {sid: call.live_metrics() for sid, call in self.calls.items()}))
            recent = sorted(self.ticker.stats.late_ms[-3000:])  # the last minute of 20 ms ticks
            if recent:
                prom.ticker_lateness(recent[min(len(recent) - 1, int(len(recent) * 0.99))])
            await asyncio.sleep(server.heartbeat_s)

    async def sweep_lost_calls(self, dead_workers: set[str] | None = None) -> list[str]:
        stale = utcnow() - timedelta(seconds=self.config.file.server.worker_lost_after_s)
        try:
            closed = await close_lost_calls(self.sessions, stale, dead_workers or set())
        except Exception as exc:  # noqa: BLE001 — the database may be down: the next sweep tries again
            log.warning("WORKER_LOST_SWEEP_FAILED", error=str(exc)[:200], exc_info=True)
            return []
        if closed:
            log.warning("CALLS_CLOSED_WORKER_LOST", calls=closed)
        return closed

    def _tick(self, tick: Tick) -> None:
        if self.engine.supervisors:
            self.engine.tell_all(tick)

    async def business(self, business_id: str) -> BusinessView | None:
        """Read once per call start, never per frame: within the TTL the cached row is used as long as
        its `updated_at` is unchanged, so `kolbridge business import` (any process) takes effect at the
        next call."""
        cached = self.business_cache.get(business_id)
        version = await business_version(self.sessions, business_id)
        if cached and cached[2] == version and time.monotonic() - cached[0] < BUSINESS_TTL_S:
            return cached[1]
        view = await get_business(self.sessions, business_id) if version is not None else None
        self.business_cache[business_id] = (time.monotonic(), view, version)
        return view

    async def start_call(self, ws: Any, start: TwilioStart) -> CallIO | None:
        business_id = start.custom.get("business_id", "")
        business = await self.business(business_id) if business_id else None
        if business is None or not business.active:
            log.warning("CALL_REJECTED", call_sid=start.call_sid, business_id=business_id,
                        reason="unknown business" if business is None else "business inactive")
            return None
        if start.call_sid in self.calls:
            log.warning("CALL_REJECTED", call_sid=start.call_sid, reason="duplicate call sid")
            return None
        token = self.config.env.twilio_auth_token
        if token and not route_is_valid(token, start.call_sid, business_id, start.custom.get("route_sig", "")):
            log.warning("CALL_REJECTED", call_sid=start.call_sid, business_id=business_id,
                        reason="business not routed by the signed /voice webhook")
            return None
        prompt = build_prompt(facts_for(business))
        spec = agent_spec(business)
        f = self.config.file
        settings = CallSettings(
            call_id=start.call_sid, stream_sid=start.stream_sid, business_id=business.id,
            language=business.language, instructions=prompt.instructions, greeting=prompt.greeting_instructions,
            audio=audio_for(f.audio, business), tx=f.tx, vad=vad_for(f.vad, business), realtime=realtime_for(f.realtime, business),
            barge_in=barge_in_for(f.barge_in, business), transcription_prompt=prompt.transcription_prompt,
            vocabulary=tuple(business.vocabulary), agent=agent_for(f.conversation, business, spec))
        log.info("CALL_STARTED", call_sid=start.call_sid, stream_sid=start.stream_sid, business_id=business.id,
                 language=business.language)
        log.info("PROMPT_LAYERS", call_sid=start.call_sid, **prompt.layer_hashes)
        if business.overrides.get("audio"):
            log.warning("AUDIO_MODE_OVERRIDE", call_sid=start.call_sid, business_id=business.id,
                        **business.overrides["audio"])
        call = CallIO(self, ws, settings)
        call.fallback_settings = fallback_for(business)
        call.agent = spec
        call.caller = start.custom.get("from", "")
        if settings.audio.record:
            call.recorder = CallRecorder(recordings_dir(self.config), call.call_id)
        self.calls[call.call_id] = call
        self.writes.put(CallStartWrite(start.call_sid, start.stream_sid, business.id, dict(prompt.layer_hashes),
                                       start.custom.get("from", ""), start.custom.get("to", ""), self.worker))
        call.start()
        self.engine.start_call(settings, call, call.opened_at)
        prom.call_started(business.id)
        if self.control is not None:
            self.control.call_opened(call)
        return call

    def admission(self, saturation: bool = True) -> tuple[Shed, float]:
        """May this worker take one more call (gateway/admission.py)? With the ticker's recent lateness;
        `saturation=False` checks the cap alone (and reads no lateness)."""
        server = self.config.file.server
        judged = saturation and self._ticker_task is not None
        lateness = recent_lateness_ms(self.ticker.stats.late_ms) if judged else 0.0
        shed_at = server.shed_lateness_ms if saturation else 0.0
        return admit(len(self.calls) + self.pending_streams, server.max_calls, lateness, shed_at), lateness

    def record_shed(self, call_sid: str, business_id: str, form: dict[str, str], shed: Shed, lateness_ms: float,
                    fallback_mode: str) -> None:
        """A call refused at /voice because this worker is full: logged, counted and recorded."""
        log.warning("CALL_SHED", call_sid=call_sid, business_id=business_id, reason=shed.value, live=len(self.calls),
                    pending=self.pending_streams, ticker_p90_ms=round(lateness_ms, 1))
        prom.call_shed(business_id, shed.value)
        self._record_unserved(call_sid, "", business_id, form.get("From", ""), form.get("To", ""),
                              f"shed_{shed.value}", f"{fallback_mode}:voice")

    def record_rejected(self, start: TwilioStart, business_id: str, reason: str) -> None:
        """A stream refused at `start` still leaves a record, with the reason."""
        self._record_unserved(start.call_sid, start.stream_sid, business_id, start.custom.get("from", ""),
                              start.custom.get("to", ""), reason)

    def _record_unserved(self, call_sid: str, stream_sid: str, business_id: str, from_number: str, to_number: str,
                         reason: str, fallback: str = "") -> None:
        """The record of a call that was never served: started and ended at once, with the reason."""
        self.writes.put(CallStartWrite(call_sid, stream_sid, business_id, {}, from_number, to_number, self.worker))
        self.writes.put(CallEndWrite(call_sid, reason, {}, 0, fallback=fallback))

    async def end_call(self, call: CallIO, reason: str, fallback: str = "", after: str = "") -> None:
        if self.calls.pop(call.call_id, None) is None:
            return
        self.engine.tell(call.call_id, call.end_message(reason))
        summary = call.summary
        unsent, why = await call.deliver_caller_audio()  # the caller's last frames, before the record is written
        metrics = dict(summary.metrics) if summary else {}
        if unsent:
            metrics["frames_unsent_at_end"] = unsent
            log.warning("CALLER_AUDIO_UNSENT_AT_END", call_sid=call.call_id, frames=unsent, reason=why)
        series = dict(summary.series) if summary else {}
        self.summaries.append({"call_sid": call.call_id, "reason": reason, "metrics": metrics, "series": series,
                               "restarts": call.restarts, "fallback": fallback})
        self.writes.put(CallEndWrite(call.call_id, reason, metrics, call.restarts, series, fallback, after))
        log.info("CALL_ENDED", call_sid=call.call_id, reason=reason, fallback=fallback)
        prom.call_ended(call.settings.business_id, reason, {**metrics, "child_restarts": call.restarts}, series)
        if self.control is not None:
            self.control.call_closed(call.call_id, reason, metrics)
        actions.post_call_report(self, call, reason, metrics)
        await call.close()
        if call.recorder is not None:
            seconds = await asyncio.wrap_future(call.recorder.finish())
            if seconds is not None:
                log.info("RECORDING_SAVED", call_sid=call.call_id, path=str(call.recorder.path), seconds=seconds)

    async def fallback(self, call: CallIO, reason: str, end_reason: str = "realtime_unavailable") -> None:
        """The AI cannot take this call: the business's fallback (transfer or apology) takes it."""
        if call.call_id not in self.calls:
            return
        settings: FallbackSettings = call.fallback_settings
        twiml = fallback_twiml(settings, call.settings.language, call.caller)
        self.remember_after_stream(call.call_id, twiml)
        how = "action"
        if self.twilio_rest is not None:
            try:
                await self.twilio_rest.redirect(call.call_id, twiml)
                how = "rest"
            except Exception as exc:  # noqa: BLE001 — the action URL still answers with the same TwiML
                log.error("FALLBACK_REST_FAILED", call_sid=call.call_id, error=str(exc)[:300], exc_info=True)
        log.warning("FALLBACK_TAKEN", call_sid=call.call_id, reason=reason, mode=settings.mode, via=how)
        await self.end_call(call, end_reason, f"{settings.mode}:{how}", twiml)

    def remember_after_stream(self, call_sid: str, twiml: str) -> None:
        """What the stream's action URL answers for this call (bounded; the record holds it too)."""
        self.after_stream[call_sid] = twiml
        if len(self.after_stream) > SUMMARIES_KEPT:
            del self.after_stream[next(iter(self.after_stream))]

    async def stream_ended_twiml(self, call_sid: str) -> str:
        """What Twilio's request to the stream's action URL gets: the call's fallback, else hang up."""
        twiml = self.after_stream.pop(call_sid, "")
        if not twiml and call_sid:
            try:
                twiml = await after_twiml(self.sessions, call_sid)
            except Exception as exc:  # noqa: BLE001 — database down: hang up rather than fail the request
                log.warning("AFTER_TWIML_LOOKUP_FAILED", call_sid=call_sid, error=str(exc)[:200], exc_info=True)
        return twiml or hangup_twiml()

    async def drain(self, grace_s: float) -> None:
        """SIGTERM: refuse new streams, let live calls finish for `grace_s`, then end the rest."""
        self.draining = True
        log.warning("DRAINING", live_calls=len(self.calls), grace_s=grace_s)
        self.drain_deadline = time.monotonic() + grace_s
        while self.calls and time.monotonic() < self.drain_deadline:
            await asyncio.sleep(0.1)
        for call in list(self.calls.values()):
            await self.fallback(call, "server_shutdown", end_reason="server_shutdown")

    def save_utterance(self, call_sid: str, seq: int, u: Utterance) -> None:
        self.writes.put(UtteranceWrite(call_sid, seq, u.role, u.text, u.label, u.start_ms, u.end_ms, u.interrupted,
                                       u.heard_ms))

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self.end_call(call, "server_shutdown")
        if self._ticker_task:
            self._ticker_task.cancel()
        await self.prewarmer.close()
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.tenant_http.close()
        await self.writes.close(5.0)
        log.info("DB_WRITES", **self.writes.stats())
        log.info("TICKER_STATS", **self.ticker.stats.summary(), **self.gc_watch.summary())
        self.gc_watch.uninstall()
        self.engine.shutdown()
        await self.openai.close()
        if self.control is not None:
            await asyncio.to_thread(self.control.stop)
