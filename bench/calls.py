"""How many calls one box carries: kolbridge vs a bare relay, same load generator, same fake service.

On a small box the generator and the fake service compete with the server for the same cores (their
CPU is reported beside it): the primary figure is CPU per call-second at a K where they are not
saturated; pacing and underruns are reported at every K.

    python -m bench.calls [--sweep 10,50,100] [--duration 30] [--workers 2] [--systems kolbridge,baseline]

For each K and each system: start the fake Realtime service (own process), the server, then the load
generator (own process) with K concurrent ~`duration` s calls; sample CPU and RSS of every process from
/proc; collect the generator's per-call records and the fake service's per-connection records. Prints
a table and writes bench/RESULTS.md. Stops a sweep when underruns or lost frames appear.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def family(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(c) for c in children)
    return out


def cpu_s(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def run_one(system: str, k: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    fake_port, port = free_port(), free_port()
    env = {**os.environ, "KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
           "KOLBRIDGE_REALTIME_URL": f"ws://127.0.0.1:{fake_port}/v1", "OPENAI_API_KEY": "sk-bench"}
    py = sys.executable
    fake = subprocess.Popen([py, "-m", "sim.fake_service", "--port", str(fake_port), "--stats-out",
                             str(work / "fake.json")], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(work / "fake.log", "w"))
    if system == "kolbridge":
        subprocess.run([py, "-m", "gateway.cli", "business", "import", str(ROOT / "examples/demo-garage.toml")],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        cmd = [py, "-m", "gateway.cli", "--log-level", "info", "serve", "--port", str(port),
               "--workers", str(args.workers)]
    else:
        cmd = [py, "-m", "bench.baseline_relay", "--port", str(port), "--realtime", f"ws://127.0.0.1:{fake_port}/v1"]
    log = open(work / f"{system}.log", "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(fake_port)
    wait_port(port)
    time.sleep(1.0)
    spids, fpids = family(server.pid), [fake.pid]
    c0_server, c0_fake, t0 = cpu_s(spids), cpu_s(fpids), time.monotonic()
    gen = subprocess.Popen([py, "-m", "sim.loadgen", "--url", f"ws://127.0.0.1:{port}/media-stream", "--calls",
                            str(k), "--duration", str(args.duration), "--ramp", str(args.ramp), "--out",
                            str(work / "gen.json"), "--total", str(getattr(args, "total", 0.0))], cwd=ROOT, env=env)
    peak_rss, rss_samples, next_sample = 0.0, [], t0
    while gen.poll() is None:
        rss = rss_mb(family(server.pid))
        peak_rss = max(peak_rss, rss)
        if time.monotonic() >= next_sample:
            rss_samples.append((round(time.monotonic() - t0), round(rss, 1)))
            next_sample += args.rss_every
        time.sleep(1.0)
    wall = time.monotonic() - t0
    server_cpu, fake_cpu = cpu_s(family(server.pid)) - c0_server, cpu_s(fpids) - c0_fake
    for proc in (server, fake):
        proc.send_signal(signal.SIGTERM)
    for proc in (server, fake):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()
    gen_data = json.loads((work / "gen.json").read_text())
    fake_data = {c["first_frame"]: c for c in json.loads((work / "fake.json").read_text())}
    calls = [c for c in gen_data["calls"] if "error" not in c]
    call_seconds = sum(c["seconds"] for c in calls)
    gaps = [g for c in calls for g in c["gaps_ms"]]
    delays, sent, reached = [], 0, 0
    for c in calls:
        f = fake_data.get(c["first_frame"])
        sent += c["frames_sent"]
        if f is None:
            continue
        reached += f["frames"]
        delays += [(b - a) * 1000 for a, b in zip(c["send_times"], f["append_times"])]
    ticker = [json.loads(line) for line in (work / f"{system}.log").read_text().splitlines()
              if '"TICKER_STATS"' in line]
    return {
        "system": system, "k": k, "calls_ok": len(calls), "errors": len(gen_data["calls"]) - len(calls),
        "cpu_ms_per_call_s": 1000 * server_cpu / max(call_seconds, 1e-9),
        "rss_mb_per_call": peak_rss / max(k, 1), "gap_p50": pct(gaps, 0.5), "gap_p99": pct(gaps, 0.99),
        "gap_max": max(gaps, default=0.0), "underruns": sum(c["underruns"] for c in calls),
        "odd_sized": sum(c["odd_sized"] for c in calls), "frames_sent": sent, "frames_reached": reached,
        "fwd_p99_ms": pct(delays, 0.99), "gen_cpu_core": gen_data["cpu_s"] / wall, "fake_cpu_core": fake_cpu / wall,
        "server_cpu_core": server_cpu / wall,
        "ticker_p99_ms": max((t.get("p99_ms", 0.0) for t in ticker), default=float("nan")),
        "ticker_max_ms": max((t.get("max_ms", 0.0) for t in ticker), default=float("nan")),
        "rss_samples": rss_samples,
    }


COLUMNS = [("system", "{}"), ("k", "{}"), ("calls_ok", "{}"), ("cpu_ms_per_call_s", "{:.2f}"),
           ("server_cpu_core", "{:.2f}"), ("rss_mb_per_call", "{:.2f}"), ("gap_p50", "{:.2f}"), ("gap_p99", "{:.2f}"),
           ("gap_max", "{:.1f}"), ("underruns", "{}"), ("odd_sized", "{}"), ("frames_sent", "{}"),
           ("frames_reached", "{}"), ("fwd_p99_ms", "{:.2f}"), ("ticker_p99_ms", "{:.2f}"), ("ticker_max_ms", "{:.1f}"),
           ("gen_cpu_core", "{:.2f}"), ("fake_cpu_core", "{:.2f}")]


def table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(f.format(r[c]) for c, f in COLUMNS) + " |\n" for r in rows)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    pkgs = ", ".join(f"{p} {metadata.version(p)}" for p in ("thespian", "websockets", "openai", "msgspec"))
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {pkgs}"


def soak(args: argparse.Namespace) -> None:
    """One long run: K lines of back-to-back `duration`-second calls for `soak` seconds, the server's RSS
    sampled every `rss_every` seconds; reports growth."""
    args.total = args.soak
    with tempfile.TemporaryDirectory() as tmp:
        row = run_one("kolbridge", args.calls, args, Path(tmp))
    samples = row["rss_samples"]
    growth = samples[-1][1] - samples[1][1] if len(samples) > 2 else 0.0
    lines = [f"# Soak: {args.calls} concurrent calls ({args.duration:g} s each, back to back) for {args.soak:g} s\n", f"Machine: {machine()}\n",
             "| t (s) | server RSS (MB) |", "|---|---|"] + [f"| {t} | {mb} |" for t, mb in samples] + [
             "", f"RSS growth after the first minute: {growth:+.1f} MB; underruns {row['underruns']}, "
             f"frames sent {row['frames_sent']}, reached {row['frames_reached']}, CPU per call-second "
             f"{row['cpu_ms_per_call_s']:.2f} ms"]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweep", default="10,50,100")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--systems", default="kolbridge,baseline")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--soak", type=float, default=0.0, help="seconds: one long run of --calls calls, RSS each minute")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rss-every", type=float, default=60.0)
    args = parser.parse_args()
    if args.soak:
        soak(args)
        return
    rows: list[dict[str, Any]] = []
    broken: set[str] = set()
    for k in [int(x) for x in args.sweep.split(",")]:
        for system in args.systems.split(","):
            if system in broken:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                row = run_one(system, k, args, Path(tmp))
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            if system == "kolbridge" and (row["underruns"] or row["frames_reached"] < row["frames_sent"] or row["errors"]):
                broken.add(system)
    for row in rows:
        base = next((r for r in rows if r["system"] == "baseline" and r["k"] == row["k"]), None)
        row["vs_baseline"] = row["cpu_ms_per_call_s"] / base["cpu_ms_per_call_s"] if base else float("nan")
    text = (f"# Benchmark results\n\nMachine: {machine()}\n\nCommand: `python -m bench.calls --sweep {args.sweep} "
            f"--duration {args.duration:g} --workers {args.workers}`\n\n" + table(rows) + "\n"
            + "\n".join(f"- K={r['k']} {r['system']}: CPU per call-second {r['cpu_ms_per_call_s']:.2f} ms "
                        f"= {r['vs_baseline']:.2f}× the baseline" for r in rows if r["system"] == "kolbridge") + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
