"""Twilio REST `calls.create`, retried only when that is safe.

Twilio's `POST …/Calls.json` is not idempotent: a request that reached Twilio may have placed the call
even if its answer never came back, and sending it again would ring the person twice. So an attempt is
repeated only when it provably did not create a call:
  * the connection was never established (refused, DNS, connect timeout: urllib3's ConnectTimeoutError,
    requests' ConnectTimeout) — nothing was sent;
  * Twilio answered 429 (too many requests): it refused the request without acting on it.
Anything else — a 5xx, a reset or a read timeout after the request was sent, our own timeout while the
request was in flight — is *unknown*: never retried here. The status callback carries the attempt's own
token (`attempt=` in its query), so if the call did exist Twilio still tells us how it ended and the
lead's callback moves on from there; if it did not, the scheduler's next try (after retry_after_min)
is the retry. A 4xx other than 429 is a refusal with Twilio's message (a bad number, an unverified
caller ID): not retried.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any

import structlog

from gateway.fallback import TwilioRest

log = structlog.get_logger("kolbridge.outbound")


class CreateFailure(str, Enum):
    NOT_SENT = "not_sent"  # provably never reached Twilio (after the retries)
    REJECTED = "rejected"  # Twilio refused it (4xx): nothing was placed
    UNKNOWN = "unknown"  # it may have been placed: never retried


@dataclass(frozen=True)
class CallParams:
    to: str
    from_: str
    url: str
    status_callback: str
    machine_detection: bool = True


class CreateCallError(Exception):
    def __init__(self, failure: CreateFailure, detail: str, attempts: int) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure, self.detail, self.attempts = failure, detail, attempts


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and contexts, and urllib3's wrapped reasons."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen) or len(seen) > 20:
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        todo += [arg for arg in item.args if isinstance(arg, BaseException)]
    return seen


def classify(exc: BaseException) -> CreateFailure:
    """Whether a failed create may be sent again (NOT_SENT, or a 429 counted as such) or not."""
    from requests.exceptions import ConnectTimeout
    from twilio.base.exceptions import TwilioRestException
    from urllib3.exceptions import ConnectTimeoutError

    if isinstance(exc, TwilioRestException):
        status = int(getattr(exc, "status", 0) or 0)
        if status == 429:
            return CreateFailure.NOT_SENT
        return CreateFailure.REJECTED if 400 <= status < 500 else CreateFailure.UNKNOWN
    if any(isinstance(e, (ConnectTimeoutError, ConnectTimeout, ConnectionRefusedError)) for e in _chain(exc)):
        return CreateFailure.NOT_SENT
    return CreateFailure.UNKNOWN


async def create_call(rest: TwilioRest, params: CallParams, attempts: int = 3, backoff_s: float = 0.5,
                      timeout_s: float = 15.0) -> str:
    """The new call's sid; CreateCallError when it was not created (or may have been: UNKNOWN)."""
    def create() -> Any:
        kwargs: dict[str, Any] = {"to": params.to, "from_": params.from_, "url": params.url, "method": "POST",
                                  "status_callback": params.status_callback, "status_callback_method": "POST",
                                  "status_callback_event": ["initiated", "ringing", "answered", "completed"]}
        if params.machine_detection:
            kwargs["machine_detection"] = "DetectMessageEnd"
        return rest.client.calls.create(**kwargs)

    for attempt in range(1, attempts + 1):
        try:
            call = await asyncio.wait_for(asyncio.to_thread(create), timeout_s)
            return str(call.sid)
        except asyncio.TimeoutError:  # the request may be in flight: never repeated
            raise CreateCallError(CreateFailure.UNKNOWN, f"no answer within {timeout_s} s", attempt) from None
        except Exception as exc:  # noqa: BLE001 — classified: only what provably did nothing is repeated
            failure = classify(exc)
            detail = str(exc)[:300]
            if failure is not CreateFailure.NOT_SENT or attempt == attempts:
                raise CreateCallError(failure, detail, attempt) from exc
            log.warning("OUTBOUND_CREATE_RETRY", attempt=attempt, to=params.to, error=detail)
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
