"""How many calls one box carries: kolbridge vs a bare relay (Twilio's sample's shape: deltas forwarded as
they come) and a bare paced relay (the same, with the simplest 20 ms pacer: the floor under the
caller-side gap figures on this box) — same load generator, same fake service.

    python -m bench.calls [--sweep 50,100,150,200] [--repeat 3] [--duration 30] [--workers 1]
                          [--jitter-sweep 50,100] [--jitter-ms 150]

For each K, each repeat and each system: start the fake Realtime service (own process), the server,
then the load generator (own process) with K concurrent ~`duration` s calls; sample CPU and RSS of
every process from /proc; collect the generator's per-call records, the fake service's per-connection
records and the server's log (TX_UNDERRUN, TICKER_STATS, CALL_METRICS). On a small box the generator
and the fake service compete with the server for the same cores: their CPU is reported beside it.
The sweep goes past the first failing K (it reports it, it does not stop) and every point is run
`--repeat` times; the summary gives each figure's spread and the largest K where every run met the
target: caller-side p99 |gap − 20 ms| ≤ 2 ms, no underrun caused by the server (its queue ran dry
although the fake service streams 1.5× faster than real time, or its ticker was late), no caller
frame lost, no call given the fallback (its Realtime session did not open within the connect budget —
what an overloaded server does), no call failed. After the callers hang up the bench waits until the
fake service has read every Realtime socket to its end (`drain_s`: how far behind the server was), so
frames still on their way are not counted lost; the server's own count of caller frames it could not
deliver (`frames_unsent_at_end`) is reported beside the generator-to-fake count. `--keep DIR` keeps each
run's logs and records. Jittery rows (`--jitter-ms`, delivery at real time ± that): underruns per
1,000 s of AI audio and the first audio's wait in the jitter buffer. Writes its section of
bench/RESULTS.md (between the `calls:` markers; the rest of the file is kept).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
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


def control_pids(admin_port: int) -> list[int]:
    """The actor system listening on `admin_port` and every process it forked (its actors)."""
    listeners = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    roots = {int(p) for line in listeners.splitlines() if f":{admin_port} " in line
             for p in re.findall(r"pid=(\d+)", line)}
    return sorted({p for root in roots for p in family(root)})


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


def open_connections(port: int) -> int:
    """Established (or half-closed, not yet read to the end) TCP connections whose local port is `port`:
    the fake service's side of the server's Realtime sockets, from /proc/net/tcp{,6}."""
    count = 0
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table_path).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] in ("01", "08"):  # ESTABLISHED, CLOSE_WAIT
                count += 1
    return count


def wait_drained(fake_port: int, timeout: float) -> float:
    """After the callers hung up, wait until the server has closed every Realtime socket and the fake
    service has read each to its end: an overloaded server is seconds behind, and stopping the fake
    before it has read what the server still had to send would count those frames as lost. Returns
    the seconds waited (how far behind the server was)."""
    start = time.monotonic()
    while open_connections(fake_port) and time.monotonic() - start < timeout:
        time.sleep(0.2)
    return time.monotonic() - start


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def server_log(path: Path) -> dict[str, Any]:
    """What the server itself logged: its dry queues, its ticker, its calls' jitter-buffer waits."""
    underruns, ticker, waits, starts, wait_max, ai_frames, unreadable, unsent, fallbacks = 0, [], 0, 0, 0, 0, 0, 0, 0
    for line in path.read_text(errors="replace").splitlines():
        if '"TX_UNDERRUN"' in line:
            underruns += 1
        elif '"TICKER_STATS"' in line or '"CALL_METRICS"' in line:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # two workers' long lines can interleave in one log file
                unreadable += 1
                continue
            if record.get("event") == "TICKER_STATS":
                ticker.append(record)
                continue
            metrics = record.get("all", {})
            if record.get("reason") == "realtime_unavailable":
                fallbacks += 1  # the session never opened in time (overload): the caller got the fallback
            waits += metrics.get("jitter_wait_ms_total", 0)
            starts += metrics.get("jitter_starts", 0)
            wait_max = max(wait_max, metrics.get("jitter_wait_ms_max", 0))
            ai_frames += metrics.get("frames_sent", 0)
            unsent += metrics.get("frames_unsent_at_end", 0)
    return {"server_underruns": underruns, "ticker_p99_ms": max((t.get("p99_ms", 0.0) for t in ticker), default=float("nan")),
            "ticker_max_ms": max((t.get("max_ms", 0.0) for t in ticker), default=float("nan")),
            "preroll_mean_ms": waits / starts if starts else float("nan"), "preroll_max_ms": wait_max,
            "ai_audio_s": ai_frames * 0.02, "log_lines_unreadable": unreadable, "frames_unsent_at_end": unsent,
            "fallbacks": fallbacks}


def run_one(system: str, k: int, args: argparse.Namespace, work: Path, jitter_ms: float = 0.0,
            seed: int = 7) -> dict[str, Any]:
    fake_port, port = free_port(), free_port()
    env = {**os.environ, "KOLBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
           "KOLBRIDGE_REALTIME_URL": f"ws://127.0.0.1:{fake_port}/v1", "OPENAI_API_KEY": "sk-bench"}
    py = sys.executable
    delivery = ["--speed", "1.0", "--jitter-ms", str(jitter_ms)] if jitter_ms else ["--speed", "1.5"]
    fake = subprocess.Popen([py, "-m", "sim.fake_service", "--port", str(fake_port), "--stats-out",
                             str(work / "fake.json"), "--seed", str(seed), *delivery], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(work / "fake.log", "w"))
    admin_port = 0
    if system.startswith("kolbridge"):
        # "kolbridge": config.toml as shipped, the control plane on (its own actor system on a free admin port,
        # stopped after the run, its CPU counted); "kolbridge-nocp": the same with the control plane off;
        # "kolbridge-console": as "kolbridge", with the operator console and a scripted viewer of its live page
        # (their CPU is reported apart: a viewer must cost the workers nothing)
        admin_port = free_port() if system in ("kolbridge", "kolbridge-console") else 0
        control = f"enabled = true\nadmin_port = {admin_port}" if admin_port else "enabled = false\nadmin_port = 1900"
        config = work / "config.toml"
        text = (ROOT / "config.toml").read_text(encoding="utf-8").replace("enabled = true\nadmin_port = 1900", control)
        # the sweep measures how calls degrade past capacity: the worker's own shedding (gateway/admission.py,
        # at /voice; the generator opens streams directly) would hide it
        text = re.sub(r"(?m)^shed_lateness_ms = [0-9.]+", "shed_lateness_ms = 0.0", text)
        if getattr(args, "append_ms", 0):
            text = re.sub(r"(?m)^append_ms = \d+", f"append_ms = {args.append_ms}", text)
        config.write_text(text, encoding="utf-8")
        subprocess.run([py, "-m", "gateway.cli", "business", "--config", str(config), "import",
                        str(ROOT / "examples/demo-garage.toml")], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        cmd = [py, "-m", "gateway.cli", "--log-level", "info", "serve", "--port", str(port), "--config", str(config),
               "--workers", str(args.workers)]
    else:
        cmd = [py, "-m", "bench.baseline_relay", "--port", str(port), "--realtime", f"ws://127.0.0.1:{fake_port}/v1",
               *(["--paced"] if system == "baseline-paced" else [])]
    log = open(work / f"{system}.log", "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(fake_port)
    wait_port(port)
    time.sleep(1.0)
    viewer = start_viewer(work, env, config, admin_port, args) if system == "kolbridge-console" else None
    spids, fpids = family(server.pid), [fake.pid]
    cpids = control_pids(admin_port) if admin_port else []
    c0_server, c0_fake, c0_control, t0 = cpu_s(spids), cpu_s(fpids), cpu_s(cpids), time.monotonic()
    gen = subprocess.Popen([py, "-m", "sim.loadgen", "--url", f"ws://127.0.0.1:{port}/media-stream", "--calls",
                            str(k), "--duration", str(args.duration), "--ramp", str(args.ramp), "--out",
                            str(work / "gen.json"), "--total", str(getattr(args, "total", 0.0))], cwd=ROOT, env=env)
    spy = None
    if getattr(args, "profile", ""):  # py-spy on the server for the whole run (its own CPU is not the server's)
        spy_exe = shutil.which("py-spy") or str(Path(py).parent / "py-spy")
        spy = subprocess.Popen([spy_exe, "record", "--pid", str(server.pid), "--subprocesses", "--nonblocking",
                                "-r", "100", "-f", "raw", "-o", str(Path(args.profile) / f"{system}-{k}.txt"),
                                "--duration", str(int(args.duration + args.ramp))], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    peak_rss, rss_samples, next_sample = 0.0, [], t0
    while gen.poll() is None:
        rss = rss_mb(family(server.pid))
        peak_rss = max(peak_rss, rss)
        if time.monotonic() >= next_sample:
            rss_samples.append((round(time.monotonic() - t0), round(rss, 1)))
            next_sample += args.rss_every
        time.sleep(1.0)
    drain_s = wait_drained(fake_port, timeout=120.0)
    wall = time.monotonic() - t0  # the drain included: an overloaded server is still working for its calls
    if spy is not None:
        spy.wait(timeout=60)
    server_cpu, fake_cpu = cpu_s(family(server.pid)) - c0_server, cpu_s(fpids) - c0_fake
    control_cpu = cpu_s(cpids) - c0_control  # the actor system's processes: the control plane's own cost
    server_cpu += control_cpu
    console_cpu = stop_viewer(viewer) if viewer is not None else 0.0
    for proc in (server, fake):
        proc.send_signal(signal.SIGTERM)
    for proc in (server, fake):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()
    if admin_port:
        subprocess.run([py, "-m", "gateway.cli", "actors", "stop", "--admin-port", str(admin_port)], cwd=ROOT, env=env,
                       capture_output=True, timeout=30)
        for pid in control_pids(admin_port):
            os.kill(pid, signal.SIGKILL)
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
    logged = server_log(work / f"{system}.log") if system.startswith("kolbridge") else {
        "server_underruns": 0, "ticker_p99_ms": float("nan"), "ticker_max_ms": float("nan"),
        "preroll_mean_ms": float("nan"), "preroll_max_ms": 0, "ai_audio_s": 0.0, "log_lines_unreadable": 0,
        "frames_unsent_at_end": 0, "fallbacks": 0}
    phone_underruns = sum(c["underruns"] for c in calls)
    ai_s = logged["ai_audio_s"] or sum(c["frames_received"] for c in calls) * 0.02
    return {
        "system": system, "k": k, "jitter_ms": jitter_ms, "calls_ok": len(calls),
        "errors": len(gen_data["calls"]) - len(calls),
        "cpu_ms_per_call_s": 1000 * server_cpu / max(call_seconds, 1e-9),
        "rss_mb_per_call": peak_rss / max(k, 1), "gap_p50": pct(gaps, 0.5), "gap_p99": pct(gaps, 0.99),
        "gap_max": max(gaps, default=0.0), "underruns": phone_underruns,
        "underruns_per_1000s": 1000 * phone_underruns / max(ai_s, 1e-9),
        "odd_sized": sum(c["odd_sized"] for c in calls), "frames_sent": sent, "frames_reached": reached,
        "frames_lost": sent - reached, "fwd_p99_ms": pct(delays, 0.99), "gen_cpu_core": gen_data["cpu_s"] / wall,
        "fake_cpu_core": fake_cpu / wall, "server_cpu_core": server_cpu / wall, "control_cpu_core": control_cpu / wall,
        "drain_s": drain_s, "rss_samples": rss_samples, **logged, **viewed(work, console_cpu, wall),
    }


def start_viewer(work: Path, env: dict[str, str], config: Path, admin_port: int,
                 args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], float]:
    """The console (own process, reading the control plane) and a viewer of its live page for the whole run."""
    py, port = sys.executable, free_port()
    subprocess.run([py, "-m", "gateway.cli", "users", "--config", str(config), "add", "viewer@bench.example",
                    "--role", "admin", "--password-stdin"], input=b"bench-viewer-password\n", cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    console = subprocess.Popen([py, "-m", "gateway.cli", "console", "--port", str(port), "--config", str(config),
                                "--admin-port", str(admin_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(work / "console.log", "w"))
    wait_port(port)
    seconds = args.duration + args.ramp
    viewer = subprocess.Popen([py, "-m", "bench.console_viewer", "--url", f"http://127.0.0.1:{port}", "--email",
                               "viewer@bench.example", "--password", "bench-viewer-password", "--seconds", str(seconds),
                               "--out", str(work / "viewer.json")], cwd=ROOT, env=env)
    return console, viewer, cpu_s(family(console.pid))


def stop_viewer(started: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], float]) -> float:
    """The console's CPU seconds over the run (the viewer's own is the browser's, not ours)."""
    console, viewer, cpu0 = started
    viewer.wait(timeout=120)
    used = cpu_s(family(console.pid)) - cpu0
    console.send_signal(signal.SIGTERM)
    try:
        console.wait(timeout=30)
    except subprocess.TimeoutExpired:
        console.kill()
    return used


def viewed(work: Path, console_cpu: float, wall: float) -> dict[str, Any]:
    path = work / "viewer.json"
    if not path.exists():
        return {}
    seen = json.loads(path.read_text())
    return {"viewer_kb_per_s": seen["bytes_per_s"] / 1024, "viewer_requests": seen["requests"],
            "viewer_errors": seen["errors"], "viewer_statuses": seen.get("statuses", {}), "viewer_rows_max": seen["rows_seen_max"],
            "console_cpu_core": console_cpu / wall}


COLUMNS = [("system", "{}"), ("k", "{}"), ("jitter_ms", "{:g}"), ("calls_ok", "{}"), ("cpu_ms_per_call_s", "{:.2f}"),
           ("server_cpu_core", "{:.2f}"), ("rss_mb_per_call", "{:.2f}"), ("gap_p50", "{:.2f}"), ("gap_p99", "{:.2f}"),
           ("gap_max", "{:.1f}"), ("underruns", "{}"), ("server_underruns", "{}"), ("underruns_per_1000s", "{:.1f}"),
           ("preroll_mean_ms", "{:.0f}"), ("odd_sized", "{}"), ("frames_sent", "{}"), ("frames_lost", "{}"),
           ("frames_unsent_at_end", "{}"), ("fallbacks", "{}"), ("drain_s", "{:.1f}"),
           ("fwd_p99_ms", "{:.2f}"), ("ticker_p99_ms", "{:.2f}"), ("ticker_max_ms", "{:.1f}"),
           ("gen_cpu_core", "{:.2f}"), ("fake_cpu_core", "{:.2f}"), ("control_cpu_core", "{:.3f}")]


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
    parser.add_argument("--sweep", default="50,100,150,200")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jitter-sweep", default="50,100")
    parser.add_argument("--jitter-ms", type=float, default=150.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--systems", default="kolbridge,baseline,baseline-paced")
    parser.add_argument("--keep", default="", help="a folder: every run's server log, generator and fake "
                        "service records are kept there")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--soak", type=float, default=0.0, help="seconds: one long run of --calls calls, RSS each minute")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rss-every", type=float, default=60.0)
    parser.add_argument("--append-ms", type=int, default=0,
                        help="the server's [realtime] append_ms (default: as config.toml ships)")
    parser.add_argument("--profile", default="", help="a folder: py-spy records the server of every run there "
                        "(collapsed stacks, `bench/hotspots.py` sums them)")
    args = parser.parse_args()
    if args.soak:
        soak(args)
        return
    rows: list[dict[str, Any]] = []
    points = [(k, system, 0.0) for k in ints(args.sweep) for system in args.systems.split(",")]
    points += [(k, "kolbridge", args.jitter_ms) for k in ints(args.jitter_sweep)]
    for k, system, jitter in points:
        for rep in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                row = run_one(system, k, args, Path(tmp), jitter_ms=jitter, seed=7 + rep)
                if args.keep:  # the run's logs and records, for a diagnosis
                    shutil.copytree(tmp, Path(args.keep) / f"{system}-{k}-{jitter:g}-{rep + 1}", dirs_exist_ok=True)
            row["run"] = rep + 1
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    text = report(rows, args)
    write_section(Path(args.out), text)
    print(text)


def ints(spec: str) -> list[int]:
    return [int(x) for x in spec.split(",") if x.strip()]


def meets(row: dict[str, Any]) -> bool:
    return bool(row["gap_p99"] <= 2.0 and row["server_underruns"] == 0 and row["frames_lost"] == 0 and row["fallbacks"] == 0
                and row["errors"] == 0 and row["calls_ok"] == row["k"])


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    ordered = sorted(values)
    return f"{fmt.format(ordered[len(ordered) // 2])} ({fmt.format(ordered[0])}–{fmt.format(ordered[-1])})"


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    groups: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["system"], row["k"], row["jitter_ms"]), []).append(row)
    lines = ["| system | K | delivery | runs | CPU ms per call-s | server cores | p99 gap err ms | phone underruns "
             "| server underruns | frames lost | calls given the fallback | ticker p99 ms | gen + fake cores | target met |",
             "|" + "---|" * 14]
    for (system, k, jitter), runs in groups.items():
        delivery = f"1× ± {jitter:g} ms" if jitter else "1.5×"
        met = "—" if system != "kolbridge" or jitter else f"{sum(meets(r) for r in runs)}/{len(runs)}"
        lines.append(f"| {system} | {k} | {delivery} | {len(runs)} | {spread([r['cpu_ms_per_call_s'] for r in runs])} "
                     f"| {spread([r['server_cpu_core'] for r in runs])} | {spread([r['gap_p99'] for r in runs])} "
                     f"| {spread([r['underruns'] for r in runs], '{:.0f}')} "
                     f"| {spread([r['server_underruns'] for r in runs], '{:.0f}')} "
                     f"| {spread([r['frames_lost'] for r in runs], '{:.0f}')} "
                     f"| {spread([r['fallbacks'] for r in runs], '{:.0f}')} "
                     f"| {spread([r['ticker_p99_ms'] for r in runs])} "
                     f"| {spread([r['gen_cpu_core'] + r['fake_cpu_core'] for r in runs])} | {met} |")
    lines += viewer_lines(groups)
    passing = [k for (system, k, jitter), runs in groups.items() if system == "kolbridge" and not jitter
               and all(meets(r) for r in runs)]
    failing = sorted(k for (system, k, jitter), runs in groups.items() if system == "kolbridge" and not jitter
                     and not all(meets(r) for r in runs))
    verdict = (f"Largest K where every run met the target: **{max(passing)}**" if passing else
               "No K met the target in every run") + (f"; first K that did not: {failing[0]}" if failing else "")
    jitter_lines = [f"- K={k}, real time ± {jitter:g} ms: underruns per 1,000 s of AI audio "
                    f"{spread([r['underruns_per_1000s'] for r in runs], '{:.1f}')} at the phone, server-counted "
                    f"{spread([1000 * r['server_underruns'] / max(r['ai_audio_s'], 1e-9) for r in runs], '{:.1f}')}; "
                    f"first audio's wait in the jitter buffer mean {spread([r['preroll_mean_ms'] for r in runs], '{:.0f}')} ms, "
                    f"max {max(r['preroll_max_ms'] for r in runs)} ms"
                    for (system, k, jitter), runs in groups.items() if jitter]
    return (f"Machine: {machine()}\n\nCommand: `python -m bench.calls --sweep {args.sweep} --repeat {args.repeat} "
            f"--duration {args.duration:g} --workers {args.workers} --jitter-sweep {args.jitter_sweep} "
            f"--jitter-ms {args.jitter_ms:g}`\n\nMedian (min–max) over the runs of each point.\n\n"
            + "\n".join(lines) + f"\n\n{verdict}.\n\n" + "\n".join(jitter_lines) + "\n\nEvery run:\n\n" + table(rows))


BEGIN, END = "<!-- calls:begin -->", "<!-- calls:end -->"


def viewer_lines(groups: dict[tuple[str, int, float], list[dict[str, Any]]]) -> list[str]:
    """With the console's live page open: the viewer's traffic, the console's CPU, the workers' CPU beside
    the same K without it."""
    lines = []
    for (system, k, jitter), runs in groups.items():
        if system != "kolbridge-console":
            continue
        alone = groups.get(("kolbridge", k, jitter), [])
        without = f"{spread([r['cpu_ms_per_call_s'] for r in alone])} without" if alone else "no run without"
        lines.append(f"\nK={k}, the live page open: workers {spread([r['cpu_ms_per_call_s'] for r in runs])} ms CPU per "
                     f"call-second ({without}); the viewer {spread([r.get('viewer_kb_per_s', 0.0) for r in runs], '{:.1f}')} "
                     f"KB/s over {spread([r.get('viewer_requests', 0) for r in runs], '{:.0f}')} requests "
                     f"({spread([r.get('viewer_errors', 0) for r in runs], '{:.0f}')} failed, up to "
                     f"{spread([r.get('viewer_rows_max', 0) for r in runs], '{:.0f}')} calls listed); the console "
                     f"{spread([r.get('console_cpu_core', 0.0) for r in runs], '{:.3f}')} of a core")
    return lines


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of RESULTS.md, keeping everything else in the file."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{BEGIN}\n{text}{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(new)


if __name__ == "__main__":
    main()
