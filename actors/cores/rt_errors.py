"""What a Realtime error means for the call: retry the response, end the session, or just count it.

Theory of operation: GA `error` events and `response.done` with status "failed" carry a type and a
code. Rate limits and server errors are transient: the response.create that failed is sent again
after a backoff (at least until `rate_limits.updated` says the exhausted limit resets), a bounded
number of times — the caller's question is answered late rather than never. Authentication, quota and
model errors cannot get better within a call: the session is given up and the business's fallback
takes the call. A `session_expired` error ends the session like its 1001 close (reconnect). Anything
else (a truncate past the audio, a cancel with nothing active) is a protocol slip: logged and counted.
"""
from __future__ import annotations

import enum

import msgspec


class ErrorClass(enum.Enum):
    RETRY_RESPONSE = "retry_response"
    SESSION_FATAL = "session_fatal"
    SESSION_ENDED = "session_ended"
    PROTOCOL = "protocol"


RETRYABLE_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "server_error", "internal_error",
                             "server_overloaded", "service_unavailable", "timeout"})
FATAL_CODES = frozenset({"invalid_api_key", "insufficient_quota", "model_not_found", "invalid_model",
                         "account_deactivated", "authentication_error", "permission_denied",
                         "billing_hard_limit_reached", "unsupported_model"})
SESSION_ENDED_CODES = frozenset({"session_expired", "session_closed"})


def classify(code: str, error_type: str = "") -> ErrorClass:
    if code in SESSION_ENDED_CODES:
        return ErrorClass.SESSION_ENDED
    if code in FATAL_CODES or error_type in ("authentication_error", "permission_error"):
        return ErrorClass.SESSION_FATAL
    if code in RETRYABLE_CODES or error_type in ("server_error", "rate_limit_error"):
        return ErrorClass.RETRY_RESPONSE
    return ErrorClass.PROTOCOL


class RetryState(msgspec.Struct):
    """The response.create in flight (sent, no response.created yet) and its retry schedule."""

    in_flight: bool = False
    instructions: str = ""  # of the request in flight ("" = a plain answer)
    tries: int = 0  # failures of the current request
    due_at: float = -1.0  # when to send it again (-1: nothing scheduled)
    rate_reset_at: float = 0.0  # rate_limits.updated: an exhausted limit resets then
    retried: int = 0
    gave_up: int = 0


class ResponseRetry:
    def __init__(self, state: RetryState, max_tries: int, base_s: float = 0.5, max_s: float = 4.0) -> None:
        self.state = state
        self.max_tries = max_tries
        self.base_s, self.max_s = base_s, max_s

    @property
    def settled(self) -> bool:
        """No request in flight, no retry scheduled."""
        return not self.state.in_flight and self.state.due_at < 0

    def sent(self, instructions: str) -> None:
        self.state.in_flight, self.state.instructions = True, instructions

    def created_then_failed(self) -> None:
        """A response was created for the request, then ended `failed`: the request is open again."""
        self.state.in_flight = True

    def created(self) -> None:
        self.state.in_flight, self.state.tries, self.state.due_at = False, 0, -1.0

    def rate_limits(self, reset_s: float, now: float) -> None:
        if reset_s > 0:
            self.state.rate_reset_at = max(self.state.rate_reset_at, now + reset_s)

    def failed(self, now: float) -> bool:
        """The request in flight failed transiently: True if a retry is scheduled, False to give up."""
        if self.state.tries >= self.max_tries:
            self.state.in_flight, self.state.tries, self.state.due_at = False, 0, -1.0
            self.state.gave_up += 1
            return False
        delay = min(self.max_s, self.base_s * (2 ** self.state.tries))
        self.state.tries += 1
        self.state.in_flight = False
        self.state.due_at = max(now + delay, self.state.rate_reset_at)
        return True

    def due(self, now: float) -> str | None:
        """The instructions of a retry that is due now (and marks it sent), or None."""
        if self.state.due_at < 0 or now < self.state.due_at:
            return None
        self.state.due_at = -1.0
        self.state.retried += 1
        self.state.in_flight = True
        return self.state.instructions

    def drop(self) -> None:
        """The request in flight is abandoned (nothing will be retried)."""
        self.state.in_flight, self.state.tries, self.state.due_at = False, 0, -1.0

    def reset(self) -> None:
        """The session is gone: a request in flight or scheduled is sent again, at once, to the next one."""
        pending = self.state.in_flight or self.state.due_at >= 0
        self.state.in_flight, self.state.tries = False, 0
        self.state.due_at = 0.0 if pending else -1.0
