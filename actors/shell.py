"""ChildShell: the thin thespian shell every child actor shares.

A shell owns one pure core and does only what a core may not: it receives messages, passes them to
`core.handle(msg, msg.at)`, and delivers the returned actions — wire commands and the call summary to
the gateway's egress address, log lines to structlog, everything else to the supervisor for routing.
Lifecycle: ChildBoot builds (or restores) the core; on ActorExitRequest the shell sends the core's
state to the supervisor, so a replacement continues where it stopped. Every send happens after the
core returned, so a handler that raises has sent nothing. Whether the core's own state is untouched by
a raising handler is the core's business: TwilioRx computes before it changes anything (proved in
tests/test_link_cores.py); for the other cores the decoders at the edge keep malformed input out, and
a core that raised is replaced from its last snapshot (tests/test_actor_tree.py).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

import structlog
from thespian.actors import Actor, ActorExitRequest, ChildActorExited, PoisonMessage, WakeupMessage

from actors.egress import EGRESS
from actors.lifecycle_messages import ChildBoot, ChildSnapshot, InjectFault, LogLine, encode_state
from actors.messages import CallSummary, CollectCounters, CounterReport, SampleCounters
from actors.settings import CallSettings

log = structlog.get_logger("kolbridge.actors")


class InjectedFault(RuntimeError):
    """Raised by a shell on purpose (InjectFault), to exercise supervision."""


class Core(Protocol):
    def handle(self, msg: object, now: float) -> list[object]: ...
    def snapshot(self) -> Any: ...
    def counters(self) -> dict[str, int]: ...


CoreFactory = Callable[[CallSettings, "bytes | None"], Core]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def write_log(line: LogLine) -> None:
    log.log(_LEVELS.get(line.level, logging.INFO), line.event, **line.fields)


class ChildShell(Actor):  # type: ignore[misc]
    role = "child"
    factory: CoreFactory

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: Core | None = None
        self.egress: Any = None
        self.parent_addr: Any = None
        self.armed = False  # InjectFault(mode="next"): raise on every delivery of the next message

    def receiveMessage(self, msg: Any, sender: Any) -> None:  # noqa: N802 (thespian API)
        core = self.core
        if core is not None and hasattr(msg, "at") and not isinstance(msg, (ChildBoot, InjectFault)):
            if self.armed:
                raise InjectedFault(f"{self.role}: injected fault on {type(msg).__name__}")
            self.deliver(core.handle(msg, msg.at))
            if isinstance(msg, (CollectCounters, SampleCounters)):
                series = core.series() if hasattr(core, "series") else {}
                self.send(self.parent_addr, CounterReport(self.role, core.counters(), msg.at, series))
            return
        if isinstance(msg, ChildBoot):
            self.parent_addr, self.egress = sender, msg.egress
            self.core = type(self).factory(msg.settings, msg.state)
            self.on_boot(msg)
        elif isinstance(msg, ActorExitRequest):
            if core is not None and self.parent_addr is not None:
                self.send(self.parent_addr, ChildSnapshot(self.role, encode_state(core.snapshot())))
        elif isinstance(msg, InjectFault):
            if msg.mode == "exit":
                self.send(self.myAddress, ActorExitRequest())
            elif msg.mode == "next":
                self.armed = True
            else:  # raises on every delivery of this message: thespian retries, then PoisonMessage
                raise InjectedFault(f"{self.role}: injected fault")
        elif isinstance(msg, (ChildActorExited, WakeupMessage, PoisonMessage)):
            pass

    def on_boot(self, boot: ChildBoot) -> None:
        """Hook for shells that log their own start."""

    def deliver(self, actions: list[object]) -> None:
        for action in actions:
            if isinstance(action, EGRESS):
                self.send(self.egress, action)
            elif isinstance(action, LogLine):
                write_log(action)
            elif isinstance(action, CallSummary):
                self.send(self.egress, action)
                self.send(self.parent_addr, action)
            else:
                self.send(self.parent_addr, action)
