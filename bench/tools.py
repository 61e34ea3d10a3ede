"""Tool round trips on the offline stack: what the bridge adds, and pacing while a slow tool runs.

    python -m bench.tools [--turns 8]

One call, `--turns` caller turns, each answered by a function call to the business's HTTP tool (a
local receiver that answers at once). Per call:
  in    the service sent `function_call_arguments.done` → the tool's POST arrived
  out   the tool's answer (arrival, it answers at once) → the service got `function_call_output`
printed as p50 / max in ms, with preemptive answers on (a call in a held answer waits for the
transcript's verdict: reported apart as "held") and off. Then pacing (caller-side |gap − 20 ms| p99,
underruns) for a call whose tool answers at once vs one whose tool takes 2.5 s (holding line meanwhile).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from actors.agent_messages import ConversationSettings
from actors.settings import BargeInSettings
from gateway.cli.demo import DEMO_BUSINESS, offline_stack
from gateway.config import FileConfig, ToolPolicy
from gateway.logs import configure_logging
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from sim.webhook_receiver import BusinessReceiver


def business(receiver: BusinessReceiver, read_only: bool) -> str:
    return DEMO_BUSINESS + f'''
[[business.tools]]
name = "check_availability"
description = "Free appointment slots for a day"
url = "{receiver.url('/slots')}"
timeout_s = 4.0
read_only = {str(read_only).lower()}
parameters = {{ type = "object", properties = {{ day = {{ type = "string" }} }}, required = ["day"] }}
'''


async def one_call(turns: int, preemptive: bool, delay_s: float,
                   read_only: bool = False) -> tuple[CallReport, list[dict[str, Any]], BusinessReceiver]:
    receiver = await BusinessReceiver(answers={"/slots": {"slots": ["09:00"]}}, delay_s={"/slots": delay_s}).start()
    said = "לא"
    script = FakeScript(transcripts=[said] * turns, responses=[(load_clip("greeting"), clip_text("greeting"))],
                        replies={said: (b"", "")}, calls={said: ("check_availability", {"day": "מחר"})},
                        after_tool={"check_availability": (load_clip("alternative"), clip_text("alternative"))},
                        by_instructions={"בודק": (load_clip("goodbye"), clip_text("goodbye"))})
    steps = [Step("wait_turns", 1)]
    for turn in range(turns):
        steps += [Step("pause", 0.3), Step("say", load_clip("no"), "no"), Step("wait_turns", turn + 2)]
    steps += [Step("pause", 0.5), Step("hangup")]
    cfg = FileConfig(tools=ToolPolicy(allow_private_hosts=True, allow_http=True),
                     barge_in=BargeInSettings(preemptive_answer=preemptive), conversation=ConversationSettings())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with offline_stack(cfg, Path(tmp), script, business(receiver, read_only), db_name="bench.db") as stack:
                report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", "CA" + "b" * 32,
                                                             steps, wait_timeout_s=30).run(), 300)
                conn = stack.fake.connections[0]
                rows = []
                posts = receiver.at("/slots")
                for k, (fc, out) in enumerate(zip(conn.function_calls, conn.function_outputs)):
                    post = posts[k] if k < len(posts) else None
                    rows.append({"call": fc["at"], "post": post.at if post else None, "out": out["at"]})
                heard = [s["stopped_at"] for s in conn.speech if "stopped_at" in s]
                for row, stopped in zip(rows, heard):
                    row["stopped"] = stopped
    finally:
        await receiver.stop()
    return report, rows, receiver


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms (n={len(values)})"


async def main_async(turns: int) -> None:
    for preemptive, read_only in ((True, False), (True, True), (False, False)):
        report, rows, _ = await one_call(turns, preemptive, 0.0, read_only)
        ins = [r["post"] - r["call"] for r in rows if r["post"] is not None]
        outs = [r["out"] - r["post"] for r in rows if r["post"] is not None]
        total = [r["out"] - r["stopped"] for r in rows if "stopped" in r]
        held = sum(1 for d in ins if d > 0.05)
        fast = [d for d in ins if d <= 0.05]
        print(f"preemptive {'on ' if preemptive else 'off'}, read_only {'yes' if read_only else 'no '}: in {ms(fast)}; "
              f"out {ms(outs)}; held for the verdict {held} of {len(ins)}"
              + (f" ({ms([d for d in ins if d > 0.05])})" if held else "")
              + f"; caller stops speaking → tool output at the service {ms(total)}; waits timed out {report.waits_timed_out}")
    for delay in (0.0, 2.5):
        report, rows, _ = await one_call(max(2, turns // 2), False, delay)
        gaps = report.gap_stats()
        print(f"tool answers in {delay:.1f} s: pacing |gap-20ms| p99 {gaps['p99']} ms, max {gaps['max']} ms "
              f"(n={gaps['n']}), underruns {report.underruns}, AI frames played {len(report.played_audio) // 160}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=8)
    args = parser.parse_args()
    configure_logging("warning")
    asyncio.run(main_async(args.turns))


if __name__ == "__main__":
    main()
