"""AdminActor: live inspection of every call of this worker (phase, children, restarts).

It keeps the supervisors the gateway registers; ListCalls asks each for a CallInspection and answers
the requester with LiveCalls. In the in-process base every supervisor replies while the request is
being run; the two AdminSweep rounds to itself mark the point after which every reply has been queued
(a supervisor that has just ended simply does not appear). The control plane's cross-process variant
would use `wakeupAfter` for the same deadline.
"""
from __future__ import annotations

from typing import Any

from thespian.actors import Actor

from actors.lifecycle_messages import AdminSweep, CallInspection, InspectCall, ListCalls, LiveCalls, RegisterCall, UnregisterCall


class AdminActor(Actor):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.supervisors: dict[str, Any] = {}
        self.pending: dict[int, tuple[Any, list[CallInspection]]] = {}

    def receiveMessage(self, msg: Any, sender: Any) -> None:  # noqa: N802 (thespian API)
        if isinstance(msg, RegisterCall):
            self.supervisors[msg.call_id] = msg.supervisor
        elif isinstance(msg, UnregisterCall):
            self.supervisors.pop(msg.call_id, None)
        elif isinstance(msg, ListCalls):
            self.pending[msg.request_id] = (sender, [])
            for supervisor in self.supervisors.values():
                self.send(supervisor, InspectCall())
            self.send(self.myAddress, AdminSweep(msg.request_id, 1))
        elif isinstance(msg, CallInspection):
            for _, replies in self.pending.values():
                replies.append(msg)
        elif isinstance(msg, AdminSweep):
            if msg.round == 1:
                self.send(self.myAddress, AdminSweep(msg.request_id, 2))
                return
            requester, replies = self.pending.pop(msg.request_id, (None, []))
            if requester is not None:
                ordered = tuple(sorted(replies, key=lambda r: r.call_id))
                self.send(requester, LiveCalls(msg.request_id, ordered))
