"""The control plane from the command line: `kolbridge actors start|status|stop`, `kolbridge calls
live|inspect|hangup`.

`actors start` starts a thespian multiprocTCPBase actor system on the admin port (its processes
outlive the command; their output goes to a log file, never to the terminal that started them) and,
on the convention leader, the global ControlAdmin. A second `start` finds the running one. A member
host starts with `--convention LEADER:PORT`: its system joins the leader's convention, and its
workers' reports reach the leader's ControlAdmin. Everything else asks the ControlAdmin.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from actors.control_admin import ADMIN_NAME, LEADER_CAPABILITY, ControlAdmin
from actors.control_messages import HangupCall, HangupReply, InspectLive, InspectReply, ListLive, LiveTableReply
from gateway.control.call_metrics import COLUMNS as METRIC_COLUMNS
from gateway.control.call_metrics import TOTALLED
from gateway.control.link import admin_port_open, ask_admin, external_system

# `calls live`: the row's own fields around the counters' columns (gateway/control/call_metrics.py)
COLUMNS = (("call_sid", 36, "call_sid"), ("business_id", 14, "business_id"), ("worker", 16, "worker"), ("age_s", 7, "age"),
           ("phase", 8, "phase"), *METRIC_COLUMNS, ("realtime", 11, "realtime"), ("last_decision", 11, "decision"))


def log_file(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"kolbridge-actors-{port}.log"


def start_system(port: int, convention: str = "") -> str:
    """Start the actor system on `port` (leader, or member of `convention` HOST:PORT) unless one runs.

    It is booted by a short-lived child process whose only open files are the log: the system's processes
    fork from it and must not inherit the caller's terminal or pipes (a caller reading our output would
    otherwise wait for them to exit)."""
    if admin_port_open("127.0.0.1", port):
        return f"actor system already running on :{port}"
    with open(log_file(port), "ab") as sink:
        booted = subprocess.run([sys.executable, "-m", "gateway.cli.control", "boot", str(port), convention],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True, timeout=60)
    if booted.returncode != 0 or not admin_port_open("127.0.0.1", port):
        raise RuntimeError(f"the actor system did not start on :{port} (see {log_file(port)})")
    role = f"member of the convention led by {convention}" if convention else "convention leader, ControlAdmin"
    return f"actor system started on :{port} ({role}); its log: {log_file(port)}"


def _boot(port: int, convention: str) -> None:
    from thespian.actors import ActorSystem

    capabilities: dict[str, object] = {"Admin Port": port}
    if convention:
        host, _, leader_port = convention.rpartition(":")
        capabilities["Convention Address.IPv4"] = (host or "127.0.0.1", int(leader_port))
    else:
        capabilities[LEADER_CAPABILITY] = True
    system = ActorSystem("multiprocTCPBase", capabilities=capabilities, transientUnique=True)
    if not convention:
        system.createActor(ControlAdmin, globalName=ADMIN_NAME)


def status(port: int) -> tuple[int, str]:
    if not admin_port_open("127.0.0.1", port):
        return 1, f"no actor system on :{port}"
    reply = ask_admin(port, ListLive())
    if not isinstance(reply, LiveTableReply):
        return 1, f"actor system on :{port}, but no ControlAdmin answers (no convention leader reachable)"
    workers = ", ".join(f"{w['worker']} ({w['calls']} calls, seen {w['seen_s_ago']} s ago)" for w in reply.workers)
    return 0, f"actor system on :{port}: {len(reply.rows)} live calls; workers: {workers or 'none'}"


def stop(port: int) -> tuple[int, str]:
    if not admin_port_open("127.0.0.1", port):
        return 1, f"no actor system on :{port}"
    external_system(port).shutdown()
    return 0, f"actor system on :{port} stopped"


def live_text(reply: LiveTableReply) -> str:
    def cell(row: dict[str, object], key: str) -> str:
        value = row.get(key, "")
        return str(value if value is not None else "")
    lines = [" ".join(f"{header:<{w}}" for _, w, header in COLUMNS)]
    rows = sorted(reply.rows, key=lambda r: -float(str(r.get("age_s", 0) or 0)))
    for row in rows:
        lines.append(" ".join(f"{cell(row, k)[:w]:<{w}}" for k, w, _ in COLUMNS) + ("  STALE" if row.get("stale") else ""))
    totals = ", ".join(f"{label} {sum(int(str(r.get(k, 0) or 0)) for r in rows)}" for k, label in TOTALLED)
    lines.append(f"{len(rows)} live calls on {len(reply.workers)} workers · {totals}")
    return "\n".join(lines)


def calls_command(command: str, port: int, call_sid: str = "", as_json: bool = False, watch: bool = False) -> int:
    if command == "live":
        while True:
            reply = ask_admin(port, ListLive())
            if not isinstance(reply, LiveTableReply):
                print(f"error: no control plane on :{port} (kolbridge actors start)", file=sys.stderr)
                return 2
            text = json.dumps({"calls": list(reply.rows), "workers": list(reply.workers)}, ensure_ascii=False) \
                if as_json else live_text(reply)
            if not watch:
                print(text)
                return 0
            print("\033[2J\033[H" + time.strftime("%H:%M:%S ") + text, flush=True)
            time.sleep(1.0)
    if command == "inspect":
        answer = ask_admin(port, InspectLive(call_sid))
        if not isinstance(answer, InspectReply) or not answer.found:
            print(f"error: no live call {call_sid}", file=sys.stderr)
            return 2
        print(json.dumps(answer.detail, ensure_ascii=False, indent=2))
        return 0
    answer = ask_admin(port, HangupCall(call_sid))
    if not isinstance(answer, HangupReply) or not answer.sent_to:
        print(f"error: no live call {call_sid}", file=sys.stderr)
        return 2
    print(f"{call_sid}: hang-up sent to worker {answer.sent_to}")
    return 0


if __name__ == "__main__" and len(sys.argv) >= 3 and sys.argv[1] == "boot":
    _boot(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
