"""The callback scheduler: inside every `serve` worker, dialling in exactly one of them across hosts.

Leadership is a row of `scheduler_lease` (storage/outbound.py `take_lease`): each worker tries every
`every_s` to take or renew it with one atomic UPDATE (expired, or already its own) or an INSERT when there
is none; the holder's lease lasts `ttl_s` (3 × every_s), so a dead leader is replaced within that. Only
the holder runs a pass: the due leads (`callback_status = scheduled`, `callback_at` ≤ now), each decided
by the pure core (gateway/outbound/schedule.py `plan`) and carried out. A lead is claimed for a dial
with a conditional UPDATE (scheduled → dialing, attempts + 1), so two leaders during a lease hand-over
(a pass longer than the lease) still dial it once. A dial that fails is a spent attempt (the core's
DIAL_ERROR); its status callback, if Twilio did place it, moves the lead on as usual. A lead still
`dialing` DIALING_LOST_S after its dial (the final status callback never came: lost, or refused by a bad
signature) is a spent attempt too — CALLBACK_STATUS_LOST — so no lead waits in `dialing` for ever.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.control import prom
from gateway.outbound.dialer import Dialer, DialRequest, public_base
from gateway.outbound.schedule import Action, CallbackState, CallingPolicy, Outcome, after_attempt, plan, policy_of
from storage.businesses import get_business
from storage.callbacks import due_callbacks, set_callback, stale_dialing, take_lease
from storage.calls import get_call
from storage.models import LeadRecord, utcnow
from storage.outbound import E164, dnc_listed, normalise, outbound_spec

if TYPE_CHECKING:
    from gateway.app import App

log = structlog.get_logger("kolbridge.outbound")
LEASE = "callbacks"
DIALING_LOST_S = 15 * 60  # a lead dialled this long ago without a final status: the callback was lost


async def lead_number(sessions: async_sessionmaker[AsyncSession], lead: LeadRecord) -> str:
    """Whom to call back: the lead's `phone` field when it is E.164, else the number the lead called from."""
    phone = normalise(str((lead.fields or {}).get("phone", "")))
    if E164.match(phone):
        return phone
    row = await get_call(sessions, lead.call_sid)
    return row.from_number if row is not None and E164.match(row.from_number or "") else ""


class CallbackScheduler:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], dialer: Dialer, holder: str,
                 every_s: float = 5.0) -> None:
        self.sessions, self.dialer, self.holder, self.every_s = sessions, dialer, holder, every_s
        self.ttl_s = 3 * every_s
        self.leading = False
        self.passes = 0

    async def run(self) -> None:
        while True:
            await self.step(utcnow())
            await asyncio.sleep(self.every_s)

    async def step(self, now: datetime) -> list[tuple[int, str]]:
        """Take or renew the lease; as the leader, one pass. Never raises (the next step tries again)."""
        try:
            leading = await take_lease(self.sessions, LEASE, self.holder, self.ttl_s, now)
            if leading != self.leading:
                log.info("SCHEDULER_LEADING" if leading else "SCHEDULER_FOLLOWING", holder=self.holder)
                self.leading = leading
            return await self.pass_once(now) if leading else []
        except Exception as exc:  # noqa: BLE001 — the database may be down: the next step tries again
            log.warning("SCHEDULER_STEP_FAILED", error=repr(exc)[:200])
            return []

    async def pass_once(self, now: datetime) -> list[tuple[int, str]]:
        """Every due callback decided and carried out: [(lead id, what was done)]; a dial whose final
        status never came back is a spent attempt after DIALING_LOST_S (rescheduled or failed as usual)."""
        self.passes += 1
        lost = [(lead.id, await self._status_lost(lead, now))
                for lead in await stale_dialing(self.sessions, now - timedelta(seconds=DIALING_LOST_S))]
        return lost + [(lead.id, await self._one(lead, now)) for lead in await due_callbacks(self.sessions, now)]

    async def _status_lost(self, lead: LeadRecord, now: datetime) -> str:
        business = await get_business(self.sessions, lead.business_id)
        policy = policy_of(outbound_spec(business.agent if business is not None else {}))
        transition = after_attempt(policy, CallbackState.DIALING, lead.callback_attempts, Outcome.DIAL_ERROR, now)
        if transition is None or not await set_callback(self.sessions, lead.id, transition.state.value, at=transition.at,
                                                        expect=("dialing",)):
            return "taken"
        prom.outbound_call(lead.business_id, "callback_status_lost")
        log.warning("CALLBACK_STATUS_LOST", lead_id=lead.id, business_id=lead.business_id, call_sid=lead.callback_call_sid,
                    state=transition.state.value, attempts=lead.callback_attempts)
        return f"lost_{transition.state.value}"

    async def _one(self, lead: LeadRecord, now: datetime) -> str:
        business = await get_business(self.sessions, lead.business_id)
        number = await lead_number(self.sessions, lead)
        if business is None or not business.active or not number:
            await set_callback(self.sessions, lead.id, "failed", expect=("scheduled",))
            log.warning("CALLBACK_FAILED", lead_id=lead.id, reason="no active business" if number else "no number")
            return "failed"
        policy = policy_of(outbound_spec(business.agent))
        dnc = frozenset({number}) if await dnc_listed(self.sessions, business.id, number) else frozenset()
        decision = plan(policy, number, lead.callback_attempts, dnc, now)
        if decision.action is Action.SKIP_DNC:
            await set_callback(self.sessions, lead.id, "dnc", expect=("scheduled",))
            prom.outbound_call(business.id, "callback_dnc")
            log.warning("CALLBACK_SKIPPED_DNC", lead_id=lead.id, business_id=business.id)
            return "dnc"
        if decision.action is Action.GIVE_UP:
            await set_callback(self.sessions, lead.id, "failed", expect=("scheduled",))
            return "failed"
        if decision.action is Action.WAIT:
            await set_callback(self.sessions, lead.id, "scheduled", at=decision.at, expect=("scheduled",))
            return "wait"
        return await self._dial(lead, business.id, number, policy, now)

    async def _dial(self, lead: LeadRecord, business_id: str, number: str, policy: CallingPolicy, now: datetime) -> str:
        attempts = lead.callback_attempts + 1
        if not await set_callback(self.sessions, lead.id, "dialing", at=now, attempts=attempts, expect=("scheduled",)):
            return "taken"  # another leader got it first
        result = await self.dialer.dial(DialRequest(business_id, number, lead.id, "", "scheduler"))
        if result.created:
            await set_callback(self.sessions, lead.id, "dialing", call_sid=result.call_sid, expect=("dialing",))
            return "dialed"
        if result.outcome == "dnc":  # listed between the check and the dial
            await set_callback(self.sessions, lead.id, "dnc", expect=("dialing",))
            return "dnc"
        transition = after_attempt(policy, CallbackState.DIALING, attempts, Outcome.DIAL_ERROR, now)
        if transition is not None:
            await set_callback(self.sessions, lead.id, transition.state.value, at=transition.at, expect=("dialing",))
        return f"dial_{result.outcome}"


def start_scheduler(app: App) -> CallbackScheduler | None:
    """`serve`: the worker's scheduler as one of its background tasks (None — logged — when this worker cannot
    place calls: no Twilio credentials or no KOLBRIDGE_PUBLIC_URL; scheduled callbacks then wait)."""
    base = public_base(app.config.env.public_url)
    if app.twilio_rest is None or not base:
        log.warning("SCHEDULER_DISABLED", reason="Twilio REST credentials and KOLBRIDGE_PUBLIC_URL are needed to "
                    "place scheduled callbacks")
        return None
    scheduler = CallbackScheduler(app.sessions, Dialer(app.sessions, app.twilio_rest, base), app.worker)
    app.background(scheduler.run())
    return scheduler
