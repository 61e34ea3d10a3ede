"""Webhook delivery: the outbox in the database, posted signed, retried with backoff, never lost.

Theory of operation: notices (lead saved, call transferred, the post-call report) are rows in
`webhook_deliveries`, written through the worker's ordered write queue (so a database outage only
delays them). Every worker runs one deliverer: each `webhook_poll_s` (or at once when woken) it
claims the rows that are due (a lease, so two workers never post the same row at once and a dead
worker's claim expires), reads the business's current webhook URL and secret, and POSTs the body
with `X-Kolbridge-Signature`, `X-Kolbridge-Delivery` (the row id: receivers dedupe on it) and
`X-Kolbridge-Event`. A 2xx settles the row as delivered; anything else is retried after
min(initial · 2^(attempts − 1), max) until `webhook_max_attempts`, then it is `failed` — visible with every
attempt's last error in `kolbridge calls show`. Database down: the deliverer waits and logs once.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.agent import agent_spec
from gateway.config import ToolPolicy
from gateway.http_tools import Poster
from storage.agent_records import claim_due, settle
from storage.businesses import BusinessView
from storage.models import WebhookDelivery, utcnow

log = structlog.get_logger("kolbridge.webhooks")
LEASE_S = 60.0


class WebhookDeliverer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], business: Callable[[str], Awaitable[BusinessView | None]],
                 http: Poster, policy: ToolPolicy) -> None:
        """`business(id)` reads the business's current row (its webhook URL and secret); `http` posts."""
        self.sessions, self.business, self.http, self.policy = sessions, business, http, policy
        self._wake = asyncio.Event()
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        self._db_down = False

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        return float(min(self.policy.webhook_backoff_initial_s * 2 ** max(0, attempts - 1), self.policy.webhook_backoff_max_s))

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.policy.webhook_poll_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                due = await claim_due(self.sessions, utcnow(), LEASE_S)
                if self._db_down:
                    self._db_down = False
                    log.info("WEBHOOK_DB_RECOVERED")
            except Exception as exc:  # noqa: BLE001 — the database is down: the rows wait there
                if not self._db_down:
                    log.warning("WEBHOOK_DB_UNAVAILABLE", error=str(exc)[:200], exc_info=True)
                    self._db_down = True
                continue
            if due:
                await asyncio.gather(*(self.deliver(row) for row in due))

    async def deliver(self, row: WebhookDelivery) -> None:
        business = await self.business(row.business_id)
        spec = agent_spec(business) if business is not None else None
        attempts = row.attempts + 1
        if spec is None or spec.webhook is None:
            error, ok = "the business has no webhook any more", False
            retry_in: float | None = None
        else:
            outcome = await self.http.post(
                spec.webhook.url, row.body.encode(), spec.webhook.secret, self.policy.webhook_timeout_s,
                {"X-Kolbridge-Delivery": row.id, "X-Kolbridge-Event": row.kind})
            ok, error = outcome.ok, outcome.error
            retry_in = None if attempts >= self.policy.webhook_max_attempts else self.backoff(attempts)
        try:
            await settle(self.sessions, row.id, ok, error, retry_in)
        except Exception as exc:  # noqa: BLE001 — settled later: the lease expires and the row is retried
            log.warning("WEBHOOK_SETTLE_FAILED", delivery=row.id, error=str(exc)[:200], exc_info=True)
            return
        if ok:
            self.delivered += 1
            log.info("WEBHOOK_DELIVERED", delivery=row.id, call_sid=row.call_sid, kind=row.kind, attempts=attempts)
        elif retry_in is None:
            self.failed += 1
            log.error("WEBHOOK_FAILED", delivery=row.id, call_sid=row.call_sid, kind=row.kind, attempts=attempts,
                      error=error[:200])
        else:
            self.retried += 1
            log.warning("WEBHOOK_RETRY", delivery=row.id, call_sid=row.call_sid, kind=row.kind, attempts=attempts,
                        retry_in_s=retry_in, error=error[:200])
