"""App: one worker's state — config, actor engine, ticker, database, live calls — and call start/end.

A call starts on Twilio's `start` event: the business named by `customParameters.business_id` is
read (cached briefly, never per frame), its prompt is built from the layer files, the call's actor
tree is spawned and its Realtime connection opened. It ends on `stop`, a dropped socket or a dead
Realtime connection: EndCall goes through the tree, the CALL_METRICS summary comes back and is saved.
"""
from __future__ import annotations

import asyncio
import gc
from collections import deque
import time
from typing import Any

import structlog
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from actors.messages import CallSettings, Tick, Utterance
from gateway.call import CallIO
from gateway.config import AppConfig
from gateway.engine import ActorEngine
from gateway.prewarm import Prewarmer, route_is_valid
from gateway.overrides import audio_for, barge_in_for, facts_for, realtime_for, vad_for
from gateway.ticker import Ticker
from gateway.wire import TwilioStart
from prompts.builder import build_prompt
from storage.businesses import BusinessView, business_version, get_business
from storage.calls import record_call_end, record_call_start, record_utterance

log = structlog.get_logger("kolbridge.gateway")
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
        self.openai = AsyncOpenAI(api_key=config.env.openai_api_key or "sk-unset",
                                  websocket_base_url=config.env.realtime_url)
        self.calls: dict[str, CallIO] = {}
        self.business_cache: dict[str, tuple[float, BusinessView | None, str | None]] = {}
        self.summaries: deque[dict[str, Any]] = deque(maxlen=SUMMARIES_KEPT)  # recent calls, for /healthz & tests
        self.twilio_decode_errors = 0
        self._ticker_task: asyncio.Task[None] | None = None
        self.prewarmer = Prewarmer(self._connect_realtime)
        self._pending: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        _prewarm(self.openai)
        self._ticker_task = asyncio.create_task(self.ticker.run(), name="ticker")
        gc.collect()
        gc.freeze()  # start-up objects never scanned again: keeps collector pauses off the 20 ms clock

    async def _connect_realtime(self) -> Any:
        manager = self.openai.realtime.connect(model=self.config.file.realtime.model)
        return await asyncio.wait_for(manager.enter(), self.config.file.realtime.connect_timeout_s)

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
        f = self.config.file
        settings = CallSettings(
            call_id=start.call_sid, stream_sid=start.stream_sid, business_id=business.id,
            language=business.language, instructions=prompt.instructions, greeting=prompt.greeting_instructions,
            audio=audio_for(f.audio, business), tx=f.tx, vad=vad_for(f.vad, business), realtime=realtime_for(f.realtime, business),
            barge_in=barge_in_for(f.barge_in, business), transcription_prompt=prompt.transcription_prompt,
            vocabulary=tuple(business.vocabulary))
        log.info("CALL_STARTED", call_sid=start.call_sid, stream_sid=start.stream_sid, business_id=business.id,
                 language=business.language)
        log.info("PROMPT_LAYERS", call_sid=start.call_sid, **prompt.layer_hashes)
        if business.overrides.get("audio"):
            log.warning("AUDIO_MODE_OVERRIDE", call_sid=start.call_sid, business_id=business.id,
                        **business.overrides["audio"])
        call = CallIO(self, ws, settings)
        self.calls[call.call_id] = call
        call.start()
        self.engine.start_call(settings, call, call.opened_at)
        self._background(record_call_start(self.sessions, start.call_sid, start.stream_sid, business.id,
                                           prompt.layer_hashes, start.custom.get("from", ""),
                                           start.custom.get("to", "")))
        return call

    async def end_call(self, call: CallIO, reason: str) -> None:
        if self.calls.pop(call.call_id, None) is None:
            return
        self.engine.tell(call.call_id, call.end_message(reason))
        summary = call.summary
        metrics = dict(summary.metrics) if summary else {}
        series = dict(summary.series) if summary else {}
        self.summaries.append({"call_sid": call.call_id, "reason": reason, "metrics": metrics, "series": series,
                               "restarts": call.restarts})
        await call.close()
        await record_call_end(self.sessions, call.call_id, reason, metrics, call.restarts, series)

    def save_utterance(self, call_sid: str, seq: int, u: Utterance) -> None:
        # start_call's record_call_start is queued before any utterance; writes are retried on failure
        self._background(record_utterance(self.sessions, call_sid, seq, u.role, u.text, u.label, u.start_ms,
                                          u.end_ms, u.interrupted, u.heard_ms))

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self.end_call(call, "server_shutdown")
        if self._ticker_task:
            self._ticker_task.cancel()
        await self.prewarmer.close()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        log.info("TICKER_STATS", **self.ticker.stats.summary())
        self.engine.shutdown()
        await self.openai.close()
