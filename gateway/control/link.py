"""ControlLink: a worker's one connection to the control plane, on its own thread.

Theory of operation: a TCP-base `tell` can block for seconds and a dead system makes `createActor`
raise, so nothing here ever runs on the event loop. The loop hands reports to `report()` (a bounded
queue; when it is full, or while the link is down, a report is dropped and counted — a stats row is a
snapshot, the next one replaces it). The thread: connects when the actor system's admin port accepts
(it never starts a system: `kolbridge actors start` or `serve` does), resolves the global ControlAdmin
by name, sends the queued reports, listens for commands (a hang-up), and asks the admin every
`ping_s` whether it is alive — no answer (a dead system answers at once with nothing) marks the link
down; it reconnects every `retry_s`. Calls never wait on any of this.
"""
from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from typing import Any, Callable

import structlog

from actors.control_admin import ADMIN_NAME, ControlAdmin
from actors.control_messages import HangupCall, Ping, WorkerId

log = structlog.get_logger("kolbridge.control")

QUEUE_MAX = 2000
ASK_TIMEOUT_S = 5.0


def admin_port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def connect(port: int) -> tuple[Any, Any]:
    """An external endpoint on the running actor system at `port`, and the ControlAdmin's address."""
    from thespian.actors import ActorSystem

    system = ActorSystem("multiprocTCPBase", capabilities={"Admin Port": port}, transientUnique=True)
    return system, system.createActor(ControlAdmin, globalName=ADMIN_NAME)


class ControlLink:
    def __init__(self, port: int, source: WorkerId, loop: asyncio.AbstractEventLoop,
                 on_hangup: Callable[[str, str], None], ping_s: float = 2.0, retry_s: float = 2.0) -> None:
        self.port, self.source, self.loop, self.on_hangup = port, source, loop, on_hangup
        self.ping_s, self.retry_s = ping_s, retry_s
        self.queue: queue.Queue[object] = queue.Queue(QUEUE_MAX)
        self.dropped = 0
        self.sent = 0
        self.up = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="control-link", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        self.stopping.set()
        self.thread.join(timeout_s)

    def report(self, msg: object) -> None:
        """From the event loop: never blocks."""
        if not self.up:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(msg)
        except queue.Full:
            self.dropped += 1

    # ------------------------------------------------------------------ the link's thread
    def _run(self) -> None:
        system: Any = None
        admin: Any = None
        next_ping = 0.0
        while not self.stopping.is_set():
            if admin is None:
                system, admin = self._connect()
                if admin is None:
                    self.stopping.wait(self.retry_s)
                    continue
                next_ping = time.monotonic() + self.ping_s
            try:
                self._pump(system, admin)
                if time.monotonic() >= next_ping:
                    next_ping = time.monotonic() + self.ping_s
                    answer = system.ask(admin, Ping(), self.ping_s)
                    if answer is None:
                        raise ConnectionError("the control plane did not answer")
                    self._command(answer)  # a hang-up can arrive while the ping waits
            except Exception as exc:  # noqa: BLE001 — any failure of the link: calls go on, reconnect later
                self._down(exc)
                system = admin = None

    def _connect(self) -> tuple[Any, Any]:
        if not admin_port_open("127.0.0.1", self.port):
            return None, None
        try:
            system, admin = connect(self.port)
        except Exception as exc:  # noqa: BLE001 — the system is going down or not yet up
            log.info("CONTROL_LINK_RETRY", port=self.port, error=str(exc)[:200], exc_info=True)
            return None, None
        self.up = True
        log.info("CONTROL_LINK_UP", port=self.port, worker=self.source.worker, dropped=self.dropped)
        return system, admin

    def _pump(self, system: Any, admin: Any) -> None:
        try:
            msg = self.queue.get(timeout=0.2)
        except queue.Empty:
            msg = None
        while msg is not None:
            system.tell(admin, msg)
            self.sent += 1
            try:
                msg = self.queue.get_nowait()
            except queue.Empty:
                msg = None
        while (command := system.listen(0)) is not None:
            self._command(command)

    def _command(self, command: object) -> None:
        if isinstance(command, HangupCall):
            log.info("CONTROL_HANGUP", call_sid=command.call_sid, action=command.action)
            self.loop.call_soon_threadsafe(self.on_hangup, command.call_sid, command.action)

    def _down(self, exc: Exception) -> None:
        if self.up:
            log.warning("CONTROL_LINK_DOWN", port=self.port, reason=str(exc)[:200], dropped=self.dropped,
                        exc_info=exc)
        self.up = False
        while True:  # what was queued for the lost system is dropped, counted
            try:
                self.queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                break


def external_system(port: int) -> Any:
    from thespian.actors import ActorSystem

    return ActorSystem("multiprocTCPBase", capabilities={"Admin Port": port}, transientUnique=True)


def ask_admin(port: int, msg: object, timeout_s: float = ASK_TIMEOUT_S) -> object | None:
    if not admin_port_open("127.0.0.1", port):
        return None
    system = external_system(port)
    deadline = time.monotonic() + timeout_s
    while True:  # a member that has just joined may not know the leader yet
        try:
            admin = system.createActor(ControlAdmin, globalName=ADMIN_NAME)
            answer: object | None = system.ask(admin, msg, timeout_s)
            return answer
        except Exception:  # noqa: BLE001 — no system satisfies the leader capability yet
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
