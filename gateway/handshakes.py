"""Failed WebSocket/HTTP handshakes: counted by reason and logged as one line, never as a traceback.

websockets logs every failed opening handshake at ERROR with the parser's whole traceback — a load
balancer's TCP health check (connect, close) or a port scan then fills the log with library stack
frames and looks like an outage. These are the edge's hostile or broken sockets, so they are handled
like the others there: a filter on websockets' server logger turns each record into a counter
(`kolbridge_handshakes_failed_total{reason}`) and one structured line — `HANDSHAKE_ABANDONED` at debug
for a connection closed before it sent a whole request (health checks), `HANDSHAKE_FAILED` at warning
with the reason for anything else (a timeout, an unexpected error) — and drops the original record.
(A malformed request is closed by websockets without a log record: nothing to count.)
Other websockets records pass untouched.
"""
from __future__ import annotations

import logging

import structlog

from gateway.control import prom

log = structlog.get_logger("kolbridge.gateway")
WEBSOCKETS_LOGGER = "websockets.server"


def failure_reason(error: BaseException | None) -> str:
    """The innermost cause of a failed handshake, as a short label."""
    while error is not None and error.__cause__ is not None:
        error = error.__cause__
    if error is None:
        return "unknown"
    if isinstance(error, (EOFError, ConnectionError)):
        return "closed_before_request"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ValueError):
        return "invalid_request"
    return type(error).__name__


class HandshakeFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "opening handshake failed":
            return True
        error = record.exc_info[1] if record.exc_info else None
        reason = failure_reason(error)
        prom.handshake_failed(reason)
        if reason == "closed_before_request":
            log.debug("HANDSHAKE_ABANDONED", reason=reason)
        else:
            log.warning("HANDSHAKE_FAILED", reason=reason, error=repr(error)[:200])
        return False


def install() -> None:
    """Once per process: websockets' server logger goes through the filter."""
    logger = logging.getLogger(WEBSOCKETS_LOGGER)
    if not any(isinstance(f, HandshakeFailures) for f in logger.filters):
        logger.addFilter(HandshakeFailures())
