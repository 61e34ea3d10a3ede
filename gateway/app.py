"""App: one worker — its parts assembled, started, drained and shut down.

The parts: the ActorEngine (one in-process thespian system for every call's tree), the 20 ms Ticker,
the ordered write queue (storage/writequeue.py: every database write goes through it), the Realtime
client and its Prewarmer, the tenant HTTP client and the WebhookDeliverer, the Leaver (how a call
leaves: gateway/leaving.py), AgentActions (what a call's decisions do: gateway/actions.py),
WorkerCalls (the live calls, their start and end: gateway/calls.py) and, when configured, the
ControlReporter. Each part gets only the parts it uses. While running, live calls send a heartbeat
and calls whose worker is gone are closed as `worker_lost` (at start-up and periodically). On SIGTERM
the worker drains: new streams are refused, live calls may finish within the grace, the rest get the
business's fallback.
"""
from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from datetime import timedelta
from typing import Any

import structlog
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from actors.agent_messages import LeaveCall
from actors.ingress_messages import Tick
from gateway.actions import AgentActions
from gateway.admission import Shed, admit, recent_lateness_ms
from gateway.call import CallIO, CallServices
from gateway.call_setup import BusinessCache
from gateway.calls import WorkerCalls
from gateway.config import AppConfig, EnvConfig
from gateway.control import prom
from gateway.control.reporter import ControlReporter
from gateway.fallback import TwilioRest
from gateway.http_tools import TenantHttp
from gateway.leaving import AfterStream, Leaver
from gateway.paths import journal_dir
from gateway.prewarm import Prewarmer
from gateway.runtime.engine import ActorEngine
from gateway.runtime.gcwatch import GcWatch
from gateway.runtime.ticker import Ticker
from gateway.webhooks import WebhookDeliverer
from gateway.wire import TwilioStart
from storage.calls import apply_write, apply_writes, close_lost_calls, reported_leg
from storage.models import utcnow
from storage.writequeue import HeartbeatWrite, WriteQueue

SHUTDOWN_TASKS_S = 5.0  # background tasks stop within this at shutdown (then cancelled again, then named)
log = structlog.get_logger("kolbridge.gateway")


def _prewarm(client: AsyncOpenAI) -> None:
    """Import what the first call would otherwise import on the event loop (measured: a 196 ms stall of
    the 20 ms ticker at the first call's Realtime connect)."""
    import openai.types.realtime  # noqa: F401
    from openai.lib import _websocket  # noqa: F401
    from openai.resources.realtime import realtime  # noqa: F401

    client.realtime  # noqa: B018 — builds the lazily created resource


def twilio_rest(env: EnvConfig) -> TwilioRest | None:
    """Twilio's REST API with an API key pair, else the auth token; None without credentials."""
    if env.twilio_account_sid and env.twilio_api_key and env.twilio_api_secret:
        return TwilioRest(env.twilio_account_sid, env.twilio_api_secret, env.twilio_api_url, env.twilio_api_key)
    if env.twilio_account_sid and env.twilio_auth_token:
        return TwilioRest(env.twilio_account_sid, env.twilio_auth_token, env.twilio_api_url)
    return None


class App:
    def __init__(self, config: AppConfig, db: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Built on the event loop that will run it."""
        self.config, self.db, self.sessions = config, db, sessions
        file = config.file
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._pending: set[asyncio.Task[Any]] = set()
        self._ticker_task: asyncio.Task[None] | None = None
        self.engine = ActorEngine()
        self.ticker = Ticker(self._tick, file.audio.frame_pacing_ms / 1000.0)
        self.gc_watch = GcWatch()
        self.openai = AsyncOpenAI(api_key=config.env.openai_api_key or "sk-unset",
                                  websocket_base_url=config.env.realtime_url)
        self.prewarmer = Prewarmer(self.connect_realtime, file.realtime.connect_budget_s + 4.0)
        self.writes = WriteQueue(lambda write: apply_write(sessions, write), journal_dir(config), file.server.db_queue_max,
                                 apply_batch=lambda writes: apply_writes(sessions, writes))
        self.twilio_rest = twilio_rest(config.env)
        self.tenant_http = TenantHttp(file.tools)
        businesses = BusinessCache(sessions)
        self.webhooks = WebhookDeliverer(sessions, businesses.get, self.tenant_http, file.tools)
        self.after_stream = AfterStream(sessions)
        self.calls: dict[str, CallIO] = {}  # live calls, kept by WorkerCalls; the others only read them
        self.leaver = Leaver(self.calls, self.twilio_rest, self.after_stream, self.end_call)
        self.actions = AgentActions(self.writes.put, self.tenant_http, self.webhooks.wake, self.engine.tell, self.leaver,
                                    lambda call_sid, attempt: reported_leg(self.sessions, call_sid, attempt))
        self.control = ControlReporter(self.calls, self.engine, self.background, self._admin_hangup, file.control.admin_port,
                                       file.control.stats_every_s) if file.control.enabled else None
        services = CallServices(self.engine.tell, self.ticker.poll, self.background, self.prewarmer, self.actions,
                                self.leaver)
        self.book = WorkerCalls(config, self.engine, self.writes, self.worker, businesses, services, self.control,
                                self.calls)
        self.summaries = self.book.summaries
        self.twilio_decode_errors = 0
        self.draining = False
        self.drain_deadline = 0.0
        self.pending_streams = 0
        self.refused_streams = 0

    def start(self) -> None:
        _prewarm(self.openai)
        self.gc_watch.install(tune=self.config.file.server.gc_tuning)
        self._ticker_task = asyncio.create_task(self.ticker.run(), name="ticker")
        self.writes.start()
        self.background(self._housekeeping())
        self.background(self.webhooks.run())
        if self.control is not None:
            self.control.start()
        self._warn_about_config()
        gc.collect()
        gc.freeze()  # start-up objects never scanned again: keeps collector pauses off the 20 ms clock

    def _warn_about_config(self) -> None:
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

    def _admin_hangup(self, call_sid: str, action: str = "hangup") -> None:
        """An operator (`kolbridge calls hangup`, the console): hang up as the agent's end_call does, or transfer
        to the business's human line now as transfer_to_human does (REST or the action URL)."""
        call = self.calls.get(call_sid)
        if call is None:
            return
        number = call.profile.agent.transfer.number
        if action == "transfer" and not number:
            log.warning("CONTROL_TRANSFER_REFUSED", call_sid=call_sid, reason="the business has no transfer line")
            return
        leave = LeaveCall(call_sid, "hangup", "admin_hangup", "an operator hung up") if action != "transfer" else \
            LeaveCall(call_sid, "transfer", "admin_transfer", "an operator transferred the call",
                      "transferred by an operator from the console", number)
        self.background(self.actions.leave(call, leave))

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

    # ------------------------------------------------------------------ what the server asks
    async def start_call(self, ws: Any, start: TwilioStart) -> CallIO | None:
        return await self.book.start(ws, start)

    async def end_call(self, call_sid: str, reason: str, fallback: str = "", after: str = "") -> None:
        await self.book.end(call_sid, reason, fallback, after)

    async def stream_ended_twiml(self, call_sid: str) -> str:
        """What Twilio's request to the stream's action URL gets: the call's fallback, else hang up."""
        return await self.after_stream.answer(call_sid)

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
        self.book.record_unserved(call_sid, "", business_id, form.get("From", ""), form.get("To", ""),
                                  f"shed_{shed.value}", f"{fallback_mode}:voice")

    def record_rejected(self, start: TwilioStart, business_id: str, reason: str) -> None:
        """A stream refused at `start` still leaves a record, with the reason."""
        self.book.record_unserved(start.call_sid, start.stream_sid, business_id, start.custom.get("from", ""),
                                  start.custom.get("to", ""), reason)

    # ------------------------------------------------------------------ lifecycle
    async def drain(self, grace_s: float) -> None:
        """SIGTERM: refuse new streams, let live calls finish for `grace_s`, then end the rest."""
        self.draining = True
        log.warning("DRAINING", live_calls=len(self.calls), grace_s=grace_s)
        self.drain_deadline = time.monotonic() + grace_s
        while self.calls and time.monotonic() < self.drain_deadline:
            await asyncio.sleep(0.1)
        for call in list(self.calls.values()):
            await self.leaver.fallback(call, "server_shutdown", end_reason="server_shutdown")

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _stop_background(self) -> None:
        """Cancel the background tasks and wait for them, bounded: a cancellation can be lost (Python 3.11's
        wait_for returns an inner call's result or failure when both meet in one loop turn, and a loop that
        catches the failure goes on), so one still running after SHUTDOWN_TASKS_S is cancelled again, and
        one that outlives that is named in the log rather than waited for."""
        pending = set(self._pending)
        for task in pending:
            task.cancel()
        for round_s in (SHUTDOWN_TASKS_S, 1.0):
            if not pending:
                break
            done, pending = await asyncio.wait(pending, timeout=round_s)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a failure at shutdown is not news
            for task in pending:
                task.cancel()  # asked again: the first one may have been lost
        if pending:
            log.error("SHUTDOWN_TASKS_STUCK", tasks=sorted(task.get_name() for task in pending))

    async def shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self.end_call(call.call_id, "server_shutdown")
        if self._ticker_task:
            self._ticker_task.cancel()
        await self.prewarmer.close()
        await self._stop_background()
        await self.tenant_http.close()
        await self.writes.close(5.0)
        log.info("DB_WRITES", **self.writes.stats())
        log.info("TICKER_STATS", **self.ticker.stats.summary(), **self.gc_watch.summary())
        self.gc_watch.uninstall()
        self.engine.shutdown()
        await self.openai.close()
        if self.control is not None:
            await asyncio.to_thread(self.control.stop)
