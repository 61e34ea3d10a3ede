"""CallSupervisor: one per call; spawns TwilioRx, RealtimeBridge, TxPacer, BargeInJudge, MetricsCollector.

It is the tree's single entry point: the gateway tells it every decoded wire event and Tick; it
routes each message to the children that own it (SupervisionCore.route), and children's decisions
come back through it. On a child failure it restarts the child from the state snapshot the child
handed over as it exited, replaying what arrived meanwhile, so the call continues without losing
or repeating a frame. On EndCall it collects every child's counters into one CALL_METRICS summary.
It publishes the lanes (lane_messages.py): TwilioRx's and TxPacer's addresses while they are healthy,
so the engine tells them the per-frame messages directly; a lane closes the moment its child fails
and reopens with the replacement's address.
"""
from __future__ import annotations

from typing import Any, Callable

import structlog
from thespian.actors import Actor, ActorExitRequest, ChildActorExited, PoisonMessage

from actors.children import CHILD_CLASSES
from actors.cores.supervision import ROLES, CallPhase, SupervisionCore
from actors.ingress_messages import EndCall, StartCall
from actors.lane_messages import LanePoisoned, Lanes
from actors.lifecycle_messages import CallInspection, ChildBoot, ChildRestarted, ChildSnapshot, InjectFault, InspectCall, SummarizeCall
from actors.link_messages import RealtimeConnected, RealtimeConnectFailed, RealtimeLost
from actors.messages import (
    AnswerRequest,
    CallSummary,
    CollectCounters,
    CounterReport,
    CutPlayout,
    DeleteItem,
    DuckPlayout,
    LetStand,
    PausePlayout,
    RestorePlayout,
    SampleCounters,
)
from actors.settings import CallSettings

log = structlog.get_logger("kolbridge.supervisor")
REPORTING_ROLES = ("rx", "bridge", "pacer", "judge")
# what the judge decided last, and the Realtime link's state, as the supervisor routes them (the live stats row)
DECISIONS: dict[type, str] = {DuckPlayout: "duck", PausePlayout: "pause", CutPlayout: "cut", RestorePlayout: "restore",
                              DeleteItem: "filler", LetStand: "backchannel", AnswerRequest: "answer"}
REALTIME_STATES: dict[type, str] = {RealtimeConnected: "connected", RealtimeLost: "reconnecting",
                                    RealtimeConnectFailed: "failed"}


class CallSupervisor(Actor):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: SupervisionCore | None = None
        self.settings: CallSettings | None = None
        self.egress: Any = None
        self.children: dict[str, Any] = {}
        self.roles_by_addr: dict[str, str] = {}
        self.reports_pending: set[str] = set()
        self.end_reason = ""
        self.last_at = 0.0
        # messages already replayed once after a failure, held by reference: an id() is reused once its
        # message is freed, so a later failing frame could pass for one already replayed
        self.replayed: list[Any] = []
        self.started_at = 0.0
        self.latest: dict[str, dict[str, int]] = {}  # role → its latest CounterReport (the control plane's row)
        self.last_decision = ""
        self.realtime = ""

    def receiveMessage(self, msg: Any, sender: Any) -> None:  # noqa: N802 (thespian API)
        if self.core is not None and self._routed(msg):
            return
        if isinstance(msg, StartCall):
            self._start(msg, sender)
            return
        if self.core is None:
            return
        for kind, handler in LIFECYCLE:
            if isinstance(msg, kind):
                handler(self, msg, sender)
                return

    def _routed(self, msg: Any) -> bool:
        """A message for the children (SupervisionCore.route): sent on; the live stats row noted."""
        assert self.core is not None
        roles = self.core.route(msg)
        if not roles:
            return False
        for role in roles:
            self.send(self.children[role], msg)
        if isinstance(msg, CounterReport):
            self.latest[msg.role] = msg.counters
            self._report_received(msg.role)
        else:
            self.last_decision = DECISIONS.get(type(msg), self.last_decision)
            self.realtime = REALTIME_STATES.get(type(msg), self.realtime)
        return True

    # ------------------------------------------------------------------ the tree's own messages
    def _on_poison(self, msg: PoisonMessage, sender: Any) -> None:
        self._poisoned(self.roles_by_addr.get(str(sender)), msg.poisonMessage, getattr(msg, "details", ""))

    def _on_lane_poisoned(self, msg: LanePoisoned, sender: Any) -> None:
        self._poisoned(msg.role, msg.message, msg.details)

    def _on_snapshot(self, msg: ChildSnapshot, sender: Any) -> None:
        assert self.core is not None
        if self.core.phase is not CallPhase.ENDED:
            if self.core.child_failed(msg.role):  # starts buffering if the child left on its own
                self._publish_lanes()
            self.core.snapshot_received(msg.role, msg.state)

    def _on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        self._child_exited(str(msg.childAddress))

    def _on_end(self, msg: EndCall, sender: Any) -> None:
        self._end(msg.reason, msg.at)

    def _on_report(self, msg: CounterReport, sender: Any) -> None:
        self._report_received(msg.role)  # metrics restarting: buffered by route(), still counted

    def _on_summary(self, msg: CallSummary, sender: Any) -> None:
        assert self.core is not None
        self.core.go("summarized")
        for child in self.children.values():
            self.send(child, ActorExitRequest())
        self.send(self.myAddress, ActorExitRequest())

    def _on_inspect(self, msg: InspectCall, sender: Any) -> None:
        core = self.core
        assert core is not None
        merged: dict[str, int] = {}
        for counters in self.latest.values():
            for key, value in counters.items():
                merged[key] = merged.get(key, 0) + value
        self.send(sender, CallInspection(
            core.call_id, core.phase.value, {r: str(a) for r, a in self.children.items()}, dict(core.restarts),
            self.settings.business_id if self.settings else "", self.started_at, merged, self.last_decision,
            self.realtime))

    def _on_sample(self, msg: SampleCounters, sender: Any) -> None:
        if self.core is not None and self.core.phase is CallPhase.ACTIVE:
            for role in REPORTING_ROLES:
                self._send_role(role, msg)

    def _on_inject(self, msg: InjectFault, sender: Any) -> None:
        if msg.role in self.children:
            self._send_role(msg.role, msg)

    # ------------------------------------------------------------------ lifecycle
    def _start(self, msg: StartCall, sender: Any) -> None:
        if self.core is not None:
            return
        self.settings, self.egress, self.started_at = msg.settings, sender, msg.at
        core = SupervisionCore(msg.settings.call_id)
        for role in ROLES:
            self._spawn(role, None, msg.at)
        core.go("start")
        self.core = core
        self._publish_lanes()
        self._send_role("bridge", msg)

    def _spawn(self, role: str, state: bytes | None, at: float) -> None:
        assert self.settings is not None
        addr = self.createActor(CHILD_CLASSES[role])
        self.children[role] = addr
        self.roles_by_addr[str(addr)] = role
        self.send(addr, ChildBoot(role, self.settings, self.egress, state, at))

    def _poisoned(self, role: str | None, poison: Any, details: object) -> None:
        assert self.core is not None
        if role is None or role not in self.children:
            return
        self.core.poisoned += 1
        # thespian puts the failing handler's traceback in `details`: the operator needs it to fix the cause
        log.warning("CHILD_FAILED", call_sid=self.core.call_id, role=role, message=type(poison).__name__,
                    traceback=str(details or "")[-4000:])
        if not self.core.child_failed(role):
            return
        self._publish_lanes()
        if not isinstance(poison, InjectFault) and not any(seen is poison for seen in self.replayed):
            self.replayed.append(poison)
            del self.replayed[:-16]
            self.core.restarting[role].append(poison)  # retried once on the fresh child
        self.send(self.children[role], ActorExitRequest())

    def _publish_lanes(self) -> None:
        """Tell the engine which children it may tell directly: healthy ones, while the call is active."""
        core = self.core
        if core is None:
            return
        open_ = core.phase is CallPhase.ACTIVE
        rx = self.children.get("rx") if open_ and "rx" not in core.restarting else None
        pacer = self.children.get("pacer") if open_ and "pacer" not in core.restarting else None
        self.send(self.egress, Lanes(core.call_id, rx, pacer))

    def _child_exited(self, addr: str) -> None:
        assert self.core is not None
        role = self.roles_by_addr.pop(addr, None)
        if role is None or self.core.phase in (CallPhase.ENDED,):
            return
        result = self.core.child_exited(role)
        if result is None:
            return
        state, buffered = result
        self._spawn(role, state, self.last_at)
        for queued in buffered:
            self.send(self.children[role], queued)
        self._publish_lanes()
        restarts = self.core.restarts[role]
        log.warning("CHILD_RESTARTED", call_sid=self.core.call_id, role=role, restored=state is not None,
                    replayed=len(buffered), restarts=restarts)
        self.send(self.egress, ChildRestarted(self.core.call_id, role, "failure", restarts))

    def _end(self, reason: str, at: float) -> None:
        assert self.core is not None
        if not self.core.go("end"):
            return
        self.end_reason, self.last_at = reason, at
        self._publish_lanes()  # closed: the wind-down goes through the supervisor
        self.reports_pending = set(REPORTING_ROLES)
        for role in REPORTING_ROLES:
            self._send_role(role, CollectCounters(at))

    def _report_received(self, role: str) -> None:
        self.reports_pending.discard(role)
        if not self.reports_pending and self.core is not None and self.core.phase is CallPhase.ENDING:
            self.reports_pending = {"-"}
            self._send_role("metrics", SummarizeCall(self.end_reason, self.last_at))

    def _send_role(self, role: str, msg: Any) -> None:
        if self.core is not None and self.core.deliver_to(role, msg):
            self.send(self.children[role], msg)


# the supervisor's own messages (after StartCall), by kind
LIFECYCLE: tuple[tuple[type, Callable[[CallSupervisor, Any, Any], None]], ...] = (
    (PoisonMessage, CallSupervisor._on_poison),
    (LanePoisoned, CallSupervisor._on_lane_poisoned),
    (ChildSnapshot, CallSupervisor._on_snapshot),
    (ChildActorExited, CallSupervisor._on_child_exited),
    (EndCall, CallSupervisor._on_end),
    (CounterReport, CallSupervisor._on_report),
    (CallSummary, CallSupervisor._on_summary),
    (InspectCall, CallSupervisor._on_inspect),
    (SampleCounters, CallSupervisor._on_sample),
    (InjectFault, CallSupervisor._on_inject),
)
