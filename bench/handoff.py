"""How soon a caller whose transfer nobody took is back with the agent (issue 23), on the wall clock.

    python -m bench.handoff [--runs 5]

Each run: the demo garage on loopback (gateway, fake Realtime service, Twilio emulator, the fake Twilio
control plane with signed webhooks), a caller asks for a person, transfer_to_human dials the line, the
fake reports it busy (the Dial's action, as Twilio would). Measured from that callback:

  stream asked   the back-to-agent TwiML answered and run: Twilio is told to open the new stream
  call live      the new stream's call is built on the worker (record reopened, history read, tree spawned)
  first audio    the first frame of the agent's answer ("the line was busy…") reached the phone; it
                 includes the fake Realtime service's 150 ms to its first delta

median (min–max) over the runs, in ms. The issue's target: back on a stream with the agent within 2 s.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from twilio.request_validator import RequestValidator

from gateway.cli.demo import offline_stack
from gateway.config import FileConfig
from gateway.prewarm import route_signature
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.fake_twilio_rest import FakeTwilioRest
from sim.twilio_emulator import EmulatedCall, Step

TOKEN = "bench-token"
CALLER, CALLED = "+972501234567", "+97235550100"


def _script() -> FakeScript:
    human = clip_text("human")
    back = (load_clip("alternative"), clip_text("alternative"))
    return FakeScript(transcripts=[human], responses=[(load_clip("greeting"), clip_text("greeting"))],
                      replies={human: (load_clip("handoff"), clip_text("handoff"))},
                      calls={human: ("transfer_to_human", {"reason": "asked for a person", "summary": "a test"})},
                      by_instructions={"did not go through": back})


def _signed(stream_url: str) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(stream_url, {})}


async def one_run(workdir: Path, index: int) -> tuple[float, float, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    call_sid = f"CA{index:032d}"
    rest = await FakeTwilioRest(auth_token=TOKEN).start()
    rest.inbound(call_sid, CALLER, CALLED)
    env = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_API_KEY": "SK" + "2" * 32, "TWILIO_API_SECRET": "secret",
           "KOLBRIDGE_TWILIO_API_URL": rest.url, "TWILIO_AUTH_TOKEN": TOKEN}
    loop = asyncio.get_running_loop()
    try:
        async with offline_stack(FileConfig(), workdir, _script(), env=env, db_name=f"bench-{index}.db") as stack:
            base = f"http://127.0.0.1:{stack.port}"
            steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("human"), "ask for a human"),
                     Step("wait_turns", 2), Step("pause", 8.0)]
            custom = {"action_base": base, "from": CALLER, "to": CALLED,
                      "route_sig": route_signature(TOKEN, call_sid, "demo-garage", base)}
            await EmulatedCall(stack.stream_url, "demo-garage", call_sid, steps, custom=custom,
                               headers=_signed(stack.stream_url)).run()
            await rest.wait_for(lambda: bool(rest.call(call_sid).dialled), 10.0)
            callback_at = loop.time()
            await rest.dial_outcome(call_sid, "busy")
            await rest.wait_for(lambda: bool(rest.streams), 10.0)
            asked = loop.time() - callback_at
            stream = rest.streams[-1]
            second = EmulatedCall(stream.url, "demo-garage", call_sid, [Step("wait_turns", 1)], custom=stream.parameters,
                                  headers=_signed(stream.url))
            running = asyncio.create_task(second.run())
            while call_sid not in stack.app.calls and not running.done():
                await asyncio.sleep(0.001)
            live = loop.time() - callback_at
            report = await asyncio.wait_for(running, 30)
            first_audio = report.arrivals[0] - callback_at if report.arrivals else float("nan")
    finally:
        await rest.stop()
    return asked * 1000, live * 1000, first_audio * 1000


def _line(name: str, values: list[float]) -> str:
    return f"  {name:13s} {statistics.median(values):7.1f} ms  ({min(values):.1f}–{max(values):.1f})"


async def main(runs: int) -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(runs):
            results.append(await one_run(Path(tmp) / str(index), index))
    asked, live, first = (list(column) for column in zip(*results))
    print(f"back to the agent after a busy line, {runs} runs (median (min–max) from Twilio's callback):")
    print(_line("stream asked", asked))
    print(_line("call live", live))
    print(_line("first audio", first))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
