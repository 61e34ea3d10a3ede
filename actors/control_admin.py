"""ControlAdmin: the control plane's one global actor (thespian multiprocTCPBase, globalName).

A thin shell over LiveTable (cores/live_table.py). It lives in the standalone actor system
(`kolbridge actors start`), never in a worker: workers report to it from a sender thread, the CLI and
every worker's GET /admin/calls ask it. It can only be placed on a system with the `kolbridge-leader`
capability, so in a convention of several hosts (members started with `--convention LEADER:PORT`) a
member's createActor(globalName=…) resolves to the leader's one instance: the leader sees every host.
A hang-up goes to the worker that owns the call (the address its reports come from).
"""
from __future__ import annotations

import time
from typing import Any

from thespian.actors import Actor, ActorExitRequest

from actors.control_messages import (
    CallClosed,
    CallOpened,
    HangupCall,
    HangupReply,
    InspectLive,
    InspectReply,
    ListLive,
    LiveTableReply,
    Ping,
    Pong,
    WorkerStats,
)
from actors.cores.live_table import LiveTable

ADMIN_NAME = "kolbridge-admin"
LEADER_CAPABILITY = "kolbridge-leader"


class ControlAdmin(Actor):  # type: ignore[misc]
    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: Any) -> bool:  # noqa: N802 (thespian API)
        return bool(capabilities.get(LEADER_CAPABILITY, False))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = LiveTable()
        self.reporters: dict[str, Any] = {}  # worker → the address its reports come from

    def receiveMessage(self, msg: Any, sender: Any) -> None:  # noqa: N802 (thespian API)
        now = time.time()
        if isinstance(msg, (CallOpened, WorkerStats, CallClosed)):
            self.reporters[msg.source.worker] = sender
            self.table.handle(msg, now)
        elif isinstance(msg, Ping):
            self.send(sender, Pong(len(self.table.calls)))
        elif isinstance(msg, ListLive):
            self.send(sender, LiveTableReply(tuple(self.table.live(now)),
                                             tuple(self.table.ended.values()) if msg.include_ended else (),
                                             tuple(self.table.worker_rows(now)), now))
        elif isinstance(msg, InspectLive):
            detail = self.table.detail(msg.call_sid, now, msg.after_seq)
            self.send(sender, InspectReply(msg.call_sid, detail is not None, detail or {}))
        elif isinstance(msg, HangupCall):
            owner = self.table.owner(msg.call_sid)
            reporter = self.reporters.get(owner.worker) if owner else None
            if owner is not None and reporter is not None:
                self.send(reporter, msg)
            self.send(sender, HangupReply(msg.call_sid, owner.worker if owner and reporter else ""))
        elif isinstance(msg, ActorExitRequest):
            pass
