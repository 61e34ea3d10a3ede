"""ActorEngine: a worker's in-process thespian system (simpleSystemBase), driven by the event loop.

The per-frame path never crosses a process: the loop `tell`s a call's tree each decoded wire event
or Tick; simpleSystemBase runs every resulting actor message to completion inside that `tell`, and
whatever actors addressed to the outside (the outbound commands of actors/egress.py, the summary)
is drained in order from the external requester's outbox (`listen(0)` if its layout is not the one
known) and handed to the call's sink. All of it runs on the loop's thread.
Everything goes to the CallSupervisor except the per-frame messages, which take the lanes it
publishes (actors/lane_messages.py) straight to TwilioRx / TxPacer while those are healthy. Ticks:
every 20 ms only to the calls whose pacer wants them; every JUDGE_TICK_EVERY-th tick of a call (the
calls staggered over those ticks) through the supervisor to the pacer, judge and bridge, for timers.
"""
from __future__ import annotations

import logging
from typing import Any

from thespian.actors import ActorExitRequest, ActorSystem, PoisonMessage

from actors.admin import AdminActor
from actors.cores.supervision import JUDGE_TICK_EVERY
from actors.egress import TO_SINK, CallSink
from actors.ingress_messages import RtAudioDelta, StartCall, Tick, TwilioMarkIn, TwilioMediaIn
from actors.lane_messages import LanePoisoned, Lanes, TickWanted
from actors.lifecycle_messages import CallInspection, InspectCall, ListCalls, LiveCalls, RegisterCall, UnregisterCall
from actors.messages import CallSummary
from actors.settings import CallSettings
from actors.supervisor import CallSupervisor

# the per-frame messages and their lane: 0 = TwilioRx, 1 = TxPacer (a Tick's lane is the pacer's)
LANE_OF: dict[type, int] = {TwilioMediaIn: 0, TwilioMarkIn: 1, RtAudioDelta: 1, Tick: 1}
LANE_ROLES = ("rx", "pacer")


class ActorEngine:
    def __init__(self) -> None:
        logging.getLogger("Thespian").setLevel(logging.CRITICAL)  # injected faults are logged by us
        self.asys: Any = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
        # What actors send to the outside lands, in order, in the external requester's `responses`
        # list; `listen(0)` pops it one message at a time after re-running the (empty) send loop.
        # Everything already ran inside `tell`, so the drain reads that list directly when it exists.
        self._outbox: list[Any] | None = None
        requester = getattr(self.asys._systemBase, "actorRegistry", {}).get("System:ExternalRequester")
        instance = getattr(requester, "instance", None)
        if instance is not None and type(instance).__name__ == "External":
            if not hasattr(instance, "responses"):
                instance.responses = []  # the proxy creates this list on its first message otherwise
            self._outbox = instance.responses
        self.supervisors: dict[str, Any] = {}
        self.lanes: dict[str, tuple[Any, Any]] = {}  # call → (TwilioRx, TxPacer) addresses, None = closed
        self.ticking: set[str] = set()  # calls whose pacer wants every tick
        self.tick_phase: dict[str, int] = {}  # which of the JUDGE_TICK_EVERY ticks is this call's timer tick
        self.ticks = 0
        self.lane_failures = 0
        self._started = 0
        self.sinks: dict[str, CallSink] = {}
        self.inspections: list[CallInspection] = []
        self.live: dict[int, LiveCalls] = {}
        self.messages_told = 0
        self.admin = self.asys.createActor(AdminActor)
        self._requests = 0
        self._ended = 0

    def start_call(self, settings: CallSettings, sink: CallSink, at: float) -> None:
        call_id = settings.call_id
        if call_id in self.supervisors:
            raise ValueError(f"call {call_id} already running")
        self.supervisors[call_id] = self.asys.createActor(CallSupervisor)
        self.sinks[call_id] = sink
        self.ticking.add(call_id)
        self.tick_phase[call_id] = self._started % JUDGE_TICK_EVERY
        self._started += 1
        self.asys.tell(self.admin, RegisterCall(call_id, self.supervisors[call_id]))
        self.tell(call_id, StartCall(settings, at))

    def tell(self, call_id: str, msg: object) -> bool:
        addr = self.supervisors.get(call_id)
        if addr is None:
            return False
        lane = LANE_OF.get(type(msg))
        if lane is not None and not (type(msg) is Tick and msg.timers):  # a timer tick is for three children
            lanes = self.lanes.get(call_id)
            if lanes is not None and lanes[lane] is not None:
                addr = lanes[lane]
        self.messages_told += 1
        self.asys.tell(addr, msg)
        self._drain(call_id, lane)
        return True

    def tell_all(self, tick: Tick) -> None:
        """The 20 ms Tick to every call whose pacer wants it; a timer tick to each call every
        JUDGE_TICK_EVERY-th time (the calls spread over those ticks)."""
        self.ticks += 1
        phase = self.ticks % JUDGE_TICK_EVERY
        timers = Tick(tick.at, timers=True)
        for call_id in list(self.supervisors):
            if self.tick_phase.get(call_id) == phase:
                self.tell(call_id, timers)
            elif call_id in self.ticking:
                self.tell(call_id, tick)

    def inspect(self, call_id: str) -> CallInspection | None:
        self.inspections.clear()
        if not self.tell(call_id, InspectCall()):
            return None
        return self.inspections[-1] if self.inspections else None

    def live_calls(self) -> list[CallInspection]:
        """Every live call of this worker, as the AdminActor sees it."""
        self._requests += 1
        self.asys.tell(self.admin, ListCalls(self._requests))
        self._drain()
        answer = self.live.pop(self._requests, None)
        return list(answer.calls) if answer else []

    def active_calls(self) -> list[str]:
        return list(self.supervisors)

    def _outputs(self) -> list[Any]:
        outbox = self._outbox
        if outbox is None:  # not the simpleSystemBase layout we know: the public API
            drained = []
            while (out := self.asys.listen(0)) is not None:
                drained.append(out)
            return drained
        drained = outbox[:]
        del outbox[:]
        return drained

    def _drain(self, call_id: str = "", lane: int | None = None) -> None:
        for out in self._outputs():
            deliver = TO_SINK.get(type(out))
            if deliver is not None:
                sink = self.sinks.get(out.call_id)
                if sink is not None:
                    deliver(sink, out)
            elif type(out) is TickWanted:
                if out.wanted:
                    self.ticking.add(out.call_id)
                else:
                    self.ticking.discard(out.call_id)
            elif type(out) is Lanes:
                self.lanes[out.call_id] = (out.rx, out.pacer)
            elif isinstance(out, PoisonMessage):
                self._lane_poisoned(call_id, lane, out)
            elif isinstance(out, CallSummary):
                self.supervisors.pop(out.call_id, None)
                self.lanes.pop(out.call_id, None)
                self.ticking.discard(out.call_id)
                self.tick_phase.pop(out.call_id, None)
                self._ended += 1
                if self._ended % 50 == 0:
                    self._forget_dead_actors()
                self.asys.tell(self.admin, UnregisterCall(out.call_id))
                sink = self.sinks.pop(out.call_id, None)
                if sink is not None:
                    sink.call_ended(out)
            elif isinstance(out, CallInspection):
                self.inspections.append(out)
            elif isinstance(out, LiveCalls):
                self.live[out.request_id] = out
            # anything else (thespian's own notices) is dropped, as listen() would

    def _lane_poisoned(self, call_id: str, lane: int | None, poison: Any) -> None:
        """Only what the engine told a child directly comes back here (a supervisor's own sends poison
        back to it): hand it to the supervisor, which restarts the child as for any failure."""
        supervisor = self.supervisors.get(call_id)
        if supervisor is None or lane is None:
            return
        self.lane_failures += 1
        self.asys.tell(supervisor, LanePoisoned(LANE_ROLES[lane], poison.poisonMessage,
                                                str(getattr(poison, "details", "") or "")))
        self._drain(call_id)

    def _forget_dead_actors(self) -> None:
        """simpleSystemBase keeps a registry entry (set to None) for every actor that ever exited —
        six per call. Measured in a 30-minute soak as part of a slow RSS creep; pruned every 50 calls."""
        registry = getattr(self.asys._systemBase, "actorRegistry", None)
        if isinstance(registry, dict):
            for key in [k for k, v in registry.items() if v is None]:
                del registry[key]

    def shutdown(self) -> None:
        for addr in list(self.supervisors.values()):
            self.asys.tell(addr, ActorExitRequest())
        self.supervisors.clear()
        self.asys.shutdown()
